"""What the DrDAM experiments share: the feature and projection kinds of their configs, the checks of the sweep
fields they have in common, and energy descent from a batch of queries.

Shape legend: ``B`` queries, ``D`` pattern dimension.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eq. 5: energy descent; Secs. 4.1-4.2, App. C-D: the sweeps).
"""

from __future__ import annotations

from typing import Literal

import jax
from jax import lax

import dammem

__all__ = ["FeatureKind", "Projection", "check_sweep", "descend"]

FeatureKind = Literal["cos", "sincos", "exp", "expexp"]
Projection = Literal["gaussian", "orthogonal", "structured", "materialized"]


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
