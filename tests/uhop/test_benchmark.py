"""The U-Hop Stage I benchmark (benchmarks/uhop.py) on tiny inputs: the JSON it writes, the agreement of the
PyTorch peers with dammem (a peer test, run where torch is installed), the peak-memory case. Timings are reported by
the benchmark, never asserted here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import uhop as bench  # noqa: E402  (benchmarks/uhop.py)

from dammem import uhop  # noqa: E402


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def _check_common(record):
    assert record["benchmark"] == "uhop" and record["config"]["quick"] is True
    assert record["config"]["k"] == 64 and record["config"]["steps"] == 2 and record["config"]["repeats"] == 2
    r = record["results"]["dammem.fit_kernel"]
    assert r["repeats"] == 2 and 0 < r["min_ms"] <= r["median_ms"] and r["compile_s"] > 0
    assert r["steps_per_s"] == pytest.approx(2 / (r["median_ms"] / 1e3)) and r["dammem_speedup"] == 1.0
    assert record["loss_last"] < record["loss_first"]  # two SGD steps lower the loss
    assert [t["target"] for t in record["targets"]][0] == "dammem >= 2x torch.pdist steps/s"


def test_quick_run_without_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    record, printed = _run(tmp_path, capsys, "--no-rss")
    _check_common(record)
    assert record["peers"] is False and set(record["results"]) == {"dammem.fit_kernel"}
    assert record["rss"] is None and all(t["pass"] is None for t in record["targets"])
    assert "skipping the PyTorch columns" in printed and "issue" not in printed.lower()


def test_rss_case_computes_one_stage1_step():
    value = bench.loss_rss_case(k=40, d=12, chunk_size=16, seed=3)()
    memories, w0 = bench.inputs(40, 12, 3)
    expected = float(uhop.separation_loss(jnp.asarray(w0), jnp.asarray(memories)))
    assert value["loss"] == pytest.approx(expected, rel=1e-6) and value["grad_finite"] is True


def test_inputs_are_mnist_digits_at_d_784():
    memories, w0 = bench.inputs(5, 784, 0)
    assert memories.shape == (5, 784) and w0.shape == (784, 784) and memories.max() == 1.0
    np.testing.assert_allclose(memories * 255, np.round(memories * 255), atol=1e-4)  # 8-bit pixels
    np.testing.assert_array_equal(w0, np.random.default_rng(0).standard_normal((784, 784), dtype=np.float32))


@pytest.mark.peers
def test_quick_run_with_torch_agrees_with_dammem(tmp_path, capsys):
    try:
        import torch  # noqa: F401
    except ImportError as err:  # CI installs the bench extra and sets DAMMEM_REQUIRE_PEERS=1: then a failure
        if os.environ.get("DAMMEM_REQUIRE_PEERS") == "1":
            pytest.fail(f"DAMMEM_REQUIRE_PEERS=1 but torch is not installed: {err}")
        pytest.skip(f"peer library torch not installed (pip install -e '.[bench]'): {err}")
    record, printed = _run(tmp_path, capsys)
    _check_common(record)
    assert record["peers"] is True and {"torch.pdist", "torch.gram"} <= set(record["results"])
    for name in ("torch.pdist", "torch.gram"):
        r = record["results"][name]
        # same loss and optimiser from the same W0: the loss traces and the final unit-row W agree to float32
        assert r["max_abs_loss_diff_vs_dammem"] < 1e-5 and r["max_abs_weight_diff_vs_dammem"] < 1e-5, name
        assert r["dammem_speedup"] == pytest.approx(
            record["results"]["dammem.fit_kernel"]["steps_per_s"] / r["steps_per_s"]
        )
    rss = record["rss"]
    assert rss["result"]["grad_finite"] and rss["peak_rss_bytes"] > rss["rss_before_bytes"] > 0
    assert record["targets"][1]["pass"] is True  # K = 512 is far below 4 GB
    assert "torch.pdist" in printed
    jax.clear_caches()
