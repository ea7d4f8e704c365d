"""Modern, generalized sparse and polynomial Hopfield energies and the retrieval update.

Shape legend: ``K`` memories, ``D`` pattern dimension (:mod:`dammem._types`). Functions of ONE query ``x`` (D,);
batch with ``jax.vmap``. ``beta`` and ``alpha`` are traced; ``similarity`` and ``power`` are static (a
:func:`~dammem.similarities.kernelize` similarity is a pytree whose weight is traced).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Krotov, Hopfield (2016). Dense Associative Memory for Pattern Recognition. NeurIPS.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_int
from dammem.energies._common import (
    ENERGY_FORMS,
    check_alpha,
    check_beta,
    check_query,
    energy_similarity,
    nan_unless_positive,
    resolve_similarity,
    similarity_scores,
)
from dammem.separations import tsallis_separation
from dammem.similarities import SimilarityLike

__all__ = ["modern_hopfield_energy", "sparse_hopfield_energy", "sparse_hopfield_update", "polynomial_energy"]


def modern_hopfield_energy(
    x: Float[ArrayLike, " D"], memories: Float[ArrayLike, "K D"], beta: ArrayLike
) -> Float[Array, ""]:
    """Modern Hopfield energy ``E(x) = 1/2 <x, x> - lse(beta, Xi x)`` (Wu et al. (2024), eq. 1.1).

    ``lse(beta, z) = (1/beta) log sum_mu exp(beta z_mu)``; the constants of Ramsauer et al. (2021) are omitted.
    Equal to :func:`sparse_hopfield_energy` with ``alpha = 1`` and the dot similarity.

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature, a scalar > 0.

    Returns:
      Scalar energy.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import modern_hopfield_energy
      >>> x, memories = jnp.array([1.0, 0.0]), jnp.eye(2)
      >>> round(float(modern_hopfield_energy(x, memories, 1.0)), 4)  # 1/2 - log(e + 1)
      -0.8133
    """
    context = "modern_hopfield_energy"
    x, memories = check_query(x, memories, context)
    beta = check_beta(beta, context)
    return ENERGY_FORMS["modern_hopfield"].energy(x, memories, beta, 1.0, context)


def sparse_hopfield_energy(
    x: Float[ArrayLike, " D"],
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    alpha: ArrayLike,
    *,
    similarity: SimilarityLike = "dot",
) -> Float[Array, ""]:
    """Generalized sparse Hopfield energy, the Lyapunov function of :func:`sparse_hopfield_update`.

    ``E(x) = 1/2 sim(x, x) - c Psi*_alpha(beta, sim(Xi, x))`` with ``Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta``
    the Tsallis conjugate (Wu et al. (2024), eq. 2.3; alpha = 1 gives the modern Hopfield energy, alpha = 2 the
    sparsemax one) and ``c`` the similarity's ``energy_scale``:

    - ``"dot"`` (c = 1): ``1/2 <x, x> - Psi*(beta, Xi x)``, Wu et al. (2024), eq. 2.2 with the inner product.
    - ``kernelize("dot", W)`` (c = 1): ``1/2 ||W x||^2 - Psi*(beta, K(Xi, x))``, Wu et al. (2024), eq. 2.2.
    - ``"neg_sq_l2"`` (c = 1/2): ``-Psi*(-beta ||Xi - x||^2) / (2 beta)``; also ``kernelize("neg_sq_l2", W)``. At
      alpha = 1 this is :func:`~dammem.energies.rbf_energy` at ``2 beta`` (Hoover et al. (2024), eq. 11).

    For each, ``x <- Xi^T Sep_alpha(beta sim(Xi, x))`` is a concave-convex (CCCP) step, so it never increases the
    energy (Wu et al. (2024), Thm. 2.1). ``"neg_l1"``, ``"cosine"`` and plain callables have no such energy and are
    refused; declare one with :class:`~dammem.similarities.Similarity` (``energy_scale``).

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature, a scalar > 0 (concrete values are checked; a traced ``beta <= 0`` gives NaN).
      alpha: Tsallis alpha, a scalar in [1, 2] (a traced alpha outside gives NaN).
      similarity: ``"dot"``, ``"neg_sq_l2"``, ``kernelize(...)`` of them, or a ``Similarity`` with an energy scale.

    Returns:
      Scalar energy.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import modern_hopfield_energy, sparse_hopfield_energy
      >>> x, memories = jnp.array([1.0, 0.0]), jnp.eye(2)
      >>> bool(jnp.isclose(sparse_hopfield_energy(x, memories, 1.0, 1.0), modern_hopfield_energy(x, memories, 1.0)))
      True
      >>> float(sparse_hopfield_energy(x, memories, 1.0, 2.0))  # 1/2 - (<p, z> - 1/2 ||p||^2 + 1/2), p = (1, 0)
      -0.5
    """
    context = "sparse_hopfield_energy"
    x, memories = check_query(x, memories, context)
    sim = energy_similarity(similarity, context)
    beta, alpha = check_beta(beta, context), check_alpha(alpha, context)
    return ENERGY_FORMS["sparse_hopfield"].with_similarity(sim).energy(x, memories, beta, alpha, context)


def sparse_hopfield_update(
    x: Float[ArrayLike, " D"],
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    alpha: ArrayLike,
    *,
    similarity: SimilarityLike = "dot",
) -> Float[Array, " D"]:
    """Retrieval update ``x <- Xi^T Sep_alpha(beta sim(Xi, x))`` (Wu et al. (2024), eq. 2.4).

    Sep_1 = softmax, Sep_2 = sparsemax, alpha-entmax between. It is the CCCP step of :func:`sparse_hopfield_energy`
    for every similarity that energy accepts (with clamped coordinates reset after it, only for ``"dot"`` and
    ``"neg_sq_l2"``; see :mod:`dammem.similarities`). It also accepts ``"neg_l1"``, ``"cosine"`` and plain
    callables as a one-step retrieval map with no Lyapunov energy (iterating it may raise any energy).

    Args:
      x: (D,) query.
      memories: (K, D) stored patterns.
      beta: inverse temperature, a scalar > 0 (concrete values are checked; a traced ``beta <= 0`` gives NaN).
      alpha: Tsallis alpha, a scalar in [1, 2].
      similarity: a name, a ``Similarity``, ``kernelize(...)`` or a callable ``sim(memories, x) -> (K,)``.

    Returns:
      (D,) the next state.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import sparse_hopfield_update
      >>> memories = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
      >>> x = sparse_hopfield_update(jnp.array([1.0, 0.6]), memories, 1.0, 2.0)  # sparsemax weights (0.7, 0.3, 0)
      >>> [round(v, 3) for v in x.tolist()]
      [0.7, 0.3]
    """
    context = "sparse_hopfield_update"
    x, memories = check_query(x, memories, context)
    sim = resolve_similarity(similarity, context)
    beta, alpha = check_beta(beta, context), check_alpha(alpha, context)
    scores = similarity_scores(sim, memories, x, context)
    return nan_unless_positive(beta, tsallis_separation(beta * scores, alpha) @ memories)


def polynomial_energy(
    x: Float[ArrayLike, " D"], memories: Float[ArrayLike, "K D"], power: int, *, rectified: bool = False
) -> Float[Array, ""]:
    """Dense associative memory energy ``E(x) = -sum_mu F(<xi_mu, x>)``, ``F(s) = s^n`` (Krotov & Hopfield (2016)).

    ``rectified=True`` uses ``F(s) = max(s, 0)^n`` (their rectified polynomial). Wu et al. (2024), Sec. 4.1 uses
    n = 10 as a baseline. The energy is unbounded below for continuous states; use it with sign or clamped dynamics.

    Args:
      x: (D,) state.
      memories: (K, D) stored patterns.
      power: the integer n >= 1 (static).
      rectified: rectify the overlaps before the power.

    Returns:
      Scalar energy.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import polynomial_energy
      >>> memories = jnp.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0]])
      >>> float(polynomial_energy(jnp.ones(3), memories, 3))  # -(3^3 + (-1)^3)
      -26.0
      >>> float(polynomial_energy(jnp.ones(3), memories, 3, rectified=True))  # -(3^3 + 0)
      -27.0
    """
    x, memories = check_query(x, memories, "polynomial_energy")
    power = check_int(power, "power", "polynomial_energy", minimum=1)
    overlaps = memories @ x
    if rectified:
        overlaps = jnp.maximum(overlaps, 0.0)
    return -jnp.sum(overlaps**power)
