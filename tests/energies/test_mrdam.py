import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dammem.energies import edp_energy, rbf_energy, rbf_update

RNG = np.random.default_rng(1)
D = 12
MEM = RNG.uniform(0, 1 / np.sqrt(D), (9, D))
X = RNG.uniform(0, 1 / np.sqrt(D), D)


def ref_rbf(x, mem, beta):
    a = -beta / 2 * ((mem - x) ** 2).sum(-1)
    m = a.max()
    return -(m + np.log(np.exp(a - m).sum())) / beta


def ref_edp(x, mem, beta):
    a = beta * mem @ (x / np.linalg.norm(x))
    m = a.max()
    return -(m + np.log(np.exp(a - m).sum())) / beta


@pytest.mark.parametrize("beta", [0.5, 10.0, 60.0, 1e4])
def test_rbf_energy_matches_eq11(x64, beta):
    got = float(rbf_energy(jnp.asarray(X), jnp.asarray(MEM), beta))
    assert np.isfinite(got)
    np.testing.assert_allclose(got, ref_rbf(X, MEM, beta), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [1.0, 30.0, 400.0])
def test_rbf_gradient_is_eq18(x64, beta):
    grad = np.asarray(jax.grad(rbf_energy)(jnp.asarray(X), jnp.asarray(MEM), beta))
    a = -beta / 2 * ((X - MEM) ** 2).sum(-1)
    w = np.exp(a - a.max())
    w /= w.sum()
    np.testing.assert_allclose(grad, X - w @ MEM, rtol=1e-9, atol=1e-12)


def test_rbf_update_is_the_zero_of_the_gradient_map(x64):
    beta = 20.0
    step = np.asarray(rbf_update(jnp.asarray(X), jnp.asarray(MEM), beta))
    grad = np.asarray(jax.grad(rbf_energy)(jnp.asarray(X), jnp.asarray(MEM), beta))
    np.testing.assert_allclose(step, X - grad, rtol=1e-10)


def test_rbf_energy_gradient_in_beta_and_memories_matches_finite_differences(x64):
    check_grads(lambda b, m: rbf_energy(jnp.asarray(X), m, b), (7.0, jnp.asarray(MEM)), order=1, modes=("rev",))


@pytest.mark.parametrize("beta", [1.0, 25.0])
def test_edp_energy_matches_eq7(x64, beta):
    np.testing.assert_allclose(
        float(edp_energy(jnp.asarray(X), jnp.asarray(MEM), beta)), ref_edp(X, MEM, beta), rtol=1e-10
    )


def test_edp_energy_is_scale_invariant_and_finite_at_zero(x64):
    e1 = edp_energy(jnp.asarray(X), jnp.asarray(MEM), 3.0)
    e2 = edp_energy(jnp.asarray(5 * X), jnp.asarray(MEM), 3.0)
    np.testing.assert_allclose(float(e1), float(e2), rtol=1e-12)
    e0 = edp_energy(jnp.zeros(D), jnp.asarray(MEM), 3.0)
    np.testing.assert_allclose(float(e0), -np.log(len(MEM)) / 3.0, rtol=1e-12)


def test_edp_gradient_is_finite_at_zero_and_matches_finite_differences_elsewhere(x64):
    """The double-where keeps grad E(0) = 0 (E has no derivative there); away from 0 it is the true gradient."""
    grad0 = np.asarray(jax.grad(edp_energy)(jnp.zeros(D), jnp.asarray(MEM), 3.0))
    np.testing.assert_array_equal(grad0, np.zeros(D))
    check_grads(jax.jit(lambda x: edp_energy(x, jnp.asarray(MEM), 3.0)), (jnp.asarray(X),), order=1, modes=("rev",))
    # analytic: grad E = -(I - g g^T) / |x| Xi^T softmax(beta Xi g), g = x / |x|
    g = X / np.linalg.norm(X)
    a = 3.0 * MEM @ g
    p = np.exp(a - a.max())
    p /= p.sum()
    want = -(np.eye(D) - np.outer(g, g)) @ (MEM.T @ p) / np.linalg.norm(X)
    np.testing.assert_allclose(
        np.asarray(jax.grad(edp_energy)(jnp.asarray(X), jnp.asarray(MEM), 3.0)), want, rtol=1e-10
    )


def test_edp_descent_from_a_fully_occluded_query_stays_finite():
    from dammem.dynamics import retrieve

    mem = jnp.asarray(MEM, jnp.float32)
    out = retrieve(edp_energy, jnp.zeros(D), (mem, 5.0), step_size=0.1, max_steps=20, tol=None)
    np.testing.assert_array_equal(np.asarray(out.x), np.zeros(D))  # x = 0 is a stationary point by convention
    np.testing.assert_allclose(float(out.energy), -np.log(len(MEM)) / 5.0, rtol=1e-6)


def test_traced_beta_out_of_range_gives_nan():
    mem, x = jnp.asarray(MEM, jnp.float32), jnp.asarray(X, jnp.float32)
    for fn in (rbf_energy, rbf_update, edp_energy):
        out = jax.jit(lambda b, fn=fn: fn(x, mem, b))(0.0)
        assert np.all(np.isnan(np.asarray(out))), fn.__name__


def test_stored_pattern_is_a_near_minimum_at_large_beta():
    mem = jnp.asarray(MEM, jnp.float32)
    e_at = rbf_energy(mem[0], mem, 500.0)
    e_off = rbf_energy(mem[0] + 0.05, mem, 500.0)
    assert float(e_at) < float(e_off)
    assert abs(float(e_at)) < 1e-3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rbf_energy(jnp.ones(3), jnp.ones((2, 3)), 0.0), "beta must be finite and > 0"),
        (lambda: rbf_energy(jnp.ones(3), jnp.ones((2, 3)), -1.0), "beta must be finite and > 0"),
        (lambda: rbf_update(jnp.ones(3), jnp.ones((2, 3)), 0.0), "rbf_update: beta must be finite and > 0"),
        (lambda: rbf_update(jnp.ones(3), jnp.ones((2, 3)), -3.0), "rbf_update: beta must be finite and > 0"),
        (lambda: edp_energy(jnp.ones(3), jnp.ones((2, 3)), -3.0), "edp_energy: beta must be finite and > 0"),
        (lambda: rbf_energy(jnp.ones(3), jnp.ones((2, 3)), "1"), "rbf_energy: beta must be a real number or array"),
        (
            lambda: rbf_energy(jnp.ones(3), jnp.ones((2, 3)), jnp.ones(3)),
            r"rbf_energy: beta must be a scalar, .*\(3,\)",
        ),
        (
            lambda: rbf_update(jnp.ones(3), jnp.ones((2, 3)), jnp.ones(2)),
            r"rbf_update: beta must be a scalar, .*\(2,\)",
        ),
        (lambda: rbf_energy(jnp.ones((2, 3)), jnp.ones((2, 3)), 1.0), "one query of shape"),
        (lambda: rbf_energy(jnp.ones(4), jnp.ones((2, 3)), 1.0), "D=3 but x has D=4"),
        (lambda: edp_energy(jnp.ones(3), jnp.ones(3), 1.0), r"memories must have shape \(K, D\)"),
        (lambda: rbf_update(jnp.ones(3), jnp.ones((0, 3)), 1.0), "at least 1 pattern"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
