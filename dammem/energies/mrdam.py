"""MrDAM: the dense associative memory energies with an explicit memory representation (Hoover et al. (2024)).

Shape legend: ``K`` memories, ``D`` pattern dimension (:mod:`dammem._types`). Every energy is a function of ONE
query ``x`` of shape ``(D,)``; batch with ``jax.vmap``. ``beta`` is traced (sweeps never re-trace).

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem.energies._common import ENERGY_FORMS, check_beta, check_query, nan_unless_positive, scaled_conjugate
from dammem.separations import softmax

__all__ = ["rbf_energy", "rbf_update", "edp_energy"]


def rbf_energy(x: Float[ArrayLike, " D"], memories: Float[ArrayLike, "K D"], beta: ArrayLike) -> Float[Array, ""]:
    """RBF (log-sum-exp of negative squared distances) energy, Hoover et al. (2024), eq. 11.

    ``E(x) = -(1/beta) log sum_mu exp(-beta/2 ||xi_mu - x||^2)``; its gradient is their eq. 18:
    ``x - softmax(-beta/2 ||x - Xi||^2) Xi``.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns ``Xi``.
      beta: inverse temperature, a scalar > 0 (concrete values are checked; a traced ``beta <= 0`` gives NaN).

    Returns:
      Scalar energy.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.energies import rbf_energy
      >>> memories = jnp.eye(2)
      >>> round(float(rbf_energy(jnp.zeros(2), memories, 1.0)), 4)  # 1/2 - log 2: both memories at distance 1
      -0.1931
      >>> x = jnp.array([0.5, 0.0])
      >>> grad = jax.grad(rbf_energy)(x, memories, 1.0)  # eq. 18: x - softmax(-1/2 ||x - Xi||^2) Xi
      >>> [round(g, 3) for g in grad.tolist()]
      [-0.122, -0.378]
    """
    x, memories = check_query(x, memories, "rbf_energy")
    beta = check_beta(beta, "rbf_energy")
    return ENERGY_FORMS["rbf"].energy(x, memories, beta, 1.0, "rbf_energy")


def rbf_update(x: Float[ArrayLike, " D"], memories: Float[ArrayLike, "K D"], beta: ArrayLike) -> Float[Array, " D"]:
    """The fixed-point map of Hoover et al. (2024), eq. 18: ``x <- softmax(-beta/2 ||x - Xi||^2) Xi``.

    A CCCP step on :func:`rbf_energy` (it never increases it): the energy is the dot energy at ``beta`` with the
    bias ``-||xi||^2 / 2`` on each score, and ``1/2 ||x||^2`` is its convex part.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature, a scalar > 0 (concrete values are checked; a traced ``beta <= 0`` gives NaN).

    Returns:
      (D,) the next state.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import rbf_update
      >>> print(jnp.round(rbf_update(jnp.array([0.9, 0.1]), jnp.eye(2), 20.0), 3))  # to the nearest memory
      [1. 0.]
    """
    x, memories = check_query(x, memories, "rbf_update")
    beta = check_beta(beta, "rbf_update")
    scores = ENERGY_FORMS["rbf"].scores(memories, x, "rbf_update")  # -1/2 ||Xi - x||^2
    return nan_unless_positive(beta, softmax(beta * scores) @ memories)


def edp_energy(x: Float[ArrayLike, " D"], memories: Float[ArrayLike, "K D"], beta: ArrayLike) -> Float[Array, ""]:
    """Exponential dot-product energy with ``g(x) = x / ||x||``, Hoover et al. (2024), eq. 7.

    ``E(x) = -(1/beta) log sum_mu exp(beta <xi_mu, x / ||x||>)``. The energy is scale-invariant and has no
    derivative at ``x = 0``; there ``g(0) = 0`` is used, so ``E(0) = -log(K) / beta`` and the gradient is 0 (finite:
    descent from an all-zero query stays put instead of turning NaN).

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature, a scalar > 0 (concrete values are checked; a traced ``beta <= 0`` gives NaN).

    Returns:
      Scalar energy.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import edp_energy
      >>> memories = jnp.eye(2)
      >>> bool(edp_energy(jnp.array([3.0, 0.0]), memories, 2.0) == edp_energy(jnp.array([1.0, 0.0]), memories, 2.0))
      True
      >>> round(float(edp_energy(jnp.zeros(2), memories, 2.0)), 4)  # -log(K) / beta at x = 0
      -0.3466
    """
    x, memories = check_query(x, memories, "edp_energy")
    beta = check_beta(beta, "edp_energy")
    sq = jnp.dot(x, x)
    nonzero = sq > 0
    g = jnp.where(nonzero, x / jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)  # double where: finite gradient at 0
    return -scaled_conjugate(beta, memories @ g, 1.0)
