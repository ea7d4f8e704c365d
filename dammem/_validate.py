"""Argument checks shared by the public functions: every error names the argument, the value and what is allowed.

Each check takes ``where``, the name of the public function that calls it, and starts its message with it.

Shape legend: ``K`` memories, ``D`` pattern dimension (:mod:`dammem._types`).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike


def is_concrete(x: object) -> bool:
    """True when ``x`` holds a value now (not an abstract tracer inside jit/vmap/grad)."""
    try:
        np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False
    return True


def check_floating(x: ArrayLike, name: str, where: str) -> Array:
    """Convert to a JAX array; integers and bools become float32; complex is refused.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem._validate import check_floating
      >>> check_floating(jnp.array([1, 2]), "x", "f").dtype
      dtype('float32')
      >>> check_floating(jnp.array([1j]), "x", "f")
      Traceback (most recent call last):
      TypeError: f: x must be real, got dtype complex64
    """
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"{where}: {name} must be an array of real numbers, got {type(x).__name__}") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{where}: {name} must be real, got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.float32)
    return arr


def check_axis(axis: int, ndim: int, where: str) -> int:
    """An int axis in ``[-ndim, ndim)``, returned non-negative."""
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"{where}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: axis {axis} is out of range for an array with {ndim} dims")
    return int(axis) % ndim


def check_positive(value: ArrayLike, name: str, where: str, *, allow_zero: bool = False) -> ArrayLike:
    """For static or concrete scalars: value > 0 (or >= 0). Traced values pass unchecked."""
    if not is_concrete(value):
        return value
    arr = np.asarray(value, dtype=np.float64)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad) or np.any(~np.isfinite(arr)):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where}: {name} must be finite and {rule}, got {arr.ravel()[:4].tolist()}")
    return value


def check_int(value: int, name: str, where: str, *, minimum: int = 0) -> int:
    """A Python or NumPy integer (not a bool) >= ``minimum``, returned as an int.

    Example:
      >>> from dammem._validate import check_int
      >>> check_int(3, "steps", "f", minimum=1)
      3
      >>> check_int(0, "steps", "f", minimum=1)
      Traceback (most recent call last):
      ValueError: f: steps must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_memories_query(
    memories: ArrayLike, x: ArrayLike, where: str, *, min_memories: int = 0
) -> tuple[Array, Array]:
    """Stored patterns (K, D) and ONE query (D,) with matching D; batches are refused (callers vmap)."""
    memories = check_floating(memories, "memories", where)
    x = check_floating(x, "x", where)
    if memories.ndim != 2:
        raise ValueError(f"{where}: memories must have shape (K, D), got {tuple(memories.shape)}")
    if x.ndim != 1:
        raise ValueError(f"{where}: x must be one query of shape (D,), got {tuple(x.shape)}; use jax.vmap for batches")
    if memories.shape[1] != x.shape[0]:
        raise ValueError(f"{where}: memories have D={memories.shape[1]} but x has D={x.shape[0]}")
    if memories.shape[0] < min_memories:
        raise ValueError(f"{where}: memories must hold at least {min_memories} pattern(s), got K={memories.shape[0]}")
    return memories, x


def check_clamp(clamp: ArrayLike | None, shape: tuple[int, ...], where: str) -> Array | None:
    """A boolean clamp mask (True = visible) broadcast to ``shape``; ``None`` stays ``None``.

    Example:
      >>> check_clamp([True, False], (3, 2), "f").shape
      (3, 2)
    """
    if clamp is None:
        return None
    clamp = jnp.asarray(clamp)
    if clamp.dtype != jnp.bool_:
        raise ValueError(f"{where}: clamp must be a boolean mask (True = visible), got dtype {clamp.dtype}")
    try:
        return jnp.broadcast_to(clamp, shape)
    except ValueError as err:
        raise ValueError(
            f"{where}: clamp of shape {tuple(clamp.shape)} does not broadcast to x's shape {tuple(shape)}"
        ) from err
