"""Unvalidated kernels of the U-Hop modules (public names in a private module; the public wrappers validate).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width.

Pair reductions run over blocks of ``chunk_size`` rows of the (K, K) pair matrix, one block at a time in a
``lax.scan`` that reduces in its carry; a block is at most ``chunk_size x K`` scores and never a K x K x F tensor.
With more than one block the block body is rematerialised under ``jax.grad`` (``jax.checkpoint``), so the backward
pass also holds one block at a time.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from dammem._types import Array
from dammem._validate import is_concrete

_HIGHEST = lax.Precision.HIGHEST


def unit_rows(v: Array) -> Array:
    """``v / ||v||`` along the last axis; zero rows stay zero, with a finite (zero) gradient there."""
    sq = jnp.sum(jnp.square(v), axis=-1, keepdims=True)
    nonzero = sq > 0
    return jnp.where(nonzero, v / jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def nan_unless_positive(temperature, value: Array) -> Array:
    """``value`` where ``temperature > 0``; NaN for a traced ``temperature <= 0`` (concrete values are checked)."""
    if is_concrete(temperature):
        return value
    return value * jnp.where(temperature > 0, 1.0, jnp.nan).astype(value.dtype)


def features(weight: Array, memories: Array) -> Array:
    """Row-normalised features ``unit(Xi W^T)`` (K, F), at full float32 precision."""
    return unit_rows(jnp.matmul(memories, weight.T, precision=_HIGHEST))


def pair_log_terms(cos: Array, sq_distance: Array, temperature, loss: str) -> Array:
    """The logarithm of each pair's term, from the pair's dot product ``c = <u, v>`` and ``||u - v||^2``.

    - ``"average"`` and ``"max"``: ``log G_t = -t ||u - v||^2`` (Wu et al. (2024), eqs. 2.5, 2.7); on unit
      features ``= 2 t (c - 1)``.
    - ``"deep"``: ``2 t (c^2 - 1)`` (Wu et al. (2024), eq. 3.2).
    """
    if loss == "deep":
        return 2.0 * temperature * (jnp.square(cos) - 1.0)
    return -temperature * sq_distance


def _blocks(feats: Array, chunk_size: int) -> tuple[Array, Array, int]:
    """Rows padded to a multiple of the block size and split: ``(blocks (nb, c, F), row ids (nb, c), nb)``."""
    k = feats.shape[0]
    size = min(chunk_size, k)
    nb = math.ceil(k / size)
    padded = jnp.pad(feats, ((0, nb * size - k), (0, 0)))
    return padded.reshape(nb, size, feats.shape[1]), jnp.arange(nb * size).reshape(nb, size), nb


def _pair_mask(rows: Array, k: int) -> Array:
    """(c, K): True for real pairs ``(i, j)``, ``i < K`` (not padding) and ``j != i``."""
    return (rows[:, None] < k) & (rows[:, None] != jnp.arange(k)[None, :])


def separation_loss(weight: Array, memories: Array, temperature, loss: str, chunk_size: int) -> Array:
    """The separation loss over the ordered pairs ``i != j`` (see :func:`dammem.uhop.separation_loss`).

    ``"average"``/``"deep"``: ``log mean_{i != j} exp(g_ij)`` by a running log-sum-exp (max-shifted, so large ``t``
    does not underflow); ``"max"``: ``max_{i != j} g_ij``.
    """
    feats = features(weight, memories)
    k = feats.shape[0]
    sq_norms = jnp.sum(jnp.square(feats), axis=-1)  # 1, or 0 for a zero feature vector
    blocks, row_ids, nb = _blocks(feats, chunk_size)

    def block_terms(block, rows):
        cos = jnp.matmul(block, feats.T, precision=_HIGHEST)
        # ||u_i - u_j||^2 = |u_i|^2 + |u_j|^2 - 2 c_ij, clipped at 0 against rounding
        sq_distance = jnp.maximum(jnp.sum(jnp.square(block), -1, keepdims=True) + sq_norms[None, :] - 2.0 * cos, 0.0)
        terms = pair_log_terms(cos, sq_distance, temperature, loss)
        return jnp.where(_pair_mask(rows, k), terms, -jnp.inf)

    if loss == "max":

        def body(carry, xs):
            return jnp.maximum(carry, jnp.max(block_terms(*xs))), None

        init = jnp.asarray(-jnp.inf, feats.dtype)
    else:

        def body(carry, xs):
            m, s = carry
            g = block_terms(*xs)
            m_new = jnp.maximum(m, jnp.max(g))
            return (m_new, s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(g - m_new))), None

        init = (jnp.asarray(-jnp.inf, feats.dtype), jnp.zeros((), feats.dtype))
    if nb > 1:
        body = jax.checkpoint(body)
    out, _ = lax.scan(body, init, (blocks, row_ids))
    if loss == "max":
        return out
    m, s = out
    return m + jnp.log(s) - math.log(k * (k - 1))


def max_off_diagonal(feats: Array, chunk_size: int, column_bias: Array | None = None) -> Array:
    """(K,) ``max_{j != i} <f_i, f_j> + b_j`` for each row ``i`` of ``feats`` (K, F), one block of rows at a time
    (``b = column_bias`` (K,), zero when None)."""
    k = feats.shape[0]
    blocks, row_ids, _ = _blocks(feats, chunk_size)
    bias = jnp.zeros((k,), feats.dtype) if column_bias is None else column_bias

    def per_block(xs):
        block, rows = xs
        scores = jnp.matmul(block, feats.T, precision=_HIGHEST) + bias[None, :]
        return jnp.max(jnp.where(_pair_mask(rows, k), scores, -jnp.inf), axis=-1)

    return lax.map(per_block, (blocks, row_ids)).reshape(-1)[:k]
