"""MrDAM: the dense associative memory energies of seed 001 (memory representation).

Shape legend: ``K`` memories, ``D`` pattern dimension. Every energy is a function of ONE query ``x`` of shape
``(D,)``; batch with ``jax.vmap``. ``beta`` is traced (sweeps never re-trace).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem.energies._common import check_query, scaled_conjugate
from dammem.separations import softmax
from dammem.similarities import neg_sq_l2

__all__ = ["rbf_energy", "rbf_update", "edp_energy"]


def rbf_energy(x: Float[Array, " D"], memories: Float[Array, "K D"], beta: ArrayLike) -> Float[Array, ""]:
    """RBF (log-sum-exp of negative squared distances) energy, seed 001 eq. (11).

    ``E(x) = -(1/beta) log sum_mu exp(-beta/2 ||xi_mu - x||^2)``; its gradient is eq. (18):
    ``x - softmax(-beta/2 ||x - Xi||^2) Xi``.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns ``Xi``.
      beta: inverse temperature > 0.

    Returns:
      Scalar energy.

    Example:
      >>> rbf_energy(jnp.zeros(2), jnp.eye(2), 1.0)
    """
    x, memories = check_query(x, memories, "rbf_energy")
    scores = 0.5 * neg_sq_l2(memories, x)
    return -scaled_conjugate(beta, scores, 1.0, "rbf_energy")


def rbf_update(x: Float[Array, " D"], memories: Float[Array, "K D"], beta: ArrayLike) -> Float[Array, " D"]:
    """The fixed point map of eq. (18): ``x <- softmax(-beta/2 ||x - Xi||^2) Xi`` (a CCCP step on eq. 11).

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature > 0.

    Returns:
      (D,) the next state.
    """
    x, memories = check_query(x, memories, "rbf_update")
    scores = 0.5 * neg_sq_l2(memories, x)
    return softmax(beta * scores) @ memories


def edp_energy(x: Float[Array, " D"], memories: Float[Array, "K D"], beta: ArrayLike) -> Float[Array, ""]:
    """Exponential dot-product energy with ``g(x) = x / ||x||``, seed 001 eq. (7).

    ``E(x) = -(1/beta) log sum_mu exp(beta <xi_mu, x / ||x||>)``. At ``x = 0`` the norm is clamped to the smallest
    normal float, so the energy stays finite (``g(0) = 0``).

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature > 0.

    Returns:
      Scalar energy.
    """
    x, memories = check_query(x, memories, "edp_energy")
    g = x / jnp.maximum(jnp.linalg.norm(x), jnp.finfo(x.dtype).tiny)
    return -scaled_conjugate(beta, memories @ g, 1.0, "edp_energy")
