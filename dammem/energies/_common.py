"""Shared argument checks and the scaled conjugate ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` of the energies.

Shape legend: ``K`` memories, ``D`` pattern dimension (:mod:`dammem._types`).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, check_memories_query, check_positive, is_concrete
from dammem.separations import conjugate
from dammem.similarities import Kernelized, Similarity, SimilarityLike, get_similarity


def check_query(x: ArrayLike, memories: ArrayLike, where: str) -> tuple[Array, Array]:
    """One query (D,) against at least one memory (K, D); refuses batches (callers vmap) and mismatched D."""
    memories, x = check_memories_query(memories, x, where, min_memories=1)
    return x, memories


def check_scalar(value: ArrayLike, name: str, where: str) -> ArrayLike:
    """A real scalar (Python number or 0-d array); strings, complex values and arrays with axes are refused.

    Python numbers are returned as floats so they stay weakly typed (they never promote bf16 scores to float32).
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    arr = check_floating(value, name, where)
    if arr.ndim != 0:
        raise ValueError(f"{where}: {name} must be a scalar, got an array of shape {tuple(arr.shape)}")
    return arr


def check_beta(beta: ArrayLike, where: str) -> ArrayLike:
    """Inverse temperature: a real scalar; a concrete value must be finite and > 0 (see :func:`nan_unless_positive`)."""
    beta = check_scalar(beta, "beta", where)
    return check_positive(beta, "beta", where)


def check_alpha(alpha: ArrayLike, where: str) -> ArrayLike:
    """Tsallis alpha of one query's energy: a real scalar; a concrete value must lie in [1, 2].

    A traced alpha outside [1, 2] makes the separations return NaN.
    """
    alpha = check_scalar(alpha, "alpha", where)
    if is_concrete(alpha):
        value = float(np.asarray(alpha))
        if not 1.0 <= value <= 2.0:
            raise ValueError(f"{where}: alpha must lie in [1, 2], got {value}")
    return alpha


def nan_unless_positive(beta: ArrayLike, value: Array) -> Array:
    """``value`` where ``beta > 0``, NaN elsewhere: a traced ``beta <= 0`` (not checkable at trace time) gives NaN.

    A multiplication rather than a ``where``, so that derivatives turn NaN as well (descent does not stall silently).
    """
    if is_concrete(beta):  # already checked by check_beta
        return value
    return value * jnp.where(beta > 0, 1.0, jnp.nan).astype(value.dtype)


def scaled_conjugate(beta: ArrayLike, z: Array, alpha: ArrayLike) -> Array:
    """``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` (Wu et al. (2024), eq. 2.3; alpha = 1 is ``lse(beta, z)``).

    Its gradient in ``z`` is ``Sep_alpha(beta z)``. ``beta`` must have passed :func:`check_beta`.
    """
    return nan_unless_positive(beta, conjugate(beta * z, alpha) / beta)


def similarity_scores(sim: Similarity | Kernelized, memories: Array, x: Array, where: str) -> Array:
    """``sim(memories, x)``, checked to be one score per memory."""
    scores = sim(memories, x)
    if jnp.shape(scores) != (memories.shape[0],):
        raise ValueError(
            f"{where}: similarity {sim.name!r} returned scores of shape {jnp.shape(scores)} for {memories.shape[0]} "
            f"memories; a similarity must return shape (K,) = ({memories.shape[0]},)"
        )
    return scores


def resolve_similarity(similarity: SimilarityLike, where: str) -> Similarity | Kernelized:
    """:func:`~dammem.similarities.get_similarity`, with errors prefixed by the calling function's name."""
    try:
        return get_similarity(similarity)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None


def energy_similarity(similarity: SimilarityLike, where: str) -> Similarity | Kernelized:
    """Resolve ``similarity`` for an energy: refuse those with no energy whose descent is the retrieval update."""
    sim = resolve_similarity(similarity, where)
    if sim.energy_scale is None:
        raise ValueError(
            f"{where}: similarity {sim.name!r} has no energy whose descent is the update "
            f"x <- Xi^T Sep(beta sim(Xi, x)); energies accept 'dot', 'neg_sq_l2', kernelize('dot' or 'neg_sq_l2', W) "
            f"or a Similarity with an energy_scale (the update alone accepts {sim.name!r} as a one-step retrieval map)"
        )
    return sim
