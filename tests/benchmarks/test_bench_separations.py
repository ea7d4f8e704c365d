"""Smoke tests of the separation benchmark: a tiny run writes the documented JSON, with and without the peers.

No timing assertions here: timings are reported by the benchmark, never tested.
"""

import json
import sys

import pytest

from dammem.benchmarks import separations as bench

JAX_NAMES = {m.name for m in bench.JAX_METHODS}
PEER_NAMES = {"torch.softmax", "entmax.sparsemax", "entmax.entmax15", "entmax.entmax_bisect(1.5)"}


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    return json.loads(out.read_text()), printed


def _check_common(record, sizes):
    assert record["benchmark"] == "separations"
    assert {"config", "environment", "load_average", "results", "targets", "all_targets_pass"} <= set(record)
    assert record["config"]["sizes"] == sizes and record["config"]["quick"] is True
    env = record["environment"]
    assert env["cpu_count"] >= 1 and env["jax"] and env["jax_backend"] == "cpu"
    assert set(record["results"]) == {str(n) for n in sizes}
    for res in record["results"].values():
        assert JAX_NAMES <= set(res)
        for name in JAX_NAMES:
            r = res[name]
            assert r["ms"] > 0 and r["compile_s"] > 0 and r["ratio_to_jax_softmax"] > 0
        assert res[bench.JAX_BASELINE]["ratio_to_jax_softmax"] == 1.0
    assert len(record["targets"]) == len(bench.TARGETS) * len(sizes)


def test_quick_run_with_peers(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("entmax")
    record, printed = _run(tmp_path, capsys, "--sizes", "128", "256")
    _check_common(record, [128, 256])
    assert record["environment"]["peers"] is True and record["environment"]["entmax"]
    for res in record["results"].values():
        assert PEER_NAMES <= set(res)
        sp = res["dammem.sparsemax"]
        assert sp["peer"] == "entmax.sparsemax" and sp["speedup_vs_peer"] > 0
        # the same inputs give the same outputs as the peer (forward p and backward dz)
        assert max(sp["max_abs_diff_vs_peer"]) < 1e-5
        assert max(res["dammem.entmax(1.5, traced)"]["max_abs_diff_vs_peer"]) < 1e-5
    assert all(t["pass"] in (True, False) for t in record["targets"])
    assert "Targets (issue #2)" in printed and "entmax.entmax_bisect(1.5)" in printed


def test_quick_run_without_peers(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "entmax", None)  # `import entmax` now raises ImportError
    record, printed = _run(tmp_path, capsys)
    _check_common(record, [256])
    assert "skipping the peer columns" in printed
    assert record["environment"]["peers"] is False
    res = record["results"]["256"]
    assert not PEER_NAMES & set(res) and "speedup_vs_peer" not in res["dammem.sparsemax"]
    peer_targets = [t for t in record["targets"] if "entmax." in t["target"] or "bisect" in t["target"]]
    assert peer_targets and all(t["pass"] is None for t in peer_targets)
    assert all(t["pass"] in (True, False) for t in record["targets"] if "jax.nn.softmax" in t["target"])


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--sizes", "300", "--out", str(tmp_path / "x.json")])  # 300 does not divide 2^11


def test_cli_dispatches_to_the_benchmark(capsys):
    from dammem import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "separations", "--help"])
    assert exc.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_malloc_env_records_only_the_allocator_variables(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4000000000")
    monkeypatch.setenv("NOT_MALLOC_SETTING", "1")
    env = bench.malloc_env()
    assert env["MALLOC_TRIM_THRESHOLD_"] == "4000000000"
    assert all(k.startswith("MALLOC_") for k in env)
