"""Retrieval: energy descent and fixed-point (CCCP) dynamics, with clamping, tolerance stops and energy traces.

Shape legend: ``D`` pattern dimension, ``T`` steps. One unbatched query per call; batch with ``jax.vmap``.

Two update rules (seed 001 eq. 5; seed 002 eq. 2.4):

- energy descent ``x <- x - eta grad E(x)`` with ``jax.grad`` of any energy ``E(x, *args)``;
- a fixed-point map ``x <- T(x, *args)``, e.g. ``Xi Sep(beta sim(Xi, x))`` (the CCCP step of the generalized sparse
  Hopfield energy, which never increases it).

Coordinates where ``clamp`` is True are visible: they keep their initial value (their gradient is zeroed,
seed 001 Sec. 4). With ``loop="while"`` the dynamics stop at ``|E(x_t) - E(x_{t-1})| < tol`` or after ``max_steps``
(seed 001's convergence rule); ``loop="scan"`` always runs ``max_steps`` steps (states freeze once ``tol`` is met)
and is differentiable end to end. ``args`` (memories, beta, alpha, ...) and ``step_size`` are traced, so changing
them never re-traces; ``max_steps``, ``loop`` and ``trace`` are static.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, check_int, check_positive

__all__ = ["retrieve", "Retrieval"]


class Retrieval(NamedTuple):
    """Result of :func:`retrieve`.

    Attributes:
      x: (D,) final state.
      energy: scalar energy of ``x``.
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

    Args:
      energy: ``energy(x, *args) -> scalar`` for one query ``x`` of shape (D,).
      x0: (D,) initial state (e.g. a corrupted pattern).
      args: extra arguments of ``energy`` / ``update`` (memories, beta, alpha, ...); traced.
      update: optional fixed-point map ``update(x, *args) -> (D,)``; when None, energy descent is used.
      step_size: ``eta`` of energy descent (> 0; required for descent, refused with ``update``).
      clamp: optional (D,) boolean mask, True = visible coordinate held at its ``x0`` value.
      max_steps: maximum (``loop="while"``) or exact (``loop="scan"``) number of updates, >= 0.
      tol: stop once ``|E(x_t) - E(x_{t-1})| < tol``; None runs all ``max_steps``.
      loop: ``"while"`` (stops early; not reverse-differentiable) or ``"scan"`` (fixed length; differentiable).
      trace: also return the energy of every step.

    Returns:
      :class:`Retrieval`.

    Example:
      >>> from dammem.energies import rbf_energy
      >>> out = retrieve(rbf_energy, x0, (memories, 10.0), step_size=0.1, max_steps=200, tol=1e-6)
      >>> batch = jax.vmap(lambda x: retrieve(rbf_energy, x, (memories, 10.0), step_size=0.1))(queries)
    """
    if not callable(energy):
        raise TypeError(f"retrieve: energy must be a callable energy(x, *args), got {type(energy).__name__}")
    if update is not None and not callable(update):
        raise TypeError(f"retrieve: update must be a callable update(x, *args) or None, got {type(update).__name__}")
    if not isinstance(args, tuple):
        raise TypeError(f"retrieve: args must be a tuple of extra arguments, got {type(args).__name__}")
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
    if clamp is not None:
        clamp = jnp.asarray(clamp)
        if clamp.dtype != jnp.bool_ or clamp.shape != x0.shape:
            raise ValueError(
                f"retrieve: clamp must be a boolean mask of shape {tuple(x0.shape)} (True = visible), "
                f"got dtype {clamp.dtype} and shape {tuple(clamp.shape)}"
            )

    free = None if clamp is None else (~clamp).astype(x0.dtype)
    value_and_grad = jax.value_and_grad(lambda x: energy(x, *args))

    def energy_of(x):
        value = energy(x, *args)
        if jnp.ndim(value) != 0:
            raise ValueError(f"retrieve: energy must return a scalar, got shape {jnp.shape(value)}")
        return value

    # The carry holds (x, E(x), grad E(x) or None): descent needs one value_and_grad per step.
    def evaluate(x):
        if update is None:
            value, grad = value_and_grad(x)
            return value, grad if free is None else grad * free
        return energy_of(x), None

    def advance(x, grad):
        if update is None:
            return x - step_size * grad
        x_new = update(x, *args)
        return x_new if clamp is None else jnp.where(clamp, x0, x_new)

    def is_settled(e_old, e_new):
        if tol is None:
            return jnp.bool_(False)
        return jnp.abs(e_new - e_old) < tol

    e0, g0 = evaluate(x0)
    energies = jnp.full((max_steps + 1,), e0) if trace else None

    if loop == "while":

        def cond(carry):
            _, _, _, t, done, _ = carry
            return (t < max_steps) & ~done

        def body(carry):
            x, e, g, t, _, hist = carry
            x_new = advance(x, g)
            e_new, g_new = evaluate(x_new)
            if hist is not None:
                hist = hist.at[t + 1].set(e_new)
            return x_new, e_new, g_new, t + 1, is_settled(e, e_new), hist

        init = (x0, e0, g0, jnp.int32(0), jnp.bool_(False), energies)
        x, e, _, steps, done, hist = lax.while_loop(cond, body, init)
        if hist is not None:  # entries after the stop repeat the final energy
            hist = jnp.where(jnp.arange(max_steps + 1) <= steps, hist, e)
        return Retrieval(x, e, steps, done, hist)

    def scan_body(carry, _):
        x, e, g, t, done = carry
        x_new = advance(x, g)
        e_new, g_new = evaluate(x_new)
        keep = done  # once settled, states freeze (masked, so gradients flow through the taken steps only)
        x_out = jnp.where(keep, x, x_new)
        e_out = jnp.where(keep, e, e_new)
        g_out = None if g is None else jnp.where(keep, g, g_new)
        settled = done | is_settled(e, e_new)
        return (x_out, e_out, g_out, t + jnp.where(keep, 0, 1), settled), e_out

    init = (x0, e0, g0, jnp.int32(0), jnp.bool_(False))
    (x, e, _, steps, done), hist = lax.scan(scan_body, init, None, length=max_steps)
    full = jnp.concatenate([e0[None], hist]) if trace else None
    return Retrieval(x, e, steps, done, full)
