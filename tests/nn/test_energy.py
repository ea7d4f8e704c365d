"""EnergyDescent: the layer equals an explicit loop of gradient (or fixed-point) steps, its gradients equal finite
differences, optimizers see only its nnx.Param state, and bad configurations raise errors naming the argument."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.test_util import check_grads

from dammem.energies import edp_energy, modern_hopfield_energy, rbf_energy, rbf_update, sparse_hopfield_energy
from dammem.nn.energy import ENERGIES, EnergyDescent
from dammem.nn.variables import MemoryState

K, D, B = 5, 6, 3
RNG = np.random.default_rng(0)
MEM = RNG.uniform(-1, 1, (K, D)) / np.sqrt(D)
X = MEM[:B] + 0.1 * RNG.standard_normal((B, D))
VISIBLE = np.arange(D) < 2


def layer(energy="rbf", *, steps=6, step_size=0.4, beta=3.0, dtype=jnp.float64, **kw):
    mod = EnergyDescent(K, D, energy=energy, steps=steps, step_size=step_size, beta=beta, param_dtype=dtype,
                        rngs=nnx.Rngs(0), **kw)
    mod.write(MEM)
    return mod


def numpy_rbf_descent(x, memories, beta, eta, steps, free=None):
    """Reference: x <- x - eta (x - softmax(-beta/2 ||x - Xi||^2) Xi) (Hoover et al. (2024), eqs. 5, 18), float64."""
    for _ in range(steps):
        a = -beta / 2 * ((memories[None] - x[:, None]) ** 2).sum(-1)
        w = np.exp(a - a.max(-1, keepdims=True))
        grad = x - (w / w.sum(-1, keepdims=True)) @ memories
        if free is not None:
            grad = grad * free
        x = x - eta * grad
    return x


def loop_descent(energy, x, memories, beta, eta, steps, free=None):
    """An explicit Python loop of gradient steps (batched by vmap), for comparing values and derivatives."""
    grad = jax.vmap(jax.grad(energy), in_axes=(0, None, None))
    for _ in range(steps):
        g = grad(x, memories, beta)
        x = x - eta * (g if free is None else g * free)
    return x


def test_descent_matches_the_numpy_reference_with_and_without_clamp(x64):
    mod = layer()
    np.testing.assert_allclose(np.asarray(mod(X)), numpy_rbf_descent(X, MEM, 3.0, 0.4, 6), rtol=1e-12, atol=1e-12)
    out = np.asarray(mod(X, VISIBLE))
    ref = numpy_rbf_descent(X, MEM, 3.0, 0.4, 6, free=(~VISIBLE).astype(float))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert np.all(out[:, VISIBLE] == X[:, VISIBLE])
    per_query = np.stack([VISIBLE, ~VISIBLE, VISIBLE])  # a mask per query
    out = np.asarray(mod(X, per_query))
    for b in range(B):
        ref = numpy_rbf_descent(X[b : b + 1], MEM, 3.0, 0.4, 6, free=(~per_query[b]).astype(float))
        np.testing.assert_allclose(out[b : b + 1], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rbf", "edp", "modern_hopfield"])
def test_each_named_energy_is_the_one_descended(x64, name):
    fn = {"rbf": rbf_energy, "edp": edp_energy, "modern_hopfield": modern_hopfield_energy}[name]
    assert ENERGIES[name] is fn
    mod = layer(name, beta=2.0)
    np.testing.assert_allclose(mod(X), loop_descent(fn, X, MEM, 2.0, 0.4, 6), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mod.energy(X), jax.vmap(fn, (0, None, None))(X, MEM, 2.0), rtol=1e-14)


def test_a_callable_energy_and_leading_batch_axes(x64):
    energy = partial(sparse_hopfield_energy, alpha=1.5)
    mod = layer(energy, beta=2.0)
    xs = np.stack([X, X[::-1]])  # (2, B, D)
    out = mod(xs)
    assert out.shape == xs.shape
    np.testing.assert_allclose(out[1], loop_descent(energy, X[::-1], MEM, 2.0, 0.4, 6), rtol=1e-10, atol=1e-12)
    assert mod.energy(xs).shape == (2, B)


def test_fixed_point_update_equals_iterating_it_with_the_clamp_reset(x64):
    mod = layer(update=rbf_update, step_size=None, steps=4)
    x = X.copy()
    for _ in range(4):
        x = np.asarray(jax.vmap(rbf_update, (0, None, None))(x, MEM, 3.0))
        x = np.where(VISIBLE, X, x)
    np.testing.assert_allclose(mod(X, VISIBLE), x, rtol=1e-12, atol=1e-12)


def _as_function(mod, x, clamp=None):
    """The layer's output as a function of (memories, log beta)."""
    graphdef, state = nnx.split(mod)

    def f(memories, log_beta):
        inner = nnx.merge(graphdef, state, copy=True)  # a copy whose variables live in this trace
        inner.memories[...] = memories
        inner.log_beta[...] = log_beta
        return inner(x, clamp)

    return f


def test_gradients_to_memories_and_beta_match_finite_differences_and_the_explicit_loop(x64):
    mod = layer(learn_beta=True)
    f = _as_function(mod, jnp.asarray(X), jnp.asarray(VISIBLE))
    log_beta = jnp.log(3.0)
    check_grads(f, (jnp.asarray(MEM), log_beta), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-6)

    weights = jnp.asarray(RNG.standard_normal((B, D)))
    free = jnp.asarray(~VISIBLE, jnp.float64)

    def loss_layer(memories, log_beta):
        return jnp.sum(weights * f(memories, log_beta))

    def loss_loop(memories, log_beta):
        return jnp.sum(weights * loop_descent(rbf_energy, jnp.asarray(X), memories, jnp.exp(log_beta), 0.4, 6, free))

    got = jax.grad(loss_layer, argnums=(0, 1))(jnp.asarray(MEM), log_beta)
    want = jax.grad(loss_loop, argnums=(0, 1))(jnp.asarray(MEM), log_beta)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    assert float(jnp.abs(got[1])) > 1e-4 and float(jnp.abs(got[0]).max()) > 1e-3


def test_optimizer_over_params_trains_beta_and_memories_but_never_fixed_memories():
    def train(mod):
        opt = nnx.Optimizer(mod, optax.sgd(0.5), wrt=nnx.Param)
        x, target = jnp.asarray(X, jnp.float32), jnp.asarray(MEM[:B], jnp.float32)

        @nnx.jit
        def step(mod, opt):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(mod)
            opt.update(mod, grads)
            return loss

        losses = [float(step(mod, opt)) for _ in range(5)]
        return losses

    fixed = layer(learn_beta=True, learn_memories=False, dtype=jnp.float32, beta=1.0)
    assert isinstance(fixed.memories, MemoryState)
    before = np.asarray(fixed.memories[...])
    losses = train(fixed)
    assert np.array_equal(np.asarray(fixed.memories[...]), before)  # stored patterns are not trained
    assert float(fixed.beta) != 1.0 and losses[-1] < losses[0]

    learned = layer(dtype=jnp.float32, beta=1.0)
    losses = train(learned)
    assert not np.array_equal(np.asarray(learned.memories[...]), np.asarray(MEM, np.float32))
    assert learned.beta == 1.0 and losses[-1] < losses[0]  # a fixed beta stays a float


def test_beta_is_traced_under_jit():
    mod = layer(learn_beta=True, dtype=jnp.float32)
    traces = []

    @nnx.jit
    def run(mod, x):
        traces.append(1)
        return mod(x)

    a = run(mod, jnp.asarray(X, jnp.float32))
    mod.log_beta[...] = jnp.log(jnp.float32(0.5))
    b = run(mod, jnp.asarray(X, jnp.float32))
    assert len(traces) == 1 and not np.allclose(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_memories=0), "EnergyDescent: num_memories"),
        (dict(in_features=-1), "EnergyDescent: in_features"),
        (dict(energy="hopfield"), "EnergyDescent: energy must be one of"),
        (dict(energy=3), "EnergyDescent: energy must be a name"),
        (dict(step_size=None), "EnergyDescent: step_size .* is required"),
        (dict(step_size=0.0), "EnergyDescent: step_size must be a finite float > 0"),
        (dict(update=rbf_update), "EnergyDescent: step_size must be None with a fixed-point update"),
        (dict(update="rbf"), "EnergyDescent: update must be a callable"),
        (dict(beta=-1.0), "EnergyDescent: beta must be a finite float > 0, got -1.0"),
        (dict(steps=-2), "EnergyDescent: steps"),
    ],
)
def test_bad_configurations(kwargs, match):
    args = dict(num_memories=K, in_features=D, step_size=0.1) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        EnergyDescent(args.pop("num_memories"), args.pop("in_features"), rngs=nnx.Rngs(0), **args)


def test_bad_inputs():
    mod = layer(dtype=jnp.float32)
    with pytest.raises(ValueError, match=r"EnergyDescent: x must have shape \(\.\.\., D\) with D = 6"):
        mod(jnp.ones((2, D + 1)))
    with pytest.raises(TypeError, match=r"EnergyDescent: clamp must be a boolean mask \(True = visible\)"):
        mod(jnp.ones((2, D)), jnp.ones(D))
    with pytest.raises(ValueError, match="EnergyDescent: clamp of shape .* does not broadcast"):
        mod(jnp.ones((2, D)), jnp.ones((3, D), bool))
    with pytest.raises(ValueError, match=r"EnergyDescent.write: memories must have shape \(K, D\) = \(5, 6\)"):
        mod.write(jnp.ones((K + 1, D)))
