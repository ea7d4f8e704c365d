"""Shared checks and the scaled conjugate ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` used by the energies."""

from __future__ import annotations

from dammem._types import Array
from dammem._validate import check_memories_query, check_positive
from dammem.separations import conjugate


def check_query(x, memories, where: str) -> tuple[Array, Array]:
    """One query (D,) against at least one memory (K, D); refuses batches (callers vmap) and mismatched D."""
    memories, x = check_memories_query(memories, x, where, min_memories=1)
    return x, memories


def scaled_conjugate(beta, z: Array, alpha, where: str) -> Array:
    """``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` (seed 002 eq. 2.3 with the 1/beta of ``lse(beta, .)``).

    Its gradient in ``z`` is ``alpha-entmax(beta z)``, so ``1/2 <x, x> - Psi*(beta, Xi^T x)`` has the fixed point
    ``x = Xi Sep(beta Xi^T x)`` (eq. 2.4). ``alpha = 1`` gives ``lse(beta, z)`` of eq. 1.1.
    """
    check_positive(beta, "beta", where)
    return conjugate(beta * z, alpha) / beta
