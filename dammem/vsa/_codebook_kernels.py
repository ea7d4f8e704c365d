"""Unvalidated codebook kernels: rows, scores and clean-ups of any :class:`~dammem.vsa.Codebook`, jitted.

Shape legend: ``N`` codebook size, ``D`` vector dimension, ``...`` batch axes. Inputs are assumed valid: the public
methods (:meth:`~dammem.vsa.Codebook.rows`, :meth:`~dammem.vsa.Codebook.cleanup`, ...) check them and call these
kernels, and code that validates once and then loops (the overwrite rule under ``lax.scan``) calls them directly.

Each kernel dispatches to the implementation hook of the codebook's kind (a pytree, so its arrays are traced and a
new codebook of the same kind and size never re-traces). This module does not import the codebook classes (it only
calls their hooks), so the codebook module can import it without a cycle.

* rows ``C_j`` for integer indices (KROP kinds in O(D) from the bits of ``j``: Liu et al. (2025), slide "Linear
  Time Vector Reconstruction");
* scores ``C x`` and hard clean-up ``argmax_j <C_j, x>`` (Liu et al. (2025), slide "Issue During Reading");
* soft clean-up ``C^T softmax(beta C x)``.

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
"""

from __future__ import annotations

from typing import Any

import jax
from jaxtyping import Float, Int

from dammem._types import Array

__all__ = ["rows_kernel", "scores_kernel", "cleanup_kernel", "soft_cleanup_kernel"]


@jax.jit
def rows_kernel(codebook: Any, idx: Int[Array, "*idx"]) -> Float[Array, "*idx D"]:
    """Codewords ``C_j`` of a codebook for int indices in ``[0, N)`` (unchecked): ``idx.shape + (D,)``."""
    return codebook._rows_impl(idx)


@jax.jit
def scores_kernel(codebook: Any, x: Float[Array, "*batch D"]) -> Float[Array, "*batch N"]:
    """Scores ``<C_j, x>`` with every codeword: ``(..., D) -> (..., N)``."""
    return codebook._scores_impl(x)


@jax.jit
def cleanup_kernel(codebook: Any, x: Float[Array, "*batch D"]) -> Int[Array, "*batch"]:
    """Hard clean-up ``argmax_j <C_j, x>``: ``(..., D) -> (...)`` int32 (ties: the first maximum)."""
    return codebook._cleanup_impl(x)


@jax.jit
def soft_cleanup_kernel(codebook: Any, x: Float[Array, "*batch D"], beta: Float[Array, "*batch"]) -> Array:
    """Soft clean-up ``C^T softmax(beta C x)``: ``(..., D) -> (..., D)``; ``beta`` has the batch shape of ``x``."""
    return codebook._soft_cleanup_impl(x, beta)
