"""The DrDAM benchmark (benchmarks/drdam.py) on tiny sizes: the record it writes, the regenerated-vs-stored check and
a peak-memory run. Timings are never asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import drdam as bench  # noqa: E402

TINY = ["--dim", "32", "--memories", "12", "--queries", "3", "--features", "512", "--steps", "4"]
TINY += ["--slow-steps", "4", "--repeats", "2", "--encode-repeats", "1"]


@pytest.mark.slow
def test_quick_run_records_every_case(tmp_path, capsys):
    out = tmp_path / "drdam.json"
    assert bench.main([*TINY, "--no-rss", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    row = record["row"]
    cases = {"materialized", "gaussian", "structured", "mrdam"}
    assert set(row["step_timings"]) == cases and set(row["encode_timings"]) == cases - {"mrdam"}
    assert all(t["repeats"] == 2 and 0 < t["min_ms"] <= t["median_ms"] for t in row["step_timings"].values())
    assert row["steps_per_call"] == {c: 4 for c in cases}
    assert row["speedup_per_step_vs_materialized"]["materialized"] == 1.0
    # regenerated Gaussian rows are the stored ones: the same end states
    assert row["gaussian_vs_materialized_max_abs_diff"] < 1e-5
    assert row["parameters"]["materialized"] == {"T": 1024, "stored_feature_numbers": 512 * 32}
    assert row["parameters"]["gaussian"]["stored_feature_numbers"] == 2
    assert row["parameters"]["mrdam"] == {"memories": 12 * 32}
    printed = capsys.readouterr().out
    assert "| structured | 4 |" in printed and "gaussian (regenerated) vs materialized end states" in printed


@pytest.mark.slow
def test_peak_memory_runs(tmp_path):
    out = tmp_path / "drdam.json"
    assert bench.main([*TINY, "--out", str(out)]) == 0
    row = json.loads(out.read_text())["row"]
    for case in ("materialized", "gaussian", "structured"):
        rss = row["rss"][case]
        assert rss["peak_rss_bytes"] > 0 and isinstance(rss["result"], float)
    assert row["peak_increase_over_materialized"]["materialized"] == 1.0


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--features", "0"])
    assert "--features must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--queries", "20", "--memories", "10"])
    assert "--queries must be <= --memories = 10, got 20" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--cases", "structured,dense"])
    err = capsys.readouterr().err
    assert "--cases must name cases from materialized, gaussian, structured, mrdam, got dense" in err
    with pytest.raises(SystemExit):
        bench.main(["--encode-repeats", "-1"])
    assert "--encode-repeats must be >= 0, got -1" in capsys.readouterr().err


@pytest.mark.slow
def test_chosen_cases_run_beside_the_materialized_baseline(tmp_path, capsys):
    out = tmp_path / "drdam.json"
    args = [*TINY[:-2], "--encode-repeats", "0", "--cases", "structured", "--no-rss", "--out", str(out)]
    assert bench.main(args) == 0
    row = json.loads(out.read_text())["row"]
    assert row["cases"] == ["materialized", "structured"]
    assert set(row["step_timings"]) == {"materialized", "structured"} and row["encode_timings"] == {}
    assert "gaussian_vs_materialized_max_abs_diff" not in row
    assert "| structured | 4 |" in capsys.readouterr().out
