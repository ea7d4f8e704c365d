"""Unvalidated kernels of the U-Hop modules (public names in a private module; the public wrappers validate).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width.

Pair reductions run over blocks of ``chunk_size`` rows of the (K, K) pair matrix, one block at a time in a
``lax.scan`` that reduces in its carry; a block is at most ``chunk_size x K`` scores and never a K x K x F tensor.
The separation loss has a custom derivative (:func:`pair_reduction`) that recomputes the blocks one at a time in the
backward pass as well.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from dammem._types import Array

_HIGHEST = lax.Precision.HIGHEST


def unit_rows(v: Array) -> Array:
    """``v / ||v||`` along the last axis; zero rows stay zero, with a finite (zero) gradient there. A row holding
    NaN or inf becomes NaN (only an exact zero row is special-cased: ``NaN > 0`` is False, so testing ``sq > 0``
    would silently zero it)."""
    sq = jnp.sum(jnp.square(v), axis=-1, keepdims=True)
    zero = sq == 0
    return jnp.where(zero, 0.0, v / jnp.sqrt(jnp.where(zero, 1.0, sq)))


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


def _block_terms(block, rows, feats, sq_norms, temperature, loss: str) -> tuple[Array, Array]:
    """``(g, c)`` (c, K) for one block of rows: the pair log-terms (``-inf`` off the real pairs) and dot products."""
    cos = jnp.matmul(block, feats.T, precision=_HIGHEST)
    # ||u_i - u_j||^2 = |u_i|^2 + |u_j|^2 - 2 c_ij, clipped at 0 against rounding
    sq_distance = jnp.maximum(jnp.sum(jnp.square(block), -1, keepdims=True) + sq_norms[None, :] - 2.0 * cos, 0.0)
    terms = pair_log_terms(cos, sq_distance, temperature, loss)
    return jnp.where(_pair_mask(rows, feats.shape[0]), terms, -jnp.inf), cos


def _reduce_pairs(feats: Array, temperature, loss: str, chunk_size: int):
    """The reduction of the pair log-terms and what its derivative needs: ``(value, (logsumexp or max, sum))``."""
    sq_norms = jnp.sum(jnp.square(feats), axis=-1)  # 1, or 0 for a zero feature vector
    blocks, row_ids, _ = _blocks(feats, chunk_size)

    def body(carry, xs):
        m, s = carry
        g, _ = _block_terms(*xs, feats, sq_norms, temperature, loss)
        block_max = jnp.max(g)
        m_new = jnp.maximum(m, block_max)
        if loss == "max":
            return (m_new, s), None
        return (m_new, s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(g - m_new))), None

    init = (jnp.asarray(-jnp.inf, feats.dtype), jnp.zeros((), feats.dtype))
    (m, s), _ = lax.scan(body, init, (blocks, row_ids))
    if loss == "max":
        return m, (m, s)
    k = feats.shape[0]
    lse = m + jnp.log(s)
    return lse - math.log(k * (k - 1)), (lse, s)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def pair_reduction(feats: Array, temperature, loss: str, chunk_size: int) -> Array:
    """``log mean_{i != j} exp(g_ij)`` (``"average"``, ``"deep"``) or ``max_{i != j} g_ij`` (``"max"``) of the pair
    log-terms of the rows of ``feats`` (K, F) (:func:`pair_log_terms`), one block of rows at a time.

    Its derivative (a custom VJP) uses the symmetry ``g_ij = g_ji``: with ``w_ij = dF/dg_ij`` (the softmax weights of
    the pairs, or the indicator of the maximal pairs, within float32 rounding, over their count) the gradient is
    ``dF/du_i = 2 sum_j w_ij dg_ij/du_i``, one (c, K) x (K, F) product per block, recomputed block by block, where
    automatic differentiation would take two and keep every block for the backward pass. ``dg_ij/du_i`` is
    ``-2 t (u_i - u_j)`` for the distance terms and ``4 t c_ij u_j`` for ``"deep"``.
    """
    return _reduce_pairs(feats, temperature, loss, chunk_size)[0]


def _pair_reduction_fwd(feats, temperature, loss, chunk_size):
    value, stats = _reduce_pairs(feats, temperature, loss, chunk_size)
    return value, (feats, temperature, stats)


def _pair_reduction_bwd(loss, chunk_size, residuals, ct):
    feats, temperature, (level, _) = residuals
    k, width = feats.shape
    sq_norms = jnp.sum(jnp.square(feats), axis=-1)
    blocks, row_ids, _ = _blocks(feats, chunk_size)
    # "max": the pairs within a few float32 roundings of the maximum share the subgradient (the blocks are recomputed
    # here, possibly with other roundings than in the forward pass); their count normalises the sum at the end
    slack = 4.0 * jnp.finfo(feats.dtype).eps * (1.0 + jnp.abs(level))

    def per_block(xs):
        block, rows = xs
        g, cos = _block_terms(block, rows, feats, sq_norms, temperature, loss)
        if loss == "max":
            w = (g >= level - slack).astype(feats.dtype)
        else:
            w = jnp.exp(g - level)  # the pairs' softmax weights: exp(g - logsumexp)
        if loss == "deep":
            grad = 8.0 * temperature * jnp.matmul(w * cos, feats, precision=_HIGHEST)
        else:
            rowsum = jnp.sum(w, -1, keepdims=True)
            grad = -4.0 * temperature * (rowsum * block - jnp.matmul(w, feats, precision=_HIGHEST))
        weighted = jnp.sum(jnp.where(w > 0, w * g, 0.0))  # every term is t times a function of c: dF/dt = sum w g / t
        return grad, weighted, jnp.sum(w)

    grads, weighted, total = lax.map(per_block, (blocks, row_ids))
    scale = ct / jnp.sum(total) if loss == "max" else ct  # softmax weights already sum to 1
    return scale * grads.reshape(-1, width)[:k], scale * jnp.sum(weighted) / temperature


pair_reduction.defvjp(_pair_reduction_fwd, _pair_reduction_bwd)


def separation_loss(weight: Array, memories: Array, temperature, loss: str, chunk_size: int) -> Array:
    """The separation loss over the ordered pairs ``i != j`` of the unit features ``unit(Xi W^T)`` (see
    :func:`dammem.uhop.separation_loss` and :func:`pair_reduction`)."""
    return pair_reduction(features(weight, memories), temperature, loss, chunk_size)


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
