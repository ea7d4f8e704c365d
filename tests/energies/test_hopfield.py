import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dammem.energies import (
    modern_hopfield_energy,
    polynomial_energy,
    rbf_energy,
    rbf_update,
    sparse_hopfield_energy,
    sparse_hopfield_update,
)
from dammem.similarities import Similarity, kernelize
from tests.reference import entmax_bisect, tsallis_conjugate

RNG = np.random.default_rng(2)
MEM = RNG.standard_normal((8, 6))
X = RNG.standard_normal(6)
W = RNG.standard_normal((9, 6))

# The accepted similarities, each with an independent float64 reference of its energy
#   E = 1/2 sim(x, x) - c Psi*_alpha(beta s) / beta,  s = sim(Xi, x)
# and the matrix A with grad E = A (x - Xi^T Sep(beta s)), so the update is the energy's fixed-point map.
ACCEPTED = ["dot", "neg_sq_l2", "kernel_dot", "kernel_neg_sq_l2"]


def similarity(kind, w):
    return {"dot": "dot", "neg_sq_l2": "neg_sq_l2"}.get(kind) or kernelize(kind.removeprefix("kernel_"), w)


def ref_scores(kind, mem, x, w):
    if kind.startswith("kernel_"):
        mem, x, kind = mem @ w.T, w @ x, kind.removeprefix("kernel_")
    return mem @ x if kind == "dot" else -((mem - x) ** 2).sum(-1)


def ref_energy(kind, x, mem, beta, alpha, w):
    """Wu et al. (2024) eq. 2.2 (dot; kernelized with 1/2 |W x|^2) and -Psi*(-beta |xi - x|^2) / (2 beta)."""
    s = ref_scores(kind, mem, x, w)
    if kind.endswith("dot"):
        fx = w @ x if kind.startswith("kernel_") else x
        return 0.5 * fx @ fx - tsallis_conjugate(beta * s, alpha) / beta
    return -tsallis_conjugate(beta * s, alpha) / (2 * beta)


@pytest.mark.parametrize("kind", ACCEPTED)
@pytest.mark.parametrize("alpha", [1.0, 1.25, 1.5, 2.0])
@pytest.mark.parametrize("beta", [0.3, 4.0])
def test_energy_matches_float64_reference(x64, kind, alpha, beta):
    got = float(sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta, alpha, similarity=similarity(kind, W)))
    np.testing.assert_allclose(got, ref_energy(kind, X, MEM, beta, alpha, W), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ACCEPTED)
@pytest.mark.parametrize("alpha", [1.0, 1.3, 2.0])
def test_gradient_vanishes_exactly_at_the_update(x64, kind, alpha):
    """grad E = A (x - Xi^T Sep(beta s)) with A = I, or W^T W when kernelized: fixed points are stationary points."""
    beta = 1.7
    sim = similarity(kind, W)
    grad = np.asarray(jax.grad(sparse_hopfield_energy)(jnp.asarray(X), jnp.asarray(MEM), beta, alpha, similarity=sim))
    p = entmax_bisect(beta * ref_scores(kind, MEM, X, W), alpha)
    a = W.T @ W if kind.startswith("kernel_") else np.eye(6)
    np.testing.assert_allclose(grad, a @ (X - p @ MEM), rtol=1e-7, atol=1e-7)
    step = np.asarray(sparse_hopfield_update(jnp.asarray(X), jnp.asarray(MEM), beta, alpha, similarity=sim))
    np.testing.assert_allclose(step, p @ MEM, rtol=1e-8, atol=1e-8)


def test_neg_sq_l2_at_alpha_one_is_the_rbf_energy_at_twice_beta(x64):
    """Hoover et al. (2024) eq. 11 / eq. 18 at 2 beta: an independent implementation of the same pair."""
    for beta in (0.2, 3.0):
        e = sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta, 1.0, similarity="neg_sq_l2")
        np.testing.assert_allclose(float(e), float(rbf_energy(jnp.asarray(X), jnp.asarray(MEM), 2 * beta)), rtol=1e-12)
        t = sparse_hopfield_update(jnp.asarray(X), jnp.asarray(MEM), beta, 1.0, similarity="neg_sq_l2")
        np.testing.assert_allclose(np.asarray(t), np.asarray(rbf_update(jnp.asarray(X), jnp.asarray(MEM), 2 * beta)))


def test_modern_hopfield_is_alpha_one_and_matches_eq11(x64):
    beta = 2.0
    e = float(modern_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta))
    a = beta * MEM @ X
    want = -(a.max() + np.log(np.exp(a - a.max()).sum())) / beta + 0.5 * X @ X
    np.testing.assert_allclose(e, want, rtol=1e-12)
    np.testing.assert_allclose(e, float(sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), beta, 1.0)), rtol=1e-9)


def _descent_traces(kind, alpha, seeds, steps=8, k=6, d=5, f=7, clamp=None):
    """Energies along `steps` updates from random (memories, query, beta, W), one row per seed, float64.

    With a (d,) boolean ``clamp`` the clamped coordinates are reset to the query's after each update.
    """
    rng = np.random.default_rng(seeds)
    mems = jnp.asarray(rng.standard_normal((seeds, k, d)))
    xs = jnp.asarray(2.0 * rng.standard_normal((seeds, d)))
    betas = jnp.asarray(rng.uniform(0.1, 6.0, seeds))
    ws = jnp.asarray(rng.standard_normal((seeds, f, d)))

    def run(mem, x, beta, w):
        sim = similarity(kind, w)

        def step(x_t, _):
            x_t = sparse_hopfield_update(x_t, mem, beta, alpha, similarity=sim)
            if clamp is not None:
                x_t = jnp.where(clamp, x, x_t)
            return x_t, sparse_hopfield_energy(x_t, mem, beta, alpha, similarity=sim)

        _, es = jax.lax.scan(step, x, None, length=steps)
        return jnp.concatenate([sparse_hopfield_energy(x, mem, beta, alpha, similarity=sim)[None], es])

    return np.asarray(jax.jit(jax.vmap(run))(mems, xs, betas, ws))


@pytest.mark.parametrize("kind", ACCEPTED)
@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_updates_never_increase_the_energy(x64, kind, alpha):
    """Wu et al. (2024) Thm. 2.1: the update is a CCCP step of its energy, for every accepted similarity."""
    traces = _descent_traces(kind, alpha, seeds=48)
    rises = np.diff(traces, axis=1)
    assert np.all(rises <= 1e-9 * (1.0 + np.abs(traces[:, :-1]))), rises.max()
    assert np.mean(traces[:, 1] < traces[:, 0] - 1e-3) > 0.5  # the instances move: the check is not vacuous


@pytest.mark.parametrize("kind", ["dot", "neg_sq_l2"])
@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_clamped_updates_never_increase_the_energy(x64, kind, alpha):
    """With the convex part 1/2 |x|^2, resetting visible coordinates is the CCCP step of the restricted energy."""
    traces = _descent_traces(kind, alpha, seeds=32, clamp=jnp.arange(5) < 2)
    assert np.all(np.diff(traces, axis=1) <= 1e-9 * (1.0 + np.abs(traces[:, :-1])))
    assert np.mean(traces[:, 1] < traces[:, 0] - 1e-3) > 0.5


def test_kernel_descent_holds_for_a_narrow_kernel_too(x64):
    """For any W (here F < D) the update minimises the CCCP bound, so it still never increases E_K."""
    for alpha in (1.0, 2.0):
        traces = _descent_traces("kernel_dot", alpha, seeds=24, f=3)
        assert np.all(np.diff(traces, axis=1) <= 1e-9 * (1.0 + np.abs(traces[:, :-1])))


def test_a_declared_similarity_gets_its_energy(x64):
    """A Similarity with energy_scale=1 is treated as a dot product in feature space: 1/2 sim(x, x) self term."""
    shifted = Similarity("dot_plus_one", lambda m, x: m @ x + 1.0, energy_scale=1.0)
    got = float(sparse_hopfield_energy(jnp.asarray(X), jnp.asarray(MEM), 2.0, 1.5, similarity=shifted))
    want = 0.5 * (X @ X + 1.0) - tsallis_conjugate(2.0 * (MEM @ X + 1.0), 1.5) / 2.0
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("name", ["neg_l1", "cosine"])
def test_update_accepts_similarities_without_an_energy(x64, name):
    """One-step L1 / cosine retrieval (baselines of Wu et al. (2024), Sec. 4.1): Xi^T Sep(beta s)."""
    s = -np.abs(MEM - X).sum(-1) if name == "neg_l1" else MEM @ X / np.linalg.norm(MEM, axis=-1) / np.linalg.norm(X)
    for alpha in (1.0, 2.0):
        got = sparse_hopfield_update(jnp.asarray(X), jnp.asarray(MEM), 1.5, alpha, similarity=name)
        np.testing.assert_allclose(np.asarray(got), entmax_bisect(1.5 * s, alpha) @ MEM, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "sim, name",
    [
        ("neg_l1", "neg_l1"),
        ("cosine", "cosine"),
        (lambda m, x: m @ x, "<lambda>"),
        (kernelize("neg_l1", jnp.ones((2, 3))), "kernelize(neg_l1)"),
        (kernelize("cosine", jnp.ones((2, 3))), "kernelize(cosine)"),
    ],
)
def test_energy_refuses_similarities_without_an_energy(sim, name):
    with pytest.raises(ValueError, match=rf"sparse_hopfield_energy: similarity '{re.escape(name)}' has no energy"):
        sparse_hopfield_energy(jnp.ones(3), jnp.ones((2, 3)), 1.0, 1.5, similarity=sim)


def test_sparsemax_retrieval_lands_exactly_on_a_stored_pattern():
    mem = jnp.asarray(RNG.standard_normal((5, 16)), jnp.float32)
    x = mem[2] + 0.1 * jnp.asarray(RNG.standard_normal(16), jnp.float32)
    for _ in range(3):
        x = sparse_hopfield_update(x, mem, 2.0, 2.0)
    np.testing.assert_allclose(np.asarray(x), np.asarray(mem[2]), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([1.0, 1.2, 1.8]), beta=st.floats(0.1, 20.0))
def test_float32_cccp_steps_with_traced_alpha_never_increase_the_energy(seed, alpha, beta):
    rng = np.random.default_rng(seed)
    mem = jnp.asarray(rng.standard_normal((1 + 4 * (seed % 3), 5)), jnp.float32)  # K in {1, 5, 9}
    x = jnp.asarray(rng.standard_normal(5) * 2, jnp.float32)
    energy, step = jax.jit(sparse_hopfield_energy), jax.jit(sparse_hopfield_update)
    e_prev = float(energy(x, mem, beta, alpha))
    for _ in range(6):
        x = step(x, mem, beta, alpha)
        e = float(energy(x, mem, beta, alpha))
        assert e <= e_prev + 1e-4 * (1.0 + abs(e_prev)), (e_prev, e)
        e_prev = e


def test_beta_alpha_and_kernel_weight_are_traced_no_retrace():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, beta, alpha, w):
        sim = kernelize("neg_sq_l2", w)
        return sparse_hopfield_energy(x, jnp.asarray(MEM, jnp.float32), beta, alpha, similarity=sim)

    values = []
    for beta, alpha, scale in [(1.0, 1.2, 1.0), (2.0, 1.7, 0.5), (3.0, 2.0, 2.0), (0.5, 1.0, 1.5)]:
        values.append(float(f(jnp.asarray(X, jnp.float32), beta, alpha, jnp.asarray(scale * W, jnp.float32))))
    assert np.all(np.isfinite(values)) and len(set(values)) == 4


def test_traced_beta_out_of_range_gives_nan():
    """Concrete beta <= 0 raises; traced (unknowable at trace time) it gives NaN, never a silent number."""
    mem, x = jnp.asarray(MEM, jnp.float32), jnp.asarray(X, jnp.float32)
    for fn in (sparse_hopfield_energy, sparse_hopfield_update):
        out = jax.jit(lambda b, fn=fn: fn(x, mem, b, 1.5))(-1.0)
        assert np.all(np.isnan(np.asarray(out)))
        assert np.all(np.isfinite(np.asarray(jax.jit(lambda b, fn=fn: fn(x, mem, b, 1.5))(1.0))))


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


ONES, MEM23 = jnp.ones(3), jnp.ones((2, 3))


@pytest.mark.parametrize("fn", [sparse_hopfield_energy, sparse_hopfield_update])
@pytest.mark.parametrize(
    "beta, alpha, kwargs, match",
    [
        (1.0, 2.5, {}, r"alpha must lie in \[1, 2\], got 2.5"),
        (1.0, 0.9, {}, r"alpha must lie in \[1, 2\], got 0.9"),
        (1.0, jnp.ones(3) * 1.5, {}, r"alpha must be a scalar, got an array of shape \(3,\)"),
        (0.0, 1.5, {}, r"beta must be finite and > 0, got \[0.0\]"),
        (-2.0, 1.5, {}, r"beta must be finite and > 0, got \[-2.0\]"),
        (jnp.inf, 1.5, {}, "beta must be finite"),
        ("1", 1.5, {}, "beta must be a real number or array, got str"),
        (jnp.ones(3), 1.5, {}, r"beta must be a scalar, got an array of shape \(3,\)"),
        (jnp.ones(2), 1.5, {}, r"beta must be a scalar, got an array of shape \(2,\)"),  # one per memory: refused
        (1.0, 1.5, dict(similarity="l2"), "unknown similarity 'l2'"),
        (1.0, 1.5, dict(similarity=lambda m, x: m[:1] @ x), r"returned scores of shape \(1,\) for 2 memories"),
        (1.0, 1.5, dict(similarity=lambda m, x: m @ m.T), r"returned scores of shape \(2, 2\)"),
    ],
)
def test_bad_inputs_name_the_function_and_argument(fn, beta, alpha, kwargs, match):
    if fn is sparse_hopfield_energy and "similarity" in kwargs and callable(kwargs["similarity"]):
        kwargs = dict(similarity=Similarity("bad", kwargs["similarity"], energy_scale=1.0))
    with pytest.raises((ValueError, TypeError), match=rf"{fn.__name__}: .*{match}"):
        fn(ONES, MEM23, beta, alpha, **kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: modern_hopfield_energy(ONES, MEM23, 0.0), "modern_hopfield_energy: beta must be finite and > 0"),
        (lambda: modern_hopfield_energy(ONES, MEM23, jnp.ones(2)), "modern_hopfield_energy: beta must be a scalar"),
        (lambda: polynomial_energy(ONES, MEM23, 0), "power must be >= 1"),
        (lambda: polynomial_energy(ONES, MEM23, 2.5), "power must be an int"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
