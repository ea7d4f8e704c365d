"""Memory- and batch-parallel retrieval over a device mesh (``jax.sharding``, ``jax.shard_map``).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``B`` queries, ``F`` feature width of a DrDAM memory;
``n`` devices along the mesh axis that splits the memories (``K_loc = K / n`` per device). Attention uses the
layout of :func:`dammem.attention.hopfield_attention`: ``Q`` queries, ``S`` stored patterns (keys), ``H`` heads,
``D`` key width, ``D_v`` value width.

The single-device functions stay the default; everything here computes the same numbers with the data spread over
the devices of a :class:`jax.sharding.Mesh` (one host with several GPUs or TPUs, or several hosts after
``jax.distributed.initialize()``; on a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8).

Memory parallel: the memories (K, D) are split along ``K`` over one mesh axis; every device scores the queries
against its own memories and only reductions cross devices, so a memory shard is never gathered onto one device:

- softmax (alpha = 1): ``m = max`` over all devices (``pmax``), ``Z = sum_d sum_i exp(z_i - m)`` (``psum``),
  ``p = exp(z - m) / Z``; the conjugate is ``lse(z) = m + log Z``.
- alpha-entmax, alpha in (1, 2] (Peters et al. (2019), Prop. 1; Wu et al. (2024), eq. D.1):
  ``p_i = [1 + a (z_i - m - v)]_+^{1/a}`` with ``a = alpha - 1`` and one threshold ``v`` per row where
  ``S(v) = sum_d sum_i p_i(v) = 1``. ``S`` decreases in ``v``, ``S(0) >= 1`` and ``S(v_hi) <= 1`` at
  ``v_hi = (1 - K^-a) / a`` (every ``p_i <= 1/K`` there). A few bisection steps bracket ``v``, then Newton steps
  on ``F(v) = (S(v)^a - 1) / a``, which is convex and decreasing (see :mod:`dammem.separations`), rise
  monotonically onto the root; each step needs one ``psum`` of two numbers per row, ``S`` and ``-S' = sum_i w_i``
  with ``w = p^(2 - alpha)``. For sparsemax the Newton step is Michelot's (1986) mean on the support,
  ``v = (sum_{i in S} (1 + z_i - m) - 1) / |S|``, so it ends exactly once the support is found.
- the conjugate ``Psi*_alpha(z) = m + v / alpha + (1 - 1 / alpha) <p, z - m>`` (Wu et al. (2024), eq. 2.3; the
  value of the maximisation at its solution), and the read-out ``Xi^T p = sum_d Xi_d^T p_d`` (``psum``).

With these, the modern Hopfield energy and update (Ramsauer et al. (2021), eq. 3; Wu et al. (2024), eq. 1.1), the
generalized sparse Hopfield energy and update (Wu et al. (2024), eqs. 2.2-2.4) and the MrDAM RBF energy and update
(Hoover et al. (2024), eqs. 11 and 18) run on sharded memories, as one update, one energy or a whole retrieval loop
inside one ``shard_map``. Keys and values of :func:`sharded_hopfield_attention` are split along ``S`` in the same
way, and :func:`sharded_encode` stores sharded patterns in a DrDAM memory: each device encodes its own patterns and
the feature vectors are summed, ``T = sum_d T_d`` (Hoover et al. (2024), eq. 9); the exponential kinds hold
``log T`` and reduce with a log-sum-exp.

Derivatives (first order, in the scores and in alpha) are those of the single-device separations: the threshold is
searched on stopped gradients and re-attached through its implicit derivative,
``dv = (sum w dz + (da / a) sum w (z - m - v) - (da / a^2) sum p log(1 + a (z - m - v))) / sum w`` with
``w = p^(2 - alpha)`` (Peters et al. (2019), Prop. 2; the sums are ``psum``-ed). Second derivatives of the sparse
separations are not those of the single-device kernel.
Differentiate under ``jax.jit``; outside it, a mesh with Explicit axes (the default of ``jax.make_mesh``) needs
``with jax.set_mesh(mesh):`` (JAX places the cotangents of explicitly sharded results on that mesh).

Batch parallel: :func:`shard_batch` runs a function of one example over a batch split along a mesh axis (VSA and
KROP batches, independent trials of an experiment), ``jax.vmap`` semantics on every device.

Numerical edge cases: masked memories (``mask=False``) get weight 0; a query that sees no memory gets zero weights,
a zero update and energy ``+inf``; a concrete mask that hides every memory is refused.

References:
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Peters, Niculae, Martins (2019). Sparse Sequence-to-Sequence Models. ACL.
  - Michelot (1986). A finite algorithm for finding the projection of a point onto the canonical simplex of R^n.
    Journal of Optimization Theory and Applications.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Bool, Float

from dammem._entmax_solver import ENTMAX15, GENERAL, SOFTMAX, SPARSEMAX
from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, check_int, check_positive, is_concrete
from dammem.attention import hopfield_attention
from dammem.drdam.features import Features, check_chunk_size, check_features
from dammem.drdam.memory import Memory
from dammem.drdam.memory import encode as drdam_encode
from dammem.dynamics import Retrieval

__all__ = [
    "MODELS",
    "SEPARATION_NAMES",
    "distribute",
    "distributed_separation",
    "distributed_conjugate",
    "sharded_update",
    "sharded_energy",
    "sharded_retrieve",
    "sharded_hopfield_attention",
    "sharded_encode",
    "shard_batch",
    "all_gather_shapes",
]

MODELS = ("rbf", "modern_hopfield", "sparse_hopfield")
"""The energies of the memory-parallel functions: ``rbf`` (:func:`dammem.energies.rbf_energy` and ``rbf_update``),
``modern_hopfield`` (:func:`dammem.energies.modern_hopfield_energy`, the update with alpha = 1) and
``sparse_hopfield`` (:func:`dammem.energies.sparse_hopfield_energy` and ``sparse_hopfield_update``)."""

SEPARATION_NAMES = ("softmax", "sparsemax", "entmax15", "entmax")
"""Separations with a distributed kernel (alpha = 1, 2, 1.5 and any alpha in (1, 2])."""

_KIND_OF_NAME = {"softmax": SOFTMAX, "sparsemax": SPARSEMAX, "entmax15": ENTMAX15, "entmax": GENERAL}
_FIXED_A = {SPARSEMAX: 1.0, ENTMAX15: 0.5}
_MIN_A = 1e-6  # 0 < alpha - 1 < 1e-6 is computed at 1e-6, as the single-device separations do
_BISECTION_STEPS = 8  # bracket the threshold to 1/256 of its range before the Newton steps
_MAX_NEWTON_STEPS = 32  # safety cap; from the bracket they settle in a few steps (sparsemax: exact once on the support)


# ----------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------


def _check_mesh(mesh: Any, where: str) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{where}: mesh must be a jax.sharding.Mesh (e.g. jax.make_mesh((8,), ('memory',))), got "
            f"{type(mesh).__name__}"
        )
    return mesh


def _check_axis(mesh: Mesh, axis: Any, name: str, where: str) -> int:
    """The size of the mesh axis ``axis`` (argument ``name``); a name not in the mesh is refused."""
    if not isinstance(axis, str) or axis not in mesh.axis_names:
        raise ValueError(
            f"{where}: {name}={axis!r} is not an axis of the mesh; allowed: one of its axis names {mesh.axis_names}"
        )
    return int(mesh.shape[axis])


def _check_divides(length: int, size: int, what: str, axis: str, where: str) -> None:
    if length % size:
        raise ValueError(
            f"{where}: {what} = {length} is not divisible by the size {size} of mesh axis {axis!r}; allowed: a "
            f"multiple of {size} (pad with masked entries, or use another mesh)"
        )


def _check_batch_axis(mesh: Mesh, batch_axis: Any, axis: str, batch: int, where: str) -> None:
    if batch_axis is None:
        return
    size = _check_axis(mesh, batch_axis, "batch_axis", where)
    if batch_axis == axis:
        raise ValueError(f"{where}: batch_axis={batch_axis!r} must differ from axis={axis!r} (the memories' axis)")
    _check_divides(batch, size, "the number of queries B", batch_axis, where)


def _check_real_scalar(value: Any, name: str, where: str) -> Array:
    arr = check_floating(value, name, where)
    if arr.ndim != 0:
        raise ValueError(f"{where}: {name} must be a scalar, got an array of shape {tuple(arr.shape)}")
    return arr


def _check_beta(beta: Any, where: str) -> Array:
    beta = _check_real_scalar(beta, "beta", where)
    check_positive(beta, "beta", where)
    return beta


def _alpha_kind(alpha: Any, where: str, allow_one: bool) -> tuple[str, Array | None]:
    """(kernel kind, alpha or None): a concrete alpha of 1, 1.5 or 2 runs the closed-form kernel."""
    allowed = "[1, 2]" if allow_one else "(1, 2]"
    if alpha is None:
        raise ValueError(f"{where}: alpha is required: a real scalar in {allowed}, got None")
    alpha = _check_real_scalar(alpha, "alpha", where)
    if not is_concrete(alpha):
        return GENERAL, alpha
    value = float(np.asarray(alpha))
    if not ((1.0 <= value if allow_one else 1.0 < value) and value <= 2.0):
        raise ValueError(f"{where}: alpha must lie in {allowed}, got {value}")
    kind = {1.0: SOFTMAX, 1.5: ENTMAX15, 2.0: SPARSEMAX}.get(value, GENERAL)
    return kind, (alpha if kind == GENERAL else None)


def _nan_unless_positive(beta: Array, value: Array) -> Array:
    """A traced ``beta <= 0`` (not checkable at the boundary) gives NaN, as the single-device energies do."""
    if is_concrete(beta):
        return value
    return value * jnp.where(beta > 0, 1.0, jnp.nan).astype(value.dtype)


def _place(x: Array, mesh: Mesh, spec: P) -> Array:
    """``x`` laid out as ``spec`` on ``mesh`` (inside ``jit``: a sharding constraint; a no-op when it already is)."""
    return jax.device_put(x, NamedSharding(mesh, spec))


def _onto(mesh: Mesh, value: Any, spec: P) -> Any:
    """Arrays committed to other devices (e.g. ``jax.device_put(x, jax.devices()[0])``) move onto ``mesh`` as
    ``spec`` before a compiled program runs (``jit`` refuses arguments committed to different device sets); arrays
    already there, uncommitted arrays and tracers are left alone."""
    devices = set(mesh.devices.flat)

    def move(leaf):
        if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer) and leaf.committed:
            if leaf.sharding.device_set != devices:
                return jax.device_put(leaf, NamedSharding(mesh, spec))
        return leaf

    return jax.tree.map(move, value)


def distribute(array: ArrayLike, mesh: Mesh, axis: str, *, dim: int = 0) -> Array:
    """Lay ``array`` out on ``mesh`` split along ``dim`` over the mesh axis ``axis`` (replicated over the others).

    Placing the memories once before repeated calls keeps every call free of transfers (each call would otherwise
    split the array anew).

    Args:
      array: any array; ``array.shape[dim]`` must be a multiple of the size of ``axis``.
      mesh: the device mesh.
      axis: the mesh axis name to split over.
      dim: the array axis to split.

    Returns:
      The array with a :class:`~jax.sharding.NamedSharding`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import distribute
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> distribute(jnp.ones((4, 2)), mesh, "memory").sharding.spec
      P('memory', None)
    """
    where = "distribute"
    mesh = _check_mesh(mesh, where)
    size = _check_axis(mesh, axis, "axis", where)
    array = jnp.asarray(array)
    if array.ndim == 0:
        raise ValueError(f"{where}: array must have at least one axis to split, got a scalar")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -array.ndim <= dim < array.ndim:
        raise ValueError(f"{where}: dim={dim!r} is not an axis of an array of shape {tuple(array.shape)}")
    dim %= array.ndim
    _check_divides(array.shape[dim], size, f"array.shape[{dim}]", axis, where)
    spec = [None] * array.ndim
    spec[dim] = axis
    return jax.device_put(array, NamedSharding(mesh, P(*spec)))


# ----------------------------------------------------------------------------------------------------------------
# The distributed separation: local scores in, local weights out, reductions over a named axis
# ----------------------------------------------------------------------------------------------------------------


def _psum_last(x: Array, axis_name: str) -> Array:
    return lax.psum(jnp.sum(x, axis=-1), axis_name)


def _entmax_probs(kind: str, zs: Array, finite: Array, v: Array, a: Array | float) -> tuple[Array, Array]:
    """(p, w) for shifted scores ``zs`` (0 where not ``finite``) and the threshold column ``v``:
    ``p = [1 + a (zs - v)]_+^{1/a}`` and ``w = p^(2 - alpha)`` (``p / u``; the support indicator for sparsemax)."""
    u = jnp.where(finite, 1.0 + a * (zs - v), -1.0)  # masked scores: off the support, with finite derivatives
    on = u > 0
    if kind == SPARSEMAX:
        return jnp.where(on, u, 0.0), on.astype(zs.dtype)
    if kind == ENTMAX15:
        x = jnp.where(on, u, 0.0)
        return x * x, x
    safe = jnp.where(on, u, 1.0)  # double where: no NaN derivative off the support
    p = jnp.where(on, jnp.exp(jnp.log(safe) / a), 0.0)
    return p, jnp.where(on, p / safe, 0.0)


def _entmax_local(kind: str, zs: Array, finite: Array, a: Array | None, live: Array, axis_name: str, total: int):
    """Weights and threshold of alpha-entmax for shifted local scores ``zs`` (..., K_loc) (row max 0 globally; 0
    where not ``finite``); ``a = alpha - 1`` per row (GENERAL only).

    Returns ``(p, v, a)`` with first derivatives in ``zs`` and ``a`` (see the module docstring).
    """
    dtype = zs.dtype
    rows = zs.shape[:-1]
    zs0 = lax.stop_gradient(zs)
    if kind == GENERAL:
        a = jnp.maximum(jnp.broadcast_to(a, rows).astype(dtype), _MIN_A)  # NaN (a traced bad alpha) stays NaN
        a0 = lax.stop_gradient(a)
    else:
        a = a0 = jnp.full(rows, _FIXED_A[kind], dtype)
    hi = -jnp.expm1(-a0 * math.log(total)) / a0  # every p_i <= 1/K there: S(hi) <= 1 <= S(0)
    col0 = a0[..., None]

    def probs(v, scores=zs0, col=col0):
        return _entmax_probs(kind, scores, finite, v[..., None], col)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = _psum_last(probs(mid)[0], axis_name) >= 1.0
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    # the bounds vary like the rows (``live`` carries that: rows may also be split over another mesh axis)
    hi = jnp.where(live, hi, 0.0)
    lo, hi = lax.fori_loop(0, _BISECTION_STEPS, bisect, (0.0 * hi, hi))
    tol = 4.0 * float(jnp.finfo(dtype).eps)

    def newton(state):  # on F(v) = (S(v)^a - 1) / a, convex and decreasing: monotone from the left of the root
        v, it, _ = state
        p, w = probs(v)
        sums = lax.psum(jnp.stack([jnp.sum(p, axis=-1), jnp.sum(w, axis=-1)]), axis_name)
        mass, slope = sums[0], sums[1]  # S(v) and -dS/dv = sum w
        ok = (mass > 0) & (slope > 0)
        safe_mass = jnp.where(ok, mass, 1.0)
        step = -jnp.expm1(-a0 * jnp.log(safe_mass)) * safe_mass / (a0 * jnp.where(ok, slope, 1.0))  # F / -F'
        step = jnp.where(ok, step, 0.0)
        settled = ~(jnp.abs(step) > tol * (1.0 + v))  # NaN rows count as settled
        return jnp.minimum(v + step, hi), it + 1, settled

    v, _, _ = lax.while_loop(
        lambda state: (state[1] < _MAX_NEWTON_STEPS) & ~jnp.all(state[2]), newton, (lo, jnp.int32(0), lo != lo)
    )
    v = jnp.where(live, v, 0.0)
    # v again with its implicit first derivatives: equal in value, dv as in the module docstring
    p0, w = probs(v)
    sw = _psum_last(w, axis_name)
    sw = jnp.where(sw > 0, sw, 1.0)
    shift = _psum_last(w * (zs - zs0), axis_name)
    if kind == GENERAL:
        gap = zs0 - v[..., None]
        log_u = jnp.log(jnp.where(p0 > 0, 1.0 + col0 * gap, 1.0))
        slope = _psum_last(w * gap, axis_name) - _psum_last(p0 * log_u, axis_name) / a0
        shift = shift + (a - a0) / a0 * slope
    v_diff = v + shift / sw
    p, _ = probs(v_diff, zs, a[..., None])
    return p, v_diff, a


def _separation_local(
    z: Array, axis_name: str, n: int, kind: str, alpha: Array | None, want: Literal["p", "psi", "both"]
) -> Any:
    """Distributed separation of local scores ``z`` (..., K_loc) over ``n`` devices of ``axis_name``.

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
    if separation not in _KIND_OF_NAME:
        raise ValueError(f"{name}: separation must be one of {list(SEPARATION_NAMES)}, got {separation!r}")
    kind = _KIND_OF_NAME[separation]
    if kind != GENERAL and alpha is not None:
        raise ValueError(f"{name}: alpha is only used with separation='entmax'; {separation!r} fixes its own")
    if kind == GENERAL:
        if alpha is None:
            raise ValueError(f"{name}: separation='entmax' needs alpha in (1, 2], got None")
        alpha = check_floating(alpha, "alpha", name)
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
        if is_concrete(alpha) and not np.all((np.asarray(alpha) > 1) & (np.asarray(alpha) <= 2)):
            raise ValueError(f"{name}: alpha must lie in (1, 2], got {np.asarray(alpha).ravel()[:4].tolist()}")
        alpha = jnp.broadcast_to(alpha.reshape(full), z.shape[:-1] + (1,))[..., 0]
    compute = jnp.promote_types(z.dtype, jnp.float32)
    zc = z.astype(compute)
    if where_mask is not None:
        where_mask = jnp.asarray(where_mask)
        if where_mask.dtype != jnp.bool_:
            raise TypeError(f"{name}: where must be a boolean mask (True = keep), got dtype {where_mask.dtype}")
        try:
            np.broadcast_shapes(where_mask.shape, z.shape)
        except ValueError:
            raise ValueError(f"{name}: where of shape {where_mask.shape} does not broadcast to z {z.shape}") from None
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
    last axis, computed with global reductions only (see the module docstring): softmax (alpha = 1), sparsemax
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
    return _separation_local(zc, axis_name, n, kind, alpha, "p").astype(z.dtype)


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
    return _separation_local(zc, axis_name, n, kind, alpha, "psi").astype(z.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Memory-parallel energies, updates and retrieval
# ----------------------------------------------------------------------------------------------------------------


class _Model(NamedTuple):
    """How a model scores and what its energy is: ``E = self - energy_scale * Psi*(beta s) / beta`` with
    ``s = score_scale * sim(Xi, x)`` and ``self = 1/2 sim(x, x)`` (``1/2 <x, x>`` for dot, 0 for neg_sq_l2)."""

    l2: bool
    score_scale: float
    energy_scale: float
    kind: str


def _resolve_model(model: Any, alpha: Any, similarity: Any, where: str) -> tuple[_Model, Array | None]:
    if model not in MODELS:
        raise ValueError(f"{where}: model must be one of {list(MODELS)}, got {model!r}")
    if model != "sparse_hopfield":
        for name, value in (("alpha", alpha), ("similarity", similarity)):
            if value is not None:
                raise ValueError(
                    f"{where}: {name} is only used with model='sparse_hopfield'; model={model!r} fixes its own "
                    f"(got {name}={value!r})"
                )
        if model == "rbf":  # Hoover et al. (2024), eqs. 11 and 18
            return _Model(l2=True, score_scale=0.5, energy_scale=1.0, kind=SOFTMAX), None
        return _Model(l2=False, score_scale=1.0, energy_scale=1.0, kind=SOFTMAX), None  # Wu et al. (2024), eq. 1.1
    similarity = "dot" if similarity is None else similarity
    if similarity not in ("dot", "neg_sq_l2"):
        raise ValueError(
            f"{where}: similarity must be 'dot' or 'neg_sq_l2' (the similarities with a sparse Hopfield energy and a "
            f"matrix-product form), got {similarity!r}"
        )
    kind, alpha = _alpha_kind(alpha, where, allow_one=True)
    l2 = similarity == "neg_sq_l2"
    # Wu et al. (2024), eq. 2.2: c = 1 for dot, 1/2 for neg_sq_l2 (see dammem.similarities)
    return _Model(l2=l2, score_scale=1.0, energy_scale=0.5 if l2 else 1.0, kind=kind), alpha


def _check_memory_args(x, memories, mask, mesh, axis, batch_axis, where, x_name="x"):
    mesh = _check_mesh(mesh, where)
    n = _check_axis(mesh, axis, "axis", where)
    memories = check_floating(memories, "memories", where)
    x = check_floating(x, x_name, where)
    if memories.ndim != 2:
        raise ValueError(f"{where}: memories must have shape (K, D), got {tuple(memories.shape)}")
    if x.ndim not in (1, 2) or x.shape[-1] != memories.shape[1]:
        raise ValueError(
            f"{where}: {x_name} must have shape (D,) or (B, D) with D = {memories.shape[1]} (the memories' D), got "
            f"{tuple(x.shape)}"
        )
    _check_divides(memories.shape[0], n, "the number of memories K", axis, where)
    batch = 1 if x.ndim == 1 else x.shape[0]
    if batch_axis is not None and x.ndim == 1:
        raise ValueError(f"{where}: batch_axis={batch_axis!r} needs a batch of queries (B, D), got one query")
    _check_batch_axis(mesh, batch_axis, axis, batch, where)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_ or mask.shape != (memories.shape[0],):
            raise ValueError(
                f"{where}: mask must be booleans of shape (K,) = ({memories.shape[0]},) (True = memory present), got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )
        if is_concrete(mask) and not np.asarray(mask).any():
            raise ValueError(f"{where}: mask hides every memory (all False); at least one must be present")
    return mesh, n, x, memories, mask


def _compute_dtype(*arrays) -> Any:
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


class _Local:
    """The per-device pieces of a model: scores, weights with the energy, and the read-out (inside shard_map)."""

    def __init__(self, spec: _Model, axis: str, n: int, memories, mask, beta, alpha):
        self.spec, self.axis, self.n = spec, axis, n
        self.memories, self.mask, self.beta, self.alpha = memories, mask, beta, alpha
        self.sq_norms = jnp.sum(memories * memories, axis=-1) if spec.l2 else None

    def scores(self, x: Array) -> Array:
        """(B, K_loc) ``score_scale * sim(Xi_loc, x)``; neg_sq_l2 as ``2 <xi, x> - ||xi||^2 - ||x||^2`` (<= 0)."""
        dots = x @ self.memories.T
        if self.spec.l2:
            dots = jnp.minimum(2.0 * dots - self.sq_norms - jnp.sum(x * x, axis=-1, keepdims=True), 0.0)
        s = self.spec.score_scale * dots
        return s if self.mask is None else jnp.where(self.mask, s, -jnp.inf)

    def weights_and_energy(self, x: Array) -> tuple[Array, Array]:
        beta = self.beta.astype(x.dtype)
        p, psi = _separation_local(beta * self.scores(x), self.axis, self.n, self.spec.kind, self.alpha, "both")
        own = 0.0 if self.spec.l2 else 0.5 * jnp.sum(x * x, axis=-1)
        return p, own - self.spec.energy_scale * psi / beta

    def read(self, p: Array) -> Array:
        return lax.psum(p @ self.memories, self.axis)


def _specs(axis: str, batch_axis: str | None, with_mask: bool):
    xs = P(batch_axis, None) if batch_axis else P()
    return xs, P(axis, None), (P(axis) if with_mask else None)


@partial(jax.jit, static_argnames=("spec", "mesh", "axis", "batch_axis", "output"))
def _step_kernel(x, memories, mask, beta, alpha, *, spec, mesh, axis, batch_axis, output):
    n = int(mesh.shape[axis])
    dtype = _compute_dtype(x, memories)
    xs, ms, ks = _specs(axis, batch_axis, mask is not None)
    bs = P(batch_axis) if batch_axis else P()

    def local(x, memories, mask, beta, alpha):
        model = _Local(spec, axis, n, memories.astype(dtype), mask, beta, alpha)
        p, energy = model.weights_and_energy(x.astype(dtype))
        return model.read(p) if output == "update" else energy

    x, memories = _place(x, mesh, xs), _place(memories, mesh, ms)
    mask = None if mask is None else _place(mask, mesh, ks)
    out_spec = xs if output == "update" else bs
    fn = jax.shard_map(
        local, mesh=mesh, in_specs=(xs, ms, ks, P(), P() if alpha is not None else None), out_specs=out_spec
    )
    return _nan_unless_positive(beta, fn(x, memories, mask, beta, alpha))


def _prepare_step(x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, where):
    spec, alpha = _resolve_model(model, alpha, similarity, where)
    mesh, _, x, memories, mask = _check_memory_args(x, memories, mask, mesh, axis, batch_axis, where)
    beta = _check_beta(beta, where)
    single = x.ndim == 1
    xb = x[None] if single else x
    xs, ms, ks = _specs(axis, batch_axis, mask is not None)
    xb, memories, mask = _onto(mesh, xb, xs), _onto(mesh, memories, ms), _onto(mesh, mask, ks)
    beta, alpha = _onto(mesh, beta, P()), _onto(mesh, alpha, P())
    return spec, alpha, mesh, xb, memories, mask, beta, single


def sharded_update(
    x: Float[ArrayLike, "*B D"],
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    mesh: Mesh,
    axis: str,
    model: str = "modern_hopfield",
    alpha: ArrayLike | None = None,
    similarity: str | None = None,
    mask: Bool[ArrayLike, " K"] | None = None,
    batch_axis: str | None = None,
) -> Float[Array, "*B D"]:
    """One retrieval update ``x <- Xi^T Sep(beta s(Xi, x))`` with the memories split along ``K`` over ``axis``.

    The update of ``model`` (:data:`MODELS`): ``"modern_hopfield"``, ``Xi^T softmax(beta Xi x)`` (Ramsauer et al.
    (2021), eq. 3); ``"sparse_hopfield"``, ``Xi^T Sep_alpha(beta sim(Xi, x))`` (Wu et al. (2024), eq. 2.4; equal to
    :func:`dammem.energies.sparse_hopfield_update`); ``"rbf"``, ``softmax(-beta/2 ||x - Xi||^2) Xi`` (Hoover et al.
    (2024), eq. 18; :func:`dammem.energies.rbf_update`). Only reductions cross devices (module docstring).

    Args:
      x: (D,) one query or (B, D) queries (replicated, or split over ``batch_axis``).
      memories: (K, D) stored patterns; ``K`` a multiple of the size of ``axis``. Place them with
        :func:`distribute` once to avoid a transfer per call.
      beta: inverse temperature, a scalar > 0 (traced).
      mesh: the device mesh.
      axis: the mesh axis that splits the memories.
      model: one of :data:`MODELS`.
      alpha: ``model="sparse_hopfield"`` only (required there): in [1, 2] (traced; 1, 1.5 and 2 given as numbers run
        the closed-form softmax, 1.5-entmax and sparsemax kernels).
      similarity: ``model="sparse_hopfield"`` only: ``"dot"`` (default) or ``"neg_sq_l2"``.
      mask: optional (K,) booleans, True = memory present (split like the memories).
      batch_axis: optional second mesh axis that splits the queries ``B``.

    Returns:
      The next state(s), shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.energies import sparse_hopfield_update
      >>> from dammem.sharding import sharded_update
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> memories = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
      >>> x = jnp.array([1.0, 0.6])
      >>> out = sharded_update(x, memories, 1.0, mesh=mesh, axis="memory", model="sparse_hopfield", alpha=2.0)
      >>> [round(v, 3) for v in out.tolist()]  # sparsemax weights (0.7, 0.3, 0, 0)
      [0.7, 0.3]
      >>> bool(jnp.allclose(out, sparse_hopfield_update(x, memories, 1.0, 2.0)))
      True
    """
    where = "sharded_update"
    spec, alpha, mesh, xb, memories, mask, beta, single = _prepare_step(
        x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, where
    )
    out = _step_kernel(
        xb, memories, mask, beta, alpha, spec=spec, mesh=mesh, axis=axis, batch_axis=batch_axis, output="update"
    )
    return (out[0] if single else out).astype(xb.dtype)


def sharded_energy(
    x: Float[ArrayLike, "*B D"],
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    mesh: Mesh,
    axis: str,
    model: str = "modern_hopfield",
    alpha: ArrayLike | None = None,
    similarity: str | None = None,
    mask: Bool[ArrayLike, " K"] | None = None,
    batch_axis: str | None = None,
) -> Float[Array, "*B"]:
    """The energy of ``model`` with the memories split along ``K`` over ``axis`` (arguments as :func:`sharded_update`).

    ``"modern_hopfield"``: ``1/2 <x, x> - lse(beta, Xi x)`` (Wu et al. (2024), eq. 1.1); ``"sparse_hopfield"``:
    ``1/2 sim(x, x) - c Psi*_alpha(beta, sim(Xi, x))`` (Wu et al. (2024), eqs. 2.2-2.3; ``c = 1`` for dot, 1/2 for
    neg_sq_l2); ``"rbf"``: ``-(1/beta) log sum_mu exp(-beta/2 ||xi_mu - x||^2)`` (Hoover et al. (2024), eq. 11).
    Equal to the single-device :mod:`dammem.energies` function of the same name.

    Returns:
      () for one query, (B,) for a batch (``+inf`` for a query that sees no memory).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.energies import rbf_energy
      >>> from dammem.sharding import sharded_energy
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> e = sharded_energy(jnp.zeros(2), jnp.eye(2), 1.0, mesh=mesh, axis="memory", model="rbf")
      >>> round(float(e), 4), round(float(rbf_energy(jnp.zeros(2), jnp.eye(2), 1.0)), 4)
      (-0.1931, -0.1931)
    """
    where = "sharded_energy"
    spec, alpha, mesh, xb, memories, mask, beta, single = _prepare_step(
        x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, where
    )
    out = _step_kernel(
        xb, memories, mask, beta, alpha, spec=spec, mesh=mesh, axis=axis, batch_axis=batch_axis, output="energy"
    )
    return out[0] if single else out


@partial(jax.jit, static_argnames=("spec", "mesh", "axis", "batch_axis", "max_steps", "no_tol"))
def _retrieve_kernel(x0, memories, mask, beta, alpha, clamp, tol, *, spec, mesh, axis, batch_axis, max_steps, no_tol):
    n = int(mesh.shape[axis])
    dtype = _compute_dtype(x0, memories)
    xs, ms, ks = _specs(axis, batch_axis, mask is not None)
    bs = P(batch_axis) if batch_axis else P()

    def local(x0, memories, mask, beta, alpha, clamp, tol):
        model = _Local(spec, axis, n, memories.astype(dtype), mask, beta, alpha)
        start = x0.astype(dtype)
        p0, e0 = model.weights_and_energy(start)
        batch = start.shape[0]

        def cond(carry):
            _, _, _, _, done, t = carry
            waiting = jnp.any(~done).astype(jnp.int32)
            if batch_axis is not None:  # every device runs the same number of steps
                waiting = lax.pmax(waiting, batch_axis)
            return (t < max_steps) & (waiting > 0)

        def body(carry):
            x, e, p, steps, done, t = carry
            x_new = model.read(p)  # x <- Xi^T Sep(beta s(Xi, x)), the fixed-point (CCCP) step
            if clamp is not None:
                x_new = jnp.where(clamp, start, x_new)
            p_new, e_new = model.weights_and_energy(x_new)
            active = ~done
            settled = jnp.zeros_like(done) if no_tol else jnp.abs(e_new - e) < tol
            return (
                jnp.where(active[:, None], x_new, x),
                jnp.where(active, e_new, e),
                jnp.where(active[:, None], p_new, p),
                steps + active.astype(jnp.int32),
                done | (active & settled),
                t + 1,
            )

        steps0, done0 = jnp.zeros(batch, jnp.int32), jnp.zeros(batch, jnp.bool_)
        if batch_axis is not None:  # per-query counters differ between the query shards
            steps0, done0 = lax.pcast((steps0, done0), batch_axis, to="varying")
        init = (start, e0, p0, steps0, done0, jnp.int32(0))
        x, e, _, steps, done, _ = lax.while_loop(cond, body, init)
        return x, e, steps, done

    x0, memories = _place(x0, mesh, xs), _place(memories, mesh, ms)
    mask = None if mask is None else _place(mask, mesh, ks)
    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(xs, ms, ks, P(), None if alpha is None else P(), None if clamp is None else P(), P()),
        out_specs=(xs, bs, bs, bs),
    )
    x, e, steps, done = fn(x0, memories, mask, beta, alpha, clamp, jnp.asarray(0.0 if tol is None else tol, dtype))
    return _nan_unless_positive(beta, x), _nan_unless_positive(beta, e), steps, done


def sharded_retrieve(
    x0: Float[ArrayLike, "*B D"],
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    mesh: Mesh,
    axis: str,
    model: str = "modern_hopfield",
    alpha: ArrayLike | None = None,
    similarity: str | None = None,
    mask: Bool[ArrayLike, " K"] | None = None,
    clamp: Bool[ArrayLike, " D"] | None = None,
    max_steps: int = 100,
    tol: float | None = 1e-6,
    batch_axis: str | None = None,
) -> Retrieval:
    """Fixed-point retrieval with the memories split along ``K`` over ``axis``; the whole loop runs on the devices.

    Per query, the same dynamics as ``dammem.retrieve(energy, x0, args, update=update, loop="while")`` with the
    single-device energy and update of ``model`` (the CCCP step of Wu et al. (2024), eq. 2.4 / Hoover et al.
    (2024), eq. 18, which never increases the energy): stop at ``|E(x_t) - E(x_{t-1})| < tol`` or after
    ``max_steps``. A batch runs until every query has stopped; stopped queries keep their state. Each step costs
    one local score product and one read-out per device and a few scalar reductions per query.

    Args:
      x0: (D,) or (B, D) initial states.
      memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis: as :func:`sharded_update`.
      clamp: optional (D,) booleans, True = coordinate held at its ``x0`` value (reset after every update).
      max_steps: maximum number of updates, >= 0 (static).
      tol: stop once the energy changes by less than ``tol``; None runs all ``max_steps``.

    Returns:
      :class:`dammem.Retrieval` with ``x`` (shaped like ``x0``), ``energy``, ``steps``, ``converged`` per query
      (scalars for one query) and ``trace=None``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import sharded_retrieve
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> memories = jnp.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
      >>> out = sharded_retrieve(jnp.array([0.6, 0.8, -0.4, 0.0]), memories, 4.0, mesh=mesh, axis="memory",
      ...                        model="rbf")
      >>> [round(v, 2) for v in out.x.tolist()], bool(out.converged)
      ([1.0, 1.0, -1.0, -1.0], True)
    """
    where = "sharded_retrieve"
    spec, alpha = _resolve_model(model, alpha, similarity, where)
    mesh, _, x0, memories, mask = _check_memory_args(x0, memories, mask, mesh, axis, batch_axis, where, "x0")
    beta = _check_beta(beta, where)
    max_steps = check_int(max_steps, "max_steps", where, minimum=0)
    if tol is not None:
        tol = _check_real_scalar(tol, "tol", where)
        check_positive(tol, "tol", where, allow_zero=True)
    if clamp is not None:
        clamp = jnp.asarray(clamp)
        if clamp.dtype != jnp.bool_ or clamp.shape != (memories.shape[1],):
            raise ValueError(
                f"{where}: clamp must be booleans of shape (D,) = ({memories.shape[1]},) (True = visible), got "
                f"{clamp.dtype} {tuple(clamp.shape)}"
            )
    single = x0.ndim == 1
    xb = x0[None] if single else x0
    xs, ms, ks = _specs(axis, batch_axis, mask is not None)
    xb, memories, mask = _onto(mesh, xb, xs), _onto(mesh, memories, ms), _onto(mesh, mask, ks)
    beta, alpha, clamp, tol = (_onto(mesh, v, P()) for v in (beta, alpha, clamp, tol))
    x, e, steps, done = _retrieve_kernel(
        xb,
        memories,
        mask,
        beta,
        alpha,
        clamp,
        tol,
        spec=spec,
        mesh=mesh,
        axis=axis,
        batch_axis=batch_axis,
        max_steps=max_steps,
        no_tol=tol is None,
    )
    x = x.astype(x0.dtype)
    if single:
        return Retrieval(x[0], e[0], steps[0], done[0], None)
    return Retrieval(x, e, steps, done, None)


# ----------------------------------------------------------------------------------------------------------------
# Hopfield attention with keys and values split along S
# ----------------------------------------------------------------------------------------------------------------


def _abstract(x: Any) -> Any:
    return None if x is None else jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))


def _check_attention_args(query, key, value, beta, separation, alpha, mask, update_steps, tol, return_weights, where):
    """The shape and type checks of :func:`~dammem.attention.hopfield_attention`, run abstractly (nothing is
    computed), then the ranges of concrete ``beta``, ``alpha`` and ``tol``."""
    numbers = {"beta": beta, "alpha": alpha, "tol": tol}
    traced = {name: _abstract(v) for name, v in numbers.items() if v is not None and not is_concrete(v)}
    fixed = {name: v for name, v in numbers.items() if name not in traced}
    fixed |= {"separation": separation, "update_steps": update_steps, "return_weights": return_weights}

    def check(q, k, v, m, traced):
        return hopfield_attention(q, k, v, mask=m, **fixed, **traced)

    try:
        jax.eval_shape(check, _abstract(query), _abstract(key), _abstract(value), _abstract(mask), traced)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("hopfield_attention:", f"{where}:", 1)) from None
    # values: under eval_shape every number is abstract, so the ranges are checked here
    rules = {"beta": (lambda a: a > 0, "finite and > 0"), "alpha": (lambda a: (a > 1) & (a <= 2), "in (1, 2]")}
    rules["tol"] = (lambda a: a >= 0, "finite and >= 0")
    for name, value in fixed.items():
        if name in rules and value is not None:
            arr = np.asarray(value, np.float64)
            ok, allowed = rules[name]
            if not np.all(np.isfinite(arr) & ok(arr)):
                raise ValueError(f"{where}: {name} must be {allowed}, got {arr.ravel()[:4].tolist()}")


@partial(jax.jit, static_argnames=("mesh", "axis", "kind", "update_steps", "return_weights", "mask_split"))
def _attention_kernel(query, key, value, beta, alpha, mask, tol, *, mesh, axis, kind, update_steps, return_weights,
                      mask_split):  # fmt: skip
    n = int(mesh.shape[axis])
    ct = _compute_dtype(query, key, value)
    lead = (None,) * (key.ndim - 3)
    kv_spec = P(*lead, axis, None, None)
    mask_spec = None if mask is None else P(*((None,) * (mask.ndim - 1)), axis if mask_split else None)
    out_dtype = query.dtype

    def local(query, key, value, beta, alpha, mask, tol):
        q, k, v = query.astype(ct), key.astype(ct), value.astype(ct)
        b = beta.astype(ct)
        b = b[:, None] if b.ndim == 1 else b  # (H, 1) scales the query's heads
        a = None if alpha is None else alpha.astype(ct)

        def weights(xi):
            scores = jnp.einsum("...qhd,...shd->...hqs", xi * b, k)  # this device's keys
            if mask is not None:
                scores = jnp.where(mask, scores, -jnp.inf)
            rows_alpha = None
            if a is not None:
                per_head = a[:, None] if a.ndim == 1 else a  # (H, 1) against (..., H, Q)
                rows_alpha = jnp.broadcast_to(per_head, scores.shape[:-1])
            return _separation_local(scores, axis, n, kind, rows_alpha, "p")

        xi = q
        if update_steps > 1:
            batch = jnp.broadcast_shapes(q.shape[:-3], k.shape[:-3])
            xi0 = jnp.broadcast_to(q, batch + q.shape[-3:])

            def step(carry, _):
                xi, active = carry
                new = lax.psum(jnp.einsum("...hqs,...shd->...qhd", weights(xi), k), axis)  # xi <- K^T Sep(beta K xi)
                if tol is None:
                    return (new, active), None
                moved = jnp.max(jnp.abs(new - xi), axis=-1)
                new = jnp.where(active[..., None], new, xi)
                return (new, active & (moved > tol)), None

            active0 = jnp.ones(xi0.shape[:-1], jnp.bool_)
            (xi, _), _ = lax.scan(step, (xi0, active0), None, length=update_steps - 1)
        p = weights(xi)
        out = lax.psum(jnp.einsum("...hqs,...shv->...qhv", p, v), axis).astype(out_dtype)
        return (out, p.astype(out_dtype)) if return_weights else out

    key, value = _place(key, mesh, kv_spec), _place(value, mesh, kv_spec)
    if mask is not None:
        mask = _place(mask, mesh, mask_spec)
    weight_spec = P(*((None,) * (max(query.ndim, key.ndim) - 1)), axis)
    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), kv_spec, kv_spec, P(), None if alpha is None else P(), mask_spec, None if tol is None else P()),
        out_specs=(P(), weight_spec) if return_weights else P(),
    )
    return fn(query, key, value, beta, alpha, mask, tol)


def sharded_hopfield_attention(
    query: Float[ArrayLike, "*batch Q H D"],
    key: Float[ArrayLike, "*batch S H D"],
    value: Float[ArrayLike, "*batch S H D_v"],
    *,
    mesh: Mesh,
    axis: str,
    beta: ArrayLike | None = None,
    separation: str = "softmax",
    alpha: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    update_steps: int = 1,
    tol: float | None = None,
    return_weights: bool = False,
) -> Array | tuple[Array, Array]:
    """:func:`dammem.attention.hopfield_attention` with the keys and values split along ``S`` over ``axis``.

    Every device scores the queries against its own keys; the separation over all ``S`` keys, the state update
    ``xi <- K^T Sep(beta K xi)`` (Ramsauer et al. (2021), eq. 3; Wu et al. (2024), eq. 2.4) and the read-out
    ``V^T Sep(beta K xi)`` (Wu et al. (2024), eq. C.1) use only reductions across devices, so no device ever holds
    another's keys or values. Arguments and results as :func:`~dammem.attention.hopfield_attention` (the named
    separations; dropout is not offered here).

    Args:
      query: (..., Q, H, D) queries (replicated).
      key: (..., S, H, D) stored patterns; ``S`` a multiple of the size of ``axis``.
      value: (..., S, H, D_v).
      mesh: the device mesh.
      axis: the mesh axis that splits ``S``.
      beta, separation, alpha, mask, update_steps, tol, return_weights: as
        :func:`~dammem.attention.hopfield_attention`; ``separation`` is one of :data:`SEPARATION_NAMES`. A mask
        whose last axis has size ``S`` is split like the keys.

    Returns:
      (..., Q, H, D_v) outputs (replicated); with ``return_weights`` also the weights (..., H, Q, S), split along
      ``S`` over ``axis``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.attention import hopfield_attention
      >>> from dammem.sharding import sharded_hopfield_attention
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> keys = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])[:, None, :]  # S=3 patterns, H=1 head, D=2
      >>> values = jnp.array([[1.0], [2.0], [3.0]])[:, None, :]
      >>> query = jnp.array([[0.9, 0.2]])[:, None, :]
      >>> out = sharded_hopfield_attention(query, keys, values, mesh=mesh, axis="memory", beta=1.0,
      ...                                  separation="sparsemax")
      >>> round(float(out[0, 0, 0]), 3)  # weights (0.85, 0.15, 0)
      1.15
      >>> bool(jnp.allclose(out, hopfield_attention(query, keys, values, beta=1.0, separation="sparsemax")))
      True
    """
    where = "sharded_hopfield_attention"
    mesh = _check_mesh(mesh, where)
    n = _check_axis(mesh, axis, "axis", where)
    if not isinstance(separation, str) or separation not in SEPARATION_NAMES:
        raise ValueError(
            f"{where}: separation must be one of {list(SEPARATION_NAMES)} (the separations with a distributed "
            f"kernel), got {separation!r}"
        )
    _check_attention_args(query, key, value, beta, separation, alpha, mask, update_steps, tol, return_weights, where)
    query = check_floating(query, "query", where)
    key = check_floating(key, "key", where)
    value = check_floating(value, "value", where)
    _check_divides(key.shape[-3], n, "the number of keys S", axis, where)
    heads, width = query.shape[-2:]
    beta = jnp.asarray(1.0 / np.sqrt(width), jnp.float32) if beta is None else jnp.asarray(beta)
    kind = _KIND_OF_NAME[separation]
    if kind == GENERAL:
        alpha = jnp.asarray(alpha)
    mask_split = False
    if mask is not None:
        mask = jnp.asarray(mask)
        full_ndim = max(query.ndim, key.ndim)  # the weights' (..., H, Q, S)
        mask = mask.reshape((1,) * (full_ndim - mask.ndim) + mask.shape)
        mask_split = mask.shape[-1] == key.shape[-3] and key.shape[-3] > 1
    kv_spec = P(*((None,) * (key.ndim - 3)), axis, None, None)
    query, beta, alpha = (_onto(mesh, v, P()) for v in (query, beta, alpha))
    key, value = _onto(mesh, key, kv_spec), _onto(mesh, value, kv_spec)
    if mask is not None:
        mask = _onto(mesh, mask, P(*((None,) * (mask.ndim - 1)), axis if mask_split else None))
    tol = None if tol is None else _onto(mesh, jnp.asarray(tol), P())
    out = _attention_kernel(
        query, key, value, beta, alpha if kind == GENERAL else None, mask, None if tol is None else jnp.asarray(tol),
        mesh=mesh, axis=axis, kind=kind, update_steps=update_steps, return_weights=return_weights,
        mask_split=mask_split,
    )  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------------------------------
# DrDAM: encode sharded patterns into one memory
# ----------------------------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("mesh", "axis", "chunk_size", "batch_size"))
def _encode_kernel(features, memories, beta, *, mesh, axis, chunk_size, batch_size):
    def local(features, memories, beta):
        t = drdam_encode(features, memories, beta, chunk_size=chunk_size, batch_size=batch_size).t
        if not features.positive:
            return lax.psum(t, axis)  # T = sum_d T_d (Hoover et al. (2024), eq. 9)
        m = lax.pmax(t, axis)  # log T = log sum_d exp(log T_d), max-shifted
        shift = jnp.where(jnp.isfinite(m), m, 0.0)
        total = lax.psum(jnp.exp(t - shift), axis)
        return jnp.where(total > 0, shift + jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf)

    memories = _place(memories, mesh, P(axis, None))
    # check_vma=False: the single-device encoder's loops start from constants (they are not marked per device)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axis, None), P()), out_specs=P(), check_vma=False)
    return fn(features, memories, beta)


def sharded_encode(
    features: Features,
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    mesh: Mesh,
    axis: str,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> Memory:
    """DrDAM :func:`~dammem.drdam.encode` of patterns split along ``K`` over ``axis``: ``T = sum_d T_d``.

    Each device encodes its own patterns, ``T_d = sum_{mu on d} phi(sqrt(beta) xi_mu)`` (Hoover et al. (2024),
    eq. 9), and the ``(F,)`` vectors are summed across devices (a log-sum-exp of ``log T_d`` for the exponential
    kinds, which hold ``log T``). The patterns never leave their device; the result is replicated.

    Args:
      features: from :func:`dammem.drdam.make_features` (replicated).
      memories: (K, D) patterns; ``K`` a multiple of the size of ``axis``.
      beta: inverse temperature > 0 (traced).
      mesh: the device mesh.
      axis: the mesh axis that splits the patterns.
      chunk_size, batch_size: as :func:`dammem.drdam.encode` (per device).

    Returns:
      :class:`dammem.drdam.Memory` equal to ``encode(features, memories, beta)`` up to float rounding.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.drdam import make_features, encode
      >>> from dammem.sharding import sharded_encode
      >>> f = make_features("sincos", 8, 64, key=jax.random.key(0))
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> T = sharded_encode(f, jnp.eye(8) / 2, 4.0, mesh=mesh, axis="memory")
      >>> bool(jnp.allclose(T.t, encode(f, jnp.eye(8) / 2, 4.0).t, atol=1e-6)), int(T.count)
      (True, 8)
    """
    where = "sharded_encode"
    mesh = _check_mesh(mesh, where)
    n = _check_axis(mesh, axis, "axis", where)
    features = check_features(features, where)
    memories = check_floating(memories, "memories", where)
    if memories.ndim != 2 or memories.shape[1] != features.dim:
        raise ValueError(
            f"{where}: memories must have shape (K, D) with D = {features.dim} (the features' dim), got shape "
            f"{tuple(memories.shape)}"
        )
    if memories.shape[0] == 0:
        raise ValueError(f"{where}: memories hold no pattern (K = 0); use dammem.drdam.encode for an empty memory")
    _check_divides(memories.shape[0], n, "the number of patterns K", axis, where)
    beta = _check_beta(beta, where)
    check_chunk_size(features, chunk_size, where)
    if batch_size is not None:
        check_int(batch_size, "batch_size", where, minimum=1)
    features, memories, beta = _onto(mesh, features, P()), _onto(mesh, memories, P(axis, None)), _onto(mesh, beta, P())
    t = _encode_kernel(features, memories, beta, mesh=mesh, axis=axis, chunk_size=chunk_size, batch_size=batch_size)
    return Memory(t, jnp.asarray(memories.shape[0], jnp.int32))


# ----------------------------------------------------------------------------------------------------------------
# Batch parallel
# ----------------------------------------------------------------------------------------------------------------


def shard_batch(
    fn: Callable[..., Any], mesh: Mesh, axis: str, *, in_axes: int | None | tuple[int | None, ...] = 0
) -> Callable[..., Any]:
    """``jax.vmap(fn, in_axes)`` with the batch split over the mesh axis ``axis``: each device maps its share.

    For work whose examples are independent: queries of a VSA or KROP clean-up, independent trials of an experiment
    (``fn`` of one PRNG key, mapped over ``jax.random.split(key, trials)``). The result equals
    ``jax.vmap(fn, in_axes)(*args)``; its leading axis stays split over ``axis`` (``jax.device_get`` or
    ``np.asarray`` collects it). Arguments with ``in_axes`` None are replicated.

    Args:
      fn: a function of one example; pytrees of arrays in and out.
      mesh: the device mesh.
      axis: the mesh axis that splits the batch.
      in_axes: 0 (mapped over the leading axis) or None (replicated), one for all arguments or one per argument.

    Returns:
      A jitted function of the same arguments as ``fn``, mapped over the batch.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import shard_batch
      >>> mesh = jax.make_mesh((1,), ("batch",))
      >>> scale = shard_batch(lambda x, c: c * x, mesh, "batch", in_axes=(0, None))
      >>> scale(jnp.arange(4.0), 2.0).tolist()
      [0.0, 2.0, 4.0, 6.0]
    """
    where = "shard_batch"
    if not callable(fn):
        raise TypeError(f"{where}: fn must be a callable of one example, got {type(fn).__name__}")
    mesh = _check_mesh(mesh, where)
    size = _check_axis(mesh, axis, "axis", where)
    leaves = in_axes if isinstance(in_axes, tuple) else (in_axes,)
    if not all(a is None or (a == 0 and not isinstance(a, bool)) for a in leaves):
        raise ValueError(f"{where}: in_axes must be 0 (mapped) or None (replicated), per argument; got {in_axes!r}")

    def call(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"{where}: in_axes has {len(axes)} entries but the function got {len(args)} arguments")
        sizes = {
            jnp.shape(leaf)[0] if jnp.ndim(leaf) else None
            for arg, ax in zip(args, axes)
            if ax == 0
            for leaf in jax.tree.leaves(arg)
        }
        if not sizes:
            raise ValueError(f"{where}: no argument is mapped (in_axes={in_axes!r}); at least one must be 0")
        if None in sizes or len(sizes) != 1:
            raise ValueError(
                f"{where}: every mapped argument needs one common leading (batch) axis; got sizes "
                f"{sorted(sizes, key=str)}"
            )
        _check_divides(sizes.pop(), size, "the batch size", axis, where)
        args = tuple(_onto(mesh, arg, P(axis) if ax == 0 else P()) for arg, ax in zip(args, axes))
        return _shard_batch_jit(fn, mesh, axis, axes, *args)

    return call


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _shard_batch_jit(fn, mesh, axis, axes, *args):
    specs = tuple(P(axis) if ax == 0 else P() for ax in axes)
    args = tuple(jax.tree.map(lambda leaf, s=s: _place(leaf, mesh, s), arg) for arg, s in zip(args, specs))
    mapped = jax.vmap(fn, in_axes=axes)
    # check_vma=False: ``fn`` is any single-device code (its loops may start from constants)
    return jax.shard_map(mapped, mesh=mesh, in_specs=specs, out_specs=P(axis), check_vma=False)(*args)


# ----------------------------------------------------------------------------------------------------------------
# Inspecting compiled code
# ----------------------------------------------------------------------------------------------------------------

_SHAPE = re.compile(r"\b[a-z]+\d*\[([\d,]*)\]")


def all_gather_shapes(compiled: Any) -> list[tuple[int, ...]]:
    """The shapes that every all-gather of a compiled program produces (its result shapes, tuples unpacked).

    Use it to check that a sharded program never gathers a large operand, e.g. that no all-gather produces the
    memory set's ``(K, D)`` elements.

    Args:
      compiled: ``jax.jit(f).lower(...).compile()`` or its ``as_text()``.

    Returns:
      One shape per all-gather result (``all-gather`` and ``all-gather-start`` ops), in program order.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import all_gather_shapes
      >>> all_gather_shapes(jax.jit(jnp.sin).lower(jnp.ones(3)).compile())
      []
    """
    text = compiled if isinstance(compiled, str) else compiled.as_text()
    shapes = []
    for line in text.splitlines():
        match = re.search(r"=\s*(.*?)\s+all-gather(?:-start)?\(", line)
        if match is None:
            continue
        for dims in _SHAPE.findall(match.group(1)):
            shapes.append(tuple(int(d) for d in dims.split(",") if d))
    return shapes
