"""Shared checks, the scaled conjugate ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` and the energy forms.

The beta check and :func:`nan_unless_positive` are those of :mod:`dammem._validate` (one home for every caller).

Shape legend: ``K`` memories, ``D`` pattern dimension (:mod:`dammem._types`).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike
from dammem._validate import check_beta as check_beta
from dammem._validate import check_memories_query, check_scalar, is_concrete
from dammem._validate import nan_unless_positive as nan_unless_positive
from dammem.separations import conjugate
from dammem.similarities import SIMILARITIES, Kernelized, Similarity, SimilarityLike, get_similarity


def check_query(x: ArrayLike, memories: ArrayLike, context: str) -> tuple[Array, Array]:
    """One query (D,) against at least one memory (K, D); refuses batches (callers vmap) and mismatched D."""
    memories, x = check_memories_query(memories, x, context, min_memories=1)
    return x, memories


def check_alpha(alpha: ArrayLike, context: str) -> ArrayLike:
    """Tsallis alpha of one query's energy: a real scalar; a concrete value must lie in [1, 2].

    A traced alpha outside [1, 2] makes the separations return NaN.
    """
    alpha = check_scalar(alpha, "alpha", context)
    if is_concrete(alpha):
        value = float(np.asarray(alpha))
        if not 1.0 <= value <= 2.0:
            raise ValueError(f"{context}: alpha must lie in [1, 2], got {value}")
    return alpha


def scaled_conjugate(beta: ArrayLike, z: Array, alpha: ArrayLike) -> Array:
    """``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` (Wu et al. (2024), eq. 2.3; alpha = 1 is ``lse(beta, z)``).

    Its gradient in ``z`` is ``Sep_alpha(beta z)``. ``beta`` must have passed :func:`check_beta`.
    """
    return nan_unless_positive(beta, conjugate(beta * z, alpha) / beta)


def similarity_scores(sim: Similarity | Kernelized, memories: Array, x: Array, context: str) -> Array:
    """``sim(memories, x)``, checked to be one score per memory."""
    scores = sim(memories, x)
    if jnp.shape(scores) != (memories.shape[0],):
        raise ValueError(
            f"{context}: similarity {sim.name!r} returned scores of shape {jnp.shape(scores)} for {memories.shape[0]} "
            f"memories; a similarity must return shape (K,) = ({memories.shape[0]},)"
        )
    return scores


def resolve_similarity(similarity: SimilarityLike, context: str) -> Similarity | Kernelized:
    """:func:`~dammem.similarities.get_similarity`, with errors prefixed by the calling function's name."""
    try:
        return get_similarity(similarity)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{context}: {err}") from None


def energy_similarity(similarity: SimilarityLike, context: str) -> Similarity | Kernelized:
    """Resolve ``similarity`` for an energy: refuse those with no energy whose descent is the retrieval update."""
    sim = resolve_similarity(similarity, context)
    if sim.energy_scale is None:
        raise ValueError(
            f"{context}: similarity {sim.name!r} has no energy whose descent is the update "
            f"x <- Xi^T Sep(beta sim(Xi, x)); energies accept 'dot', 'neg_sq_l2', kernelize('dot' or 'neg_sq_l2', W) "
            f"or a Similarity with an energy_scale (the update alone accepts {sim.name!r} as a one-step retrieval map)"
        )
    return sim


class EnergyForm(NamedTuple):
    """``E(x) = 1/2 sim(x, x) - c Psi*_alpha(beta, k sim(Xi, x))`` and its CCCP step
    ``x <- Xi^T Sep_alpha(beta k sim(Xi, x))`` (Wu et al. (2024), eqs. 2.2-2.4).

    ``k`` is ``score_scale``, ``c`` is ``energy_scale``. The memory-parallel functions of :mod:`dammem.sharding`
    take their scores, self term and energy from the same form, so both compute one equation.
    """

    similarity: Similarity | Kernelized
    score_scale: float
    energy_scale: float

    def with_similarity(self, similarity: Similarity | Kernelized) -> EnergyForm:
        """The generalized sparse form with another similarity: ``c`` is that similarity's ``energy_scale``."""
        return self._replace(similarity=similarity, energy_scale=similarity.energy_scale)

    def scores(self, memories: Array, x: Array, context: str) -> Array:
        """(K,) ``k sim(Xi, x)`` of one query."""
        return self.score_scale * similarity_scores(self.similarity, memories, x, context)

    def self_term(self, x: Array, context: str) -> Array:
        """``1/2 sim(x, x)`` of one query (``1/2 <x, x>`` for dot, 0 for neg_sq_l2)."""
        return 0.5 * similarity_scores(self.similarity, x[None], x, context)[0]

    def combine(self, self_term: Array, scaled_conjugate_value: Array) -> Array:
        """``1/2 sim(x, x) - c Psi*_alpha(beta, k sim(Xi, x))`` from its two terms."""
        return self_term - self.energy_scale * scaled_conjugate_value

    def energy(self, x: Array, memories: Array, beta: ArrayLike, alpha: ArrayLike, context: str) -> Array:
        """The energy of one checked query (``beta`` from :func:`check_beta`)."""
        psi = scaled_conjugate(beta, self.scores(memories, x, context), alpha)
        return self.combine(self.self_term(x, context), psi)


ENERGY_FORMS: dict[str, EnergyForm] = {
    # Hoover et al. (2024), eq. 11: -(1/beta) lse(beta, -1/2 ||Xi - x||^2) (its self term 1/2 sim(x, x) is 0)
    "rbf": EnergyForm(SIMILARITIES["neg_sq_l2"], score_scale=0.5, energy_scale=1.0),
    # Wu et al. (2024), eq. 1.1: 1/2 <x, x> - lse(beta, Xi x)
    "modern_hopfield": EnergyForm(SIMILARITIES["dot"], score_scale=1.0, energy_scale=1.0),
    # Wu et al. (2024), eq. 2.2 with the dot similarity; ``with_similarity`` gives the others
    "sparse_hopfield": EnergyForm(SIMILARITIES["dot"], score_scale=1.0, energy_scale=1.0),
}
"""The energy forms by model name (the energies of :mod:`dammem.energies` and of the memory-parallel functions)."""
