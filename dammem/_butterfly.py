"""The shared fast transform: a Kronecker product of 2x2 factors applied by a grouped butterfly.

Shape legend: ``N = 2^L`` transform size (the last axis), ``L`` 2x2 factors, ``B`` rows (all leading axes
flattened), ``m`` factors of a Hadamard-sign chain, ``...`` any leading batch axes.

For ``F = F_0 (x) F_1 (x) ... (x) F_{L-1}`` (``F_0`` acts on the most significant bit of the index, the order of
``np.kron``), ``y = F x`` costs O(N log N) instead of the O(N^2) dense product: view ``x`` as a ``2 x 2 x ... x 2``
tensor and contract one axis with each factor. This module groups ``g`` consecutive factors into one
``2^g x 2^g`` Kronecker block (:func:`kron_blocks`) and applies each block as one small dense product, so the data
makes ``ceil(L / g)`` passes through memory instead of ``L``; ``g`` is static and chosen per backend
(:func:`default_group`).

Layouts. Each pass contracts the last axis of the row-major data and emits its output axis *first*, so the axes
rotate and no pass needs a transpose: :func:`rows_to_columns` maps ``(B, N)`` rows to the ``(N, B)`` columns of
``F x``, and :func:`columns_to_rows` maps ``(N, B)`` columns back to ``(B, N)`` rows of ``F x``. Both apply the
same ``F``. A chain of transforms alternates the two and transposes at most once, at the end (the soft clean-up of
a KROP codebook runs two butterflies this way; :func:`hadamard_sign_chain` runs ``m``).
On CPU, large batches run in cache-sized chunks of rows under ``lax.map`` (:func:`row_chunk`,
:func:`map_row_chunks`): a whole batch of many rows would leave the cache on every pass and on the final transpose.

Walsh-Hadamard. ``H_2 = [[1, 1], [1, -1]] / sqrt(2)`` and ``H_N = H_2 (x) ... (x) H_2`` is the normalised
Sylvester-Hadamard matrix (natural order; ``H_N = H_N^T = H_N^-1``): :func:`hadamard_factors`, :func:`fwht`.
Structured orthogonal random features (Yu et al. (2016), Sec. 4) project with
``W = sqrt(N) / sigma * H D_1 H D_2 H D_3`` (``D_i`` random +-1 diagonals, ``N`` the input dimension padded to a
power of two with :func:`pad_to_power_of_two`); :func:`hadamard_sign_chain` computes the product ``H D_1 ... H D_m x``
in ``m`` butterflies. The KROP codebooks of Liu et al. (2025) are the case ``F_a = R(theta_{L-1-a})``
(:mod:`dammem.vsa.krop`).

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025 (slides "O(N log N) Clean-up Process").
  - F. X. Yu, A. T. Suresh, K. Choromanski, D. Holtmann-Rice, S. Kumar (2016). Orthogonal Random Features.
    NeurIPS 2016 (Sec. 4, SORF).
"""

from __future__ import annotations

import functools
import math
import numbers
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike
from jaxtyping import Float

from dammem._types import Array
from dammem._validate import check_axis, check_floating, check_int

__all__ = [
    "log2_size",
    "next_power_of_two",
    "pad_to_power_of_two",
    "default_group",
    "check_group",
    "group_sizes",
    "row_chunk",
    "map_row_chunks",
    "kron_blocks",
    "rows_to_columns",
    "columns_to_rows",
    "butterfly_kernel",
    "butterfly_apply",
    "butterfly_matrix",
    "hadamard_factors",
    "fwht",
    "hadamard_sign_chain",
    "MAX_GROUP",
]

# Largest Kronecker block (2^g x 2^g) per backend. CPU: measured on a 2-core Sapphire Rapids (XLA:CPU, float32,
# batch 64, N = 2^10..2^14): g = 4 is fastest or within noise of the best (g = 3..6 span about 1.3x; g = 1, the
# stage-by-stage butterfly, is 3-4x slower). GPU/TPU: wider blocks keep the matrix units busy while the data still
# makes only 2-3 passes; g = 6 is the default there (a design choice, not yet measured on an accelerator).
_DEFAULT_GROUP = {"cpu": 4}
_DEFAULT_GROUP_ACCEL = 6
MAX_GROUP = 10
"""Largest block width ``g`` (1024 x 1024 blocks): beyond that a block costs more than the dense product."""
_HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: the transform must stay exact in float32
# Rows per chunk on CPU: about 2^17 elements (512 KB of float32) per chunk, twice that when the result stays in the
# column layout (no transpose). Measured on a 2-core Sapphire Rapids (XLA:CPU, float32): a batch of 512 x 4096
# transforms in 7 ms in chunks of 32 rows against 78 ms whole (the whole-batch passes and the final transpose leave
# the cache); 4096 x 1024: 14 ms against 153 ms; 256 x 16384: 14 ms against 134 ms. Accelerators run whole batches.
_CHUNK_ELEMENTS = {"cpu": 1 << 17}


# ----------------------------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------------------------


def log2_size(n: int, name: str = "N", context: str = "butterfly", *, min_size: int = 2) -> int:
    """``L = log2(n)`` for a power of two ``n >= min_size``; otherwise a clear error naming ``name`` and ``n``.

    Args:
      n: the size to check.
      name: how the caller's argument is called in the message (e.g. ``"x.shape[-1]"``).
      context: the public function reporting the error.
      min_size: smallest allowed power of two (2 for KROP codebooks, 1 for a Walsh-Hadamard transform).

    Returns:
      ``L`` with ``n = 2^L``.

    Example:
      >>> from dammem._butterfly import log2_size
      >>> log2_size(1024)
      10
    """
    if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)):
        raise TypeError(f"{context}: {name} must be an int (a power of two >= {min_size}), got {n!r}")
    n = int(n)
    if n < min_size or n & (n - 1):
        allowed = ", ".join(str(1 << k) for k in range(min_size.bit_length() - 1, min_size.bit_length() + 2))
        raise ValueError(
            f"{context}: {name} must be a power of two >= {min_size} ({allowed}, ...), got {n}; "
            "pad_to_power_of_two zero-pads an axis"
        )
    return n.bit_length() - 1


def next_power_of_two(n: int) -> int:
    """Smallest power of two ``>= n`` (``n >= 1``).

    Example:
      >>> from dammem._butterfly import next_power_of_two
      >>> next_power_of_two(784), next_power_of_two(1024), next_power_of_two(1)
      (1024, 1024, 1)
    """
    n = check_int(n, "n", "next_power_of_two", minimum=1)
    return 1 << (n - 1).bit_length()


def pad_to_power_of_two(x: Float[ArrayLike, ...], axis: int = -1) -> Float[Array, ...]:
    """Zero-pad ``axis`` of ``x`` at the end up to the next power of two (unchanged if it already is one).

    A Walsh-Hadamard transform of the padded vector preserves its norm (the zeros add nothing), which is how
    structured random features handle a dimension that is not a power of two (Yu et al. (2016), Sec. 4).

    Args:
      x: array with at least one axis; integers become float32.
      axis: the axis to pad.

    Returns:
      ``x`` with ``x.shape[axis]`` raised to :func:`next_power_of_two` of it.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem._butterfly import pad_to_power_of_two
      >>> pad_to_power_of_two(jnp.ones((2, 3)))
      Array([[1., 1., 1., 0.],
             [1., 1., 1., 0.]], dtype=float32)
    """
    context = "pad_to_power_of_two"
    x = check_floating(x, "x", context)
    if x.ndim < 1:
        raise ValueError(f"{context}: x must have at least one axis, got a scalar")
    axis = check_axis(axis, x.ndim, context)
    n = x.shape[axis]
    if n < 1:
        raise ValueError(f"{context}: x.shape[{axis}] must be >= 1 to pad, got shape {x.shape}")
    width = [(0, 0)] * x.ndim
    width[axis] = (0, next_power_of_two(n) - n)
    return jnp.pad(x, width)


def default_group(backend: str | None = None) -> int:
    """Static number of 2x2 factors fused into one Kronecker block of the butterfly, per backend.

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None`` uses ``jax.default_backend()``.

    Returns:
      ``4`` on CPU (measured fastest here), ``6`` on accelerators.

    Example:
      >>> from dammem._butterfly import default_group
      >>> default_group("cpu"), default_group("gpu")
      (4, 6)
    """
    backend = jax.default_backend() if backend is None else backend
    return _DEFAULT_GROUP.get(backend, _DEFAULT_GROUP_ACCEL)


def check_group(group: int | None, context: str) -> int:
    """``group`` as an int in ``[1, MAX_GROUP]``; ``None`` means :func:`default_group`."""
    if group is None:
        return default_group()
    group = check_int(group, "group", context, minimum=1)
    if group > MAX_GROUP:
        raise ValueError(f"{context}: group must be in [1, {MAX_GROUP}] (block size 2^group), got {group}")
    return group


def row_chunk(b: int, n: int, *, in_place: bool = False, backend: str | None = None) -> int | None:
    """Rows per chunk for a butterfly over ``b`` rows of length ``n``, or ``None`` to transform the batch whole.

    On CPU a batch of at least four chunks runs chunk by chunk (:func:`map_row_chunks`) so that every pass stays in
    cache; a chunk holds about 2^17 elements (2^18 with ``in_place=True``, for results consumed in the column layout
    without a transpose). Accelerators run whole batches.

    Args:
      b: rows in the batch.
      n: row length.
      in_place: the result stays in the ``(N, B)`` column layout (a clean-up's argmax, a soft clean-up).
      backend: ``None`` uses ``jax.default_backend()``.

    Example:
      >>> from dammem._butterfly import row_chunk
      >>> row_chunk(512, 4096, backend="cpu"), row_chunk(64, 4096, backend="cpu"), row_chunk(512, 4096, backend="gpu")
      (32, None, None)
    """
    backend = jax.default_backend() if backend is None else backend
    target = _CHUNK_ELEMENTS.get(backend)
    if target is None:
        return None
    chunk = max(1, (target << int(in_place)) // max(n, 1))
    return chunk if b >= 4 * chunk else None


def map_row_chunks(fn, rows: tuple[Array, ...], chunk: int | None) -> Array:
    """``fn(*rows)`` computed ``chunk`` rows at a time under ``lax.map`` (the remainder in one more call).

    Args:
      fn: maps arrays whose leading axis is a block of rows to one array with the same leading axis.
      rows: arrays sharing the leading axis ``B``.
      chunk: rows per call (static); ``None`` calls ``fn`` once on the whole batch.

    Returns:
      ``fn``'s output for all ``B`` rows, in order.
    """
    if chunk is None:
        return fn(*rows)
    b = rows[0].shape[0]
    full = b - b % chunk
    head = lax.map(lambda args: fn(*args), tuple(r[:full].reshape((full // chunk, chunk) + r.shape[1:]) for r in rows))
    head = head.reshape((full,) + head.shape[2:])
    if full == b:
        return head
    return jnp.concatenate([head, fn(*(r[full:] for r in rows))], axis=0)


def group_sizes(k: int, group: int) -> tuple[int, ...]:
    """Split ``L`` factors into ``ceil(L / group)`` consecutive groups of near-equal size (larger ones first).

    Example:
      >>> from dammem._butterfly import group_sizes
      >>> group_sizes(10, 4)
      (4, 3, 3)
    """
    if k == 0:
        return ()
    passes = -(-k // group)
    base, extra = divmod(k, passes)
    return tuple([base + 1] * extra + [base] * (passes - extra))


# ----------------------------------------------------------------------------------------------------------------
# Kernels (unvalidated: shapes are the caller's responsibility)
# ----------------------------------------------------------------------------------------------------------------


def kron_blocks(factors: Float[Array, "L 2 2"], sizes: tuple[int, ...]) -> list[Array]:
    """Kronecker blocks of consecutive factors: block ``c`` is ``kron(factors[s_c], ..., factors[s_c + sizes[c] - 1])``.

    Args:
      factors: ``(L, 2, 2)`` with ``L = sum(sizes)``.
      sizes: static group sizes (:func:`group_sizes`).

    Returns:
      One ``(2^g_c, 2^g_c)`` block per group.
    """
    blocks, start = [], 0
    for size in sizes:
        block = factors[start]
        for a in range(start + 1, start + size):
            f = factors[a]
            block = (block[:, None, :, None] * f[None, :, None, :]).reshape(block.shape[0] * 2, block.shape[1] * 2)
        blocks.append(block)
        start += size
    return blocks


def rows_to_columns(blocks: list[Array], x: Float[Array, "B N"]) -> Float[Array, "N B"]:
    """``F x_b`` for every row ``x_b`` of ``x``, returned as columns: ``(B, N) -> (N, B)``, no transpose.

    Each pass contracts the last axis (the least significant group not yet transformed) and emits its output axis
    first, so after all passes the transformed index leads and ``B`` trails.

    Args:
      blocks: Kronecker blocks of ``F`` (:func:`kron_blocks`), most significant first.
      x: ``(B, N)`` rows, ``N`` the product of the block sizes.

    Returns:
      ``(N, B)``.
    """
    y = x
    for block in reversed(blocks):
        s = block.shape[0]
        y = lax.dot_general(block.astype(y.dtype), y.reshape(-1, s), (((1,), (1,)), ((), ())), precision=_HIGHEST)
    return y.reshape(x.shape[1], x.shape[0])


def columns_to_rows(blocks: list[Array], x: Float[Array, "N B"]) -> Float[Array, "B N"]:
    """``F x_b`` for every column ``x_b`` of ``x``, returned as rows: ``(N, B) -> (B, N)``, no transpose.

    The mirror of :func:`rows_to_columns`: each pass contracts the first axis (the most significant group not yet
    transformed) and emits its output axis last.

    Args:
      blocks: Kronecker blocks of ``F``, most significant first.
      x: ``(N, B)`` columns.

    Returns:
      ``(B, N)``.
    """
    y = x
    for block in blocks:
        s = block.shape[0]
        y = lax.dot_general(y.reshape(s, -1), block.astype(y.dtype), (((0,), (1,)), ((), ())), precision=_HIGHEST)
    return y.reshape(x.shape[1], x.shape[0])


@partial(jax.jit, static_argnums=2)
def butterfly_kernel(factors: Float[Array, "L 2 2"], x: Float[Array, "*batch N"], sizes: tuple[int, ...]) -> Array:
    """:func:`butterfly_apply` without validation; ``sizes`` static (:func:`group_sizes`)."""
    x2 = x.reshape(-1, x.shape[-1])
    blocks = kron_blocks(factors, sizes)
    y = map_row_chunks(lambda r: rows_to_columns(blocks, r).T, (x2,), row_chunk(*x2.shape))
    return y.reshape(x.shape)


# ----------------------------------------------------------------------------------------------------------------
# Public transforms
# ----------------------------------------------------------------------------------------------------------------


def _check_last_axis(x: ArrayLike, context: str, min_size: int) -> tuple[Array, int]:
    x = check_floating(x, "x", context)
    if x.ndim < 1:
        raise ValueError(f"{context}: x must have shape (..., N) with N a power of two, got a scalar")
    return x, log2_size(x.shape[-1], "x.shape[-1]", context, min_size=min_size)


def butterfly_apply(
    factors: Float[ArrayLike, "L 2 2"], x: Float[ArrayLike, "*batch N"], *, group: int | None = None
) -> Float[Array, "*batch N"]:
    """Apply a Kronecker product of 2x2 factors along the last axis: ``y = (F_0 (x) F_1 (x) ... (x) F_{L-1}) x``.

    ``F_0`` acts on the most significant bit of the index (row-major order, as ``np.kron``). Groups of ``group``
    consecutive factors are fused into one ``2^g x 2^g`` Kronecker block, applied as a small dense product, so the
    data makes ``ceil(L / g)`` passes.

    Args:
      factors: ``(L, 2, 2)`` real 2x2 matrices, ``L >= 1`` (traced: new values never re-trace).
      x: ``(..., N)`` with ``N = 2^L``.
      group: static block width ``g`` in ``[1, 10]``; ``None`` uses :func:`default_group`.

    Returns:
      ``(..., N)`` transformed rows, dtype of ``x``; equals ``x @ butterfly_matrix(factors).T``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem._butterfly import butterfly_apply
      >>> butterfly_apply(jnp.array([[[1.0, 1.0], [1.0, -1.0]]]) / jnp.sqrt(2.0), jnp.array([1.0, 0.0]))
      Array([0.70710677, 0.70710677], dtype=float32)
    """
    context = "butterfly_apply"
    factors = check_floating(factors, "factors", context)
    x, k = _check_last_axis(x, context, 2)
    if factors.shape != (k, 2, 2):
        raise ValueError(
            f"{context}: factors must have shape (K, 2, 2) = ({k}, 2, 2) for N = {x.shape[-1]}, got {factors.shape}"
        )
    return butterfly_kernel(factors, x, group_sizes(k, check_group(group, context)))


def butterfly_matrix(factors: Float[ArrayLike, "L 2 2"]) -> Float[Array, "N N"]:
    """Dense ``F_0 (x) F_1 (x) ... (x) F_{L-1}`` (``(N, N)``, ``N = 2^L``): a reference for tests and small ``N``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem._butterfly import butterfly_matrix, hadamard_factors
      >>> (butterfly_matrix(hadamard_factors(2)) * 2).round(4)  # 4 x 4 Sylvester-Hadamard
      Array([[ 1.,  1.,  1.,  1.],
             [ 1., -1.,  1., -1.],
             [ 1.,  1., -1., -1.],
             [ 1., -1., -1.,  1.]], dtype=float32)
    """
    factors = check_floating(factors, "factors", "butterfly_matrix")
    if factors.ndim != 3 or factors.shape[1:] != (2, 2) or factors.shape[0] < 1:
        raise ValueError(f"butterfly_matrix: factors must have shape (K, 2, 2) with K >= 1, got {factors.shape}")
    return kron_blocks(factors, (factors.shape[0],))[0]


def hadamard_factors(k: int, dtype=jnp.float32) -> Float[Array, "L 2 2"]:
    """``L`` copies of ``H_2 = [[1, 1], [1, -1]] / sqrt(2)``: the factors of the normalised ``H_{2^L}``.

    Args:
      k: number of factors ``L >= 1``.
      dtype: a floating dtype.

    Returns:
      ``(L, 2, 2)``.
    """
    k = check_int(k, "k", "hadamard_factors", minimum=1)
    h2 = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)
    return jnp.asarray(np.broadcast_to(h2, (k, 2, 2)), dtype=dtype)


def _hadamard_blocks(k: int, group: int, dtype) -> list[Array]:
    """Constant Sylvester blocks ``H_{2^g}`` (NumPy at trace time: folded into the program, nothing traced)."""
    blocks = []
    for g in group_sizes(k, group):
        h = np.ones((1, 1))
        for _ in range(g):
            h = np.block([[h, h], [h, -h]])
        blocks.append(jnp.asarray(h / math.sqrt(h.shape[0]), dtype=dtype))
    return blocks


def fwht(x: Float[ArrayLike, "*batch N"], *, group: int | None = None) -> Float[Array, "*batch N"]:
    """Normalised fast Walsh-Hadamard transform along the last axis: ``y = H_N x``, ``H_N = H_2^{(x) L}``.

    ``H_N`` is the Sylvester-Hadamard matrix in natural order (``scipy.linalg.hadamard(N)``) divided by
    ``sqrt(N)``: orthogonal and symmetric, so ``fwht(fwht(x)) = x`` and norms are preserved. O(N log N) through
    the grouped butterfly; pad other sizes with :func:`pad_to_power_of_two` first.

    Under ``jax.vmap`` the mapped axis becomes more leading rows of one transform (a batching rule of the kernel):
    batching the butterfly's small dense products instead, with transposes between passes, is about 2.4x slower for
    a (16, 8, 4096) batch on a CPU. The transform is linear: its JVP is the plain butterfly of the tangent
    (transposable for reverse mode, batched without the rule).

    Args:
      x: ``(..., N)`` with ``N = 2^L >= 1``; integers become float32.
      group: static block width in ``[1, 10]``; ``None`` uses :func:`default_group`.

    Returns:
      ``(..., N)``, dtype of ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem._butterfly import fwht
      >>> fwht(jnp.array([1.0, 0.0, 0.0, 0.0]))  # the first column of H_4
      Array([0.5, 0.5, 0.5, 0.5], dtype=float32)
      >>> fwht(jnp.array([4.0, 2.0, 0.0, 2.0]))  # (1/2) [8, 0, 4, 4]
      Array([4., 0., 2., 2.], dtype=float32)
      >>> jax.vmap(fwht)(jnp.array([[4.0, 2.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]]))  # row by row
      Array([[4. , 0. , 2. , 2. ],
             [0.5, 0.5, 0.5, 0.5]], dtype=float32)
    """
    context = "fwht"
    x, k = _check_last_axis(x, context, 1)
    return _fwht_op(k, check_group(group, context))(x)


@partial(jax.jit, static_argnums=(1, 2))
def _fwht_kernel(x: Array, k: int, group: int) -> Array:
    x2 = x.reshape(-1, x.shape[-1])
    blocks = _hadamard_blocks(k, group, x.dtype)
    y = map_row_chunks(lambda r: rows_to_columns(blocks, r).T, (x2,), row_chunk(*x2.shape))
    return y.reshape(x.shape)


@functools.cache
def _fwht_op(k: int, group: int):
    """The transform of size ``2^k`` with block width ``group``: a batching rule that folds ``jax.vmap`` axes into the
    leading rows, under a JVP rule (``custom_vmap`` alone is not differentiable in reverse mode)."""

    @jax.custom_batching.custom_vmap
    def batched(x):
        return _fwht_kernel(x, k, group)

    @batched.def_vmap
    def _rule(axis_size, in_batched, x):
        del axis_size
        return batched(x), in_batched[0]  # a mapped axis (moved first) is just more leading rows

    @jax.custom_jvp
    def op(x):
        return batched(x)

    @op.defjvp
    def _jvp(primals, tangents):  # the plain kernel for the tangent: transposable (custom_vmap is not)
        return op(primals[0]), _fwht_kernel(tangents[0], k, group)

    return op


def hadamard_sign_chain(
    signs: Float[ArrayLike, "m N"], x: Float[ArrayLike, "*batch N"], *, group: int | None = None
) -> Float[Array, "*batch N"]:
    """``H D_0 H D_1 ... H D_{m-1} x`` along the last axis: ``m`` normalised Walsh-Hadamard transforms, each after a
    diagonal ``D_i = diag(signs[i])``, applied right to left (``D_{m-1}`` first).

    The structured orthogonal random features of Yu et al. (2016), Sec. 4, project with
    ``W = sqrt(N) / sigma * H D_1 H D_2 H D_3`` (three +-1 diagonals): ``W x`` is
    ``sqrt(N) / sigma * hadamard_sign_chain(signs, x)``. The ``m`` butterflies alternate the row and column layouts
    (:func:`rows_to_columns`, :func:`columns_to_rows`), so the chain transposes at most once.

    Args:
      signs: ``(m, N)`` diagonals, ``m >= 1`` (usually +-1; any real values are applied as given; traced).
      x: ``(..., N)`` with ``N = 2^L >= 1``.
      group: static block width in ``[1, 10]``; ``None`` uses :func:`default_group`.

    Returns:
      ``(..., N)``; equals ``x @ W.T`` with ``W = prod_i (H_N @ diag(signs[i]))``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem._butterfly import hadamard_sign_chain
      >>> hadamard_sign_chain(jnp.array([[1.0, -1.0], [1.0, 1.0]]), jnp.array([1.0, 0.0])).round(4) + 0.0  # H D_0 H e_0
      Array([0., 1.], dtype=float32)
    """
    context = "hadamard_sign_chain"
    x, k = _check_last_axis(x, context, 1)
    signs = check_floating(signs, "signs", context)
    if signs.ndim != 2 or signs.shape[0] < 1 or signs.shape[1] != x.shape[-1]:
        raise ValueError(
            f"{context}: signs must have shape (m, N) = (m, {x.shape[-1]}) with m >= 1 diagonals, got {signs.shape}"
        )
    dtype = jnp.result_type(x.dtype, signs.dtype)
    return _chain_kernel(signs.astype(dtype), x.astype(dtype), k, check_group(group, context))


@partial(jax.jit, static_argnums=(2, 3))
def _chain_kernel(signs: Array, x: Array, k: int, group: int) -> Array:
    blocks = _hadamard_blocks(k, group, x.dtype)

    def chain(y):  # (B, N) rows -> (B, N) rows, alternating the layouts
        as_rows = True
        for d in signs[::-1]:
            if as_rows:
                y = rows_to_columns(blocks, y * d)
            else:
                y = columns_to_rows(blocks, y * d[:, None])
            as_rows = not as_rows
        return y if as_rows else y.T

    x2 = x.reshape(-1, x.shape[-1])
    return map_row_chunks(chain, (x2,), row_chunk(*x2.shape)).reshape(x.shape)
