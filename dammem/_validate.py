"""Argument checks shared by the public functions: every error names the argument, the value and what is allowed.

Each check takes ``context``, the name of the public function that calls it, and starts its message with it.

Values are checked where they are known: a static argument always, an array argument when it holds a value (also a
constant passed into a caller's ``jit``: the checks look at the argument itself, before any conversion turns it into
a tracer). A traced value passes unchecked; the functions that take one say what an out-of-range value gives
(:func:`nan_unless_positive`: NaN, never a plausible finite answer).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``H`` heads (:mod:`dammem._types`).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike


def is_concrete(x: object) -> bool:
    """True when ``x`` holds a value this process can read now: not an abstract tracer inside jit/vmap/grad, and not
    an array split over the devices of several processes (``jax.distributed``), whose whole value no single process
    holds; checks of such values are skipped as for traced ones."""
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and not x.is_fully_addressable:
        return bool(x.is_fully_replicated)
    try:
        np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# Arrays and scalars
# ----------------------------------------------------------------------------------------------------------------


def check_floating(x: ArrayLike, name: str, context: str) -> Array:
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
        raise TypeError(f"{context}: {name} must be an array of real numbers, got {type(x).__name__}") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{context}: {name} must be real, got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.float32)
    return arr


def check_real(value: ArrayLike, name: str, context: str) -> Array:
    """A real number or array of any shape, as a JAX array of its own float or integer dtype.

    Bools, complex values and non-numbers are refused (``TypeError``).

    Example:
      >>> check_real([1.5, 2.0], "alpha", "f").shape
      (2,)
      >>> check_real(True, "alpha", "f")
      Traceback (most recent call last):
      TypeError: f: alpha must be a real number or array, got dtype bool
    """
    try:
        arr = jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"{context}: {name} must be a real number or array, got {type(value).__name__}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"{context}: {name} must be a real number or array, got dtype {arr.dtype}")
    return arr


def check_scalar(value: ArrayLike, name: str, context: str) -> ArrayLike:
    """A real scalar: a Python or NumPy number (returned as a Python float) or a 0-d array (integers become float32).

    Python numbers stay Python floats so they stay weakly typed (they never promote bfloat16 scores to float32).

    Example:
      >>> check_scalar(2, "beta", "f")
      2.0
      >>> check_scalar([1.0, 2.0], "beta", "f")
      Traceback (most recent call last):
      ValueError: f: beta must be a scalar, got an array of shape (2,)
    """
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    arr = check_real(value, name, context)
    if arr.ndim != 0:
        raise ValueError(f"{context}: {name} must be a scalar, got an array of shape {tuple(arr.shape)}")
    return arr if jnp.issubdtype(arr.dtype, jnp.floating) else arr.astype(jnp.float32)


def check_per_head(value: ArrayLike, name: str, context: str, heads: int) -> Array:
    """A real scalar or one value per head, shape ``()`` or ``(H,)``, as a JAX array.

    Example:
      >>> check_per_head([1.0, 2.0], "beta", "f", 3)
      Traceback (most recent call last):
      ValueError: f: beta must be a scalar or have one value per head, shape (3,); got shape (2,)
    """
    arr = check_real(value, name, context)
    if arr.shape not in ((), (heads,)):
        raise ValueError(
            f"{context}: {name} must be a scalar or have one value per head, shape ({heads},); got shape {arr.shape}"
        )
    return arr


def check_axis(axis: int, ndim: int, context: str) -> int:
    """An int axis in ``[-ndim, ndim)``, returned non-negative."""
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"{context}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{context}: axis {axis} is out of range for an array with {ndim} dims")
    return int(axis) % ndim


def check_memories_query(
    memories: ArrayLike, x: ArrayLike, context: str, *, min_memories: int = 0
) -> tuple[Array, Array]:
    """Stored patterns (K, D) and ONE query (D,) with matching D; batches are refused (callers vmap)."""
    memories = check_floating(memories, "memories", context)
    x = check_floating(x, "x", context)
    if memories.ndim != 2:
        raise ValueError(f"{context}: memories must have shape (K, D), got {tuple(memories.shape)}")
    if x.ndim != 1:
        raise ValueError(f"{context}: x must be one query of shape (D,), got {tuple(x.shape)}; use jax.vmap for batches")
    if memories.shape[1] != x.shape[0]:
        raise ValueError(f"{context}: memories have D={memories.shape[1]} but x has D={x.shape[0]}")
    if memories.shape[0] < min_memories:
        raise ValueError(f"{context}: memories must hold at least {min_memories} pattern(s), got K={memories.shape[0]}")
    return memories, x


# ----------------------------------------------------------------------------------------------------------------
# Values: positive, beta, alpha
# ----------------------------------------------------------------------------------------------------------------


def check_positive(value: ArrayLike, name: str, context: str, *, allow_zero: bool = False) -> ArrayLike:
    """For static or concrete values of any shape: every value finite and > 0 (or >= 0). Traced values pass.

    Example:
      >>> check_positive(-1.0, "step_size", "f")
      Traceback (most recent call last):
      ValueError: f: step_size must be finite and > 0, got [-1.0]
    """
    if not is_concrete(value):
        return value
    arr = np.asarray(value, dtype=np.float64)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad) or np.any(~np.isfinite(arr)):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{context}: {name} must be finite and {rule}, got {arr.ravel()[:4].tolist()}")
    return value


def check_beta(beta: ArrayLike, context: str, *, heads: int | None = None) -> ArrayLike:
    """An inverse temperature: a real scalar (or, with ``heads``, one per head ``(H,)``); finite and > 0 when concrete.

    A traced beta passes; the energies and updates that take one turn a non-positive value into NaN
    (:func:`nan_unless_positive`). The scalar form returns :func:`check_scalar`'s value (a Python number stays a
    Python float), the per-head form a JAX array.

    Example:
      >>> check_beta(0.0, "f")
      Traceback (most recent call last):
      ValueError: f: beta must be finite and > 0, got [0.0]
      >>> check_beta([1.0, 2.0], "f", heads=2).shape
      (2,)
    """
    arr = check_scalar(beta, "beta", context) if heads is None else check_per_head(beta, "beta", context, heads)
    check_positive(beta, "beta", context)  # the argument itself: a constant stays concrete inside a caller's jit
    return arr


def check_alpha_range(alpha: ArrayLike, context: str, *, allow_one: bool = False) -> ArrayLike:
    """For a concrete alpha of any shape: every value in (1, 2] (``allow_one``: [1, 2]). Traced values pass.

    The separations give NaN for a traced alpha out of range.

    Example:
      >>> check_alpha_range([1.5, 2.5], "f")
      Traceback (most recent call last):
      ValueError: f: alpha must lie in (1, 2], got [2.5]
    """
    if is_concrete(alpha):
        vals = np.asarray(alpha, dtype=np.float64)
        above_one = vals >= 1.0 if allow_one else vals > 1.0
        bad = ~(above_one & (vals <= 2.0))
        if np.any(bad):
            allowed = "[1, 2]" if allow_one else "(1, 2]"
            raise ValueError(f"{context}: alpha must lie in {allowed}, got {vals[bad].ravel()[:4].tolist()}")
    return alpha


def check_alpha(alpha: ArrayLike, context: str, *, allow_one: bool = False, heads: int | None = None) -> ArrayLike:
    """The Tsallis alpha of a separation: a real scalar (or, with ``heads``, one per head ``(H,)``) in (1, 2]
    (``allow_one``: [1, 2], where 1 is softmax) when concrete.

    Returns :func:`check_scalar`'s value (scalar form) or a JAX array (per-head form).

    Example:
      >>> check_alpha(1.0, "f")
      Traceback (most recent call last):
      ValueError: f: alpha must lie in (1, 2], got [1.0]
      >>> check_alpha(1.0, "f", allow_one=True)
      1.0
    """
    if alpha is None:
        allowed = "[1, 2]" if allow_one else "(1, 2]"
        raise TypeError(f"{context}: alpha is required: a real number in {allowed}, got None")
    arr = check_scalar(alpha, "alpha", context) if heads is None else check_per_head(alpha, "alpha", context, heads)
    check_alpha_range(alpha, context, allow_one=allow_one)
    return arr


def check_fraction(value: ArrayLike, name: str, context: str) -> ArrayLike:
    """A real scalar (as :func:`check_scalar`) that lies in [0, 1] when concrete; a traced value passes.

    Example:
      >>> check_fraction(1.5, "visible_fraction", "f")
      Traceback (most recent call last):
      ValueError: f: visible_fraction must lie in [0, 1], got 1.5
    """
    checked = check_scalar(value, name, context)
    if is_concrete(value):
        v = float(np.asarray(value, dtype=np.float64))
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{context}: {name} must lie in [0, 1], got {v}")
    return checked


def nan_unless_positive(beta: ArrayLike, value: Array) -> Array:
    """``value`` where ``beta > 0``, NaN elsewhere: a traced ``beta <= 0`` (not checkable at trace time) gives NaN.

    A concrete beta was checked by :func:`check_beta` (or :func:`check_positive`) and passes through. A
    multiplication rather than a ``where``, so that derivatives turn NaN as well (descent does not stall silently).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> jax.jit(lambda b: nan_unless_positive(b, jnp.ones(2)))(-1.0).tolist()
      [nan, nan]
    """
    if is_concrete(beta):
        return value
    return value * jnp.where(jnp.asarray(beta) > 0, 1.0, jnp.nan).astype(value.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Static configuration: ints, floats, bools
# ----------------------------------------------------------------------------------------------------------------


def check_int(value: int, name: str, context: str, *, minimum: int = 0) -> int:
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
        raise TypeError(f"{context}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{context}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(
    value: float | None,
    name: str,
    context: str,
    *,
    positive: bool = False,
    allow_zero: bool = False,
    below: float | None = None,
    optional: bool = False,
) -> float | None:
    """A static real number (Python or NumPy, not a bool), finite, returned as a Python float.

    ``positive``: > 0; ``allow_zero``: >= 0; ``below``: also < ``below``; ``optional``: None passes (and is
    returned).

    Example:
      >>> check_float(0.5, "dropout_rate", "f", allow_zero=True, below=1.0)
      0.5
      >>> check_float(0.0, "eps", "f", positive=True)
      Traceback (most recent call last):
      ValueError: f: eps must be a finite float > 0, got 0.0
    """
    if optional and value is None:
        return None
    low = 0.0 if (positive or allow_zero) else -np.inf
    if below is not None:
        rule = f"a float in {'[' if allow_zero else '('}{low:g}, {below:g})"
    else:
        rule = "a finite float" + (" >= 0" if allow_zero else " > 0" if positive else "")
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v >= low if allow_zero else v > low) and (below is None or v < below)
    if not ok:
        raise ValueError(f"{context}: {name} must be {'None or ' if optional else ''}{rule}, got {value!r}")
    return float(value)


def check_bool(value: bool, name: str, context: str) -> bool:
    """A Python bool (static switches: ints and arrays are refused).

    Example:
      >>> check_bool(1, "learn_beta", "f")
      Traceback (most recent call last):
      TypeError: f: learn_beta must be a bool, got 1
    """
    if not isinstance(value, bool):
        raise TypeError(f"{context}: {name} must be a bool, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------------------


def check_mask(
    mask: ArrayLike | None,
    shape: tuple[int, ...],
    context: str,
    *,
    name: str = "mask",
    meaning: str = "True = attend",
    target: str = "shape",
    nonzero: bool = False,
) -> Array | None:
    """A mask that broadcasts to ``shape`` (its broadcast with ``shape`` is ``shape``), returned as given (not
    broadcast); ``None`` stays ``None``.

    Masks say True = visible / attend / keep everywhere. A non-boolean dtype is refused (``TypeError``) unless
    ``nonzero``, which reads any dtype as ``mask != 0`` (Flax's float masks). ``target`` names ``shape`` in the
    message (e.g. ``"z of shape"``).

    Example:
      >>> check_mask([True, False], (3, 2), "f").shape
      (2,)
      >>> check_mask([[True], [False]], (2,), "f")
      Traceback (most recent call last):
      ValueError: f: mask of shape (2, 1) does not broadcast to shape (2,)
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        if not nonzero:
            raise TypeError(f"{context}: {name} must be a boolean mask ({meaning}), got dtype {mask.dtype}")
        mask = mask != 0
    try:
        full = np.broadcast_shapes(mask.shape, tuple(shape))
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"{context}: {name} of shape {tuple(mask.shape)} does not broadcast to {target} {tuple(shape)}")
    return mask


def check_clamp(clamp: ArrayLike | None, shape: tuple[int, ...], context: str) -> Array | None:
    """A boolean clamp mask (True = visible) broadcast to ``shape``; ``None`` stays ``None``.

    Example:
      >>> check_clamp([True, False], (3, 2), "f").shape
      (3, 2)
    """
    clamp = check_mask(clamp, shape, context, name="clamp", meaning="True = visible", target="x's shape")
    return None if clamp is None else jnp.broadcast_to(clamp, shape)


def check_bool_vector(
    mask: ArrayLike | None, size: int, context: str, *, name: str = "mask", label: str = "K", meaning: str
) -> Array | None:
    """A boolean vector of exactly ``size`` entries (one per memory or coordinate, no broadcasting), or ``None``.

    ``label`` names the size in the message (``K`` memories, ``D`` coordinates); ``meaning`` says what True means.

    Example:
      >>> check_bool_vector([True, False], 3, "f", meaning="True = memory present")
      Traceback (most recent call last):
      ValueError: f: mask must be booleans of shape (K,) = (3,) (True = memory present), got bool (2,)
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_ or mask.shape != (size,):
        raise ValueError(
            f"{context}: {name} must be booleans of shape ({label},) = ({size},) ({meaning}), got {mask.dtype} "
            f"{tuple(mask.shape)}"
        )
    return mask
