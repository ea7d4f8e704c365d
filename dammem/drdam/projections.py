"""Random projections ``omega`` for random features, applied chunk by chunk so no ``Y x D`` array is ever formed.

Shape legend: ``Y`` random features (rows of the projection), ``D`` pattern dimension, ``P`` input width of the
projection (``D``, or ``D`` zero-padded to a power of two for ``structured``), ``G`` rows of one generation block,
``R`` rows of one compute chunk (a multiple of ``G``), ``...`` any leading batch axes.

Every kind draws rows ``omega_a`` whose marginal law is (close to) ``N(0, I_D)``, as the random features of
Rahimi & Recht (2007) need:

- ``gaussian``: i.i.d. ``N(0, I_D)`` rows. Block ``j`` (rows ``j G ... j G + G - 1``) is regenerated on demand as
  ``jax.random.normal(jax.random.fold_in(key, j), (G, D))``; only the key is stored, and a chunk of ``R`` rows is
  ``R / G`` consecutive blocks, so the rows do not depend on the chunk size.
- ``orthogonal``: block-orthogonal rows (Yu et al. (2016), ORF): block ``j`` is ``G <= D`` rows of a Haar-random
  orthogonal matrix (Gram-Schmidt of Gaussian rows), each row scaled by an independent ``chi(D)`` norm, so every
  row is still ``N(0, I_D)`` while rows of one block are exactly orthogonal (lower variance). Regenerated from
  ``fold_in(key, j)`` like ``gaussian``, at ``O(G D^2)`` per block: meant for small ``D``; use ``structured`` for
  large ``D``.
- ``structured``: structured orthogonal random features (Yu et al. (2016), Sec. 4, SORF): block ``j`` is
  ``diag(r_j) H S_{j,1} H S_{j,2} H S_{j,3}`` with ``H`` the normalised ``P x P`` Walsh-Hadamard matrix, ``S`` random
  +-1 diagonals and ``r_j`` independent ``chi(P)`` row norms (the norms of Gaussian rows, in place of the fixed
  ``sqrt(P)`` of Yu et al.). Inputs are zero-padded from ``D`` to ``P = G``, a power of two. Applying a block costs
  ``O(P log P)`` with the shared Walsh-Hadamard butterfly (``dammem._butterfly.fwht``, which folds ``jax.vmap``
  axes into its rows), so a query costs ``O(Y log P)`` time and ``O(Y + D)`` memory; the signs (``int8``) and norms
  are drawn once and stored (``O(Y)``), so nothing is sampled at run time.
- ``materialized``: the ``Y x D`` matrix of the ``gaussian`` kind (same key and block size, same rows), stored; the
  baseline for small problems.

References:
  - A. Rahimi, B. Recht (2007). Random Features for Large-Scale Kernel Machines. NeurIPS 2007.
  - F. X. Yu, A. T. Suresh, K. Choromanski, D. Holtmann-Rice, S. Kumar (2016). Orthogonal Random Features.
    NeurIPS 2016 (Sec. 3 ORF, Sec. 4 SORF).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from dammem._butterfly import fwht
from dammem._types import Array

__all__ = [
    "PROJECTIONS",
    "ChunkOperator",
    "chunk_operator",
    "check_block_size",
    "default_block_size",
    "default_chunk_rows",
    "input_dim",
    "sample_params",
]

PROJECTIONS = ("gaussian", "orthogonal", "structured", "materialized")

_HIGHEST = lax.Precision.HIGHEST  # random projections must not run as TF32/bf16 passes on accelerators
_GAUSSIAN_BLOCK = 128  # rows per generation block of the gaussian (and materialized) kind
_CHUNK_ELEMENTS = 1 << 21  # dense kinds: about this many omega entries (8 MB in float32) per compute chunk
_STRUCTURED_CHUNK_ROWS = 1 << 12  # structured: rows per compute chunk (one 4096-row block: fastest on a CPU)


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def default_block_size(projection: str, dim: int) -> int:
    """Rows per generation block: 128 (gaussian, materialized), ``D`` (orthogonal), ``D`` padded to 2^k (structured)."""
    if projection == "orthogonal":
        return dim
    if projection == "structured":
        return _next_power_of_two(dim)
    return _GAUSSIAN_BLOCK


def check_block_size(projection: str, dim: int, block_size, context: str) -> int:
    """Validate a user block size for ``projection`` (``None``: the default); errors name the value and the rule."""
    if block_size is None:
        return default_block_size(projection, dim)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{context}: block_size must be a positive int or None, got {block_size!r}")
    if projection == "orthogonal" and block_size > dim:
        raise ValueError(
            f"{context}: block_size must be <= dim = {dim} for projection='orthogonal' (at most D orthogonal rows "
            f"per block), got {block_size}"
        )
    if projection == "structured" and (block_size & (block_size - 1) or block_size < dim):
        raise ValueError(
            f"{context}: block_size must be a power of two >= dim = {dim} for projection='structured' (the "
            f"Walsh-Hadamard blocks are P x P), got {block_size}; e.g. {_next_power_of_two(dim)}"
        )
    return block_size


def input_dim(projection: str, dim: int, block_size: int) -> int:
    """Width ``P`` of the vectors the projection acts on: ``block_size`` for structured, else ``dim``."""
    return block_size if projection == "structured" else dim


def default_chunk_rows(projection: str, dim: int, num_features: int, block_size: int) -> int:
    """Default compute chunk: all rows (materialized), ~2^12 rows (structured), ~2^21 omega entries (others)."""
    blocks = -(-num_features // block_size)
    if projection == "materialized":
        per_chunk = blocks
    elif projection == "structured":
        per_chunk = max(1, _STRUCTURED_CHUNK_ROWS // block_size)
    else:
        per_chunk = max(1, _CHUNK_ELEMENTS // (dim * block_size))
    return min(per_chunk, blocks) * block_size


def _gaussian_block(key: Array, j, block_size: int, dim: int, dtype) -> Array:
    return jax.random.normal(jax.random.fold_in(key, j), (block_size, dim), dtype)


def _orthonormal_rows(g: Array) -> Array:
    """Gram-Schmidt of the rows of ``g`` (G, D), each step repeated once for stability: the first G rows of a
    Haar-random orthogonal matrix when ``g`` is Gaussian (the Q of its QR with a positive diagonal R). Pure JAX, no
    LAPACK call (which can deadlock against XLA's thread pool on a loaded CPU)."""

    def step(i, q):
        v = g[i]
        for _ in range(2):
            v = v - jnp.matmul(jnp.matmul(q, v, precision=_HIGHEST), q, precision=_HIGHEST)
        return q.at[i].set(v / jnp.linalg.norm(v))

    return lax.fori_loop(0, g.shape[0], step, jnp.zeros_like(g))


def _orthogonal_block(key: Array, j, block_size: int, dim: int, dtype) -> Array:
    k_dir, k_norm = jax.random.split(jax.random.fold_in(key, j))
    q = _orthonormal_rows(jax.random.normal(k_dir, (block_size, dim), dtype))
    g = jax.random.normal(k_norm, (block_size, dim), dtype)
    norms = jnp.sqrt(jnp.sum(g * g, axis=-1))  # chi(D): the norms of Gaussian rows, exactly
    return norms[:, None] * q


def sample_params(projection: str, key: Array, dim: int, num_features: int, block_size: int) -> dict[str, Array]:
    """The arrays a projection stores: ``key`` (gaussian, orthogonal), ``signs`` and ``norms`` (structured),
    ``matrix`` (materialized). Floats use JAX's default float dtype."""
    dtype = jnp.result_type(float)
    if projection in ("gaussian", "orthogonal"):
        return {"key": key}
    blocks = -(-num_features // block_size)
    if projection == "materialized":  # block by block, so only one block of random bits exists at a time
        rows = lax.map(lambda j: _gaussian_block(key, j, block_size, dim, dtype), jnp.arange(blocks))
        rows = rows.reshape(blocks * block_size, dim)
        return {"matrix": rows if blocks * block_size == num_features else rows[:num_features]}
    k_signs, k_norms = jax.random.split(key)
    signs = jax.random.rademacher(k_signs, (blocks, 3, block_size), jnp.int8)
    norms = jnp.sqrt(jax.random.chisquare(k_norms, block_size, (num_features,), dtype))
    return {"signs": signs, "norms": norms}


class ChunkOperator(NamedTuple):
    """The rows ``omega_a``, ``a`` in one compute chunk, as two linear maps.

    Attributes:
      apply: ``z (..., P) -> (..., R)``, the projections ``<omega_a, z>``.
      apply_t: ``c (..., R) -> (..., P)``, the transpose ``sum_a c_a omega_a``.
    """

    apply: Callable[[Array], Array]
    apply_t: Callable[[Array], Array]


def _dense(omega: Array) -> ChunkOperator:
    return ChunkOperator(
        lambda z: jnp.matmul(z, omega.T, precision=_HIGHEST),
        lambda c: jnp.matmul(c, omega, precision=_HIGHEST),
    )


def _structured(signs: Array, norms: Array) -> ChunkOperator:
    """Blocks ``diag(r) H S_1 H S_2 H S_3``; ``signs`` (nb, 3, P), ``norms`` (nb, P)."""
    nb, _, p = signs.shape

    def apply(z):
        u = z[..., None, :] * signs[:, 2]
        u = fwht(u) * signs[:, 1]
        u = fwht(u) * signs[:, 0]
        u = fwht(u) * norms
        return u.reshape(*z.shape[:-1], nb * p)

    def apply_t(c):
        v = c.reshape(*c.shape[:-1], nb, p) * norms
        v = fwht(v) * signs[:, 0]
        v = fwht(v) * signs[:, 1]
        v = fwht(v) * signs[:, 2]
        return v.sum(-2)

    return ChunkOperator(apply, apply_t)


def chunk_operator(
    projection: str,
    params: dict[str, Array],
    dim: int,
    num_features: int,
    block_size: int,
    index,
    rows: int,
    dtype,
) -> ChunkOperator:
    """The rows ``index * R ... index * R + R - 1`` of the projection (rows past ``Y`` may be anything; callers
    give them zero weight).

    Args:
      projection: one of :data:`PROJECTIONS`.
      params: the arrays of :func:`sample_params`.
      dim, num_features, block_size: ``D``, ``Y``, ``G`` (static).
      index: the chunk index (a Python int, or traced inside a scan).
      rows: ``R``, a multiple of ``G`` (static).
      dtype: the floating dtype of the computation.
    """
    nb = rows // block_size
    blocks = index * nb + jnp.arange(nb)
    if projection == "gaussian":
        omega = jax.vmap(lambda j: _gaussian_block(params["key"], j, block_size, dim, dtype))(blocks)
        return _dense(omega.reshape(rows, dim))
    if projection == "orthogonal":
        omega = jax.vmap(lambda j: _orthogonal_block(params["key"], j, block_size, dim, dtype))(blocks)
        return _dense(omega.reshape(rows, dim))
    if projection == "materialized":
        matrix = params["matrix"].astype(dtype)
        if isinstance(index, int) and index == 0 and rows >= num_features:  # one chunk: use the matrix as it is
            pad = rows - num_features
            return ChunkOperator(
                lambda z: jnp.pad(jnp.matmul(z, matrix.T, precision=_HIGHEST), [(0, 0)] * (z.ndim - 1) + [(0, pad)]),
                lambda c: jnp.matmul(c[..., :num_features], matrix, precision=_HIGHEST),
            )
        idx = index * rows + jnp.arange(rows)
        return _dense(jnp.take(matrix, idx, axis=0, mode="fill", fill_value=0))
    if num_features % rows == 0:  # every chunk is whole: plain slices (a gather with bounds checks is fused into
        # every consumer of the norms and signs, and keeps those loops from being vectorised)
        signs = lax.dynamic_slice_in_dim(params["signs"], index * nb, nb).astype(dtype)
        norms = lax.dynamic_slice_in_dim(params["norms"], index * rows, rows).astype(dtype)
    else:
        signs = jnp.take(params["signs"], blocks, axis=0, mode="fill", fill_value=0).astype(dtype)
        norms = jnp.take(params["norms"], index * rows + jnp.arange(rows), mode="fill", fill_value=0).astype(dtype)
    return _structured(signs, norms.reshape(nb, block_size))
