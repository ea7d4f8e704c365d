"""dammem NNX layers inside Linen models through flax.nnx.bridge: init, apply and a gradient step, with the outputs
of the NNX modules holding the same parameters; the custom variable types become their own Linen collections."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen, nnx
from flax.core import meta

from dammem.nn.attention import Hopfield
from dammem.nn.energy import EnergyDescent

RNG = np.random.default_rng(6)
X = jnp.asarray(RNG.standard_normal((4, 5, 6)), jnp.float32)  # (batch, positions, features)
Y = jnp.asarray(RNG.integers(0, 3, 4))
HOPFIELD = dict(separation="sparsemax", learn_beta=True, update_steps=2)


def unbox(tree):
    return jax.tree.map(lambda x: x.unbox() if isinstance(x, meta.AxisMetadata) else x, tree,
                        is_leaf=lambda x: isinstance(x, meta.AxisMetadata))


def nnx_with(module, linen_params):
    """The NNX module with its parameters replaced by a Linen parameter subtree."""
    nnx.update(module, nnx.State(unbox(linen_params)))
    return module


class Classifier(linen.Module):
    """Linen: embedding, a dammem Hopfield layer (self-attention, sparsemax), mean pooling, read-out."""

    @linen.compact
    def __call__(self, x):
        h = linen.Dense(8, name="embed")(x)
        h = nnx.bridge.to_linen(Hopfield, 2, 8, name="hopfield", **HOPFIELD)(h)
        return linen.Dense(3, name="head")(h.mean(axis=-2))


def test_hopfield_in_a_linen_model_init_apply_and_a_gradient_step():
    model = Classifier()
    variables = model.init(jax.random.key(0), X)
    assert set(variables) == {"params"}
    params = variables["params"]
    assert {"embed", "hopfield", "head"} <= set(params)
    assert "log_beta" in params["hopfield"] and "query" in params["hopfield"]

    # apply equals the same computation with the NNX module holding the Linen parameters
    out = model.apply(variables, X)
    hop = nnx_with(Hopfield(2, 8, rngs=nnx.Rngs(9), **HOPFIELD), params["hopfield"])
    h = linen.Dense(8).apply({"params": params["embed"]}, X)
    ref = linen.Dense(3).apply({"params": params["head"]}, hop(h).mean(axis=-2))
    np.testing.assert_array_equal(out, ref)

    def loss_fn(p):
        logits = model.apply({"params": p}, X)
        return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()

    tx = optax.adam(0.05)
    opt_state = tx.init(params)
    loss0, grads = jax.value_and_grad(loss_fn)(params)
    g_hop = unbox(grads["hopfield"])
    assert float(jnp.abs(g_hop["log_beta"]).max()) > 0 and float(jnp.abs(g_hop["query"]["kernel"]).max()) > 0

    # the Linen gradient of the Hopfield parameters equals the NNX gradient through the same computation
    def nnx_loss(module):
        logits = linen.Dense(3).apply({"params": params["head"]}, module(h).mean(axis=-2))
        return optax.softmax_cross_entropy_with_integer_labels(logits, Y).mean()

    nnx_grads = nnx.to_pure_dict(nnx.grad(nnx_loss)(hop))
    for a, b in zip(jax.tree.leaves(g_hop), jax.tree.leaves(nnx_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert jax.tree.structure(g_hop) == jax.tree.structure(nnx_grads)

    updates, opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    assert float(loss_fn(new_params)) < float(loss0)
    hop = nnx_with(hop, new_params["hopfield"])
    h = linen.Dense(8).apply({"params": new_params["embed"]}, X)
    ref = linen.Dense(3).apply({"params": new_params["head"]}, hop(h).mean(axis=-2))
    np.testing.assert_array_equal(model.apply({"params": new_params}, X), ref)


def test_fixed_memories_live_in_their_own_linen_collection_and_are_not_trained():
    layer = nnx.bridge.to_linen(EnergyDescent, 3, 6, energy="rbf", steps=2, step_size=0.3, learn_beta=True,
                                learn_memories=False)
    variables = layer.init(jax.random.key(1), X[0])
    assert set(variables) == {"params", "memory_state"}
    assert set(unbox(variables["params"])) == {"log_beta"}
    memories = unbox(variables["memory_state"])["memories"]
    assert memories.shape == (3, 6)

    out = layer.apply(variables, X[0])
    nnx_layer = EnergyDescent(3, 6, energy="rbf", steps=2, step_size=0.3, learn_beta=True, learn_memories=False,
                              rngs=nnx.Rngs(4))
    nnx_layer.write(memories)
    nnx_with(nnx_layer, variables["params"])
    np.testing.assert_array_equal(out, nnx_layer(X[0]))

    def loss_fn(params):
        return jnp.mean((layer.apply({"params": params, "memory_state": variables["memory_state"]}, X[0]) - 1) ** 2)

    grads = jax.grad(loss_fn)(variables["params"])
    assert set(unbox(grads)) == {"log_beta"}  # the memories are state, not parameters
    assert float(jnp.abs(unbox(grads)["log_beta"])) > 0
