"""Stage I of U-Hop: learn the kernel map ``W`` by minimising a separation loss over the memories.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width (``F >= D``), ``S`` saved snapshots.

Wu et al. (2024), Alg. 1, lines 1-4: ``N`` gradient steps ``W <- W - gamma grad_W L(Xi; t)`` on a separation loss
(:func:`dammem.uhop.separation_loss`), then each row of ``W`` is normalised to unit length. Their memory-retrieval
runs use plain SGD with learning rate 1 and ``t = 2`` (Table 4), the default here; any optax optimiser can replace
SGD. The learning rate stays what the optimiser says (no hidden decay: a compounding decay such as
``lr <- lr / sqrt(i + 1)`` after every step stops the fit after about ten steps).

All steps run in one jitted ``lax.scan`` (one scan per segment between requested snapshots). ``memories``,
the initial ``W`` and ``temperature`` are traced; ``steps``, ``optimizer``, ``loss``, ``chunk_size`` and ``save_at``
are static, so a new memory set of the same shape reuses the compiled fit. :func:`fit_kernel` can be ``jax.vmap``-ed
over memory sets and keys.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jaxtyping import Float

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_int, nan_unless_positive
from dammem.uhop import _core
from dammem.uhop._checks import (
    check_chunk_size,
    check_init,
    check_kernel_weight,
    check_loss,
    check_memories,
    check_temperature,
)
from dammem.uhop.kernel import init_kernel
from dammem.uhop.losses import DEFAULT_CHUNK_SIZE

__all__ = ["KernelFit", "fit_kernel", "DEFAULT_OPTIMIZER"]

DEFAULT_OPTIMIZER = optax.sgd(1.0)
"""Plain SGD with learning rate 1, the kernel optimiser of Wu et al. (2024), Table 4."""


class KernelFit(NamedTuple):
    """Result of :func:`fit_kernel`.

    Attributes:
      weight: (F, D) the fitted ``W`` with unit-norm rows (Alg. 1, line 4).
      losses: (steps + 1,) the separation loss before each step and, last, after the final step (before the row
        normalisation; the loss of ``weight`` itself is ``separation_loss(weight, memories, ...)``).
      snapshots: (S, F, D) the row-normalised ``W`` after ``save_at[s]`` steps, or None when ``save_at`` is None.
    """

    weight: Array
    losses: Array
    snapshots: Array | None


def _check_optimizer(optimizer, context: str) -> optax.GradientTransformation:
    if optimizer is None:
        return DEFAULT_OPTIMIZER
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(
            f"{context}: optimizer must be an optax.GradientTransformation (e.g. optax.sgd(1.0)) or None, "
            f"got {type(optimizer).__name__}"
        )
    try:
        hash(optimizer)
    except TypeError as err:
        raise TypeError(f"{context}: optimizer must be hashable (it is a static argument of the jitted fit)") from err
    return optimizer


def _check_save_at(save_at, steps: int, context: str) -> tuple[int, ...] | None:
    if save_at is None:
        return None
    if isinstance(save_at, (str, bytes)) or not isinstance(save_at, Sequence):
        raise TypeError(f"{context}: save_at must be None or a sequence of step counts, got {save_at!r}")
    values = []
    for i, s in enumerate(save_at):
        if isinstance(s, bool) or not isinstance(s, (numbers.Integral, np.integer)):
            raise TypeError(f"{context}: save_at[{i}] must be an int, got {s!r}")
        values.append(int(s))
    if not values or values != sorted(set(values)) or values[0] < 0 or values[-1] > steps:
        raise ValueError(
            f"{context}: save_at must be strictly increasing step counts in [0, steps={steps}], got {list(save_at)}"
        )
    return tuple(values)


def fit_kernel(
    memories: Float[Array, "K D"],
    *,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    temperature: ArrayLike = 2.0,
    loss: str = "average",
    init: str | Float[Array, "F D"] = "gaussian",
    key: PRNGKey | None = None,
    num_features: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    save_at: Sequence[int] | None = None,
) -> KernelFit:
    """Stage I of U-Hop: ``steps`` optimiser steps on a separation loss, then unit-norm rows (see the module doc).

    Args:
      memories: (K, D) stored patterns, K >= 2 (traced).
      steps: number of optimiser steps N >= 0 (static).
      optimizer: an optax ``GradientTransformation`` (static); None is :data:`DEFAULT_OPTIMIZER`, SGD with learning
        rate 1.
      temperature: ``t > 0`` of the loss (traced).
      loss: ``"average"`` (eq. 2.6), ``"max"`` (App. G.2) or ``"deep"`` (eq. 3.2); see :mod:`dammem.uhop.losses`.
      init: ``"gaussian"`` (as the public code of Wu et al. (2024)), ``"identity"`` or ``"orthogonal"`` (see
        :func:`dammem.uhop.init_kernel`), or an initial ``W`` array (F, D) with F >= D.
      key: a ``jax.random`` key; required by the random inits, ignored by ``"identity"`` and an array.
      num_features: F for a named init (default D); must be None or F when ``init`` is an array.
      chunk_size: rows of the pair matrix reduced at once (static).
      save_at: optional increasing step counts in [0, steps] at which the row-normalised ``W`` is also returned
        (static), e.g. to trace the retrieval error against N.

    Returns:
      :class:`KernelFit` ``(weight, losses, snapshots)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.uhop import fit_kernel
      >>> memories = jax.random.uniform(jax.random.key(1), (20, 16))
      >>> fit = fit_kernel(memories, steps=50, key=jax.random.key(0))
      >>> fit.weight.shape, fit.losses.shape, bool(fit.losses[-1] < fit.losses[0])
      ((16, 16), (51,), True)
      >>> bool(jnp.allclose(jnp.linalg.norm(fit.weight, axis=1), 1.0, atol=1e-6))
      True
    """
    context = "fit_kernel"
    memories = check_memories(memories, context)
    dim = memories.shape[1]
    steps = check_int(steps, "steps", context, minimum=0)
    optimizer = _check_optimizer(optimizer, context)
    temperature = check_temperature(temperature, context)
    loss = check_loss(loss, context)
    chunk_size = check_chunk_size(chunk_size, context)
    save_at = _check_save_at(save_at, steps, context)
    dtype = jnp.promote_types(memories.dtype, jnp.float32)
    if isinstance(init, str):
        init = check_init(init, context)
        width = dim if num_features is None else check_int(num_features, "num_features", context, minimum=1)
        if width < dim:
            raise ValueError(
                f"{context}: num_features must be >= D={dim} (a full-column-rank kernel map, Wu et al. (2024), "
                f"Assumption 2.1), got num_features={width}"
            )
        if init != "identity" and key is None:
            raise ValueError(f"{context}: init={init!r} is random and needs key=jax.random.key(...), got key=None")
        weight0 = init_kernel(key, (width, dim), init, dtype)
    else:
        weight0 = check_kernel_weight(init, dim, "init", context)
        if num_features is not None and num_features != weight0.shape[0]:
            raise ValueError(
                f"{context}: num_features={num_features!r} disagrees with the initial W of shape "
                f"{tuple(weight0.shape)}; leave it None when init is an array"
            )
        weight0 = weight0.astype(jnp.promote_types(weight0.dtype, dtype))
    return _fit(
        memories.astype(dtype),
        weight0,
        temperature,
        steps=steps,
        optimizer=optimizer,
        loss=loss,
        chunk_size=chunk_size,
        save_at=save_at,
    )


@partial(jax.jit, static_argnames=("steps", "optimizer", "loss", "chunk_size", "save_at"))
def _fit(memories, weight0, temperature, *, steps, optimizer, loss, chunk_size, save_at) -> KernelFit:
    def objective(w):
        value = _core.separation_loss(w, memories, temperature, loss, chunk_size)
        return nan_unless_positive(temperature, value)

    value_and_grad = jax.value_and_grad(objective)

    def step(carry, _):
        w, state = carry
        value, grad = value_and_grad(w)
        updates, state = optimizer.update(grad, state, w)
        return (optax.apply_updates(w, updates).astype(w.dtype), state), value

    carry = (weight0, optimizer.init(weight0))
    bounds = sorted(set(save_at or ()) | {steps})
    traces, snapshots, done = [], [], 0
    for bound in bounds:
        if bound > done:
            carry, trace = lax.scan(step, carry, None, length=bound - done)
            traces.append(trace)
            done = bound
        if save_at is not None and bound in save_at:
            snapshots.append(_core.unit_rows(carry[0]))
    weight = carry[0]
    losses = jnp.concatenate(traces + [objective(weight)[None]])
    return KernelFit(_core.unit_rows(weight), losses, jnp.stack(snapshots) if save_at is not None else None)
