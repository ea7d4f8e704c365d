"""Stage II (dammem.uhop.retrieval): one step against float64 NumPy, CCCP monotonicity of E_K, exact retrieval."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dammem import uhop
from dammem.energies import sparse_hopfield_update
from dammem.uhop import retrieval as retrieval_module
from tests.reference import tsallis_conjugate
from tests.uhop import reference as ref

RNG = np.random.default_rng(5)
MEM = RNG.random((7, 5))
W = RNG.standard_normal((8, 5))
QUERIES = RNG.random((4, 5))
SEPARATIONS = [("softmax", None, 1.0), ("entmax15", None, 1.5), ("sparsemax", None, 2.0), ("entmax", 1.3, 1.3)]


def ref_step(x, mem, w, beta, alpha):
    """T_K(x) = Xi^T Sep_alpha(beta <W xi, W x>) (Wu et al. (2024), eq. 2.4) in float64."""
    scores = (mem @ w.T) @ (w @ x)
    return ref.entmax(beta * scores, alpha) @ mem


def ref_energy(x, mem, w, beta, alpha):
    """E_K(x) = 1/2 |W x|^2 - Psi*_alpha(beta K(Xi, x)) / beta (Wu et al. (2024), eq. 2.2) in float64."""
    fx = w @ x
    return 0.5 * fx @ fx - tsallis_conjugate(beta * ((mem @ w.T) @ fx), alpha) / beta


@pytest.mark.parametrize("separation, alpha, tsallis", SEPARATIONS)
def test_steps_match_the_float64_reference(x64, separation, alpha, tsallis):
    beta = 0.3
    out = uhop.uhop_retrieve(
        jnp.asarray(QUERIES), jnp.asarray(MEM), jnp.asarray(W), beta=beta, separation=separation, alpha=alpha,
        steps=2, trace=True,
    )  # fmt: skip
    for b, x in enumerate(QUERIES):
        x1 = ref_step(x, MEM, W, beta, tsallis)
        x2 = ref_step(x1, MEM, W, beta, tsallis)
        np.testing.assert_allclose(np.asarray(out.x[b]), x2, rtol=1e-9, atol=1e-9)
        expected = [ref_energy(v, MEM, W, beta, tsallis) for v in (x, x1, x2)]
        np.testing.assert_allclose(np.asarray(out.trace[b]), expected, rtol=1e-9, atol=1e-9)
    assert out.x.shape == (4, 5) and out.trace.shape == (4, 3) and np.all(np.asarray(out.steps) == 2)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), beta=st.sampled_from([0.05, 1.0, 8.0]), which=st.integers(0, 3))
def test_cccp_never_increases_the_kernel_energy(seed, beta, which):
    """Wu et al. (2024), Thm. 2.1: T_K descends E_K for any W (here F > D, random), with every separation."""
    separation, alpha, _ = SEPARATIONS[which]
    rng = np.random.default_rng(seed)
    mem, w, q = rng.standard_normal((6, 4)), rng.standard_normal((7, 4)), rng.standard_normal((3, 4))
    with jax.enable_x64(True):
        out = uhop.uhop_retrieve(
            jnp.asarray(q), jnp.asarray(mem), jnp.asarray(w), beta=beta, separation=separation, alpha=alpha,
            steps=8, trace=True,
        )  # fmt: skip
        trace = np.asarray(out.trace)
    scale = 1.0 + np.abs(trace).max()
    assert np.all(np.diff(trace, axis=1) <= 1e-12 * scale)
    assert np.all(trace[:, -1] < trace[:, 0] - 1e-9 * scale) or np.allclose(q, np.asarray(out.x))


def test_no_weight_is_the_inner_product(x64):
    out = uhop.uhop_retrieve(jnp.asarray(QUERIES), jnp.asarray(MEM), None, beta=2.0, separation="sparsemax")
    for b, x in enumerate(QUERIES):
        expected = sparse_hopfield_update(jnp.asarray(x), jnp.asarray(MEM), 2.0, 2.0)
        np.testing.assert_allclose(np.asarray(out.x[b]), np.asarray(expected), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(out.x[b]), ref_step(x, MEM, np.eye(5), 2.0, 2.0), rtol=1e-9)


def test_weight_and_beta_are_traced():
    mem, q = jnp.asarray(MEM, jnp.float32), jnp.asarray(QUERIES, jnp.float32)
    before = retrieval_module._retrieve_batch._cache_size()
    outs = [uhop.uhop_retrieve(q, mem, jnp.asarray(W * s, jnp.float32), beta=b) for s, b in ((1.0, 1.0), (0.5, 3.0))]
    assert retrieval_module._retrieve_batch._cache_size() == before + 1
    assert float(jnp.max(jnp.abs(outs[0].x - outs[1].x))) > 1e-4


def test_exact_retrieval_mask_matches_brute_force_sparse_retrieval(x64):
    rng = np.random.default_rng(21)
    mem, w = rng.standard_normal((12, 6)), rng.standard_normal((9, 6))
    counts = []
    for beta, alpha in ((0.02, 2.0), (0.1, 2.0), (0.05, 1.5), (1.0, 2.0)):
        mask = np.asarray(uhop.exact_retrieval_mask(jnp.asarray(mem), jnp.asarray(w), beta=beta, alpha=alpha))
        feats = mem @ w.T
        one_hot = [bool(ref.entmax(beta * feats @ feats[mu], alpha)[mu] > 1 - 1e-12) for mu in range(len(mem))]
        np.testing.assert_array_equal(mask, one_hot)
        # the masked memories are fixed points of T_K (eq. 2.9); the others move
        out = uhop.uhop_retrieve(jnp.asarray(mem), jnp.asarray(mem), jnp.asarray(w), beta=beta, separation="entmax",
                                 alpha=alpha)  # fmt: skip
        moved = np.abs(np.asarray(out.x) - mem).max(axis=1)
        assert np.all(moved[mask] < 1e-12) and np.all(moved[~mask] > 1e-9)
        counts.append(int(mask.sum()))
    assert counts == [1, 4, 1, 5]  # both outcomes occur, more fixed points at larger beta and alpha


def test_separation_condition_mask_matches_pairwise_distances(x64):
    mem = RNG.random((10, 4))
    mem[4] = 0.0  # a zero feature vector lies at squared distance 1 from the unit ones
    w = RNG.standard_normal((6, 4))
    u = ref.unit_features(w, mem)
    sq = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1) + np.diag(np.full(10, np.inf))
    for beta, alpha in ((1.0, 2.0), (3.0, 2.0), (10.0, 1.5)):
        got = np.asarray(uhop.separation_condition_mask(jnp.asarray(mem), jnp.asarray(w), beta=beta, alpha=alpha))
        np.testing.assert_array_equal(got, sq.min(axis=1) >= 2.0 / (beta * (alpha - 1.0)))


Q, M5 = jnp.ones((2, 5)), jnp.ones((3, 5))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: uhop.uhop_retrieve(jnp.ones((2, 4)), M5, None), r"uhop_retrieve: queries must have shape \(B, D=5\)"),
        (lambda: uhop.uhop_retrieve(Q, M5, jnp.ones((6, 4))), r"uhop_retrieve: weight has width D=4"),
        (lambda: uhop.uhop_retrieve(Q, M5, jnp.ones((4, 5))), r"uhop_retrieve: weight has F=4 < D=5"),
        (lambda: uhop.uhop_retrieve(Q, jnp.ones((0, 5)), None), r"uhop_retrieve: memories is an empty memory set"),
        (lambda: uhop.uhop_retrieve(Q, M5, None, separation="relu"), r"uhop_retrieve: unknown separation 'relu'"),
        (lambda: uhop.uhop_retrieve(Q, M5, None, alpha=1.5), r"uhop_retrieve: .*alpha is only used with 'entmax'"),
        (lambda: uhop.uhop_retrieve(Q, M5, None, beta=0.0), r"uhop_retrieve: beta must be finite and > 0"),
        (lambda: uhop.uhop_retrieve(Q, M5, None, steps=-1), r"uhop_retrieve: steps must be >= 0"),
        (lambda: uhop.exact_retrieval_mask(M5, alpha=1.0), r"exact_retrieval_mask: alpha must lie in \(1, 2\]"),
        (lambda: uhop.exact_retrieval_mask(jnp.ones((1, 5))), r"exact_retrieval_mask: memories must hold at least 2"),
        (lambda: uhop.separation_condition_mask(M5, jnp.ones((4, 5))), r"separation_condition_mask: weight has F=4"),
        (lambda: uhop.separation_condition_mask(M5, beta=-1.0), r"separation_condition_mask: beta must be finite"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_non_finite_inputs_give_nan_states_and_energies_and_masks_refuse_them():
    mem = MEM.copy()
    mem[2, 1] = np.nan
    w_fit = uhop.fit_kernel(jnp.asarray(mem), steps=2, init=jnp.asarray(W)).weight  # a zero W would retrieve the mean
    out = uhop.uhop_retrieve(jnp.asarray(QUERIES), jnp.asarray(MEM), w_fit, trace=True)
    assert np.isnan(np.asarray(out.x)).all() and np.isnan(np.asarray(out.energy)).all()
    queries = QUERIES.copy()
    queries[1, 0] = np.inf
    out = uhop.uhop_retrieve(jnp.asarray(queries), jnp.asarray(MEM), jnp.asarray(W), separation="sparsemax")
    x = np.asarray(out.x)
    assert np.isnan(x[1]).all() and np.isfinite(np.delete(x, 1, axis=0)).all()  # queries are independent
    for mask in (uhop.exact_retrieval_mask, uhop.separation_condition_mask):
        with pytest.raises(ValueError, match=f"{mask.__name__}: memories must be finite, got NaN or inf"):
            mask(jnp.asarray(mem))
        with pytest.raises(ValueError, match=f"{mask.__name__}: weight must be finite, got NaN or inf"):
            mask(jnp.asarray(MEM), jnp.asarray(W).at[0, 0].set(jnp.inf))
