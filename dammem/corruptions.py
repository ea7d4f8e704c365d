"""Query corruptions for retrieval experiments: masks, occlusions, noise, dropout and bit flips.

Shape legend (:mod:`dammem._types`): ``D`` pattern dimension, ``...`` any leading batch axes; this module adds
``H, W, C`` for an image's height, width and channels (``D = H * W * C``, flattened in C order as by
:func:`dammem.datasets.to_patterns`).

All functions are pure, batched over leading axes and jit-friendly; the fractions and norms may be traced, so a
sweep over them does not re-trace. Masks say True = visible (Flax polarity).

* :func:`random_pixel_mask`: exactly ``round(visible_fraction * D)`` visible entries per pattern, uniformly placed
  (Wu et al. (2024), Sec. 4.1 hide half of each query's pixels).
* :func:`half_occlusion_mask`: the top / bottom / left / right half of an image hidden (Hoover et al. (2024),
  Sec. 4.2, Fig. 4B hide the bottom half).
* :func:`occlude`: hidden entries replaced by a fill value.
* :func:`gaussian_noise`: additive noise of L2 norm exactly ``norm`` per pattern, direction uniform on the sphere
  (the noise levels of Wu et al. (2024), Sec. 4.1 and App. G).
* :func:`inverted_dropout`: Bernoulli dropout with survivors scaled by ``1 / (1 - p)`` (public U-Hop code protocol).
* :func:`flip_bits`: exactly ``round(flip_fraction * D)`` entries of a two-level pattern flipped to the other level
  (the "near" queries of Hoover et al. (2024), Sec. 4.1: bit flips on 0.1 D entries).

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import numbers
import typing
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_fraction, check_int, check_positive, is_concrete

__all__ = [
    "OccludedHalf",
    "OCCLUDED_HALVES",
    "random_pixel_mask",
    "half_occlusion_mask",
    "occlude",
    "gaussian_noise",
    "inverted_dropout",
    "flip_bits",
]

OccludedHalf = Literal["bottom", "top", "left", "right"]
"""The half of an image that :func:`half_occlusion_mask` hides."""

OCCLUDED_HALVES: tuple[str, ...] = typing.get_args(OccludedHalf)


# ----------------------------------------------------------------------------------------------------------------
# argument checks


def _check_shape(shape, name: str, context: str) -> tuple[int, ...]:
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) == 0:
        raise TypeError(f"{context}: {name} must be a non-empty tuple of ints, got {shape!r}")
    return tuple(
        check_int(s, f"{name}[{i}]", context, minimum=1 if i == len(shape) - 1 else 0) for i, s in enumerate(shape)
    )


def _exact_count_mask(key: PRNGKey, shape: tuple[int, ...], fraction: ArrayLike) -> Array:
    """Exactly ``round(fraction * D)`` Trues per row of ``shape`` (..., D), in uniformly random places."""
    d = shape[-1]
    k = jnp.round(jnp.asarray(fraction, jnp.float32) * d)
    base = jnp.broadcast_to(jnp.arange(d) < k, shape)
    return jax.random.permutation(key, base, axis=-1, independent=True)


# ----------------------------------------------------------------------------------------------------------------
# masks and occlusions


def random_pixel_mask(key: PRNGKey, shape, visible_fraction: ArrayLike) -> Array:
    """Boolean masks with exactly ``k = round(visible_fraction * D)`` visible entries per pattern, placed uniformly.

    Each pattern's mask is a uniformly random permutation of ``k`` Trues and ``D - k`` Falses, drawn independently
    per pattern (``jax.random.permutation(..., independent=True)``), so the count is exact, unlike a Bernoulli mask.
    ``k`` is computed in float32 and rounds half to even. ``visible_fraction`` may be traced (a sweep does not
    re-trace); traced values outside [0, 1] clip to none / all visible. To hide whole pixels of a colour image
    flattened from (H, W, C), draw the mask for ``(..., H * W)`` and ``jnp.repeat(mask, C, axis=-1)``.

    Args:
      key: a ``jax.random`` key; the same key gives the same masks.
      shape: static mask shape ``(..., D)`` (a tuple of ints, or an int for one pattern).
      visible_fraction: scalar in [0, 1], the fraction of entries left visible.

    Returns:
      Mask of ``shape``, dtype bool, True = visible.

    Example:
      >>> random_pixel_mask(jax.random.key(0), (2, 784), 0.25).sum(-1).tolist()  # round(0.25 * 784) each
      [196, 196]
    """
    context = "random_pixel_mask"
    shape = _check_shape(shape, "shape", context)
    check_fraction(visible_fraction, "visible_fraction", context)
    return _exact_count_mask(key, shape, visible_fraction)


def half_occlusion_mask(image_shape, which: OccludedHalf = "bottom") -> Array:
    """Flattened mask hiding one half of an image (rows for top / bottom, columns for left / right).

    The hidden half has ``H // 2`` rows (or ``W // 2`` columns), so with an odd size the middle line stays visible.
    Flattening is C order over (H, W[, C]), matching :func:`dammem.datasets.to_patterns`; all channels of a pixel
    share its value.

    Args:
      image_shape: static ``(H, W)`` or ``(H, W, C)``.
      which: the hidden half, one of ``OCCLUDED_HALVES`` (``"bottom"`` keeps the top half visible).

    Returns:
      Mask (D,) bool with ``D = H * W * C``, True = visible; broadcasts against patterns (..., D).

    Example:
      >>> int(half_occlusion_mask((28, 28), "bottom").sum())  # 14 rows of 28 visible
      392
    """
    context = "half_occlusion_mask"
    image_shape = _check_shape(image_shape, "image_shape", context)
    if len(image_shape) not in (2, 3) or min(image_shape) < 1:
        raise ValueError(f"{context}: image_shape must be (H, W) or (H, W, C) of positive ints, got {image_shape}")
    if not isinstance(which, str) or which not in OCCLUDED_HALVES:
        raise ValueError(f"{context}: which must be one of {OCCLUDED_HALVES}, got {which!r}")
    h, w = image_shape[:2]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    hidden = {
        "bottom": rows >= h - h // 2,
        "top": rows < h // 2,
        "right": cols >= w - w // 2,
        "left": cols < w // 2,
    }[which]
    visible = np.broadcast_to(~hidden, (h, w))
    if len(image_shape) == 3:
        visible = np.broadcast_to(visible[:, :, None], image_shape)
    return jnp.asarray(visible.reshape(-1))


def occlude(x: ArrayLike, mask: ArrayLike, fill: ArrayLike = 0.0) -> Array:
    """Replace hidden entries by ``fill``: ``where(mask, x, fill)``.

    Args:
      x: patterns (..., D); integers become float32.
      mask: bool, broadcastable with ``x`` (e.g. (D,) for one mask, (..., D) per pattern); True = visible.
      fill: scalar written into the hidden entries (e.g. 0 for unit patterns, -1 or 0 for bipolar); may be traced.

    Returns:
      Occluded patterns with the broadcast shape of ``x`` and ``mask`` and the dtype of ``x``.

    Example:
      >>> occlude(jnp.ones(4), jnp.array([True, False, True, False]), fill=-1.0).tolist()
      [1.0, -1.0, 1.0, -1.0]
    """
    context = "occlude"
    x = check_floating(x, "x", context)
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{context}: mask must be boolean (True = visible), got dtype {mask.dtype}")
    try:
        np.broadcast_shapes(x.shape, mask.shape)
    except ValueError as err:
        raise ValueError(
            f"{context}: mask shape {tuple(mask.shape)} does not broadcast with x shape {tuple(x.shape)}"
        ) from err
    if jnp.ndim(fill) != 0:
        raise ValueError(f"{context}: fill must be a scalar, got shape {jnp.shape(fill)}")
    return jnp.where(mask, x, jnp.asarray(fill, x.dtype))


# ----------------------------------------------------------------------------------------------------------------
# noise, dropout and bit flips


def gaussian_noise(key: PRNGKey, x: ArrayLike, norm: ArrayLike) -> Array:
    """Add noise of L2 norm exactly ``norm`` to each pattern: ``x + norm * g / ||g||``, ``g ~ N(0, I_D)``.

    The direction ``g / ||g||`` is uniform on the unit sphere in D dimensions, independently per pattern. The noise
    is computed in float32 (or float64 for float64 ``x``); the result is cast back to the dtype of ``x``.

    Args:
      key: a ``jax.random`` key; the same key gives the same noise.
      x: patterns (..., D); integers become float32.
      norm: noise norm >= 0, a scalar or an array broadcastable to the leading shape ``x.shape[:-1]``; may be traced.

    Returns:
      Noisy patterns with the shape and dtype of ``x``.

    Example:
      >>> jnp.linalg.norm(gaussian_noise(jax.random.key(0), jnp.zeros((2, 8)), 3.0), axis=-1).round(4).tolist()
      [3.0, 3.0]
    """
    context = "gaussian_noise"
    x = check_floating(x, "x", context)
    if x.ndim < 1:
        raise ValueError(f"{context}: x must have shape (..., D), got a scalar")
    check_positive(norm, "norm", context, allow_zero=True)
    lead = x.shape[:-1]
    try:
        ok = np.broadcast_shapes(jnp.shape(norm), lead) == lead
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{context}: norm shape {jnp.shape(norm)} must broadcast to the leading shape {lead} of x "
            f"(shape {tuple(x.shape)})"
        )
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    g = jax.random.normal(key, x.shape, dtype)
    direction = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    noise = jnp.asarray(norm, dtype)[..., None] * direction
    return (x.astype(dtype) + noise).astype(x.dtype)


def inverted_dropout(key: PRNGKey, x: ArrayLike, drop_fraction: ArrayLike) -> Array:
    """Inverted dropout: zero each entry with probability ``p``, scale the survivors by ``1 / (1 - p)``.

    This is the query corruption of the public U-Hop code (``torch.nn.functional.dropout`` semantics), a variant of
    plain masking: the number of dropped entries is Binomial(D, p) rather than exact, and survivors are rescaled so
    that the expected pattern is unchanged. For an exact count with unscaled survivors use :func:`random_pixel_mask`
    with :func:`occlude`. ``p = 1`` drops everything (zeros, as in torch).

    Args:
      key: a ``jax.random`` key; the same key gives the same mask.
      x: patterns (..., D); integers become float32.
      drop_fraction: probability ``p`` in [0, 1] of dropping each entry; may be traced.

    Returns:
      Corrupted patterns with the shape and dtype of ``x``.

    Example:
      >>> sorted(set(inverted_dropout(jax.random.key(0), jnp.ones(1000), 0.5).tolist()))  # dropped or doubled
      [0.0, 2.0]
    """
    context = "inverted_dropout"
    x = check_floating(x, "x", context)
    check_fraction(drop_fraction, "drop_fraction", context)
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    keep_prob = 1.0 - jnp.asarray(drop_fraction, dtype)
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    scale = jnp.where(keep_prob > 0, 1.0 / jnp.where(keep_prob > 0, keep_prob, 1.0), 0.0)
    return jnp.where(keep, x.astype(dtype) * scale, 0.0).astype(x.dtype)


def flip_bits(
    key: PRNGKey, x: ArrayLike, flip_fraction: ArrayLike, levels: tuple[float, float] = (-1.0, 1.0)
) -> Array:
    """Flip exactly ``round(flip_fraction * D)`` entries of each two-level pattern, in uniformly random places.

    A flipped entry moves to the other level, ``x -> lo + hi - x`` with ``levels = (lo, hi)``: a sign flip for
    bipolar patterns (the default ``(-1, 1)``), ``1 - x`` for bits ``(0, 1)``. The "near" queries of Hoover et al.
    (2024), Sec. 4.1 are stored patterns in ``{0, 1/sqrt(D)}^D`` with bit flips on 0.1 D entries:
    ``flip_bits(key, x, 0.1, levels=(0.0, 1 / sqrt(D)))``. The places are drawn as by :func:`random_pixel_mask`
    (independently per pattern, the count exact and rounded half to even); ``flip_fraction`` may be traced.

    Args:
      key: a ``jax.random`` key; the same key gives the same flips.
      x: patterns (..., D) whose entries are all ``lo`` or ``hi`` (checked when ``x`` is concrete); integers become
        float32.
      flip_fraction: scalar in [0, 1], the fraction of entries flipped.
      levels: the two values ``(lo, hi)`` of the patterns, distinct finite numbers.

    Returns:
      Patterns with the shape and dtype of ``x``.

    Example:
      >>> flip_bits(jax.random.key(0), jnp.ones((2, 8)), 0.25).sum(-1).tolist()  # 2 of 8 signs flipped per row
      [4.0, 4.0]
    """
    context = "flip_bits"
    x = check_floating(x, "x", context)
    if x.ndim < 1:
        raise ValueError(f"{context}: x must have shape (..., D), got a scalar")
    if (
        not isinstance(levels, (tuple, list))
        or len(levels) != 2
        or not all(isinstance(v, (numbers.Real, np.floating, np.integer)) and np.isfinite(v) for v in levels)
        or levels[0] == levels[1]
    ):
        raise ValueError(f"{context}: levels must be two distinct finite numbers (lo, hi), got {levels!r}")
    check_fraction(flip_fraction, "flip_fraction", context)
    lo, hi = (jnp.asarray(v, x.dtype) for v in levels)
    if is_concrete(x):
        on_level = np.asarray((x == lo) | (x == hi))
        if not on_level.all():
            bad = np.asarray(x)[~on_level].ravel()[0]
            raise ValueError(
                f"{context}: x must hold only the levels {tuple(float(v) for v in levels)} (pass levels= for other "
                f"two-level patterns), got the value {float(bad)}"
            )
    flipped = _exact_count_mask(key, x.shape, flip_fraction)
    return jnp.where(flipped, lo + hi - x, x)
