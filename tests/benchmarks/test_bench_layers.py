"""The layer benchmark (benchmarks/layers.py) on tiny inputs: the JSON it writes, the jitted step it times, and the
comparison with ``torch.nn.MultiheadAttention`` (a peer test: run in CI after installing the ``bench`` extra).

Timings are reported by the benchmark, never asserted here.
"""

from __future__ import annotations

import json
import sys

import _harness as H
import jax
import jax.numpy as jnp
import layers as bench
import numpy as np
import pytest
from flax import nnx

from dammem.nn import Hopfield

METHODS = {bench.method_name(s) for s in bench.SEPARATIONS} | {bench.method_name("softmax", 1)}  # quick: H=2, K=1


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def _check_common(record, printed):
    assert record["benchmark"] == "layers" and record["config"]["quick"] is True
    assert (record["config"]["batch"], record["config"]["length"], record["config"]["width"]) == (2, 8, 16)
    assert "separate phases" in record["config"]["timing"] and record["environment"]["versions"]["jax"]
    for name in METHODS:
        r = record["results"][name]
        assert r["repeats"] == 2 and 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["compile_s"] > 0
    assert "issue" not in printed.lower() and "dammem.Hopfield(sparsemax)" in printed
    assert record["config"]["kv_heads"] == 1 and "dammem.Hopfield(softmax, num_kv_heads=1)" in printed
    assert record["results"]["dammem.Hopfield(softmax, num_kv_heads=1)"]["num_kv_heads"] == 1


def test_step_is_the_value_and_gradient_of_the_sum():
    x = bench.make_input(2, 5, 8, seed=3)
    model = Hopfield(2, 8, separation="entmax15", rngs=nnx.Rngs(0))
    step, params = bench.hopfield_step(model)
    loss, grads = step(params, jnp.asarray(x))

    def reference(m):  # NNX's own transforms, compiled as one program (op-by-op eager calls compile far more)
        value, grads = nnx.value_and_grad(lambda m: jnp.sum(m(jnp.asarray(x))))(m)
        return value, grads, jnp.sum(jnp.abs(m(jnp.asarray(x))))

    expected_loss, expected, scale = nnx.jit(reference)(model)
    # Two programs (the benchmark's jitted step, NNX's transforms): float32 rounding of a sum of 2 * 5 * 8 outputs,
    # bounded by a few ulp of the sum of their magnitudes.
    scale = float(scale)
    np.testing.assert_allclose(float(loss), float(expected_loss), rtol=0, atol=1e-5 * scale)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(nnx.state(expected, nnx.Param))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert len(jax.tree.leaves(grads)) == 8  # q, k, v, out: kernel and bias each


def test_quick_run_without_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    record, printed = _run(tmp_path, capsys)
    _check_common(record, printed)
    assert record["peers"] is False and record["check"] is None and record["target"] is None
    assert set(record["results"]) == METHODS and "torch not importable" in printed
    assert "torch_over_method_median" not in record["results"][bench.method_name("softmax")]


@pytest.mark.peers
def test_quick_run_against_torch(tmp_path, capsys, require_peers):
    require_peers("torch")
    record, printed = _run(tmp_path, capsys)
    _check_common(record, printed)
    assert record["peers"] is True and set(record["results"]) == METHODS | {bench.TORCH}
    check = record["check"]
    assert check["pass"] is True and check["max_abs_output_diff"] < 1e-5 and check["max_rel_grad_diff"] < 1e-5
    assert check["loss"][0] == pytest.approx(check["loss"][1], rel=1e-5)
    assert set(check["rel_grad_diff_by_param"]) == {f"{p}.{w}" for p in ("query", "key", "value", "out")
                                                    for w in ("kernel", "bias")}  # fmt: skip
    res = record["results"]
    for name in METHODS:
        r = res[name]
        assert r["torch_over_method_median"] == pytest.approx(res[bench.TORCH]["median_ms"] / r["median_ms"])
    assert record["target"]["value"] == res[bench.method_name("softmax")]["torch_over_method_median"]
    assert "check (PyTorch weights copied" in printed and "PASS" in printed


@pytest.mark.peers
def test_check_fails_on_a_wrong_weight_copy(require_peers, monkeypatch):
    """The check compares by value: a copy that swaps the key and value projections is caught."""
    require_peers("torch")
    torch = H.load_torch()
    x = bench.make_input(2, 6, 8, seed=1)
    assert bench.check_same(torch, x, 2, seed=0)["pass"] is True
    copy = bench.copy_torch_weights

    def swapped(module, heads, width, model):
        copy(module, heads, width, model)
        model.key.kernel[...], model.value.kernel[...] = model.value.kernel[...], model.key.kernel[...]

    monkeypatch.setattr(bench, "copy_torch_weights", swapped)
    assert bench.check_same(torch, x, 2, seed=0)["pass"] is False


def test_the_grouped_query_row_times_a_layer_with_shared_keys(tmp_path, capsys):
    """The grouped-query row's layer has one key/value head (its key kernel is (F, 1, F / H)); --kv-heads 0 drops
    the row."""
    x = bench.make_input(2, 5, 8, seed=3)
    _, _, (loss, grads) = bench.prepare_dammem("softmax", x, 2, seed=0, kv_heads=1)
    assert grads["key"]["kernel"].shape == (8, 1, 4) and grads["query"]["kernel"].shape == (8, 2, 4)
    record, _ = _run(tmp_path, capsys, "--kv-heads", "0")
    timed = set(record["results"]) - {bench.TORCH}  # the peer's row is there when torch is installed
    assert record["config"]["kv_heads"] == 0 and timed == METHODS - {bench.method_name("softmax", 1)}


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--width", "10", "--heads", "3", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "2", "--rounds", "3", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit):
        bench.main(["--heads", "8", "--kv-heads", "3", "--out", str(tmp_path / "x.json")])
