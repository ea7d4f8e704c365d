"""What the DrDAM experiments share: the feature and projection kinds of their configs, the checks of the sweep
fields they have in common, energy descent from a batch of queries, and the data of Sec. 4.1 (binary patterns,
queries at / near / far from them) with the MrDAM and DrDAM energies and gradients at them.

Shape legend: ``B`` queries, ``D`` pattern dimension.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eq. 5: energy descent; Secs. 4.1-4.2, App. C-D: the sweeps).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import dammem
from dammem import drdam
from dammem.corruptions import flip_bits
from dammem.energies import rbf_energy

__all__ = [
    "FeatureKind",
    "Projection",
    "check_sweep",
    "descend",
    "QUERY_SETS",
    "SET_LABELS",
    "binary_patterns",
    "prefix_bits",
    "make_queries",
    "trial_data",
    "loglog_slope",
    "mrdam_values",
    "drdam_values",
]

FeatureKind = Literal["cos", "sincos", "exp", "expexp"]
Projection = Literal["gaussian", "orthogonal", "structured", "materialized"]
QUERY_SETS = ("at", "near", "far")
SET_LABELS = {"at": "at stored patterns", "near": "near stored patterns", "far": "far (unstored patterns)"}
_SPARE_BITS = 6  # distinct prefixes are drawn from 2^6 = 64 times more codes than patterns
_QUERY_BATCH = 128  # queries per vectorised step (bounds memory; results do not depend on it)


def check_sweep(config) -> None:
    """Check the sweep fields the DrDAM configs share, those that ``config`` has: ``betas`` (non-empty, > 0),
    ``num_features`` (strictly increasing, >= 1), ``near_flip_fraction`` (in [0, 1]), the descent's ``step_size``
    (> 0), ``max_steps`` (>= 1) and ``tol`` (> 0), and ``num_trials`` (>= 1).

    Raises:
      ValueError: naming the field, its value and what is allowed.
    """
    if hasattr(config, "betas") and (not config.betas or any(not b > 0 for b in config.betas)):
        raise ValueError(f"betas must be a non-empty list of numbers > 0, got {list(config.betas)}")
    ys = list(config.num_features)
    if not ys or ys[0] < 1 or ys != sorted(set(ys)):
        raise ValueError(f"num_features must be strictly increasing positive integers, got {ys}")
    if hasattr(config, "near_flip_fraction") and not 0 <= config.near_flip_fraction <= 1:
        raise ValueError(f"near_flip_fraction must lie in [0, 1], got {config.near_flip_fraction}")
    if hasattr(config, "step_size"):
        if not config.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {config.step_size}")
        if config.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {config.max_steps}")
        if not config.tol > 0:
            raise ValueError(f"tol must be > 0, got {config.tol}")
    if config.num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {config.num_trials}")


def descend(
    energy, queries: jax.Array, args: tuple, *, step_size, max_steps: int, tol, clamp=None, sequential: bool = False
) -> dammem.Retrieval:
    """Energy descent (Hoover et al. (2024), eq. 5; :func:`dammem.retrieve`) from each of the ``(B, D)`` queries.

    Args:
      energy, args, step_size, max_steps, tol, clamp: as in :func:`dammem.retrieve`.
      queries: ``(B, D)`` initial states.
      sequential: one query at a time under ``lax.map`` (bounds memory for large ``D``) instead of ``jax.vmap``.

    Returns:
      The batched :class:`dammem.Retrieval` (leading axis ``B``).
    """

    def one(x):
        return dammem.retrieve(energy, x, args, step_size=step_size, clamp=clamp, max_steps=max_steps, tol=tol)

    return lax.map(one, queries) if sequential else jax.vmap(one)(queries)


def prefix_bits(n: int, d: int) -> int:
    """Bits of the distinct prefix of :func:`binary_patterns`: ``min(D, ceil(log2 n) + 6)``."""
    return min(d, max(n - 1, 1).bit_length() + _SPARE_BITS)


def binary_patterns(key: jax.Array, n: int, d: int) -> jax.Array:
    """``n`` distinct patterns in ``{0, 1/sqrt(D)}^D``: uniform, conditioned on distinct first :func:`prefix_bits`
    bits (drawn without replacement; all ``D`` bits when ``2^D`` is small), the other bits independent.

    Returns:
      ``(n, D)`` float32.
    """
    k_head, k_tail = jax.random.split(key)
    head = prefix_bits(n, d)
    codes = jax.random.choice(k_head, 2**head, (n,), replace=False)
    bits = (codes[:, None] >> jnp.arange(head)) & 1
    if d > head:
        bits = jnp.concatenate([bits, jax.random.bernoulli(k_tail, 0.5, (n, d - head)).astype(bits.dtype)], 1)
    return bits.astype(jnp.float32) / math.sqrt(d)


def loglog_slope(ys, errors) -> float:
    """Least-squares slope of ``log(error)`` against ``log(Y)`` (nan if fewer than two positive points)."""
    ys, errors = np.asarray(ys, np.float64), np.asarray(errors, np.float64)
    ok = errors > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(ys[ok]), np.log(errors[ok]), 1)[0])


def make_queries(key: jax.Array, d: int, k: int, flip) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sec. 4.1's data: stored patterns (K, D), the reference queries (3, K, D) at / near / far (``flip``: fraction
    of bits flipped for near), and K fresh random "guess" queries (D, K distinct patterns each)."""
    k_pat, k_near, k_guess = jax.random.split(key, 3)
    patterns = binary_patterns(k_pat, 2 * k, d)
    stored = patterns[:k]
    high = float(np.float32(1.0) / np.float32(math.sqrt(d)))  # the float32 level of binary_patterns, not float64
    near = flip_bits(k_near, stored, flip, levels=(0.0, high))
    guess = binary_patterns(k_guess, k, d)
    return stored, jnp.stack([stored, near, patterns[k:]]), guess


def mrdam_values(queries: jax.Array, stored: jax.Array, beta) -> tuple[jax.Array, jax.Array]:
    """MrDAM energies (...,) and gradients (..., D) at queries (..., D) (eq. 11 and its gradient, eq. 18)."""
    flat = queries.reshape(-1, queries.shape[-1])
    vg = jax.value_and_grad(rbf_energy)
    e, g = lax.map(lambda x: vg(x, stored, beta), flat, batch_size=_QUERY_BATCH)
    return e.reshape(queries.shape[:-1]), g.reshape(queries.shape)


def drdam_values(queries: jax.Array, T, features, beta) -> tuple[jax.Array, jax.Array]:
    """DrDAM energies (...,) and gradients (..., D) at queries (..., D), in batches of queries."""
    flat = queries.reshape(-1, queries.shape[-1])
    vg = jax.value_and_grad(drdam.energy)
    e, g = lax.map(lambda x: vg(x, T, features, beta), flat, batch_size=_QUERY_BATCH)
    return e.reshape(queries.shape[:-1]), g.reshape(queries.shape)


@partial(jax.jit, static_argnums=(1, 2))
def trial_data(trial_keys, d: int, k: int, flip):
    """Sec. 4.1's data of every trial, vectorised: stored (trials, K, D), reference queries (trials, 3, K, D), guess
    queries (trials, K, D) and the key of each trial's random features (trials,)."""

    def trial(key):
        k_data, k_feat = jax.random.split(key)
        return (*make_queries(k_data, d, k, flip), k_feat)

    return jax.vmap(trial)(trial_keys)
