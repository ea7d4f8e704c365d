"""Classical Hopfield networks and the one-step associative memories of Hsu (2025).

Shape legend: ``K`` stored patterns, ``D`` pattern (state, key) dimension, ``M`` stored key-value pairs, ``D_out``
value dimension. States are bipolar, ``{-1, +1}^D``; ``sign(0)`` is taken as ``+1`` so states stay bipolar. The
lecture notes number no equations; the citations name their slides.

One operation, one name: the synchronous sign update ``x <- sign(W x)`` (:func:`sync_update`) is both a step of
the auto-associative network (square ``W`` from :func:`hebbian_weights`) and the whole recall of the one-step
hetero-associative memory (``W`` of shape ``(D_out, D)`` from :func:`hetero_weights`).

References:
  - Hsu (2025). Associative memories. Lecture notes, COMS 6998-7, Columbia University.
  - Demircigil, Heusel, Loewe, Upgang, Vermet (2017). On a model of associative memory with huge storage capacity.
    J. Stat. Phys.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Float

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_int, is_concrete
from dammem.energies._common import check_beta, nan_unless_positive
from dammem.separations import softmax

__all__ = [
    "bipolar_sign",
    "hebbian_weights",
    "hetero_weights",
    "classical_energy",
    "sync_update",
    "async_sweep",
    "classical_retrieve",
    "ClassicalRetrieval",
    "one_step_modern",
]


def bipolar_sign(u: ArrayLike) -> Array:
    """``sign(u)`` with ``sign(0) = +1``, in the dtype of ``u`` (integers and bools give float32).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import bipolar_sign
      >>> bipolar_sign(jnp.array([-2.0, 0.0, 3.0])).tolist()
      [-1.0, 1.0, 1.0]
    """
    u = check_floating(u, "u", "bipolar_sign")
    return jnp.where(u >= 0, 1.0, -1.0).astype(u.dtype)


def _matrix(a: ArrayLike, name: str, context: str) -> Array:
    a = check_floating(a, name, context)
    if a.ndim != 2:
        raise ValueError(f"{context}: {name} must be a matrix, got shape {tuple(a.shape)}")
    return a


def hebbian_weights(patterns: Float[ArrayLike, "K D"], *, zero_diagonal: bool = False) -> Float[Array, "D D"]:
    """Hebbian outer-product weights ``W = sum_i x_i x_i^T`` (Hsu (2025), slide "Hopfield network").

    Args:
      patterns: (K, D) bipolar patterns.
      zero_diagonal: remove self-connections (``W_ii = 0``), which makes asynchronous dynamics strictly descend.

    Returns:
      (D, D) symmetric weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import hebbian_weights
      >>> hebbian_weights(jnp.array([[1.0, -1.0, 1.0]]), zero_diagonal=True).tolist()
      [[0.0, -1.0, 1.0], [-1.0, 0.0, -1.0], [1.0, -1.0, 0.0]]
    """
    patterns = _matrix(patterns, "patterns", "hebbian_weights")
    w = patterns.T @ patterns
    return w - jnp.diag(jnp.diag(w)) if zero_diagonal else w


def hetero_weights(keys: Float[ArrayLike, "M D"], values: Float[ArrayLike, "M D_out"]) -> Float[Array, "D_out D"]:
    """Hetero-associative weights ``W = sum_i y_i x_i^T`` (Hsu (2025), slide "One-step Hopfield network").

    Args:
      keys: (M, D) keys ``x_i``.
      values: (M, D_out) values ``y_i``.

    Returns:
      (D_out, D) weights; recall a value with :func:`sync_update`.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import hetero_weights
      >>> hetero_weights(jnp.array([[1.0, -1.0]]), jnp.array([[1.0, 1.0, -1.0]])).tolist()
      [[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]
    """
    keys = _matrix(keys, "keys", "hetero_weights")
    values = _matrix(values, "values", "hetero_weights")
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"hetero_weights: {keys.shape[0]} keys but {values.shape[0]} values")
    return values.T @ keys


def _check_state(x: ArrayLike, weights: ArrayLike, context: str, *, square: bool = True) -> tuple[Array, Array]:
    """A state (D,) and weights (D, D) (``square=False``: (D_out, D), for the one-step hetero-associative map)."""
    weights = _matrix(weights, "weights", context)
    if square and weights.shape[0] != weights.shape[1]:
        raise ValueError(
            f"{context}: weights must be square (D, D) for a state that maps to itself, got {tuple(weights.shape)}"
        )
    x = check_floating(x, "x", context)
    if x.ndim != 1 or x.shape[0] != weights.shape[1]:
        raise ValueError(f"{context}: x must have shape ({weights.shape[1]},) to match weights, got {tuple(x.shape)}")
    return x, weights


def classical_energy(x: Float[ArrayLike, " D"], weights: Float[ArrayLike, "D D"]) -> Float[Array, ""]:
    """``E(x) = -1/2 x^T W x``; sign dynamics are thresholded gradient steps on it (Hsu (2025), "Hopfield network").

    Args:
      x: (D,) state.
      weights: (D, D) weights.

    Returns:
      Scalar energy.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import classical_energy, hebbian_weights
      >>> p = jnp.array([[1.0, -1.0, 1.0]])
      >>> float(classical_energy(p[0], hebbian_weights(p)))  # -1/2 <p, p>^2
      -4.5
    """
    x, weights = _check_state(x, weights, "classical_energy")
    return -0.5 * x @ (weights @ x)


def sync_update(x: Float[ArrayLike, " D"], weights: Float[ArrayLike, "D_out D"]) -> Float[Array, " D_out"]:
    """Synchronous sign update ``sign(W x)``: every output unit at once.

    With square Hebbian weights this is one step ``x <- sign(W x)`` of the Hopfield network (Hsu (2025), slide
    "Hopfield network"); with ``W = sum_i y_i x_i^T`` from :func:`hetero_weights` it is the whole recall
    ``M(x) = sign(W x)`` of the one-step Hopfield memory (Hsu (2025), slide "One-step Hopfield network"; capacity
    ~ D / log D).

    Args:
      x: (D,) state or key query.
      weights: (D_out, D) weights; (D, D) for a state that maps to itself.

    Returns:
      (D_out,) bipolar next state or recalled value.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import hetero_weights, sync_update
      >>> keys = jnp.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]])
      >>> values = jnp.array([[1.0, -1.0], [-1.0, -1.0]])
      >>> sync_update(keys[1], hetero_weights(keys, values)).tolist()  # recalls values[1]
      [-1.0, -1.0]
    """
    x, weights = _check_state(x, weights, "sync_update", square=False)
    return bipolar_sign(weights @ x)


def async_sweep(key: PRNGKey, x: Float[ArrayLike, " D"], weights: Float[ArrayLike, "D D"]) -> Float[Array, " D"]:
    """One asynchronous sweep: every unit once, in a random order, ``x_i <- sign(W_i . x)``.

    With a symmetric ``W`` and zero diagonal each single-unit update never increases :func:`classical_energy`
    (Hsu (2025), slide "Hopfield network").

    Args:
      key: PRNG key for the order of the units (same key, same order).
      x: (D,) bipolar state.
      weights: (D, D) weights.

    Returns:
      (D,) bipolar state after the sweep.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.energies import async_sweep, hebbian_weights
      >>> w = hebbian_weights(jnp.array([[1.0, -1.0, 1.0, -1.0]]), zero_diagonal=True)
      >>> async_sweep(jax.random.key(0), jnp.array([1.0, 1.0, 1.0, -1.0]), w).tolist()  # the flipped unit returns
      [1.0, -1.0, 1.0, -1.0]
    """
    x, weights = _check_state(x, weights, "async_sweep")
    order = jax.random.permutation(key, x.shape[0])

    def flip(i, state):
        unit = order[i]
        return state.at[unit].set(bipolar_sign(weights[unit] @ state))

    return lax.fori_loop(0, x.shape[0], flip, x)


class ClassicalRetrieval(NamedTuple):
    """Result of :func:`classical_retrieve`: final state, sweeps taken, whether a fixed point was reached."""

    x: Array
    steps: Array
    converged: Array


def classical_retrieve(
    x0: Float[ArrayLike, " D"],
    weights: Float[ArrayLike, "D D"],
    *,
    mode: Literal["sync", "async"] = "async",
    key: PRNGKey | None = None,
    max_steps: int = 100,
) -> ClassicalRetrieval:
    """Run sign dynamics from ``x0`` until a fixed point (``x`` unchanged by a full update) or ``max_steps``.

    Args:
      x0: (D,) bipolar start state.
      weights: (D, D) weights.
      mode: ``"sync"`` (x <- sign(Wx); may end in a 2-cycle) or ``"async"`` (random-order sweeps; needs ``key``).
      key: PRNG key for the sweep orders (async only).
      max_steps: maximum number of updates / sweeps (static).

    Returns:
      :class:`ClassicalRetrieval`.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import classical_retrieve, hebbian_weights
      >>> p = jnp.array([[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]])
      >>> out = classical_retrieve(p[0].at[0].set(-1.0), hebbian_weights(p), mode="sync")
      >>> out.x.tolist(), int(out.steps), bool(out.converged)
      ([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], 2, True)
    """
    x0, weights = _check_state(x0, weights, "classical_retrieve")
    max_steps = check_int(max_steps, "max_steps", "classical_retrieve", minimum=1)
    if mode not in ("sync", "async"):
        raise ValueError(f"classical_retrieve: mode must be 'sync' or 'async', got {mode!r}")
    if mode == "async" and key is None:
        raise ValueError("classical_retrieve: mode='async' needs a PRNG key (key=jax.random.key(...))")
    if mode == "sync" and key is not None:
        raise ValueError("classical_retrieve: key is only used by mode='async'")

    return _classical_retrieve(mode, max_steps, x0, weights, key)


@partial(jax.jit, static_argnums=(0, 1))
def _classical_retrieve(
    mode: Literal["sync", "async"], max_steps: int, x0: Array, weights: Array, key: PRNGKey | None
) -> ClassicalRetrieval:
    """The loop of :func:`classical_retrieve`, jitted so eager calls reuse the compiled code."""

    def step(t, x):
        if mode == "sync":
            return sync_update(x, weights)
        return async_sweep(jax.random.fold_in(key, t), x, weights)

    def cond(carry):
        _, t, done = carry
        return (t < max_steps) & ~done

    def body(carry):
        x, t, _ = carry
        x_new = step(t, x)
        return x_new, t + 1, jnp.all(x_new == x)

    x, steps, done = lax.while_loop(cond, body, (x0, jnp.int32(0), jnp.bool_(False)))
    return ClassicalRetrieval(x, steps, done)


def one_step_modern(
    x: Float[ArrayLike, " D"],
    keys: Float[ArrayLike, "M D"],
    values: Float[ArrayLike, "M D_out"],
    beta: ArrayLike = 1.0,
    *,
    mask: ArrayLike | None = None,
) -> Float[Array, " D_out"]:
    """One-step modern Hopfield memory ``M(x) = sign(sum_i exp(beta <x, x_i>) y_i)``.

    Hsu (2025), slide "One-step modern Hopfield network" (beta = 1 there; Demircigil et al. (2017)); capacity
    ``exp(Omega(d))``. The sum is computed as ``values^T softmax(beta keys x)`` (same sign, no overflow): the
    attention output. A concrete ``mask`` that stores no pair is refused; under tracing such a mask gives the
    documented finite result ``+1`` everywhere (the softmax of a row with no stored pair is all zeros and
    ``sign(0) = +1``).

    Args:
      x: (D,) query.
      keys: (M, D) keys.
      values: (M, D_out) values.
      beta: inverse temperature, a scalar > 0 (the notes use 1; a traced ``beta <= 0`` gives NaN).
      mask: optional (M,) booleans, True = pair stored (others are ignored).

    Returns:
      (D_out,) bipolar recalled value.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import one_step_modern
      >>> keys = jnp.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
      >>> values = jnp.array([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])
      >>> one_step_modern(keys[2], keys, values).tolist()  # recalls values[2]
      [-1.0, 1.0]
    """
    keys = _matrix(keys, "keys", "one_step_modern")
    values = _matrix(values, "values", "one_step_modern")
    x = check_floating(x, "x", "one_step_modern")
    if x.ndim != 1 or x.shape[0] != keys.shape[1]:
        raise ValueError(f"one_step_modern: x must have shape ({keys.shape[1]},), got {tuple(x.shape)}")
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"one_step_modern: {keys.shape[0]} keys but {values.shape[0]} values")
    beta = check_beta(beta, "one_step_modern")
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_ or mask.shape != (keys.shape[0],):
            raise ValueError(
                f"one_step_modern: mask must be booleans of shape ({keys.shape[0]},), got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )
        if is_concrete(mask) and not np.asarray(mask).any():  # numpy: jnp.any would trace under jit
            raise ValueError("one_step_modern: mask stores no pair (all False); at least one pair must be stored")
    return nan_unless_positive(beta, bipolar_sign(softmax(beta * (keys @ x), where=mask) @ values))
