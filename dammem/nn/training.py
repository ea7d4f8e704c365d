"""Training with a learned U-Hop kernel: separation-loss steps on the kernel interleaved with task steps on the rest.

Shape legend: ``N_i`` separation steps per task step; ``B`` examples per mini-batch.

Wu et al. (2024), Alg. 2 ("U-Hop for learning"): the parameters ``theta`` of the kernel map ``Phi`` (Stage I) and
the parameters ``theta_F`` of the rest of the model are trained by two optimisers. Each outer iteration runs

- ``N_i`` steps ``theta <- theta - gamma grad_theta L_Phi(X)`` on the separation loss of a fresh mini-batch
  (lines 2-5; the deep-learning loss is their eq. 3.2), then
- one step ``theta_F <- theta_F - gamma' grad_theta_F L(X, Y)`` on the task loss of a mini-batch (lines 6-7).

The split is by variable type: kernel weights are :class:`KernelParam` (a subclass of ``nnx.Param``, so a plain
``nnx.Optimizer(model, tx, wrt=nnx.Param)`` still sees them), everything else that is an ``nnx.Param`` is
:data:`MODEL_PARAMS`. Build the two optimisers with those filters::

    kernel_optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=KernelParam)
    model_optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=MODEL_PARAMS)

:func:`separation_step` differentiates only with respect to :class:`KernelParam` and :func:`supervised_step` only
with respect to :data:`MODEL_PARAMS`, so a task step never moves the kernel and a separation step never moves
anything else (whatever the losses depend on). Both check, when they are traced, that the optimiser they are given
tracks exactly those parameters. :func:`alternating_step` is one outer iteration of Alg. 2 in one compiled
program (the ``N_i`` separation steps run in a ``fori_loop``).

All three functions are ``nnx.jit``-compiled; the loss functions are static arguments, so define them once (a new
lambda per call recompiles).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["KernelParam", "MODEL_PARAMS", "separation_step", "supervised_step", "alternating_step"]


class KernelParam(nnx.Param):
    """A kernel weight trained by a separation loss (Wu et al. (2024), Alg. 2, line 4), not by the task loss.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from dammem.nn.training import KernelParam
      >>> w = KernelParam(jnp.eye(2))
      >>> isinstance(w, nnx.Param)
      True
    """


MODEL_PARAMS = nnx.All(nnx.Param, nnx.Not(KernelParam))
"""Filter of the parameters the task loss trains: every ``nnx.Param`` that is not a :class:`KernelParam`."""

SeparationLossFn = Callable[[nnx.Module, Any], jax.Array]
LossFn = Callable[[nnx.Module, Any], "jax.Array | tuple[jax.Array, Any]"]


def _paths(model: nnx.Module, wrt) -> set:
    return {path for path, _ in nnx.to_flat_state(nnx.state(model, wrt))}


def _check_optimizer(model, optimizer, wrt, expected: str, name: str, context: str) -> None:
    """At trace time: ``optimizer`` tracks exactly the parameters selected by ``wrt``."""
    want = _paths(model, wrt)
    if not want:
        kind = "KernelParam" if wrt is KernelParam else "nnx.Param (other than KernelParam)"
        raise ValueError(f"{context}: the model has no {kind} variables for {name} to train")
    got = _paths(model, optimizer.wrt)
    if got != want:
        extra = sorted(".".join(map(str, p)) for p in got - want)[:3]
        missing = sorted(".".join(map(str, p)) for p in want - got)[:3]
        raise ValueError(
            f"{context}: {name} must be built with wrt={expected}; it tracks {len(got)} variables where "
            f"{len(want)} are expected (extra: {extra}, missing: {missing})"
        )


def _check_types(model, optimizers: dict, fn, fn_name: str, context: str) -> None:
    """At the Python boundary: a module, ``nnx.Optimizer`` instances and a callable loss."""
    if not isinstance(model, nnx.Module):
        raise TypeError(f"{context}: model must be an nnx.Module, got {type(model).__name__}")
    for name, optimizer in optimizers.items():
        if not isinstance(optimizer, nnx.Optimizer):
            raise TypeError(f"{context}: {name} must be an nnx.Optimizer, got {type(optimizer).__name__}")
    if not callable(fn):
        raise TypeError(f"{context}: {fn_name} must be a callable (model, batch) -> loss, got {type(fn).__name__}")


def _check_scalar(value, name: str, context: str) -> jax.Array:
    value = jnp.asarray(value)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(f"{context}: {name} must return a floating scalar, got {value.dtype} {value.shape}")
    return value


def _separation_update(model, optimizer, batch, separation_loss_fn, context: str) -> jax.Array:
    def loss(m, b):
        return _check_scalar(separation_loss_fn(m, b), "separation_loss_fn", context)

    value, grads = nnx.value_and_grad(loss, argnums=nnx.DiffState(0, KernelParam))(model, batch)
    optimizer.update(model, grads)
    return value


def _supervised_update(model, optimizer, batch, loss_fn, context: str):
    def loss(m, b):
        out = loss_fn(m, b)
        if isinstance(out, tuple) and len(out) != 2:
            raise ValueError(f"{context}: loss_fn must return a scalar or (scalar, aux), got a {len(out)}-tuple")
        value, aux = out if isinstance(out, tuple) else (out, None)
        return _check_scalar(value, "loss_fn", context), aux

    (value, aux), grads = nnx.value_and_grad(loss, argnums=nnx.DiffState(0, MODEL_PARAMS), has_aux=True)(
        model, batch
    )
    optimizer.update(model, grads)
    return value, aux


def separation_step(
    model: nnx.Module, optimizer: nnx.Optimizer, batch: Any, *, separation_loss_fn: SeparationLossFn
) -> jax.Array:
    """One separation-loss step on the kernel parameters (Wu et al. (2024), Alg. 2, line 4).

    ``theta <- optimizer(grad_theta separation_loss_fn(model, batch))`` over the :class:`KernelParam` variables
    only; ``model`` and ``optimizer`` are updated in place.

    Args:
      model: an ``nnx.Module`` with at least one :class:`KernelParam`.
      optimizer: ``nnx.Optimizer(model, tx, wrt=KernelParam)``.
      batch: any pytree of arrays passed to ``separation_loss_fn``.
      separation_loss_fn: ``(model, batch) -> scalar`` (static: define it once), e.g. a model's
        :meth:`dammem.nn.UHopHopfield.separation_loss` on its stored patterns.

    Returns:
      The separation loss before the step.

    Raises:
      TypeError / ValueError: ``optimizer`` is not an ``nnx.Optimizer`` tracking exactly the kernel parameters,
        the model has none, or the loss is not a floating scalar.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> from dammem import uhop
      >>> from dammem.nn.training import KernelParam, separation_step
      >>> class Kernel(nnx.Module):
      ...     def __init__(self):
      ...         self.w = KernelParam(jnp.eye(3))
      >>> def sep(model, x):
      ...     return uhop.separation_loss(model.w[...], x, loss="deep")
      >>> model = Kernel()
      >>> opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=KernelParam)
      >>> x = jax.random.normal(jax.random.key(0), (5, 3))
      >>> before = separation_step(model, opt, x, separation_loss_fn=sep)
      >>> bool(sep(model, x) < before)
      True
    """
    _check_types(model, {"optimizer": optimizer}, separation_loss_fn, "separation_loss_fn", "separation_step")
    return _one_step(model, optimizer, batch, separation_loss_fn, "separation_step")


@nnx.jit(static_argnums=(3, 4))
def _one_step(model, optimizer, batch, fn, context: str):
    """One compiled step of :func:`separation_step` or :func:`supervised_step` (``where``), on the variables that its
    optimizer must track."""
    wrt, expected, update = _STEPS[context]
    _check_optimizer(model, optimizer, wrt, expected, "optimizer", context)
    return update(model, optimizer, batch, fn, context)


def supervised_step(model: nnx.Module, optimizer: nnx.Optimizer, batch: Any, *, loss_fn: LossFn):
    """One task-loss step on every parameter except the kernels (Wu et al. (2024), Alg. 2, line 7).

    ``theta_F <- optimizer(grad_theta_F loss_fn(model, batch))`` over :data:`MODEL_PARAMS`; the
    :class:`KernelParam` variables are constants here. ``model`` and ``optimizer`` are updated in place.

    Args:
      model: an ``nnx.Module``.
      optimizer: ``nnx.Optimizer(model, tx, wrt=MODEL_PARAMS)``.
      batch: any pytree of arrays passed to ``loss_fn``.
      loss_fn: ``(model, batch) -> loss`` or ``-> (loss, aux)`` with a scalar loss (static: define it once).

    Returns:
      ``(loss, aux)``: the loss before the step and ``loss_fn``'s aux (None when it returns a bare scalar).

    Raises:
      TypeError / ValueError: ``optimizer`` does not track exactly :data:`MODEL_PARAMS`, or the loss is not a
        floating scalar.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> from dammem.nn.training import MODEL_PARAMS, supervised_step
      >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
      >>> opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=MODEL_PARAMS)
      >>> def mse(m, batch):
      ...     x, y = batch
      ...     return jnp.mean((m(x)[:, 0] - y) ** 2)
      >>> batch = (jnp.ones((4, 2)), jnp.zeros(4))
      >>> before, _ = supervised_step(model, opt, batch, loss_fn=mse)
      >>> bool(mse(model, batch) < before)
      True
    """
    _check_types(model, {"optimizer": optimizer}, loss_fn, "loss_fn", "supervised_step")
    return _one_step(model, optimizer, batch, loss_fn, "supervised_step")


_STEPS = {
    "separation_step": (KernelParam, "KernelParam", _separation_update),
    "supervised_step": (MODEL_PARAMS, "MODEL_PARAMS", _supervised_update),
}
"""Per one-step function: the variables its optimizer must track (filter and name) and its update."""


def alternating_step(
    model: nnx.Module,
    kernel_optimizer: nnx.Optimizer,
    model_optimizer: nnx.Optimizer,
    kernel_batches: Any,
    batch: Any,
    *,
    separation_loss_fn: SeparationLossFn,
    loss_fn: LossFn,
) -> dict:
    """One outer iteration of Wu et al. (2024), Alg. 2: ``N_i`` separation steps, then one task step.

    Equivalent to ``N_i`` calls of :func:`separation_step` on the mini-batches ``kernel_batches[j]`` followed by one
    call of :func:`supervised_step` on ``batch`` (tested by value), compiled as one program.

    Args:
      model: an ``nnx.Module`` with :class:`KernelParam` and other ``nnx.Param`` variables.
      kernel_optimizer: ``nnx.Optimizer(model, tx, wrt=KernelParam)`` (SGD with learning rate 0.1 in Wu et al.
        (2024), App. F).
      model_optimizer: ``nnx.Optimizer(model, tx, wrt=MODEL_PARAMS)`` (Adam with learning rate 1e-3 there).
      kernel_batches: a pytree of arrays with a common leading axis of length ``N_i >= 0``: mini-batch ``j`` is
        ``jax.tree.map(lambda a: a[j], kernel_batches)`` (Alg. 2, line 3 samples one per separation step; repeat
        one batch with ``jnp.broadcast_to`` to reuse it).
      batch: the task mini-batch (line 6).
      separation_loss_fn: ``(model, kernel_batch) -> scalar`` (static).
      loss_fn: ``(model, batch) -> loss`` or ``(loss, aux)`` (static).

    Returns:
      ``{"loss": task loss before its step, "aux": loss_fn's aux or None, "separation_loss": (N_i,) the separation
      loss before each separation step}``.

    Raises:
      TypeError / ValueError: an optimiser tracks other variables than its filter selects, the leaves of
        ``kernel_batches`` disagree on their leading length, or a loss is not a floating scalar.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> from dammem import uhop
      >>> from dammem.nn.training import KernelParam, MODEL_PARAMS, alternating_step
      >>> class Model(nnx.Module):
      ...     def __init__(self, rngs):
      ...         self.w = KernelParam(jnp.eye(3))
      ...         self.head = nnx.Linear(3, 1, rngs=rngs)
      ...     def __call__(self, x):
      ...         return self.head(x @ self.w[...].T)[..., 0]
      >>> def sep(model, x):
      ...     return uhop.separation_loss(model.w[...], x, loss="deep")
      >>> def mse(model, batch):
      ...     return jnp.mean((model(batch[0]) - batch[1]) ** 2)
      >>> model = Model(nnx.Rngs(0))
      >>> kopt = nnx.Optimizer(model, optax.sgd(0.1), wrt=KernelParam)
      >>> mopt = nnx.Optimizer(model, optax.adam(1e-2), wrt=MODEL_PARAMS)
      >>> x = jax.random.normal(jax.random.key(1), (2, 6, 3))  # N_i = 2 mini-batches of 6
      >>> out = alternating_step(model, kopt, mopt, x, (x[0], jnp.ones(6)), separation_loss_fn=sep, loss_fn=mse)
      >>> out["separation_loss"].shape, int(kopt.step[...]), int(mopt.step[...])
      ((2,), 2, 1)
    """
    context = "alternating_step"
    _check_types(model, {"kernel_optimizer": kernel_optimizer, "model_optimizer": model_optimizer},
                 separation_loss_fn, "separation_loss_fn", context)  # fmt: skip
    _check_types(model, {}, loss_fn, "loss_fn", context)
    leaves = jax.tree.leaves(kernel_batches)
    lengths = {leaf.shape[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if not leaves or len(lengths) != 1 or None in lengths:
        raise ValueError(
            f"{context}: kernel_batches must be a pytree of arrays with a common leading axis (N_i mini-batches), "
            f"got leading lengths {sorted(lengths, key=str)}"
        )
    return _alternating_step(model, kernel_optimizer, model_optimizer, kernel_batches, batch, separation_loss_fn,
                             loss_fn)  # fmt: skip


@nnx.jit(static_argnums=(5, 6))
def _alternating_step(model, kernel_optimizer, model_optimizer, kernel_batches, batch, separation_loss_fn, loss_fn):
    context = "alternating_step"
    _check_optimizer(model, kernel_optimizer, KernelParam, "KernelParam", "kernel_optimizer", context)
    _check_optimizer(model, model_optimizer, MODEL_PARAMS, "MODEL_PARAMS", "model_optimizer", context)
    inner = jax.tree.leaves(kernel_batches)[0].shape[0]

    def body(j, carry):
        model, kernel_optimizer, losses = carry
        kernel_batch = jax.tree.map(lambda a: a[j], kernel_batches)
        value = _separation_update(model, kernel_optimizer, kernel_batch, separation_loss_fn, context)
        return model, kernel_optimizer, losses.at[j].set(value)

    if inner:
        first = jax.tree.map(lambda a: a[0], kernel_batches)
        dtype = nnx.eval_shape(lambda m, b: jnp.asarray(separation_loss_fn(m, b)), model, first).dtype
        losses = jnp.zeros((inner,), dtype)
        model, kernel_optimizer, losses = nnx.fori_loop(0, inner, body, (model, kernel_optimizer, losses))
    else:
        losses = jnp.zeros((0,), jnp.float32)
    value, aux = _supervised_update(model, model_optimizer, batch, loss_fn, context)
    return {"loss": value, "aux": aux, "separation_loss": losses}
