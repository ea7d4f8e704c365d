import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Literal

import jax.numpy as jnp
import numpy as np
import pytest

from dammem import _timing
from dammem.experiments import EXPERIMENTS, _base, get_experiment
from dammem.experiments._base import (
    ConfigError,
    Progress,
    apply_overrides,
    config_from_mapping,
    environment,
    geometric_grid,
    git_commit,
    markdown_table,
    report_module,
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


def test_environment_reports_versions_devices_cpu_and_commit():
    env = environment()
    assert env["versions"]["jax"] and env["devices"] and env["backend"] in ("cpu", "gpu", "tpu")
    assert env["cpu_model"] == _timing.cpu_model() and env["cpu_count"] == os.cpu_count()
    assert (env["git_commit"], env["git_dirty"]) == git_commit()
    assert "seed" not in env  # the seed is recorded once, beside the config


# ---------------------------------------------------------------------------------------------------------------
# git provenance


def _git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_tracked_folder_and_none_elsewhere(tmp_path):
    repo = tmp_path / "repo"
    pkg = repo / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    assert git_commit(pkg) == (None, None)  # a repository that does not track the folder (untracked files)
    _git(repo, "add", "pkg")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "notes.txt").write_text("untracked files do not make the checkout dirty\n")
    assert len(head) == 40 and git_commit(pkg) == (head, False)
    (pkg / "mod.py").write_text("x = 2\n")
    assert git_commit(pkg) == (head, True)  # tracked changes since the commit
    (repo / ".gitignore").write_text("venv/\n")
    ignored = repo / "venv" / "site-packages" / "pkg"  # an installed copy inside a checkout
    shutil.copytree(pkg, ignored)
    assert git_commit(ignored) == (None, None)
    outside = tmp_path / "plain"
    shutil.copytree(pkg, outside)
    assert git_commit(outside) == (None, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_the_package_is_head_of_its_checkout():
    package = Path(_base.__file__).resolve().parents[1]
    tracked = subprocess.run(
        ["git", "-C", str(package), "ls-files", "--error-unmatch", "__init__.py"], capture_output=True
    )
    if tracked.returncode != 0:
        assert git_commit() == (None, None)
    else:
        assert git_commit()[0] == _git(package, "rev-parse", "HEAD")


# ---------------------------------------------------------------------------------------------------------------
# progress


def test_progress_lines_name_the_stage_and_point():
    out = io.StringIO()
    progress = Progress("lines", desc="cap", stream=out)
    progress.total(3)
    progress.point("d=256 n=44")
    progress.update(1)
    progress.update(1)  # the point stays until the next one is named
    progress.point("d=512 n=88")
    progress.update(1)
    progress.close()
    lines = [re.sub(r", \d+\.\d s$", "", line) for line in out.getvalue().splitlines()]
    assert lines == ["cap [1/3] d=256 n=44", "cap [2/3] d=256 n=44", "cap [3/3] d=512 n=88"]
    assert all(re.search(r", \d+\.\d s$", line) for line in out.getvalue().splitlines())
    bare = io.StringIO()
    p = Progress("lines", stream=bare)
    p.update(2)  # no total, no label, no point
    assert re.fullmatch(r"\[2\], \d+\.\d s\n", bare.getvalue())


def test_progress_bar_shows_the_point_and_off_is_silent(capsys):
    bar = Progress("bar", desc="cap")
    bar.point("d=8")  # named before the bar exists
    bar.total(2)
    assert bar._bar.postfix == "d=8"
    bar.point("d=16")
    bar.update(1)
    assert bar._bar.postfix == "d=16" and bar._bar.n == 1
    bar.close()
    assert "cap" in capsys.readouterr().err
    for silent in (Progress("off", desc="x"), Progress(False, desc="x")):
        silent.total(2)
        silent.point("d=8")
        silent.update(2)
        silent.close()
    assert capsys.readouterr() == ("", "")
    assert Progress(True)._mode == "bar"
    with pytest.raises(ValueError, match=r"Progress: mode must be one of \('bar', 'lines', 'off'\) or a bool"):
        Progress("quiet")


# ---------------------------------------------------------------------------------------------------------------
# run_experiment: arrays to results.npz, staged writing, cleanup


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    n: int = 3
    fail: Literal["no", "run", "report"] = "no"


def _toy_module():
    """A registered-looking experiment module: returns a metric and two arrays; can fail in run or report."""

    def run(config, key, progress):
        progress.total(1)
        progress.point(f"n={config.n}")
        if config.fail == "run":
            raise RuntimeError("run failed")
        progress.update(1)
        return {
            "total": config.n * (config.n + 1) // 2,
            "arrays": {"ramp": np.arange(config.n, dtype=np.float32), "grid": np.eye(config.n, dtype=bool)},
        }

    def report(config, results, out_dir):
        if config.fail == "report":
            (out_dir / "half.png").write_bytes(b"x")
            raise RuntimeError("report failed")
        (out_dir / "plot.png").write_bytes(b"png")
        ramp = results["arrays"]["ramp"]
        assert isinstance(ramp, np.ndarray) and ramp.dtype == np.float32  # NumPy arrays, not JSON lists
        return f"total {results['total']}, ramp sum {ramp.sum():g}, grid {results['arrays']['grid'].sum()}"

    module = types.ModuleType("dammem_toy_experiment", "A toy experiment.")
    module.Config, module.run = ToyConfig, run
    report_mod = types.ModuleType("dammem_toy_experiment_report", "The toy experiment's report.")
    report_mod.report = report
    return module, report_mod


@pytest.fixture
def toy(monkeypatch):
    module, report_mod = _toy_module()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(sys.modules, report_mod.__name__, report_mod)
    monkeypatch.setitem(EXPERIMENTS, "toy", module.__name__)
    return module


def test_run_experiment_writes_arrays_to_npz_and_records_the_command(toy, tmp_path):
    doc = {"experiment": "toy", "seed": 2, "config": {"n": 4}}
    record = run_experiment(doc, tmp_path / "out", progress=False, command={"argv": ["dammem", "run", "x"]})
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["plot.png", "results.json", "results.npz", "summary.md"]
    saved = json.loads((out / "results.json").read_text())
    assert saved == record
    assert saved["metrics"] == {"total": 10} and saved["seed"] == 2 and saved["config"] == {"n": 4, "fail": "no"}
    assert saved["command"] == {"argv": ["dammem", "run", "x"]}
    assert saved["arrays"] == {
        "file": "results.npz",
        "shapes": {"ramp": [4], "grid": [4, 4]},
        "dtypes": {"ramp": "float32", "grid": "bool"},
    }
    with np.load(out / "results.npz") as arrays:
        np.testing.assert_array_equal(arrays["ramp"], [0, 1, 2, 3])
        np.testing.assert_array_equal(arrays["grid"], np.eye(4, dtype=bool))
        assert arrays["grid"].dtype == bool
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# toy: A toy experiment.\n\nseed 2, ")
    assert summary.endswith("total 10, ramp sum 6, grid 4\n")
    # from Python without a command: null; an existing directory is written into
    again = run_experiment({"experiment": "toy", "config": {"n": 2}}, out, progress=False)
    assert again["command"] is None and json.loads((out / "results.json").read_text())["metrics"] == {"total": 3}


@pytest.mark.parametrize("stage", ["run", "report"])
def test_a_failed_run_leaves_the_output_directory_as_it_was(toy, tmp_path, stage):
    doc = {"experiment": "toy", "config": {"fail": stage}}
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        run_experiment(doc, tmp_path / "a" / "b" / "c", progress=False)
    assert list(tmp_path.iterdir()) == []  # the new folders are removed again
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text("previous")
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        run_experiment(doc, old, progress=False)
    assert [p.name for p in old.iterdir()] == ["results.json"] and (old / "results.json").read_text() == "previous"


def test_run_experiment_refuses_bad_arrays(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(toy, "run", lambda config, key, progress: {"arrays": {"not a name": np.zeros(2)}})
    with pytest.raises(TypeError, match=r"results\['arrays'\] must map identifier names to arrays"):
        run_experiment({"experiment": "toy"}, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_registry_and_unknown_experiment():
    for name in EXPERIMENTS:
        module = get_experiment(name)
        assert callable(module.run) and dataclasses.is_dataclass(module.Config) and not hasattr(module, "report")
        assert callable(report_module(module).report)  # the report lives beside the experiment, never inside it
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        get_experiment("nope")
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) \['seeds'\]"):
        run_experiment({"experiment": "quickstart", "seeds": 1}, "/tmp/unused")
    with pytest.raises(ConfigError, match="seed: expected a non-negative integer"):
        run_experiment({"experiment": "quickstart", "seed": -1}, "/tmp/unused")
    with pytest.raises(ConfigError, match="must name its experiment"):
        run_experiment({"seed": 1}, "/tmp/unused")


def test_verdicts_timings_and_report_rerun(toy, tmp_path, monkeypatch):
    """The runner appends the report's verdicts, records the run's timings and load, and `rerun_report` writes the
    summary again from results.json (without figures on request) with the report code as it is now."""
    report_mod = sys.modules["dammem_toy_experiment_report"]
    calls = []

    def reproduces(config, results):
        calls.append(results["total"])
        return [{"target": "Toy (2024), Fig. 1", "verdict": "qualitative", "evidence": f"total is {results['total']}."}]

    monkeypatch.setattr(report_mod, "reproduces", reproduces, raising=False)
    out = tmp_path / "out"
    record = run_experiment({"experiment": "toy", "seed": 1, "config": {"n": 3}}, out, progress=False)
    assert record["elapsed_s"] > 0 and record["report_s"] >= 0
    assert set(record["load_average"]) == {"before", "after"}
    summary = (out / "summary.md").read_text()
    assert summary.endswith("## What this reproduces\n\n- Toy (2024), Fig. 1: **qualitative**. Total is 6.\n")
    assert calls == [6]
    (out / "plot.png").unlink()
    saved = json.loads((out / "results.json").read_text())
    saved["metrics"]["total"] = 7  # a changed result is what the rewritten summary states
    (out / "results.json").write_text(json.dumps(saved))
    original = report_mod.report

    def no_figures(config, results, out_dir, *, figures=True):
        if not figures:
            return f"total {results['total']} without figures"
        return original(config, results, out_dir)

    monkeypatch.setattr(report_mod, "report", no_figures)
    text = _base.rerun_report(out, figures=False)
    assert not (out / "plot.png").exists() and (out / "summary.md").read_text() == text
    assert "total 7 without figures" in text and text.endswith("**qualitative**. Total is 7.\n")
    assert text.startswith(f"# toy: A toy experiment.\n\nseed 1, {record['elapsed_s']:.1f} s on ")
    _base.rerun_report(out)
    assert (out / "plot.png").exists()
    monkeypatch.setattr(report_mod, "reproduces", lambda c, r: [{"target": "x", "verdict": "maybe", "evidence": ""}])
    with pytest.raises(ValueError, match="verdict one of"):
        _base.rerun_report(out)
