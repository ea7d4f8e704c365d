"""DrDAM encoding of patterns split over a mesh axis into one memory: ``T = sum_d T_d``.

Shape legend: ``K`` patterns, ``D`` pattern dimension, ``F`` feature width of a DrDAM memory.

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jaxtyping import Bool, Float

from dammem._types import ArrayLike
from dammem._validate import check_beta, check_bool_vector, check_floating, check_int, is_concrete
from dammem.drdam.features import Features, check_chunk_size, check_features
from dammem.drdam.memory import Memory, encode_kernel
from dammem.sharding._mesh import check_axis, check_divides, check_mesh, onto, place

__all__ = ["sharded_encode"]


@partial(jax.jit, static_argnames=("mesh", "axis", "rows", "batch_size"))
def _encode_kernel(features, memories, beta, mask, *, mesh, axis, rows, batch_size):
    def local(features, memories, beta, mask):
        t = encode_kernel(features, memories, beta, rows, batch_size, mask)
        if not features.positive:
            return lax.psum(t, axis)  # T = sum_d T_d (Hoover et al. (2024), eq. 9)
        m = lax.pmax(t, axis)  # log T = log sum_d exp(log T_d), max-shifted
        shift = jnp.where(jnp.isfinite(m), m, 0.0)
        total = lax.psum(jnp.exp(t - shift), axis)
        return jnp.where(total > 0, shift + jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf)

    memories = place(memories, mesh, P(axis, None))
    mask_spec = None if mask is None else P(axis)
    if mask is not None:
        mask = place(mask, mesh, mask_spec)
    # check_vma=False: the single-device encoder's loops start from constants (they are not marked per device)
    fn = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(axis, None), P(), mask_spec), out_specs=P(), check_vma=False
    )
    return fn(features, memories, beta, mask)


def sharded_encode(
    features: Features,
    memories: Float[ArrayLike, "K D"],
    beta: ArrayLike,
    *,
    mesh: Mesh,
    axis: str,
    mask: Bool[ArrayLike, " K"] | None = None,
    chunk_size: int | None = None,
    batch_size: int | None = None,
) -> Memory:
    """DrDAM :func:`~dammem.drdam.encode` of patterns split along ``K`` over ``axis``: ``T = sum_d T_d``.

    Each device encodes its own patterns, ``T_d = sum_{mu on d} phi(sqrt(beta) xi_mu)`` (Hoover et al. (2024),
    eq. 9), and the ``(F,)`` vectors are summed across devices (a log-sum-exp of ``log T_d`` for the exponential
    kinds, which hold ``log T``). The patterns never leave their device; the result is replicated. A ``K`` that the
    axis does not divide is padded with rows that ``mask`` leaves out: they contribute nothing, whatever they hold
    (NaN in a stored pattern gives NaN, as in :func:`~dammem.drdam.encode`).

    Args:
      features: from :func:`dammem.drdam.make_features` (replicated).
      memories: (K, D) patterns; ``K`` a multiple of the size of ``axis``.
      beta: inverse temperature > 0 (traced).
      mesh: the device mesh.
      axis: the mesh axis that splits the patterns.
      mask: optional (K,) booleans, True = store that pattern (split like the patterns).
      chunk_size, batch_size: as :func:`dammem.drdam.encode` (per device).

    Returns:
      :class:`dammem.drdam.Memory` equal to ``encode(features, memories[mask], beta)`` up to float rounding;
      ``count`` is the number of stored patterns.

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
    context = "sharded_encode"
    mesh = check_mesh(mesh, context)
    n = check_axis(mesh, axis, "axis", context)
    features = check_features(features, context)
    memories = check_floating(memories, "memories", context)
    if memories.ndim != 2 or memories.shape[1] != features.dim:
        raise ValueError(
            f"{context}: memories must have shape (K, D) with D = {features.dim} (the features' dim), got shape "
            f"{tuple(memories.shape)}"
        )
    if memories.shape[0] == 0:
        raise ValueError(f"{context}: memories hold no pattern (K = 0); use dammem.drdam.encode for an empty memory")
    check_divides(
        memories.shape[0], n, "the number of patterns K", axis, context,
        advice="pad the patterns with rows that mask=False leaves out, or use another mesh",
    )  # fmt: skip
    mask = check_bool_vector(mask, memories.shape[0], context, meaning="True = store the pattern")
    beta = jnp.asarray(check_beta(beta, context))
    rows = check_chunk_size(features, chunk_size, context)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", context, minimum=1)
    features, memories, beta = onto(mesh, features, P()), onto(mesh, memories, P(axis, None)), onto(mesh, beta, P())
    mask = onto(mesh, mask, P(axis))
    t = _encode_kernel(features, memories, beta, mask, mesh=mesh, axis=axis, rows=rows, batch_size=batch_size)
    if mask is None:
        count = jnp.asarray(memories.shape[0], jnp.int32)
    elif is_concrete(mask):
        count = jnp.asarray(int(np.asarray(mask).sum()), jnp.int32)
    else:
        count = jnp.sum(mask, dtype=jnp.int32)
    return Memory(t, count)
