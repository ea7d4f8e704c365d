"""Separation losses of U-Hop's Stage I: how close the stored patterns lie in the kernel's feature space.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width.

All three compare the row-normalised features ``u_i = W xi_i / ||W xi_i||`` (as the public code of Wu et al. (2024)
does before its pairwise distances), over the ``K (K - 1)`` ordered pairs of *distinct* memories ``i != j`` (the
mean over ordered pairs equals the mean over unordered ones). With ``c_ij = <u_i, u_j>`` and temperature ``t > 0``:

- ``"average"`` (Wu et al. (2024), eq. 2.6): ``log mean_{i != j} exp(-t ||u_i - u_j||^2)``
  ``= log mean_{i != j} exp(2 t (c_ij - 1))``, the log of the average Gaussian (Phi-RBF, eq. 2.5) similarity.
- ``"max"`` (the worst pair, App. G.2): ``max_{i != j} -t ||u_i - u_j||^2 = 2 t (max_{i != j} c_ij - 1)``, the log of
  the largest pair similarity; its gradient flows through the closest pair only.
- ``"deep"`` (the deep-learning variant, eq. 3.2): ``log mean_{i != j} exp(2 t (c_ij^2 - 1))``; it pushes features
  towards orthogonality rather than opposition.

Every loss is at most 0 (0 when two memories share a feature direction). The pair matrix is reduced in blocks of
``chunk_size`` rows (a running log-sum-exp or max in a ``lax.scan``; see :mod:`dammem.uhop._core`), so
``K = 10^4`` memories of ``D = 784`` need tens of MB, and the result does not depend on ``chunk_size`` beyond
float32 rounding. A zero feature vector (a zero memory) stays zero: it lies at squared distance 1 from every unit
feature (``c = 0``), as with the normalisation of the public code.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import nan_unless_positive
from dammem.uhop import _core
from dammem.uhop._checks import (
    LOSSES,
    check_chunk_size,
    check_kernel_weight,
    check_loss,
    check_memories,
    check_temperature,
)

__all__ = ["LOSSES", "separation_loss", "DEFAULT_CHUNK_SIZE"]

DEFAULT_CHUNK_SIZE = 1024
"""Rows of the pair matrix reduced at once by default (a 1024 x K block of float32 scores)."""


def separation_loss(
    weight: Float[Array, "F D"],
    memories: Float[Array, "K D"],
    *,
    temperature: ArrayLike = 2.0,
    loss: str = "average",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Float[Array, ""]:
    """Separation loss of ``memories`` under the kernel map ``Phi(u) = W u`` (see the module docstring).

    Jitted; differentiable in ``weight`` (and ``memories``); ``temperature`` is traced; ``loss`` and ``chunk_size``
    are static. Gradients in ``W`` go through the row normalisation of the features.

    Args:
      weight: (F, D) kernel weight with F >= D.
      memories: (K, D) stored patterns, K >= 2.
      temperature: ``t > 0`` (Wu et al. (2024) use t = 2); a traced ``t <= 0`` gives NaN.
      loss: ``"average"`` (eq. 2.6), ``"max"`` (worst pair, App. G.2) or ``"deep"`` (eq. 3.2).
      chunk_size: rows of the pair matrix reduced at once (>= 1).

    Returns:
      Scalar loss (<= 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.uhop import separation_loss
      >>> float(separation_loss(jnp.eye(2), jnp.eye(2)))  # orthogonal memories: -t ||u - v||^2 = -2 t
      -4.0
    """
    context = "separation_loss"
    memories = check_memories(memories, context)
    weight = check_kernel_weight(weight, memories.shape[1], "weight", context)
    temperature = check_temperature(temperature, context)
    loss = check_loss(loss, context)
    chunk_size = check_chunk_size(chunk_size, context)
    dtype = jnp.promote_types(jnp.promote_types(weight.dtype, memories.dtype), jnp.float32)
    value = _loss(weight.astype(dtype), memories.astype(dtype), temperature, loss=loss, chunk_size=chunk_size)
    return nan_unless_positive(temperature, value)


_loss = jax.jit(_core.separation_loss, static_argnames=("loss", "chunk_size"))
