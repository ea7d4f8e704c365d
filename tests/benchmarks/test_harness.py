"""The benchmark harness (benchmarks/_harness.py): timing summary by value, the machine record, one case in its own
process (peak RSS), and the 8-host-device runner. Tiny sizes; no timing is asserted."""

from __future__ import annotations

import json
import os

import _harness as H
import numpy as np
import pytest

from dammem import _timing

MIB = 2**20


def allocating_case(mib: int, setup_mib: int):
    """A case for ``run_case``: the set-up fills and frees a ``setup_mib`` MiB buffer (a peak before the call that
    must not count), the measured call fills a fresh ``mib`` MiB buffer and returns its sum."""
    np.ones(setup_mib * MIB // 8).sum()

    def call():
        buf = np.ones(mib * MIB // 8)  # float64: every page written
        return float(buf.sum())

    return call


def failing_case():
    raise RuntimeError("set-up broke on purpose")


def test_harness_times_with_the_package_loop(monkeypatch):
    assert H.time_interleaved is _timing.time_interleaved and H.summarize is _timing.summarize
    assert H.MIN_REPEATS >= 15
    ticks = iter(range(100))
    monkeypatch.setattr(_timing.time, "perf_counter", lambda: 0.001 * next(ticks) ** 2)
    times = H.time_interleaved([{"a": lambda: None}], repeats=3, warmup=0)
    # clock reads 0, 1, 4, 9, 16, 25 ms: calls take 1, 5, 9 ms
    assert times["a"] == pytest.approx([0.001, 0.005, 0.009])
    assert H.summarize(times["a"]) == pytest.approx({"min_ms": 1.0, "median_ms": 5.0, "max_ms": 9.0, "repeats": 3})


def test_environment_records_the_machine(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    env = H.environment(("numpy", "surely-not-installed-dist"))
    assert env["cpu_model"] == _timing.cpu_model() and env["cpu_count"] == os.cpu_count()
    assert env["malloc_env"]["MALLOC_ARENA_MAX"] == "2"
    assert env["versions"]["numpy"] == np.__version__ and env["versions"]["surely-not-installed-dist"] is None
    assert env["jax_backend"] and env["jax_devices"]
    line = H.describe(env)
    assert env["cpu_model"] in line and "MALLOC_ARENA_MAX=2" in line


def test_write_json(tmp_path):
    path = H.write_json(tmp_path / "a" / "b.json", {"x": 1})
    record = json.loads(path.read_text())
    assert record["x"] == 1 and "load_average_after" in record


def test_run_case_measures_the_peak_of_the_call_in_its_own_process():
    out = H.run_case("tests.benchmarks.test_harness:allocating_case", {"mib": 96, "setup_mib": 256})
    assert out["result"] == 96 * MIB // 8  # the case ran with its kwargs
    if out["peak_is_call_only"]:  # Linux: the peak counter was reset just before the call
        assert 90 * MIB <= out["peak_increase_bytes"] <= 96 * MIB + 48 * MIB
        assert out["peak_rss_bytes"] == out["rss_before_bytes"] + out["peak_increase_bytes"]
    assert out["peak_rss_bytes"] >= 96 * MIB and out["max_rss_bytes"] >= 96 * MIB
    assert out["peak_rss_bytes"] < 8 * 2**30  # plausible for a small Python process


@pytest.mark.slow  # the scale script's 8-device run (tests/benchmarks/test_bench_scale.py) checks its device count
def test_run_case_sees_eight_host_devices(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # replaced, not duplicated
    out = H.run_case("_harness:device_count_case", host_devices=8)
    assert out["result"] == {"platform": "cpu", "device_count": 8}


def test_run_case_errors():
    with pytest.raises(RuntimeError, match="set-up broke on purpose"):
        H.run_case("tests.benchmarks.test_harness:failing_case")
    with pytest.raises(ValueError, match="run_case: case must be 'module:function'"):
        H.run_case("no_colon")
    with pytest.raises(ValueError, match="run_case: host_devices must be None or an int >= 1"):
        H.run_case("_harness:device_count_case", host_devices=0)


def test_print_table_and_target_status(capsys):
    H.print_table(["N", "ms"], [[64, "0.10"], [128, "0.25"]])
    assert capsys.readouterr().out == "\n| N | ms |\n|---|---|\n| 64 | 0.10 |\n| 128 | 0.25 |\n"
    assert [H.target_status({"pass": p}) for p in (True, False, None)] == ["PASS", "FAIL", "skip"]
