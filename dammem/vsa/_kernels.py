"""Unvalidated VSA kernels shared by the public modules (:mod:`~dammem.vsa.hrr`, :mod:`~dammem.vsa.krop`,
:mod:`~dammem.vsa.codebooks`, :mod:`~dammem.vsa.memory`) and by code that validates once and calls them in a loop.
The codebook kernels are in :mod:`dammem.vsa._codebook_kernels`, the overwrite rule in
:mod:`dammem.vsa._memory_kernels`.

Shape legend: ``N`` vector dimension and number of scores (``N = 2^L`` for KROP), ``L`` angles, ``B`` rows (leading
axes flattened), ``T`` steps, ``...`` batch axes. Inputs are assumed valid (see the public wrappers for the checks).

* HRR (Plate (1995), circular convolution and correlation): ``bind_kernel(a, b) = a (*) b`` and
  ``unbind_kernel(memory, address) = address # memory`` by real FFTs, ``unbind_exact_kernel`` by the exact inverse.
* KROP (Liu et al. (2025), slides "Codebook based on Hadamard matrices" and "O(N log N) Clean-up Process"): the
  scores ``H (d * x)`` of a codebook ``C = H D`` as ``(N, B)`` columns of the shared butterfly, hard clean-up by
  :func:`blockwise_argmax` down the columns, soft clean-up ``d * H softmax(beta H (d * x))`` by a second butterfly
  back to rows, and rows ``C_j`` in O(N) from the bits of ``j`` (slide "Linear Time Vector Reconstruction").
* Clean-up: :func:`blockwise_argmax`, the one two-level argmax of every codebook.

References:
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Float, Int

from dammem._butterfly import columns_to_rows, kron_blocks, map_row_chunks, row_chunk, rows_to_columns
from dammem._types import Array

__all__ = [
    "ARGMAX_BLOCK",
    "blockwise_argmax",
    "bind_kernel",
    "unbind_kernel",
    "unbind_exact_kernel",
    "rotation_factors",
    "krop_columns",
    "krop_scores_kernel",
    "krop_cleanup_kernel",
    "krop_soft_cleanup_kernel",
    "krop_rows_kernel",
]

ARGMAX_BLOCK = 128
"""Block length of :func:`blockwise_argmax`: the max over blocks of this many scores, then one block."""

# ----------------------------------------------------------------------------------------------------------------
# Clean-up
# ----------------------------------------------------------------------------------------------------------------


def blockwise_argmax(scores: Array, axis: int) -> Array:
    """First index of the maximum along ``axis`` (as ``jnp.argmax``), by block maxima, then one block.

    With ``N`` scores along ``axis``: the maxima of ``N / 128`` blocks, the argmax of those, then the argmax inside
    the winning block. XLA:CPU runs this several times faster than a flat ``argmax`` over the same scores, in both
    layouts used here (dense ``(..., N)`` with ``axis=-1``, KROP columns ``(N, B)`` with ``axis=0``). Sizes that are
    not a multiple of 128, or below 512, use ``jnp.argmax`` directly.

    Args:
      scores: any shape.
      axis: the axis to reduce.

    Returns:
      int32 indices with ``axis`` removed; ties go to the smallest index.
    """
    axis = axis % scores.ndim
    n, c = scores.shape[axis], ARGMAX_BLOCK
    if n % c or n < 4 * c:
        return jnp.argmax(scores, axis=axis).astype(jnp.int32)
    blocks = scores.reshape(scores.shape[:axis] + (n // c, c) + scores.shape[axis + 1 :])
    best = jnp.argmax(jnp.max(blocks, axis=axis + 1), axis=axis)  # the winning block, shape without `axis`
    inside = jnp.take_along_axis(blocks, jnp.expand_dims(best, (axis, axis + 1)), axis=axis)
    inside = jnp.squeeze(inside, axis)  # the winning block's c scores along `axis`
    return (best * c + jnp.argmax(inside, axis=axis)).astype(jnp.int32)


# ----------------------------------------------------------------------------------------------------------------
# HRR
# ----------------------------------------------------------------------------------------------------------------


def _fft_dtype(dtype) -> jnp.dtype:
    """FFTs run in at least float32 (half precision has no FFT and too little range for the sums)."""
    return jnp.promote_types(dtype, jnp.float32)


@jax.jit
def bind_kernel(a: Float[Array, "*#ba N"], b: Float[Array, "*#bb N"]) -> Float[Array, "*batch N"]:
    """Circular convolution ``irfft(rfft(a) rfft(b))``; dtype of ``a`` and ``b`` combined."""
    dtype = jnp.result_type(a.dtype, b.dtype)
    ft = _fft_dtype(dtype)
    fa, fb = jnp.fft.rfft(a.astype(ft), axis=-1), jnp.fft.rfft(b.astype(ft), axis=-1)
    return jnp.fft.irfft(fa * fb, n=a.shape[-1], axis=-1).astype(dtype)


@jax.jit
def unbind_kernel(memory: Float[Array, "*#bm N"], address: Float[Array, "*#ba N"]) -> Float[Array, "*batch N"]:
    """Circular correlation ``address # memory = irfft(conj(rfft(address)) rfft(memory))``."""
    dtype = jnp.result_type(memory.dtype, address.dtype)
    ft = _fft_dtype(dtype)
    fm, fa = jnp.fft.rfft(memory.astype(ft), axis=-1), jnp.fft.rfft(address.astype(ft), axis=-1)
    return jnp.fft.irfft(jnp.conj(fa) * fm, n=memory.shape[-1], axis=-1).astype(dtype)


@jax.jit
def unbind_exact_kernel(
    memory: Float[Array, "*#bm N"], address: Float[Array, "*#ba N"], eps: float
) -> Float[Array, "*batch N"]:
    """Exact inverse ``irfft(rfft(memory) conj(F a) / max(|F a|^2, eps))``."""
    dtype = jnp.result_type(memory.dtype, address.dtype)
    ft = _fft_dtype(dtype)
    fm, fa = jnp.fft.rfft(memory.astype(ft), axis=-1), jnp.fft.rfft(address.astype(ft), axis=-1)
    power = jnp.maximum(jnp.real(fa) ** 2 + jnp.imag(fa) ** 2, eps)
    return jnp.fft.irfft(fm * jnp.conj(fa) / power, n=memory.shape[-1], axis=-1).astype(dtype)


# ----------------------------------------------------------------------------------------------------------------
# KROP
# ----------------------------------------------------------------------------------------------------------------


def rotation_factors(theta: Float[Array, " L"]) -> Float[Array, "L 2 2"]:
    """``[R(theta_{L-1}), ..., R(theta_0)]``, ``R(t) = [[cos t, sin t], [sin t, -cos t]]`` (most significant first)."""
    t = theta[::-1]
    c, s = jnp.cos(t), jnp.sin(t)
    return jnp.stack([jnp.stack([c, s], -1), jnp.stack([s, -c], -1)], -2)


def krop_columns(
    theta: Float[Array, " L"], x2: Float[Array, "B N"], signs: Float[Array, " N"] | None, sizes: tuple[int, ...]
) -> tuple[list[Array], Float[Array, "N B"]]:
    """The butterfly blocks of ``H`` and the scores ``H (d * x_b)`` of every row of ``x2`` as ``(N, B)`` columns."""
    if signs is not None:
        x2 = x2 * signs.astype(x2.dtype)
    blocks = kron_blocks(rotation_factors(theta), sizes)
    return blocks, rows_to_columns(blocks, x2)


@partial(jax.jit, static_argnums=3)
def krop_scores_kernel(theta, x, signs, sizes) -> Array:
    """Scores ``H (d * x)``: ``(..., N) -> (..., N)`` (large CPU batches in chunks of rows, :func:`row_chunk`)."""
    x2 = x.reshape(-1, x.shape[-1])
    s = map_row_chunks(lambda r: krop_columns(theta, r, signs, sizes)[1].T, (x2,), row_chunk(*x2.shape))
    return s.reshape(x.shape)


@partial(jax.jit, static_argnums=3)
def krop_cleanup_kernel(theta, x, signs, sizes) -> Array:
    """Hard clean-up ``argmax H (d * x)``: ``(..., N) -> (...)`` int32, reduced down the score columns."""
    x2 = x.reshape(-1, x.shape[-1])

    def cleanup(r):
        return blockwise_argmax(krop_columns(theta, r, signs, sizes)[1], axis=0)

    return map_row_chunks(cleanup, (x2,), row_chunk(*x2.shape, in_place=True)).reshape(x.shape[:-1])


@partial(jax.jit, static_argnums=4)
def krop_soft_cleanup_kernel(theta, x, beta, signs, sizes) -> Array:
    """Soft clean-up ``d * H softmax(beta H (d * x))``; ``beta`` has the batch shape ``x.shape[:-1]``."""
    x2 = x.reshape(-1, x.shape[-1])

    def soft(r, b):
        blocks, s_t = krop_columns(theta, r, signs, sizes)
        p_t = jax.nn.softmax(s_t * b.reshape(1, -1).astype(s_t.dtype), axis=0)
        y = columns_to_rows(blocks, p_t)  # H is symmetric: C^T p = d * H p
        return y if signs is None else y * signs.astype(y.dtype)

    y = map_row_chunks(soft, (x2, beta.reshape(-1)), row_chunk(*x2.shape, in_place=True))
    return y.reshape(x.shape)


@jax.jit
def krop_rows_kernel(theta: Float[Array, " L"], idx: Int[Array, "*idx"], signs) -> Float[Array, "*idx N"]:
    """Rows ``C_j = H_j * d``, ``H_j = R(theta_{L-1})[j_{L-1}] (x) ... (x) R(theta_0)[j_0]``, in O(N) each."""
    k = theta.shape[0]
    f = rotation_factors(theta)  # f[a] acts on bit L-1-a (a = 0: most significant)
    shifts = jnp.arange(k - 1, -1, -1, dtype=idx.dtype)
    bits = (idx[..., None] >> shifts) & 1  # (..., L) most significant first
    picked = f[jnp.arange(k)[None, :], bits.reshape(-1, k)]  # (B, L, 2): row bit_a of factor a
    row = picked[:, 0, :]
    for a in range(1, k):
        row = (row[:, :, None] * picked[:, a, None, :]).reshape(row.shape[0], -1)
    row = row.reshape(idx.shape + (1 << k,))
    if signs is not None:
        row = row * signs.astype(row.dtype)
    return row
