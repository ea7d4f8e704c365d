"""``EnergyDescent``: differentiable fixed-step retrieval on any dammem energy, as a Flax NNX layer.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``B`` queries, ``T`` steps, ``...`` any leading batch axes.

The layer holds memories ``Xi`` (K, D) and an inverse temperature ``beta`` and runs ``T`` steps of
:func:`dammem.retrieve` from each query with ``loop="scan"`` (fixed length, reverse-differentiable):

- energy descent ``x <- x - eta grad_x E(x; Xi, beta)`` (Hoover et al. (2024), eq. 5), or
- a fixed-point map ``x <- U(x; Xi, beta)`` such as the CCCP step ``Xi^T Sep(beta sim(Xi, x))`` (Wu et al. (2024),
  eq. 2.4) when ``update`` is given.

Clamped coordinates (True = visible) keep their input value (Hoover et al. (2024), Sec. 4.2). The output is the
state after ``T`` steps; gradients flow through every step to the input, to the memories (``nnx.Param`` unless
``learn_memories=False``) and to a learnable ``beta`` (stored as ``log beta``, so it stays positive).

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Bool, Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_bool, check_clamp, check_float, check_floating, check_int
from dammem.dynamics import retrieve
from dammem.energies import edp_energy, modern_hopfield_energy, rbf_energy
from dammem.nn.variables import MemoryState

__all__ = ["EnergyDescent", "ENERGIES", "batch_retrieve", "batch_energy"]

ENERGIES: dict[str, Callable[..., Array]] = {
    "rbf": rbf_energy,
    "edp": edp_energy,
    "modern_hopfield": modern_hopfield_energy,
}
"""Energies of ``(x, memories, beta)`` that :class:`EnergyDescent` looks up by name (Hoover et al. (2024), eqs. 7
and 11; Wu et al. (2024), eq. 1.1). Any other ``energy(x, memories, beta) -> scalar`` is passed as a callable, e.g.
``functools.partial(dammem.energies.sparse_hopfield_energy, alpha=1.5)``."""

_default_memory_init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


@partial(jax.jit, static_argnames=("energy", "update", "steps"))
def batch_retrieve(
    energy: Callable[..., Array],
    x: Float[Array, "B D"],
    args: tuple,
    step_size: ArrayLike | None = None,
    clamp: Bool[Array, "B D"] | None = None,
    *,
    update: Callable[..., Array] | None = None,
    steps: int,
) -> Float[Array, "B D"]:
    """:func:`dammem.retrieve` with ``loop="scan"``, ``max_steps=steps`` and no tolerance, over the rows of ``x``.

    One compiled program per (energy, update, steps, shapes): the layers call it eagerly or inside ``nnx.jit``.
    ``energy`` and ``update`` are static (hashed by identity unless they define equality); ``args``, ``step_size``
    and ``clamp`` are traced. Arguments as :func:`dammem.retrieve`, with a query and a clamp mask per row.
    """

    def one(x0, mask):
        out = retrieve(energy, x0, args, update=update, step_size=step_size, clamp=mask, max_steps=steps, tol=None,
                       loop="scan")
        return out.x

    if clamp is None:
        return jax.vmap(lambda x0: one(x0, None))(x)
    return jax.vmap(one)(x, clamp)


@partial(jax.jit, static_argnames=("energy",))
def batch_energy(energy: Callable[..., Array], x: Float[Array, "B D"], args: tuple) -> Float[Array, " B"]:
    """``energy(x_b, *args)`` for every row of ``x`` (``energy`` static, ``args`` traced), one compiled program."""
    return jax.vmap(lambda q: energy(q, *args))(x)


class EnergyDescent(nnx.Module):
    """``T`` steps of energy descent (or of a fixed-point map) from each query, as a differentiable layer.

    ``x_{t+1} = x_t - eta grad_x E(x_t; Xi, beta)`` (Hoover et al. (2024), eq. 5) with clamped coordinates held,
    or ``x_{t+1} = update(x_t, Xi, beta)`` (Wu et al. (2024), eq. 2.4); the result is ``x_T``.

    Args:
      num_memories: ``K >= 1`` stored patterns.
      in_features: pattern dimension ``D >= 1``.
      energy: a name in :data:`ENERGIES` (``"rbf"``, ``"edp"``, ``"modern_hopfield"``) or a callable
        ``energy(x, memories, beta) -> scalar`` of one query (static).
      steps: number of steps ``T >= 0`` (static).
      step_size: ``eta > 0`` of energy descent; must be None when ``update`` is given.
      update: optional fixed-point map ``update(x, memories, beta) -> (D,)`` (e.g.
        :func:`dammem.energies.rbf_update`); the energy then only documents the Lyapunov function.
      beta: inverse temperature ``> 0``.
      learn_beta: hold ``log beta`` as an ``nnx.Param`` (trained with the rest); otherwise beta is a fixed float.
      learn_memories: hold the memories as an ``nnx.Param``; otherwise as a non-trainable
        :class:`~dammem.nn.variables.MemoryState` (set with :meth:`write`).
      memory_init: initializer of the ``(K, D)`` memories (default: normal with variance ``1 / D``).
      param_dtype: dtype of the memories and of ``log beta``.
      rngs: ``nnx.Rngs`` (the ``params`` stream draws the memories).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from dammem.nn.energy import EnergyDescent
      >>> layer = EnergyDescent(2, 4, energy="rbf", steps=50, step_size=0.5, beta=4.0, learn_memories=False,
      ...                       rngs=nnx.Rngs(0))
      >>> layer.write(jnp.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]]))
      >>> layer(jnp.array([[0.6, 0.8, -0.4, 0.0]])).round(2)
      Array([[ 1.,  1., -1., -1.]], dtype=float32)
      >>> layer.energy(jnp.array([[1.0, 1.0, -1.0, -1.0]])).shape
      (1,)
    """

    def __init__(
        self,
        num_memories: int,
        in_features: int,
        *,
        energy: str | Callable[..., Array] = "rbf",
        steps: int = 10,
        step_size: float | None = None,
        update: Callable[..., Array] | None = None,
        beta: float = 1.0,
        learn_beta: bool = False,
        learn_memories: bool = True,
        memory_init: nnx.Initializer = _default_memory_init,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        context = "EnergyDescent"
        self.num_memories = check_int(num_memories, "num_memories", context, minimum=1)
        self.in_features = check_int(in_features, "in_features", context, minimum=1)
        if isinstance(energy, str):
            if energy not in ENERGIES:
                raise ValueError(f"{context}: energy must be one of {tuple(ENERGIES)} or a callable, got {energy!r}")
            energy = ENERGIES[energy]
        elif not callable(energy):
            raise TypeError(f"{context}: energy must be a name in {tuple(ENERGIES)} or a callable, got {energy!r}")
        if update is not None and not callable(update):
            raise TypeError(f"{context}: update must be a callable update(x, memories, beta) or None, got {update!r}")
        self.energy_fn = energy
        self.update_fn = update
        self.steps = check_int(steps, "steps", context, minimum=0)
        if update is None:
            if step_size is None:
                raise ValueError(f"{context}: step_size (eta > 0) is required for energy descent (update=None)")
            self.step_size = check_float(step_size, "step_size", context, positive=True)
        else:
            if step_size is not None:
                raise ValueError(f"{context}: step_size must be None with a fixed-point update, got {step_size!r}")
            self.step_size = None
        beta = check_float(beta, "beta", context, positive=True)
        check_bool(learn_beta, "learn_beta", context)
        check_bool(learn_memories, "learn_memories", context)
        self.log_beta = nnx.Param(jnp.log(jnp.asarray(beta, param_dtype))) if learn_beta else None
        self.fixed_beta = None if learn_beta else beta
        init = memory_init(rngs.params(), (self.num_memories, self.in_features), param_dtype)
        self.memories = nnx.Param(init) if learn_memories else MemoryState(init)

    @property
    def beta(self) -> Array | float:
        """The inverse temperature: ``exp(log_beta)`` when learnable, else the fixed float."""
        return self.fixed_beta if self.log_beta is None else jnp.exp(self.log_beta[...])

    def write(self, memories: Float[ArrayLike, "K D"]) -> None:
        """Replace the stored patterns (a ``(K, D)`` array of the layer's shape)."""
        memories = check_floating(memories, "memories", "EnergyDescent.write")
        if memories.shape != (self.num_memories, self.in_features):
            raise ValueError(
                f"EnergyDescent.write: memories must have shape (K, D) = ({self.num_memories}, {self.in_features}), "
                f"got {tuple(memories.shape)}"
            )
        self.memories[...] = memories.astype(self.memories[...].dtype)

    def _queries(self, x, context: str) -> Array:
        x = check_floating(x, "x", context)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{context}: x must have shape (..., D) with D = {self.in_features}, got {tuple(x.shape)}")
        return x

    def energy(self, x: Float[ArrayLike, "*batch D"]) -> Float[Array, "*batch"]:
        """The energy ``E(x; Xi, beta)`` of each query, shape ``x.shape[:-1]``."""
        x = self._queries(x, "EnergyDescent.energy")
        flat = x.reshape(-1, self.in_features)
        return batch_energy(self.energy_fn, flat, (self.memories[...], self.beta)).reshape(x.shape[:-1])

    def __call__(
        self, x: Float[ArrayLike, "*batch D"], clamp: Bool[ArrayLike, "*batch D"] | None = None
    ) -> Float[Array, "*batch D"]:
        """Run ``steps`` updates from every query.

        Args:
          x: ``(..., D)`` queries (``(B, D)`` for a batch).
          clamp: optional boolean mask broadcastable to ``x.shape`` (e.g. ``(D,)`` for all queries); True = visible
            coordinate held at its input value.

        Returns:
          ``(..., D)`` retrieved states, in ``x``'s dtype.
        """
        context = "EnergyDescent"
        x = self._queries(x, context)
        flat = x.reshape(-1, self.in_features)
        clamp = check_clamp(clamp, x.shape, context)
        if clamp is not None:
            clamp = clamp.reshape(flat.shape)
        args = (self.memories[...], self.beta)
        out = batch_retrieve(
            self.energy_fn, flat, args, self.step_size, clamp, update=self.update_fn, steps=self.steps
        )
        return out.reshape(x.shape)
