"""Argument checks shared by the U-Hop modules: every error names the function, the argument, the value and what is
allowed. Checks of values (temperature > 0, finite entries) apply to concrete values only; traced values pass (see
the callers for what a traced invalid value gives)."""

from __future__ import annotations

import numbers

import numpy as np

from dammem._types import Array
from dammem._validate import check_floating, check_int, check_positive, check_scalar, is_concrete

INITS = ("gaussian", "identity", "orthogonal")
"""Kernel initialisations (see :mod:`dammem.uhop.kernel`)."""

LOSSES = ("average", "max", "deep")
"""Separation losses (see :mod:`dammem.uhop.losses`)."""


def check_shape(shape, context: str) -> tuple[int, int]:
    """A kernel shape ``(F, D)`` of ints with ``F >= D >= 1``."""
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or not all(isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) for s in shape)
    ):
        raise TypeError(f"{context}: shape must be a pair of ints (F, D), got {shape!r}")
    num_features, dim = (int(s) for s in shape)
    if dim < 1:
        raise ValueError(f"{context}: shape (F, D) needs D >= 1, got D={dim}")
    if num_features < dim:
        raise ValueError(
            f"{context}: shape (F, D) needs F >= D (a full-column-rank kernel map, Wu et al. (2024), Assumption 2.1), "
            f"got F={num_features} < D={dim}"
        )
    return num_features, dim


def check_init(init, context: str) -> str:
    """An initialisation name from :data:`INITS`."""
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"{context}: init must be one of {INITS}, got {init!r}")
    return init


def check_loss(loss, context: str) -> str:
    """A separation loss name from :data:`LOSSES`."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"{context}: loss must be one of {LOSSES}, got {loss!r}")
    return loss


def check_temperature(temperature, context: str):
    """A real scalar ``t`` (:func:`dammem._validate.check_scalar`); finite and > 0 when concrete."""
    temperature = check_scalar(temperature, "temperature", context)
    return check_positive(temperature, "temperature", context)


def check_finite(x: Array, name: str, context: str) -> Array:
    """For a concrete array: every entry finite (the boolean masks cannot carry a NaN). Traced arrays pass."""
    if is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{context}: {name} must be finite, got NaN or inf entries")
    return x


def check_memories(memories, context: str, *, min_memories: int = 2) -> Array:
    """Stored patterns (K, D) with at least ``min_memories`` rows (the separation losses average over pairs)."""
    memories = check_floating(memories, "memories", context)
    if memories.ndim != 2:
        raise ValueError(f"{context}: memories must have shape (K, D), got shape {tuple(memories.shape)}")
    k = memories.shape[0]
    if k == 0 and min_memories >= 1:
        raise ValueError(f"{context}: memories is an empty memory set (K=0); it needs at least {min_memories} patterns")
    if k < min_memories:
        raise ValueError(
            f"{context}: memories must hold at least {min_memories} patterns (the separation loss is over pairs of "
            f"distinct memories), got K={k}"
        )
    if memories.shape[1] == 0:
        raise ValueError(f"{context}: memories must have D >= 1 columns, got shape {tuple(memories.shape)}")
    return memories


def check_kernel_weight(weight, dim: int, name: str, context: str) -> Array:
    """A real (F, D) array with ``D == dim`` and ``F >= D``."""
    weight = check_floating(weight, name, context)
    if weight.ndim != 2:
        raise ValueError(f"{context}: {name} must have shape (F, D), got shape {tuple(weight.shape)}")
    num_features, width = weight.shape
    if width != dim:
        raise ValueError(
            f"{context}: {name} has width D={width} but the memories have D={dim}; {name} must have shape (F, {dim})"
        )
    if num_features < width:
        raise ValueError(
            f"{context}: {name} has F={num_features} < D={width} rows; the kernel map needs F >= D (full column "
            "rank, Wu et al. (2024), Assumption 2.1)"
        )
    return weight


def check_chunk_size(chunk_size, context: str) -> int:
    """Rows of the pair matrix computed at once: an int >= 1 (static)."""
    return check_int(chunk_size, "chunk_size", context, minimum=1)
