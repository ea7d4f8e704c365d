"""Modern, generalized sparse and polynomial Hopfield energies (seed 002 eqs. 1.1, 2.2-2.4; Krotov & Hopfield 2016).

Shape legend: ``K`` memories, ``D`` pattern dimension. Functions of ONE query ``x`` (D,); batch with ``jax.vmap``.
``beta`` and ``alpha`` are traced; ``similarity`` and ``power`` are static.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_int
from dammem.energies._common import check_query, scaled_conjugate
from dammem.separations import tsallis_separation
from dammem.similarities import Similarity, get_similarity

__all__ = ["modern_hopfield_energy", "sparse_hopfield_energy", "sparse_hopfield_update", "polynomial_energy"]


def modern_hopfield_energy(x: Float[Array, " D"], memories: Float[Array, "K D"], beta: ArrayLike) -> Float[Array, ""]:
    """Modern Hopfield energy, seed 002 eq. (1.1): ``E(x) = -lse(beta, Xi^T x) + 1/2 <x, x>``.

    ``lse(beta, z) = (1/beta) log sum_mu exp(beta z_mu)``; constants of Ramsauer et al. are omitted. Equal to
    :func:`sparse_hopfield_energy` with ``alpha = 1`` and the dot similarity.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature > 0.

    Returns:
      Scalar energy.
    """
    x, memories = check_query(x, memories, "modern_hopfield_energy")
    return 0.5 * jnp.dot(x, x) - scaled_conjugate(beta, memories @ x, 1.0, "modern_hopfield_energy")


def sparse_hopfield_energy(
    x: Float[Array, " D"],
    memories: Float[Array, "K D"],
    beta: ArrayLike,
    alpha: ArrayLike,
    *,
    similarity: str | Similarity = "dot",
) -> Float[Array, ""]:
    """Generalized sparse Hopfield energy ``E(x) = 1/2 <x, x> - Psi*_alpha(beta, sim(Xi, x))`` (seed 002 eq. 2.2).

    ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta`` is the convex conjugate of the Tsallis entropy (eq. 2.3):
    alpha = 1 is the modern (softmax) Hopfield energy, alpha = 2 the sparse (sparsemax) one, in between
    alpha-entmax. With the dot similarity the update :func:`sparse_hopfield_update` is its CCCP step and never
    increases it (Thm. 2.1); with ``similarity=kernelized(W)`` this is U-Hop's kernelized energy.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature > 0.
      alpha: Tsallis alpha in [1, 2].
      similarity: a name from :data:`dammem.similarities.SIMILARITIES` or a callable ``sim(memories, x)``.

    Returns:
      Scalar energy.
    """
    x, memories = check_query(x, memories, "sparse_hopfield_energy")
    scores = get_similarity(similarity)(memories, x)
    return 0.5 * jnp.dot(x, x) - scaled_conjugate(beta, scores, alpha, "sparse_hopfield_energy")


def sparse_hopfield_update(
    x: Float[Array, " D"],
    memories: Float[Array, "K D"],
    beta: ArrayLike,
    alpha: ArrayLike,
    *,
    similarity: str | Similarity = "dot",
) -> Float[Array, " D"]:
    """Retrieval dynamics ``x <- Xi Sep_alpha(beta sim(Xi, x))`` (seed 002 eq. 2.4).

    Sep_1 = softmax, Sep_2 = sparsemax, alpha-entmax between.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature > 0.
      alpha: Tsallis alpha in [1, 2].
      similarity: a name or a callable ``sim(memories, x)``.

    Returns:
      (D,) the next state.
    """
    x, memories = check_query(x, memories, "sparse_hopfield_update")
    scores = get_similarity(similarity)(memories, x)
    return tsallis_separation(beta * scores, alpha) @ memories


def polynomial_energy(
    x: Float[Array, " D"], memories: Float[Array, "K D"], power: int, *, rectified: bool = False
) -> Float[Array, ""]:
    """Krotov-Hopfield dense associative memory energy ``E(x) = -sum_mu F(<xi_mu, x>)``, ``F(s) = s^n``.

    ``rectified=True`` uses ``F(s) = max(s, 0)^n`` (the rectified polynomial of Krotov & Hopfield 2016). Seed 002
    uses n = 10 as a baseline. The energy is unbounded below for continuous states; use it with sign or clamped
    dynamics.

    Args:
      x: (D,) state.
      memories: (K, D) stored patterns.
      power: the integer n >= 1 (static).
      rectified: rectify the overlaps before the power.

    Returns:
      Scalar energy.
    """
    x, memories = check_query(x, memories, "polynomial_energy")
    power = check_int(power, "power", "polynomial_energy", minimum=1)
    overlaps = memories @ x
    if rectified:
        overlaps = jnp.maximum(overlaps, 0.0)
    return -jnp.sum(overlaps**power)
