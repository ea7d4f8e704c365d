from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.dynamics import retrieve
from dammem.energies import rbf_energy, rbf_update, sparse_hopfield_energy, sparse_hopfield_update

RNG = np.random.default_rng(4)
D = 10
MEM = RNG.uniform(0, 1 / np.sqrt(D), (6, D))
X0 = MEM[1] + 0.05 * RNG.standard_normal(D)


def numpy_descent(x, beta, eta, steps, tol=None, free=None):
    """Reference: x <- x - eta (x - softmax(-beta/2 ||x - Xi||^2) Xi) (seed 001 eqs. 5, 18), float64."""

    def energy(x):
        a = -beta / 2 * ((MEM - x) ** 2).sum(-1)
        return -(a.max() + np.log(np.exp(a - a.max()).sum())) / beta

    energies = [energy(x)]
    for t in range(steps):
        a = -beta / 2 * ((MEM - x) ** 2).sum(-1)
        w = np.exp(a - a.max())
        grad = x - (w / w.sum()) @ MEM
        if free is not None:
            grad = grad * free
        x = x - eta * grad
        energies.append(energy(x))
        if tol is not None and abs(energies[-1] - energies[-2]) < tol:
            return x, np.array(energies), t + 1
    return x, np.array(energies), steps


def test_energy_descent_matches_numpy_reference(x64):
    out = retrieve(
        rbf_energy, jnp.asarray(X0), (jnp.asarray(MEM), 30.0), step_size=0.3, max_steps=25, tol=None, trace=True
    )
    x_ref, e_ref, _ = numpy_descent(X0, 30.0, 0.3, 25)
    np.testing.assert_allclose(np.asarray(out.x), x_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.trace), e_ref, rtol=1e-10, atol=1e-12)
    assert int(out.steps) == 25 and not bool(out.converged)


def test_tolerance_rule_stops_where_the_reference_stops(x64):
    tol = 1e-7
    out = retrieve(
        rbf_energy, jnp.asarray(X0), (jnp.asarray(MEM), 30.0), step_size=0.3, max_steps=500, tol=tol, trace=True
    )
    x_ref, e_ref, steps = numpy_descent(X0, 30.0, 0.3, 500, tol=tol)
    assert int(out.steps) == steps < 500
    assert bool(out.converged)
    np.testing.assert_allclose(np.asarray(out.x), x_ref, rtol=1e-10, atol=1e-12)
    trace = np.asarray(out.trace)
    np.testing.assert_allclose(trace[: steps + 1], e_ref, rtol=1e-10, atol=1e-12)
    assert np.all(trace[steps:] == trace[steps])  # padded with the final energy


def test_scan_loop_equals_while_loop_and_freezes_after_convergence(x64):
    args = (jnp.asarray(MEM), 30.0)
    w = retrieve(rbf_energy, jnp.asarray(X0), args, step_size=0.3, max_steps=300, tol=1e-7)
    s = retrieve(rbf_energy, jnp.asarray(X0), args, step_size=0.3, max_steps=300, tol=1e-7, loop="scan", trace=True)
    np.testing.assert_allclose(np.asarray(s.x), np.asarray(w.x), rtol=1e-12)
    assert int(s.steps) == int(w.steps) and bool(s.converged)
    assert np.all(np.asarray(s.trace)[int(s.steps) :] == float(s.energy))


def test_clamped_coordinates_never_move_and_the_rest_follow_the_masked_reference(x64):
    visible = np.arange(D) < 4
    x0 = X0.copy()
    x0[~visible] = 0.0
    out = retrieve(
        rbf_energy,
        jnp.asarray(x0),
        (jnp.asarray(MEM), 30.0),
        step_size=0.5,
        clamp=jnp.asarray(visible),
        max_steps=40,
        tol=None,
    )
    x_ref, _, _ = numpy_descent(x0, 30.0, 0.5, 40, free=(~visible).astype(float))
    np.testing.assert_array_equal(np.asarray(out.x)[visible], x0[visible])
    np.testing.assert_allclose(np.asarray(out.x), x_ref, rtol=1e-10, atol=1e-12)
    fp = retrieve(
        rbf_energy,
        jnp.asarray(x0),
        (jnp.asarray(MEM), 30.0),
        update=rbf_update,
        clamp=jnp.asarray(visible),
        max_steps=10,
    )
    np.testing.assert_array_equal(np.asarray(fp.x)[visible], x0[visible])


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_fixed_point_dynamics_descend_the_energy(alpha):
    energy = partial(sparse_hopfield_energy, similarity="dot")
    update = partial(sparse_hopfield_update, similarity="dot")
    mem = jnp.asarray(RNG.standard_normal((7, D)), jnp.float32)
    out = retrieve(
        energy,
        jnp.asarray(RNG.standard_normal(D), jnp.float32),
        (mem, 3.0, alpha),
        update=update,
        max_steps=15,
        tol=None,
        trace=True,
    )
    assert np.all(np.diff(np.asarray(out.trace)) <= 1e-5)


def test_scan_is_differentiable_end_to_end(x64):
    def loss(beta, memories):
        out = retrieve(
            rbf_energy, jnp.asarray(X0), (memories, beta), step_size=0.2, max_steps=15, tol=None, loop="scan"
        )
        return jnp.sum(out.x**2)

    g_beta, g_mem = jax.grad(loss, argnums=(0, 1))(10.0, jnp.asarray(MEM))
    eps = 1e-6
    fd = (loss(10.0 + eps, jnp.asarray(MEM)) - loss(10.0 - eps, jnp.asarray(MEM))) / (2 * eps)
    np.testing.assert_allclose(float(g_beta), float(fd), rtol=1e-6, atol=1e-10)
    direction = jnp.asarray(RNG.standard_normal(MEM.shape))
    fd_mem = (loss(10.0, jnp.asarray(MEM) + eps * direction) - loss(10.0, jnp.asarray(MEM) - eps * direction)) / (
        2 * eps
    )
    np.testing.assert_allclose(float(jnp.sum(g_mem * direction)), float(fd_mem), rtol=1e-6, atol=1e-10)


def test_traced_beta_step_and_memories_do_not_retrace_and_vmap_matches_single():
    traces = []

    @jax.jit
    def run(x, memories, beta, eta):
        traces.append(1)
        return retrieve(rbf_energy, x, (memories, beta), step_size=eta, max_steps=50, tol=1e-6)

    mem = jnp.asarray(MEM, jnp.float32)
    for beta, eta in [(10.0, 0.1), (20.0, 0.5), (5.0, 1.0)]:
        run(jnp.asarray(X0, jnp.float32), mem * beta / 10, beta, eta)
    assert len(traces) == 1
    batch = jnp.asarray(MEM[:3] + 0.02, jnp.float32)
    many = jax.vmap(lambda x: retrieve(rbf_energy, x, (mem, 20.0), step_size=0.5, max_steps=100, tol=1e-6))(batch)
    for i in range(3):
        one = retrieve(rbf_energy, batch[i], (mem, 20.0), step_size=0.5, max_steps=100, tol=1e-6)
        np.testing.assert_allclose(np.asarray(many.x[i]), np.asarray(one.x), rtol=1e-6, atol=1e-7)
        assert int(many.steps[i]) == int(one.steps)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(step_size=None), "needs step_size"),
        (dict(step_size=0.0), "step_size must be finite and > 0"),
        (dict(step_size=0.1, update=rbf_update), "only used by energy descent"),
        (dict(step_size=0.1, max_steps=-3), "max_steps must be >= 0"),
        (dict(step_size=0.1, max_steps=2.5), "max_steps must be an int"),
        (dict(step_size=0.1, tol=-1.0), "tol must be finite and >= 0"),
        (dict(step_size=0.1, loop="fori"), "loop must be 'while' or 'scan'"),
        (dict(step_size=0.1, clamp=jnp.ones(3, bool)), "clamp must be a boolean mask of shape"),
        (dict(step_size=0.1, clamp=jnp.ones(D)), "clamp must be a boolean mask"),
        (dict(step_size=0.1, update="fixed"), "update must be a callable"),
        (dict(step_size=0.1, trace=1), "trace must be a bool"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        retrieve(rbf_energy, jnp.asarray(X0, jnp.float32), (jnp.asarray(MEM, jnp.float32), 1.0), **kwargs)


def test_bad_energy_and_state():
    with pytest.raises(TypeError, match="energy must be a callable"):
        retrieve("rbf", jnp.ones(3), (), step_size=0.1)
    with pytest.raises(ValueError, match="x0 must be one state"):
        retrieve(rbf_energy, jnp.ones((2, 3)), (jnp.ones((2, 3)), 1.0), step_size=0.1)
    with pytest.raises(TypeError, match="args must be a tuple"):
        retrieve(rbf_energy, jnp.ones(3), [jnp.ones((2, 3)), 1.0], step_size=0.1)
    with pytest.raises(ValueError, match="energy must return a scalar"):
        retrieve(lambda x: x, jnp.ones(3), update=lambda x: x)
