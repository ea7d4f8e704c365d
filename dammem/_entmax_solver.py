"""Sort-free threshold search for Tsallis separations on (R, N) rows, with derivatives of every order.

Every map here is the regularised argmax over the probability simplex (Wu et al. (2024), App. D.1, eqs. D.1-D.2)::

    alpha-entmax(z) = argmax_{p in simplex} <p, z> + H_alpha(p),
    H_alpha(p) = (1 - sum_i p_i^alpha) / (alpha (alpha - 1))     (Tsallis entropy; alpha = 1: Shannon),

whose solution is ``p_i = [1 + a (z_i - max(z) - v)]_+^{1 / a}`` with ``a = alpha - 1`` and one threshold
``v >= 0`` per row (Peters et al. (2019), Prop. 1; alpha = 1: ``p = exp(z - max - v)``, softmax).

How the threshold is found (no sort): with ``S(v) = sum_i p_i(v)`` the function ``F(v) = (S(v)^a - 1) / a`` is
convex and decreasing in ``v`` (``S^a`` is an ``L_{1/a}`` norm of a vector of convex functions), ``F(0) >= 0`` and
``F(v*) = 0``. One Newton step from ``v = 0`` and then secant steps through the two latest points stay on the left
of ``v*`` and increase monotonically; each step costs one fused pass over the scores. On the final linear piece of
sparsemax the secant step is exact (Michelot's (1986) mean on the support). 1.5-entmax recomputes the threshold in
closed form on the found support (the smaller root of a quadratic); general alpha runs the search to rounding level
and renormalises. General alpha pays a log and an exp per element and pass, so for rows of at least 32 scores it
first solves the problem of the maxima of blocks of 8 scores: a subset's threshold lies left of the full one (``S``
only grows with more elements) and usually close, leaving 0 to 3 passes over all scores.

Derivatives. :func:`separation_rows` and :func:`conjugate_rows` are two outputs of one ``jax.custom_jvp`` kernel
``(p, s, sum(s), psi)`` with ``s = p^(2 - alpha)`` and ``psi = Psi*_alpha(z)`` (Wu et al. (2024), eq. 2.3). Its rule
uses only closed forms in ``(p, s, sum(s), alpha)`` and calls the kernel itself for them, so differentiating the rule
(second and higher derivatives, reverse over reverse) never reaches the threshold search:

* ``dp = s dz - s <s, dz> / sum(s)`` (Peters et al. (2019), Prop. 2; for softmax ``s = p``, sparsemax the support
  indicator);
* ``dp/dalpha = g - s <g, 1> / sum(s)`` with ``g = p d log p / d alpha`` at a fixed threshold (derived here from
  ``log p = log1p(a w) / a``, ``w = z - max - v``; Correia et al. (2019) learn alpha with the same derivative): with
  ``L = log p`` and ``u = a L``, ``d log p / d alpha = -L^2 h1(-u)``, ``h1(y) = (e^y - 1 - y) / y^2``; the sum of
  ``dp`` stays 0;
* ``d psi = <p, dz> + dH/dalpha(p) dalpha`` (envelope theorem), ``H = -<p, w> / (1 + a)`` with
  ``w = (p^a - 1) / a = L h0(u)`` and ``dw/da = L^2 h2(u)``, where ``h0(u) = (e^u - 1) / u`` and
  ``h2(u) = (u e^u - e^u + 1) / u^2``;
* ``ds = (1 - a) p^(1 - 2a) q + s ((1 - a) d log p / d alpha - L) dalpha`` where ``dp = s q + g dalpha``.

``h0, h1, h2`` are smooth at 0 (a Taylor series near 0), so ``alpha = 1`` needs no special case: its
alpha-derivatives are the one-sided limits from ``alpha > 1``.

Rows with ``alpha = 1`` exactly run the softmax formula (``psi = logsumexp``) even when alpha is traced; a traced
``0 < alpha - 1 < 1e-6`` is computed as ``alpha - 1 = 1e-6`` (the value moves by ~1e-6; its derivatives use the true
alpha).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
  - Correia, Niculae, Martins (2019). Adaptively Sparse Transformers. EMNLP.
  - Martins, Astudillo (2016). From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label
    Classification. ICML.
  - Michelot (1986). A finite algorithm for finding the projection of a point onto the canonical simplex of R^n.
    Journal of Optimization Theory and Applications.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from dammem._types import Array

__all__ = [
    "SOFTMAX",
    "SPARSEMAX",
    "ENTMAX15",
    "GENERAL",
    "KIND_A",
    "MIN_A",
    "threshold_origin",
    "threshold_probs",
    "support_weights",
    "alpha_slope",
    "separation_rows",
    "conjugate_rows",
]

SOFTMAX, SPARSEMAX, ENTMAX15, GENERAL = "softmax", "sparsemax", "entmax15", "general"
KIND_A = {SOFTMAX: 0.0, ENTMAX15: 0.5, SPARSEMAX: 1.0}  # alpha - 1 of the closed-form kernels
_CHUNK = 256  # long rows are reduced as (rows * N / _CHUNK, _CHUNK) blocks: XLA:CPU reduces those ~2x faster
_MAX_ITERS = 64  # safety cap; the monotone secant converges in far fewer steps (typically 3-12)
_COMPACT_FRACTION = 4  # unsettled rows are gathered and finished apart once at most 1/4 of them remain
MIN_A = 1e-6  # the alpha - 1 floor: 0 < alpha - 1 < MIN_A runs at MIN_A (alpha = 1 exactly: the softmax formula)
_SERIES = 0.05  # |u| below which h0, h1, h2 are evaluated by their Taylor series (relative error < 1e-12)

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


def _base(kind: str, z: Array, c: Array) -> Array:
    """The sparse kernels' base x >= 0 with p = x^(1/a), for shifted scores ``z - max`` and column ``c = v - 1/a``.

    x = 1 + a (z - v) = a (z - c): carrying ``c`` rather than ``v`` keeps the threshold exact to float32 when the
    support is broad (c ~ -p_max^a is then near 0, while v ~ 1/a sits on a coarse grid and k of its ulps move the mass).
    """
    if kind == SPARSEMAX:
        return jnp.maximum(z - c, 0.0)
    if kind == ENTMAX15:
        return jnp.maximum(0.5 * z - 0.5 * c, 0.0)
    raise AssertionError(kind)


def threshold_origin(kind: str) -> float:
    """The search variable at v = 0: ``-1/a`` for the closed-form sparse kernels (see :func:`_base`), else 0."""
    return {SPARSEMAX: -1.0, ENTMAX15: -2.0}.get(kind, 0.0)


def threshold_probs(kind: str, z: Array, c: Array, a: Array, log_norm: Array | float = 0.0) -> Array:
    """``p_i = [1 + a (z_i - v)]_+^{1/a}`` (Peters et al. (2019), Prop. 1; softmax ``exp(z_i - v)``) on shifted scores
    ``z`` (max 0; ``-inf`` gives 0) for the threshold column ``c = v + threshold_origin(kind)``; ``a`` is the
    (column) alpha - 1. Normalised only at the threshold. Not differentiable off the support (general alpha).
    General alpha only: divided by ``exp(log_norm)`` inside the exponent (renormalisation without another pass)."""
    if kind == SOFTMAX:
        return jnp.exp(z - c)
    if kind == SPARSEMAX:
        return _base(kind, z, c)
    if kind == ENTMAX15:
        return jnp.square(_base(kind, z, c))
    return jnp.exp(jnp.log1p(jnp.maximum(a * (z - c), -1.0)) / a - log_norm)  # 0 off the support (log1p(-1) = -inf)


def support_weights(kind: str, p: Array, z: Array, c: Array, a: Array) -> Array:
    """``s = p^(2 - alpha)``, the slope of p in the scores (Peters et al. (2019), Prop. 2: ``dp = s dz - s dv``).

    ``p = threshold_probs(kind, z, c, a)``; softmax ``s = p``, sparsemax the support indicator, 1.5-entmax
    ``sqrt(p)``, general alpha ``p / (1 + a (z - c))`` (a division instead of another pow; 0 off the support).
    """
    if kind == SOFTMAX:
        return p
    if kind == SPARSEMAX:
        return jnp.ceil(p)  # p <= 1: ceil is the support indicator
    if kind == ENTMAX15:
        return jnp.sqrt(p)
    return p / jnp.maximum(1.0 + a * (z - c), jnp.finfo(p.dtype).tiny)


def alpha_slope(p: Array, a: Array) -> tuple[Array, Array, Array]:
    """``(log p, d log p / d alpha, g = p d log p / d alpha)`` at a fixed threshold, for ``p`` on shifted scores.

    From ``log p = log1p(a w) / a`` (``w`` the shifted score minus the threshold): with ``L = log p`` and
    ``u = a L``, ``d log p / d alpha = -L^2 h1(-u)`` (see the module docstring); ``log p = 0`` and ``g = 0`` off the
    support. The threshold's own alpha-derivative is ``<g, 1> / sum(s)`` (Peters et al. (2019), Prop. 2).
    """
    on = p > 0
    logp = jnp.log(jnp.where(on, p, 1.0))
    dlogp = -jnp.square(logp) * _h("h1", -(a * logp))
    return logp, dlogp, jnp.where(on, p * dlogp, 0.0)


def _objective(kind: str, s: Array, a: Array) -> Array:
    """F = (S^a - 1) / a: convex and decreasing in v, zero at the threshold (softmax: log S)."""
    if kind == SOFTMAX:
        return jnp.log(s)
    if kind == SPARSEMAX:
        return s - 1.0
    if kind == ENTMAX15:
        return 2.0 * (jnp.sqrt(s) - 1.0)
    return jnp.expm1(a * jnp.log(s)) / a


def _row_max(z: Array) -> tuple[Array, Array]:
    """Last-axis maxima and the live rows (not all -inf): 0 in rows of all -inf; NaN in rows with +inf or NaN.

    A NaN maximum (not 0) is what makes a +inf or NaN score poison its whole row instead of being read as a dead row.
    """
    zmax = jnp.max(z, axis=-1)
    live = zmax != -jnp.inf
    return jnp.where(live, jnp.where(zmax < jnp.inf, zmax, jnp.nan), 0.0), live


# ----------------------------------------------------------------------------------------------------------------
# Threshold search
# ----------------------------------------------------------------------------------------------------------------


def _solve_threshold(kind: str, zv: Array, a: Array, rv: _RowView, live: Array, tol: float):
    """Monotone Newton-then-secant search for ``v`` with ``sum_i p_i(v) = 1`` (see the module docstring).

    The search variable is ``v + origin`` (``origin = threshold_origin(kind)``), the column that
    :func:`threshold_probs` takes.

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
    origin = threshold_origin(kind)
    av = rv.col(a)

    def objective(v):
        return _objective(kind, rv.sum(threshold_probs(kind, zv, rv.col(v), av)), a)

    # First step from v = 0: Newton, F'(v) = -S^(a - 1) * sum_i s_i. For general alpha the weights
    # s = x^(1/a - 1) would cost a pow per element, so their sum is bounded without one (x <= 1): by sum_i x_i when
    # 1/a - 1 >= 1 (exact at alpha = 1.5) and by the support size otherwise. A shorter step stays on the left.
    c0 = jnp.full((), origin, dtype)
    s0 = rv.sum(threshold_probs(kind, zv, c0, av))
    f0 = _objective(kind, s0, a)
    if kind == GENERAL:
        x0 = jnp.maximum(1.0 + av * (zv - c0), 0.0)
        linear = rv.col((a <= 0.5).astype(dtype))
        wsum = rv.sum(linear * x0 + (1.0 - linear) * jnp.ceil(x0))  # x0 <= 1: ceil is the support indicator
    elif kind == SOFTMAX:
        wsum = s0
    elif kind == SPARSEMAX:  # the support indicator: x lies in [0, 1] (c >= -1) so ceil is 0 or 1
        wsum = rv.sum(jnp.ceil(_base(kind, zv, c0)))
    else:
        wsum = rv.sum(_base(kind, zv, c0))
    slope0 = wsum * jnp.exp((a - 1.0) * jnp.log(s0))
    v1 = origin + jnp.where(live & (slope0 > 0), f0 / jnp.where(slope0 > 0, slope0, 1.0), 0.0)
    if kind == SOFTMAX:  # F = log S(0) - v is linear: the Newton step is exact
        return v1, jnp.zeros_like(v1)
    done0 = ~live | ~(f0 > tol)
    state = (jnp.full_like(a, origin), f0, jnp.where(done0, origin, v1), f0, done0)
    return _secant_search(kind, zv, a, rv, state, tol)


def _search_objective(kind: str, zv: Array, a: Array, rv: _RowView):
    """``v -> F(v)`` for the rows of ``zv``: one pass over the data (general alpha: ``x^(1/a)``, ``1/a`` hoisted)."""
    av = rv.col(a)
    if kind != GENERAL:
        return lambda v: _objective(kind, rv.sum(threshold_probs(kind, zv, rv.col(v), av)), a)
    inv_a = rv.col(1.0 / a)
    return lambda v: _objective(kind, rv.sum(jnp.exp(jnp.log1p(jnp.maximum(av * (zv - rv.col(v)), -1.0)) * inv_a)), a)


def _secant_search(kind: str, zv: Array, a: Array, rv: _RowView, state: tuple, tol: float) -> tuple[Array, Array]:
    """Secant steps from ``state = (v_prev, f_prev, v, f, done)`` until every row settles: ``(v, F(v))`` per row."""
    step = partial(_secant_step, _search_objective(kind, zv, a, rv), tol)
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
    sub = tuple(x[take] for x in state[:4]) + (state[4][take] | (unsettled == rows),)
    sub = _iterate(partial(_secant_step, _search_objective(kind, sub_zv, sub_a, rv), tol), sub, limit=0)
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
        return (it < _MAX_ITERS) & (jnp.sum(~state[-1]) > limit)

    def body(carry):
        state, it = carry
        return step(state), it + 1

    return lax.while_loop(cond, body, (state, jnp.int32(0)))[0]


# General alpha: the search on all scores starts from the threshold of a subset of them (the block maxima).
_BLOCK = 8  # general alpha: the candidate scores are the maxima of blocks of this many scores
_MIN_CANDIDATE_N = 4 * _BLOCK  # shorter rows start the search at v = 0


def _general_threshold(zs: Array, zv: Array, a: Array, rv: _RowView, live: Array, tol: float):
    """The threshold of general alpha (R,) and ``F`` there, for shifted scores ``zs`` (R, N) (``zv`` their view).

    Start: the scores' block maxima are a subset of the scores, so their threshold is a lower bound of the full one
    (``S`` only grows with more elements) and lies where ``F >= 0``: the same search solves that smaller problem (1/8
    of the data) and continues from there on all scores, typically in 0 to 3 steps (the maxima carry most of the mass).
    """
    rows, n = zs.shape
    if n < _MIN_CANDIDATE_N:
        return _solve_threshold(GENERAL, zv, a, rv, live, tol)
    pad = -n % _BLOCK
    if pad:
        zs = jnp.pad(zs, ((0, 0), (0, pad)), constant_values=-jnp.inf)
    cand = jnp.max(zs.reshape(rows, -1, _BLOCK), axis=-1)
    crv = _RowView(cand.shape[-1])
    v0 = _solve_threshold(GENERAL, crv.view(cand), a, crv, live, tol)[0]
    # The barrier hides from XLA that a per-row alpha may be one broadcast scalar: XLA:CPU would otherwise fuse the
    # two passes below with full-size (R, N) copies of 1/a (a rounding-free reordering; measured ~10% faster)
    a = lax.optimization_barrier(a)
    f0 = _search_objective(GENERAL, zv, a, rv)(v0)
    # The first step on all scores: Newton with |F'| = S^(a-1) sum_i s_i overestimated without a pow per element
    # (as from v = 0 in _solve_threshold: s_i <= x_i for a <= 1/2, s_i <= 1 on the support otherwise; x_i <= 1), so
    # it stays on the left; the candidates' own slope can overshoot to an empty support (all scores tied).
    x0 = jnp.maximum(1.0 + rv.col(a) * (zv - rv.col(v0)), 0.0)
    linear = rv.col((a <= 0.5).astype(zv.dtype))
    wsum = rv.sum(linear * x0 + (1.0 - linear) * jnp.ceil(x0))
    slope = wsum * jnp.exp((a - 1.0) / a * jnp.log1p(a * f0))  # S^(a-1) = (1 + a F)^((a-1)/a)
    done0 = ~live | ~(jnp.abs(f0) > tol)
    good = jnp.isfinite(f0) & (slope > 0)
    step = jnp.where(good, f0 / jnp.where(good, slope, 1.0), 0.0)
    state = (v0, f0, jnp.where(done0, v0, v0 + step), f0, done0)
    return _secant_search(GENERAL, zv, a, rv, state, tol)


# ----------------------------------------------------------------------------------------------------------------
# The solution: (p, s, sum s, psi) of each row
# ----------------------------------------------------------------------------------------------------------------


def _solve(kind: str, z2: Array, a: Array) -> tuple[Array, Array, Array, Array]:
    """(p, s, sum s, psi) of (R, N) rows: probabilities, ``s = p^(2 - alpha)`` (R, N), its row sums (R,; 1 where
    zero) and the conjugate ``Psi*_alpha`` (R,).

    sparsemax: the secant through two points of the final linear piece of F is Michelot's closed form on that
    support, so the converged ``v`` is already the exact threshold. 1.5-entmax: the search stops once the support
    is found up to elements within ~1e-3 of the threshold (their inclusion perturbs the result only quadratically,
    < 1e-6) and the threshold is recomputed in closed form on that support. General alpha: the search runs to
    rounding level and the probabilities are renormalised.

    ``psi = max + v / alpha + (1 - 1 / alpha) <p, z - max>`` (no logs; -inf for rows with no finite score).
    """
    rows, n = z2.shape
    rv = _RowView(n)
    zmax, live = _row_max(z2)
    zv = rv.view(z2 - zmax[:, None])
    a_exact = a
    if kind == GENERAL:
        a = jnp.maximum(a, MIN_A)  # NaN (invalid traced alpha) propagates through maximum
    eps = float(jnp.finfo(zv.dtype).eps)
    if kind == GENERAL:
        v, f = _general_threshold(z2 - zmax[:, None], zv, a, rv, live, 16 * eps)
    else:
        v, f = _solve_threshold(kind, zv, a, rv, live, 1e-3 if kind == ENTMAX15 else 16 * eps)
    av = rv.col(a)
    if kind == ENTMAX15:  # sum_{i in S}(x_i - d)^2 = 1 on the found support: the smaller root
        x = _base(kind, zv, rv.col(v))
        k = jnp.maximum(rv.sum(jnp.ceil(x)), 1.0)  # x <= 1: ceil is the support indicator
        s1 = rv.sum(x)
        s2 = jnp.square(1.0 + 0.5 * f)  # S(v) from the search's last evaluation
        d = (s2 - 1.0) / (s1 + jnp.sqrt(jnp.maximum(s1 * s1 - k * (s2 - 1.0), 0.0)))
        v = jnp.where(live, v + 2.0 * d, threshold_origin(kind))
        ssum = s1 - k * d  # = sum_i sqrt(p_i) on the support, without another pass
    c = rv.col(v)
    if kind == GENERAL:
        # renormalised (a rounding-level correction) by S(v) = (1 + a F(v))^(1/a), the inverse of _objective: the
        # search's last evaluation is at this very v (see _secant_step), so no pass over p is needed for its sum,
        # and log S enters the exponent, so p is written once
        log_total = jnp.log1p(a * f) / a
        p = threshold_probs(kind, zv, c, av, rv.col(jnp.where(live & jnp.isfinite(log_total), log_total, 0.0)))
    else:
        p = threshold_probs(kind, zv, c, av)
    if kind == SOFTMAX:  # no closed form: renormalise (a rounding-level correction)
        total = rv.sum(p)
        p = p / rv.col(jnp.where(total > 0, total, 1.0))
    s = support_weights(kind, p, zv, c, av)
    if kind in (SOFTMAX, SPARSEMAX):
        ssum = rv.sum(s)
    elif kind == GENERAL:
        # renormalising fixes p but not v (the conjugate's input): one Newton step with the exact slope
        # F' = -S^a sum(s) (normalised s). The search's secant can end a few 1e-4 past the root when alpha -> 1 (a
        # tiny first step makes its slope ill-conditioned). Unused, v is dead code under jit.
        ssum = rv.sum(s)
        v = v + f / ((1.0 + a * f) * jnp.where(ssum > 0, ssum, 1.0))
    ssum = jnp.where(ssum > 0, ssum, 1.0)
    alpha = 1.0 + a
    pz = rv.sum(jnp.where(p > 0, p * zv, 0.0))
    psi = zmax + (v - threshold_origin(kind)) / alpha + (1.0 - 1.0 / alpha) * pz
    psi = jnp.where(live, psi, -jnp.inf)
    if kind == GENERAL:  # rows with alpha = 1 exactly: the softmax formula (skipped when there are none)
        one = a_exact == 0.0
        softmax_rows = partial(_exact_softmax_rows, one, zv, zmax, live, rv)
        p, s, ssum, psi = lax.cond(jnp.any(one), softmax_rows, lambda x: x, (p, s, ssum, psi))
    return rv.unview(p, rows), rv.unview(s, rows), ssum, psi


def _exact_softmax_rows(one, zv, zmax, live, rv, outputs):
    """Replace the rows ``one`` of ``outputs = (p, s, sum s, psi)`` by softmax: ``p = s = exp(z - max) / S``,
    ``sum s = 1``, ``psi = lse``."""
    p, s, ssum, psi = outputs
    e = jnp.exp(zv)
    total = rv.sum(e)
    p1 = e / rv.col(jnp.where(total > 0, total, 1.0))
    psi1 = jnp.where(live, zmax + jnp.log(total), -jnp.inf)
    col = rv.col(one)
    return jnp.where(col, p1, p), jnp.where(col, p1, s), jnp.where(one, 1.0, ssum), jnp.where(one, psi1, psi)


# ----------------------------------------------------------------------------------------------------------------
# Derivatives: closed forms in (p, s, alpha), differentiable to any order
# ----------------------------------------------------------------------------------------------------------------


def _series(u: Array, coeffs: tuple[float, ...]) -> Array:
    out = jnp.full_like(u, coeffs[-1])
    for c in coeffs[-2::-1]:
        out = out * u + c
    return out


# Taylor coefficients up to u^5: h0 = sum u^k / (k+1)!, h1 = sum u^k / (k+2)!, h2 = sum (k+1) u^k / (k+2)!
_H0 = (1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720)
_H1 = (1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040)
_H2 = (1 / 2, 2 / 6, 3 / 24, 4 / 120, 5 / 720, 6 / 5040)


def _h(which: str, u: Array) -> Array:
    """h0(u) = (e^u - 1) / u, h1(u) = (e^u - 1 - u) / u^2, h2(u) = (u e^u - e^u + 1) / u^2 (smooth at u = 0)."""
    small = jnp.abs(u) < _SERIES
    us = jnp.where(small, 1.0, u)  # keeps the unused branch (and its derivatives) finite
    if which == "h0":
        return jnp.where(small, _series(u, _H0), jnp.expm1(us) / us)
    if which == "h1":
        return jnp.where(small, _series(u, _H1), (jnp.expm1(us) - us) / (us * us))
    return jnp.where(small, _series(u, _H2), (us * jnp.exp(us) - jnp.expm1(us)) / (us * us))


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _tsallis(kind: str, z2: Array, a: Array) -> tuple[Array, Array, Array, Array]:
    return _solve(kind, z2, a)


@partial(_tsallis.defjvp, symbolic_zeros=True)
def _tsallis_jvp(kind, primals, tangents):
    z2, a = primals
    dz, da = tangents
    out = _tsallis(kind, z2, a)  # the kernel itself: differentiating this rule uses this rule again
    rv = _RowView(z2.shape[-1])
    rows = z2.shape[0]
    p, s, ssum, psi = rv.view(out[0]), rv.view(out[1]), out[2], out[3]
    on = p > 0
    # dp = s (dz - dv) + g dalpha with the threshold's tangent dv = (<s, dz> + <g, 1> dalpha) / sum(s)
    dp, q, dv, dpsi = jnp.zeros_like(p), jnp.zeros_like(p), jnp.zeros_like(psi), jnp.zeros_like(psi)
    if type(dz) is not SymbolicZero:
        q = rv.view(dz)
        dp = s * q
        dv = rv.sum(dp) / ssum
        dpsi = rv.sum(jnp.where(on, p * q, 0.0))  # the envelope theorem: d psi / dz = p
    ds_alpha = None
    if kind == GENERAL and type(da) is not SymbolicZero:
        av, dav = rv.col(a), rv.col(da)
        logp, dlogp, g = alpha_slope(p, av)
        u = av * logp  # log p^a, in (-inf, 0]
        dp = dp + g * dav
        dv = dv + rv.sum(g) / ssum * da
        w = logp * _h("h0", u)  # (p^a - 1) / a
        dw = jnp.square(logp) * _h("h2", u)  # dw / da at fixed p
        dpsi = dpsi - rv.sum(jnp.where(on, p * (dw / (1.0 + av) - w / jnp.square(1.0 + av)), 0.0)) * da
        ds_alpha = jnp.where(on, s * ((1.0 - av) * dlogp - logp), 0.0) * dav
    dvc = rv.col(dv)
    dp = dp - s * dvc
    q = q - dvc
    # ds = (1 - a) p^(1 - 2a) q (+ the alpha term): p^(1 - 2a) is p (softmax), 1 (1.5-entmax), unused (sparsemax)
    if kind == SOFTMAX:
        ds = dp
    elif kind == SPARSEMAX:
        ds = jnp.zeros_like(p)
    elif kind == ENTMAX15:
        ds = jnp.where(on, 0.5 * q, 0.0)
    else:
        av = rv.col(a)
        r = jnp.exp((1.0 - 2.0 * av) * jnp.log(jnp.where(on, p, 1.0)))
        ds = jnp.where(on, (1.0 - av) * r * q, 0.0)
    if ds_alpha is not None:
        ds = ds + ds_alpha
    return out, (rv.unview(dp, rows), rv.unview(ds, rows), rv.sum(ds), dpsi)


def separation_rows(kind: str, z2: Array, a: Array) -> Array:
    """alpha-entmax of each row of ``z2`` (R, N); ``a = alpha - 1`` (R,) (ignored by the fixed kinds).

    ``kind`` is ``SOFTMAX``, ``SPARSEMAX``, ``ENTMAX15`` (closed-form kernels, ``a`` must equal ``KIND_A[kind]``)
    or ``GENERAL`` (any ``a`` in [0, 1]; NaN rows for NaN ``a``). Unvalidated: callers check their arguments.
    """
    return _tsallis(kind, z2, a)[0]


def conjugate_rows(kind: str, z2: Array, a: Array) -> Array:
    """``Psi*_alpha`` of each row of ``z2`` (R, N) -> (R,); arguments as :func:`separation_rows`."""
    return _tsallis(kind, z2, a)[3]
