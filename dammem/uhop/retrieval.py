"""Stage II of U-Hop: retrieval with the kernelized sparse Hopfield energy, and the exact-retrieval conditions.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width, ``B`` queries, ``T`` steps.

With the kernel ``K(u, v) = <W u, W v>`` (``dammem.similarities.kernelize("dot", W)``) the energy and its update are
(Wu et al. (2024), eqs. 2.2 and 2.4)

    E_K(x) = 1/2 K(x, x) - Psi*_alpha(beta, K(Xi, x)),        T_K(x) = Xi^T Sep_alpha(beta K(Xi, x)),

with ``Sep`` softmax (alpha = 1), alpha-entmax or sparsemax (alpha = 2). ``T_K`` is the concave-convex (CCCP) step
of ``E_K`` for any ``W`` (their Thm. 2.1), so the energy never increases along :func:`uhop_retrieve`; with F >= D
and ``W`` of full column rank the fixed points of ``T_K`` are the stationary points of ``E_K`` (Lemma 2.1).
:func:`uhop_retrieve` runs ``T_K`` through :func:`dammem.retrieve` with the energies of
:mod:`dammem.energies.hopfield`.

Exact retrieval (Wu et al. (2024), Sec. 2.3): memory ``xi_mu`` is a fixed point retrieved exactly when
``Sep_alpha(beta K(Xi, xi_mu)) = e_mu`` (eq. 2.9). For alpha > 1 that holds iff the score margin is at least
``1 / (alpha - 1)`` (their eqs. E.2-E.3, after Peters et al. (2019)):

    beta (K(xi_mu, xi_mu) - max_{nu != mu} K(xi_nu, xi_mu)) >= 1 / (alpha - 1)       (:func:`exact_retrieval_mask`).

Eq. 2.10 states a sufficient condition in terms of the separation geometry, ``-max_{nu != mu} l_Phi(xi_nu, xi_mu) >=
2 t / (beta (alpha - 1))`` with ``l_Phi = -t ||Phi(u) - Phi(v)||^2`` (the form of their proof, eq. E.5; the display
of eq. 2.10 prints the inequality reversed). On the unit-norm features the loss compares, ``t`` cancels:
``min_{nu != mu} ||u_mu - u_nu||^2 >= 2 / (beta (alpha - 1))`` (:func:`separation_condition_mask`). It is the
margin condition above for features of equal norm; Stage II scores raw features ``W xi``, so both are reported.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Bool, Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_alpha, check_beta, check_floating, check_int
from dammem.dynamics import Retrieval, retrieve
from dammem.energies import sparse_hopfield_energy, sparse_hopfield_update
from dammem.separations import separation_alpha
from dammem.similarities import kernelize
from dammem.uhop import _core
from dammem.uhop._checks import check_chunk_size, check_finite, check_kernel_weight, check_memories
from dammem.uhop.losses import DEFAULT_CHUNK_SIZE

__all__ = ["kernel_energy", "kernel_update", "uhop_retrieve", "exact_retrieval_mask", "separation_condition_mask"]

_HIGHEST = lax.Precision.HIGHEST


def kernel_energy(x: Float[Array, " D"], memories: Float[Array, "K D"], beta, alpha, similarity) -> Float[Array, ""]:
    """``E_K(x)`` (Wu et al. (2024), eq. 2.2): :func:`~dammem.energies.sparse_hopfield_energy` with the similarity
    passed positionally, the form ``energy(x, *args)`` that :func:`dammem.retrieve` calls."""
    return sparse_hopfield_energy(x, memories, beta, alpha, similarity=similarity)


def kernel_update(x: Float[Array, " D"], memories: Float[Array, "K D"], beta, alpha, similarity) -> Float[Array, " D"]:
    """``T_K(x)`` (Wu et al. (2024), eq. 2.4): :func:`~dammem.energies.sparse_hopfield_update`, positional form."""
    return sparse_hopfield_update(x, memories, beta, alpha, similarity=similarity)


@partial(jax.jit, static_argnames=("steps", "trace"))
def _retrieve_batch(queries, memories, similarity, beta, alpha, *, steps, trace):
    def one(x0):
        return retrieve(
            kernel_energy,
            x0,
            (memories, beta, alpha, similarity),
            update=kernel_update,
            max_steps=steps,
            tol=None,
            loop="scan",
            trace=trace,
        )

    return jax.vmap(one)(queries)


def _weight_or_identity(weight, memories: Array, context: str) -> Array:
    """The checked ``(F, D)`` kernel weight, or the ``(D, D)`` identity (the inner product) for None."""
    dim = memories.shape[1]
    return jnp.eye(dim, dtype=memories.dtype) if weight is None else check_kernel_weight(weight, dim, "weight", context)


def uhop_retrieve(
    queries: Float[Array, "B D"],
    memories: Float[Array, "K D"],
    weight: Float[Array, "F D"] | None,
    *,
    beta: ArrayLike = 1.0,
    separation: str = "softmax",
    alpha: ArrayLike | None = None,
    steps: int = 1,
    trace: bool = False,
) -> Retrieval:
    """Stage II of U-Hop: ``steps`` updates ``x <- T_K(x)`` from each query (Wu et al. (2024), Alg. 1, lines 5-8).

    Runs :func:`dammem.retrieve` (scan loop, no early stop) vmapped over the queries; ``W``, ``beta`` and ``alpha``
    are traced, so a new kernel or temperature never re-traces.

    Args:
      queries: (B, D) initial states.
      memories: (K, D) stored patterns, K >= 1.
      weight: (F, D) kernel weight with F >= D (e.g. ``fit_kernel(...).weight``), or None for the inner product
        (the generalized sparse Hopfield model without a kernel).
      beta: inverse temperature > 0 (Wu et al. (2024) use 1).
      separation: ``"softmax"`` (alpha = 1), ``"entmax15"``, ``"sparsemax"`` (alpha = 2) or ``"entmax"`` with
        ``alpha`` in (1, 2].
      alpha: only with ``separation="entmax"``.
      steps: number of updates T >= 0 (static; the paper's retrieval experiments use one).
      trace: also return the energies ``E_K(x_0), ..., E_K(x_T)`` (B, T + 1).

    Returns:
      A batched :class:`dammem.Retrieval`: ``x`` (B, D), ``energy`` (B,), ``steps`` (B,), ``trace`` (B, T + 1) or None.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.uhop import fit_kernel, uhop_retrieve
      >>> memories = jax.random.uniform(jax.random.key(1), (20, 16))
      >>> fit = fit_kernel(memories, steps=50, key=jax.random.key(0))
      >>> out = uhop_retrieve(memories * (jnp.arange(16) < 8), memories, fit.weight, separation="sparsemax")
      >>> out.x.shape, out.energy.shape
      ((20, 16), (20,))
    """
    context = "uhop_retrieve"
    memories = check_memories(memories, context, min_memories=1)
    queries = check_floating(queries, "queries", context)
    dim = memories.shape[1]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"{context}: queries must have shape (B, D={dim}), got shape {tuple(queries.shape)}")
    weight = _weight_or_identity(weight, memories, context)
    try:
        tsallis_alpha = separation_alpha(separation, alpha)
    except ValueError as err:
        raise ValueError(f"{context}: {err}") from None
    beta = check_beta(beta, context)
    steps = check_int(steps, "steps", context, minimum=0)
    if not isinstance(trace, bool):
        raise TypeError(f"{context}: trace must be a bool, got {trace!r}")
    similarity = kernelize("dot", weight)
    return _retrieve_batch(queries, memories, similarity, beta, tsallis_alpha, steps=steps, trace=trace)


def _check_margin_args(memories, weight, beta, alpha, chunk_size, context):
    memories = check_finite(check_memories(memories, context), "memories", context)
    weight = check_finite(_weight_or_identity(weight, memories, context), "weight", context)
    beta = check_beta(beta, context)
    alpha = check_alpha(alpha, context)  # (1, 2]: softmax (alpha = 1) never separates exactly
    return memories, weight, beta, alpha, check_chunk_size(chunk_size, context)


def exact_retrieval_mask(
    memories: Float[Array, "K D"],
    weight: Float[Array, "F D"] | None = None,
    *,
    beta: ArrayLike = 1.0,
    alpha: ArrayLike = 2.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Bool[Array, " K"]:
    """Which memories are fixed points retrieved exactly by sparse retrieval (Wu et al. (2024), eq. 2.9).

    ``True`` where ``beta (K(xi_mu, xi_mu) - max_{nu != mu} K(xi_nu, xi_mu)) >= 1 / (alpha - 1)`` (module
    docstring), i.e. ``alpha``-entmax of the scores of ``xi_mu`` is one-hot on ``mu`` and ``T_K(xi_mu) = xi_mu``.

    Args:
      memories: (K, D) stored patterns, K >= 2.
      weight: (F, D) kernel weight, or None for the inner product.
      beta: inverse temperature > 0.
      alpha: the entmax alpha in (1, 2] (2: sparsemax).
      chunk_size: rows of the (K, K) score matrix computed at once (static).

    Returns:
      (K,) booleans.
    """
    context = "exact_retrieval_mask"
    memories, weight, beta, alpha, chunk_size = _check_margin_args(memories, weight, beta, alpha, chunk_size, context)
    feats = jnp.matmul(memories, weight.T, precision=_HIGHEST)
    self_scores = jnp.sum(jnp.square(feats), axis=-1)
    margin = self_scores - _core.max_off_diagonal(feats, chunk_size)
    return beta * (alpha - 1.0) * margin >= 1.0


def separation_condition_mask(
    memories: Float[Array, "K D"],
    weight: Float[Array, "F D"] | None = None,
    *,
    beta: ArrayLike = 1.0,
    alpha: ArrayLike = 2.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Bool[Array, " K"]:
    """Which memories meet the separation condition of Wu et al. (2024), eq. 2.10 (in the form of their eq. E.5).

    ``True`` where ``min_{nu != mu} ||u_mu - u_nu||^2 >= 2 / (beta (alpha - 1))`` for the unit-norm features
    ``u = W xi / ||W xi||`` that the separation loss compares (module docstring; the temperature cancels).

    Args:
      memories, weight, beta, alpha: as in :func:`exact_retrieval_mask` (``weight`` None: the patterns themselves).
      chunk_size: rows of the (K, K) cosine matrix computed at once (static).

    Returns:
      (K,) booleans.
    """
    context = "separation_condition_mask"
    memories, weight, beta, alpha, chunk_size = _check_margin_args(memories, weight, beta, alpha, chunk_size, context)
    feats = _core.features(weight, memories)
    sq_norms = jnp.sum(jnp.square(feats), axis=-1)  # 1, or 0 for a zero feature vector
    # min_nu ||u_mu - u_nu||^2 = |u_mu|^2 - 2 max_nu (<u_mu, u_nu> - |u_nu|^2 / 2)
    nearest_sq_distance = sq_norms - 2.0 * _core.max_off_diagonal(feats, chunk_size, -0.5 * sq_norms)
    return beta * (alpha - 1.0) * nearest_sq_distance >= 2.0
