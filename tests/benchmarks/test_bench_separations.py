"""The separation benchmark (benchmarks/separations.py) on tiny inputs: the JSON it writes, the comparison with the
``entmax`` package (a peer test: run in CI after installing the ``bench`` extra), the peak-memory case.

Timings are reported by the benchmark, never asserted here.
"""

from __future__ import annotations

import json
import sys

import _harness as H
import pytest
import separations as bench

JAX_NAMES = {m.name for m in bench.JAX_METHODS}
PEER_NAMES = set(bench.PEER_METHODS)


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    return json.loads(out.read_text()), printed


def _check_common(record, printed, sizes):
    assert record["benchmark"] == "separations"
    assert record["config"]["sizes"] == sizes and record["config"]["quick"] is True
    assert record["config"]["repeats"] == 2 and record["config"]["rss"] is False
    assert "separate phases" in record["config"]["timing"]
    env = record["environment"]
    assert env["cpu_count"] >= 1 and env["cpu_model"] and env["versions"]["jax"] and env["jax_backend"]
    assert set(record["results"]) == {str(n) for n in sizes}
    for res in record["results"].values():
        assert JAX_NAMES <= set(res)
        for name in JAX_NAMES:
            r = res[name]
            assert r["repeats"] == 2 and 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["compile_s"] > 0
            assert r["ratio_to_jax_softmax"] == pytest.approx(r["median_ms"] / res[bench.JAX_BASELINE]["median_ms"])
        assert res[bench.JAX_BASELINE]["ratio_to_jax_softmax"] == 1.0
    assert len(record["targets"]) == len(bench.TARGETS) * len(sizes)
    assert "issue" not in printed.lower() and "Targets (speedups on median" in printed
    assert "Relative to jax.nn.softmax in the same run" in printed
    table = bench.softmax_table_rows(record["results"])
    assert [row[0] for row in table] == [str(n) for n in sizes]
    for row, res in zip(table, record["results"].values()):
        sparse, base = res["dammem.sparsemax"], res[bench.JAX_BASELINE]
        assert f"{sparse['min_ms'] / base['min_ms']:.2f}x" in row[2] and row[2] in printed


def test_evaluate_targets_by_value():
    res = {"256": {"dammem.sparsemax": {"median_ms": 2.0, "min_ms": 0.6}, "entmax.sparsemax": {"median_ms": 30.0},
                   bench.JAX_BASELINE: {"median_ms": 0.4, "min_ms": 0.4}}}  # fmt: skip
    rows = {r["target"]: r for r in bench.evaluate_targets(res)}
    speed = rows["sparsemax >= 10x entmax.sparsemax"]
    assert speed["value"] == pytest.approx(15.0) and speed["pass"] is True
    ratio = rows["sparsemax <= 2x jax.nn.softmax (min)"]
    assert ratio["value"] == pytest.approx(1.5) and ratio["pass"] is True  # ratios use the minimum times
    assert rows["entmax15 >= 10x entmax.entmax15"]["pass"] is None  # neither side measured


@pytest.mark.peers
def test_quick_run_with_the_entmax_package(tmp_path, capsys, require_peers):
    require_peers("torch", "entmax")
    record, printed = _run(tmp_path, capsys, "--sizes", "128", "256")
    _check_common(record, printed, [128, 256])
    assert record["peers"] is True and record["environment"]["versions"]["entmax"]
    for res in record["results"].values():
        assert PEER_NAMES <= set(res)
        for name, peer in [("dammem.sparsemax", "entmax.sparsemax"), ("dammem.entmax15", "entmax.entmax15"),
                           ("dammem.entmax(1.5, traced)", "entmax.entmax_bisect(1.5)")]:  # fmt: skip
            r = res[name]
            assert r["peer"] == peer
            assert r["speedup_vs_peer"] == pytest.approx(res[peer]["median_ms"] / r["median_ms"])
            # the same inputs give the same outputs as the peer (forward p and backward dz)
            assert max(r["max_abs_diff_vs_peer"]) < 1e-5, name
    assert all(t["pass"] in (True, False) for t in record["targets"])
    assert "entmax.entmax_bisect(1.5)" in printed


def test_quick_run_without_peers(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "entmax", None)  # `import entmax` now raises ImportError
    record, printed = _run(tmp_path, capsys)
    _check_common(record, printed, [256])
    assert "skipping the peer columns" in printed and record["peers"] is False
    res = record["results"]["256"]
    assert not PEER_NAMES & set(res) and "speedup_vs_peer" not in res["dammem.sparsemax"]
    peer_targets = [t for t in record["targets"] if "entmax." in t["target"] or "bisect" in t["target"]]
    assert peer_targets and all(t["pass"] is None for t in peer_targets)
    assert all(t["pass"] in (True, False) for t in record["targets"] if "jax.nn.softmax" in t["target"])


@pytest.mark.slow  # the harness's peak-memory measure in its own process is pinned by tests/benchmarks/test_harness.py
def test_peak_memory_case_in_its_own_process():
    out = H.run_case("separations:rss_case", {"method": "dammem.sparsemax", "n": 256, "total": 2**16, "seed": 0})
    assert out["result"] is None and 2**20 < out["peak_rss_bytes"] < 8 * 2**30


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--sizes", "300", "--out", str(tmp_path / "x.json")])  # 300 does not divide 2^11
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "2", "--rounds", "3", "--out", str(tmp_path / "x.json")])
