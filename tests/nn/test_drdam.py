"""DrDAMMemory: bit-identical to the dammem.drdam functions it wraps, close to MrDAM at large Y, add/remove undo
each other, its state is never an nnx.Param, and bad configurations raise errors naming the argument."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dammem import drdam, retrieve
from dammem.energies import rbf_energy
from dammem.nn.drdam import DrDAMMemory
from dammem.nn.variables import MemoryState, RandomFeatures

K, D, Y, BETA = 6, 8, 256, 4.0
RNG = np.random.default_rng(1)
MEM = jnp.asarray(RNG.uniform(-1, 1, (K, D)) / np.sqrt(D), jnp.float32)
X = jnp.asarray(np.asarray(MEM) + 0.1 * RNG.standard_normal((K, D)), jnp.float32)


def direct_features(kind, projection="gaussian", num_features=Y, seed=0):
    """The features the module draws: make_features with the first key of the params stream of Rngs(seed)."""
    return drdam.make_features(kind, D, num_features, key=nnx.Rngs(seed).params(), projection=projection)


@pytest.mark.parametrize("kind, projection", [("sincos", "gaussian"), ("exp", "structured")])
def test_write_energy_and_retrieve_are_bit_identical_to_the_drdam_functions(kind, projection):
    mod = DrDAMMemory(D, Y, kind=kind, projection=projection, beta=BETA, rngs=nnx.Rngs(0))
    f = direct_features(kind, projection)
    for name, value in f.params.items():
        want = jax.random.key_data(value) if name == "key" else value
        got = mod.random_features.get_value()[name]
        assert np.array_equal(jax.random.key_data(got) if name == "key" else got, want)

    mod.write(MEM)
    T = drdam.encode(f, MEM, BETA)
    assert np.array_equal(mod.t[...], T.t) and int(mod.count[...]) == K

    # one query: the same compiled kernel as the function (bit-identical); a batch is another (vmapped) program:
    # float32, a few ulp per reduction over the F features and over the steps
    assert np.array_equal(mod.energy(X[0]), drdam.energy(X[0], T, f, BETA))
    batch = jax.vmap(drdam.energy, (0, None, None, None))(X, T, f, BETA)
    np.testing.assert_allclose(mod.energy(X), batch, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mod.energy(X.reshape(2, 3, D)), batch.reshape(2, 3), rtol=1e-5, atol=1e-6)

    one = retrieve(drdam.energy, X[0], (T, f, BETA), step_size=0.3, max_steps=5, tol=None, loop="scan").x
    assert np.array_equal(mod.retrieve(X[0], 5, 0.3), one)
    each = jax.vmap(lambda q: retrieve(drdam.energy, q, (T, f, BETA), step_size=0.3, max_steps=5, tol=None,
                                       loop="scan").x)(X)
    np.testing.assert_allclose(mod.retrieve(X, 5, 0.3), each, rtol=1e-5, atol=1e-6)
    assert not np.allclose(each, X, atol=1e-3)  # the descent moved


def test_clamp_and_identity_q_are_passed_on():
    mod = DrDAMMemory(D, Y, beta=BETA, q="identity", rngs=nnx.Rngs(0))
    mod.write(MEM)
    f, T = direct_features("sincos"), drdam.encode(direct_features("sincos"), MEM, BETA)
    visible = jnp.arange(D) < 3
    energy = partial(drdam.energy, q="identity")
    one = retrieve(energy, X[1], (T, f, BETA), step_size=0.3, clamp=visible, max_steps=4, tol=None, loop="scan").x
    assert np.array_equal(mod.retrieve(X[1], 4, 0.3, clamp=visible), one)
    out = mod.retrieve(X, 4, 0.3, clamp=visible)
    np.testing.assert_allclose(out[1], one, rtol=1e-6, atol=1e-7)
    assert np.array_equal(out[:, :3], X[:, :3]) and not np.allclose(out[:, 3:], X[:, 3:], atol=1e-3)
    assert np.array_equal(mod.energy(X[1]), energy(X[1], T, f, BETA))


@pytest.mark.slow  # Y = 16384; the default suite pins the module as the dammem.drdam functions, tested there by value
def test_energy_and_retrieval_approach_mrdam_at_large_num_features():
    mod = DrDAMMemory(D, 16384, beta=BETA, rngs=nnx.Rngs(0))
    mod.write(MEM)
    exact = jax.vmap(rbf_energy, (0, None, None))(X, MEM, BETA)
    # measured max error 0.0033 (energy) and 0.0036 (state) against an energy range of ~1 and a move of 0.4
    np.testing.assert_allclose(mod.energy(X), exact, atol=0.01)
    mrdam = jax.vmap(lambda q: retrieve(rbf_energy, q, (MEM, BETA), step_size=0.3, max_steps=10, tol=None,
                                        loop="scan").x)(X)
    assert float(jnp.abs(mrdam - X).max()) > 0.3
    np.testing.assert_allclose(mod.retrieve(X, 10, 0.3), mrdam, atol=0.01)


@pytest.mark.parametrize("kind", ["sincos", "expexp"])
def test_add_then_remove_restores_the_memory(kind):
    mod = DrDAMMemory(D, Y, kind=kind, beta=BETA, rngs=nnx.Rngs(0))
    mod.write(MEM[:4])
    before = np.asarray(mod.t[...])
    mod.add(MEM[4:])
    f = direct_features(kind)
    assert np.array_equal(mod.t[...], drdam.add(drdam.encode(f, MEM[:4], BETA), f, MEM[4:], BETA).t)
    np.testing.assert_allclose(mod.t[...], drdam.encode(f, MEM, BETA).t, rtol=1e-5, atol=1e-6)
    assert int(mod.count[...]) == K
    mod.remove(MEM[4:])
    np.testing.assert_allclose(mod.t[...], before, rtol=1e-5, atol=1e-6)
    assert int(mod.count[...]) == 4
    with pytest.raises(ValueError, match="remove: cannot remove 6 pattern"):
        mod.remove(MEM)


def test_state_is_never_a_param_and_updates_under_jit():
    mod = DrDAMMemory(D, Y, beta=BETA, rngs=nnx.Rngs(0))
    assert len(nnx.state(mod, nnx.Param)) == 0
    assert set(nnx.state(mod, MemoryState).keys()) == {"t", "count"}
    assert set(nnx.state(mod, RandomFeatures).keys()) == {"random_features"}
    opt = nnx.Optimizer(mod, optax.adam(0.1), wrt=nnx.Param)
    adam = opt.opt_state[0]
    assert not jax.tree.leaves(adam.mu) and not jax.tree.leaves(adam.nu)  # nothing to optimize

    eager = DrDAMMemory(D, Y, beta=BETA, rngs=nnx.Rngs(0))
    eager.write(MEM[:3])
    eager.add(MEM[3:])

    @nnx.jit
    def write_add(mod, a, b):
        mod.write(a)
        mod.add(b)
        return mod.energy(X)

    energies = write_add(mod, MEM[:3], MEM[3:])
    # encode inside nnx.jit is another program than eager encode: float32, a few ulp per sum over the K patterns
    np.testing.assert_allclose(mod.t[...], eager.t[...], rtol=1e-5, atol=1e-6)
    assert int(mod.count[...]) == K
    np.testing.assert_allclose(energies, eager.energy(X), rtol=1e-6)


def test_retrieval_is_differentiable_in_the_query(x64):
    mod = DrDAMMemory(D, 64, beta=BETA, rngs=nnx.Rngs(0))
    mod.write(MEM.astype(jnp.float64))
    x = X[0].astype(jnp.float64)
    w = jnp.asarray(RNG.standard_normal(D))
    loss = jax.jit(lambda q: jnp.dot(w, mod.retrieve(q, 3, 0.3)))  # one program for the four evaluations
    g = jax.jit(jax.grad(loss))(x)
    h = 1e-6
    for v in RNG.standard_normal((2, D)):  # directional derivatives by central differences
        fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
        np.testing.assert_allclose(jnp.dot(g, v), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_features=0), "DrDAMMemory: num_features must be >= 1, got 0"),
        (dict(dim=2.5), "DrDAMMemory: dim"),
        (dict(kind="rff"), "DrDAMMemory: kind must be one of"),
        (dict(projection="dense"), "DrDAMMemory: projection must be one of"),
        (dict(beta=0.0), "DrDAMMemory: beta must be a finite float > 0, got 0.0"),
        (dict(q="exp"), "DrDAMMemory: q must be one of"),
        (dict(eps=-1.0), "DrDAMMemory: eps must be a finite float > 0"),
        (dict(projection="orthogonal", block_size=D + 1), "DrDAMMemory: block_size must be <= dim"),
        (dict(chunk_size=100), "DrDAMMemory: chunk_size"),
    ],
)
def test_bad_configurations(kwargs, match):
    args = dict(dim=D, num_features=Y, beta=BETA) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        DrDAMMemory(args.pop("dim"), args.pop("num_features"), rngs=nnx.Rngs(0), **args)


def test_bad_inputs():
    mod = DrDAMMemory(D, Y, beta=BETA, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="DrDAMMemory.energy: the memory is empty"):
        mod.energy(X)
    with pytest.raises(ValueError, match="DrDAMMemory.retrieve: the memory is empty"):
        mod.retrieve(X, 2, 0.1)
    mod.write(MEM)
    with pytest.raises(ValueError, match=r"DrDAMMemory.retrieve: x must have shape \(\.\.\., D\) with D = 8"):
        mod.retrieve(X[:, :5], 2, 0.1)
    with pytest.raises(ValueError, match="DrDAMMemory.retrieve: steps"):
        mod.retrieve(X, -1, 0.1)
    with pytest.raises(ValueError, match="DrDAMMemory.retrieve: step_size must be"):
        mod.retrieve(X, 2, -0.1)
    with pytest.raises(TypeError, match=r"DrDAMMemory.retrieve: clamp must be a boolean mask \(True = visible\)"):
        mod.retrieve(X, 2, 0.1, clamp=jnp.ones(D))
    with pytest.raises(ValueError, match="encode: memories must have shape"):
        mod.write(X[:, :5])
