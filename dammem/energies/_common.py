"""Shared checks and the scaled conjugate ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` used by the energies."""

from __future__ import annotations

from dammem._types import Array
from dammem._validate import check_floating, check_positive
from dammem.separations import conjugate


def check_query(x, memories, where: str) -> tuple[Array, Array]:
    """One query (D,) against memories (K, D); refuses batches (callers vmap) and mismatched D."""
    x = check_floating(x, "x", where)
    memories = check_floating(memories, "memories", where)
    if memories.ndim != 2:
        raise ValueError(f"{where}: memories must have shape (K, D), got {tuple(memories.shape)}")
    if x.ndim != 1:
        raise ValueError(f"{where}: x must be one query of shape (D,), got {tuple(x.shape)}; use jax.vmap for batches")
    if memories.shape[1] != x.shape[0]:
        raise ValueError(f"{where}: memories have D={memories.shape[1]} but x has D={x.shape[0]}")
    if memories.shape[0] == 0:
        raise ValueError(f"{where}: memories must hold at least one pattern, got K=0")
    return x, memories


def scaled_conjugate(beta, z: Array, alpha, where: str) -> Array:
    """``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` (seed 002 eq. 2.3 with the 1/beta of ``lse(beta, .)``).

    Its gradient in ``z`` is ``alpha-entmax(beta z)``, so ``1/2 <x, x> - Psi*(beta, Xi^T x)`` has the fixed point
    ``x = Xi Sep(beta Xi^T x)`` (eq. 2.4). ``alpha = 1`` gives ``lse(beta, z)`` of eq. 1.1.
    """
    check_positive(beta, "beta", where)
    return conjugate(beta * z, alpha) / beta
