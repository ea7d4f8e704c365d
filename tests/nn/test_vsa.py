"""KropCodebookLayer: equal to the dammem.vsa KROP functions with its angles and signs, to a float64 dense Kronecker
reference, differentiable in the angles (finite differences), and trained on its angles only (never its signs)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.test_util import check_grads

from dammem.nn.variables import FixedSigns
from dammem.nn.vsa import KropCodebookLayer
from dammem.vsa import krop_cleanup, krop_row, krop_scores, krop_signs, krop_soft_cleanup, uniform_angles
from tests.vsa.test_krop import assert_clear_argmax

N, B = 16, 5
RNG = np.random.default_rng(2)


def dense_codebook(theta, signs=None):
    """Reference: C = (R(theta_{L-1}) (x) ... (x) R(theta_0)) D in float64 NumPy (Liu et al. (2025))."""
    h = np.ones((1, 1))
    for t in np.asarray(theta, np.float64):  # kron(R(t_k), H) puts the newest angle in the most significant place
        h = np.kron(np.array([[np.cos(t), np.sin(t)], [np.sin(t), -np.cos(t)]]), h)
    return h if signs is None else h * np.asarray(signs, np.float64)[None, :]


@pytest.mark.parametrize("signed", [False, True])
def test_equals_the_vsa_functions_and_the_dense_reference(signed):
    book = KropCodebookLayer(N, signed=signed, rngs=nnx.Rngs(0))
    rngs = nnx.Rngs(0)
    theta = uniform_angles(rngs.params(), 4)
    signs = krop_signs(rngs.params(), N) if signed else None
    assert np.array_equal(book.theta[...], theta)
    assert (book.signs is None) == (not signed) and (not signed or np.array_equal(book.signs[...], signs))

    x = jnp.asarray(RNG.standard_normal((B, N)), jnp.float32)
    # the layer calls these very functions with the same arrays: the same programs, so equal bit for bit
    assert np.array_equal(book.scores(x), krop_scores(theta, x, signs=signs))
    idx, words = book.cleanup(x)
    assert np.array_equal(idx, krop_cleanup(theta, x, signs=signs))
    assert np.array_equal(words, krop_row(theta, idx, signs=signs))
    assert np.array_equal(book.soft_cleanup(x, 3.0), krop_soft_cleanup(theta, x, 3.0, signs=signs))
    assert np.array_equal(book.codewords(jnp.array([1, 7])), krop_row(theta, jnp.array([1, 7]), signs=signs))

    c = dense_codebook(theta, signs)
    xs = np.asarray(x, np.float64)
    np.testing.assert_array_equal(np.asarray(idx), assert_clear_argmax(xs @ c.T))
    np.testing.assert_allclose(words, c[np.asarray(idx)], atol=1e-6)
    z = 3.0 * xs @ c.T
    p = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(book.soft_cleanup(x, 3.0), (p / p.sum(-1, keepdims=True)) @ c, atol=1e-5)


def test_soft_cleanup_gradients_match_finite_differences(x64):
    book = KropCodebookLayer(N, signed=True, param_dtype=jnp.float64, rngs=nnx.Rngs(1))
    x = jnp.asarray(RNG.standard_normal((3, N)))
    weights = jnp.asarray(RNG.standard_normal((3, N)))
    graphdef, state = nnx.split(book)

    def f(theta, x):
        inner = nnx.merge(graphdef, state, copy=True)
        inner.theta[...] = theta
        return jnp.sum(weights * inner.soft_cleanup(x, 2.0))

    check_grads(f, (book.theta[...], x), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-6)
    grad = nnx.grad(lambda b: jnp.sum(weights * b.soft_cleanup(x, 2.0)))(book)
    np.testing.assert_allclose(grad["theta"][...], jax.grad(f)(book.theta[...], x), rtol=1e-12)
    assert "signs" not in grad  # only the Param state gets a gradient


def test_training_the_soft_cleanup_moves_the_angles_and_never_the_signs():
    book = KropCodebookLayer(N, signed=True, rngs=nnx.Rngs(3))
    signs, theta0 = np.asarray(book.signs[...]), np.asarray(book.theta[...])
    assert isinstance(book.signs, FixedSigns)
    targets = jnp.asarray(RNG.standard_normal((8, N)), jnp.float32)
    targets = targets / jnp.linalg.norm(targets, axis=-1, keepdims=True)
    noisy = targets + 0.3 * jnp.asarray(RNG.standard_normal((8, N)), jnp.float32)
    opt = nnx.Optimizer(book, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def step(book, opt):
        loss, grads = nnx.value_and_grad(lambda b: jnp.mean((b.soft_cleanup(noisy, 4.0) - targets) ** 2))(book)
        opt.update(book, grads)
        return loss

    losses = [float(step(book, opt)) for _ in range(10)]
    assert losses[-1] < 0.9 * losses[0]
    assert not np.allclose(book.theta[...], theta0)
    assert np.array_equal(book.signs[...], signs)


@pytest.mark.parametrize("size", [12, 1, 0])
def test_size_must_be_a_power_of_two(size):
    with pytest.raises(ValueError, match=f"KropCodebookLayer: size must be a power of two .*got {size}"):
        KropCodebookLayer(size, rngs=nnx.Rngs(0))


def test_bad_arguments():
    with pytest.raises(TypeError, match="KropCodebookLayer: size must be an int"):
        KropCodebookLayer(16.0, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="KropCodebookLayer: signed must be a bool"):
        KropCodebookLayer(16, signed="yes", rngs=nnx.Rngs(0))
    book = KropCodebookLayer(N, rngs=nnx.Rngs(0))
    for method in ("scores", "cleanup", "soft_cleanup"):
        message = rf"KropCodebookLayer.{method}: x must have shape \(\.\.\., N\) with N = 16"
        with pytest.raises(ValueError, match=message):
            getattr(book, method)(jnp.ones((2, 8)))
    with pytest.raises(ValueError, match="krop_soft_cleanup: beta must be finite and > 0"):
        book.soft_cleanup(jnp.ones(N), -1.0)
