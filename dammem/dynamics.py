"""Retrieval: energy descent and fixed-point (CCCP) dynamics, with clamping, tolerance stops and energy traces.

Shape legend: ``D`` pattern dimension, ``T`` steps (:mod:`dammem._types`). One unbatched query per call; batch
with ``jax.vmap``.

Two update rules:

- energy descent ``x <- x - eta grad E(x)`` with ``jax.grad`` of any energy ``E(x, *args)`` (Hoover et al. (2024),
  eq. 5);
- a fixed-point map ``x <- T(x, *args)``, e.g. ``Xi^T Sep(beta sim(Xi, x))`` (Wu et al. (2024), eq. 2.4), the CCCP
  step of the generalized sparse Hopfield energy, which never increases it (their Thm. 2.1).

Coordinates where ``clamp`` is True are visible: they keep their initial value (descent zeroes their gradient, as
in Hoover et al. (2024), Sec. 4.2; a fixed-point map has them reset). With ``loop="while"`` the dynamics stop at
``|E(x_t) - E(x_{t-1})| < tol`` or after ``max_steps`` (the convergence rule of Hoover et al. (2024), Sec. 3);
``loop="scan"`` always runs ``max_steps`` steps (states freeze once ``tol`` is met) and is differentiable end to end.

Compilation: :func:`retrieve` is jitted. ``x0``, ``args`` (memories, beta, alpha, ... and any pytree of arrays,
e.g. a :func:`~dammem.similarities.kernelize` similarity), ``step_size``, ``clamp`` and ``tol`` are traced, so
changing their values never re-traces; ``energy``, ``update``, ``max_steps``, ``loop``, ``trace`` and whether
``tol`` is None are static. Static callables are compared by identity, except ``functools.partial`` objects,
which compare by their function and (hashable) arguments: an eager call with the same energy object (or an equal
partial) reuses the compiled code, while a new ``lambda`` per call compiles anew.

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, check_int, check_mask, check_positive

__all__ = ["retrieve", "Retrieval"]


class Retrieval(NamedTuple):
    """Result of :func:`retrieve`.

    Attributes:
      x: (D,) final state, in the dtype of ``x0``.
      energy: scalar energy of ``x`` (in the dtype the dynamics ran in, see :func:`retrieve`).
      steps: number of updates applied (int32).
      converged: whether ``|dE| < tol`` was reached (False when ``tol`` is None).
      trace: (T + 1,) energies ``E(x_0), ..., E(x_T)`` with ``T = max_steps`` when ``trace=True`` (entries after
        ``steps`` repeat the final energy), else None.
    """

    x: Array
    energy: Array
    steps: Array
    converged: Array
    trace: Array | None


class _Static:
    """A callable as a static ``jit`` argument: identity, or a ``functools.partial``'s function and arguments."""

    __slots__ = ("fn", "key")

    def __init__(self, fn: Callable):
        self.fn = fn
        self.key = _static_key(fn)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Static) and self.key == other.key


def _static_key(fn):
    if isinstance(fn, functools.partial):
        key = (
            _static_key(fn.func),
            tuple((type(a), a) for a in fn.args),
            tuple(sorted((k, type(v), v) for k, v in fn.keywords.items())),
        )
        try:
            hash(key)
        except TypeError:  # an array among the arguments: fall back to identity
            return (_Identity(fn),)
        return key
    return (_Identity(fn),)


class _Identity:
    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj


def _is_array_like(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, numbers.Number))


def retrieve(
    energy: Callable[..., Array],
    x0: ArrayLike,
    args: tuple = (),
    *,
    update: Callable[..., Array] | None = None,
    step_size: ArrayLike | None = None,
    clamp: ArrayLike | None = None,
    max_steps: int = 100,
    tol: float | None = 1e-6,
    loop: Literal["while", "scan"] = "while",
    trace: bool = False,
) -> Retrieval:
    """Descend ``energy`` from ``x0`` (gradient steps, or the fixed-point map ``update``) until it settles.

    The dynamics run in the common dtype of ``x0``, the energy and the update (a bf16 query with float32 memories
    runs in float32); the returned state has ``x0``'s dtype, the energies the common dtype.

    Because ``args`` are traced, value checks inside ``energy``/``update`` (``beta > 0``, alpha in [1, 2]) cannot
    raise here; the dammem energies then return NaN. Call the energy once directly to get the error message.

    Args:
      energy: ``energy(x, *args) -> scalar`` for one query ``x`` of shape (D,) (static; see the module docstring).
      x0: (D,) initial state (e.g. a corrupted pattern).
      args: extra arguments of ``energy`` / ``update`` (memories, beta, alpha, ...): a tuple of arrays, numbers or
        pytrees of them; traced.
      update: optional fixed-point map ``update(x, *args) -> (D,)``; when None, energy descent is used.
      step_size: ``eta`` of energy descent (> 0; required for descent, refused with ``update``).
      clamp: optional (D,) boolean mask, True = visible coordinate held at its ``x0`` value. A fixed-point
        ``update`` followed by the reset descends only energies whose convex part is ``1/2 ||x||^2`` (the dot and
        ``neg_sq_l2`` sparse Hopfield energies, the RBF energy); use energy descent for kernelized energies.
      max_steps: maximum (``loop="while"``) or exact (``loop="scan"``) number of updates, >= 0.
      tol: stop once ``|E(x_t) - E(x_{t-1})| < tol``; None runs all ``max_steps``.
      loop: ``"while"`` (stops early; not reverse-differentiable) or ``"scan"`` (fixed length; differentiable).
      trace: also return the energy of every step.

    Returns:
      :class:`Retrieval`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem import retrieve
      >>> from dammem.energies import rbf_energy, rbf_update
      >>> memories = jnp.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
      >>> x0 = jnp.array([0.6, 0.8, -0.4, 0.0])
      >>> out = retrieve(rbf_energy, x0, (memories, 4.0), step_size=0.5, max_steps=200, tol=1e-6)
      >>> [round(v, 2) for v in out.x.tolist()], bool(out.converged)
      ([1.0, 1.0, -1.0, -1.0], True)
      >>> fixed = retrieve(rbf_energy, x0, (memories, 4.0), update=rbf_update)  # CCCP fixed-point steps
      >>> [round(v, 2) for v in fixed.x.tolist()]
      [1.0, 1.0, -1.0, -1.0]
      >>> queries = jnp.stack([x0, -x0])
      >>> batch = jax.vmap(lambda x: retrieve(rbf_energy, x, (memories, 4.0), update=rbf_update))(queries)
      >>> batch.x.shape
      (2, 4)
    """
    if not callable(energy):
        raise TypeError(f"retrieve: energy must be a callable energy(x, *args), got {type(energy).__name__}")
    if update is not None and not callable(update):
        raise TypeError(f"retrieve: update must be a callable update(x, *args) or None, got {type(update).__name__}")
    if not isinstance(args, tuple):
        raise TypeError(f"retrieve: args must be a tuple of extra arguments, got {type(args).__name__}")
    for leaf in jax.tree.leaves(args):
        if not _is_array_like(leaf):
            raise TypeError(
                f"retrieve: args are traced, so they must be arrays, numbers or pytrees of them; got "
                f"{type(leaf).__name__} {leaf!r} (pass static choices to the energy with functools.partial)"
            )
    x0 = check_floating(x0, "x0", "retrieve")
    if x0.ndim != 1:
        raise ValueError(f"retrieve: x0 must be one state of shape (D,), got {tuple(x0.shape)}; use jax.vmap")
    max_steps = check_int(max_steps, "max_steps", "retrieve", minimum=0)
    if loop not in ("while", "scan"):
        raise ValueError(f"retrieve: loop must be 'while' or 'scan', got {loop!r}")
    if not isinstance(trace, bool):
        raise TypeError(f"retrieve: trace must be a bool, got {trace!r}")
    if tol is not None:
        check_positive(tol, "tol", "retrieve", allow_zero=True)
    if update is None:
        if step_size is None:
            raise ValueError("retrieve: energy descent needs step_size (eta > 0); or pass a fixed-point update")
        check_positive(step_size, "step_size", "retrieve")
    elif step_size is not None:
        raise ValueError("retrieve: step_size is only used by energy descent; it has no effect with update=...")
    clamp = check_mask(clamp, x0.shape, "retrieve", name="clamp", meaning="True = visible", target="x0's shape")
    if clamp is not None:
        clamp = jnp.broadcast_to(clamp, x0.shape)

    static = (_Static(energy), None if update is None else _Static(update), max_steps, loop, trace, tol is None)
    operands = (x0, args, step_size, clamp, tol)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(operands)):
        return _retrieve(*static, *operands)  # already inside a trace: no inner jit (and no tracers in its cache)
    return _retrieve_jit(*static, *operands)


def _retrieve(energy_s, update_s, max_steps, loop, trace, no_tol, x0, args, step_size, clamp, tol) -> Retrieval:
    """The dynamics of :func:`retrieve` on validated arguments."""
    energy = energy_s.fn
    update = None if update_s is None else update_s.fn

    def energy_of(x):
        value = energy(x, *args)
        if jnp.ndim(value) != 0:
            raise ValueError(f"retrieve: energy must return a scalar, got shape {jnp.shape(value)}")
        return value

    # The common dtype of the state, the energy and the update (their outputs may promote x0's dtype).
    dtypes = [x0.dtype, jax.eval_shape(energy_of, x0).dtype]
    if update is not None:
        out = jax.eval_shape(lambda x: update(x, *args), x0)
        if out.shape != x0.shape:
            raise ValueError(f"retrieve: update must return the state's shape {x0.shape}, got {out.shape}")
        dtypes.append(out.dtype)
    dtype = functools.reduce(jnp.promote_types, dtypes)
    start = x0.astype(dtype)
    free = None if clamp is None else (~clamp).astype(dtype)
    value_and_grad = jax.value_and_grad(energy_of)

    # The carry holds (x, E(x), grad E(x) or None): descent needs one value_and_grad per step.
    def evaluate(x):
        if update is None:
            value, grad = value_and_grad(x)
            return value, grad if free is None else grad * free
        return energy_of(x), None

    e0, g0 = evaluate(start)

    def advance(x, grad):
        if update is None:
            return (x - step_size * grad).astype(dtype)
        x_new = update(x, *args).astype(dtype)
        return x_new if clamp is None else jnp.where(clamp, start, x_new)

    def evaluate_next(x, grad):
        x_new = advance(x, grad)
        e_new, g_new = evaluate(x_new)
        return x_new, e_new.astype(e0.dtype), g_new

    def is_settled(e_old, e_new):
        if no_tol:
            return jnp.bool_(False)
        return jnp.abs(e_new - e_old) < tol

    if loop == "while":

        def cond(carry):
            _, _, _, t, done, _ = carry
            return (t < max_steps) & ~done

        def body(carry):
            x, e, g, t, _, hist = carry
            x_new, e_new, g_new = evaluate_next(x, g)
            if hist is not None:
                hist = hist.at[t + 1].set(e_new)
            return x_new, e_new, g_new, t + 1, is_settled(e, e_new), hist

        energies = jnp.full((max_steps + 1,), e0) if trace else None
        init = (start, e0, g0, jnp.int32(0), jnp.bool_(False), energies)
        x, e, _, steps, done, hist = lax.while_loop(cond, body, init)
        if hist is not None:  # entries after the stop repeat the final energy
            hist = jnp.where(jnp.arange(max_steps + 1) <= steps, hist, e)
        return Retrieval(x.astype(x0.dtype), e, steps, done, hist)

    def scan_body(carry, _):
        x, e, g, t, done = carry
        x_new, e_new, g_new = evaluate_next(x, g)
        keep = done  # once settled, states freeze (masked, so gradients flow through the taken steps only)
        x_out = jnp.where(keep, x, x_new)
        e_out = jnp.where(keep, e, e_new)
        g_out = None if g is None else jnp.where(keep, g, g_new)
        settled = done | is_settled(e, e_new)
        return (x_out, e_out, g_out, t + jnp.where(keep, 0, 1), settled), e_out

    init = (start, e0, g0, jnp.int32(0), jnp.bool_(False))
    (x, e, _, steps, done), hist = lax.scan(scan_body, init, None, length=max_steps)
    full = jnp.concatenate([e0[None], hist]) if trace else None
    return Retrieval(x.astype(x0.dtype), e, steps, done, full)


_retrieve_jit = jax.jit(_retrieve, static_argnums=(0, 1, 2, 3, 4, 5))
