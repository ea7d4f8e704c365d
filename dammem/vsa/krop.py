"""KROP codebooks: Kronecker products of 2x2 rotation-reflections with an O(N log N) butterfly clean-up.

Shape legend: ``N = 2^K`` codebook size (= vector dimension), ``K`` angles, ``...`` any leading batch axes.

KROP (seed 000, "Codebook based on Hadamard matrices ... and Kronecker Rotation Products") builds the value codebook
by the recursion::

    H^(0) = [1],   H^(k+1) = [[H^(k) cos t_k,  H^(k) sin t_k],
                              [H^(k) sin t_k, -H^(k) cos t_k]],

    =>  H^(K) = R(t_{K-1}) (x) R(t_{K-2}) (x) ... (x) R(t_0),    R(t) = [[cos t, sin t], [sin t, -cos t]],

with ``t_k ~ U(0, 2 pi)`` (seed 000). ``H`` is orthogonal and symmetric (``R(t)`` is a reflection, so ``H^2 = I``) and
``t = pi / 4`` everywhere gives the normalised Sylvester Hadamard matrix. The codebook is stored as ``K = log2 N``
angles; row ``j`` is built in O(N) from the bits of ``j``; clean-up ``argmax_j <H_j, v> = argmax H v`` is a butterfly.

Signed codebooks. KROP rows have peaky Fourier spectra, which costs capacity in an HRR memory (the read-out of a
value is the value filtered by ``|F a|^2`` of its key). The optional fixed ``+-1`` diagonal ``D`` multiplies the
*columns*: the codebook is ``C = H D`` (rows ``H_j * d``), so every row has its entries sign-scrambled and a flat
expected spectrum, while scores ``C v = H (d * v)`` still cost one butterfly. (``D H`` would only flip whole rows and
change nothing.) Soft clean-up is ``C^T softmax(beta C v) = d * H softmax(beta H (d * v))``: two butterflies,
differentiable in ``v``, ``theta`` and ``beta``.

The butterfly (:func:`butterfly_apply`) is the shared fast transform for any Kronecker product of ``K`` 2x2 factors
(the DrDAM structured random features use it too). It groups ``g`` consecutive factors into one ``2^g x 2^g``
Kronecker block and applies each block as one small dense product, so the data makes ``ceil(K / g)`` passes through
memory instead of ``K``. The passes are arranged so that no transpose is ever materialised: each pass contracts the
last axis of the row-major data and emits its output axis first (``(B, g_1..g_m) -> (N, B)`` after all passes), and
the second butterfly of a soft clean-up runs the mirrored chain (``(N, B) -> (B, N)``). Clean-up reduces the
``(N, B)`` scores with a two-level argmax (block maxima, then one block), which XLA:CPU runs several times faster
than a flat ``argmax``. ``g`` is static and chosen per backend (:func:`default_group`).
"""

from __future__ import annotations

import math
import numbers
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Float, Int

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_int, check_positive, is_concrete

__all__ = [
    "butterfly_apply",
    "butterfly_matrix",
    "default_group",
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
    "log2_size",
]

# Largest Kronecker block (2^g x 2^g) per backend. CPU: measured on a 2-core Sapphire Rapids (XLA:CPU, float32,
# batch 64, N = 2^10..2^14): g = 4 is fastest or within noise of the best (g = 3..6 span about 1.3x; g = 1, the
# stage-by-stage butterfly, is 3-4x slower). GPU/TPU: wider blocks keep the matrix units busy while the data still
# makes only 2-3 passes; g = 6 is the default there (a design choice, not yet measured on an accelerator).
_DEFAULT_GROUP = {"cpu": 4}
_DEFAULT_GROUP_ACCEL = 6
_MAX_GROUP = 10  # 1024 x 1024 blocks: beyond that a block costs more than the dense product it replaces
_ARGMAX_BLOCK = 128  # two-level argmax: max over blocks of this many scores, then argmax inside the winning block
_DEGENERATE_TOL = 1e-6
_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: the transform must stay exact in float32


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


def log2_size(n, name: str = "N", where: str = "krop") -> int:
    """Return ``K = log2(n)`` for a power of two ``n >= 2``; otherwise raise naming ``name`` and ``n``."""
    if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)):
        raise TypeError(f"{where}: {name} must be an int (a power of two >= 2), got {n!r}")
    n = int(n)
    if n < 2 or n & (n - 1):
        raise ValueError(f"{where}: {name} must be a power of two >= 2 (2, 4, 8, ...), got {n}")
    return n.bit_length() - 1


def _check_theta(theta: ArrayLike, where: str, n: int | None = None) -> Array:
    """theta must be a real vector (K,), K >= 1; when ``n`` is given, K must equal log2(n)."""
    theta = check_floating(theta, "theta", where)
    if theta.ndim != 1 or theta.shape[0] < 1:
        raise ValueError(f"{where}: theta must be a vector of K >= 1 angles (shape (K,)), got shape {theta.shape}")
    if n is not None:
        k = log2_size(n, "x.shape[-1]", where)
        if theta.shape[0] != k:
            raise ValueError(
                f"{where}: theta has {theta.shape[0]} angles but the last axis of x has N = {n} = 2^{k}; "
                f"theta must have length log2(N) = {k}"
            )
    return theta


def _check_x(x: ArrayLike, where: str, name: str = "x") -> Array:
    x = check_floating(x, name, where)
    if x.ndim < 1:
        raise ValueError(f"{where}: {name} must have shape (..., N) with N a power of two, got a scalar")
    log2_size(x.shape[-1], f"{name}.shape[-1]", where)
    return x


def _check_signs(signs: ArrayLike | None, n: int, where: str) -> Array | None:
    if signs is None:
        return None
    signs = check_floating(signs, "signs", where)
    if signs.shape != (n,):
        raise ValueError(f"{where}: signs must have shape (N,) = ({n},) to match the codebook, got {signs.shape}")
    on_host = is_concrete(signs) and all(d.platform == "cpu" for d in signs.devices())  # no device sync per call
    if on_host and not np.all(np.abs(np.asarray(signs)) == 1):
        raise ValueError(f"{where}: signs must contain only +1 and -1 (see krop_signs), got other values")
    return signs


def _check_group(group, where: str) -> int:
    if group is None:
        return default_group()
    group = check_int(group, "group", where, minimum=1)
    if group > _MAX_GROUP:
        raise ValueError(f"{where}: group must be in [1, {_MAX_GROUP}] (block size 2^group), got {group}")
    return group


def default_group(backend: str | None = None) -> int:
    """Static number of 2x2 factors fused into one Kronecker block of the butterfly, per backend.

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None`` uses ``jax.default_backend()``.

    Returns:
      ``4`` on CPU (measured fastest here), ``6`` on accelerators.
    """
    backend = jax.default_backend() if backend is None else backend
    return _DEFAULT_GROUP.get(backend, _DEFAULT_GROUP_ACCEL)


def _group_sizes(k: int, group: int) -> tuple[int, ...]:
    """Split K factors into ceil(K / group) consecutive groups of near-equal size (larger ones first)."""
    passes = -(-k // group)
    base, extra = divmod(k, passes)
    return tuple([base + 1] * extra + [base] * (passes - extra))


# ----------------------------------------------------------------------------------------------------------------
# The shared butterfly
# ----------------------------------------------------------------------------------------------------------------


def _kron_blocks(factors: Array, sizes: tuple[int, ...]) -> list[Array]:
    """Kronecker blocks of consecutive factors: block c = kron(factors[s_c], ..., factors[e_c - 1])."""
    blocks, start = [], 0
    for size in sizes:
        block = factors[start]
        for a in range(start + 1, start + size):
            f = factors[a]
            block = (block[:, None, :, None] * f[None, :, None, :]).reshape(block.shape[0] * 2, block.shape[1] * 2)
        blocks.append(block)
        start += size
    return blocks


def _forward_chain(blocks: list[Array], x2: Array) -> Array:
    """(B, N) rows -> (N, B) transformed columns; each pass contracts the last axis and emits its output first."""
    y = x2
    for block in reversed(blocks):
        s = block.shape[0]
        y = lax.dot_general(block.astype(y.dtype), y.reshape(-1, s), (((1,), (1,)), ((), ())), precision=_HIGHEST)
    return y.reshape(x2.shape[1], x2.shape[0])


def _backward_chain(blocks: list[Array], y_t: Array) -> Array:
    """(N, B) columns -> (B, N) transformed rows; each pass contracts the first axis and emits its output last."""
    y = y_t
    for block in blocks:
        s = block.shape[0]
        y = lax.dot_general(y.reshape(s, -1), block.astype(y.dtype), (((0,), (1,)), ((), ())), precision=_HIGHEST)
    return y.reshape(y_t.shape[1], y_t.shape[0])


def _argmax_cols(s_t: Array) -> Array:
    """First index of the maximum down each column of (N, B) scores, by block maxima then one block."""
    n, b = s_t.shape
    c = min(_ARGMAX_BLOCK, n)
    blocks = s_t.reshape(n // c, c, b)
    best_block = jnp.argmax(jnp.max(blocks, axis=1), axis=0)  # (B,)
    inside = jnp.take_along_axis(blocks, best_block[None, None, :], axis=0)[0]  # (C, B)
    return (best_block * c + jnp.argmax(inside, axis=0)).astype(jnp.int32)


def butterfly_apply(
    factors: Float[Array, "K 2 2"], x: Float[Array, "*batch N"], *, group: int | None = None
) -> Float[Array, "*batch N"]:
    """Apply a Kronecker product of 2x2 factors along the last axis: ``y = (F_0 (x) F_1 (x) ... (x) F_{K-1}) x``.

    ``F_0`` acts on the most significant bit of the index (row-major order, as ``np.kron``). Groups of ``group``
    consecutive factors are fused into one ``2^g x 2^g`` Kronecker block, applied as a small dense product, so the
    data makes ``ceil(K / g)`` passes. The KROP codebook (seed 000) is the case ``F_a = R(theta_{K-1-a})``.

    Args:
      factors: ``(K, 2, 2)`` real 2x2 matrices (traced: new values never re-trace).
      x: ``(..., N)`` with ``N = 2^K``.
      group: static block width ``g`` in ``[1, 10]``; ``None`` uses :func:`default_group`.

    Returns:
      ``(..., N)`` transformed rows, dtype of ``x``.

    Example:
      >>> butterfly_apply(jnp.array([[[1.0, 1.0], [1.0, -1.0]]]) / jnp.sqrt(2.0), jnp.array([1.0, 0.0]))
      Array([0.70710677, 0.70710677], dtype=float32)
    """
    where = "butterfly_apply"
    factors = check_floating(factors, "factors", where)
    x = _check_x(x, where)
    k = log2_size(x.shape[-1], "x.shape[-1]", where)
    if factors.shape != (k, 2, 2):
        raise ValueError(
            f"{where}: factors must have shape (K, 2, 2) = ({k}, 2, 2) for N = {x.shape[-1]}, got {factors.shape}"
        )
    return _butterfly_kernel(factors, x, _group_sizes(k, _check_group(group, where)))


@partial(jax.jit, static_argnums=2)
def _butterfly_kernel(factors: Array, x: Array, sizes: tuple[int, ...]) -> Array:
    x2 = x.reshape(-1, x.shape[-1])
    y_t = _forward_chain(_kron_blocks(factors, sizes), x2)
    return y_t.T.reshape(x.shape)


def butterfly_matrix(factors: ArrayLike) -> Array:
    """Dense ``F_0 (x) F_1 (x) ... (x) F_{K-1}`` (``(N, N)``; for tests and small N)."""
    factors = check_floating(factors, "factors", "butterfly_matrix")
    if factors.ndim != 3 or factors.shape[1:] != (2, 2) or factors.shape[0] < 1:
        raise ValueError(f"butterfly_matrix: factors must have shape (K, 2, 2) with K >= 1, got {factors.shape}")
    return _kron_blocks(factors, (factors.shape[0],))[0]


# ----------------------------------------------------------------------------------------------------------------
# KROP
# ----------------------------------------------------------------------------------------------------------------


def krop_factors(theta: Float[Array, " K"]) -> Float[Array, "K 2 2"]:
    """The butterfly factors of ``H^(K)``: ``[R(theta_{K-1}), ..., R(theta_0)]``, ``R(t) = [[c, s], [s, -c]]``.

    Seed 000: ``H^(K) = kron_{k=1..K} R(theta_{K-k})``, so the first (most significant) factor holds the last angle.

    Args:
      theta: ``(K,)`` angles.

    Returns:
      ``(K, 2, 2)`` factors for :func:`butterfly_apply`.
    """
    theta = _check_theta(theta, "krop_factors")
    return _factors(theta)


def _factors(theta: Array) -> Array:
    t = theta[::-1]
    c, s = jnp.cos(t), jnp.sin(t)
    return jnp.stack([jnp.stack([c, s], -1), jnp.stack([s, -c], -1)], -2)


def _prepare(theta, x, signs, group, where):
    x = _check_x(x, where)
    n = x.shape[-1]
    theta = _check_theta(theta, where, n)
    signs = _check_signs(signs, n, where)
    sizes = _group_sizes(theta.shape[0], _check_group(group, where))
    return theta, x, signs, sizes


def krop_apply(
    theta: Float[Array, " K"], x: Float[Array, "*batch N"], *, group: int | None = None
) -> Float[Array, "*batch N"]:
    """``H x`` along the last axis in O(N log N), ``H = H^(K)`` of seed 000's recursion.

    Args:
      theta: ``(K,)`` angles (traced).
      x: ``(..., N)``, ``N = 2^K``.
      group: static butterfly block width (see :func:`butterfly_apply`).

    Returns:
      ``(..., N)``; equals ``x @ krop_matrix(theta).T`` (= ``x @ H``, ``H`` symmetric).

    Example:
      >>> krop_apply(jnp.full(2, jnp.pi / 4), jnp.array([1.0, 0.0, 0.0, 0.0]))  # first Hadamard row
      Array([0.5, 0.5, 0.5, 0.5], dtype=float32)
    """
    theta, x, _, sizes = _prepare(theta, x, None, group, "krop_apply")
    return _butterfly_kernel(_factors(theta), x, sizes)


def krop_scores(
    theta: Float[Array, " K"],
    x: Float[Array, "*batch N"],
    *,
    signs: Float[Array, " N"] | None = None,
    group: int | None = None,
) -> Float[Array, "*batch N"]:
    """Clean-up scores ``<C_j, x>`` for all rows of the codebook ``C = H D``: ``C x = H (d * x)``.

    Args:
      theta: ``(K,)`` angles.
      x: ``(..., N)`` noisy vectors (``v'`` of seed 000).
      signs: optional ``(N,)`` fixed +-1 diagonal ``d`` (:func:`krop_signs`); ``None`` means ``C = H``.
      group: static butterfly block width.

    Returns:
      ``(..., N)`` scores.
    """
    theta, x, signs, sizes = _prepare(theta, x, signs, group, "krop_scores")
    return _scores_kernel(theta, x, signs, sizes)


def _scores_t(theta, x, signs, sizes):
    """(blocks, (N, B) scores ``H (d * x)``) for ``x`` flattened to (B, N): what every clean-up starts with."""
    x2 = x.reshape(-1, x.shape[-1])
    if signs is not None:
        x2 = x2 * signs.astype(x2.dtype)
    blocks = _kron_blocks(_factors(theta), sizes)
    return blocks, _forward_chain(blocks, x2)


@partial(jax.jit, static_argnums=3)
def _scores_kernel(theta, x, signs, sizes):
    return _scores_t(theta, x, signs, sizes)[1].T.reshape(x.shape)


def krop_cleanup(
    theta: Float[Array, " K"],
    x: Float[Array, "*batch N"],
    *,
    signs: Float[Array, " N"] | None = None,
    group: int | None = None,
) -> Int[Array, "*batch"]:
    """Hard clean-up ``argmax_j <C_j, x>`` in O(N log N): ``argmax H (d * x)`` (seed 000, "argmax H v'_k").

    One butterfly whose last pass leaves the scores as ``(N, B)`` columns, then a two-level argmax; ties go to the
    smallest index (as ``jnp.argmax``).

    Args:
      theta: ``(K,)`` angles (traced).
      x: ``(..., N)`` noisy vectors.
      signs: optional ``(N,)`` +-1 column signs of the codebook (``C = H D``).
      group: static butterfly block width.

    Returns:
      ``(...,)`` int32 row indices in ``[0, N)``.

    Example:
      >>> theta = uniform_angles(jax.random.key(0), 10)
      >>> krop_cleanup(theta, krop_row(theta, jnp.array([3, 700])) + 0.01)  # [3, 700]
    """
    theta, x, signs, sizes = _prepare(theta, x, signs, group, "krop_cleanup")
    return _cleanup_kernel(theta, x, signs, sizes)


@partial(jax.jit, static_argnums=3)
def _cleanup_kernel(theta, x, signs, sizes):
    return _argmax_cols(_scores_t(theta, x, signs, sizes)[1]).reshape(x.shape[:-1])


def krop_soft_cleanup(
    theta: Float[Array, " K"],
    x: Float[Array, "*batch N"],
    beta: float | Float[Array, ...] = 1.0,
    *,
    signs: Float[Array, " N"] | None = None,
    group: int | None = None,
) -> Float[Array, "*batch N"]:
    """Soft clean-up ``C^T softmax(beta C x)`` with ``C = H D``: ``d * H softmax(beta H (d * x))``.

    ``H`` is symmetric (seed 000), so the read-out through ``C^T`` is a second butterfly: O(N log N) in all and
    differentiable in ``x``, ``theta`` and ``beta`` (seed 000 lists non-differentiability as a limitation of the hard
    clean-up). As ``beta -> inf`` it tends to the row picked by :func:`krop_cleanup`.

    Args:
      theta: ``(K,)`` angles (traced).
      x: ``(..., N)`` noisy vectors.
      beta: inverse temperature > 0, a scalar or broadcastable to ``x.shape[:-1]`` (traced; multiplies the scores).
      signs: optional ``(N,)`` +-1 column signs of the codebook.
      group: static butterfly block width.

    Returns:
      ``(..., N)`` convex combinations of codebook rows.
    """
    where = "krop_soft_cleanup"
    theta, x, signs, sizes = _prepare(theta, x, signs, group, where)
    beta = check_floating(beta, "beta", where)
    check_positive(beta, "beta", where)
    lead = x.shape[:-1]
    try:
        beta = jnp.broadcast_to(beta, lead)
    except ValueError as err:
        raise ValueError(
            f"{where}: beta must be a scalar or broadcastable to the batch shape {lead}, got shape {beta.shape}"
        ) from err
    return _soft_kernel(theta, x, beta, signs, sizes)


@partial(jax.jit, static_argnums=4)
def _soft_kernel(theta, x, beta, signs, sizes):
    blocks, s_t = _scores_t(theta, x, signs, sizes)
    p_t = jax.nn.softmax(s_t * beta.reshape(1, -1).astype(s_t.dtype), axis=0)
    y = _backward_chain(blocks, p_t)
    if signs is not None:
        y = y * signs.astype(y.dtype)
    return y.reshape(x.shape)


def krop_row(
    theta: Float[Array, " K"], idx: int | Int[Array, "*idx"], *, signs: Float[Array, " N"] | None = None
) -> Float[Array, "*idx N"]:
    """Codebook rows ``C_j = H_j * d`` in O(N) each, from the bits of ``j`` (seed 000, "linear time reconstruction").

    ``H_j = R(theta_{K-1})[j_{K-1}, :] (x) ... (x) R(theta_0)[j_0, :]`` where ``j_{K-1}`` is the most significant bit;
    the row is grown by K outer products of doubling length (N - 2 + N multiplies in all).

    Args:
      theta: ``(K,)`` angles.
      idx: integer indices of any shape ``(...)``, in ``[0, N)`` (checked when concrete; traced indices are taken
        modulo ``N``). Vmappable.
      signs: optional ``(N,)`` +-1 column signs.

    Returns:
      ``(..., N)`` rows.
    """
    where = "krop_row"
    theta = _check_theta(theta, where)
    k = theta.shape[0]
    n = 1 << k
    idx = _check_index(idx, n, where)
    signs = _check_signs(signs, n, where)
    return _row_kernel(theta, idx, signs)


def _check_index(idx, n: int, where: str) -> Array:
    if isinstance(idx, (bool, np.bool_)) or (hasattr(idx, "dtype") and jnp.issubdtype(idx.dtype, jnp.bool_)):
        raise TypeError(f"{where}: idx must be integer row indices, got booleans")
    if isinstance(idx, numbers.Integral):
        arr = jnp.asarray(idx, dtype=jnp.int32)
    else:
        arr = jnp.asarray(idx)
        if not jnp.issubdtype(arr.dtype, jnp.integer):
            raise TypeError(f"{where}: idx must be integer row indices, got dtype {arr.dtype}")
    if is_concrete(arr):
        vals = np.asarray(arr)
        if vals.size and (vals.min() < 0 or vals.max() >= n):
            bad = vals[(vals < 0) | (vals >= n)].ravel()[:4].tolist()
            raise ValueError(f"{where}: idx must lie in [0, N) = [0, {n}), got out-of-range values {bad}")
    return arr


@jax.jit
def _row_kernel(theta, idx, signs):
    k = theta.shape[0]
    f = _factors(theta)  # f[a] acts on bit K-1-a (a = 0: most significant)
    shifts = jnp.arange(k - 1, -1, -1, dtype=idx.dtype)
    bits = (idx[..., None] >> shifts) & 1  # (..., K) most significant first
    picked = f[jnp.arange(k)[None, :], bits.reshape(-1, k)]  # (B, K, 2): row bit_a of factor a
    row = picked[:, 0, :]
    for a in range(1, k):
        row = (row[:, :, None] * picked[:, a, None, :]).reshape(row.shape[0], -1)
    row = row.reshape(idx.shape + (1 << k,))
    if signs is not None:
        row = row * signs.astype(row.dtype)
    return row


def krop_matrix(theta: Float[Array, " K"], *, signs: Float[Array, " N"] | None = None) -> Float[Array, "N N"]:
    """Dense codebook ``C = H D`` (``(N, N)``), ``H = kron_{k=1..K} R(theta_{K-k})`` (seed 000). For tests / small N.

    Args:
      theta: ``(K,)`` angles.
      signs: optional ``(N,)`` +-1 column signs.

    Returns:
      ``(N, N)`` matrix; without signs it is orthogonal and symmetric.
    """
    theta = _check_theta(theta, "krop_matrix")
    signs = _check_signs(signs, 1 << theta.shape[0], "krop_matrix")
    h = _kron_blocks(_factors(theta), (theta.shape[0],))[0]
    return h if signs is None else h * signs.astype(h.dtype)[None, :]


# ----------------------------------------------------------------------------------------------------------------
# Angles and signs
# ----------------------------------------------------------------------------------------------------------------


def uniform_angles(key: PRNGKey, k: int) -> Array:
    """``K`` angles ``theta_k ~ U(0, 2 pi)`` (seed 000's choice). Same key -> same angles.

    Args:
      key: a ``jax.random`` key.
      k: number of angles ``K = log2 N`` (static, >= 1).

    Returns:
      ``(K,)`` float32.
    """
    k = check_int(k, "k", "uniform_angles", minimum=1)
    return jax.random.uniform(key, (k,), minval=0.0, maxval=2.0 * math.pi)


def degenerate_factors(theta: ArrayLike, tol: float = _DEGENERATE_TOL) -> np.ndarray:
    """Indices ``k`` whose factor ``R(theta_k)`` is degenerate: ``|cos| < tol`` or ``|sin| < tol``.

    Such a factor is a signed permutation (diagonal or anti-diagonal), so half the entries of ``H`` become zero and
    the rows stop looking like dense random vectors. ``theta`` must be concrete.
    """
    t = np.asarray(check_floating(theta, "theta", "degenerate_factors"), dtype=np.float64)
    return np.flatnonzero((np.abs(np.cos(t)) < tol) | (np.abs(np.sin(t)) < tol))


def even_angles(k: int, *, warn: bool = True) -> Array:
    """Evenly spaced angles ``theta_k = 2 pi (k + 1) / (K + 1)``, ``k = 0..K-1`` (the K non-zero points of a grid of
    ``K + 1`` on the circle).

    Seed 000 samples angles at random; the deterministic alternative follows the public code's evenly spaced grid as
    we read it (the slides do not give the formula). When ``K + 1`` is even, ``theta = pi`` appears (and
    ``pi / 2``, ``3 pi / 2`` when ``4 | K + 1``): those factors are signed permutations and most entries of ``H``
    vanish, so a ``UserWarning`` is issued (``warn=False`` silences it).

    Args:
      k: number of angles ``K`` (>= 1).
      warn: warn about degenerate factors.

    Returns:
      ``(K,)`` float32.
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


def hadamard_angles(k: int) -> Array:
    """``theta = pi / 4`` everywhere: ``H`` is the normalised Sylvester Hadamard matrix (seed 000)."""
    k = check_int(k, "k", "hadamard_angles", minimum=1)
    return jnp.full((k,), math.pi / 4, dtype=jnp.float32)


def krop_signs(key: PRNGKey, n: int) -> Array:
    """A fixed random ``+-1`` diagonal ``d`` (``(N,)`` float32) for the signed codebook ``C = H D``."""
    log2_size(n, "n", "krop_signs")
    return jax.random.rademacher(key, (n,), dtype=jnp.float32)
