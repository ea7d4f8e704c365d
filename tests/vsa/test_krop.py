"""KROP codebooks: float64 NumPy references built from the recursion of Liu et al. (2025), gradients, errors."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dammem._butterfly import butterfly_apply
from dammem.vsa import _kernels
from dammem.vsa.krop import (
    degenerate_factors,
    even_angles,
    hadamard_angles,
    krop_apply,
    krop_cleanup,
    krop_factors,
    krop_matrix,
    krop_row,
    krop_scores,
    krop_signs,
    krop_soft_cleanup,
    uniform_angles,
)
from tests.reference import sylvester

# ---------------------------------------------------------------------------------------------------------------
# Independent float64 references
# ---------------------------------------------------------------------------------------------------------------


def ref_recursion(theta) -> np.ndarray:
    """Liu et al. (2025): H^(0) = [1], H^(k+1) = [[H c_k, H s_k], [H s_k, -H c_k]]."""
    h = np.ones((1, 1))
    for t in np.asarray(theta, dtype=np.float64):
        c, s = np.cos(t), np.sin(t)
        h = np.block([[h * c, h * s], [h * s, -h * c]])
    return h


def assert_clear_argmax(scores: np.ndarray, margin: float = 1e-4) -> np.ndarray:
    """The float64 argmax of ``scores`` along the last axis, after checking that every top-2 gap exceeds ``margin``.

    A float32 clean-up equals the float64 argmax exactly only without near-ties: its scores differ from the float64
    ones by a few ulp per term of an O(N) reduction (~1e-6 at |score| ~ 1, N <= 1024), and by other last bits on
    another CPU. ``margin`` = 1e-4 leaves two orders of magnitude; a new draw with a near-tie fails here, loudly.
    """
    if scores.shape[-1] > 1:
        top2 = np.sort(scores, -1)[..., -2:]
        assert np.all(top2[..., 1] - top2[..., 0] > margin), "near-tie in the test data: pick another seed"
    return scores.argmax(-1)


def ref_codebook(theta, signs=None) -> np.ndarray:
    """The KROP codebook ``C = H D``: the recursion's H with its columns times the +-1 signs ``D`` (if any)."""
    h = ref_recursion(theta)
    return h if signs is None else h * np.asarray(signs, dtype=np.float64)[None, :]


def ref_kron(theta) -> np.ndarray:
    """Liu et al. (2025): H^(K) = kron_{k=1..K} R(theta_{K-k}), R(t) = [[cos t, sin t], [sin t, -cos t]]."""
    theta = np.asarray(theta, dtype=np.float64)
    k_total = len(theta)
    h = np.ones((1, 1))
    for k in range(1, k_total + 1):
        t = theta[k_total - k]
        h = np.kron(h, np.array([[np.cos(t), np.sin(t)], [np.sin(t), -np.cos(t)]]))
    return h


def ref_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _theta(k, seed=0):
    return uniform_angles(jax.random.key(seed), k)


# ---------------------------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_matrix_equals_recursion_and_explicit_kron(k):
    with jax.enable_x64(True):
        theta = jnp.asarray(np.random.default_rng(k).uniform(0, 2 * np.pi, k))
        h = np.asarray(krop_matrix(theta))
        assert h.dtype == np.float64
    rec, kr = ref_recursion(theta), ref_kron(theta)
    np.testing.assert_allclose(rec, kr, atol=1e-14)  # the two forms of Liu et al. (2025) agree (ordering of the angles)
    np.testing.assert_allclose(h, rec, atol=1e-13)


def test_angle_order_matters():
    # A non-palindromic theta: the reversed order gives a different matrix, so the test above pins the order.
    theta = np.array([0.1, 0.7, 1.9])
    assert np.abs(ref_recursion(theta) - ref_recursion(theta[::-1])).max() > 0.1
    h32 = np.asarray(krop_matrix(jnp.asarray(theta, jnp.float32)))
    np.testing.assert_allclose(h32, ref_recursion(theta), atol=1e-6)


@pytest.mark.parametrize("k", [1, 4, 7])
def test_matrix_orthogonal_and_symmetric(k):
    with jax.enable_x64(True):
        h = np.asarray(krop_matrix(jnp.asarray(np.random.default_rng(1).uniform(0, 2 * np.pi, k))))
    np.testing.assert_allclose(h, h.T, atol=1e-14)
    np.testing.assert_allclose(h @ h, np.eye(2**k), atol=1e-13)  # symmetric + orthogonal: an involution


@pytest.mark.parametrize("k", [1, 3, 6])
def test_pi_over_4_is_sylvester_hadamard(k):
    with jax.enable_x64(True):
        h = np.asarray(krop_matrix(jnp.full(k, np.pi / 4)))
    np.testing.assert_allclose(h, sylvester(2**k), atol=1e-14)
    np.testing.assert_allclose(np.asarray(krop_matrix(hadamard_angles(k))), sylvester(2**k), atol=1e-6)


def test_signed_matrix_is_h_times_column_signs():
    k = 5
    theta, d = _theta(k), krop_signs(jax.random.key(3), 2**k)
    expected = ref_codebook(theta, d)
    np.testing.assert_allclose(np.asarray(krop_matrix(theta, signs=d)), expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# The butterfly
# ---------------------------------------------------------------------------------------------------------------


_SLOW = pytest.mark.slow  # a larger size of a case the default suite pins at a smaller one (one compile per size)


@pytest.mark.parametrize(
    "k,group",
    [(1, 4), (2, 1), (5, 2), (5, 3), (7, 4)]  # group > k, group 1, group dividing k, remainders
    + [pytest.param(k, g, marks=_SLOW) for k, g in [(9, 4), (11, 6), (11, 1), (12, 5)]],
)
def test_krop_apply_matches_dense(k, group):
    theta = _theta(k, seed=k)
    x = jax.random.normal(jax.random.key(1), (2, 3, 2**k))
    y = np.asarray(krop_apply(theta, x, group=group))
    expected = np.asarray(x, np.float64) @ ref_recursion(theta).T
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, atol=3e-6 * np.sqrt(k))


def test_krop_apply_single_vector_and_float64():
    with jax.enable_x64(True):
        theta = jnp.asarray(np.random.default_rng(0).uniform(0, 2 * np.pi, 7))
        x = jnp.asarray(np.random.default_rng(1).normal(size=128))
        y = krop_apply(theta, x)
        assert y.dtype == jnp.float64 and y.shape == (128,)
        np.testing.assert_allclose(np.asarray(y), ref_recursion(theta) @ np.asarray(x), atol=1e-12)


def test_empty_batch():
    theta = _theta(5)
    x = jnp.ones((0, 3, 32))
    assert krop_apply(theta, x).shape == (0, 3, 32)
    assert krop_cleanup(theta, x).shape == (0, 3)
    assert krop_soft_cleanup(theta, x, 1.0).shape == (0, 3, 32)


def test_krop_factors_are_reversed_rotation_reflections():
    theta = jnp.array([0.3, 1.1, 2.5])
    f = np.asarray(krop_factors(theta))
    for a, t in enumerate([2.5, 1.1, 0.3]):
        np.testing.assert_allclose(f[a], [[np.cos(t), np.sin(t)], [np.sin(t), -np.cos(t)]], atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Rows, scores, clean-up
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_krop_row_equals_matrix_rows(signed):
    k = 7
    theta = _theta(k, seed=4)
    d = krop_signs(jax.random.key(9), 2**k) if signed else None
    ref = ref_codebook(theta, d)
    idx = jnp.array([[0, 1, 127], [64, 63, 5]])
    rows = np.asarray(krop_row(theta, idx, signs=d))
    assert rows.shape == (2, 3, 128)
    np.testing.assert_allclose(rows, ref[np.asarray(idx)], atol=1e-6)
    all_rows = np.asarray(jax.vmap(lambda i: krop_row(theta, i, signs=d))(jnp.arange(128)))
    np.testing.assert_allclose(all_rows, ref, atol=1e-6)
    np.testing.assert_allclose(np.asarray(krop_row(theta, 5, signs=d)), ref[5], atol=1e-6)


@pytest.mark.parametrize("k", [3, 8, 11])
@pytest.mark.parametrize("signed", [False, True])
def test_cleanup_equals_brute_force_argmax(k, signed):
    n = 2**k
    theta = _theta(k, seed=k)
    d = krop_signs(jax.random.key(2), n) if signed else None
    c = ref_codebook(theta, d)
    x = jax.random.normal(jax.random.key(5), (4, 16, n))
    scores = np.asarray(x, np.float64) @ c.T
    idx = np.asarray(krop_cleanup(theta, x, signs=d))
    assert idx.shape == (4, 16) and idx.dtype == np.int32
    np.testing.assert_array_equal(idx, assert_clear_argmax(scores))
    np.testing.assert_allclose(np.asarray(krop_scores(theta, x, signs=d)), scores, atol=3e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="row chunks are a CPU policy")
def test_large_batches_in_row_chunks_equal_brute_force():
    from dammem._butterfly import row_chunk

    k, b = 10, 1100  # clean-up: chunks of 256 rows and a remainder of 76; scores: chunks of 128, remainder 76
    assert row_chunk(b, 2**k, in_place=True) == 256 and row_chunk(b, 2**k) == 128
    theta, d = _theta(k, seed=3), krop_signs(jax.random.key(5), 2**k)
    c = ref_codebook(theta, d)
    x = jax.random.normal(jax.random.key(6), (b, 2**k))
    scores = np.asarray(x, np.float64) @ c.T
    np.testing.assert_array_equal(np.asarray(krop_cleanup(theta, x, signs=d)), assert_clear_argmax(scores))
    np.testing.assert_allclose(np.asarray(krop_scores(theta, x, signs=d)), scores, atol=1e-4)
    beta = jnp.linspace(0.5, 20.0, b)  # per-row beta must travel with its row through the chunks
    soft = np.asarray(krop_soft_cleanup(theta, x, beta, signs=d))
    np.testing.assert_allclose(soft, ref_softmax(np.asarray(beta)[:, None] * scores) @ c, atol=1e-5)


def test_cleanup_recovers_noisy_rows():
    k = 10
    theta, d = _theta(k), krop_signs(jax.random.key(1), 2**k)
    idx = jax.random.randint(jax.random.key(2), (50,), 0, 2**k)
    noisy = krop_row(theta, idx, signs=d) + 0.5 / np.sqrt(2**k) * jax.random.normal(jax.random.key(3), (50, 2**k))
    np.testing.assert_array_equal(np.asarray(krop_cleanup(theta, noisy, signs=d)), np.asarray(idx))


# ---------------------------------------------------------------------------------------------------------------
# Soft clean-up and gradients
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_soft_cleanup_matches_reference(signed):
    k = 6
    theta = _theta(k, seed=1)
    d = krop_signs(jax.random.key(4), 2**k) if signed else None
    c = ref_codebook(theta, d)
    x = jax.random.normal(jax.random.key(0), (3, 2, 64))
    beta = jnp.array([[0.5, 2.0], [1.0, 3.0], [4.0, 0.1]])  # per-query beta broadcasts over the batch
    got = np.asarray(krop_soft_cleanup(theta, x, beta, signs=d))
    xs = np.asarray(x, np.float64)
    expected = ref_softmax(np.asarray(beta)[..., None] * (xs @ c.T)) @ c
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_soft_cleanup_tends_to_hard_cleanup():
    k = 8
    theta = _theta(k, seed=2)
    x = jax.random.normal(jax.random.key(1), (5, 256))
    hard = krop_row(theta, krop_cleanup(theta, x))
    soft = krop_soft_cleanup(theta, x, 1e4)
    np.testing.assert_allclose(np.asarray(soft), np.asarray(hard), atol=1e-4)
    soft_small = krop_soft_cleanup(theta, x, 1e-3)
    assert np.abs(np.asarray(soft_small) - np.asarray(hard)).max() > 0.05  # low beta blends rows


@pytest.mark.parametrize("signed", [pytest.param(False, marks=_SLOW), True])  # signed: the unsigned path and signs
def test_soft_cleanup_gradients(signed):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        theta = jnp.asarray(rng.uniform(0, 2 * np.pi, 5))
        x = jnp.asarray(rng.normal(size=(3, 32)))
        d = jnp.asarray(rng.choice([-1.0, 1.0], 32)) if signed else None
        w = jnp.asarray(rng.normal(size=(3, 32)))

        def f(theta, x, beta):
            return jnp.sum(w * krop_soft_cleanup(theta, x, beta, signs=d, group=2))

        # one check over all three arguments (a random direction in each): one set of programs, not three
        check_grads(f, (theta, x, jnp.asarray(1.5)), order=1, modes=("fwd", "rev"))
        gx = jax.grad(lambda t: f(t, x, 2.0))(theta)
        assert np.all(np.isfinite(np.asarray(gx))) and np.abs(np.asarray(gx)).max() > 1e-3


def test_krop_apply_gradient_in_theta():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        theta = jnp.asarray(rng.uniform(0, 2 * np.pi, 4))
        x = jnp.asarray(rng.normal(size=(2, 16)))
        check_grads(lambda t: krop_apply(t, x, group=3), (theta,), order=1, modes=("fwd", "rev"))
        check_grads(lambda x: krop_apply(theta, x), (x,), order=1, modes=("fwd", "rev"))


# ---------------------------------------------------------------------------------------------------------------
# Static vs traced
# ---------------------------------------------------------------------------------------------------------------


def test_new_angles_signs_and_beta_do_not_retrace():
    x = jax.random.normal(jax.random.key(0), (4, 256))
    d = krop_signs(jax.random.key(1), 256)
    krop_cleanup(_theta(8, 0), x, signs=d)
    krop_soft_cleanup(_theta(8, 0), x, 1.0, signs=d)
    n_clean, n_soft = _kernels.krop_cleanup_kernel._cache_size(), _kernels.krop_soft_cleanup_kernel._cache_size()
    for seed in range(1, 4):
        krop_cleanup(_theta(8, seed), x, signs=krop_signs(jax.random.key(seed), 256))
        krop_soft_cleanup(_theta(8, seed), x, float(seed), signs=d)
    assert _kernels.krop_cleanup_kernel._cache_size() == n_clean
    assert _kernels.krop_soft_cleanup_kernel._cache_size() == n_soft

    traces = []

    @jax.jit
    def user(theta, x, beta):
        traces.append(1)
        return krop_cleanup(theta, x), krop_soft_cleanup(theta, x, beta), krop_row(theta, jnp.argmax(x, -1))

    for seed in range(3):
        user(_theta(8, seed), x, 1.0 + seed)
    assert len(traces) == 1


def test_vmap_over_angles():
    thetas = jax.vmap(lambda kk: uniform_angles(kk, 6))(jax.random.split(jax.random.key(0), 3))
    x = jax.random.normal(jax.random.key(1), (3, 7, 64))
    got = jax.vmap(krop_cleanup)(thetas, x)
    for i in range(3):
        brute = assert_clear_argmax(np.asarray(x[i], np.float64) @ ref_recursion(thetas[i]).T)
        np.testing.assert_array_equal(np.asarray(got[i]), brute)


# ---------------------------------------------------------------------------------------------------------------
# Angles and signs
# ---------------------------------------------------------------------------------------------------------------


def test_uniform_angles_reproducible_and_in_range():
    a, b = uniform_angles(jax.random.key(3), 12), uniform_angles(jax.random.key(3), 12)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(uniform_angles(jax.random.key(4), 12)))
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < 2 * np.pi))


def test_even_angles_formula_and_degeneracy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theta = even_angles(4)  # K + 1 = 5 is odd: no factor degenerates
    np.testing.assert_allclose(np.asarray(theta), 2 * np.pi * np.arange(1, 5) / 5, atol=1e-6)
    assert degenerate_factors(theta).size == 0
    h_ok = ref_recursion(theta)
    assert np.mean(np.abs(h_ok) < 1e-6) == 0.0

    with pytest.warns(UserWarning, match="K \\+ 1 = 4"):
        bad = even_angles(3)  # pi/2, pi, 3pi/2: every factor is a signed permutation
    np.testing.assert_array_equal(degenerate_factors(bad), [0, 1, 2])
    assert np.mean(np.abs(ref_recursion(bad)) < 1e-6) >= 0.5  # most entries of H vanish
    with pytest.warns(UserWarning):
        even_angles(5)  # K + 1 = 6: theta = pi appears
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        even_angles(5, warn=False)


def test_signs_reproducible_pm1():
    d = np.asarray(krop_signs(jax.random.key(0), 512))
    assert set(np.unique(d).tolist()) == {-1.0, 1.0}
    np.testing.assert_array_equal(d, np.asarray(krop_signs(jax.random.key(0), 512)))


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    theta = _theta(4)
    x = jnp.ones((2, 16))
    with pytest.raises(ValueError, match="power of two.*got 12"):
        krop_apply(_theta(4), jnp.ones((2, 12)))
    with pytest.raises(ValueError, match="power of two.*got 1"):
        krop_cleanup(jnp.zeros(0), jnp.ones((1,)))
    with pytest.raises(ValueError, match="theta has 3 angles.*N = 16.*length log2\\(N\\) = 4"):
        krop_cleanup(_theta(3), x)
    with pytest.raises(ValueError, match="theta must be a vector"):
        krop_apply(jnp.ones((2, 4)), x)
    with pytest.raises(ValueError, match="idx must lie in \\[0, N\\) = \\[0, 16\\).*\\[16\\]"):
        krop_row(theta, jnp.array([0, 16]))
    with pytest.raises(ValueError, match="idx must lie.*\\[-1\\]"):
        krop_row(theta, -1)
    with pytest.raises(TypeError, match="idx must be integer"):
        krop_row(theta, jnp.array([1.0]))
    with pytest.raises(ValueError, match="signs must have shape \\(N,\\) = \\(16,\\).*\\(8,\\)"):
        krop_cleanup(theta, x, signs=jnp.ones(8))
    with pytest.raises(ValueError, match="signs must contain only"):
        krop_cleanup(theta, x, signs=jnp.full(16, 0.5))
    with pytest.raises(ValueError, match="beta must be finite and > 0, got \\[0.0\\]"):
        krop_soft_cleanup(theta, x, 0.0)
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        krop_soft_cleanup(theta, x, -1.0)
    with pytest.raises(ValueError, match="beta must be a scalar or broadcastable"):
        krop_soft_cleanup(theta, x, jnp.ones(3))
    with pytest.raises(ValueError, match="group must be in \\[1, 10\\].*got 11"):
        krop_apply(theta, x, group=11)
    with pytest.raises(ValueError, match="group must be >= 1, got 0"):
        krop_apply(theta, x, group=0)
    with pytest.raises(ValueError, match="factors must have shape \\(K, 2, 2\\) = \\(4, 2, 2\\)"):
        butterfly_apply(jnp.ones((3, 2, 2)), x)
    with pytest.raises(TypeError, match="theta must be real"):
        krop_apply(theta.astype(jnp.complex64), x)
    with pytest.raises(TypeError, match="k must be an int"):
        uniform_angles(jax.random.key(0), 2.0)
    with pytest.raises(ValueError, match="n must be a power of two.*got 100"):
        krop_signs(jax.random.key(0), 100)


def test_jaxtyping_annotations_hold():
    from beartype import beartype
    from jaxtyping import TypeCheckError, jaxtyped

    from dammem.vsa import bind, recall, store, unbind
    from dammem.vsa.codebooks import make_codebook

    def checked(fn):
        return jaxtyped(typechecker=beartype)(fn)

    theta, x = _theta(5), jnp.ones((2, 3, 32))
    assert checked(krop_apply)(theta, x).shape == (2, 3, 32)
    assert checked(krop_cleanup)(theta, x, signs=krop_signs(jax.random.key(0), 32)).shape == (2, 3)
    assert checked(krop_soft_cleanup)(theta, x, 2.0).shape == (2, 3, 32)
    assert checked(krop_row)(theta, jnp.array([[1, 2]])).shape == (1, 2, 32)
    assert checked(krop_matrix)(theta).shape == (32, 32)
    with pytest.raises(TypeCheckError):
        checked(krop_cleanup)(theta, x, signs=jnp.ones(16))
    addresses = jnp.ones((4, 32))
    mem = checked(store)(addresses, addresses)
    assert checked(bind)(addresses, mem).shape == (4, 32) and checked(unbind)(mem, addresses).shape == (4, 32)
    assert checked(recall)(mem, addresses, make_codebook("krop", 32, key=jax.random.key(0))).shape == (4,)
    assert checked(krop_row)(theta, 3).shape == (32,)
    assert checked(krop_apply)(np.asarray(theta), np.ones((2, 32), np.float32)).shape == (2, 32)  # ArrayLike in
    with pytest.raises(TypeCheckError):
        checked(bind)(addresses, jnp.ones(16))
