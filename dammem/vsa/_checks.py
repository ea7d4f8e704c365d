"""Argument checks shared by the public VSA functions: each error names the function, the argument, the value and
what is allowed.

Shape legend: ``N`` vector dimension (``N = 2^L`` for the KROP kinds), ``L`` angles, ``...`` batch axes.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dammem._butterfly import log2_size
from dammem._types import Array
from dammem._validate import check_floating, check_positive, is_concrete

__all__ = ["check_pair", "check_pow2_vectors", "check_theta", "check_signs", "check_index", "check_batch_beta"]


def check_pair(a: ArrayLike, b: ArrayLike, names: tuple[str, str], context: str) -> tuple[Array, Array]:
    """Two real ``(..., N)`` arrays with the same ``N`` and broadcasting batch axes, cast to their common dtype."""
    a = check_floating(a, names[0], context)
    b = check_floating(b, names[1], context)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"{context}: {names[0]} and {names[1]} must have shape (..., N), got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{context}: {names[0]} and {names[1]} must have the same vector size N (last axis), "
            f"got {a.shape[-1]} and {b.shape[-1]} (shapes {a.shape} and {b.shape})"
        )
    try:
        np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except ValueError as err:
        raise ValueError(
            f"{context}: the leading (batch) axes of {names[0]} {a.shape[:-1]} and {names[1]} {b.shape[:-1]} "
            "do not broadcast"
        ) from err
    dtype = jnp.result_type(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


def check_pow2_vectors(x: ArrayLike, context: str, name: str = "x") -> Array:
    """A real ``(..., N)`` array with ``N`` a power of two >= 2."""
    x = check_floating(x, name, context)
    if x.ndim < 1:
        raise ValueError(f"{context}: {name} must have shape (..., N) with N a power of two, got a scalar")
    log2_size(x.shape[-1], f"{name}.shape[-1]", context)
    return x


def check_theta(theta: ArrayLike, context: str, n: int | None = None) -> Array:
    """A real vector of ``L >= 1`` angles; when ``n`` is given, ``L`` must equal ``log2(n)``."""
    theta = check_floating(theta, "theta", context)
    if theta.ndim != 1 or theta.shape[0] < 1:
        raise ValueError(f"{context}: theta must be a vector of L >= 1 angles (shape (L,)), got shape {theta.shape}")
    if n is not None:
        k = log2_size(n, "x.shape[-1]", context)
        if theta.shape[0] != k:
            raise ValueError(
                f"{context}: theta has {theta.shape[0]} angles but the last axis of x has N = {n} = 2^{k}; "
                f"theta must have length log2(N) = {k}"
            )
    return theta


def check_signs(signs: ArrayLike | None, n: int, context: str) -> Array | None:
    """``None`` or an ``(N,)`` vector of +-1 (values checked when concrete and on the host: no device sync)."""
    if signs is None:
        return None
    signs = check_floating(signs, "signs", context)
    if signs.shape != (n,):
        raise ValueError(f"{context}: signs must have shape (N,) = ({n},) to match the codebook, got {signs.shape}")
    on_host = is_concrete(signs) and all(d.platform == "cpu" for d in signs.devices())
    if on_host and not np.all(np.abs(np.asarray(signs)) == 1):
        raise ValueError(f"{context}: signs must contain only +1 and -1 (see krop_signs), got other values")
    return signs


def check_index(idx: ArrayLike, n: int, context: str) -> Array:
    """Integer row indices of any shape, in ``[0, n)`` when concrete (traced indices are not checked)."""
    if isinstance(idx, (bool, np.bool_)) or (hasattr(idx, "dtype") and jnp.issubdtype(idx.dtype, jnp.bool_)):
        raise TypeError(f"{context}: idx must be integer row indices, got booleans")
    if isinstance(idx, numbers.Integral):
        arr = jnp.asarray(idx, dtype=jnp.int32)
    else:
        arr = jnp.asarray(idx)
        if not jnp.issubdtype(arr.dtype, jnp.integer):
            raise TypeError(f"{context}: idx must be integer row indices, got dtype {arr.dtype}")
    if is_concrete(arr):
        vals = np.asarray(arr)
        if vals.size and (vals.min() < 0 or vals.max() >= n):
            bad = vals[(vals < 0) | (vals >= n)].ravel()[:4].tolist()
            raise ValueError(f"{context}: idx must lie in [0, N) = [0, {n}), got out-of-range values {bad}")
    return arr


def check_batch_beta(beta: ArrayLike, lead: tuple[int, ...], context: str) -> Array:
    """An inverse temperature > 0 (checked when concrete), broadcast to the batch shape ``lead`` (a per-query beta)."""
    beta = check_floating(beta, "beta", context)
    check_positive(beta, "beta", context)
    try:
        return jnp.broadcast_to(beta, lead)
    except ValueError as err:
        raise ValueError(
            f"{context}: beta must be a scalar or broadcastable to the batch shape {lead}, got shape {beta.shape}"
        ) from err
