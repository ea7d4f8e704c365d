"""Constructor checks of :class:`dammem.nn.Hopfield`: each returns the checked static configuration or raises an
error naming the layer, the argument, the value and what is allowed."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike
from dammem._validate import check_alpha, check_beta, check_bool, check_float
from dammem.separations import SEPARATIONS, resolve_separation


def static_values(value: ArrayLike) -> float | tuple[float, ...]:
    """A checked scalar or per-head value as Python floats (static configuration). Read from the caller's value, not
    from the check's result: under a trace (``nnx.eval_shape``, a jitted constructor) the latter is a tracer."""
    values = np.asarray(value, dtype=np.float64)
    return float(values) if values.ndim == 0 else tuple(float(x) for x in values)


def check_layer_beta(beta, learn_beta: bool, heads: int, width: int, context: str) -> float | tuple[float, ...]:
    check_bool(learn_beta, "learn_beta", context)
    if beta is None:
        return 1.0 / math.sqrt(width)
    check_beta(beta, context, heads=heads)
    return static_values(beta)


def check_layer_separation(separation, alpha, learn_alpha: bool, heads: int, context: str):
    """The alpha values of a separation that takes one (Python floats), else None; the name by the registry."""
    check_bool(learn_alpha, "learn_alpha", context)
    spec = resolve_separation(separation, alpha, context)
    if spec is None or not spec.takes_alpha:
        if learn_alpha:
            takers = [name for name, entry in SEPARATIONS.items() if entry.takes_alpha]
            raise ValueError(
                f"{context}: learn_alpha is only used with a separation that takes alpha ({takers}), got separation="
                f"{separation!r}"
            )
        return None
    check_alpha(alpha, context, heads=heads)
    values = static_values(alpha)
    if learn_alpha and np.any(np.asarray(values) >= 2.0):
        raise ValueError(
            f"{context}: alpha must lie in (1, 2) (a learnable alpha = 1 + sigmoid(a) never reaches 2), got {alpha!r}"
        )
    return values


def check_attention_fn(attention_fn, separation, beta, learn_beta: bool, dropout_rate, context: str) -> str | None:
    """The convention of a caller's ``attention_fn``: ``"flax"`` (``nnx.dot_product_attention``'s keywords) or
    ``"jax"`` (``jax.nn.dot_product_attention``'s ``scale``); None without one. Refuses what it cannot apply."""
    if attention_fn is None:
        return None
    if not callable(attention_fn):
        raise TypeError(f"{context}: attention_fn must be a function or None, got {type(attention_fn).__name__}")
    if isinstance(separation, str) and separation == "softmax":
        pass
    else:
        raise ValueError(
            f"{context}: attention_fn computes the read-out with its own normalisation, so separation={separation!r}"
            " cannot apply with it (leave separation='softmax', or attention_fn=None for hopfield_attention)"
        )
    try:
        params = inspect.signature(attention_fn).parameters
    except (TypeError, ValueError):
        params = {}
    names = set(params)
    if "dropout_rng" in names or "module" in names or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        if beta is not None or learn_beta:
            raise ValueError(
                f"{context}: an attention_fn of flax's convention applies its own scale 1/sqrt(D), so beta and"
                " learn_beta cannot apply with it (leave them unset, or pass a function that takes `scale` like"
                " jax.nn.dot_product_attention)"
            )
        return "flax"
    if "scale" in names:
        if learn_beta or (beta is not None and np.ndim(beta) > 0):
            raise ValueError(
                f"{context}: an attention_fn that takes `scale` (jax.nn.dot_product_attention's convention) needs"
                f" one fixed beta, got beta={beta!r}, learn_beta={learn_beta!r}"
            )
        if dropout_rate:
            raise ValueError(
                f"{context}: dropout_rate={dropout_rate!r} needs an attention_fn of flax's convention (dropout_rng,"
                " dropout_rate, ...); jax.nn.dot_product_attention's convention has no dropout"
            )
        return "jax"
    raise TypeError(
        f"{context}: attention_fn must take flax's keywords (mask, dropout_rng, dropout_rate, broadcast_dropout,"
        " deterministic, dtype, precision, module, is_causal) or jax.nn.dot_product_attention's (mask, scale,"
        f" is_causal); got {attention_fn!r}"
    )


def check_static(
    context: str, in_features: int, in_kv_features: int, heads, kv_heads, connected: bool, **flags
) -> tuple[bool, ...]:
    """The ``*_as_static`` flags (an input taken as it is, split into heads, instead of projected): each needs the
    input's width to equal its heads times the head width. ``connected`` (``pattern_projection_as_connected``: the
    values pass the key projection first) needs the key projection, and a static value input is then the key
    projection's output (no width rule)."""
    check_bool(connected, "pattern_projection_as_connected", context)
    widths = {
        "state_pattern_as_static": ("in_features", in_features, heads),
        "stored_pattern_as_static": ("in_kv_features", in_kv_features, kv_heads),
        "pattern_projection_as_static": ("in_kv_features", in_kv_features, kv_heads),
    }
    for name, value in flags.items():
        check_bool(value, name, context)
        feature, width, (count, head_dim) = widths[name]
        if value and width != count * head_dim and not (connected and name == "pattern_projection_as_static"):
            raise ValueError(
                f"{context}: {name}=True takes the input as it is, so {feature}={width} must equal its heads times"
                f" the head width, {count} * {head_dim}"
            )
    if connected and flags["stored_pattern_as_static"]:
        raise ValueError(
            f"{context}: pattern_projection_as_connected=True sends the values through the key projection, which"
            " stored_pattern_as_static=True removes"
        )
    return tuple(flags.values())


def check_tol(tol, heads: int, context: str) -> float | tuple[float, ...] | None:
    """None, a tolerance >= 0, or one per head (a tuple of Python floats: static configuration)."""
    if tol is None or np.ndim(tol) == 0:
        return check_float(tol, "tol", context, allow_zero=True, optional=True)
    if np.shape(tol) != (heads,):
        raise ValueError(f"{context}: tol must be a number or one per head, shape ({heads},); got {tol!r}")
    return tuple(check_float(float(t), f"tol[{h}]", context, allow_zero=True) for h, t in enumerate(np.asarray(tol)))


# elementwise activations under the names hopfield-layers takes (functions of the torch namespace)
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "selu": jax.nn.selu,
    "celu": jax.nn.celu,
}


def check_activation(activation, context: str) -> Callable[[Array], Array] | None:
    """``association_activation``: None, a function, or a name of :data:`ACTIVATIONS`."""
    if activation is None or (callable(activation) and not isinstance(activation, str)):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError(
        f"{context}: association_activation must be None, a function or one of {sorted(ACTIVATIONS)}, got"
        f" {activation!r}"
    )
