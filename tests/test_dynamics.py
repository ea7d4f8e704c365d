import subprocess
import sys
import textwrap
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.dynamics import retrieve
from dammem.energies import edp_energy, rbf_energy, rbf_update, sparse_hopfield_energy, sparse_hopfield_update
from dammem.similarities import kernelize
from dammem.uhop import kernel_energy, kernel_update

RNG = np.random.default_rng(4)
D = 10
MEM = RNG.uniform(0, 1 / np.sqrt(D), (6, D))
X0 = MEM[1] + 0.05 * RNG.standard_normal(D)


def numpy_descent(x, beta, eta, steps, tol=None, free=None):
    """Reference: x <- x - eta (x - softmax(-beta/2 ||x - Xi||^2) Xi) (Hoover et al. (2024), eqs. 5, 18), float64."""

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


def explicit_iteration(step, energy, x0, max_steps, tol=None, clamp=None):
    """Reference for retrieve: a Python loop of `step` (an update or a gradient step), clamp reset, tol stop."""
    x, energies = x0, [float(energy(x0))]
    for t in range(max_steps):
        x = step(x)
        if clamp is not None:
            x = jnp.where(clamp, x0, x)
        energies.append(float(energy(x)))
        if tol is not None and abs(energies[-1] - energies[-2]) < tol:
            return x, t + 1, True, energies
    return x, max_steps, False, energies


def tol_stopping_part_way(energies, first=3, last=10):
    """A tol at which the |dE| < tol rule first holds at a step in [first, last] (asserted to exist)."""
    change = np.abs(np.diff(energies))
    for step in range(first, last + 1):
        earlier = change[: step - 1].min()
        if change[step - 1] < earlier:
            return 0.5 * (change[step - 1] + earlier)
    raise AssertionError(f"no step in [{first}, {last}] sets a new minimum |dE|: {change}")


KERNEL = RNG.standard_normal((D + 2, D)) / np.sqrt(D + 2)
UPDATES = {  # (energy, update, args); the arrays are made inside the float64 tests
    "rbf": (rbf_energy, rbf_update, lambda: (jnp.asarray(MEM), 30.0)),
    "sparse_neg_sq_l2": (
        partial(sparse_hopfield_energy, similarity="neg_sq_l2"),
        partial(sparse_hopfield_update, similarity="neg_sq_l2"),
        lambda: (jnp.asarray(MEM), 3.0, 2.0),
    ),
    "sparse_kernel_dot": (
        kernel_energy,
        kernel_update,
        lambda: (jnp.asarray(MEM), 3.0, 1.5, kernelize("dot", jnp.asarray(KERNEL))),
    ),
}


@pytest.mark.parametrize("loop", ["while", "scan"])
@pytest.mark.parametrize("name", sorted(UPDATES))
def test_fixed_point_retrieval_equals_an_explicit_iteration_of_the_update(x64, name, loop):
    """Free run to max_steps, and a clamped run stopped part-way by tol: state, steps, converged, trace."""
    energy, update, make_args = UPDATES[name]
    args = make_args()
    assert args[0].dtype == jnp.float64
    step, value = jax.jit(lambda x: update(x, *args)), jax.jit(lambda x: energy(x, *args))
    x0 = jnp.asarray(np.random.default_rng(7).standard_normal(D) * 0.3)
    mask = jnp.asarray(np.arange(D) < 3)
    _, _, _, e_clamped = explicit_iteration(step, value, x0, 12, clamp=mask)
    for clamp, tol in ((None, None), (mask, tol_stopping_part_way(e_clamped))):
        out = retrieve(energy, x0, args, update=update, clamp=clamp, max_steps=12, tol=tol, loop=loop, trace=True)
        x_ref, steps, converged, e_ref = explicit_iteration(step, value, x0, 12, tol=tol, clamp=clamp)
        np.testing.assert_allclose(np.asarray(out.x), np.asarray(x_ref), rtol=1e-12, atol=1e-14)
        assert (int(out.steps), bool(out.converged)) == (steps, converged)
        padded = e_ref + [e_ref[-1]] * (12 + 1 - len(e_ref))
        np.testing.assert_allclose(np.asarray(out.trace), padded, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(float(out.energy), e_ref[-1], rtol=1e-12, atol=1e-14)
        if tol is None:
            assert steps == 12 and not converged
        else:
            assert 3 <= steps <= 10 and converged  # the stop is part-way: an off-by-one would show
            np.testing.assert_array_equal(np.asarray(out.x)[:3], np.asarray(x0)[:3])


@pytest.mark.parametrize("loop", ["while", "scan"])
def test_energy_descent_equals_an_explicit_gradient_loop(x64, loop):
    """Clamped descent of the sparse Hopfield energy, run to max_steps and stopped part-way by tol."""
    energy = partial(sparse_hopfield_energy, similarity="neg_sq_l2")
    args = (jnp.asarray(MEM), 20.0, 1.5)
    grad, value = jax.jit(jax.grad(lambda x: energy(x, *args))), jax.jit(lambda x: energy(x, *args))
    clamp = jnp.asarray(np.arange(D) % 3 == 0)
    x0 = jnp.where(clamp, jnp.asarray(X0), 0.0)
    free = (~clamp).astype(jnp.float64)
    step = lambda x: x - 0.4 * grad(x) * free  # noqa: E731
    _, _, _, e_ref = explicit_iteration(step, value, x0, 30)
    for tol in (None, tol_stopping_part_way(e_ref)):
        out = retrieve(energy, x0, args, step_size=0.4, clamp=clamp, max_steps=30, tol=tol, loop=loop, trace=True)
        x_ref, steps, converged, e_ref = explicit_iteration(step, value, x0, 30, tol=tol)
        np.testing.assert_allclose(np.asarray(out.x), np.asarray(x_ref), rtol=1e-11, atol=1e-13)
        assert (int(out.steps), bool(out.converged)) == (steps, converged)
        assert steps == 30 if tol is None else 3 <= steps <= 10
        padded = e_ref + [e_ref[-1]] * (30 + 1 - len(e_ref))
        np.testing.assert_allclose(np.asarray(out.trace), padded, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("loop", ["while", "scan"])
@pytest.mark.parametrize("descent", [False, True])
def test_mixed_dtypes_run_in_the_common_dtype_and_return_x0s(loop, descent):
    """A bf16 query with float32 memories: the update returns float32; the run is the float32 run, cast back."""
    mem = jnp.asarray(MEM, jnp.float32)
    x0 = jnp.asarray(X0, jnp.bfloat16)
    kw = dict(step_size=0.3) if descent else dict(update=rbf_update)
    out = retrieve(rbf_energy, x0, (mem, 30.0), max_steps=10, tol=1e-7, loop=loop, trace=True, **kw)
    ref = retrieve(rbf_energy, x0.astype(jnp.float32), (mem, 30.0), max_steps=10, tol=1e-7, loop=loop, trace=True, **kw)
    assert out.x.dtype == jnp.bfloat16 and out.energy.dtype == jnp.float32
    # two programs (a bf16 and a float32 input): float32 energies agree to a few ulp per step, states to one bf16 ulp;
    # the step count of a tol-stopped loop may differ by one across programs
    np.testing.assert_allclose(np.asarray(out.x, np.float32), np.asarray(ref.x, np.float32), rtol=2**-7, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.trace), np.asarray(ref.trace), rtol=1e-5, atol=1e-6)
    assert abs(int(out.steps) - int(ref.steps)) <= 1


@pytest.mark.parametrize("loop", ["while", "scan"])
def test_float32_query_with_float64_memories(x64, loop):
    x0 = jnp.asarray(X0, jnp.float32)
    out = retrieve(rbf_energy, x0, (jnp.asarray(MEM), 30.0), update=rbf_update, max_steps=8, loop=loop)
    ref = retrieve(rbf_energy, x0.astype(jnp.float64), (jnp.asarray(MEM), 30.0), update=rbf_update, max_steps=8)
    assert out.x.dtype == jnp.float32 and out.energy.dtype == jnp.float64
    # float64 runs of two programs (float32 and float64 query), compared after rounding to float32: one float32 ulp
    np.testing.assert_allclose(np.asarray(out.x), np.asarray(ref.x).astype(np.float32), rtol=2**-23, atol=1e-12)


def test_eager_calls_reuse_the_compiled_code():
    """Eager retrieve is jitted: new values of x0, memories, beta, step size and kernel weights never re-trace."""
    traces = []

    def energy(x, memories, beta):
        traces.append(1)
        return rbf_energy(x, memories, beta)

    mem = jnp.asarray(MEM, jnp.float32)
    first = retrieve(energy, jnp.asarray(X0, jnp.float32), (mem, 10.0), step_size=0.1, max_steps=5)
    count = len(traces)
    for i in range(200):
        x0 = jnp.asarray(X0 + 0.001 * i, jnp.float32)
        retrieve(energy, x0, (mem * (1 + i / 200), 10.0 + i), step_size=0.1 + i / 1000, max_steps=5)
    assert len(traces) == count
    again = retrieve(energy, jnp.asarray(X0, jnp.float32), (mem, 10.0), step_size=0.1, max_steps=5)
    np.testing.assert_array_equal(np.asarray(again.x), np.asarray(first.x))

    # new but equal functools.partial objects share the compiled code; so do kernel weights passed in args
    def counting(x, memories, beta, alpha, *, similarity):
        traces.append(1)
        return sparse_hopfield_energy(x, memories, beta, alpha, similarity=similarity)

    traces.clear()
    for beta in (1.0, 2.0, 3.0):
        e = partial(counting, similarity="neg_sq_l2")
        t = partial(sparse_hopfield_update, similarity="neg_sq_l2")
        retrieve(e, jnp.asarray(X0, jnp.float32), (mem, beta, 2.0), update=t, max_steps=3)
        if beta == 1.0:
            count = len(traces)
    assert len(traces) == count

    def kernel_energy(x, memories, beta, alpha, sim):
        traces.append(1)
        return sparse_hopfield_energy(x, memories, beta, alpha, similarity=sim)

    traces.clear()
    for scale in (1.0, 0.5, 2.0):
        sim = kernelize("dot", jnp.asarray(scale * np.eye(D), jnp.float32))
        retrieve(kernel_energy, jnp.asarray(X0, jnp.float32), (mem, 1.0, 1.0, sim), step_size=0.1, max_steps=3)
        if scale == 1.0:
            count = len(traces)
    assert len(traces) == count


def test_partials_compare_by_function_and_arguments():
    traces = []

    def energy(x, memories, beta, *, scale):
        traces.append(1)
        return scale * rbf_energy(x, memories, beta)

    mem = jnp.asarray(MEM, jnp.float32)
    out, counts = [], []
    for scale in (1.0, 1.0, 2.0):
        out.append(float(retrieve(partial(energy, scale=scale), X0, (mem, 10.0), step_size=0.1, max_steps=4).energy))
        counts.append(len(traces))
    assert counts[0] > 0 and counts[1] == counts[0] and counts[2] == 2 * counts[0]
    assert out[0] == out[1] != out[2]  # a different scale is not served from the cache


def test_eager_calls_keep_memory_flat_in_a_fresh_process():
    """200 eager calls after warm-up: peak RSS grows by under 10 MB and nothing compiles again."""
    script = textwrap.dedent(
        """
        import resource
        import jax, jax.numpy as jnp, numpy as np
        from dammem import retrieve
        from dammem.energies import rbf_energy, rbf_update

        traces = []
        def energy(x, memories, beta):
            traces.append(1)
            return rbf_energy(x, memories, beta)

        rng = np.random.default_rng(0)
        mem = jnp.asarray(rng.uniform(0, 0.3, (50, 64)), jnp.float32)
        def call(i):
            x0 = mem[i % 50] + 0.01 * i
            a = retrieve(energy, x0, (mem, 10.0 + i % 7), step_size=0.2, max_steps=20, trace=True)
            b = retrieve(energy, x0, (mem, 10.0), update=rbf_update, max_steps=20, loop="scan")
            return float(a.energy) + float(b.energy)
        for i in range(20):
            call(i)
        count, before = len(traces), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(200):
            call(i)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(traces) - count, (after - before) / 1024)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    new_traces, growth_mb = done.stdout.split()
    assert int(new_traces) == 0
    assert float(growth_mb) < 10.0, growth_mb


def test_retrieve_inside_an_outer_jit_equals_the_eager_call(x64):
    args = (jnp.asarray(MEM), 30.0)
    eager = retrieve(rbf_energy, jnp.asarray(X0), args, update=rbf_update, max_steps=6, trace=True)
    jitted = jax.jit(lambda x, m: retrieve(rbf_energy, x, (m, 30.0), update=rbf_update, max_steps=6, trace=True))
    out = jitted(jnp.asarray(X0), jnp.asarray(MEM))
    np.testing.assert_allclose(np.asarray(out.x), np.asarray(eager.x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(out.trace), np.asarray(eager.trace), rtol=1e-13, atol=1e-15)


def test_invalid_beta_in_args_gives_nan_not_a_silent_number():
    """args are traced, so the energy's beta check cannot raise inside retrieve: the result is NaN (documented)."""
    out = retrieve(rbf_energy, jnp.asarray(X0, jnp.float32), (jnp.asarray(MEM, jnp.float32), -1.0), step_size=0.1)
    assert np.isnan(float(out.energy)) and np.all(np.isnan(np.asarray(out.x)))


def test_edp_descent_from_zero_stays_finite():
    out = retrieve(edp_energy, jnp.zeros(D), (jnp.asarray(MEM, jnp.float32), 5.0), step_size=0.1, max_steps=10)
    assert np.all(np.isfinite(np.asarray(out.x))) and np.isfinite(float(out.energy))


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
        (dict(step_size=0.1, clamp=jnp.ones(3, bool)), r"retrieve: clamp of shape \(3,\) does not broadcast to x0's"),
        (dict(step_size=0.1, clamp=jnp.ones(D)), r"retrieve: clamp must be a boolean mask \(True = visible\)"),
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
    with pytest.raises(ValueError, match=r"update must return the state's shape \(3,\), got \(2,\)"):
        retrieve(lambda x: jnp.sum(x), jnp.ones(3), update=lambda x: x[:2])
    with pytest.raises(TypeError, match="args are traced, so they must be arrays, numbers or pytrees of them; got str"):
        retrieve(rbf_energy, jnp.ones(3), (jnp.ones((2, 3)), "1.0"), step_size=0.1)
