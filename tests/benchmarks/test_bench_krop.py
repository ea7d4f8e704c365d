"""The KROP benchmark (benchmarks/krop.py) on tiny sizes: its correctness record (the KROP clean-up equals the
argmax over the dense codebook), the JSON it writes, the torchhd comparison (a peer test: run in CI after installing
the ``bench`` extra) and the peak-memory runs. Timings are never asserted."""

from __future__ import annotations

import json

import krop as bench
import pytest

from dammem.experiments.krop import timing as krop_timing

TINY = ["--batch", "4", "--repeats", "2", "--rounds", "1"]


def _run(tmp_path, capsys, *args):
    out = tmp_path / "krop.json"
    assert bench.main([*args, "--out", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_quick_run_records_that_krop_matches_the_dense_argmax(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1048576")
    record, printed = _run(tmp_path, capsys, "--sizes", "64", "256", *TINY, "--no-torch", "--no-rss")
    assert record["krop_matches_dense_argmax"] is True
    assert [r["N"] for r in record["rows"]] == [64, 256]
    for r in record["rows"]:
        assert r["krop_matches_dense_argmax"] is True and r["krop_signed_matches_dense_argmax"] is True
        assert r["krop_params"] == r["K"] == r["N"].bit_length() - 1 and r["dense_params"] == r["N"] ** 2
        timed = {"krop", "krop_signed", "dense", "krop_stage_by_stage", "dense_jnp_argmax", "copy"}
        assert set(r["timings"]) == timed
        assert all(t["repeats"] == 2 and 0 < t["min_ms"] <= t["median_ms"] for t in r["timings"].values())
        assert r["dense_ms"] == min(r["median_ms"]["dense"], r["median_ms"]["dense_jnp_argmax"])
        assert r["speedup_vs_dense"] == pytest.approx(r["dense_ms"] / r["median_ms"]["krop"])
        assert r["dense_build_ms"] > 0 and "rss" not in r
    assert record["environment"]["malloc_env"]["MALLOC_TOP_PAD_"] == "1048576"
    assert record["peers"] is False and "torchhd skipped (--no-torch)" in printed
    assert "equals the float64 argmax over its dense matrix (N <= 4096): yes" in printed
    assert "issue" not in printed.lower()


def test_a_wrong_cleanup_is_recorded(tmp_path, capsys, monkeypatch):
    """The correctness field comes from the comparison, not a constant: a shifted clean-up makes it False."""
    real = krop_timing._CLEANUP
    monkeypatch.setattr(krop_timing, "_CLEANUP", lambda cb, v: (real(cb, v) + 1) % cb.size)
    record, printed = _run(tmp_path, capsys, "--sizes", "64", *TINY, "--no-torch", "--no-rss")
    assert record["krop_matches_dense_argmax"] is False and record["rows"][0]["krop_matches_dense_argmax"] is False
    assert "(N <= 4096): NO" in printed


@pytest.mark.slow  # a second end-to-end run of the script; the default suite runs the quick one
def test_beyond_dense_max_there_is_no_dense_column(tmp_path, capsys):
    record, _ = _run(tmp_path, capsys, "--sizes", "128", *TINY, "--dense-max", "64", "--no-torch", "--no-rss")
    r = record["rows"][0]
    assert "dense" not in r["timings"] and "dense_ms" not in r and r["krop_matches_dense_argmax"] is True


@pytest.mark.slow  # two 4096-wide processes; the harness's own peak-memory measure is pinned by default
def test_peak_memory_runs(tmp_path, capsys):
    record, printed = _run(tmp_path, capsys, "--sizes", "4096", *TINY, "--no-torch")
    rss = record["rows"][0]["rss"]
    assert set(rss) == {"krop", "dense"} and all(v["result"] is None for v in rss.values())
    # the dense process holds the (4096, 4096) float32 codebook (64 MiB) that the KROP one does not
    assert rss["dense"]["rss_before_bytes"] > rss["krop"]["rss_before_bytes"] + 48 * 2**20
    assert "peak RSS MB KROP / dense" in printed


@pytest.mark.peers
def test_torchhd_comparison(tmp_path, capsys, require_peers):
    require_peers("torch", "torchhd")
    record, printed = _run(tmp_path, capsys, "--sizes", "256", *TINY, "--no-rss")
    r = record["rows"][0]
    assert record["peers"] is True and record["environment"]["versions"]["torch-hd"]
    assert r["torchhd_matches_cosine_argmax"] == 1.0  # torchhd picks the float64 cosine argmax
    assert 0.0 <= r["torchhd_agrees_with_dense"] <= 1.0  # inner product vs cosine: may differ on Gaussian rows
    assert r["torchhd_cleanup_loop_queries_timed"] == 4
    assert {"torchhd_cleanup_loop", "torchhd_batched"} <= set(r["timings"])
    assert r["speedup_vs_torchhd_batched"] == pytest.approx(r["median_ms"]["torchhd_batched"] / r["median_ms"]["krop"])
    assert r["krop_matches_dense_argmax"] is True and "torchhd 5." in printed


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "100", "--out", str(tmp_path / "x.json")])
