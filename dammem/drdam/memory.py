"""DrDAM memories: every pattern summed into one feature vector ``T``, and the energy that descends on it.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``Y`` random features, ``F`` feature width (``Y`` or
``2 Y``), ``B`` queries.

Hoover et al. (2024), eqs. 9-10: with ``phi`` a random feature map of the RBF kernel (:mod:`dammem.drdam.features`)
applied to ``sqrt(beta) x``,

- memory: ``T = sum_mu phi(sqrt(beta) xi_mu)`` (eq. 9); adding a pattern adds its features (Prop. 5), removing
  subtracts them, so ``T`` keeps size ``F`` for any number of patterns;
- energy: ``E(x) = -Q(s(x))`` with ``s(x) = <T, phi(sqrt(beta) x)>``, an unbiased estimate of
  ``sum_mu exp(-beta/2 ||x - xi_mu||^2)``; ``Q(s) = (1/beta) log s`` approximates the MrDAM energy of eq. 11
  (``dammem.energies.rbf_energy``), ``Q(s) = s`` the linear-Q energy;
- gradient (eq. 10): ``grad E = -Q'(s) sqrt(beta) J(z)^T T`` with ``J`` the Jacobian of ``phi`` at
  ``z = sqrt(beta) x``.

Memory and time. :func:`encode` scans feature chunks and, inside each, memory batches, reducing into the carry;
peak memory is ``O(Y + D)`` plus one chunk (Algorithm 1's ProcMems). :func:`energy` computes ``s`` and
``J^T T`` in one pass over the feature chunks and carries a custom JVP, so ``jax.grad`` and ``jax.value_and_grad``
save only ``O(D)`` residuals (``O(F)`` more when differentiating with respect to ``T``) and never a projection
chunk (Algorithm 1's GradComp). The random features themselves are constants: differentiating with respect to
``features`` raises an error instead of returning a wrong zero.

Exponential features. For ``exp`` and ``expexp`` the memory holds ``log T`` (``T`` is positive): encode, add, remove
and the energy work with log-sum-exp, so no feature underflows at large ``beta``; an empty memory is
``log T = -inf``.

Log clip (trigonometric features, ``q="log"``). ``s`` estimated with ``cos``/``sincos`` features can be ``<= 0``
(Hoover et al. (2024), footnote 6 clip it at a small ``eps``, which zeroes the gradient there). Here the log is
continued below ``eps`` by the hyperbola ``L(s) = log(eps) - 1 + eps / (2 eps - s)``, which matches ``log`` in
value and slope at ``eps`` and stays bounded: the energy below the clip lies between ``-log(eps) / beta`` and
``(1 - log(eps)) / beta`` (the clipped value of the paper plus at most ``1 / beta``), it is continuously
differentiable, forms a valid energy/gradient pair, and its gradient ``-sqrt(beta) L'(s) J^T T / beta`` with
``L'(s) = eps / (2 eps - s)^2 > 0`` still points towards larger ``s`` (towards the memories), decaying like
``eps / s^2`` (never exactly zero) far below the clip.
:func:`clip_fraction` counts the queries below ``eps``.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eqs. 9-11, Algorithm 1, Prop. 5).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Float, Int

from dammem._types import Array, ArrayLike
from dammem._validate import check_beta, check_float, check_floating, check_int, is_concrete
from dammem.drdam import features as _feat
from dammem.drdam.features import Features

__all__ = ["Memory", "Q_KINDS", "DEFAULT_EPS", "encode", "add", "remove", "energy", "clip_fraction"]

Q_KINDS = ("log", "identity")
DEFAULT_EPS = 1e-6
"""Default log-argument clip of the trigonometric kinds (see the module docstring)."""

_BATCH = 256  # memories per encode step


class Memory(NamedTuple):
    """A DrDAM memory (eq. 9): all stored patterns in one feature vector.

    Attributes:
      t: ``(F,)`` ``T = sum_mu phi(sqrt(beta) xi_mu)`` (trigonometric kinds) or ``log T`` (exponential kinds).
      count: ``()`` int32, the number of stored patterns.
    """

    t: Float[Array, " F"]
    count: Int[Array, ""]


# ----------------------------------------------------------------------------------------------------------------
# checks


def _check_memory(memory, features: Features, context: str, name: str = "T") -> Memory:
    if not isinstance(memory, Memory):
        raise TypeError(f"{context}: {name} must be a Memory from encode/add/remove, got {type(memory).__name__}")
    if jnp.shape(memory.t) != (features.size,):
        raise ValueError(
            f"{context}: {name}.t has shape {jnp.shape(memory.t)} but features of kind {features.kind!r} with "
            f"Y = {features.num_features} have F = {features.size} (shape ({features.size},)); encode with the same "
            "features"
        )
    return memory


def _check_patterns(memories, features: Features, context: str) -> Array:
    memories = check_floating(memories, "memories", context)
    if memories.ndim != 2 or memories.shape[1] != features.dim:
        raise ValueError(
            f"{context}: memories must have shape (K, D) with D = {features.dim} (the features' dim), got shape "
            f"{tuple(memories.shape)}"
        )
    return memories


def _check_query(x, features: Features, context: str) -> Array:
    x = check_floating(x, "x", context)
    if x.ndim != 1:
        raise ValueError(f"{context}: x must be one query of shape (D,), got shape {tuple(x.shape)}; use jax.vmap")
    if x.shape[0] != features.dim:
        raise ValueError(f"{context}: x has D = {x.shape[0]} but the features have dim = {features.dim}")
    return x


def _check_read_args(T, features: Features, beta, eps, chunk_size, context: str):
    """The checked arguments of energy and clip_fraction that follow the query: ``(T, beta, eps, rows)``."""
    T = _check_memory(T, features, context)
    beta = check_beta(beta, context)
    eps = check_float(eps, "eps", context, positive=True)
    return T, beta, eps, _feat.check_chunk_size(features, chunk_size, context)


# ----------------------------------------------------------------------------------------------------------------
# encode / add / remove


@partial(jax.jit, static_argnums=(3, 4))
def _encode_kernel(
    features: Features, memories: Array, beta, rows: int, batch: int, mask: Array | None = None
) -> Array:
    """``sum_mu phi(sqrt(beta) xi_mu)`` (or its log), scanning feature chunks and memory batches; rows where the
    optional ``mask`` (K,) is False contribute nothing (whatever they hold)."""
    dtype = _feat.compute_dtype(memories)
    k = memories.shape[0]
    fill = -jnp.inf if features.positive else 0.0
    if k == 0:
        return jnp.full((features.size,), fill, dtype)
    n_batches = -(-k // batch)
    batch = -(-k // n_batches)  # even batches, padded rows as few as possible
    z = _feat.padded_input(features, memories, beta, dtype)
    z = jnp.pad(z, ((0, n_batches * batch - k), (0, 0))).reshape(n_batches, batch, -1)
    valid = jnp.arange(n_batches * batch) < k
    if mask is not None:
        valid = valid & jnp.pad(mask, (0, n_batches * batch - k))
    valid = valid.reshape(n_batches, batch)

    def fn(_, index, op, __):
        phases = _feat.phases_chunk(features, index, rows, dtype)

        def step(acc, xs):
            zb, vb = xs
            values = _feat.chunk_values(features, op.apply(zb), phases, jnp.sum(zb * zb, -1))
            values = jnp.where(vb[:, None, None], values, fill)
            if features.positive:
                return jnp.logaddexp(acc, jax.nn.logsumexp(values, axis=0)), None
            return acc + values.sum(0), None

        acc = jnp.full((rows, features.width), fill, dtype)
        if n_batches == 1:
            return None, step(acc, (z[0], valid[0]))[0]
        return None, jax.lax.scan(step, acc, (z, valid))[0]

    _, outs = _feat.run_chunks(features, rows, dtype, fn, None)
    return _feat.rows_to_features(features, outs)


def _check_encode_args(features, memories, beta, chunk_size, batch_size, context, T=None):
    """The checked arguments of encode (``T`` None) and of add / remove (``T`` checked against the features):
    ``(features, memories, beta, rows, batch, T)``."""
    features = _feat.check_features(features, context)
    memories = _check_patterns(memories, features, context)
    beta = check_beta(beta, context)
    rows = _feat.check_chunk_size(features, chunk_size, context)
    batch = _BATCH if batch_size is None else check_int(batch_size, "batch_size", context, minimum=1)
    if T is not None:
        T = _check_memory(T, features, context)
    return features, memories, beta, rows, batch, T


def _encoded_delta(T, features, memories, beta, chunk_size, batch_size, context: str):
    """What :func:`add` and :func:`remove` change ``T`` by: ``(T, features, delta, K)`` with ``delta`` the encoded
    ``sum_mu phi(sqrt(beta) xi_mu)`` of the ``K`` patterns (its log for the exponential kinds) in ``T``'s dtype."""
    checked = _check_encode_args(features, memories, beta, chunk_size, batch_size, context, T)
    features, memories, beta, rows, batch, T = checked
    k = memories.shape[0]
    if context == "remove" and is_concrete(T.count) and int(T.count) < k:
        raise ValueError(
            f"{context}: cannot remove {k} pattern(s) from T, which holds {int(T.count)}"
            + (" (the memory is empty)" if int(T.count) == 0 else "")
        )
    return T, features, _encode_kernel(features, memories, beta, rows, batch).astype(T.t.dtype), k


def encode(
    features: Features,
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> Memory:
    """Store ``memories`` in one feature vector: ``T = sum_mu phi(sqrt(beta) xi_mu)`` (Hoover et al. (2024), eq. 9).

    Args:
      features: from :func:`dammem.drdam.make_features`.
      memories: ``(K, D)`` patterns (``K = 0`` gives the empty memory).
      beta: inverse temperature ``> 0`` (traced); use the same beta in :func:`energy`.
      chunk_size: feature rows per step (a multiple of ``features.block_size``); the result does not depend on it
        beyond float rounding.
      batch_size: memories per step (default 256); the result does not depend on it beyond float rounding.

    Returns:
      :class:`Memory` with ``count = K``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.drdam import make_features, encode
      >>> f = make_features("sincos", 8, 512, key=jax.random.key(0))
      >>> T = encode(f, jnp.eye(8) / 2, 4.0)
      >>> T.t.shape, int(T.count)
      ((1024,), 8)
    """
    checked = _check_encode_args(features, memories, beta, chunk_size, batch_size, "encode")
    features, memories, beta, rows, batch, _ = checked
    t = _encode_kernel(features, memories, beta, rows, batch)
    return Memory(t, jnp.asarray(memories.shape[0], jnp.int32))


def add(
    T: Memory,
    features: Features,
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> Memory:
    """Add patterns to a memory: ``T + sum_mu phi(sqrt(beta) xi_mu)`` (Hoover et al. (2024), Prop. 5).

    Costs ``O(K Y D)`` time and ``O(Y + D)`` memory whatever the number already stored. Arguments as
    :func:`encode`; ``T`` must come from the same ``features`` and ``beta``.

    Returns:
      The updated :class:`Memory` (``count`` grows by ``K``).
    """
    T, features, delta, k = _encoded_delta(T, features, memories, beta, chunk_size, batch_size, "add")
    t = jnp.logaddexp(T.t, delta) if features.positive else T.t + delta
    return Memory(t, T.count + k)


def remove(
    T: Memory,
    features: Features,
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> Memory:
    """Remove stored patterns: ``T - sum_mu phi(sqrt(beta) xi_mu)``, the inverse of :func:`add`.

    The patterns must be ones that were stored (a distributed memory cannot check which were). For the
    exponential kinds, ``log(T - delta)`` is computed as ``log T + log1p(-exp(log delta - log T))`` and becomes
    ``-inf`` where everything was removed. Arguments as :func:`encode`.

    Returns:
      The updated :class:`Memory` (``count`` shrinks by ``K``).

    Raises:
      ValueError: (when ``T.count`` is concrete) ``K`` exceeds the number of stored patterns, e.g. removing from an
        empty memory.
    """
    T, features, delta, k = _encoded_delta(T, features, memories, beta, chunk_size, batch_size, "remove")
    if features.positive:
        ratio = jnp.exp(delta - jnp.where(jnp.isfinite(T.t), T.t, 0.0))
        t = jnp.where(ratio < 1, T.t + jnp.log1p(-jnp.minimum(ratio, 1.0)), -jnp.inf)
    else:
        t = T.t - delta
    return Memory(t, T.count - k)


# ----------------------------------------------------------------------------------------------------------------
# energy


def _energy_parts(x, t, features: Features, beta, rows: int, need_grad: bool, need_dt: bool):
    """One pass over the feature chunks of ``x`` (D,) against ``t`` (F,).

    Returns ``(v, g, dv_dt)``: ``v = s`` (trigonometric) or ``log s`` (exponential); ``g = d v / d z`` (P,) or
    None; ``dv_dt`` (F,) or None.
    """
    dtype = _feat.compute_dtype(x, t)
    z = _feat.padded_input(features, x, beta, dtype)
    zsq = jnp.sum(z * z)
    n_chunks = -(-features.num_features // rows)
    fill = -jnp.inf if features.positive else 0.0
    t_rows = t.astype(dtype).reshape(features.num_features, features.width)
    t_rows = jnp.pad(t_rows, ((0, n_chunks * rows - features.num_features), (0, 0)), constant_values=fill)
    t_chunks = t_rows.reshape(n_chunks, rows, features.width)
    g0 = jnp.zeros(z.shape, dtype) if need_grad else None

    if not features.positive:
        # T as ``width`` arrays (n_chunks, R), one per feature of a row (cos, sin): contiguous, read once per chunk
        t_parts = tuple(t_chunks[..., w] for w in range(features.width))

        def fn(carry, index, op, t_c):
            s, g = carry
            phases = _feat.phases_chunk(features, index, rows, dtype)
            p = op.apply(z)
            values = _feat.chunk_value_parts(features, p, phases, zsq)
            s = s + sum(jnp.sum(t_w * v) for t_w, v in zip(t_c, values))
            if need_grad:
                slopes = _feat.chunk_value_slope_parts(features, p, phases, values)
                g = g + op.apply_t(sum(t_w * d for t_w, d in zip(t_c, slopes)))
            return (s, g), (jnp.stack(values, axis=-1) if need_dt else None)

        (s, g), outs = _feat.run_chunks(features, rows, dtype, fn, (jnp.zeros((), dtype), g0), t_parts)
        dv_dt = _feat.rows_to_features(features, outs) if need_dt else None
        return s, g, dv_dt

    signs = _feat.chunk_value_slopes(features, jnp.ones(()), None)  # (width,): +1 (exp) or +1, -1 (expexp)

    def fn(carry, index, op, t_c):
        m, total, g = carry
        p = op.apply(z)
        lv = t_c + _feat.chunk_values(features, p, None, zsq)
        m_new = jnp.maximum(m, jnp.max(lv))
        shift = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
        scale = jnp.exp(m - shift)
        e = jnp.exp(lv - shift)
        total = total * scale + jnp.sum(e)
        if need_grad:
            g = g * scale + op.apply_t(e @ signs)
        return (m_new, total, g), (lv if need_dt else None)

    init = (jnp.full((), -jnp.inf, dtype), jnp.zeros((), dtype), g0)
    (m, total, g), outs = _feat.run_chunks(features, rows, dtype, fn, init, t_chunks)
    log_s = jnp.where(total > 0, jnp.where(jnp.isfinite(m), m, 0.0) + jnp.log(total), -jnp.inf)
    if need_grad:  # grad_z log s = sum_a w_a (+-omega_a - 2 z), sum_a w_a = 1
        g = jnp.where(total > 0, g / jnp.where(total > 0, total, 1.0) - 2.0 * z, 0.0)
    dv_dt = None
    if need_dt:
        dv_dt = jnp.where(total > 0, jnp.exp(_feat.rows_to_features(features, outs) - log_s), 0.0)
    return log_s, g, dv_dt


def _q(v, beta, positive: bool, q: str, eps: float):
    """``(Q(v), dQ/dv, dQ/dbeta at fixed v)`` for ``v = s`` (trigonometric) or ``v = log s`` (exponential)."""
    if positive:
        if q == "log":
            return v / beta, 1.0 / beta, -v / beta**2
        s = jnp.exp(v)
        return s, s, jnp.zeros_like(v)
    if q == "identity":
        return v, jnp.ones_like(v), jnp.zeros_like(v)
    above = v >= eps
    tail = eps / (2.0 * eps - jnp.minimum(v, eps))  # in (0, 1]: the continuation below eps, and eps times its slope
    log_v = jnp.where(above, jnp.log(jnp.maximum(v, eps)), np.log(eps) - 1.0 + tail)
    d_log_v = jnp.where(above, 1.0 / jnp.maximum(v, eps), tail * tail / eps)
    return log_v / beta, d_log_v / beta, -log_v / beta**2


@partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _energy_kernel(x, t, features, beta, q: str, eps: float, rows: int):
    beta = jnp.asarray(beta, _feat.compute_dtype(x, t))
    v, _, _ = _energy_parts(x, t, features, beta, rows, need_grad=False, need_dt=False)
    return -_q(v, beta, features.positive, q, eps)[0]


def _is_zero(tangent) -> bool:
    return isinstance(tangent, SymbolicZero)


@partial(_energy_kernel.defjvp, symbolic_zeros=True)
def _energy_jvp(q, eps, rows, primals, tangents):
    x, t, features, beta = primals
    dx, dt, dfeatures, dbeta = tangents
    if not all(_is_zero(leaf) for leaf in jax.tree_util.tree_leaves(dfeatures, is_leaf=_is_zero)):
        raise ValueError(
            "energy: differentiating with respect to the random features is not supported (they are fixed random "
            "draws); differentiate with respect to x, T or beta"
        )
    dtype = _feat.compute_dtype(x, t)
    beta = jnp.asarray(beta, dtype)
    need_dt = not _is_zero(dt)
    need_grad = not (_is_zero(dx) and _is_zero(dbeta))
    v, g, dv_dt = _energy_parts(x, t, features, beta, rows, need_grad, need_dt)
    value, slope, beta_slope = _q(v, beta, features.positive, q, eps)
    dv = jnp.zeros((), dtype)
    if need_grad:
        root = jnp.sqrt(beta)
        gx = g[: features.dim]
        if not _is_zero(dx):
            dv = dv + root * jnp.dot(gx, dx.astype(dtype))
        if not _is_zero(dbeta):
            dv = dv + jnp.dot(gx, x.astype(dtype)) / (2.0 * root) * dbeta
    if need_dt:
        dv = dv + jnp.dot(dv_dt, dt.astype(dtype))
    d_energy = -slope * dv
    if not _is_zero(dbeta):
        d_energy = d_energy - beta_slope * dbeta
    return -value, d_energy.astype(value.dtype)


_energy_jit = jax.jit(_energy_kernel, static_argnums=(4, 5, 6))


def energy(
    x: Float[ArrayLike, " D"],
    T: Memory,
    features: Features,
    beta: ArrayLike,
    *,
    q: str = "log",
    eps: float = DEFAULT_EPS,
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    """DrDAM energy of one query: ``E(x) = -Q(<T, phi(sqrt(beta) x)>)`` (Hoover et al. (2024), eqs. 9-10).

    With ``q="log"``, ``Q(s) = (1/beta) log s`` and ``E`` approximates the MrDAM energy of eq. 11
    (``dammem.energies.rbf_energy(x, memories, beta)``); with ``q="identity"``, ``Q(s) = s``. Query first, so
    ``dammem.retrieve(energy, x0, (T, features, beta), step_size=...)`` descends it (``jax.vmap`` over queries).
    ``jax.grad`` uses a custom JVP: one pass over the features, ``O(Y + D)`` memory, no saved projections.

    Args:
      x: ``(D,)`` query.
      T: the :class:`Memory` from :func:`encode` / :func:`add` / :func:`remove`.
      features: the features ``T`` was encoded with.
      beta: inverse temperature ``> 0`` (traced), the one ``T`` was encoded with.
      q: ``"log"`` or ``"identity"`` (static).
      eps: log-argument clip of the trigonometric kinds with ``q="log"`` (static; see the module docstring:
        below ``eps`` the log is continued by a bounded curve with a non-zero slope).
      chunk_size: feature rows per step (a multiple of ``features.block_size``).

    Returns:
      Scalar energy. An empty memory (``T.count == 0``) is refused when ``T.count`` is concrete; inside ``jit`` it
      gives ``+inf`` (exponential kinds) or the clipped value with a zero gradient (trigonometric kinds).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.drdam import make_features, encode, energy
      >>> from dammem.energies import rbf_energy
      >>> f = make_features("sincos", 8, 4096, key=jax.random.key(0))
      >>> memories = jnp.eye(8) / jnp.sqrt(8.0)
      >>> T = encode(f, memories, 10.0)
      >>> approx, exact = energy(memories[0], T, f, 10.0), rbf_energy(memories[0], memories, 10.0)
      >>> bool(abs(approx - exact) < 0.05)
      True
    """
    context = "energy"
    features = _feat.check_features(features, context)
    x = _check_query(x, features, context)
    if q not in Q_KINDS:
        raise ValueError(f"{context}: q must be one of {Q_KINDS}, got {q!r}")
    T, beta, eps, rows = _check_read_args(T, features, beta, eps, chunk_size, context)
    if is_concrete(T.count) and int(T.count) == 0:
        raise ValueError(f"{context}: T is an empty memory (count 0); encode or add patterns first")
    return _energy_jit(x, T.t, features, beta, q, eps, rows)


def clip_fraction(
    x: Float[ArrayLike, "*B D"],
    T: Memory,
    features: Features,
    beta: ArrayLike,
    *,
    eps: float = DEFAULT_EPS,
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    """Fraction of queries whose estimate ``s = <T, phi(sqrt(beta) x)>`` falls below the log clip ``eps``.

    Only the trigonometric kinds clip (their ``s`` can be ``<= 0``); for ``exp``/``expexp`` the result is 0.

    Args:
      x: ``(D,)`` or ``(B, D)`` queries.
      T, features, beta, eps, chunk_size: as in :func:`energy`.

    Returns:
      Scalar in ``[0, 1]``.
    """
    context = "clip_fraction"
    features = _feat.check_features(features, context)
    x = check_floating(x, "x", context)
    if x.ndim not in (1, 2) or x.shape[-1] != features.dim:
        raise ValueError(f"{context}: x must have shape (D,) or (B, D) with D = {features.dim}, got {tuple(x.shape)}")
    T, beta, eps, rows = _check_read_args(T, features, beta, eps, chunk_size, context)
    queries = x.reshape(-1, features.dim)
    if features.positive:
        return jnp.zeros((), _feat.compute_dtype(x))

    return _clip_fraction_kernel(queries, T.t, features, beta, eps, rows)


@partial(jax.jit, static_argnums=(4, 5))
def _clip_fraction_kernel(queries, t, features, beta, eps: float, rows: int):
    def below(xq):
        s, _, _ = _energy_parts(xq, t, features, beta, rows, need_grad=False, need_dt=False)
        return s < eps

    return jnp.mean(jax.vmap(below)(queries).astype(_feat.compute_dtype(queries)))


def encode_kernel(features: Features, memories: Array, beta, rows: int, batch_size: int | None, mask: Array | None):
    """The unvalidated kernel of :func:`encode` (for :mod:`dammem.sharding`): ``T`` (or ``log T``) of the rows of
    ``memories`` whose ``mask`` (K,) is True; ``rows`` from ``features.check_chunk_size``."""
    return _encode_kernel(features, memories, beta, rows, _BATCH if batch_size is None else batch_size, mask)
