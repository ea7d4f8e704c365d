"""Separation maps (softmax, sparsemax, 1.5-entmax, alpha-entmax) and their convex conjugates.

Shape legend: ``N`` scores along ``axis``; every other axis is a batch axis.

Every map here is the regularised argmax over the probability simplex (seed 002 App. D.1, eqs. D.1-D.2)::

    alpha-entmax(z) = argmax_{p in simplex} <p, z> + H_alpha(p),
    H_alpha(p) = (1 - sum_i p_i^alpha) / (alpha (alpha - 1))     (Tsallis entropy; alpha = 1: Shannon),

so softmax is ``alpha = 1``, sparsemax ``alpha = 2`` and 1.5-entmax ``alpha = 1.5``. The solution is
``p_i = [1 + (alpha - 1)(z_i - max(z) - v)]_+^{1 / (alpha - 1)}`` for one threshold ``v >= 0`` per row.

How the threshold is found (no sort): with ``a = alpha - 1`` and ``S(v) = sum_i p_i(v)``, the function
``F(v) = (S(v)^a - 1) / a`` is convex and decreasing in ``v`` (``S^a`` is an ``L_{1/a}`` norm of a vector of convex
functions), ``F(0) >= 0`` and ``F(v*) = 0``. One Newton step from ``v = 0`` and then secant steps through the two
latest points stay on the left of ``v*`` and increase monotonically; each step costs one fused pass over the scores.
On the final linear piece of sparsemax the secant step is exact. The threshold is then recomputed in closed form on
the found support (sparsemax: Michelot's mean; 1.5-entmax: the smaller root of a quadratic); general alpha
renormalises. Derivatives are ``jax.custom_jvp`` rules with the closed-form Jacobian
``J = diag(s) - s s^T / sum(s)``, ``s = p^(2 - alpha)`` (Peters et al. 2019), and the derivative in alpha.

Edge cases (all documented behaviour, tested):

* ``-inf`` scores (or ``where=False``) get exactly zero probability.
* A row with no finite score returns all zeros (not a distribution) with zero gradient; its conjugate is ``-inf``.
* ``+inf`` or NaN scores give NaN in their row.
* bfloat16 / float16 inputs are computed in float32 and the result is cast back.
* alpha must lie in (1, 2] for :func:`entmax` (``alpha -> 1`` approaches softmax, ``alpha = 2`` is sparsemax);
  concrete values outside raise ``ValueError``; traced values outside give NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem._types import Array, ArrayLike
from dammem._validate import check_axis, check_floating, is_concrete

__all__ = [
    "softmax",
    "sparsemax",
    "entmax15",
    "entmax",
    "conjugate",
    "tsallis_separation",
    "get_separation",
    "separation_alpha",
    "SEPARATIONS",
]

_SOFTMAX, _SPARSEMAX, _ENTMAX15, _GENERAL = "softmax", "sparsemax", "entmax15", "general"
_CHUNK = 256  # long rows are reduced as (rows * N / _CHUNK, _CHUNK) blocks: XLA:CPU reduces those ~2x faster
_MAX_ITERS = 64  # safety cap; the monotone secant converges in far fewer steps (typically 3-12)
_COMPACT_FRACTION = 4  # unsettled rows are gathered and finished apart once at most 1/4 of them remain
_MIN_A = 1e-6  # alpha - 1 is clamped here in the general kernel (alpha = 1 exactly uses the softmax kernel)

# The element maps below avoid compare/select on purpose: XLA:CPU fuses max/min/ceil/exp into its reduction
# kernels but runs compare+select reductions 2-3x slower. The scores are shifted by their row max once
# (``z - max`` is exact near the top, Sterbenz) and the threshold is one column ``c`` on the shifted scores (see
# _base): folding ``max + v`` into one column would round it to the ulp of ``max`` (5e-4 error at |z| ~ 1e4).


class _RowView:
    """A (R, N) array seen as (R * P, C) blocks so that row reductions vectorise; ``P = N / C``."""

    def __init__(self, n: int):
        self.n = n
        self.per = n // _CHUNK if (n > 4 * _CHUNK and n % _CHUNK == 0) else 1

    def view(self, x2: Array) -> Array:
        return x2 if self.per == 1 else x2.reshape(-1, self.n // self.per)

    def unview(self, xv: Array, rows: int) -> Array:
        return xv if self.per == 1 else xv.reshape(rows, self.n)

    def col(self, r: Array) -> Array:
        """Per-row values (R,) broadcast against the blocked view."""
        r = r if self.per == 1 else jnp.repeat(r, self.per, axis=0)
        return r[:, None]

    def sum(self, xv: Array) -> Array:
        s = jnp.sum(xv, axis=-1)
        return s if self.per == 1 else s.reshape(-1, self.per).sum(-1)


def _base(kind: str, z: Array, c: Array, a: Array) -> Array:
    """The map's base x >= 0 with p = x^(1/a), for shifted scores ``z - max`` and threshold column ``c = v - 1/a``.

    x = 1 + a (z - v) = a (z - c): carrying ``c`` rather than ``v`` keeps the threshold exact to float32 when the
    support is broad (c ~ -p_max^a is then near 0, while v ~ 1/a sits on a coarse grid and k of its ulps move the mass).
    """
    if kind == _SPARSEMAX:
        return jnp.maximum(z - c, 0.0)
    if kind == _ENTMAX15:
        return jnp.maximum(0.5 * z - 0.5 * c, 0.0)
    raise AssertionError(kind)


def _origin(kind: str) -> float:
    """The search variable at v = 0: ``-1/a`` for the closed-form sparse kernels (see :func:`_base`), else 0."""
    return {_SPARSEMAX: -1.0, _ENTMAX15: -2.0}.get(kind, 0.0)


def _log_base_over_a(z: Array, c: Array, a: Array) -> Array:
    """log(x) / a = log1p(a (z - c)) / a for the general kernel; -inf off the support."""
    return jnp.log1p(jnp.maximum(a * (z - c), -1.0)) / a


def _probs(kind: str, z: Array, c: Array, a: Array) -> Array:
    """Unnormalised p for threshold column ``c``; ``a`` is the (column) alpha - 1."""
    if kind == _SOFTMAX:
        return jnp.exp(z - c)
    if kind == _SPARSEMAX:
        return _base(kind, z, c, a)
    if kind == _ENTMAX15:
        return jnp.square(_base(kind, z, c, a))
    return jnp.exp(_log_base_over_a(z, c, a))


def _weights(kind: str, z: Array, c: Array, a: Array) -> Array:
    """s = p^(2 - alpha): the diagonal of dp/dz (zero off the support), for the kernels with a closed form."""
    if kind == _SOFTMAX:
        return jnp.exp(z - c)
    if kind == _SPARSEMAX:  # the support indicator: x lies in [0, 1] (c >= -1) so ceil is 0 or 1
        return jnp.ceil(_base(kind, z, c, a))
    if kind == _ENTMAX15:
        return _base(kind, z, c, a)
    raise AssertionError(kind)  # general alpha: s = p / x, see _Solution.weights


def _objective(kind: str, s: Array, a: Array) -> Array:
    """F = (S^a - 1) / a: convex and decreasing in v, zero at the threshold (softmax: log S)."""
    if kind == _SOFTMAX:
        return jnp.log(s)
    if kind == _SPARSEMAX:
        return s - 1.0
    if kind == _ENTMAX15:
        return 2.0 * (jnp.sqrt(s) - 1.0)
    return jnp.expm1(a * jnp.log(s)) / a


def _row_max(z: Array, keepdims: bool = False) -> tuple[Array, Array]:
    """Last-axis maxima and the live rows (not all -inf): 0 in rows of all -inf; NaN in rows with +inf or NaN.

    A NaN maximum (not 0) is what makes a +inf or NaN score poison its whole row instead of being read as a dead row.
    """
    zmax = jnp.max(z, axis=-1, keepdims=keepdims)
    live = zmax != -jnp.inf
    return jnp.where(live, jnp.where(zmax < jnp.inf, zmax, jnp.nan), 0.0), live


# ----------------------------------------------------------------------------------------------------------------
# Threshold search
# ----------------------------------------------------------------------------------------------------------------


def _solve_threshold(kind: str, zv: Array, a: Array, rv: _RowView, live: Array, tol: float):
    """Monotone Newton-then-secant search for ``v`` with ``sum_i p_i(v) = 1`` (see the module docstring).

    The search variable is ``v + origin`` (``origin = _origin(kind)``, the column that :func:`_probs` takes).

    Args:
      kind: element map.
      zv: (R * P, C) scores minus their row max, in the blocked view of ``rv``.
      a: (R,) ``alpha - 1``.
      rv: the row view.
      live: (R,) rows with at least one finite score.
      tol: stop once ``F(v) <= tol`` (or the step underflows).

    Returns:
      (R,) ``v + origin`` on the left of the threshold and (R,) ``F(v)``.
    """
    dtype = zv.dtype
    origin = _origin(kind)
    av = rv.col(a)

    def objective(v):
        return _objective(kind, rv.sum(_probs(kind, zv, rv.col(v), av)), a)

    # First step from v = 0: Newton, F'(v) = -S^(a - 1) * sum_i s_i. For general alpha the weights
    # s = x^(1/a - 1) would cost a pow per element, so their sum is bounded without one (x <= 1): by sum_i x_i when
    # 1/a - 1 >= 1 (exact at alpha = 1.5) and by the support size otherwise. A shorter step stays on the left.
    c0 = jnp.full((), origin, dtype)
    s0 = rv.sum(_probs(kind, zv, c0, av))
    f0 = _objective(kind, s0, a)
    if kind == _GENERAL:
        x0 = jnp.maximum(1.0 + av * (zv - c0), 0.0)
        linear = rv.col((a <= 0.5).astype(dtype))
        wsum = rv.sum(linear * x0 + (1.0 - linear) * jnp.ceil(x0))  # x0 <= 1: ceil is the support indicator
    else:
        wsum = rv.sum(_weights(kind, zv, c0, av))
    slope0 = wsum * jnp.exp((a - 1.0) * jnp.log(s0))
    v1 = origin + jnp.where(live & (slope0 > 0), f0 / jnp.where(slope0 > 0, slope0, 1.0), 0.0)
    if kind == _SOFTMAX:  # F = log S(0) - v is linear: the Newton step is exact
        return v1, jnp.zeros_like(v1)
    done0 = ~live | ~(f0 > tol)
    state = (jnp.full_like(a, origin), f0, jnp.where(done0, origin, v1), f0, done0)
    step = partial(_secant_step, objective, tol)
    rows = a.shape[0]
    cap = rows // _COMPACT_FRACTION
    if cap == 0:
        v, f = _iterate(step, state, limit=0)[2:4]
        return v, f
    # Rows settle after different numbers of steps; the slowest would keep every step full width. So: full-width
    # steps until at most ``cap`` rows are unsettled, then those rows are gathered and finished on their own.
    state = _iterate(step, state, limit=cap)
    unsettled = jnp.nonzero(~state[4], size=cap, fill_value=rows)[0]  # padded with an out-of-range row
    take = jnp.minimum(unsettled, rows - 1)
    blocks = (take[:, None] * rv.per + jnp.arange(rv.per)).reshape(-1)
    sub_zv, sub_a = zv[blocks], a[take]

    def sub_objective(v):
        return _objective(kind, rv.sum(_probs(kind, sub_zv, rv.col(v), rv.col(sub_a))), sub_a)

    sub = tuple(x[take] for x in state[:4]) + (state[4][take] | (unsettled == rows),)
    sub = _iterate(partial(_secant_step, sub_objective, tol), sub, limit=0)
    v = state[2].at[unsettled].set(sub[2], mode="drop")
    f = state[3].at[unsettled].set(sub[3], mode="drop")
    return v, f


def _secant_step(objective, tol, state):
    """One secant step for the unsettled rows of ``state = (v_prev, f_prev, v, f, done)`` (one pass over the data).

    In exact arithmetic every point stays on the left of the root (F >= 0). In float32 the first Newton step, taken
    where S ~ N, can land a rounding error past it (F < 0 by ~N eps); the secant then simply steps back, so a row
    settles only once ``|F| <= tol`` or the step no longer moves ``v``.
    """
    v_prev, f_prev, v_cur, f_cur, done = state
    f_new = objective(v_cur)
    slope = (f_prev - f_new) / (v_cur - v_prev)
    good = jnp.isfinite(f_new) & (slope > 0)
    step = jnp.where(good, f_new / jnp.where(good, slope, 1.0), 0.0)
    converged = ~good | (jnp.abs(f_new) <= tol) | (v_cur + step == v_cur)
    # when stopping past the root, keep whichever of the two latest points is closer to it
    back = converged & (f_new < 0) & (jnp.abs(f_prev) < jnp.abs(f_new))
    v_next = jnp.where(converged, jnp.where(back, v_prev, v_cur), v_cur + step)
    f_next = jnp.where(back, f_prev, f_new)
    return (
        jnp.where(done, v_prev, v_cur),
        jnp.where(done, f_prev, f_new),
        jnp.where(done, v_cur, v_next),
        jnp.where(done, f_cur, f_next),
        done | converged,
    )


def _iterate(step, state, limit: int):
    """Apply ``step`` while more than ``limit`` rows are unsettled (at most ``_MAX_ITERS`` times)."""

    def cond(carry):
        state, it = carry
        return (it < _MAX_ITERS) & (jnp.sum(~state[4]) > limit)

    def body(carry):
        state, it = carry
        return step(state), it + 1

    return lax.while_loop(cond, body, (state, jnp.int32(0)))[0]


class _Solution:
    """Probabilities of (R, N) rows and what their derivatives need, in the blocked row view.

    sparsemax: the secant through two points of the final linear piece of F is Michelot's closed form on that
    support, so the converged ``v`` is already the exact threshold. 1.5-entmax: the search stops once the support
    is found up to elements within ~1e-3 of the threshold (their inclusion perturbs the result only quadratically,
    < 1e-6) and the threshold is recomputed in closed form on that support. General alpha: the search runs to
    rounding level and the probabilities are renormalised.
    """

    def __init__(self, kind: str, z2: Array, a: Array):
        rows, n = z2.shape
        rv = _RowView(n)
        zmax, live = _row_max(z2)
        zv = rv.view(z2 - zmax[:, None])
        if kind == _GENERAL:
            a = jnp.maximum(a, _MIN_A)  # NaN (invalid traced alpha) propagates through maximum
        eps = float(jnp.finfo(zv.dtype).eps)
        v, f = _solve_threshold(kind, zv, a, rv, live, 1e-3 if kind == _ENTMAX15 else 16 * eps)
        av = rv.col(a)
        self.ssum = None
        if kind == _ENTMAX15:  # sum_{i in S}(x_i - d)^2 = 1 on the found support: the smaller root
            x = _base(kind, zv, rv.col(v), av)
            k = jnp.maximum(rv.sum(jnp.ceil(x)), 1.0)  # x <= 1: ceil is the support indicator
            s1 = rv.sum(x)
            s2 = jnp.square(1.0 + 0.5 * f)  # S(v) from the search's last evaluation
            d = (s2 - 1.0) / (s1 + jnp.sqrt(jnp.maximum(s1 * s1 - k * (s2 - 1.0), 0.0)))
            v = jnp.where(live, v + 2.0 * d, _origin(kind))
            self.ssum = s1 - k * d  # = sum_i sqrt(p_i), what the Jacobian needs
        c = rv.col(v)
        p = _probs(kind, zv, c, av)
        if kind in (_SOFTMAX, _GENERAL):  # no closed form: renormalise (a rounding-level correction)
            total = rv.sum(p)
            p = p / rv.col(jnp.where(total > 0, total, 1.0))
        self.zv, self.zmax, self.a, self.c, self.av, self.pv = zv, zmax, a, c, av, p
        self.kind, self.rv, self.rows, self.live = kind, rv, rows, live
        if kind == _GENERAL:  # renormalising fixes p but not v (the conjugate's input): one Newton step with the
            # exact slope F' = -S^a sum(s) (normalised s). The search's secant can end a few 1e-4 past the root
            # when alpha -> 1 (a tiny first step makes its slope ill-conditioned). Unused v is dead code under jit.
            _, ssum = self.weights()
            v = v + f / ((1.0 + a * f) * ssum)
        self.v = v - _origin(kind)  # the threshold offset from the max (the conjugate needs it)

    @property
    def p(self) -> Array:
        return self.rv.unview(self.pv, self.rows)

    def weights(self) -> tuple[Array, Array]:
        """(s, sum s) with s = p^(2 - alpha) on the support."""
        if self.kind == _SOFTMAX:
            s = self.pv
        elif self.kind == _SPARSEMAX:
            s = jnp.ceil(self.pv)
        elif self.kind == _ENTMAX15:
            s = jnp.sqrt(self.pv)
        else:  # s = p / x = x^(1/a - 1): a division instead of another pow
            s = self.pv / jnp.maximum(1.0 + self.av * (self.zv - self.c), jnp.finfo(self.pv.dtype).tiny)
        total = self.rv.sum(s) if self.ssum is None else self.ssum
        return s, jnp.where(total > 0, total, 1.0)

    def tangent_z(self, dz2: Array) -> tuple[Array, Array, Array]:
        """dp = s * (dz - <s, dz> / sum s) (blocked view), plus s and sum s."""
        s, ssum = self.weights()
        sdz = s * self.rv.view(dz2)
        return sdz - s * self.rv.col(self.rv.sum(sdz) / ssum), s, ssum

    def dlogp_da(self) -> Array:
        """d log p / d a at fixed v (general kernel): ``(w / x - log(x) / a) / a`` with ``x = 1 + a w``."""
        w = jnp.maximum(self.zv - self.c, -1.0 / self.av)  # clamp keeps off-support entries finite
        x = 1.0 + self.av * w
        logx_a = jnp.log1p(self.av * w) / self.av
        return jnp.where(self.pv > 0, (w / x - logx_a) / self.av, 0.0)

    def tangent_a(self, s: Array, ssum: Array, da: Array) -> Array:
        """dp/da * da: p * dlogp/da - s * v'(a) with v' = <p, dlogp/da> / sum s (the mass stays 1)."""
        g = self.pv * self.dlogp_da()
        vprime = self.rv.sum(g) / ssum
        return (g - s * self.rv.col(vprime)) * self.rv.col(da)


# ----------------------------------------------------------------------------------------------------------------
# Differentiable kernels on (R, N) rows
# ----------------------------------------------------------------------------------------------------------------


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _entmax_rows(kind: str, z2: Array, a: Array) -> Array:
    return _Solution(kind, z2, a).p


@_entmax_rows.defjvp
def _entmax_rows_jvp(kind, primals, tangents):
    z2, a = primals
    dz2, da = tangents
    sol = _Solution(kind, z2, a)
    dp, s, ssum = sol.tangent_z(dz2)
    if kind == _GENERAL:
        dp = dp + sol.tangent_a(s, ssum, da)
    return sol.p, sol.rv.unview(dp, sol.rows)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _conjugate_rows(kind: str, z2: Array, a: Array) -> Array:
    return _conjugate_value(_Solution(kind, z2, a))


def _conjugate_value(sol: _Solution) -> Array:
    """Psi*(z) = <p, z> + H_alpha(p) = max + v / alpha + (1 - 1 / alpha) <p, z - max>  (no logs; alpha -> 1: lse)."""
    alpha = 1.0 + sol.a
    pz = sol.rv.sum(jnp.where(sol.pv > 0, sol.pv * sol.zv, 0.0))
    value = sol.zmax + sol.v / alpha + (1.0 - 1.0 / alpha) * pz
    return jnp.where(sol.live, value, -jnp.inf)


@_conjugate_rows.defjvp
def _conjugate_rows_jvp(kind, primals, tangents):
    z2, a = primals
    dz2, da = tangents
    sol = _Solution(kind, z2, a)
    value = _conjugate_value(sol)
    dvalue = sol.rv.sum(jnp.where(sol.pv > 0, sol.pv * sol.rv.view(dz2), 0.0))  # envelope theorem: grad = p
    if kind == _GENERAL:
        dvalue = dvalue + _dentropy_da(sol) * da
    return value, jnp.where(sol.live, dvalue, 0.0)


def _dentropy_da(sol: _Solution) -> Array:
    """d H_alpha(p) / d alpha at fixed p, using ``p^a = 1 + a w`` and ``log p = log1p(a w) / a``.

    H = -sum_i p_i phi_i(a) / (1 + a) with phi(a) = expm1(a log p) / a = w, so
    dH/da = -sum_i p_i [phi'(a) / (1 + a) - w / (1 + a)^2],  phi'(a) = (log p (1 + a w) - w) / a.
    """
    av = sol.av
    on = sol.pv > 0
    w = jnp.where(on, sol.zv - sol.c, 0.0)
    aw = av * w
    small = jnp.abs(aw) < 1e-3
    a_safe = jnp.where(small, 1.0, av)
    logp = jnp.log1p(aw) / av
    dphi = jnp.where(small, 0.5 * w * w - aw * w * w / 6.0, (logp * (1.0 + aw) - w) / a_safe)
    terms = jnp.where(on, sol.pv * (dphi / (1.0 + av) - w / (1.0 + av) ** 2), 0.0)
    return -sol.rv.sum(terms)


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def _prepare(z: ArrayLike, axis: int, where: ArrayLike | None, name: str):
    """Validate; apply the mask; move ``axis`` last and upcast. Returns (dtype, axis, moved scores)."""
    z = check_floating(z, "z", name)
    if z.ndim == 0:
        raise ValueError(f"{name}: z must have at least one axis, got a scalar")
    axis = check_axis(axis, z.ndim, name)
    if z.shape[axis] == 0:
        raise ValueError(f"{name}: z has size 0 along axis {axis}; at least one score is needed")
    if where is not None:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(f"{name}: where must be a boolean mask (True = keep), got dtype {where.dtype}")
        try:
            np.broadcast_shapes(where.shape, z.shape)
        except ValueError:
            raise ValueError(
                f"{name}: where of shape {where.shape} does not broadcast to z of shape {z.shape}"
            ) from None
        z = jnp.where(where, z, -jnp.inf)
    compute = jnp.promote_types(z.dtype, jnp.float32)
    return z.dtype, axis, jnp.moveaxis(z.astype(compute), axis, -1)


def _alpha_rows(alpha: ArrayLike, shape: tuple, axis: int, name: str, allow_one: bool) -> Array:
    """Validate alpha against scores of ``shape`` and return ``alpha - 1`` per row of the moved-axis scores."""
    try:
        alpha_arr = jnp.asarray(alpha)
    except TypeError as err:
        raise TypeError(f"{name}: alpha must be a real number or array, got {type(alpha).__name__}") from err
    if not (jnp.issubdtype(alpha_arr.dtype, jnp.floating) or jnp.issubdtype(alpha_arr.dtype, jnp.integer)):
        raise TypeError(f"{name}: alpha must be a real number or array, got dtype {alpha_arr.dtype}")
    ndim = len(shape)
    if alpha_arr.ndim > ndim:
        raise ValueError(f"{name}: alpha has {alpha_arr.ndim} dims but z has only {ndim}")
    full = (1,) * (ndim - alpha_arr.ndim) + tuple(alpha_arr.shape)
    if full[axis] != 1:
        raise ValueError(
            f"{name}: alpha of shape {alpha_arr.shape} varies along the separation axis {axis}; it must be a scalar"
            f" or broadcast per row with size 1 on that axis (e.g. shape (H, 1) for per-head alpha)"
        )
    try:
        np.broadcast_shapes(full, shape)
    except ValueError:
        raise ValueError(f"{name}: alpha of shape {alpha_arr.shape} does not broadcast to z of shape {shape}") from None
    if is_concrete(alpha_arr):
        vals = np.asarray(alpha_arr, dtype=np.float64)
        ok = (vals >= 1.0) if allow_one else (vals > 1.0)
        bad = ~(ok & (vals <= 2.0))
        if np.any(bad):
            allowed = "[1, 2]" if allow_one else "(1, 2]"
            raise ValueError(f"{name}: alpha must lie in {allowed}, got {vals[bad].ravel()[:4].tolist()}")
    a = alpha_arr.reshape(full).astype(jnp.promote_types(alpha_arr.dtype, jnp.float32)) - 1.0
    low = 0.0 if allow_one else jnp.finfo(a.dtype).tiny
    a = jnp.where((a >= low) & (a <= 1.0), a, jnp.nan)  # a traced alpha out of range gives NaN, never silence
    moved = tuple(np.delete(shape, axis)) + (1,)
    return jnp.broadcast_to(jnp.moveaxis(a, axis, -1), moved).reshape(-1)


def _fixed_kind(alpha: ArrayLike) -> str:
    """The kernel for alpha: a concrete alpha of 1, 1.5 or 2 everywhere has an exact closed-form kernel."""
    if not is_concrete(alpha):
        return _GENERAL
    arr = np.asarray(alpha)
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        return _GENERAL  # not a real number: _alpha_rows raises the error that names alpha
    values = np.unique(arr.astype(np.float64))
    if values.size != 1:
        return _GENERAL
    return {1.0: _SOFTMAX, 1.5: _ENTMAX15, 2.0: _SPARSEMAX}.get(float(values[0]), _GENERAL)


_KIND_ALPHA = {_SOFTMAX: 0.0, _ENTMAX15: 0.5, _SPARSEMAX: 1.0}


def _rows_and_alpha(kind: str, z, alpha, axis: int, where, name: str, allow_one: bool):
    """Common preparation: (dtype, axis, moved scores, (R, N) rows, (R,) alpha - 1)."""
    dtype, axis, zt = _prepare(z, axis, where, name)
    rows = int(np.prod(zt.shape[:-1], dtype=np.int64))
    shape = tuple(np.moveaxis(np.empty(zt.shape, dtype=np.bool_), -1, axis).shape)
    if alpha is not None:
        a = _alpha_rows(alpha, shape, axis, name, allow_one).astype(zt.dtype)
    if kind != _GENERAL:
        a = jnp.full((rows,), _KIND_ALPHA[kind], zt.dtype)
    return dtype, axis, zt, zt.reshape(rows, zt.shape[-1]), a


def _apply(kind: str, z, alpha, axis: int, where, name: str) -> Array:
    dtype, axis, zt, z2, a = _rows_and_alpha(kind, z, alpha, axis, where, name, allow_one=False)
    out = _entmax_rows(kind, z2, a)
    return jnp.moveaxis(out.reshape(zt.shape), -1, axis).astype(dtype)


def softmax(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Softmax ``p_i = exp(z_i - max z) / sum_j exp(z_j - max z)`` (alpha-entmax with alpha = 1).

    Max-shifted, computed in float32 for low-precision inputs; a row with no finite score gives zeros.

    Args:
      z: scores, any shape (..., N, ...).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> softmax(jnp.array([0.0, jnp.log(3.0)]))  # [0.25, 0.75]
    """
    dtype, axis, zt = _prepare(z, axis, where, "softmax")
    zmax = lax.stop_gradient(_row_max(zt, keepdims=True)[0])
    e = jnp.exp(zt - zmax)
    total = jnp.sum(e, axis=-1, keepdims=True)
    p = e / jnp.where(total > 0, total, 1.0)
    return jnp.moveaxis(p, -1, axis).astype(dtype)


def sparsemax(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Sparsemax: Euclidean projection onto the simplex, ``p = [z - tau]_+`` (alpha-entmax with alpha = 2).

    Martins & Astudillo (2016); seed 002 App. D.1 with alpha = 2. Exact zeros off the support. Sort-free: the
    threshold is found by a monotone secant search whose last step is Michelot's closed form on the support.

    Args:
      z: scores, any shape (..., N, ...).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> sparsemax(jnp.array([1.0, 0.8, -1.0]))  # [0.6, 0.4, 0.0]
    """
    return _apply(_SPARSEMAX, z, None, axis, where, "sparsemax")


def entmax15(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """1.5-entmax: ``p = [z / 2 - tau]_+^2`` (Peters et al. 2019; seed 002 App. D.1 with alpha = 1.5).

    Sort-free threshold search, then the exact threshold on the found support (a quadratic's smaller root).

    Args:
      z: scores, any shape (..., N, ...).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> entmax15(jnp.array([2.0, 1.0, -3.0]))  # sparse: the last entry is exactly 0
    """
    return _apply(_ENTMAX15, z, None, axis, where, "entmax15")


def entmax(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """alpha-entmax: ``p_i = [(alpha - 1) z_i - tau]_+^{1 / (alpha - 1)}`` (seed 002 App. D.1, eq. D.1).

    Differentiable in ``z`` and ``alpha``; ``alpha`` may be traced (sweeps never re-trace) and may vary per row or
    head. ``alpha = 2`` equals sparsemax and ``alpha -> 1`` approaches softmax. A concrete alpha of exactly 1.5 or 2
    runs the closed-form kernel of :func:`entmax15` / :func:`sparsemax`.

    Args:
      z: scores, any shape (..., N, ...).
      alpha: in (1, 2]; a scalar or an array broadcastable to ``z`` with size 1 along ``axis``
        (per head: shape ``(H, 1)`` for ``z`` of shape ``(..., H, N)``).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> entmax(jnp.array([2.0, 1.0, -3.0]), alpha=1.25)
    """
    kind = _fixed_kind(alpha)
    return _apply(_GENERAL if kind == _SOFTMAX else kind, z, alpha, axis, where, "entmax")


def tsallis_separation(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """The separation for any alpha in [1, 2]: softmax at alpha = 1, alpha-entmax above; the gradient of
    :func:`conjugate` in ``z``.

    Energies whose alpha may equal 1 (the generalized sparse Hopfield family, seed 002 eq. 2.3) use this; it is
    :func:`entmax` with the softmax end point included (a traced alpha within 1e-6 of 1 is computed as 1 + 1e-6).

    Args:
      z: scores (..., N, ...).
      alpha: in [1, 2]; scalar or broadcast per row like :func:`entmax`.
      axis: the axis holding the N scores.
      where: optional boolean mask; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.
    """
    kind = _fixed_kind(alpha)
    dtype, axis, zt, z2, a = _rows_and_alpha(kind, z, alpha, axis, where, "tsallis_separation", allow_one=True)
    if kind == _SOFTMAX:  # validated above; the direct formula is the one softmax of this module
        return softmax(z, axis, where=where)
    out = _entmax_rows(kind, z2, a)
    return jnp.moveaxis(out.reshape(zt.shape), -1, axis).astype(dtype)


def conjugate(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Convex conjugate of the Tsallis regulariser, ``Psi*_alpha(z) = <p*, z> + H_alpha(p*)``, p* = alpha-entmax(z).

    Seed 002 eq. (2.3) / App. D.1: ``Psi*_1 = logsumexp``; ``Psi*_2(z) = <p, z> + (1 - ||p||^2) / 2`` with p the
    sparsemax. Its gradient in ``z`` is ``p*`` (the separation output), which is what makes the energies of
    :mod:`dammem.energies` descend to the retrieval updates. Computed without logarithms as
    ``max z + v / alpha + (1 - 1/alpha) <p*, z - max z>``; differentiable in ``z`` and ``alpha``.

    Args:
      z: scores (..., N, ...).
      alpha: in [1, 2] (1 = logsumexp); scalar or broadcast per row like :func:`entmax`.
      axis: the axis holding the N scores (reduced away).
      where: optional boolean mask; False entries are excluded.

    Returns:
      ``z`` with ``axis`` removed; ``-inf`` for rows with no finite score.

    Example:
      >>> conjugate(jnp.zeros(4), 1.0)  # log(4)
    """
    kind = _fixed_kind(alpha)
    dtype, axis, zt, z2, a = _rows_and_alpha(kind, z, alpha, axis, where, "conjugate", allow_one=True)
    out = _conjugate_rows(kind, z2, a)
    return out.reshape(zt.shape[:-1]).astype(dtype)


SEPARATIONS: dict[str, tuple[Callable[..., Array], float | None]] = {
    "softmax": (softmax, 1.0),
    "sparsemax": (sparsemax, 2.0),
    "entmax15": (entmax15, 1.5),
    "entmax": (entmax, None),
}

Separation = Union[str, Callable[..., Array]]


def get_separation(separation: Separation, alpha: ArrayLike | None = None) -> Callable[..., Array]:
    """Look up a separation by name (``softmax``, ``sparsemax``, ``entmax15``, ``entmax``) or pass a callable.

    Args:
      separation: a name from :data:`SEPARATIONS` or a callable ``sep(z, axis=-1)``.
      alpha: the alpha of ``entmax`` (required there, refused elsewhere).

    Returns:
      A function ``sep(z, axis=-1)``.
    """
    if callable(separation):
        if alpha is not None:
            raise ValueError("get_separation: alpha is only used with separation='entmax'; got a callable and alpha")
        return separation
    if not isinstance(separation, str) or separation not in SEPARATIONS:
        raise ValueError(f"unknown separation {separation!r}; expected one of {sorted(SEPARATIONS)} or a callable")
    fn, fixed = SEPARATIONS[separation]
    if fixed is None:
        if alpha is None:
            raise ValueError("separation='entmax' needs alpha in (1, 2]")
        return partial(entmax, alpha=alpha)
    if alpha is not None:
        raise ValueError(f"separation={separation!r} has a fixed alpha={fixed}; alpha is only used with 'entmax'")
    return fn


def separation_alpha(separation: str, alpha: ArrayLike | None = None) -> ArrayLike:
    """The Tsallis alpha of a named separation (softmax 1, entmax15 1.5, sparsemax 2, entmax: ``alpha``)."""
    if callable(separation):
        raise ValueError("separation_alpha: a callable separation has no known alpha; pass a name")
    get_separation(separation, alpha)  # validates the name and the alpha rule
    fixed = SEPARATIONS[separation][1]
    return alpha if fixed is None else fixed
