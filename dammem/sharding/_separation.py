"""The distributed separation: local scores in, local weights out, reductions over a named mesh axis.

Shape legend: ``K_loc`` scores on this device (``K = n K_loc`` over the ``n`` devices of the axis); every leading
axis is a row.

Softmax (alpha = 1): ``m = max`` over all devices (``pmax``), ``Z = sum_d sum_i exp(z_i - m)`` (``psum``),
``p = exp(z - m) / Z``; the conjugate is ``lse(z) = m + log Z``.

alpha-entmax, alpha in (1, 2] (Peters et al. (2019), Prop. 1; Wu et al. (2024), eq. D.1):
``p_i = [1 + a (z_i - m - v)]_+^{1/a}`` with ``a = alpha - 1`` and one threshold ``v`` per row where
``S(v) = sum_d sum_i p_i(v) = 1``. The per-element maths (the probabilities at a threshold, their slope
``s = p^(2 - alpha)``, their alpha-derivative, the fixed ``a`` of sparsemax and 1.5-entmax, the floor on ``a``) is the
single-device solver's; what is this module's own is the search across devices. ``S`` decreases in ``v``,
``S(0) >= 1`` and ``S(v_hi) <= 1`` at ``v_hi = (1 - K^-a) / a`` (every ``p_i <= 1/K`` there). A few bisection steps
bracket ``v``, then Newton steps on ``F(v) = (S(v)^a - 1) / a``, which is convex and decreasing, rise monotonically
onto the root; each step needs one ``psum`` of two numbers per row, ``S`` and ``-S' = sum_i s_i``. For sparsemax the
Newton step is Michelot's (1986) mean on the support, so it ends exactly once the support is found.

The conjugate ``Psi*_alpha(z) = m + v / alpha + (1 - 1 / alpha) <p, z - m>`` (Wu et al. (2024), eq. 2.3).

Derivatives (first order, in the scores and in alpha) are those of the single-device separations: the threshold is
searched on stopped gradients and re-attached through its implicit derivative
``dv = (<s, dz> + <g, 1> da) / sum(s)`` and ``dp = s (dz - dv) + g da`` (Peters et al. (2019), Prop. 2; ``g`` the
alpha-derivative of ``p`` at a fixed threshold; the sums are ``psum``-ed). Second derivatives of the sparse
separations are not provided (``s`` and ``g`` enter as constants).

References:
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Martins, Astudillo (2016). From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label
    Classification. ICML.
  - Michelot (1986). A finite algorithm for finding the projection of a point onto the canonical simplex of R^n.
    Journal of Optimization Theory and Applications.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Float

from dammem._entmax_solver import (
    GENERAL,
    KIND_A,
    MIN_A,
    SOFTMAX,
    alpha_slope,
    support_weights,
    threshold_origin,
    threshold_probs,
)
from dammem._types import Array, ArrayLike
from dammem._validate import check_alpha_range, check_floating, check_mask, check_real
from dammem.separations import SEPARATIONS

__all__ = [
    "SEPARATION_NAMES",
    "kind_of_separation",
    "separation_local",
    "distributed_separation",
    "distributed_conjugate",
]

SEPARATION_NAMES = tuple(name for name, spec in SEPARATIONS.items() if spec.kernel is not None)
"""The names in :data:`dammem.separations.SEPARATIONS` of the Tsallis separations (those with a threshold kernel),
every one with a distributed kernel here."""

_BISECTION_STEPS = 8  # bracket the threshold to 1/256 of its range before the Newton steps
_MAX_NEWTON_STEPS = 32  # safety cap; from the bracket they settle in a few steps (sparsemax: exact once on the support)


def kind_of_separation(name: str) -> str:
    """The solver kernel of a separation name (its fixed alpha's closed form, or the general one for ``entmax``)."""
    return SEPARATIONS[name].kernel


def _psum_last(x: Array, axis_name: str) -> Array:
    return lax.psum(jnp.sum(x, axis=-1), axis_name)


def _entmax_local(kind: str, zs: Array, finite: Array, a: Array | None, live: Array, axis_name: str, total: int):
    """Weights and threshold of alpha-entmax for shifted local scores ``zs`` (..., K_loc) (row max 0 globally; 0
    where not ``finite``); ``a = alpha - 1`` per row (GENERAL only). Returns ``(p, v, a)`` with first derivatives."""
    dtype = zs.dtype
    rows = zs.shape[:-1]
    if kind == GENERAL:
        a = jnp.maximum(jnp.broadcast_to(a, rows).astype(dtype), MIN_A)  # NaN (a traced bad alpha) stays NaN
    else:
        a = jnp.full(rows, KIND_A[kind], dtype)
    a0 = lax.stop_gradient(a)
    col = a0[..., None]
    z0 = jnp.where(finite, lax.stop_gradient(zs), -jnp.inf)  # masked scores: probability 0
    origin = threshold_origin(kind)  # the search runs on the solver's column c = v + origin

    def probs(c):
        return threshold_probs(kind, z0, c[..., None], col)

    # the bounds vary like the rows (``live`` carries that: rows may also be split over another mesh axis)
    span = jnp.where(live, -jnp.expm1(-a0 * math.log(total)) / a0, 0.0)  # every p_i <= 1/K at v = span

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = _psum_last(probs(mid), axis_name) >= 1.0
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    top = origin + span
    lo, hi = lax.fori_loop(0, _BISECTION_STEPS, bisect, (origin + 0.0 * span, top))
    tol = 4.0 * float(jnp.finfo(dtype).eps)

    def newton(state):  # on F(v) = (S(v)^a - 1) / a, convex and decreasing: monotone from the left of the root
        c, it, _ = state
        p = probs(c)
        s = support_weights(kind, p, z0, c[..., None], col)
        sums = lax.psum(jnp.stack([jnp.sum(p, axis=-1), jnp.sum(s, axis=-1)]), axis_name)
        mass, slope = sums[0], sums[1]  # S(v) and -dS/dv = sum s
        ok = (mass > 0) & (slope > 0)
        safe_mass = jnp.where(ok, mass, 1.0)
        step = -jnp.expm1(-a0 * jnp.log(safe_mass)) * safe_mass / (a0 * jnp.where(ok, slope, 1.0))  # F / -F'
        step = jnp.where(ok, step, 0.0)
        settled = ~(jnp.abs(step) > tol * (1.0 + (c - origin)))  # NaN rows count as settled
        return jnp.minimum(c + step, hi), it + 1, settled

    c, _, _ = lax.while_loop(
        lambda state: (state[1] < _MAX_NEWTON_STEPS) & ~jnp.all(state[2]), newton, (lo, jnp.int32(0), lo != lo)
    )
    c = jnp.where(live, c, origin)
    p0 = probs(c)
    s0 = support_weights(kind, p0, z0, c[..., None], col)
    total_s = _psum_last(s0, axis_name)
    total_s = jnp.where(total_s > 0, total_s, 1.0)
    dz = jnp.where(finite, zs - lax.stop_gradient(zs), 0.0)  # 0 in value; the scores' tangent
    slope = _psum_last(s0 * dz, axis_name)
    if kind == GENERAL:
        da = a - a0  # 0 in value; alpha's tangent
        g0 = alpha_slope(p0, col)[2]
        slope = slope + _psum_last(g0, axis_name) * da
    dv = slope / total_s  # the threshold's implicit derivative (0 in value)
    p = p0 + s0 * (dz - dv[..., None])
    if kind == GENERAL:
        p = p + g0 * da[..., None]
    return p, (c - origin) + dv, a


def separation_local(
    z: Array, axis_name: str, n: int, kind: str, alpha: Array | None, want: Literal["p", "psi", "both"]
) -> Any:
    """Distributed separation of local scores ``z`` (..., K_loc) over ``n`` devices of ``axis_name`` (unvalidated).

    ``alpha`` is None for the fixed kinds, else an array broadcastable to ``z.shape[:-1]``; with ``kind=GENERAL`` a
    scalar alpha may be exactly 1 (then the softmax formula runs, as in the single-device kernel).
    """
    dtype = z.dtype
    total = z.shape[-1] * n
    m = lax.pmax(jnp.max(lax.stop_gradient(z), axis=-1), axis_name)
    live = m != -jnp.inf  # a row with no finite score: zeros; +inf or NaN in a row: NaN there
    m = jnp.where(live, jnp.where(m < jnp.inf, m, jnp.nan), 0.0)
    zs = z - m[..., None]
    finite = lax.stop_gradient(zs) > -jnp.inf
    zs_safe = jnp.where(finite, zs, 0.0)  # masked scores enter no product (no 0 * inf in values or derivatives)

    def softmax_branch(_):
        e = jnp.exp(zs)
        s = _psum_last(e, axis_name)
        p = e / jnp.where(s > 0, s, 1.0)[..., None]
        return p, jnp.where(live, m + jnp.log(s), -jnp.inf)

    def entmax_branch(alpha):
        a = None if alpha is None else alpha - 1.0
        p, v, a_used = _entmax_local(kind, zs_safe, finite, a, live, axis_name, total)
        inner = _psum_last(p * zs_safe, axis_name)
        alpha_used = 1.0 + a_used
        return p, jnp.where(live, m + v / alpha_used + (1.0 - 1.0 / alpha_used) * inner, -jnp.inf)

    if kind == SOFTMAX:
        p, psi = softmax_branch(None)
    elif kind == GENERAL and jnp.ndim(alpha) == 0:
        alpha = alpha.astype(dtype)
        p, psi = lax.cond(alpha == 1.0, softmax_branch, entmax_branch, alpha)
    else:
        p, psi = entmax_branch(alpha if alpha is None else alpha.astype(dtype))
    return {"p": p, "psi": psi, "both": (p, psi)}[want]


def _inside_checks(z: Any, axis_name: Any, separation: Any, alpha: Any, where_mask: Any, name: str):
    z = check_floating(z, "z", name)
    if z.ndim == 0:
        raise ValueError(f"{name}: z must have at least one axis (the local scores), got a scalar")
    if not isinstance(axis_name, str):
        raise TypeError(f"{name}: axis_name must be the name of a mesh axis (a str), got {axis_name!r}")
    if not isinstance(separation, str) or separation not in SEPARATION_NAMES:
        raise ValueError(f"{name}: separation must be one of {list(SEPARATION_NAMES)}, got {separation!r}")
    kind = kind_of_separation(separation)
    if kind != GENERAL and alpha is not None:
        raise ValueError(f"{name}: alpha is only used with separation='entmax'; {separation!r} fixes its own")
    if kind == GENERAL:
        if alpha is None:
            raise ValueError(f"{name}: separation='entmax' needs alpha in (1, 2], got None")
        alpha = check_real(alpha, "alpha", name)
        full = (1,) * (z.ndim - alpha.ndim) + tuple(alpha.shape)
        try:
            np.broadcast_shapes(full, z.shape)
        except ValueError:
            full = None
        if alpha.ndim > z.ndim or full is None or full[-1] != 1:
            raise ValueError(
                f"{name}: alpha of shape {tuple(alpha.shape)} must be a scalar or broadcast to z {tuple(z.shape)} with "
                f"size 1 on the last axis (one alpha per row, e.g. shape (R, 1) for z of shape (R, K_loc))"
            )
        check_alpha_range(alpha, name)
        alpha = jnp.broadcast_to(alpha.reshape(full), z.shape[:-1] + (1,))[..., 0]
    zc = z.astype(jnp.promote_types(z.dtype, jnp.float32))
    where_mask = check_mask(where_mask, z.shape, name, name="where", meaning="True = keep", target="z of shape")
    if where_mask is not None:
        zc = jnp.where(where_mask, zc, -jnp.inf)
    return z, zc, kind, alpha


def distributed_separation(
    z: Float[ArrayLike, "... K_loc"],
    axis_name: str,
    *,
    separation: str = "softmax",
    alpha: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> Float[Array, "... K_loc"]:
    """The separation of scores split along their last axis over a mesh axis, for use inside ``jax.shard_map``.

    Each device passes its local scores; the result is its part of ``Sep(concatenate over devices of z)`` along the
    last axis, computed with global reductions only (see :mod:`dammem.sharding`): softmax (alpha = 1), sparsemax
    (alpha = 2, Martins & Astudillo (2016)), 1.5-entmax and alpha-entmax (Peters et al. (2019), Prop. 1).

    Args:
      z: (..., K_loc) this device's scores.
      axis_name: the mesh axis over which the last axis is split.
      separation: one of :data:`SEPARATION_NAMES`.
      alpha: ``separation="entmax"`` only: in (1, 2] (traced), a scalar or one per row: broadcastable to ``z`` with
        size 1 on the last axis, as for :func:`dammem.separations.entmax`.
      where: optional boolean mask broadcastable to ``z`` (True = keep).

    Returns:
      (..., K_loc) this device's weights, in the dtype of ``z`` (computed in at least float32).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> from functools import partial
      >>> from dammem.sharding import distribute, distributed_separation
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> sep = jax.shard_map(partial(distributed_separation, axis_name="memory", separation="sparsemax"),
      ...                     mesh=mesh, in_specs=P("memory"), out_specs=P("memory"))
      >>> [round(p, 4) for p in sep(distribute(jnp.array([1.0, 0.8, -1.0]), mesh, "memory")).tolist()]
      [0.6, 0.4, 0.0]
    """
    name = "distributed_separation"
    z, zc, kind, alpha = _inside_checks(z, axis_name, separation, alpha, where, name)
    n = lax.axis_size(axis_name)
    return separation_local(zc, axis_name, n, kind, alpha, "p").astype(z.dtype)


def distributed_conjugate(
    z: Float[ArrayLike, "... K_loc"],
    axis_name: str,
    *,
    separation: str = "softmax",
    alpha: ArrayLike | None = None,
    where: ArrayLike | None = None,
) -> Float[Array, "*rows"]:
    """The conjugate ``Psi*_alpha`` of scores split along their last axis over a mesh axis (inside ``shard_map``).

    ``Psi*_alpha(z) = max_p <p, z> + H_alpha(p)`` (Wu et al. (2024), eq. 2.3): the log-sum-exp for softmax; its
    gradient in ``z`` is :func:`distributed_separation`. Arguments as :func:`distributed_separation`.

    Returns:
      (...) the conjugate of every row, equal on all devices of ``axis_name`` (``-inf`` for a row with no score).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> from functools import partial
      >>> from dammem.sharding import distribute, distributed_conjugate
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> lse = jax.shard_map(partial(distributed_conjugate, axis_name="memory"),
      ...                     mesh=mesh, in_specs=P("memory"), out_specs=P())
      >>> round(float(lse(distribute(jnp.log(jnp.array([1.0, 3.0])), mesh, "memory"))), 4)  # log 4
      1.3863
    """
    name = "distributed_conjugate"
    z, zc, kind, alpha = _inside_checks(z, axis_name, separation, alpha, where, name)
    n = lax.axis_size(axis_name)
    return separation_local(zc, axis_name, n, kind, alpha, "psi").astype(z.dtype)
