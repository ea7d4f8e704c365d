"""The KROP timing experiment (Liu et al. 2025, "Comparing clean-up runtime") on tiny sweeps: its shared codebooks and
clean-up calls, the correctness check against a float64 dense argmax, storage, config and report. Timings are
never asserted, only that they are recorded."""

from __future__ import annotations

import io
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem import _timing
from dammem.experiments._base import (
    ConfigError,
    Progress,
    config_from_mapping,
    load_document,
    packaged_configs,
    report_module,
    to_jsonable,
)
from dammem.experiments.krop import timing as krop_timing


def _run(mapping, tmp_path, seed=0, stream=None):
    config = config_from_mapping(krop_timing.Config, mapping)
    progress = Progress("lines", stream=stream) if stream is not None else Progress(False)
    results = to_jsonable(krop_timing.run(config, jax.random.key(seed), progress))
    body = report_module(krop_timing).report(config, results, tmp_path)
    return config, results, body


def test_yaml_config_is_valid_and_matches_defaults():
    doc = load_document(packaged_configs()["krop_timing"])
    assert doc["experiment"] == "krop_timing"
    config = config_from_mapping(krop_timing.Config, doc["config"])
    assert config == krop_timing.Config() and config.repeats >= 15


def test_timing_small(tmp_path):
    mapping = {"sizes": [64, 1024], "batches": [3], "dense_max_size": 1024, "repeats": 2, "warmup": 1}
    stream = io.StringIO()
    _, res, body = _run(mapping, tmp_path, stream=stream)
    stages = [re.sub(r", \d+\.\d s$", "", line) for line in stream.getvalue().splitlines()]
    assert stages == ["[1/2] N=64, batches [3]", "[2/2] N=1024, batches [3]"]
    for method in krop_timing.METHODS:
        med, lo, hi = (res[k][method]["3"] for k in ("time_ms", "min_time_ms", "max_time_ms"))
        assert all(math.isfinite(m) and 0 < a <= m <= z for m, a, z in zip(med, lo, hi)), method
    assert res["storage"] == {
        "krop": [6, 10],
        "krop_signed": [6 + 64, 10 + 1024],
        "unitary_shift": [64, 1024],
        "dense": [64**2, 1024**2],
    }
    assert res["matches_dense_argmax"] == {m: [True, True] for m in ("krop", "krop_signed", "unitary_shift")}
    assert all(b > 0 for b in res["dense_build_ms"])
    for m in ("krop", "krop_signed", "unitary_shift"):
        expected = [d / t for d, t in zip(res["time_ms"]["dense"]["3"], res["time_ms"][m]["3"])]
        assert res["speedup_over_dense"][m]["3"] == pytest.approx(expected)
    assert res["machine"]["cpu_model"] == _timing.cpu_model() and "load_average_after" in res["machine"]
    assert (tmp_path / "krop_timing.png").exists() and "| 1024 |" in body
    assert "median (minimum) of 2 interleaved calls" in body
    assert "(N <= 4096): krop: yes, krop_signed: yes, unitary_shift: yes." in body


def test_timing_without_dense_beyond_dense_max(tmp_path):
    mapping = {"sizes": [32, 128], "batches": [1], "methods": ["krop", "dense"], "dense_max_size": 32,
               "repeats": 1, "warmup": 1}  # fmt: skip
    _, res, body = _run(mapping, tmp_path)
    assert res["time_ms"]["dense"]["1"][1] is None and res["min_time_ms"]["dense"]["1"][1] is None
    assert res["dense_build_ms"][1] is None and res["storage"]["dense"] == [1024, None]
    assert res["speedup_over_dense"]["krop"]["1"][1] is None
    assert "| 128 |" in body


def test_no_check_beyond_the_check_size(tmp_path, monkeypatch):
    monkeypatch.setattr(krop_timing, "CHECK_MAX_SIZE", 16)
    _, res, body = _run({"sizes": [16, 32], "batches": [2], "methods": ["krop"], "repeats": 1}, tmp_path)
    assert res["matches_dense_argmax"] == {"krop": [True, None]}


def test_shared_codebooks_and_calls_agree_with_a_float64_argmax():
    key = jax.random.key(3)
    codebooks, build_ms = krop_timing.build_codebooks(256, krop_timing.METHODS, key, dense_max_size=256)
    assert set(codebooks) == set(krop_timing.METHODS) and build_ms > 0
    assert codebooks["dense"].kind == "gaussian" and codebooks["dense"].storage_size == 256**2
    x = jax.random.normal(jax.random.key(4), (5, 256))
    calls = krop_timing.cleanup_calls(codebooks, x)
    for method, cb in codebooks.items():
        reference = np.argmax(np.asarray(x, np.float64) @ np.asarray(cb.matrix(), np.float64).T, axis=-1)
        np.testing.assert_array_equal(np.asarray(calls[method]()), reference)
        assert krop_timing.matches_dense_argmax(cb, x)
    # the codewords themselves are cleaned up to their own indices
    idx = jnp.array([0, 7, 255])
    np.testing.assert_array_equal(krop_timing.cleanup_calls(codebooks, codebooks["krop"].rows(idx))["krop"](), idx)
    small, none = krop_timing.build_codebooks(512, ("krop", "dense"), key, dense_max_size=256)
    assert set(small) == {"krop"} and none is None
    with pytest.raises(ValueError, match="build_codebooks: methods must be names from"):
        krop_timing.build_codebooks(16, ("fft",), key, dense_max_size=16)


def test_the_check_can_fail(monkeypatch, tmp_path):
    """matches_dense_argmax compares, it does not assume: a clean-up shifted by one row is caught, and reported."""
    codebooks, _ = krop_timing.build_codebooks(64, ("krop",), jax.random.key(0), dense_max_size=64)
    x = jax.random.normal(jax.random.key(1), (4, 64))
    real = krop_timing._CLEANUP
    monkeypatch.setattr(krop_timing, "_CLEANUP", lambda cb, v: (real(cb, v) + 1) % cb.size)
    assert not krop_timing.matches_dense_argmax(codebooks["krop"], x)
    _, res, body = _run({"sizes": [16, 32], "batches": [2], "methods": ["krop"], "repeats": 1}, tmp_path)
    assert res["matches_dense_argmax"] == {"krop": [False, False]} and "krop: NO" in body


@pytest.mark.parametrize(
    "mapping, match",
    [
        ({"sizes": [16, 12]}, "sizes must be increasing powers of two"),
        ({"methods": ["fft"]}, "methods must be distinct names from"),
        ({"methods": ["krop", "krop"]}, "methods must be distinct names from"),
        ({"warmup": 0}, "warmup must be >= 1"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"batches": [0]}, "batches must be positive integers"),
        ({"dense_max_size": 1}, "dense_max_size must be >= 2"),
    ],
)
def test_bad_configs(mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(krop_timing.Config, mapping)


def _synthetic(sizes, batches, overhead=0.05):
    """Timing results where each method's median is an exact law plus a constant call overhead (ms)."""
    n = np.asarray(sizes, dtype=float)
    laws = {"krop": 1e-6 * n * np.log2(n), "dense": 1e-7 * n**2}
    times = {m: {str(b): (overhead + b * law).tolist() for b in batches} for m, law in laws.items()}
    low = {m: {b: [0.9 * t for t in ts] for b, ts in per.items()} for m, per in times.items()}
    high = {m: {b: [1.1 * t for t in ts] for b, ts in per.items()} for m, per in times.items()}
    speed = {"krop": {str(b): [d / k for d, k in zip(times["dense"][str(b)], times["krop"][str(b)])] for b in batches}}
    return {
        "sizes": list(sizes), "batches": list(batches), "time_ms": times, "min_time_ms": low, "max_time_ms": high,
        "dense_build_ms": [1e-6 * s**2 for s in sizes], "storage": {m: [1] * len(sizes) for m in laws},
        "speedup_over_dense": speed, "matches_dense_argmax": {"krop": [True] * len(sizes)}, "backend": "cpu",
        "machine": {"cpu_model": "x", "cpu_count": 2, "load_average": None, "load_average_after": None,
                    "malloc_env": {}},
    }  # fmt: skip


def test_report_helpers_guides_and_speedups_by_value(tmp_path):
    """Overhead floor, work-dominated points, fitted guides, slopes, median speedups and the verdict, against values
    computed here from the synthetic laws."""
    rep = report_module(krop_timing)
    sizes, batches = [2**k for k in range(4, 13)], [1, 256]
    res = _synthetic(sizes, batches)
    floor = min(t for per in res["time_ms"].values() for ts in per.values() for t in ts)
    assert rep.overhead_ms(res) == pytest.approx(floor) and floor == pytest.approx(
        0.05 + 1e-7 * 16**2
    )  # dense, N = 16, batch 1
    mask = rep.work_dominated(res["time_ms"]["krop"]["256"], floor)
    expected = [t >= rep.WORK_FACTOR * floor for t in res["time_ms"]["krop"]["256"]]
    assert mask.tolist() == expected and 0 < sum(expected) < len(sizes)
    # the guide through exact laws recovers the constant; through points with an offset it is their geometric mean
    n = np.asarray(sizes, float)
    assert rep.fit_guide(sizes, 3e-4 * n * np.log2(n), "nlogn") == pytest.approx(3e-4, rel=1e-12)
    assert rep.fit_guide(sizes, 2e-6 * n**2, "n2") == pytest.approx(2e-6, rel=1e-12)
    t = [1.0, 8.0, 16.0]  # time / N^2 = 0.25, 0.5, 0.25: the geometric mean, not the median or the mean
    assert rep.fit_guide([2, 4, 8], t, "n2") == pytest.approx((0.25 * 0.5 * 0.25) ** (1 / 3), rel=1e-12)
    assert rep.fit_guide([], [], "n2") is None
    assert rep.loglog_slope(sizes, 5.0 * n**1.5) == pytest.approx(1.5, rel=1e-10)
    assert rep.loglog_slope([8], [1.0]) is None
    body = rep.report(krop_timing.Config(sizes=tuple(sizes), batches=tuple(batches), methods=("krop", "dense")), res,
                      tmp_path, figures=False)  # fmt: skip
    assert not list(tmp_path.glob("*.png"))
    # the headline speedup at batch 256 is the median over the sizes where both times are work-dominated
    both = rep.work_dominated(res["time_ms"]["dense"]["256"], floor) & mask
    ratios = [r for r, ok in zip(res["speedup_over_dense"]["krop"]["256"], both) if ok]
    assert f"dense / krop time is {np.median(ratios):.3g} (median over the {len(ratios)} work-dominated" in body
    assert f"from {min(ratios):.3g} to {max(ratios):.3g})" in body
    # batch 1: every time is within 10x of the floor here, so it says the times measure the call overhead
    assert "- krop, batch 1: at no N are both its and the dense clean-up's times at least 10x" in body
    wn = [s for s, ok in zip(sizes, mask) if ok]
    slope = np.polyfit(np.log(wn), np.log([t for t, ok in zip(res["time_ms"]["krop"]["256"], mask) if ok]), 1)[0]
    assert f"- krop, batch 256: over the {len(wn)} work-dominated N = {wn[0]}..{wn[-1]} the time grows like " \
           f"N^{slope:.2f}" in body  # fmt: skip
    assert body.count("*") >= sum(1 for ts in res["time_ms"]["krop"]["1"] if ts < 10 * floor)
    (verdict,) = rep.reproduces(krop_timing.Config(), res)
    dense_slope = rep.loglog_slope(*rep._work_points(res, "dense", 256, floor))
    fits = 0.8 <= slope <= 1.4 and dense_slope is not None and 1.6 <= dense_slope <= 2.4
    assert verdict["verdict"] == ("quantitative" if fits else "qualitative")
    assert f"krop N^{slope:.2f}" in verdict["evidence"]
