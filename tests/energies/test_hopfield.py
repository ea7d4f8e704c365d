import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dammem.energies import modern_hopfield_energy, polynomial_energy, sparse_hopfield_energy, sparse_hopfield_update
from dammem.similarities import kernelized
from tests.reference import entmax_bisect, tsallis_conjugate

RNG = np.random.default_rng(2)
MEM = RNG.standard_normal((8, 6))
X = RNG.standard_normal(6)


@pytest.mark.parametrize("alpha", [1.0, 1.25, 1.5, 2.0])
@pytest.mark.parametrize("beta", [0.3, 4.0])
def test_sparse_hopfield_energy_matches_reference(x64, alpha, beta):
    got = float(sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta, alpha))
    want = 0.5 * X @ X - tsallis_conjugate(beta * (MEM @ X), alpha) / beta
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_modern_hopfield_is_alpha_one_and_matches_eq11(x64):
    beta = 2.0
    e = float(modern_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta))
    a = beta * MEM @ X
    want = -(a.max() + np.log(np.exp(a - a.max()).sum())) / beta + 0.5 * X @ X
    np.testing.assert_allclose(e, want, rtol=1e-12)
    np.testing.assert_allclose(e, float(sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta, 1.0)), rtol=1e-9)


@pytest.mark.parametrize("alpha", [1.0, 1.3, 1.5, 2.0])
def test_gradient_is_x_minus_retrieval(x64, alpha):
    """grad E = x - Xi Sep(beta Xi x): the fixed points of eq. 2.4 are the stationary points of eq. 2.2."""
    beta = 1.7
    grad = np.asarray(jax.grad(sparse_hopfield_energy)(jnp.asarray(X), jnp.asarray(MEM), beta, alpha))
    p = entmax_bisect(beta * (MEM @ X), alpha)
    np.testing.assert_allclose(grad, X - p @ MEM, atol=1e-7)
    step = np.asarray(sparse_hopfield_update(jnp.asarray(X), jnp.asarray(MEM), beta, alpha))
    np.testing.assert_allclose(step, p @ MEM, atol=1e-7)


def test_kernelized_energy_uses_the_feature_map(x64):
    w = RNG.standard_normal((4, 6))
    got = float(
        sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), 1.0, 1.5, similarity=kernelized(jnp.asarray(w)))
    )
    want = 0.5 * X @ X - tsallis_conjugate((MEM @ w.T) @ (w @ X), 1.5)
    np.testing.assert_allclose(got, want, rtol=1e-7)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    alpha=st.sampled_from([1.0, 1.2, 1.5, 1.8, 2.0]),
    beta=st.floats(0.1, 20.0),
    k=st.integers(1, 12),
)
def test_cccp_steps_never_increase_the_energy(seed, alpha, beta, k):
    """Seed 002 Thm. 2.1: the update of eq. 2.4 is a CCCP step, so E(x_{t+1}) <= E(x_t)."""
    rng = np.random.default_rng(seed)
    mem = jnp.asarray(rng.standard_normal((k, 5)), jnp.float32)
    x = jnp.asarray(rng.standard_normal(5) * 2, jnp.float32)
    energy = jax.jit(sparse_hopfield_energy)
    step = jax.jit(sparse_hopfield_update)
    e_prev = float(energy(x, mem, beta, alpha))
    for _ in range(6):
        x = step(x, mem, beta, alpha)
        e = float(energy(x, mem, beta, alpha))
        assert e <= e_prev + 1e-4 * (1.0 + abs(e_prev)), (e_prev, e)
        e_prev = e


def test_sparsemax_retrieval_lands_exactly_on_a_stored_pattern():
    mem = jnp.asarray(RNG.standard_normal((5, 16)), jnp.float32)
    x = mem[2] + 0.1 * jnp.asarray(RNG.standard_normal(16), jnp.float32)
    for _ in range(3):
        x = sparse_hopfield_update(x, mem, 2.0, 2.0)
    np.testing.assert_allclose(np.asarray(x), np.asarray(mem[2]), atol=1e-6)


def test_alpha_and_beta_are_traced_no_retrace():
    traces = []

    @jax.jit
    def f(x, beta, alpha):
        traces.append(1)
        return sparse_hopfield_energy(x, jnp.asarray(MEM, jnp.float32), beta, alpha)

    for beta, alpha in [(1.0, 1.2), (2.0, 1.7), (3.0, 2.0), (0.5, 1.0)]:
        assert np.isfinite(float(f(jnp.asarray(X, jnp.float32), beta, alpha)))
    assert len(traces) == 1


def test_learnable_alpha_gets_a_gradient(x64):
    g = jax.grad(sparse_hopfield_energy, argnums=3)(jnp.asarray(X), jnp.asarray(MEM), 1.0, 1.4)
    eps = 1e-5
    fd = (
        sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), 1.0, 1.4 + eps)
        - sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), 1.0, 1.4 - eps)
    ) / (2 * eps)
    np.testing.assert_allclose(float(g), float(fd), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("power", [2, 3, 10])
def test_polynomial_energy(x64, power):
    mem = np.sign(RNG.standard_normal((4, 6)))
    x = np.sign(RNG.standard_normal(6))
    np.testing.assert_allclose(
        float(polynomial_energy(jnp.asarray(x), jnp.asarray(mem), power)), -((mem @ x) ** power).sum()
    )
    rect = float(polynomial_energy(jnp.asarray(x), jnp.asarray(mem), power, rectified=True))
    np.testing.assert_allclose(rect, -(np.maximum(mem @ x, 0) ** power).sum())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sparse_hopfield_energy(jnp.ones(3), jnp.ones((2, 3)), 1.0, 2.5), r"alpha must lie in \[1, 2\]"),
        (lambda: sparse_hopfield_energy(jnp.ones(3), jnp.ones((2, 3)), 1.0, 0.9), r"alpha must lie in \[1, 2\]"),
        (
            lambda: sparse_hopfield_update(jnp.ones(3), jnp.ones((2, 3)), 1.0, 1.5, similarity="l2"),
            "unknown similarity",
        ),
        (lambda: modern_hopfield_energy(jnp.ones(3), jnp.ones((2, 3)), 0.0), "beta must be finite and > 0"),
        (lambda: polynomial_energy(jnp.ones(3), jnp.ones((2, 3)), 0), "power must be >= 1"),
        (lambda: polynomial_energy(jnp.ones(3), jnp.ones((2, 3)), 2.5), "power must be an int"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
