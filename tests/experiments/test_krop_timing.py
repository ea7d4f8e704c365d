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
