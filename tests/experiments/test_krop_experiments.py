"""KROP capacity and mutable memory (Liu et al. 2025) on tiny configs: measured values, baselines, reports."""

from __future__ import annotations

import io
import re

import jax
import numpy as np
import pytest

from dammem.experiments import get_experiment
from dammem.experiments._base import (
    ConfigError,
    Progress,
    config_from_mapping,
    load_document,
    packaged_configs,
    report_module,
    to_jsonable,
)
from dammem.experiments.krop import capacity as krop_capacity
from dammem.experiments.krop import mutable as krop_mutable


def _run(module, mapping, tmp_path, seed=0, stream=None):
    config = config_from_mapping(module.Config, mapping)
    progress = Progress("lines", stream=stream) if stream is not None else Progress(False)
    results = to_jsonable(module.run(config, jax.random.key(seed), progress))
    body = report_module(module).report(config, results, tmp_path)
    return config, results, body


def _stages(stream) -> list[str]:
    return [re.sub(r", \d+\.\d s$", "", line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("name", ["krop_capacity", "krop_mutable"])
def test_yaml_configs_are_valid_and_match_defaults(name):
    doc = load_document(packaged_configs()[name])
    assert doc["experiment"] == name
    module = get_experiment(name)
    assert config_from_mapping(module.Config, doc["config"]) == module.Config()


def test_capacity_tiny_run_stages_and_outputs(tmp_path):
    """The pipeline at the smallest sizes (the measured capacities are pinned by the slow test below)."""
    mapping = {"kinds": ["gaussian"], "dims": [64], "num_trials": 2, "grid_ratio": 2.0}
    stream = io.StringIO()
    _, res, body = _run(krop_capacity, mapping, tmp_path, stream=stream)
    assert _stages(stream) == ["[1/1] gaussian N=64, M up to 8"]
    assert res["items"]["64"] == list(krop_capacity.item_grid(64, 0.125, 2.0))
    assert res["capacity_over_gaussian"]["gaussian"] == [1.0]
    assert (tmp_path / "krop_capacity.png").exists() and "| gaussian |" in body


@pytest.mark.slow  # statistical: measured capacities of 12 trials at N = 256 and 512 (about 100 s on 2 busy cores)
def test_capacity_small(tmp_path):
    mapping = {
        "kinds": ["gaussian", "hadamard", "krop_signed"],
        "dims": [256, 512],
        "num_trials": 12,
        "grid_ratio": 1.4,
    }
    stream = io.StringIO()
    _, res, body = _run(krop_capacity, mapping, tmp_path, stream=stream)
    assert _stages(stream) == [
        f"[{i + 1}/6] {kind} N={n}, M up to {m}"
        for i, (n, m, kind) in enumerate(
            (n, m, kind) for n, m in ((256, 30), (512, 58)) for kind in ("gaussian", "hadamard", "krop_signed")
        )
    ]
    items = res["items"]["512"]
    assert items == list(krop_capacity.item_grid(512, 0.125, 1.4)) and items[0] == 2 and items[-1] <= 64
    g = np.asarray(res["success_rate"]["gaussian"]["512"])
    assert g[0] >= 0.99 and g[-1] < 0.7  # few items: recalled; many: not (measured 1.0 and 0.48)
    assert np.all(np.diff(g) <= 0.05)  # roughly monotone in the number of items
    cap = res["capacity"]
    # measured (seed 0): Gaussian 12.9 / 24.3 items at N = 256 / 512, about N / 20; margin +-20%
    assert 0.8 * 12.9 <= cap["gaussian"][0] <= 1.2 * 12.9 and 0.8 * 24.3 <= cap["gaussian"][1] <= 1.2 * 24.3
    # baselines of the experiment itself: Sylvester rows (measured 0 and 3.8 items: very peaky spectra) far below
    # Gaussian; the signed KROP codebook at Gaussian capacity (measured ratios 1.06, 1.07; margin 0.2)
    assert cap["hadamard"][0] == 0.0 and cap["hadamard"][1] < 0.3 * cap["gaussian"][1]
    for ratio in res["capacity_over_gaussian"]["krop_signed"]:
        assert 0.85 <= ratio <= 1.27, ratio
    assert res["capacity_over_gaussian"]["gaussian"] == [1.0, 1.0]
    np.testing.assert_allclose(res["capacity_over_n"]["gaussian"], np.divide(cap["gaussian"], [256, 512]))
    assert (tmp_path / "krop_capacity.png").exists()
    lines = [line for line in body.splitlines() if line.startswith("- ")]
    assert lines[1].startswith("- hadamard: capacity / N from 0.000 to ") and "at N = 256 even the smallest" in lines[1]
    r = res["capacity_over_gaussian"]["krop_signed"]
    assert f"{min(r):.2f} to {max(r):.2f} times the Gaussian codebook's" in lines[2]
    assert "never fell below" not in body  # every kind's rate crossed the threshold inside the grid
    # 68% bootstrap intervals over the 12 trials: around the capacity of the mean curve (measured: Gaussian
    # [12.3, 13.5] and [23.4, 25.1], a few items wide), and from 0 for Hadamard at N = 256
    for kind in ("gaussian", "krop_signed"):
        for c, (lo, hi) in zip(cap[kind], res["capacity_interval"][kind]):
            assert lo <= c <= hi and 0 < hi - lo < 0.2 * c, (kind, c, lo, hi)
    assert res["capacity_interval"]["hadamard"][0][0] == 0.0
    # the reference law: least squares of c N / ln N through the Gaussian capacities (measured c = 0.292)
    shape = np.array([256, 512]) / np.log([256, 512])
    c = np.linalg.lstsq(shape[:, None], np.asarray(cap["gaussian"]), rcond=None)[0][0]
    assert res["reference"] == {"kind": "gaussian", "constant": pytest.approx(c, rel=1e-12)}
    assert 0.25 < c < 0.33
    worst = np.max(np.abs(np.asarray(cap["gaussian"]) / (c * shape) - 1))
    fit = f"- Reference: the gaussian capacity fits {c:.3g} N / ln N (least squares), every N within {worst:.0%}"
    assert fit in body
    lo, hi = res["capacity_interval"]["gaussian"][1]
    assert f"| gaussian | {cap['gaussian'][0]:.1f} [" in body
    assert f"{cap['gaussian'][1]:.1f} [{lo:.1f}, {hi:.1f}] |" in body


def test_bootstrap_interval_and_reference_fit_by_brute_force():
    items = [2, 4, 8, 16]
    rng = np.random.default_rng(0)
    trial_rates = np.sort(rng.uniform(0.3, 1.0, size=(5, 4)), axis=1)[:, ::-1]  # decreasing per trial
    resamples = rng.integers(0, 5, size=(50, 5))
    caps = []
    for row in resamples:
        mean = [sum(trial_rates[t][j] for t in row) / 5 for j in range(4)]
        caps.append(krop_capacity.interpolated_capacity(items, mean, 0.7))
    caps.sort()
    lo, hi = krop_capacity.bootstrap_interval(items, trial_rates, 0.7, resamples)
    assert lo == pytest.approx(np.percentile(caps, 16)) and hi == pytest.approx(np.percentile(caps, 84))
    assert caps[0] <= lo < hi <= caps[-1]
    dims, capacities = [64, 256, 1024], [5.0, 14.0, 41.0]
    shape = [n / np.log(n) for n in dims]
    expected = sum(c * s for c, s in zip(capacities, shape)) / sum(s * s for s in shape)
    assert krop_capacity.fit_n_over_log_n(dims, capacities) == pytest.approx(expected, rel=1e-12)


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
    stream = io.StringIO()
    config, res, body = _run(krop_mutable, mapping, tmp_path, stream=stream)
    assert _stages(stream) == ["[1/1] krop_signed N=512, M in [8], 12 steps"]
    curves = res["curves"]["krop_signed"]["8x512"]
    assert set(curves) == {"cleanup", "sign", "raw", "none"}
    assert all(len(c) == 13 for c in curves.values())
    assert len({c[0] for c in curves.values()}) == 1  # step 0 is the same stored memory for every rule
    s = res["summary"]["krop_signed"]["8x512"]
    # measured (seed 0, 4 trials x 8 slots): mean rate over the steps cleanup 1.0, none 0.75, sign 0.146, raw 0.031
    assert s["cleanup"]["min"] >= 0.97  # margin: one slot of 32
    assert abs(s["none"]["mean"] - 0.75) <= 0.15 and s["none"]["last"] < s["cleanup"]["last"] - 0.2
    assert s["sign"]["mean"] <= 0.25 and s["raw"]["mean"] <= 0.1
    assert s["cleanup"]["mean"] > s["none"]["mean"] > s["sign"]["mean"] > s["raw"]["mean"]  # the baselines' order
    assert res["cleanup_meets_target"]["krop_signed"]["8x512"] == (s["cleanup"]["min"] >= config.target)
    # what remains of the other slots after one overwrite, against closed forms: exact with a correct clean-up;
    # no erase keeps it plus one stale pair, cosine sqrt((M - 1) / M) = 0.935 for M = 8 nearly orthogonal pairs;
    # the raw read removes the whole memory in expectation, cosine 0 (measured 1.0, 0.933, 0.022; sign 0.396)
    cos = res["retained_cosine"]["krop_signed"]["8x512"]
    assert cos["cleanup"] == pytest.approx(1.0, abs=1e-5)
    assert cos["none"] == pytest.approx(np.sqrt(7 / 8), abs=0.04)
    assert abs(cos["raw"]) < 0.1 and 0.2 < cos["sign"] < 0.6
    assert (tmp_path / "krop_mutable.png").exists()
    for mode in ("cleanup", "sign", "raw", "none"):
        rule = krop_mutable.RULE_NAMES[mode]
        assert f"- `{mode}`, {rule}: {krop_mutable.ERASE_DEFINITIONS[mode]}." in body
    assert "- `raw` falls below `none` at 1 of 1 settings" in body and "- `sign` falls below `none` at 1 of 1" in body
    assert f"cosine {cos['raw']:.3f} (mean over settings)" in body and "in expectation" in body


def test_mutable_report_without_the_baselines_claims_nothing(tmp_path):
    mapping = {
        "items": [4],
        "dims": [256],
        "curves": ["4x256"],
        "codebooks": ["krop_signed"],
        "erase_modes": ["cleanup", "none"],
        "steps": 4,
        "num_trials": 2,
    }
    _, res, body = _run(krop_mutable, mapping, tmp_path)
    assert "falls below" not in body and "in expectation" not in body and "`raw`" not in body
    assert set(res["retained_cosine"]["krop_signed"]["4x256"]) == {"cleanup", "none"}


@pytest.mark.parametrize(
    "module, mapping, match",
    [
        (krop_capacity, {"kinds": ["sparse"]}, "kinds must be distinct names"),
        (krop_capacity, {"dims": [100]}, "dims must be increasing powers of two"),
        (krop_capacity, {"threshold": 1.0}, r"threshold must lie in \(0, 1\)"),
        (krop_capacity, {"address_kind": "binary"}, "address_kind must be one of"),
        (krop_mutable, {"address_kind": "binary"}, "address_kind must be one of"),
        (krop_mutable, {"curves": ["8x999"]}, "curves must be 'MxN' strings"),
        (krop_mutable, {"erase_modes": ["zero"]}, "erase_modes must be names from"),
        (krop_mutable, {"items": [32, 8]}, "items must be increasing"),
        (krop_mutable, {"unknown": 1}, "unknown key"),
    ],
)
def test_bad_configs(module, mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(module.Config, mapping)


def test_ratio_interval_and_capacity_verdict_by_value():
    rng = np.random.default_rng(1)
    caps, ref = rng.uniform(5, 10, 40), rng.uniform(8, 12, 40)
    ref[:3] = 0.0  # resamples whose reference capacity is 0 are left out
    lo, hi = krop_capacity.ratio_interval(caps, ref)
    kept = sorted(c / r for c, r in zip(caps[3:], ref[3:]))
    assert lo == pytest.approx(np.percentile(kept, 16)) and hi == pytest.approx(np.percentile(kept, 84))
    assert all(np.isnan(krop_capacity.ratio_interval([1.0], [0.0])))
    rep = report_module(krop_capacity)
    config = krop_capacity.Config(kinds=("gaussian", "krop", "krop_signed"), dims=(256, 512, 1024))

    def results(krop, krop_hi):
        return {
            "dims": [256, 512, 1024],
            "capacity_over_gaussian": {"gaussian": [1.0] * 3, "krop": krop, "krop_signed": [1.0, 1.1, 0.9]},
            "capacity_over_gaussian_interval": {"gaussian": [[1, 1]] * 3, "krop": [[r - 0.05, h] for r, h in
                                                zip(krop, krop_hi)], "krop_signed": [[0.9, 1.1]] * 3},
        }  # fmt: skip

    (half,) = rep.reproduces(config, results([0.45, 0.5, 0.55], [0.5, 0.55, 0.6]))
    assert half["verdict"] == "quantitative" and "0.45 to 0.55 (median 0.50)" in half["evidence"]
    assert "below it (68% interval under 1) at 3 of 3 N" in half["evidence"] and "0.90 to 1.10" in half["evidence"]
    (ours,) = rep.reproduces(config, results([0.71, 0.8, 0.88], [0.8, 1.02, 0.95]))
    assert ours["verdict"] == "qualitative" and "median 0.80" in ours["evidence"]
    assert "at 2 of 3 N" in ours["evidence"] and "not the about one half" in ours["evidence"]
    (none,) = rep.reproduces(config, results([1.0, 1.0, 1.0], [1.1, 1.1, 1.1]))
    assert none["verdict"] == "not"


def test_mutable_verdict_by_value():
    rep = report_module(krop_mutable)
    config = krop_mutable.Config(items=(8,), dims=(256, 512), curves=("8x256",), codebooks=("krop",))

    def summary(cleanup_min, cleanup_mean, none_mean):
        per = {"cleanup": {"min": cleanup_min, "mean": cleanup_mean}, "none": {"mean": none_mean},
               "sign": {"mean": 0.2}, "raw": {"mean": 0.1}}  # fmt: skip
        return per

    res = {"summary": {"krop": {"8x256": summary(1.0, 1.0, 0.7), "8x512": summary(0.98, 0.99, 0.8)}},
           "cleanup_meets_target": {"krop": {"8x256": True, "8x512": False}}}  # fmt: skip
    (v,) = rep.reproduces(config, res)
    assert v["verdict"] == "qualitative"  # beats every rule everywhere, misses the target in one setting
    assert "in 1 of 2 settings (lowest rate 0.980)" in v["evidence"] and "in 2 of 2." in v["evidence"]
    res["cleanup_meets_target"]["krop"]["8x512"] = True
    assert rep.reproduces(config, res)[0]["verdict"] == "quantitative"
    res["summary"]["krop"]["8x512"]["none"]["mean"] = 1.0
    res["cleanup_meets_target"]["krop"]["8x512"] = False
    assert rep.reproduces(config, res)[0]["verdict"] == "not"
