"""KROP capacity and mutable memory (seed 000) on tiny configs: real properties of their results, configs, reports."""

from __future__ import annotations

import importlib
from pathlib import Path

import jax
import numpy as np
import pytest

from dammem.experiments import krop_capacity, krop_mutable
from dammem.experiments._base import ConfigError, Progress, config_from_mapping, load_document, to_jsonable

ROOT = Path(__file__).resolve().parents[2]


def _run(module, mapping, tmp_path, seed=0):
    config = config_from_mapping(module.Config, mapping)
    results = to_jsonable(module.run(config, jax.random.key(seed), Progress(False)))
    body = module.report(config, results, tmp_path)
    return config, results, body


@pytest.mark.parametrize("name", ["krop_capacity", "krop_mutable"])
def test_yaml_configs_are_valid_and_match_defaults(name):
    doc = load_document(ROOT / "configs" / f"{name}.yaml")
    assert doc["experiment"] == name
    module = importlib.import_module(f"dammem.experiments.{name}")
    assert config_from_mapping(module.Config, doc["config"]) == module.Config()


def test_capacity_small(tmp_path):
    mapping = {
        "kinds": ["gaussian", "hadamard", "krop_signed"],
        "dims": [256, 512],
        "num_trials": 12,
        "grid_ratio": 1.4,
    }
    _, res, body = _run(krop_capacity, mapping, tmp_path)
    items = res["items"]["512"]
    assert items == list(krop_capacity.item_grid(512, 0.125, 1.4)) and items[0] == 2 and items[-1] <= 64
    g = np.asarray(res["success_rate"]["gaussian"]["512"])
    assert g[0] >= 0.99 and g[-1] < 0.7  # few items: recalled; many: not
    assert np.all(np.diff(g) <= 0.05)  # roughly monotone in the number of items
    cap = res["capacity"]
    assert cap["gaussian"][1] > 1.4 * cap["gaussian"][0]  # capacity grows with N (about linearly)
    assert cap["hadamard"][1] < 0.5 * cap["gaussian"][1]  # Sylvester rows: very peaky spectra
    ratio = res["capacity_over_gaussian"]["krop_signed"][1]
    assert 1 / 1.25 <= ratio <= 1.25, ratio  # the signs restore Gaussian capacity
    assert res["capacity_over_gaussian"]["gaussian"] == [1.0, 1.0]
    assert (tmp_path / "krop_capacity.png").exists() and "krop_signed" in body


def test_capacity_helpers():
    assert krop_capacity.item_grid(64, 0.25, 1.5) == (2, 3, 4, 7, 10, 15)
    items, rates = [2, 4, 8, 16], [1.0, 0.95, 0.85, 0.2]
    assert krop_capacity.interpolated_capacity(items, rates, 0.9) == pytest.approx(6.0)
    assert krop_capacity.interpolated_capacity(items, [1.0] * 4, 0.9) == 16.0
    assert krop_capacity.interpolated_capacity(items, [0.5] * 4, 0.9) == 0.0


def test_mutable_small(tmp_path):
    mapping = {
        "items": [8],
        "dims": [512],
        "curves": ["8x512"],
        "codebooks": ["krop_signed"],
        "steps": 12,
        "num_trials": 4,
    }
    config, res, body = _run(krop_mutable, mapping, tmp_path)
    curves = res["curves"]["krop_signed"]["8x512"]
    assert set(curves) == {"cleanup", "sign", "raw", "none"}
    assert all(len(c) == 13 for c in curves.values())
    assert len({c[0] for c in curves.values()}) == 1  # step 0 is the same stored memory for every rule
    s = res["summary"]["krop_signed"]["8x512"]
    assert s["cleanup"]["min"] >= 0.95
    assert s["none"]["last"] < s["cleanup"]["last"] - 0.2  # superposed old values pile up
    assert s["raw"]["mean"] < 0.2 and s["sign"]["mean"] < 0.3  # reads without clean-up erase the whole memory
    assert res["cleanup_meets_target"]["krop_signed"]["8x512"] == (s["cleanup"]["min"] >= config.target)
    assert (tmp_path / "krop_mutable.png").exists() and "cleanup" in body


@pytest.mark.parametrize(
    "module, mapping, match",
    [
        (krop_capacity, {"kinds": ["sparse"]}, "kinds must be distinct names"),
        (krop_capacity, {"dims": [100]}, "dims must be increasing powers of two"),
        (krop_capacity, {"threshold": 1.0}, r"threshold must lie in \(0, 1\)"),
        (krop_capacity, {"key_kind": "binary"}, "key_kind must be one of"),
        (krop_mutable, {"curves": ["8x999"]}, "curves must be 'MxN' strings"),
        (krop_mutable, {"erase_modes": ["zero"]}, "erase_modes must be names from"),
        (krop_mutable, {"items": [32, 8]}, "items must be increasing"),
        (krop_mutable, {"unknown": 1}, "unknown key"),
    ],
)
def test_bad_configs(module, mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(module.Config, mapping)
