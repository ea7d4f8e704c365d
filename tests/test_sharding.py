"""dammem.sharding on 8 host devices: every sharded path equals its single-device counterpart.

JAX fixes its device count when it starts, and this process has started it with one device, so one subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` runs every case once (``tests/_shard_worker.py``; the XLA
backend at optimisation level 0 only to compile faster) and returns the sharded and the single-device results side
by side; the tests below judge them. Meshes: ``8`` (one axis, ``memory``) and ``2x4`` (``batch`` x ``memory``).

The default suite runs the worker's quick cases (``worker.QUICK``: one case per public function, separation kind,
model and mesh); the cases marked slow (a second mesh, alpha or model for a path a quick case takes) read a second
worker run with ``--all``, made only when a slow test asks for it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dammem.sharding import all_gather_shapes
from tests import _shard_worker as worker

ROOT = Path(__file__).resolve().parents[1]


def run_worker(*args: str) -> dict:
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0 "
        "--xla_llvm_disable_expensive_passes=true"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "tests._shard_worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(worker.MARKER)]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len(worker.MARKER) :])


@pytest.fixture(scope="module")
def quick_results() -> dict:
    return run_worker()


@pytest.fixture(scope="module")
def all_results() -> dict:
    return run_worker("--all")


@pytest.fixture
def results(request) -> dict:
    """The quick worker run for the default suite; the full run for a test or case marked slow."""
    return request.getfixturevalue("all_results" if request.node.get_closest_marker("slow") else "quick_results")


def quick_or_slow(label: str, *values):
    """A parameter set, marked slow unless the worker's quick run has the case ``label``."""
    return pytest.param(*values, marks=() if label in worker.QUICK else pytest.mark.slow)


def compare(results: dict, name: str, *, atol: float, rtol: float = 1e-6) -> None:
    case = results[name]
    sharded, single = np.asarray(case["sharded"], np.float64), np.asarray(case["single"], np.float64)
    assert sharded.shape == single.shape, name
    np.testing.assert_allclose(sharded, single, atol=atol, rtol=rtol, err_msg=name)


@pytest.mark.parametrize("run", ["quick", pytest.param("all", marks=pytest.mark.slow)])
def test_the_worker_ran_every_section_on_8_devices(results, run):
    crashes = {k: v for k, v in results.items() if k.startswith("crash/")}
    assert not crashes, "\n".join(crashes.values())
    assert results["device_count"] == 8 and results["full"] is (run == "all")
    missing = [label for label in worker.QUICK if not any(k == label or k.startswith(label + "/") for k in results)]
    assert not missing  # every quick case ran (a misspelt label would drop a case silently)


# ------------------------------------------------------------------------------------------------------------------
# Separations and conjugates with the scores split over devices


SEPARATIONS = [
    quick_or_slow(f"sep/{mesh}/{case}", mesh, case)
    for mesh, cases in worker.SEPARATION_MESHES.items()
    for case in cases
]


@pytest.mark.parametrize(("mesh", "case"), SEPARATIONS)
def test_shard_separation_equals_single_device(results, mesh, case):
    """Masked entries, a row with nothing visible (zeros), ties; rows also split over ``batch`` on the 2x4 mesh."""
    compare(results, f"sep/{mesh}/{case}/p", atol=1e-6)
    weights = np.asarray(results[f"sep/{mesh}/{case}/p"]["sharded"])
    assert np.all(weights[2] == 0.0)  # the row that sees nothing
    np.testing.assert_allclose(weights[[0, 1, 3]].sum(-1), 1.0, atol=2e-6)
    if case != "softmax":  # sparse maps give exact zeros beside positive weights
        assert np.any(weights[[0, 1, 3]] == 0.0)


@pytest.mark.parametrize(("mesh", "case"), SEPARATIONS)
def test_shard_conjugate_equals_single_device(results, mesh, case):
    compare(results, f"sep/{mesh}/{case}/psi", atol=2e-6)
    assert np.asarray(results[f"sep/{mesh}/{case}/psi"]["sharded"])[2] == -np.inf


@pytest.mark.parametrize("case", [quick_or_slow(f"grad_z/{case}", case) for case in worker.GRAD_CASES])
def test_shard_separation_first_derivatives(results, case):
    """Gradients of a weighted sum of the weights and conjugates, in the scores and (entmax) in a per-row alpha."""
    compare(results, f"grad_z/{case}", atol=1e-5, rtol=1e-5)
    if case == "entmax_rows":
        compare(results, f"grad_alpha/{case}", atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # float32 sparsemax (ties, exact zeros) is pinned by the default cases
def test_shard_sparsemax_threshold_is_exact_in_float64(results):
    compare(results, "x64/sparsemax", atol=1e-13, rtol=0.0)


# ------------------------------------------------------------------------------------------------------------------
# Energies, updates, retrieval with the memories split over devices


UPDATES = [
    quick_or_slow(f"update/{mesh}/{case}", mesh, case)
    for mesh, cases in worker.UPDATE_CASES.items()
    for case, _ in cases
]


@pytest.mark.parametrize(("mesh", "case"), UPDATES)
def test_shard_update_and_energy_equal_single_device(results, mesh, case):
    """Masked memories (one query's own memory among them); the 2x4 mesh also splits the queries over ``batch``."""
    compare(results, f"update/{mesh}/{case}", atol=1e-5, rtol=1e-5)
    compare(results, f"energy/{mesh}/{case}", atol=1e-5, rtol=1e-6)


def test_shard_update_accepts_inputs_committed_elsewhere(results):
    compare(results, "update/committed_inputs", atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("alpha", [1.0, 1.3, 2.0])
def test_shard_update_with_traced_alpha(results, alpha):
    """One compiled program for every alpha; alpha = 1 exactly runs the softmax formula (as on one device)."""
    compare(results, f"update/traced_alpha_{alpha}", atol=1e-5, rtol=1e-5)


def test_shard_traced_nonpositive_beta_gives_nan(results):
    assert np.all(np.isnan(np.asarray(results["update/traced_negative_beta"], np.float64)))


def test_shard_energy_gradient(results):
    compare(results, "energy_grad/entmax13", atol=1e-5, rtol=1e-5)


RETRIEVALS = [
    quick_or_slow(f"retrieve/{mesh}/{case}", mesh, case)
    for mesh, cases in worker.RETRIEVE_CASES.items()
    for case in cases
]


@pytest.mark.parametrize(("mesh", "case"), RETRIEVALS)
def test_shard_retrieve_equals_single_device_loop(results, mesh, case):
    """Per query: the state, energy, number of steps and convergence of ``dammem.retrieve`` with the same energy and
    update (masks, clamped coordinates, ``tol=None``; the 2x4 mesh splits the queries over ``batch``)."""
    compare(results, f"retrieve/{mesh}/{case}/x", atol=1e-5, rtol=1e-5)
    compare(results, f"retrieve/{mesh}/{case}/energy", atol=1e-5, rtol=1e-6)
    for field in ("steps", "converged"):
        got = results[f"retrieve/{mesh}/{case}/{field}"]
        assert got["sharded"] == got["single"], field
    steps = np.asarray(results[f"retrieve/{mesh}/{case}/steps"]["sharded"])
    max_steps = worker.RETRIEVE_CASES[mesh][case][4]
    assert np.all(steps >= 1) and (np.any(steps < max_steps) or max_steps == 3)


@pytest.mark.slow  # batched queries run the same program by default
def test_shard_retrieve_one_query(results):
    for field in ("x", "energy"):
        compare(results, f"retrieve/one_query/{field}", atol=1e-5, rtol=1e-6)
    assert np.ndim(results["retrieve/one_query/x"]["sharded"]) == 1
    assert results["retrieve/one_query/steps"]["sharded"] == results["retrieve/one_query/steps"]["single"]


# ------------------------------------------------------------------------------------------------------------------
# Attention, DrDAM, batch parallel


@pytest.mark.parametrize(
    ("mesh", "case"),
    [quick_or_slow(f"attention/{mesh}/{case}", mesh, case) for mesh, cases in worker.ATTENTION_CASES.items()
     for case in cases],  # fmt: skip
)
def test_shard_hopfield_attention_equals_single_device(results, mesh, case):
    compare(results, f"attention/{mesh}/{case}", atol=1e-5, rtol=1e-5)


def test_shard_attention_weights_stay_split(results):
    compare(results, "attention/2x4/softmax_weights/weights", atol=1e-6)
    assert results["attention/2x4/softmax_weights/weights_spec"] == "P(None, None, None, 'memory')"


@pytest.mark.parametrize(
    ("mesh", "kind"),
    [quick_or_slow(f"encode/{m}/{kind}", m, kind) for m in ("8", "2x4") for kind in worker.ENCODE_CASES[m]],
)
def test_shard_drdam_encode(results, mesh, kind):
    """T summed across devices (a log-sum-exp of log T for the exponential kinds)."""
    compare(results, f"encode/{mesh}/{kind}", atol=1e-5, rtol=1e-5)
    assert results[f"encode/{mesh}/{kind}/count"] == worker.K


@pytest.mark.parametrize("kind", [quick_or_slow(f"encode/masked/{k}", k) for k in worker.ENCODE_CASES["masked"]])
def test_shard_drdam_encode_padded_rows_masked_out(results, kind):
    """29 patterns padded to 32 (a NaN row, two zero rows) plus one stored pattern masked out equal the single-device
    encode of the kept patterns; without the mask the padding would reach T (NaN, phi(0))."""
    compare(results, f"encode/masked/{kind}", atol=1e-5, rtol=1e-5)  # float32: a few ulp per sum over 32 rows
    got, kept = results[f"encode/masked/{kind}/count"]
    assert got == kept == 28
    assert results[f"encode/masked/{kind}/unmasked_finite"] is False


def test_shard_batch_krop_cleanup(results):
    got = results["batch/2x4/krop_cleanup"]
    assert got["sharded"] == got["single"] == [13.0 * i for i in range(16)]
    assert results["batch/2x4/krop_cleanup/spec"] == "P('batch',)"


def test_shard_batch_experiment_trials(results):
    compare(results, "batch/8/trials/errors", atol=1e-6)
    compare(results, "batch/8/trials/states", atol=1e-6)
    assert len(set(results["batch/8/trials/errors"]["sharded"])) > 1  # the trials differ


# ------------------------------------------------------------------------------------------------------------------
# Compiled programs


def gathers_memory_set(shapes: list, memory_shape: list) -> bool:
    """An all-gather whose result holds as many elements as the whole memory set (K, D)."""
    return any(int(np.prod(shape)) >= int(np.prod(memory_shape)) for shape in shapes)


GATHER_PROGRAMS = ("retrieve_modern", "retrieve_entmax15_mask", "attention_sparsemax")


@pytest.mark.parametrize("program", [quick_or_slow(f"gather/{p}", p) for p in GATHER_PROGRAMS])
def test_shard_compiled_program_never_gathers_the_memories(results, program):
    record = results[f"gather/{program}"]
    assert record["all_reduces"] > 0  # the text is the partitioned program: its reductions are there
    assert not gathers_memory_set([tuple(s) for s in record["shapes"]], results["gather/memory_shape"])


def test_shard_gather_check_detects_a_gathering_program(results):
    record = results["gather/gathering_variant"]
    assert gathers_memory_set([tuple(s) for s in record["shapes"]], results["gather/memory_shape"])


def test_shard_all_gather_shapes_parses_hlo_lines():
    text = "\n".join(
        [
            "  %all-gather.3 = f32[64,16]{1,0} all-gather(f32[8,16]{1,0} %param.1), channel_id=1, dimensions={0}",
            "  %ags = (f32[8,16]{1,0}, f32[64,16]{1,0}) all-gather-start(f32[8,16]{1,0} %p), dimensions={0}",
            "  %psum = f32[4]{0} all-reduce(f32[4]{0} %x), to_apply=%add",
            "  %agd = f32[64,16]{1,0} all-gather-done((f32[8,16]{1,0}, f32[64,16]{1,0}) %ags)",
        ]
    )
    assert all_gather_shapes(text) == [(64, 16), (8, 16), (64, 16)]


# ------------------------------------------------------------------------------------------------------------------
# Bad inputs


ERRORS = {
    "missing_axis": ("ValueError", r"sharded_update: axis='rows' is not an axis of the mesh; allowed: .*\('memory',\)"),
    "indivisible_memories": ("ValueError", r"sharded_update: the number of memories K = 30 is not divisible by the "
                             r"size 8 of mesh axis 'memory'; allowed: a multiple of 8"),
    "indivisible_batch": ("ValueError", r"sharded_energy: the number of queries B = 3 is not divisible by the size 2 "
                          r"of mesh axis 'batch'"),
    "missing_batch_axis": ("ValueError", r"sharded_retrieve: batch_axis='queries' is not an axis of the mesh; "
                           r"allowed: .*\('batch', 'memory'\)"),
    "same_axes": ("ValueError", r"batch_axis='memory' must differ from axis='memory'"),
    "mask_hides_all": ("ValueError", r"sharded_update: mask hides every memory"),
    "mask_shape": ("ValueError", r"mask must be booleans of shape \(K,\) = \(32,\).*\(8,\)"),
    "alpha_range": ("ValueError", r"sharded_update: alpha must lie in \[1, 2\], got 2.5"),
    "alpha_missing": ("ValueError", r"alpha is required"),
    "alpha_unused": ("ValueError", r"alpha is only used with model='sparse_hopfield'"),
    "similarity": ("ValueError", r"similarity must be 'dot' or 'neg_sq_l2'.*'cosine'"),
    "model": ("ValueError", r"model must be one of \['rbf', 'modern_hopfield', 'sparse_hopfield'\], got 'classical'"),
    "beta": ("ValueError", r"sharded_energy: beta must be finite and > 0, got \[0.0\]"),
    "query_dim": ("ValueError", r"x must have shape \(D,\) or \(B, D\) with D = 6.*\(4, 4\)"),
    "not_a_mesh": ("TypeError", r"mesh must be a jax.sharding.Mesh.*got list"),
    "clamp": ("ValueError", r"sharded_retrieve: clamp must be booleans of shape \(D,\) = \(6,\)"),
    "distribute": ("ValueError", r"distribute: array.shape\[0\] = 12 is not divisible by the size 8"),
    "encode_indivisible": ("ValueError", r"sharded_encode: the number of patterns K = 12 is not divisible by the "
                           r"size 8"),
    "encode_missing_axis": ("ValueError", r"sharded_encode: axis='batch' is not an axis of the mesh"),
    "encode_mask_shape": ("ValueError", r"sharded_encode: mask must be booleans of shape \(K,\) = \(32,\).*\(8,\)"),
    "encode_mask_dtype": ("ValueError", r"sharded_encode: mask must be booleans.*got float32 \(32,\)"),
    "attention_indivisible": ("ValueError", r"sharded_hopfield_attention: the number of keys S = 12 is not divisible "
                              r"by the size 8"),
    "attention_alpha": ("ValueError", r"sharded_hopfield_attention: alpha must lie in \(1, 2\], got \[2.5\]"),
    "attention_separation": ("ValueError", r"sharded_hopfield_attention: separation must be one of \['softmax', "
                             r"'sparsemax', 'entmax15', 'entmax'\]"),
    "attention_shapes": ("ValueError", r"sharded_hopfield_attention: key of shape \(1, 8, 2, 3\)"),
    "shard_batch_indivisible": ("ValueError", r"shard_batch: the batch size = 12 is not divisible by the size 8"),
    "shard_batch_in_axes": ("ValueError", r"shard_batch: in_axes must be 0 \(mapped\) or None \(replicated\).*got 1"),
    "shard_batch_axis": ("ValueError", r"shard_batch: axis='trials' is not an axis of the mesh"),
    "inside_alpha_unused": ("ValueError", r"distributed_separation: alpha is only used with separation='entmax'"),
    "inside_alpha_shape": ("ValueError", r"distributed_separation: alpha of shape \(2, 4\) must be a scalar or "
                           r"broadcast to z"),
}  # fmt: skip


def test_shard_encode_indivisible_error_advises_masked_padding(results):
    assert "rows that mask=False leaves out" in results["error/encode_indivisible"]["message"]


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_shard_bad_inputs_raise(results, name):
    error_type, pattern = ERRORS[name]
    got = results[f"error/{name}"]
    assert got["type"] == error_type, got
    assert re.search(pattern, got["message"]), got["message"]


@pytest.mark.parametrize("steps", [(1, 2), [2, 2], 2.0, True])
def test_sharded_attention_refuses_per_head_or_non_int_steps(steps):
    """One step count for all heads across devices; per-head counts are hopfield_attention's (one device)."""
    import jax
    import jax.numpy as jnp

    from dammem.sharding import sharded_hopfield_attention

    mesh = jax.make_mesh((1,), ("mem",))
    q, k = jnp.ones((3, 2, 4)), jnp.ones((8, 2, 4))
    with pytest.raises(TypeError, match=r"sharded_hopfield_attention: update_steps must be one int for all heads"):
        sharded_hopfield_attention(q, k, k, mesh=mesh, axis="mem", update_steps=steps)
    assert sharded_hopfield_attention(q, k, k, mesh=mesh, axis="mem", update_steps=2).shape == (3, 2, 4)
