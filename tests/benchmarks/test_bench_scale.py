"""The scale benchmark (benchmarks/scale.py) on tiny sizes: its cases in this process (one device), the whole script
with 8 host devices in subprocesses (per-device memory about 1/8 of the single-device program's), and the guards
of the search for the largest K. Timings are never asserted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import scale as bench


def test_scale_case_records_equal_results_and_memory():
    record = bench.scale_case(memories=64, dim=8, queries=4, beta=2.0, steps=2, repeats=2, seed=0, single=True)()
    assert set(record["timings"]) == {"sharded_update", "single_update", "sharded_retrieve", "single_retrieve"}
    assert all(t["repeats"] == 2 and 0 < t["min_ms"] <= t["median_ms"] for t in record["timings"].values())
    assert record["max_abs_diff"]["update"] < 1e-5 and record["max_abs_diff"]["retrieve"] < 1e-5
    assert record["memory_bytes"] == 64 * 8 * 4 and record["memory_set_gathered"] is False
    for stats in record["memory_per_device"].values():  # one device holds everything here
        assert stats["argument_size_in_bytes"] >= 64 * 8 * 4
        assert (
            stats["total_bytes"]
            == stats["argument_size_in_bytes"] + stats["output_size_in_bytes"] + stats["temp_size_in_bytes"]
        )


def test_largest_case_runs_one_step():
    record = bench.largest_case(memories=32, dim=8, queries=2, beta=1.0, seed=0)()
    assert record["finite"] is True and record["memory_per_device"]["argument_size_in_bytes"] >= 32 * 8 * 4


def test_script_with_8_devices(tmp_path, capsys):
    """One subprocess with 8 host devices: the sharded programs hold 1/8 of the memory set per device."""
    out = tmp_path / "scale.json"
    args = ["--memories", "4096", "--dim", "64", "--queries", "8", "--repeats", "2", "--no-search"]
    assert bench.main([*args, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    main = record["main"]
    assert main["devices"] == 8 and main["memory_set_gathered"] is False
    assert main["max_abs_diff"]["update"] < 1e-5 and main["max_abs_diff"]["retrieve"] < 1e-5
    memory = main["memory_per_device"]
    full = 4096 * 64 * 4
    for kind in ("update", "retrieve"):
        assert full / 8 <= memory[f"sharded_{kind}"]["argument_size_in_bytes"] < full / 8 + 8192
        assert memory[f"single_{kind}"]["argument_size_in_bytes"] >= full
    printed = capsys.readouterr().out
    assert (
        "per-device memory sharded/single" in printed
        and "memory set gathered in a compiled sharded program: no" in printed
    )
    assert "search" not in record


@pytest.mark.slow  # one 8-device process and 4 launched processes of 2 devices
def test_script_with_4_processes(tmp_path, capsys):
    """The multi-process case: each of 4 processes generates a quarter of the memories; its results equal the
    single-process run's, and every rank reports its peak memory."""
    out = tmp_path / "scale.json"
    args = ["--memories", "4096", "--dim", "64", "--queries", "8", "--repeats", "2", "--no-search", "--no-single"]
    assert bench.main([*args, "--processes", "4", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    mp = record["multiprocess"]
    assert (mp["processes"], mp["devices_per_process"], [r["rank"] for r in mp["ranks"]]) == (4, 2, [0, 1, 2, 3])
    assert all(r["processes"] == 4 and r["devices"] == 8 for r in mp["ranks"])
    assert mp["max_abs_diff"]["update"] < 1e-6 and mp["max_abs_diff"]["retrieve"] < 1e-6
    full = 4096 * 64 * 4
    for r in mp["ranks"]:  # the same per-device program as the single process's: 1/8 of the memories per device
        assert full / 8 <= r["memory_per_device"]["sharded_update"]["argument_size_in_bytes"] < full / 8 + 8192
        assert r["max_rss_bytes"] > 0
    assert mp["peak_rss_ratio"] == max(r["max_rss_bytes"] for r in mp["ranks"]) / record["main"]["max_rss_bytes"]
    assert "4 processes x 2 devices" in capsys.readouterr().out


def test_processes_must_divide_devices(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--processes", "3", "--no-search"])
    assert "--processes must be >= 1 and divide --devices = 8, got 3" in capsys.readouterr().err


@pytest.mark.slow  # two 8-device processes; the search's stops are pinned by default (monkeypatched, watchdog)
def test_search_doubles_until_the_cap():
    """Two subprocesses with 8 host devices (K = 1024, 2048), then the cap."""
    result = bench.search_largest(_args(memories=1024, max_memories=2048))
    assert [a["memories"] for a in result["attempts"]] == [1024, 2048]
    assert result["largest_memories"] == 2048 and result["stopped_by"] == "cap"
    assert all(a["ok"] and a["finite"] for a in result["attempts"])


def test_search_waits_for_free_memory(monkeypatch):
    monkeypatch.setattr(bench, "mem_available_bytes", lambda: 1 << 20)  # 1 MiB free: nothing may start
    result = bench.search_largest(_args(memories=1024, max_memories=4096, reserve_gib=0.5))
    assert result["attempts"] == [] and result["largest_memories"] is None
    assert result["stopped_by"].startswith("MemAvailable")


def test_search_stops_at_the_first_failure(monkeypatch):
    def failing(case, kwargs, **_):
        raise RuntimeError(f"run_case: {case} failed (exit -9)")

    monkeypatch.setattr(bench.H, "run_case", failing)
    result = bench.search_largest(_args(memories=1024, max_memories=1 << 20))
    assert result["stopped_by"] == "failure" and result["largest_memories"] is None
    assert len(result["attempts"]) == 1 and "exit -9" in result["attempts"][0]["error"]


def test_search_stops_when_the_watchdog_kills():
    """A measuring process above --max-rss-gib (here 50 MiB: JAX alone needs more) is killed; the search stops."""
    result = bench.search_largest(_args(memories=1024, max_memories=4096, max_rss_gib=0.05))
    assert result["stopped_by"] == "killed above 0.05 GiB resident" and result["largest_memories"] is None
    assert len(result["attempts"]) == 1 and result["attempts"][0]["ok"] is False


def test_watchdog_kills_only_children_above_the_limit():
    grow = "import time; x = bytearray({n} * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(3)"
    with bench.RssWatchdog(300 * 2**20) as watchdog:
        big = subprocess.run([sys.executable, "-c", grow.format(n=600)], timeout=60)
        small = subprocess.run([sys.executable, "-c", grow.format(n=20)], timeout=60)
    assert big.returncode == -signal.SIGKILL and small.returncode == 0
    assert len(watchdog.killed) == 1 and watchdog.killed[0] > 300 * 2**20


@pytest.mark.parametrize("flag", ["--memories", "--queries"])
def test_bad_arguments_are_refused(flag, capsys):
    with pytest.raises(SystemExit):
        bench.main([flag, "0", "--no-search", "--no-single"])
    assert f"{flag} must be >= 1" in capsys.readouterr().err


def _args(**overrides):
    import argparse

    values = {"memories": 1024, "dim": 16, "queries": 4, "beta": 2.0, "seed": 0, "devices": 8, "max_memories": 2048,
              "max_gib": 8.0, "max_rss_gib": 8.0, "reserve_gib": 0.0, "search_timeout": 600.0}  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)
