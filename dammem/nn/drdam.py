"""``DrDAMMemory``: a DrDAM memory (all patterns in one random-feature vector ``T``) as a Flax NNX module.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``Y`` random features, ``F`` feature width (``Y`` or
``2 Y``), ``T`` steps, ``...`` any leading batch axes.

A thin shell over :mod:`dammem.drdam` (Hoover et al. (2024), eqs. 8-10): the module draws a random feature map
``phi`` once and keeps its draw (PRNG key, phases, ...) as a non-trainable
:class:`~dammem.nn.variables.RandomFeatures` variable, and the memory ``T = sum_mu phi(sqrt(beta) xi_mu)`` (eq. 9)
with its pattern count as :class:`~dammem.nn.variables.MemoryState` variables. ``write`` encodes patterns (replacing
``T``), ``add`` and ``remove`` change ``T`` in place (Prop. 5), ``energy`` is ``E(x) = -Q(<T, phi(sqrt(beta) x)>)``
and ``retrieve`` descends it, ``x <- x - eta grad E(x)`` (eqs. 5 and 10), for a fixed number of steps, differentiably.
Neither state is an ``nnx.Param``: an optimizer over ``nnx.Param`` leaves both alone, and checkpoints carry both.

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Bool, Float

from dammem import drdam
from dammem._types import Array, ArrayLike
from dammem._validate import check_clamp, check_float, check_floating, check_int, check_positive, is_concrete
from dammem.drdam import features as drdam_features
from dammem.drdam import projections as drdam_projections
from dammem.dynamics import retrieve as retrieve_fn
from dammem.nn.energy import batch_energy, batch_retrieve
from dammem.nn.variables import MemoryState, RandomFeatures

__all__ = ["DrDAMMemory"]


class DrDAMMemory(nnx.Module):
    """A distributed dense associative memory: ``write`` / ``add`` / ``remove`` patterns, ``energy``, ``retrieve``.

    Args:
      dim: pattern dimension ``D >= 1``.
      num_features: number of random projections ``Y >= 1`` (``T`` has ``F = Y`` or ``2 Y`` entries).
      kind: feature map, one of :data:`dammem.drdam.FEATURE_KINDS` (``"cos"``, ``"sincos"``, ``"exp"``,
        ``"expexp"``).
      projection: one of :data:`dammem.drdam.PROJECTIONS` (``"gaussian"``, ``"orthogonal"``, ``"structured"``,
        ``"materialized"``).
      beta: inverse temperature ``> 0``, fixed: ``T`` is encoded at this beta.
      block_size: rows per generation block of the projection (None: its default).
      q: ``"log"`` (``E`` approximates the MrDAM energy, Hoover et al. (2024), eq. 11) or ``"identity"``.
      eps: log-argument clip of the trigonometric kinds (see :mod:`dammem.drdam.memory`).
      chunk_size: feature rows per compute step (None: the default).
      rngs: ``nnx.Rngs``; the ``params`` stream draws the features.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from dammem.nn.drdam import DrDAMMemory
      >>> memory = DrDAMMemory(8, 2048, beta=10.0, rngs=nnx.Rngs(0))
      >>> patterns = jnp.eye(8) / jnp.sqrt(8.0)
      >>> memory.write(patterns)
      >>> memory.t.shape, int(memory.count[...])
      ((4096,), 8)
      >>> out = memory.retrieve(0.8 * patterns[:2], steps=20, step_size=0.1)
      >>> [int(i) for i in jnp.argmax(out @ patterns.T, axis=-1)]
      [0, 1]
    """

    def __init__(
        self,
        dim: int,
        num_features: int,
        *,
        kind: str = "sincos",
        projection: str = "gaussian",
        beta: float,
        block_size: int | None = None,
        q: str = "log",
        eps: float = drdam.DEFAULT_EPS,
        chunk_size: int | None = None,
        rngs: nnx.Rngs,
    ):
        context = "DrDAMMemory"
        self.dim = check_int(dim, "dim", context, minimum=1)
        self.num_features = check_int(num_features, "num_features", context, minimum=1)
        if kind not in drdam.FEATURE_KINDS:
            raise ValueError(f"{context}: kind must be one of {drdam.FEATURE_KINDS}, got {kind!r}")
        if projection not in drdam.PROJECTIONS:
            raise ValueError(f"{context}: projection must be one of {drdam.PROJECTIONS}, got {projection!r}")
        if q not in drdam.Q_KINDS:
            raise ValueError(f"{context}: q must be one of {drdam.Q_KINDS}, got {q!r}")
        self.kind, self.projection, self.q = kind, projection, q
        self.beta = check_float(beta, "beta", context, positive=True)
        self.eps = check_float(eps, "eps", context, positive=True)
        self.block_size = drdam_projections.check_block_size(projection, self.dim, block_size, context)
        features = drdam.make_features(
            kind, self.dim, self.num_features, key=rngs.params(), projection=projection, block_size=self.block_size
        )
        drdam_features.check_chunk_size(features, chunk_size, context)
        self.chunk_size = chunk_size
        self.energy_fn = partial(drdam.energy, q=q, eps=self.eps, chunk_size=chunk_size)  # static, built once
        self.random_features = RandomFeatures(features.params)
        empty = drdam.encode(features, jnp.zeros((0, self.dim)), self.beta)
        self.t = MemoryState(empty.t)
        self.count = MemoryState(empty.count)

    @property
    def features(self) -> drdam.Features:
        """The feature map ``phi`` rebuilt from the stored draw (the same map on every call)."""
        return drdam.Features(
            self.kind, self.projection, self.dim, self.num_features, self.block_size, self.random_features.get_value()
        )

    @property
    def memory(self) -> drdam.Memory:
        """The stored memory as a :class:`dammem.drdam.Memory` (``T`` and the pattern count)."""
        return drdam.Memory(self.t[...], self.count[...])

    def _store(self, memory: drdam.Memory) -> None:
        self.t.set_value(memory.t)
        self.count.set_value(memory.count)

    def write(self, memories: Float[ArrayLike, "K D"]) -> None:
        """Replace the memory by ``T = sum_mu phi(sqrt(beta) xi_mu)`` of ``memories`` (Hoover et al. (2024), eq. 9)."""
        self._store(drdam.encode(self.features, memories, self.beta, chunk_size=self.chunk_size))

    def add(self, memories: Float[ArrayLike, "K D"]) -> None:
        """Add patterns: ``T <- T + sum_mu phi(sqrt(beta) xi_mu)`` (Hoover et al. (2024), Prop. 5)."""
        self._store(drdam.add(self.memory, self.features, memories, self.beta, chunk_size=self.chunk_size))

    def remove(self, memories: Float[ArrayLike, "K D"]) -> None:
        """Remove stored patterns: ``T <- T - sum_mu phi(sqrt(beta) xi_mu)``, the inverse of :meth:`add`."""
        self._store(drdam.remove(self.memory, self.features, memories, self.beta, chunk_size=self.chunk_size))

    def _queries(self, x, context: str) -> Array:
        x = check_floating(x, "x", context)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"{context}: x must have shape (..., D) with D = {self.dim}, got {tuple(x.shape)}")
        count = self.count[...]
        if is_concrete(count) and int(count) == 0:
            raise ValueError(f"{context}: the memory is empty (count 0); write or add patterns first")
        return x

    def energy(self, x: Float[ArrayLike, "*batch D"]) -> Float[Array, "*batch"]:
        """DrDAM energy ``E(x) = -Q(<T, phi(sqrt(beta) x)>)`` of each query (Hoover et al. (2024), eqs. 9-10).

        Args:
          x: ``(D,)`` or ``(..., D)`` queries.

        Returns:
          Energies of shape ``x.shape[:-1]``.
        """
        x = self._queries(x, "DrDAMMemory.energy")
        args = (self.memory, self.features, self.beta)
        if x.ndim == 1:
            return self.energy_fn(x, *args)
        return batch_energy(self.energy_fn, x.reshape(-1, self.dim), args).reshape(x.shape[:-1])

    def retrieve(
        self,
        x: Float[ArrayLike, "*batch D"],
        steps: int,
        step_size: float | Array,
        clamp: Bool[ArrayLike, "*batch D"] | None = None,
    ) -> Float[Array, "*batch D"]:
        """``steps`` steps of energy descent ``x <- x - eta grad E(x)`` on the DrDAM energy from each query.

        Runs :func:`dammem.retrieve` with ``loop="scan"`` (fixed length, differentiable in ``x`` and ``T``).

        Args:
          x: ``(D,)`` or ``(..., D)`` initial states.
          steps: number of steps ``>= 0`` (static).
          step_size: ``eta > 0`` (traced).
          clamp: optional boolean mask broadcastable to ``x.shape``; True = visible coordinate held at its input.

        Returns:
          Retrieved states, the shape and dtype of ``x``.
        """
        context = "DrDAMMemory.retrieve"
        x = self._queries(x, context)
        steps = check_int(steps, "steps", context, minimum=0)
        check_positive(step_size, "step_size", context)
        clamp = check_clamp(clamp, x.shape, context)
        args = (self.memory, self.features, self.beta)
        if x.ndim == 1:
            out = retrieve_fn(self.energy_fn, x, args, step_size=step_size, clamp=clamp, max_steps=steps, tol=None,
                              loop="scan")
            return out.x
        flat = x.reshape(-1, self.dim)
        clamp = None if clamp is None else clamp.reshape(flat.shape)
        return batch_retrieve(self.energy_fn, flat, args, step_size, clamp, steps=steps).reshape(x.shape)
