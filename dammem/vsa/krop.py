"""KROP codebooks: Kronecker products of 2x2 rotation-reflections with an O(N log N) butterfly clean-up.

Shape legend: ``N = 2^L`` codebook size (= vector dimension), ``L`` angles, ``...`` any leading batch axes.

Liu et al. (2025, slide "Codebook based on Hadamard matrices ... and Kronecker Rotation Products") build the value
codebook by the recursion::

    H^(0) = [1],   H^(k+1) = [[H^(k) cos t_k,  H^(k) sin t_k],
                              [H^(k) sin t_k, -H^(k) cos t_k]],

    =>  H^(L) = R(t_{L-1}) (x) R(t_{L-2}) (x) ... (x) R(t_0),    R(t) = [[cos t, sin t], [sin t, -cos t]],

with ``t_k ~ U(0, 2 pi)``. ``H`` is orthogonal and symmetric (``R(t)`` is a reflection, so ``H^2 = I``) and
``t = pi / 4`` everywhere gives the normalised Sylvester-Hadamard matrix. The codebook is stored as ``L = log2 N``
angles; row ``j`` is built in O(N) from the bits of ``j`` (slide "Linear Time Vector Reconstruction"); clean-up
``argmax_j <H_j, v> = argmax H v`` (slide "Issue During Reading") is one butterfly (slide "O(N log N) Clean-up
Process"), the shared grouped butterfly of :mod:`dammem._butterfly`.

Signed codebooks. KROP rows have peaky Fourier spectra, which costs capacity in an HRR memory (the read-out of a
value is the value filtered by ``|F a|^2`` of its address). The optional fixed ``+-1`` diagonal ``D`` multiplies
the *columns*: the codebook is ``C = H D`` (rows ``H_j * d``), so every row has its entries sign-scrambled and a
flat expected spectrum, while scores ``C v = H (d * v)`` still cost one butterfly. (``D H`` would only flip whole
rows and change nothing.) Soft clean-up is ``C^T softmax(beta C v) = d * H softmax(beta H (d * v))``: two
butterflies, differentiable in ``v``, ``theta`` and ``beta``. The first leaves the scores as ``(N, B)`` columns and
the second maps them back to rows, so neither transposes; hard clean-up reduces the columns with the shared
two-level argmax.

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Float, Int

from dammem._butterfly import butterfly_kernel, check_group, group_sizes, kron_blocks, log2_size
from dammem._types import Array, PRNGKey
from dammem._validate import check_floating, check_int
from dammem.vsa._checks import check_batch_beta, check_index, check_pow2_vectors, check_signs, check_theta
from dammem.vsa._kernels import (
    krop_cleanup_kernel,
    krop_rows_kernel,
    krop_scores_kernel,
    krop_soft_cleanup_kernel,
    rotation_factors,
)

__all__ = [
    "krop_factors",
    "krop_apply",
    "krop_scores",
    "krop_cleanup",
    "krop_soft_cleanup",
    "krop_row",
    "krop_matrix",
    "uniform_angles",
    "even_angles",
    "hadamard_angles",
    "degenerate_factors",
    "krop_signs",
]

_DEGENERATE_TOL = 1e-6


def _prepare(theta: Any, x: Any, signs: Any, group: Any, context: str):
    x = check_pow2_vectors(x, context)
    n = x.shape[-1]
    theta = check_theta(theta, context, n)
    signs = check_signs(signs, n, context)
    sizes = group_sizes(theta.shape[0], check_group(group, context))
    return theta, x, signs, sizes


def krop_factors(theta: Float[ArrayLike, " L"]) -> Float[Array, "L 2 2"]:
    """The butterfly factors of ``H^(L)``: ``[R(theta_{L-1}), ..., R(theta_0)]``, ``R(t) = [[c, s], [s, -c]]``.

    ``H^(L) = kron_{k=1..L} R(theta_{L-k})`` (Liu et al. (2025)), so the first (most significant) factor holds the
    last angle.

    Args:
      theta: ``(L,)`` angles.

    Returns:
      ``(L, 2, 2)`` factors for :func:`dammem.vsa.butterfly_apply`.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import krop_factors
      >>> krop_factors(jnp.array([0.0, jnp.pi / 2])).round(4) + 0.0  # [R(pi / 2), R(0)]
      Array([[[ 0.,  1.],
              [ 1.,  0.]],
      <BLANKLINE>
             [[ 1.,  0.],
              [ 0., -1.]]], dtype=float32)
    """
    return rotation_factors(check_theta(theta, "krop_factors"))


def krop_apply(
    theta: Float[ArrayLike, " L"], x: Float[ArrayLike, "*batch N"], *, group: int | None = None
) -> Float[Array, "*batch N"]:
    """``H x`` along the last axis in O(N log N), ``H = H^(L)`` of the recursion of Liu et al. (2025).

    Args:
      theta: ``(L,)`` angles (traced).
      x: ``(..., N)``, ``N = 2^L``.
      group: static butterfly block width (see :func:`dammem.vsa.butterfly_apply`).

    Returns:
      ``(..., N)``; equals ``x @ krop_matrix(theta).T`` (= ``x @ H``, ``H`` symmetric).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import krop_apply
      >>> krop_apply(jnp.full(2, jnp.pi / 4), jnp.array([1.0, 0.0, 0.0, 0.0])).round(4)  # first Hadamard row
      Array([0.5, 0.5, 0.5, 0.5], dtype=float32)
    """
    theta, x, _, sizes = _prepare(theta, x, None, group, "krop_apply")
    return butterfly_kernel(rotation_factors(theta), x, sizes)


def krop_scores(
    theta: Float[ArrayLike, " L"],
    x: Float[ArrayLike, "*batch N"],
    *,
    signs: Float[ArrayLike, " N"] | None = None,
    group: int | None = None,
) -> Float[Array, "*batch N"]:
    """Clean-up scores ``<C_j, x>`` for all rows of the codebook ``C = H D``: ``C x = H (d * x)``.

    Args:
      theta: ``(L,)`` angles.
      x: ``(..., N)`` noisy vectors (the read-outs ``v'``).
      signs: optional ``(N,)`` fixed +-1 diagonal ``d`` (:func:`krop_signs`); ``None`` means ``C = H``.
      group: static butterfly block width.

    Returns:
      ``(..., N)`` scores.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import krop_scores
      >>> krop_scores(jnp.full(2, jnp.pi / 4), jnp.array([0.5, -0.5, 0.5, -0.5])).round(4)  # the second row
      Array([0., 1., 0., 0.], dtype=float32)
    """
    theta, x, signs, sizes = _prepare(theta, x, signs, group, "krop_scores")
    return krop_scores_kernel(theta, x, signs, sizes)


def krop_cleanup(
    theta: Float[ArrayLike, " L"],
    x: Float[ArrayLike, "*batch N"],
    *,
    signs: Float[ArrayLike, " N"] | None = None,
    group: int | None = None,
) -> Int[Array, "*batch"]:
    """Hard clean-up ``argmax_j <C_j, x>`` in O(N log N): ``argmax H (d * x)`` (Liu et al. (2025), slide "Issue
    During Reading": ``v_k^cleaned = argmax H v'_k``).

    One butterfly whose last pass leaves the scores as ``(N, B)`` columns, then the two-level argmax down the
    columns; ties go to the smallest index (as ``jnp.argmax``).

    Args:
      theta: ``(L,)`` angles (traced).
      x: ``(..., N)`` noisy vectors.
      signs: optional ``(N,)`` +-1 column signs of the codebook (``C = H D``).
      group: static butterfly block width.

    Returns:
      ``(...,)`` int32 row indices in ``[0, N)``.

    Example:
      >>> import jax
      >>> from dammem.vsa import krop_cleanup, krop_row, uniform_angles
      >>> theta = uniform_angles(jax.random.key(0), 10)
      >>> krop_cleanup(theta, krop_row(theta, jax.numpy.array([3, 700])) + 0.01)
      Array([  3, 700], dtype=int32)
    """
    theta, x, signs, sizes = _prepare(theta, x, signs, group, "krop_cleanup")
    return krop_cleanup_kernel(theta, x, signs, sizes)


def krop_soft_cleanup(
    theta: Float[ArrayLike, " L"],
    x: Float[ArrayLike, "*batch N"],
    beta: float | Float[ArrayLike, ...] = 1.0,
    *,
    signs: Float[ArrayLike, " N"] | None = None,
    group: int | None = None,
) -> Float[Array, "*batch N"]:
    """Soft clean-up ``C^T softmax(beta C x)`` with ``C = H D``: ``d * H softmax(beta H (d * x))``.

    ``H`` is symmetric (Liu et al. (2025)), so the read-out through ``C^T`` is a second butterfly: O(N log N) in all
    and differentiable in ``x``, ``theta`` and ``beta`` (the paper lists the non-differentiability of the hard
    clean-up as a limitation). As ``beta -> inf`` it tends to the row picked by :func:`krop_cleanup`.

    Args:
      theta: ``(L,)`` angles (traced).
      x: ``(..., N)`` noisy vectors.
      beta: inverse temperature > 0, a scalar or broadcastable to ``x.shape[:-1]`` (traced; multiplies the scores).
      signs: optional ``(N,)`` +-1 column signs of the codebook.
      group: static butterfly block width.

    Returns:
      ``(..., N)`` convex combinations of codebook rows.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import krop_soft_cleanup
      >>> krop_soft_cleanup(jnp.full(2, jnp.pi / 4), jnp.array([0.5, -0.5, 0.5, -0.5]), 50.0).round(3)
      Array([ 0.5, -0.5,  0.5, -0.5], dtype=float32)
    """
    context = "krop_soft_cleanup"
    theta, x, signs, sizes = _prepare(theta, x, signs, group, context)
    beta = check_batch_beta(beta, x.shape[:-1], context)
    return krop_soft_cleanup_kernel(theta, x, beta, signs, sizes)


def krop_row(
    theta: Float[ArrayLike, " L"], idx: int | Int[ArrayLike, "*idx"], *, signs: Float[ArrayLike, " N"] | None = None
) -> Float[Array, "*idx N"]:
    """Codebook rows ``C_j = H_j * d`` in O(N) each, from the bits of ``j`` (Liu et al. (2025), slide "Linear Time
    Vector Reconstruction").

    ``H_j = R(theta_{L-1})[j_{L-1}, :] (x) ... (x) R(theta_0)[j_0, :]`` where ``j_{L-1}`` is the most significant bit;
    the row is grown by L outer products of doubling length (N - 2 + N multiplies in all).

    Args:
      theta: ``(L,)`` angles.
      idx: integer indices of any shape ``(...)``, in ``[0, N)`` (checked when concrete; traced indices are taken
        modulo ``N``). Vmappable.
      signs: optional ``(N,)`` +-1 column signs.

    Returns:
      ``(..., N)`` rows.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import hadamard_angles, krop_row
      >>> krop_row(hadamard_angles(2), 3).round(4)  # the last Hadamard row
      Array([ 0.5, -0.5, -0.5,  0.5], dtype=float32)
    """
    context = "krop_row"
    theta = check_theta(theta, context)
    n = 1 << theta.shape[0]
    idx = check_index(idx, n, context)
    signs = check_signs(signs, n, context)
    return krop_rows_kernel(theta, idx, signs)


def krop_matrix(theta: Float[ArrayLike, " L"], *, signs: Float[ArrayLike, " N"] | None = None) -> Float[Array, "N N"]:
    """Dense codebook ``C = H D`` (``(N, N)``), ``H = kron_{k=1..L} R(theta_{L-k})``. For tests and small N.

    Args:
      theta: ``(L,)`` angles.
      signs: optional ``(N,)`` +-1 column signs.

    Returns:
      ``(N, N)`` matrix; without signs it is orthogonal and symmetric.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import krop_matrix
      >>> krop_matrix(jnp.array([0.0]))  # R(0)
      Array([[ 1.,  0.],
             [ 0., -1.]], dtype=float32)
    """
    theta = check_theta(theta, "krop_matrix")
    signs = check_signs(signs, 1 << theta.shape[0], "krop_matrix")
    h = kron_blocks(rotation_factors(theta), (theta.shape[0],))[0]
    return h if signs is None else h * signs.astype(h.dtype)[None, :]


# ----------------------------------------------------------------------------------------------------------------
# Angles and signs
# ----------------------------------------------------------------------------------------------------------------


def uniform_angles(key: PRNGKey, k: int) -> Float[Array, " L"]:
    """``L`` angles ``theta_k ~ U(0, 2 pi)`` (the choice of Liu et al. (2025)). Same key -> same angles.

    Args:
      key: a ``jax.random`` key.
      k: number of angles ``L = log2 N`` (static, >= 1).

    Returns:
      ``(L,)`` float32.

    Example:
      >>> import jax
      >>> from dammem.vsa import uniform_angles
      >>> uniform_angles(jax.random.key(0), 10).shape
      (10,)
    """
    k = check_int(k, "k", "uniform_angles", minimum=1)
    return jax.random.uniform(key, (k,), minval=0.0, maxval=2.0 * math.pi)


def degenerate_factors(theta: Float[ArrayLike, " L"], tol: float = _DEGENERATE_TOL) -> np.ndarray:
    """Indices ``k`` whose factor ``R(theta_k)`` is degenerate: ``|cos| < tol`` or ``|sin| < tol``.

    Such a factor is a signed permutation (diagonal or anti-diagonal), so half the entries of ``H`` become zero and
    the rows stop looking like dense random vectors. ``theta`` must be concrete.

    Example:
      >>> import numpy as np
      >>> from dammem.vsa import degenerate_factors
      >>> degenerate_factors(np.array([0.3, np.pi / 2, 1.0, np.pi]))
      array([1, 3])
    """
    t = np.asarray(check_floating(theta, "theta", "degenerate_factors"), dtype=np.float64)
    return np.flatnonzero((np.abs(np.cos(t)) < tol) | (np.abs(np.sin(t)) < tol))


def even_angles(k: int, *, warn: bool = True) -> Float[Array, " L"]:
    """Evenly spaced angles ``theta_k = 2 pi (k + 1) / (L + 1)``, ``k = 0..L-1`` (the L non-zero points of a grid of
    ``L + 1`` on the circle).

    Liu et al. (2025) sample the angles at random; this deterministic alternative follows the evenly spaced grid of
    their public code as we read it (the slides do not give the formula). When ``L + 1`` is even, ``theta = pi``
    appears (and ``pi / 2``, ``3 pi / 2`` when ``4 | L + 1``): those factors are signed permutations and most
    entries of ``H`` vanish, so a ``UserWarning`` is issued (``warn=False`` silences it).

    Args:
      k: number of angles ``L`` (>= 1).
      warn: warn about degenerate factors.

    Returns:
      ``(L,)`` float32.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import even_angles
      >>> [round(float(t), 4) for t in even_angles(4) / jnp.pi]  # 2 (k + 1) / 5
      [0.4, 0.8, 1.2, 1.6]
    """
    k = check_int(k, "k", "even_angles", minimum=1)
    theta = 2.0 * np.pi * np.arange(1, k + 1, dtype=np.float64) / (k + 1)
    bad = degenerate_factors(theta)
    if warn and bad.size:
        warnings.warn(
            f"even_angles: with K + 1 = {k + 1} the angles {np.round(theta[bad], 4).tolist()} (k = {bad.tolist()}) "
            "are multiples of pi/2, so their factors are signed permutations and most entries of H are zero; "
            "use uniform_angles or a K with K + 1 odd",
            UserWarning,
            stacklevel=2,
        )
    return jnp.asarray(theta, dtype=jnp.float32)


def hadamard_angles(k: int) -> Float[Array, " L"]:
    """``theta = pi / 4`` everywhere: ``H`` is the normalised Sylvester-Hadamard matrix (Liu et al. (2025)).

    Example:
      >>> from dammem.vsa import hadamard_angles, krop_matrix
      >>> (krop_matrix(hadamard_angles(1)) * 2**0.5).round(4)
      Array([[ 1.,  1.],
             [ 1., -1.]], dtype=float32)
    """
    k = check_int(k, "k", "hadamard_angles", minimum=1)
    return jnp.full((k,), math.pi / 4, dtype=jnp.float32)


def krop_signs(key: PRNGKey, n: int) -> Float[Array, " N"]:
    """A fixed random ``+-1`` diagonal ``d`` (``(N,)`` float32) for the signed codebook ``C = H D``.

    Example:
      >>> import jax
      >>> from dammem.vsa import krop_signs
      >>> sorted(set(krop_signs(jax.random.key(0), 64).tolist()))
      [-1.0, 1.0]
    """
    log2_size(n, "n", "krop_signs")
    return jax.random.rademacher(key, (n,), dtype=jnp.float32)
