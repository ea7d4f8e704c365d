"""Multi-head hetero-associative retrieval (Hopfield attention) as a pure function.

Shape legend: ``...`` batch axes, ``Q`` query positions, ``S`` keys (stored patterns) attended over, ``H`` heads,
``D`` query/key width per head, ``D_v`` value width per head. The arrays follow the layout of
``jax.nn.dot_product_attention``: query ``(..., Q, H, D)``, key ``(..., S, H, D)``, value ``(..., S, H, D_v)``;
association weights ``(..., H, Q, S)``.

For every batch entry and head, the stored patterns are the keys ``K`` (rows ``k_s``) and the state ``xi`` of each
query starts at the query. The modern Hopfield update of Ramsauer et al. (2021) (Wu et al. (2024), eq. 1.2; with a
sparse or alpha-entmax separation as in Hu et al. (2023), Wu et al. (2024), eq. 2.4 with the dot-product kernel) is

    xi <- K^T Sep(beta K xi),

run ``update_steps - 1`` times; the output then reads the values out with the association weights of the final
state (the Hopfield layer ``Z = Sep(beta Q K^T) V`` of Wu et al. (2024), eq. C.1):

    p = Sep(beta K xi)   (the association weights over the S keys),        out = V^T p.

``Sep`` is softmax (alpha = 1), sparsemax (alpha = 2), 1.5-entmax or alpha-entmax from :mod:`dammem.separations`,
or any callable ``sep(scores, axis=-1, where=mask)``. ``beta`` multiplies the scores, per head if given as ``(H,)``
(default ``1 / sqrt(D)``); alpha of entmax may also be per head. With softmax and one step this is scaled dot-product
attention and equals ``jax.nn.dot_product_attention(query, key, value, mask=mask, scale=beta)``.

Grouped-query attention (as ``jax.nn.dot_product_attention`` and ``flax.nnx``): key and value may have
``H_kv`` heads with ``H_kv`` dividing ``H``; query head ``h`` uses key/value head ``h // (H / H_kv)``. An update step
then reads as before with that head's keys: every query head keeps its own state ``xi`` (and its own beta and
alpha) and moves it by ``xi <- K_g^T Sep(beta_h K_g xi)`` with the stored patterns ``K_g`` its group shares.

Masks hold whatever the separation: a callable separation gets ``where=mask``, and its weights on hidden keys are
then set to zero and the visible ones renormalised to sum to one (a callable that honours ``where`` is unchanged
up to rounding; one that ignores it cannot attend to a hidden key).

Per-head limits: ``update_steps`` may give one number per head (and ``tol`` one value per head); a head that has
run its own number of updates keeps its state while the others go on, so each head computes what it computes alone
with its own number.

Until convergence: ``update_steps=None`` runs state updates until every query (per head) moved by at most ``tol``
in a step, at most ``max_steps`` of them, then reads out. ``loop="while"`` stops as soon as all have converged
(``lax.while_loop``: forward mode only); ``loop="scan"`` runs ``max_steps`` steps in which converged queries keep
their state, so it computes the same output and is reverse-differentiable (use it for training).

A beta traced by the caller's ``jit`` (it cannot be checked there) that is not positive gives NaN outputs and
weights, as ``jnp.log(-1.0)`` does, never attention that favours the least similar key.

Edge cases (documented, tested): a query whose mask hides every key gets zero weights and a zero output (never
NaN, unlike a plain softmax over ``-inf``); its state in an update step becomes zero too. bfloat16 / float16 inputs
are computed in float32 and the output is cast back to the query's dtype. With ``tol``, a query (per head) whose
state moved by at most ``tol`` (largest absolute change) in an update step keeps that state in all later steps; the
loop is a ``lax.scan`` of fixed length, so everything stays differentiable.

Speed: the arrays are moved to a head-major layout ``(..., H, Q, D)`` so that every product is a plain batched matrix
product. Softmax with one step (no weights returned, no dropout) is one fused read-out whose derivative rule makes
the backward pass take a single pass over the weights (see ``_softmax_read_jvp``); forward and reverse mode and
higher derivatives all work. Every other case differentiates through :mod:`dammem.separations`.

References:
  - Ramsauer, Schäfl, Lehner, Seidl, Widrich, Adler, Gruber, Holzleitner, Pavlović, Sandve, Greiff, Kreil, Kopp,
    Klambauer, Brandstetter, Hochreiter (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin (2017). Attention Is All You Need. NeurIPS.
  - Dao, Fu, Ermon, Rudra, Ré (2022). FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness.
    NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Bool, Float

from dammem import separations
from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import (
    check_alpha,
    check_beta,
    check_bool,
    check_float,
    check_floating,
    check_int,
    check_mask,
    check_per_head,
    check_positive,
    check_scalar,
    is_concrete,
    nan_unless_positive,
)

__all__ = ["hopfield_attention"]

Separation = Union[str, Callable[..., Array]]
PrecisionLike = Union[None, str, lax.Precision, tuple, list]

_NAME = "hopfield_attention"


# ----------------------------------------------------------------------------------------------------------------
# Argument checks (at the Python boundary: shapes, static choices and concrete values)
# ----------------------------------------------------------------------------------------------------------------


def _check_qkv(query, key, value) -> tuple[Array, Array, Array, tuple]:
    query = check_floating(query, "query", _NAME)
    key = check_floating(key, "key", _NAME)
    value = check_floating(value, "value", _NAME)
    for name, arr, form in (("query", query, "Q, H, D"), ("key", key, "S, H, D"), ("value", value, "S, H, D_v")):
        if arr.ndim < 3:
            raise ValueError(f"{_NAME}: {name} must have shape (..., {form}), got {tuple(arr.shape)}")
    q_heads, width = query.shape[-2:]
    kv_heads = key.shape[-2]
    if key.shape[-1] != width or kv_heads == 0 or q_heads % kv_heads != 0:
        raise ValueError(
            f"{_NAME}: key of shape {tuple(key.shape)} must have (H_kv, D) in its last two axes with D = {width} and"
            f" H_kv dividing the query's H = {q_heads} (grouped-query attention), like query of shape"
            f" {tuple(query.shape)}"
        )
    if value.shape[-3] != key.shape[-3] or value.shape[-2] != kv_heads:
        raise ValueError(
            f"{_NAME}: value of shape {tuple(value.shape)} must have (S, H_kv) = {(key.shape[-3], kv_heads)} in"
            f" axes -3 and -2 like key of shape {tuple(key.shape)}"
        )
    if key.shape[-3] == 0:
        raise ValueError(f"{_NAME}: key holds no patterns (S = 0); at least one is needed")
    try:
        batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
    except ValueError:
        raise ValueError(
            f"{_NAME}: the batch axes of query {tuple(query.shape)}, key {tuple(key.shape)} and value"
            f" {tuple(value.shape)} do not broadcast"
        ) from None
    return query, key, value, tuple(batch)


def _check_separation(separation, alpha, heads: int) -> Array | None:
    """The alpha of a registered separation that takes one (scalar or per head), else None; the name by the registry."""
    spec = separations.resolve_separation(separation, alpha, _NAME)
    if spec is None or not spec.takes_alpha:
        return None
    return check_alpha(alpha, _NAME, heads=heads)


def _check_steps(update_steps, tol, max_steps, loop, heads: int) -> tuple[int | tuple[int, ...], ArrayLike | None, str]:
    """The number of separations to run (static: one int, or one per head), the traced tol (scalar or per head) and
    the loop ("scan" or "while")."""
    if loop not in ("scan", "while"):
        raise ValueError(f"{_NAME}: loop must be 'scan' or 'while', got {loop!r}")
    if update_steps is None:
        if tol is None:
            raise ValueError(f"{_NAME}: update_steps=None (until convergence) needs tol (the largest change allowed)")
        steps = check_int(max_steps, "max_steps", _NAME, minimum=1) + 1
        return steps, _check_tol(tol, heads), loop
    if loop == "while":
        raise ValueError(
            f"{_NAME}: loop='while' is for update_steps=None (until convergence), got update_steps={update_steps!r}"
        )
    return check_update_steps(update_steps, heads, _NAME), _check_tol(tol, heads), "scan"


def check_update_steps(update_steps, heads: int, context: str) -> int | tuple[int, ...]:
    """A static number of separations >= 1: one int, or a sequence of one per head (returned as a tuple, or as one
    int when all are equal)."""
    if isinstance(update_steps, (list, tuple)):
        if len(update_steps) != heads:
            raise ValueError(
                f"{context}: update_steps must be an int or one int per head ({heads}), got {update_steps!r}"
            )
        steps = tuple(check_int(s, f"update_steps[{h}]", context, minimum=1) for h, s in enumerate(update_steps))
        return steps[0] if len(set(steps)) == 1 else steps
    return check_int(update_steps, "update_steps", context, minimum=1)


def _check_tol(tol, heads: int) -> ArrayLike | None:
    if tol is None:
        return None
    value = check_scalar(tol, "tol", _NAME) if np.ndim(tol) == 0 else check_per_head(tol, "tol", _NAME, heads)
    check_positive(tol, "tol", _NAME, allow_zero=True)  # the argument itself: concrete inside a caller's jit
    return value


# ----------------------------------------------------------------------------------------------------------------
# The kernel (validated arguments; static: the separation, the number of steps and the outputs)
# ----------------------------------------------------------------------------------------------------------------


def _separate(separation: Separation, scores: Array, mask: Array | None, alpha: Array | None) -> Array:
    """The association weights over the last axis of ``scores`` (..., H, Q, S)."""
    if callable(separation):
        p = separation(scores, axis=-1, where=mask)
        if mask is None:
            return p
        # a callable may ignore ``where``: its weights on hidden keys are dropped and the rest renormalised (a
        # callable that honours the mask is unchanged up to rounding; a row with nothing visible gets zeros)
        p = jnp.where(mask, p, 0.0)
        total = jnp.sum(p, axis=-1, keepdims=True)
        return p / jnp.where(total > 0, total, 1.0)
    spec = separations.SEPARATIONS[separation]
    if not spec.takes_alpha:
        return spec.fn(scores, -1, where=mask)
    per_head = alpha.reshape(alpha.shape + (1, 1))  # (H, 1, 1) against (..., H, Q, S); a scalar stays a scalar
    return spec.fn(scores, per_head, -1, where=mask)


def _softmax_weights(scores: Array, mask: Array | None) -> Array:
    """Max-shifted softmax over the last axis; hidden (or -inf) scores get 0 and a row with none left gets zeros."""
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    top = lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True))
    top = jnp.where(top == -jnp.inf, 0.0, top)  # a fully hidden row: exp(-inf) = 0 everywhere below
    e = jnp.exp(scores - top)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


@jax.custom_jvp
def _softmax_read(q: Array, k: Array, v: Array, b: Array, mask: Array | None) -> Array:
    """``softmax(b q k^T) v`` per head in the head-major layout (..., H, Q, D): one read-out whose derivative is
    written so that its transpose (the backward pass) needs a single pass over the weights."""
    return jnp.einsum("...hqs,...hsv->...hqv", _softmax_weights(jnp.einsum("...hqd,...hsd->...hqs", q * b, k), mask), v)


def _is_zero(t) -> bool:
    return isinstance(t, SymbolicZero)


@partial(_softmax_read.defjvp, symbolic_zeros=True)
def _softmax_read_jvp(primals, tangents):
    """With ``p = softmax(s)`` and ``out = p V``: ``d out = (p * ds) V - <p, ds> out + p dV``. Written with ``out``
    (not ``<p, ds> p V``), the transpose of the middle term is ``p <g, out>``: the row term of the softmax Jacobian
    ``diag(p) - p p^T`` comes from the small ``<g, out>`` instead of a second pass over ``p * (g V^T)`` (the identity
    of FlashAttention's backward pass, Dao et al. (2022), Alg. 4)."""
    q, k, v, b, mask = primals  # the mask (boolean) has no tangent
    dq, dk, dv, db, _ = tangents
    qb = q * b
    p = _softmax_weights(jnp.einsum("...hqd,...hsd->...hqs", qb, k), mask)
    out = jnp.einsum("...hqs,...hsv->...hqv", p, v)
    dqb = None
    if not _is_zero(dq):
        dqb = dq * b
    if not _is_zero(db):
        dqb = q * db if dqb is None else dqb + q * db
    ds = None if dqb is None else jnp.einsum("...hqd,...hsd->...hqs", dqb, k)
    if not _is_zero(dk):
        dsk = jnp.einsum("...hqd,...hsd->...hqs", qb, dk)
        ds = dsk if ds is None else ds + dsk
    dout = jnp.zeros_like(out)
    if ds is not None:
        pds = p * ds
        dout = jnp.einsum("...hqs,...hsv->...hqv", pds, v) - jnp.sum(pds, axis=-1, keepdims=True) * out
    if not _is_zero(dv):
        dout = dout + jnp.einsum("...hqs,...hsv->...hqv", p, dv)
    return out, dout


@partial(
    jax.jit,
    static_argnames=(
        "separation",
        "update_steps",
        "return_weights",
        "dropout_rate",
        "broadcast_dropout",
        "batch",
        "loop",
        "precision",
    ),
)
def _hopfield_kernel(
    query, key, value, beta, alpha, mask, tol, dropout_key, *,
    separation, update_steps, return_weights, dropout_rate, broadcast_dropout, batch, loop, precision,
):  # fmt: skip
    out_dtype = query.dtype
    ct = jnp.promote_types(jnp.result_type(query, key, value), jnp.float32)
    # head-major layout (..., H, Q, D): every product below is a plain batched matrix product
    q, k, v = (jnp.swapaxes(x.astype(ct), -3, -2) for x in (query, key, value))
    group = q.shape[-3] // k.shape[-3]
    if group > 1:  # grouped-query attention: query head h reads key/value head h // group (as flax.nnx)
        k, v = jnp.repeat(k, group, axis=-3), jnp.repeat(v, group, axis=-3)
    einsum = partial(jnp.einsum, precision=precision)
    b = beta.astype(ct)
    b = b[:, None, None] if b.ndim == 1 else b  # (H, 1, 1) scales the query's heads: beta <K, xi> = <K, beta xi>
    a = None if alpha is None else alpha.astype(ct)

    fused = precision is None and dropout_rate == 0.0 and not return_weights
    if separation == "softmax" and update_steps == 1 and fused:
        out = _softmax_read(q, k, v, b, mask)
        return jnp.swapaxes(out, -3, -2).astype(out_dtype)

    def weights(xi):
        scores = einsum("...hqd,...hsd->...hqs", xi * b, k)  # beta K xi for every query and head
        return _separate(separation, scores, mask, a)

    per_head = isinstance(update_steps, tuple)  # one number of separations per head: head h stops after its own
    updates = (max(update_steps) if per_head else update_steps) - 1
    limits = jnp.asarray(update_steps)[:, None] - 1 if per_head else None  # (H, 1): the updates each head runs
    tol = None if tol is None else (tol[:, None] if jnp.ndim(tol) == 1 else tol)  # (H, 1) against (..., H, Q)
    if updates > 0:
        xi0 = jnp.broadcast_to(q, batch + q.shape[-3:])

        def step(xi, active, i):
            new = einsum("...hqs,...hsd->...hqd", weights(xi), k)  # xi <- K^T Sep(beta K xi)
            if per_head:
                active = active & (i < limits)  # a head past its own number of updates keeps its state
            if tol is None and not per_head:
                return new, active
            new = jnp.where(active[..., None], new, xi)  # a converged (or stopped) query keeps its state
            if tol is None:
                return new, active
            moved = jnp.max(jnp.abs(new - xi), axis=-1)  # (..., H, Q)
            return new, active & (moved > tol)

        active0 = jnp.ones(xi0.shape[:-1], jnp.bool_)
        if loop == "while":  # stops once every query has converged (forward only: not reverse-differentiable)

            def cond(carry):
                _, active, i = carry
                return (i < updates) & jnp.any(active)

            def body(carry):
                xi, active, i = carry
                return (*step(xi, active, i), i + 1)

            q, _, _ = lax.while_loop(cond, body, (xi0, active0, jnp.zeros((), jnp.int32)))
        else:
            (q, _), _ = lax.scan(lambda c, i: (step(*c, i), None), (xi0, active0), jnp.arange(updates))

    p = weights(q)
    read = p
    if dropout_rate > 0.0:
        shape = (1,) * (p.ndim - 2) + p.shape[-2:] if broadcast_dropout else p.shape
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, shape)
        read = jnp.where(keep, p / (1.0 - dropout_rate), 0.0)
    out = jnp.swapaxes(einsum("...hqs,...hsv->...hqv", read, v), -3, -2).astype(out_dtype)
    if return_weights:
        return out, p.astype(out_dtype)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Public function
# ----------------------------------------------------------------------------------------------------------------


def hopfield_attention(
    query: Float[ArrayLike, "*qbatch Q H D"],
    key: Float[ArrayLike, "*kbatch S H D"],
    value: Float[ArrayLike, "*vbatch S H D_v"],
    *,
    beta: Float[ArrayLike, ""] | Float[ArrayLike, " H"] | None = None,
    separation: Separation = "softmax",
    alpha: Float[ArrayLike, ""] | Float[ArrayLike, " H"] | None = None,
    mask: Bool[ArrayLike, "*#mbatch #H #Q #S"] | None = None,
    update_steps: int | Sequence[int] | None = 1,
    tol: float | Float[ArrayLike, " H"] | None = None,
    max_steps: int = 100,
    loop: str = "scan",
    dropout_rate: float = 0.0,
    dropout_key: PRNGKey | None = None,
    broadcast_dropout: bool = True,
    return_weights: bool = False,
    precision: PrecisionLike = None,
) -> Float[Array, "*batch Q H D_v"] | tuple[Float[Array, "*batch Q H D_v"], Float[Array, "*batch H Q S"]]:
    """Hopfield retrieval of the values through the keys: ``out = V^T Sep(beta K xi)`` after ``xi <- K^T Sep(beta K
    xi)`` run ``update_steps - 1`` times from ``xi = query`` (Wu et al. (2024), eqs. 2.4 and C.1).

    The layout is that of ``jax.nn.dot_product_attention``; with ``separation="softmax"`` and one step the result
    equals it (``scale=beta``). Jitted: ``separation``, ``update_steps``, ``return_weights``, ``dropout_rate``,
    ``broadcast_dropout``, ``max_steps``, ``loop`` and ``precision`` are static; ``beta``, ``alpha`` and ``tol`` are
    traced (a learnable beta or alpha, or a sweep, never recompiles).

    Args:
      query: the queries (initial states), ``(..., Q, H, D)``.
      key: the stored patterns, ``(..., S, H_kv, D)`` with ``H_kv`` dividing ``H`` (grouped-query attention when
        smaller); the batch axes of query, key and value broadcast together (stored patterns shared by a batch of
        queries need none).
      value: what is read out, ``(..., S, H_kv, D_v)``.
      beta: inverse temperature multiplying the scores: a positive scalar or one per head ``(H,)``; default
        ``1 / sqrt(D)``.
      separation: a name in :data:`dammem.separations.SEPARATIONS` (``"softmax"``, ``"sparsemax"``,
        ``"entmax15"``, ``"entmax"``, which needs ``alpha``) or a callable ``sep(scores, axis=-1, where=mask)``
        returning weights of the scores' shape (masked and renormalised afterwards: see the module docstring).
      alpha: the alpha of ``separation="entmax"``, in (1, 2]: a scalar or one per head ``(H,)``. Refused with the
        other separations (they fix their own).
      mask: boolean, broadcastable to ``(..., H, Q, S)``; True = attend. A query that attends to no key gets zero
        weights and a zero output.
      update_steps: static int >= 1; the number of separations computed: ``update_steps - 1`` state updates, then
        the read-out. A sequence of one int per head: head ``h`` runs ``update_steps[h] - 1`` updates and keeps its
        state while the others go on (hopfield-layers' per-head ``update_steps_max``). None: until convergence
        (needs ``tol``; at most ``max_steps`` updates).
      tol: optional, a scalar or one per head ``(H,)``; a query (per head) whose state moved by at most ``tol``
        (largest absolute change) in an update step keeps its state from then on.
      max_steps: static; the most state updates with ``update_steps=None``.
      loop: ``"scan"`` (differentiable) or, with ``update_steps=None`` only, ``"while"`` (stops when every query has
        converged; not reverse-differentiable).
      dropout_rate: dropout on the read-out association weights, in [0, 1) (0: none).
      dropout_key: the ``jax.random`` key of the dropout; required when ``dropout_rate > 0``.
      broadcast_dropout: share one dropout pattern across the batch axes and heads (as ``flax.nnx``'s attention).
      return_weights: also return the read-out association weights (before dropout).
      precision: the ``lax.Precision`` of every product (as ``jnp.einsum``'s ``precision``); static.

    Returns:
      The output ``(..., Q, H, D_v)`` in the query's dtype; with ``return_weights`` the pair (output, weights
      ``(..., H, Q, S)``).

    Raises:
      ValueError: on mismatched shapes, a mask that does not broadcast, an unknown separation, alpha missing or out of
        (1, 2], beta of the wrong shape or not positive, ``update_steps < 1``, a negative ``tol`` or a bad dropout.
      TypeError: on complex inputs, a non-boolean mask or a non-integer ``update_steps``.

    Example:
      >>> import jax.numpy as jnp
      >>> keys = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])[:, None, :]  # S=3 patterns, H=1 head, D=2
      >>> values = jnp.array([[1.0], [2.0], [3.0]])[:, None, :]
      >>> query = jnp.array([[0.9, 0.2]])[:, None, :]  # Q=1
      >>> out, w = hopfield_attention(query, keys, values, beta=1.0, separation="sparsemax", return_weights=True)
      >>> [round(x, 3) for x in w[0, 0].tolist()], round(float(out[0, 0, 0]), 3)  # exact zero on the third key
      ([0.85, 0.15, 0.0], 1.15)
    """
    query, key, value, batch = _check_qkv(query, key, value)
    heads, width = query.shape[-2:]
    b = jnp.asarray(1.0 / np.sqrt(width)) if beta is None else check_beta(beta, _NAME, heads=heads)
    a = _check_separation(separation, alpha, heads)
    target = "the association weights' shape (..., H, Q, S) ="
    m = check_mask(mask, batch + (heads, query.shape[-3], key.shape[-3]), _NAME, target=target)
    steps, t, loop = _check_steps(update_steps, tol, max_steps, loop, heads)
    rate = check_float(dropout_rate, "dropout_rate", _NAME, allow_zero=True, below=1.0)
    if rate > 0 and dropout_key is None:
        raise ValueError(f"{_NAME}: dropout_rate={rate} > 0 needs a dropout_key (a jax.random key)")
    check_bool(return_weights, "return_weights", _NAME)
    check_bool(broadcast_dropout, "broadcast_dropout", _NAME)
    result = _hopfield_kernel(
        query, key, value, b, a, m, t, dropout_key if rate > 0 else None,
        separation=separation, update_steps=steps, return_weights=return_weights, dropout_rate=rate,
        broadcast_dropout=broadcast_dropout, batch=batch, loop=loop, precision=_hashable(precision),
    )  # fmt: skip
    # a beta traced by the caller's jit cannot be checked: one <= 0 gives NaN (as jnp.log(-1.0)), never the
    # attention to the least similar key that a negative scale would compute
    return jax.tree.map(partial(nan_unless_positive, jnp.min(b) if not is_concrete(b) else b), result)


def _hashable(precision: PrecisionLike) -> PrecisionLike:
    """A precision as a static (hashable) argument: a list of two becomes a tuple."""
    return tuple(precision) if isinstance(precision, list) else precision
