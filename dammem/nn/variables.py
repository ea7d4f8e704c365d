"""Non-trainable state of the dammem layers as custom ``flax.nnx.Variable`` types.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width, ``N`` codebook size.

Flax NNX tells state apart by its ``Variable`` type: ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` and
``nnx.grad(..., argnums=nnx.DiffState(0, nnx.Param))`` touch only :class:`flax.nnx.Param`, while ``nnx.state``,
``nnx.split`` and the orbax checkpoints of :mod:`dammem.nn.checkpoint` carry every type. The layers keep what they
store, what they draw at random once, and what must never be trained in the three types below, so

- an optimizer over ``nnx.Param`` never moves a stored memory, a random projection or a sign pattern;
- ``nnx.state(model, MemoryState)`` (or ``RandomFeatures``, ``FixedSigns``) selects exactly that state, e.g. to
  ship a trained model's memory ``T`` without its weights;
- under ``flax.nnx.bridge.ToLinen`` each type becomes its own Linen collection (``"memory_state"``,
  ``"random_features"``, ``"fixed_signs"``), next to ``"params"``.

PRNG keys are stored as typed key arrays (``jax.random.key``); orbax saves and restores them as such.

Example:
  >>> import jax.numpy as jnp, optax
  >>> from flax import nnx
  >>> from dammem.nn.variables import MemoryState
  >>> class Store(nnx.Module):
  ...     def __init__(self):
  ...         self.patterns = MemoryState(jnp.eye(2))
  ...         self.scale = nnx.Param(jnp.ones(()))
  >>> model = Store()
  >>> optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)  # the patterns are not optimized
  >>> list(nnx.state(model, MemoryState).keys()), list(nnx.state(model, nnx.Param).keys())
  (['patterns'], ['scale'])
"""

from __future__ import annotations

from flax import nnx

__all__ = ["MemoryState", "RandomFeatures", "FixedSigns"]


class MemoryState(nnx.Variable):
    """What a memory layer has stored: fixed patterns ``(K, D)``, or a DrDAM memory vector ``T`` ``(F,)`` and its
    pattern count. Changed by the layer's ``write`` / ``add`` / ``remove``, never by an optimizer over ``nnx.Param``.
    """


class RandomFeatures(nnx.Variable):
    """The random draw behind a feature map, fixed at construction: its PRNG key and any sampled arrays (phases,
    structured signs and norms, a materialized projection). Regenerating the features from it gives the same map.
    """


class FixedSigns(nnx.Variable):
    """A fixed random ``+-1`` pattern ``(N,)``, such as the column signs of a signed KROP codebook."""


# Linen collection names under flax.nnx.bridge (overwrite: a module re-imported by path registers anew).
for _name, _type in (("memory_state", MemoryState), ("random_features", RandomFeatures), ("fixed_signs", FixedSigns)):
    nnx.register_variable_name(_name, _type, overwrite=True)
del _name, _type
