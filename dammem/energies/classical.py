"""Classical Hopfield networks and the one-step associative memories of Hsu (2025).

Shape legend: ``K`` stored patterns (or ``n`` key-value pairs), ``D`` (``d``) dimension. States are bipolar,
``{-1, +1}^D``; ``sign(0)`` is taken as ``+1`` so states stay bipolar. The lecture notes number no equations; the
citations name their slides.

References:
  - Hsu (2025). Associative memories. Lecture notes, COMS 6998-7, Columbia University.
  - Demircigil, Heusel, Loewe, Upgang, Vermet (2017). On a model of associative memory with huge storage capacity.
    J. Stat. Phys.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

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
    "one_step_hetero",
    "one_step_modern",
]


def bipolar_sign(u: Array) -> Array:
    """``sign(u)`` with ``sign(0) = +1``, in the dtype of ``u``."""
    return jnp.where(u >= 0, 1.0, -1.0).astype(u.dtype)


def _matrix(a, name: str, where: str) -> Array:
    a = check_floating(a, name, where)
    if a.ndim != 2:
        raise ValueError(f"{where}: {name} must be a matrix, got shape {tuple(a.shape)}")
    return a


def hebbian_weights(patterns: Array, *, zero_diagonal: bool = False) -> Array:
    """Hebbian outer-product weights ``W = sum_i x_i x_i^T`` (Hsu (2025), slide "Hopfield network").

    Args:
      patterns: (K, D) bipolar patterns.
      zero_diagonal: remove self-connections (``W_ii = 0``), which makes asynchronous dynamics strictly descend.

    Returns:
      (D, D) symmetric weights.
    """
    patterns = _matrix(patterns, "patterns", "hebbian_weights")
    w = patterns.T @ patterns
    return w - jnp.diag(jnp.diag(w)) if zero_diagonal else w


def hetero_weights(keys: Array, values: Array) -> Array:
    """Hetero-associative weights ``W = sum_i y_i x_i^T`` (Hsu (2025), slide "One-step Hopfield network").

    Args:
      keys: (n, d) keys ``x_i``.
      values: (n, d_out) values ``y_i``.

    Returns:
      (d_out, d) weights.
    """
    keys = _matrix(keys, "keys", "hetero_weights")
    values = _matrix(values, "values", "hetero_weights")
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"hetero_weights: {keys.shape[0]} keys but {values.shape[0]} values")
    return values.T @ keys


def _check_state(x, weights, where: str, *, square: bool = True) -> tuple[Array, Array]:
    """A state (D,) and weights (D, D) (``square=False``: (D_out, D), for the one-step hetero-associative map)."""
    weights = _matrix(weights, "weights", where)
    if square and weights.shape[0] != weights.shape[1]:
        raise ValueError(
            f"{where}: weights must be square (D, D) for a state that maps to itself, got {tuple(weights.shape)}"
        )
    x = check_floating(x, "x", where)
    if x.ndim != 1 or x.shape[0] != weights.shape[1]:
        raise ValueError(f"{where}: x must have shape ({weights.shape[1]},) to match weights, got {tuple(x.shape)}")
    return x, weights


def classical_energy(x: Array, weights: Array) -> Array:
    """``E(x) = -1/2 x^T W x``; sign dynamics are thresholded gradient steps on it (Hsu (2025), "Hopfield network")."""
    x, weights = _check_state(x, weights, "classical_energy")
    return -0.5 * x @ (weights @ x)


def sync_update(x: Array, weights: Array) -> Array:
    """Synchronous update ``x <- sign(W x)`` (all units at once; Hsu (2025), slide "Hopfield network")."""
    x, weights = _check_state(x, weights, "sync_update")
    return bipolar_sign(weights @ x)


def async_sweep(key: PRNGKey, x: Array, weights: Array) -> Array:
    """One asynchronous sweep: every unit once, in a random order, ``x_i <- sign(W_i . x)``.

    With a symmetric ``W`` and zero diagonal each single-unit update never increases :func:`classical_energy`.
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
    x0: Array, weights: Array, *, mode: str = "async", key: PRNGKey | None = None, max_steps: int = 100
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
def _classical_retrieve(mode: str, max_steps: int, x0: Array, weights: Array, key) -> ClassicalRetrieval:
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


def one_step_hetero(x: Array, weights: Array) -> Array:
    """One-step Hopfield memory ``M(x) = sign(W x)``, ``W = sum_i y_i x_i^T`` (Hsu (2025); capacity ~ d / log d).

    Args:
      x: (d,) key query.
      weights: (d_out, d) from :func:`hetero_weights`.

    Returns:
      (d_out,) bipolar recalled value.
    """
    x, weights = _check_state(x, weights, "one_step_hetero", square=False)
    return bipolar_sign(weights @ x)


def one_step_modern(
    x: Array, keys: Array, values: Array, beta: ArrayLike = 1.0, *, mask: ArrayLike | None = None
) -> Array:
    """One-step modern Hopfield memory ``M(x) = sign(sum_i exp(beta <x, x_i>) y_i)``.

    Hsu (2025), slide "One-step modern Hopfield network" (beta = 1 there; Demircigil et al. (2017)); capacity
    ``exp(Omega(d))``. The sum is computed as ``values^T softmax(beta keys x)`` (same sign, no overflow): the
    attention output. A concrete ``mask`` that stores no pair is refused; under tracing such a mask gives the
    documented finite result ``+1`` everywhere (the softmax of a row with no stored pair is all zeros and
    ``sign(0) = +1``).

    Args:
      x: (d,) query.
      keys: (n, d) keys.
      values: (n, d_out) values.
      beta: inverse temperature, a scalar > 0 (the notes use 1; a traced ``beta <= 0`` gives NaN).
      mask: optional (n,) booleans, True = pair stored (others are ignored).

    Returns:
      (d_out,) bipolar recalled value.
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
        if is_concrete(mask) and not bool(jnp.any(mask)):
            raise ValueError("one_step_modern: mask stores no pair (all False); at least one pair must be stored")
    return nan_unless_positive(beta, bipolar_sign(softmax(beta * (keys @ x), where=mask) @ values))
