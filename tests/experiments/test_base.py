import dataclasses
import json
from typing import Literal

import jax.numpy as jnp
import numpy as np
import pytest

from dammem.experiments import EXPERIMENTS, get_experiment
from dammem.experiments._base import (
    ConfigError,
    apply_overrides,
    config_from_mapping,
    environment,
    geometric_grid,
    markdown_table,
    run_experiment,
    to_jsonable,
)


@dataclasses.dataclass(frozen=True)
class Cfg:
    n: int = 3
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None
    flag: bool = False
    pairs: tuple[tuple[int, str], ...] = ()

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


def test_config_from_mapping_coerces_and_validates():
    cfg = config_from_mapping(
        Cfg, {"n": 5, "rate": 2, "sizes": [4, 5, 6], "mode": "b", "flag": True, "pairs": [[1, "a"], [2, "b"]]}
    )
    assert cfg == Cfg(n=5, rate=2.0, mode="b", sizes=(4, 5, 6), flag=True, pairs=((1, "a"), (2, "b")))
    assert config_from_mapping(Cfg, None) == Cfg()


@pytest.mark.parametrize(
    "mapping, match",
    [
        (
            {"nn": 1},
            r"unknown key\(s\) \['nn'\]; allowed keys are \['flag', 'mode', 'n', 'pairs', 'path', 'rate', 'sizes'\]",
        ),
        ({"n": 1.5}, "config.n: expected an integer, got 1.5"),
        ({"n": True}, "config.n: expected an integer"),
        ({"rate": "fast"}, "config.rate: expected a number"),
        ({"mode": "c"}, r"config.mode: 'c' is not allowed; choose one of \['a', 'b'\]"),
        ({"sizes": 3}, "config.sizes: expected a list"),
        ({"sizes": [1, "x"]}, r"config.sizes\[1\]: expected an integer"),
        ({"flag": "yes"}, "config.flag: expected true or false"),
        ({"n": 0}, "n must be >= 1, got 0"),
        ({"path": 3}, "config.path: 3 matches none of"),
        ({"pairs": [[1, 2]]}, r"config.pairs\[0\]\[1\]: expected a string"),
        ({"pairs": [[1]]}, r"config.pairs\[0\]: expected 2 items"),
    ],
)
def test_config_errors_name_the_key(mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(Cfg, mapping)


def test_overrides():
    doc = {"experiment": "quickstart", "seed": 0, "config": {"beta": 1.0}}
    out = apply_overrides(doc, ["seed=3", "config.beta=2.5", "config.sizes=[1, 2]", "config.name=abc"])
    assert out == {"experiment": "quickstart", "seed": 3, "config": {"beta": 2.5, "sizes": [1, 2], "name": "abc"}}
    assert doc["config"]["beta"] == 1.0  # not mutated
    for bad, match in [
        ("seed", "must look like key=value"),
        ("model.beta=1", "is not allowed"),
        ("seed.x=1", "is not allowed"),
        ("config..x=1", "is not allowed"),
    ]:
        with pytest.raises(ConfigError, match=match):
            apply_overrides(doc, [bad])


def test_to_jsonable_and_markdown():
    obj = {"a": jnp.arange(3), "b": np.float32(1.5), "c": (1, np.int64(2)), "d": float("nan"), "e": Cfg()}
    out = to_jsonable(obj)
    assert out == {
        "a": [0, 1, 2],
        "b": 1.5,
        "c": [1, 2],
        "d": "nan",
        "e": {"n": 3, "rate": 0.5, "mode": "a", "sizes": [1, 2], "path": None, "flag": False, "pairs": []},
    }
    json.dumps(out, allow_nan=False)
    table = markdown_table(["x", "y"], [[1, 0.123456], ["a", 2.0]])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | 0.1235 |", "| a | 2 |"]


@pytest.mark.parametrize("start, stop, ratio", [(1, 256, 1.15), (2, 64, 1.5), (3, 3, 2.0)])
def test_geometric_grid_is_the_distinct_rounded_powers(start, stop, ratio):
    brute = sorted({round(start * ratio**i) for i in range(200) if round(start * ratio**i) <= stop})
    assert geometric_grid(start, stop, ratio) == tuple(brute)


def test_environment_reports_versions_and_devices():
    env = environment(seed=7)
    assert env["seed"] == 7 and env["versions"]["jax"] and env["devices"] and env["backend"] in ("cpu", "gpu", "tpu")


def test_registry_and_unknown_experiment():
    for name in EXPERIMENTS:
        module = get_experiment(name)
        assert callable(module.run) and callable(module.report) and dataclasses.is_dataclass(module.Config)
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        get_experiment("nope")
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['seeds'\]"):
        run_experiment({"experiment": "quickstart", "seeds": 1}, "/tmp/unused")
    with pytest.raises(ConfigError, match="seed: expected a non-negative integer"):
        run_experiment({"experiment": "quickstart", "seed": -1}, "/tmp/unused")
    with pytest.raises(ConfigError, match="must name its experiment"):
        run_experiment({"seed": 1}, "/tmp/unused")
