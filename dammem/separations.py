"""Separation maps (softmax, sparsemax, 1.5-entmax, alpha-entmax) and their convex conjugates.

Shape legend: ``N`` scores along ``axis``; every other axis is a batch axis.

Every map here is the regularised argmax over the probability simplex (Wu et al. (2024), App. D.1, eqs. D.1-D.2)::

    alpha-entmax(z) = argmax_{p in simplex} <p, z> + H_alpha(p),
    H_alpha(p) = (1 - sum_i p_i^alpha) / (alpha (alpha - 1))     (Tsallis entropy; alpha = 1: Shannon),

so softmax is ``alpha = 1``, sparsemax ``alpha = 2`` (Martins & Astudillo (2016)) and 1.5-entmax ``alpha = 1.5``
(Peters et al. (2019)). The solution is ``p_i = [1 + (alpha - 1)(z_i - max(z) - v)]_+^{1 / (alpha - 1)}`` for one
threshold ``v >= 0`` per row, found without sorting by a monotone Newton-then-secant search (see
``dammem._entmax_solver``). The value of the maximisation is the conjugate ``Psi*_alpha`` (Wu et al. (2024),
eq. 2.3); its gradient in ``z`` is the separation.

Derivatives: first and higher derivatives in ``z`` and ``alpha`` (forward, reverse and mixed modes) use closed
forms, never the threshold search: ``J = diag(s) - s s^T / sum(s)`` with ``s = p^(2 - alpha)`` (Peters et al.
(2019), Prop. 2) and the derivative in alpha at the solution. Second derivatives are exact where no score sits on
the support boundary; for ``alpha > 1.5`` they grow without bound as a score approaches it (``p^(3 - 2 alpha)``).

Compiled once: every function here runs one jitted kernel (static ``axis`` and kernel kind; ``alpha``, ``z`` and
``where`` are arguments), so eager calls with the same shapes reuse the compiled code and a changing alpha never
recompiles.

Edge cases (all documented behaviour, tested):

* ``-inf`` scores (or ``where=False``) get exactly zero probability.
* A row with no finite score returns all zeros (not a distribution) with zero gradient; its conjugate is ``-inf``.
* ``+inf`` or NaN scores give NaN in their row.
* bfloat16 / float16 inputs are computed in float32 and the result is cast back.
* alpha must lie in (1, 2] for :func:`entmax` (``alpha -> 1`` approaches softmax, ``alpha = 2`` is sparsemax) and in
  [1, 2] for :func:`tsallis_separation` and :func:`conjugate`; concrete values outside raise ``ValueError``; traced
  values outside give NaN. ``alpha = 1`` is exactly softmax / logsumexp, traced or not; a traced alpha with
  ``0 < alpha - 1 < 1e-6`` is computed as ``1 + 1e-6``. Derivatives in alpha at ``alpha = 1`` are the one-sided
  limits from ``alpha > 1``.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
  - Martins, Astudillo (2016). From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label
    Classification. ICML.
  - Michelot (1986). A finite algorithm for finding the projection of a point onto the canonical simplex of R^n.
    Journal of Optimization Theory and Applications.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem._entmax_solver import ENTMAX15, GENERAL, KIND_A, SOFTMAX, SPARSEMAX, conjugate_rows, separation_rows
from dammem._types import Array, ArrayLike
from dammem._validate import check_alpha_range, check_axis, check_floating, check_mask, check_real, is_concrete

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
    "SeparationSpec",
    "resolve_separation",
]


# ----------------------------------------------------------------------------------------------------------------
# Argument checks (outside jit: they need concrete shapes and, for the range of alpha, concrete values)
# ----------------------------------------------------------------------------------------------------------------


def _check_scores(z: ArrayLike, axis: int, where: ArrayLike | None, name: str) -> tuple[Array, int, Array | None]:
    """Validate the scores, the axis and the mask. Returns (z, axis in [0, ndim), mask or None)."""
    z = check_floating(z, "z", name)
    if z.ndim == 0:
        raise ValueError(f"{name}: z must have at least one axis, got a scalar")
    axis = check_axis(axis, z.ndim, name)
    if z.shape[axis] == 0:
        raise ValueError(f"{name}: z has size 0 along axis {axis}; at least one score is needed")
    where = check_mask(where, z.shape, name, name="where", meaning="True = keep", target="z of shape")
    return z, axis, where


def _check_alpha(alpha: ArrayLike, shape: tuple, axis: int, name: str, allow_one: bool) -> Array:
    """Validate alpha against scores of ``shape``: real, size 1 along ``axis``, broadcastable, in range if concrete."""
    if alpha is None:
        allowed = "[1, 2]" if allow_one else "(1, 2]"
        raise TypeError(f"{name}: alpha is required: a real number or array in {allowed}, got None")
    alpha_arr = check_real(alpha, "alpha", name)
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
    check_alpha_range(alpha, name, allow_one=allow_one)
    return alpha_arr


def _moved_rows(z: Array, where: Array | None, axis: int) -> tuple[Array, Array]:
    """Mask, upcast low precision to float32 and move ``axis`` last: (moved scores, (R, N) rows)."""
    if where is not None:
        z = jnp.where(where, z, -jnp.inf)
    zt = jnp.moveaxis(z.astype(jnp.promote_types(z.dtype, jnp.float32)), axis, -1)
    return zt, zt.reshape(-1, zt.shape[-1])


def _alpha_rows(alpha: Array, shape: tuple, axis: int, allow_one: bool, dtype) -> Array:
    """``alpha - 1`` per row of the moved-axis scores (R,); a (traced) alpha out of range gives NaN, never silence."""
    full = (1,) * (len(shape) - alpha.ndim) + tuple(alpha.shape)
    a = alpha.reshape(full).astype(jnp.promote_types(alpha.dtype, jnp.float32)) - 1.0
    low = 0.0 if allow_one else jnp.finfo(a.dtype).tiny
    a = jnp.where((a >= low) & (a <= 1.0), a, jnp.nan)
    moved = tuple(np.delete(shape, axis)) + (1,)
    return jnp.broadcast_to(jnp.moveaxis(a, axis, -1), moved).reshape(-1).astype(dtype)


@partial(jax.jit, static_argnames=("kind", "axis", "allow_one", "output"))
def _tsallis_kernel(z, where, alpha, *, kind: str, axis: int, allow_one: bool, output: str) -> Array:
    """The separation (``output="p"``) or the conjugate (``"psi"``) of validated arguments."""
    zt, z2 = _moved_rows(z, where, axis)
    if kind == GENERAL:
        a = _alpha_rows(alpha, z.shape, axis, allow_one, zt.dtype)
    else:
        a = jnp.full(z2.shape[:1], KIND_A[kind], zt.dtype)
    if output == "psi":
        return conjugate_rows(kind, z2, a).reshape(zt.shape[:-1]).astype(z.dtype)
    p = separation_rows(kind, z2, a)
    return jnp.moveaxis(p.reshape(zt.shape), -1, axis).astype(z.dtype)


@partial(jax.jit, static_argnames=("axis",))
def _softmax_kernel(z, where, *, axis: int) -> Array:
    zt, _ = _moved_rows(z, where, axis)
    zmax = jnp.max(zt, axis=-1, keepdims=True)
    live = zmax != -jnp.inf  # a row of all -inf gives zeros; +inf or NaN (NaN max) poison their row
    zmax = lax.stop_gradient(jnp.where(live, jnp.where(zmax < jnp.inf, zmax, jnp.nan), 0.0))
    e = jnp.exp(zt - zmax)
    total = jnp.sum(e, axis=-1, keepdims=True)
    p = e / jnp.where(total > 0, total, 1.0)
    return jnp.moveaxis(p, -1, axis).astype(z.dtype)


def _apply(kind: str, z, alpha, axis: int, where, name: str, allow_one: bool = False, output: str = "p") -> Array:
    z, axis, where = _check_scores(z, axis, where, name)
    if kind == GENERAL:
        alpha = _check_alpha(alpha, z.shape, axis, name, allow_one)
    elif alpha is not None:
        _check_alpha(alpha, z.shape, axis, name, allow_one)  # shape errors even for a fixed kernel
        alpha = None  # the kernel fixes alpha: not an argument of the compiled code
    return _tsallis_kernel(z, where, alpha, kind=kind, axis=axis, allow_one=allow_one, output=output)


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
      >>> [round(p, 4) for p in softmax(jnp.array([0.0, jnp.log(3.0)])).tolist()]
      [0.25, 0.75]
    """
    z, axis, where = _check_scores(z, axis, where, "softmax")
    return _softmax_kernel(z, where, axis=axis)


def sparsemax(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Sparsemax: Euclidean projection onto the simplex, ``p = [z - tau]_+`` (alpha-entmax with alpha = 2).

    Martins & Astudillo (2016), Sec. 2; Wu et al. (2024), eq. D.1 with alpha = 2. Exact zeros off the support.
    Sort-free: the threshold is found by a monotone secant search whose last step is Michelot's (1986) closed form on
    the support.

    Args:
      z: scores, any shape (..., N, ...).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> [round(p, 4) for p in sparsemax(jnp.array([1.0, 0.8, -1.0])).tolist()]
      [0.6, 0.4, 0.0]
    """
    return _apply(SPARSEMAX, z, None, axis, where, "sparsemax")


def entmax15(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """1.5-entmax: ``p = [z / 2 - tau]_+^2`` (Peters et al. (2019), Prop. 1 with alpha = 1.5).

    Sort-free threshold search, then the exact threshold on the found support (a quadratic's smaller root).

    Args:
      z: scores, any shape (..., N, ...).
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> [round(p, 4) for p in entmax15(jnp.array([2.0, 1.0, -3.0])).tolist()]  # the last entry is exactly 0
      [0.8307, 0.1693, 0.0]
    """
    return _apply(ENTMAX15, z, None, axis, where, "entmax15")


def entmax(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """alpha-entmax: ``p_i = [(alpha - 1) z_i - tau]_+^{1 / (alpha - 1)}`` (Wu et al. (2024), eq. D.1).

    The closed form is Peters et al. (2019), Prop. 1.

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
      >>> [round(p, 4) for p in entmax(jnp.array([2.0, 1.0, -3.0]), alpha=1.25).tolist()]
      [0.7754, 0.2246, 0.0]
    """
    kind = closed_form_kernel(alpha)
    return _apply(GENERAL if kind == SOFTMAX else kind, z, alpha, axis, where, "entmax")


def tsallis_separation(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """The separation for any alpha in [1, 2]: softmax at alpha = 1, alpha-entmax above; the gradient of
    :func:`conjugate` in ``z``.

    Energies whose alpha may equal 1 (the generalized sparse Hopfield family, Wu et al. (2024), eq. 2.3) use this;
    it is :func:`entmax` with the softmax end point included. ``alpha = 1`` is exactly softmax, traced or not (a
    traced ``0 < alpha - 1 < 1e-6`` is computed as ``1 + 1e-6``); the derivative in alpha there is the one-sided
    limit from ``alpha > 1``.

    Args:
      z: scores (..., N, ...).
      alpha: in [1, 2]; scalar or broadcast per row like :func:`entmax`.
      axis: the axis holding the N scores.
      where: optional boolean mask; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.
    """
    kind = closed_form_kernel(alpha)
    if kind == SOFTMAX:  # the direct formula, the one softmax of this module
        z, axis, where = _check_scores(z, axis, where, "tsallis_separation")
        _check_alpha(alpha, z.shape, axis, "tsallis_separation", allow_one=True)
        return _softmax_kernel(z, where, axis=axis)
    return _apply(kind, z, alpha, axis, where, "tsallis_separation", allow_one=True)


def conjugate(z: ArrayLike, alpha: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Convex conjugate of the Tsallis regulariser, ``Psi*_alpha(z) = <p*, z> + H_alpha(p*)``, p* = alpha-entmax(z).

    Wu et al. (2024), eq. 2.3 and App. D.1: ``Psi*_1 = logsumexp``; ``Psi*_2(z) = <p, z> + (1 - ||p||^2) / 2`` with
    p the sparsemax. Its gradient in ``z`` is ``p*`` (the separation output), which is what makes the energies of
    :mod:`dammem.energies` descend to the retrieval updates. Computed without logarithms as
    ``max z + v / alpha + (1 - 1/alpha) <p*, z - max z>``; differentiable in ``z`` and ``alpha`` to any order (its
    Hessian in ``z`` is the separation's Jacobian). ``alpha = 1`` is exactly logsumexp, traced or not.

    Args:
      z: scores (..., N, ...).
      alpha: in [1, 2] (1 = logsumexp); scalar or broadcast per row like :func:`entmax`.
      axis: the axis holding the N scores (reduced away).
      where: optional boolean mask; False entries are excluded.

    Returns:
      ``z`` with ``axis`` removed; ``-inf`` for rows with no finite score.

    Example:
      >>> round(float(conjugate(jnp.zeros(4), 1.0)), 4)  # log(4)
      1.3863
    """
    return _apply(closed_form_kernel(alpha), z, alpha, axis, where, "conjugate", allow_one=True, output="psi")


@dataclasses.dataclass(frozen=True)
class SeparationSpec:
    """One entry of :data:`SEPARATIONS`: what callers need to run a separation given by name.

    Attributes:
      fn: the separation, ``fn(z, axis=-1, *, where=None)``, or ``fn(z, alpha, axis=-1, *, where=None)`` when it
        takes alpha.
      takes_alpha: whether ``fn`` takes alpha as its second argument.
      alpha: the Tsallis alpha the separation is (softmax 1, 1.5-entmax 1.5, sparsemax 2); None when it takes alpha
        or is not a Tsallis separation.
      kernel: the threshold kernel of :mod:`dammem._entmax_solver` that computes it (a closed form for a fixed alpha,
        the general search otherwise); None for a separation outside the Tsallis family.
    """

    fn: Callable[..., Array]
    takes_alpha: bool
    alpha: float | None
    kernel: str | None


SEPARATIONS: dict[str, SeparationSpec] = {
    "softmax": SeparationSpec(softmax, takes_alpha=False, alpha=1.0, kernel=SOFTMAX),
    "sparsemax": SeparationSpec(sparsemax, takes_alpha=False, alpha=2.0, kernel=SPARSEMAX),
    "entmax15": SeparationSpec(entmax15, takes_alpha=False, alpha=1.5, kernel=ENTMAX15),
    "entmax": SeparationSpec(entmax, takes_alpha=True, alpha=None, kernel=GENERAL),
}
"""The separations by name: the one registry the core, :mod:`dammem.attention`, the layers and the sharded
functions look names up in."""

Separation = Union[str, Callable[..., Array]]


def closed_form_kernel(alpha: ArrayLike | None) -> str:
    """The kernel for alpha: a concrete alpha equal everywhere to the fixed alpha of a registered separation runs that
    separation's closed-form kernel (alpha 1: softmax, 1.5: 1.5-entmax, 2: sparsemax); anything else (traced, varying,
    other values) the general threshold search."""
    if alpha is None or not is_concrete(alpha):
        return GENERAL
    arr = np.asarray(alpha)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        return GENERAL  # not a real number: the alpha check raises the error that names alpha
    values = np.unique(arr.astype(np.float64))
    if values.size != 1:
        return GENERAL
    for spec in SEPARATIONS.values():
        if spec.alpha is not None and spec.kernel is not None and spec.alpha == float(values[0]):
            return spec.kernel
    return GENERAL


def resolve_separation(separation: Separation, alpha: ArrayLike | None, where: str | None) -> SeparationSpec | None:
    """The registry entry of a separation given by name (None for a callable), with the alpha rule checked: alpha is
    given exactly when the named separation takes one. The value of alpha is the caller's to check.

    ``where`` (the calling function) starts the error messages; None leaves them unprefixed for a caller that adds
    its own name.

    Example:
      >>> resolve_separation("sparsemax", None, "f").alpha
      2.0
      >>> resolve_separation("softmax", 1.5, "f")
      Traceback (most recent call last):
      ValueError: f: separation='softmax' has a fixed alpha=1.0; alpha is only used with 'entmax'
    """
    prefix = f"{where}: " if where else ""
    takers = " or ".join(repr(name) for name, spec in SEPARATIONS.items() if spec.takes_alpha)
    if callable(separation):
        if alpha is not None:
            raise ValueError(f"{prefix}alpha is only used with {takers}; got a callable separation and alpha")
        return None
    if not isinstance(separation, str) or separation not in SEPARATIONS:
        raise ValueError(
            f"{prefix}unknown separation {separation!r}; expected one of {list(SEPARATIONS)} or a callable"
            " sep(z, axis=-1, where=mask)"
        )
    spec = SEPARATIONS[separation]
    if spec.takes_alpha and alpha is None:
        raise ValueError(f"{prefix}separation={separation!r} needs alpha")
    if not spec.takes_alpha and alpha is not None:
        fixed = " takes no alpha" if spec.alpha is None else f" has a fixed alpha={spec.alpha}"
        raise ValueError(f"{prefix}separation={separation!r}{fixed}; alpha is only used with {takers}")
    return spec


def get_separation(separation: Separation, alpha: ArrayLike | None = None) -> Callable[..., Array]:
    """Look up a separation by name (a key of :data:`SEPARATIONS`) or pass a callable.

    Args:
      separation: a name from :data:`SEPARATIONS` or a callable ``sep(z, axis=-1)``.
      alpha: the alpha of a separation that takes one (``entmax``), refused elsewhere.

    Returns:
      A function ``sep(z, axis=-1)``.
    """
    spec = resolve_separation(separation, alpha, "get_separation")
    if spec is None:
        return separation
    return partial(spec.fn, alpha=alpha) if spec.takes_alpha else spec.fn


def separation_alpha(separation: str, alpha: ArrayLike | None = None) -> ArrayLike:
    """The Tsallis alpha of a named separation (softmax 1, entmax15 1.5, sparsemax 2, entmax: ``alpha``).

    Errors about the name or the alpha rule are unprefixed: callers add their own function name.
    """
    if callable(separation):
        raise ValueError("separation_alpha: a callable separation has no known alpha; pass a name")
    spec = resolve_separation(separation, alpha, None)
    if spec.takes_alpha:
        return alpha
    if spec.alpha is None:
        raise ValueError(f"separation_alpha: separation={separation!r} is not a Tsallis separation; it has no alpha")
    return spec.alpha


# ----------------------------------------------------------------------------------------------------------------
# Outside the Tsallis family
# ----------------------------------------------------------------------------------------------------------------


def polynomial(z: ArrayLike, power: float, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """Normalised rectified polynomial ``p_i = max(z_i, 0)^n / sum_j max(z_j, 0)^n``.

    The rectified polynomial ``F(s) = max(s, 0)^n`` of the dense associative memory of Krotov & Hopfield (2016) as a
    separation over the memories: with the inner product it is the "Dense Associative Memory (polynomial)" baseline
    of Wu et al. (2024), Sec. 4.1 and Table 3 (n = 10). Computed as ``softmax(n log z_i)`` over the positive scores,
    so large scores cannot overflow; a positive rescaling of ``z`` (beta) does not change it. Not a Tsallis
    separation (:func:`separation_alpha` refuses it).

    Edge cases: scores <= 0 (or ``where=False``) get probability 0 with zero gradient; a row without a positive
    score returns zeros; NaN or ``+inf`` scores give NaN in their row.

    Args:
      z: scores, any shape (..., N, ...).
      power: the exponent ``n > 0``.
      axis: the axis holding the N scores.
      where: optional boolean mask broadcastable to ``z``; False entries get probability 0.

    Returns:
      Probabilities with the shape and dtype of ``z``.

    Example:
      >>> [round(p, 4) for p in polynomial(jnp.array([2.0, 1.0, -3.0]), 2).tolist()]  # (4, 1, 0) / 5
      [0.8, 0.2, 0.0]
    """
    if isinstance(power, bool) or not isinstance(power, (int, float, np.integer, np.floating)) or not power > 0:
        raise ValueError(f"polynomial: power must be a number > 0, got {power!r}")
    z = check_floating(z, "z", "polynomial")
    positive = ~(z <= 0)  # NaN counts as positive: it must reach the output
    mask = positive if where is None else positive & jnp.asarray(where)
    logits = power * jnp.log(jnp.where(positive, z, 1.0))
    return softmax(logits, axis, where=mask).astype(z.dtype)


def polynomial10(z: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None) -> Array:
    """:func:`polynomial` with ``n = 10``, the order of the baseline of Wu et al. (2024), Sec. 4.1."""
    return polynomial(z, 10, axis, where=where)


SEPARATIONS["polynomial10"] = SeparationSpec(polynomial10, takes_alpha=False, alpha=None, kernel=None)
__all__ += ["polynomial", "polynomial10"]
