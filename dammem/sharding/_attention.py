"""Hopfield attention with the keys and values split along ``S`` over one mesh axis.

Shape legend (that of :func:`dammem.attention.hopfield_attention`): ``Q`` queries, ``S`` stored patterns (keys),
``H`` heads, ``D`` key width, ``D_v`` value width.

References:
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jaxtyping import Float

from dammem._entmax_solver import GENERAL
from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, is_concrete
from dammem.attention import hopfield_attention
from dammem.sharding._mesh import check_axis, check_divides, check_mesh, onto, place
from dammem.sharding._models import compute_dtype
from dammem.sharding._separation import SEPARATION_NAMES, kind_of_separation, separation_local

__all__ = ["sharded_hopfield_attention"]


def _abstract(x: Any) -> Any:
    return None if x is None else jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))


def _check_attention_args(query, key, value, beta, separation, alpha, mask, update_steps, tol, return_weights, context):
    """The shape and type checks of :func:`~dammem.attention.hopfield_attention`, run abstractly (nothing is
    computed), then the ranges of concrete ``beta``, ``alpha`` and ``tol``."""
    if isinstance(update_steps, bool) or not isinstance(update_steps, (int, np.integer)):
        raise TypeError(
            f"{context}: update_steps must be one int for all heads here (per-head step counts are offered by "
            f"hopfield_attention on one device), got {update_steps!r}"
        )
    numbers = {"beta": beta, "alpha": alpha, "tol": tol}
    traced = {name: _abstract(v) for name, v in numbers.items() if v is not None and not is_concrete(v)}
    fixed = {name: v for name, v in numbers.items() if name not in traced}
    fixed |= {"separation": separation, "update_steps": update_steps, "return_weights": return_weights}

    def check(q, k, v, m, traced):
        return hopfield_attention(q, k, v, mask=m, **fixed, **traced)

    try:
        jax.eval_shape(check, _abstract(query), _abstract(key), _abstract(value), _abstract(mask), traced)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("hopfield_attention:", f"{context}:", 1)) from None
    # values: under eval_shape every number is abstract, so the ranges are checked here
    rules = {"beta": (lambda a: a > 0, "finite and > 0"), "alpha": (lambda a: (a > 1) & (a <= 2), "in (1, 2]")}
    rules["tol"] = (lambda a: a >= 0, "finite and >= 0")
    for name, value in fixed.items():
        if name in rules and value is not None:
            arr = np.asarray(value, np.float64)
            ok, allowed = rules[name]
            if not np.all(np.isfinite(arr) & ok(arr)):
                raise ValueError(f"{context}: {name} must be {allowed}, got {arr.ravel()[:4].tolist()}")


@partial(jax.jit, static_argnames=("mesh", "axis", "kind", "update_steps", "return_weights", "mask_split"))
def _attention_kernel(query, key, value, beta, alpha, mask, tol, *, mesh, axis, kind, update_steps, return_weights,
                      mask_split):  # fmt: skip
    n = int(mesh.shape[axis])
    ct = compute_dtype(query, key, value)
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
            return separation_local(scores, axis, n, kind, rows_alpha, "p")

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

    key, value = place(key, mesh, kv_spec), place(value, mesh, kv_spec)
    if mask is not None:
        mask = place(mask, mesh, mask_spec)
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
    context = "sharded_hopfield_attention"
    mesh = check_mesh(mesh, context)
    n = check_axis(mesh, axis, "axis", context)
    if not isinstance(separation, str) or separation not in SEPARATION_NAMES:
        raise ValueError(
            f"{context}: separation must be one of {list(SEPARATION_NAMES)} (the separations with a distributed "
            f"kernel), got {separation!r}"
        )
    _check_attention_args(query, key, value, beta, separation, alpha, mask, update_steps, tol, return_weights, context)
    query = check_floating(query, "query", context)
    key = check_floating(key, "key", context)
    value = check_floating(value, "value", context)
    check_divides(key.shape[-3], n, "the number of keys S", axis, context)
    heads, width = query.shape[-2:]
    beta = jnp.asarray(1.0 / np.sqrt(width), jnp.float32) if beta is None else jnp.asarray(beta)
    kind = kind_of_separation(separation)
    if kind == GENERAL:
        alpha = jnp.asarray(alpha)
    mask_split = False
    if mask is not None:
        mask = jnp.asarray(mask)
        full_ndim = max(query.ndim, key.ndim)  # the weights' (..., H, Q, S)
        mask = mask.reshape((1,) * (full_ndim - mask.ndim) + mask.shape)
        mask_split = mask.shape[-1] == key.shape[-3] and key.shape[-3] > 1
    kv_spec = P(*((None,) * (key.ndim - 3)), axis, None, None)
    query, beta, alpha = (onto(mesh, v, P()) for v in (query, beta, alpha))
    key, value = onto(mesh, key, kv_spec), onto(mesh, value, kv_spec)
    if mask is not None:
        mask = onto(mesh, mask, P(*((None,) * (mask.ndim - 1)), axis if mask_split else None))
    tol = None if tol is None else onto(mesh, jnp.asarray(tol), P())
    out = _attention_kernel(
        query, key, value, beta, alpha if kind == GENERAL else None, mask, None if tol is None else jnp.asarray(tol),
        mesh=mesh, axis=axis, kind=kind, update_steps=update_steps, return_weights=return_weights,
        mask_split=mask_split,
    )  # fmt: skip
    return out
