"""Memory-parallel energies, updates and retrieval: the memories split along ``K`` over one mesh axis.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``B`` queries; ``K_loc = K / n`` per device.

Every device scores the queries against its own memories and only reductions cross devices (the distributed
separation of :mod:`dammem.sharding`), so a memory shard is never gathered onto one device. The modern Hopfield
energy and update (Ramsauer et al. (2021), eq. 3; Wu et al. (2024), eq. 1.1), the generalized sparse Hopfield
energy and update (Wu et al. (2024), eqs. 2.2-2.4) and the MrDAM RBF energy and update (Hoover et al. (2024), eqs. 11
and 18) run as one update, one energy or a whole retrieval loop inside one ``shard_map``.

References:
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jaxtyping import Bool, Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_bool_vector, check_int, check_positive, check_scalar, nan_unless_positive
from dammem.dynamics import Retrieval
from dammem.sharding._mesh import onto, place
from dammem.sharding._models import LocalModel, compute_dtype, prepare, specs

__all__ = ["sharded_update", "sharded_energy", "sharded_retrieve"]


@partial(jax.jit, static_argnames=("spec", "mesh", "axis", "batch_axis", "output"))
def _step_kernel(x, memories, mask, beta, alpha, *, spec, mesh, axis, batch_axis, output):
    n = int(mesh.shape[axis])
    dtype = compute_dtype(x, memories)
    xs, ms, ks = specs(axis, batch_axis, mask is not None)
    bs = P(batch_axis) if batch_axis else P()

    def local(x, memories, mask, beta, alpha):
        model = LocalModel(spec, axis, n, memories.astype(dtype), mask, beta, alpha)
        p, energy = model.weights_and_energy(x.astype(dtype))
        return model.read(p) if output == "update" else energy

    x, memories = place(x, mesh, xs), place(memories, mesh, ms)
    mask = None if mask is None else place(mask, mesh, ks)
    out_spec = xs if output == "update" else bs
    fn = jax.shard_map(
        local, mesh=mesh, in_specs=(xs, ms, ks, P(), P() if alpha is not None else None), out_specs=out_spec
    )
    return nan_unless_positive(beta, fn(x, memories, mask, beta, alpha))


def _step(output, x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, context):
    args = prepare(x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, context)
    out = _step_kernel(
        args.x, args.memories, args.mask, args.beta, args.alpha,
        spec=args.spec, mesh=args.mesh, axis=axis, batch_axis=batch_axis, output=output,
    )  # fmt: skip
    out = out[0] if args.single else out
    return out.astype(args.x.dtype) if output == "update" else out


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
    return _step("update", x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, "sharded_update")


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
    return _step("energy", x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, "sharded_energy")


@partial(jax.jit, static_argnames=("spec", "mesh", "axis", "batch_axis", "max_steps", "no_tol"))
def _retrieve_kernel(x0, memories, mask, beta, alpha, clamp, tol, *, spec, mesh, axis, batch_axis, max_steps, no_tol):
    n = int(mesh.shape[axis])
    dtype = compute_dtype(x0, memories)
    xs, ms, ks = specs(axis, batch_axis, mask is not None)
    bs = P(batch_axis) if batch_axis else P()

    def local(x0, memories, mask, beta, alpha, clamp, tol):
        model = LocalModel(spec, axis, n, memories.astype(dtype), mask, beta, alpha)
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

    x0, memories = place(x0, mesh, xs), place(memories, mesh, ms)
    mask = None if mask is None else place(mask, mesh, ks)
    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(xs, ms, ks, P(), None if alpha is None else P(), None if clamp is None else P(), P()),
        out_specs=(xs, bs, bs, bs),
    )
    x, e, steps, done = fn(x0, memories, mask, beta, alpha, clamp, jnp.asarray(0.0 if tol is None else tol, dtype))
    return nan_unless_positive(beta, x), nan_unless_positive(beta, e), steps, done


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
    context = "sharded_retrieve"
    args = prepare(x0, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, context, "x0")
    max_steps = check_int(max_steps, "max_steps", context, minimum=0)
    if tol is not None:
        tol = jnp.asarray(check_scalar(tol, "tol", context))
        check_positive(tol, "tol", context, allow_zero=True)
    clamp = check_bool_vector(clamp, args.memories.shape[1], context, name="clamp", label="D", meaning="True = visible")
    clamp, tol = onto(args.mesh, clamp, P()), onto(args.mesh, tol, P())
    x, e, steps, done = _retrieve_kernel(
        args.x, args.memories, args.mask, args.beta, args.alpha, clamp, tol,
        spec=args.spec, mesh=args.mesh, axis=axis, batch_axis=batch_axis, max_steps=max_steps, no_tol=tol is None,
    )  # fmt: skip
    x = x.astype(args.x.dtype)
    if args.single:
        return Retrieval(x[0], e[0], steps[0], done[0], None)
    return Retrieval(x, e, steps, done, None)
