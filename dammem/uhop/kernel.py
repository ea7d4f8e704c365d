"""The linear kernel map ``Phi(u) = W u`` of U-Hop: initialisations, row normalisation and features.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width (``F >= D``).

U-Hop's kernel is ``K(u, v) = <W u, W v>`` with ``W`` of shape (F, D) and full column rank (Wu et al. (2024),
eq. 2.1 and Assumption 2.1), so that ``W^T W`` is invertible and the kernelized update keeps the energy's stationary
points (their Lemma 2.1). As a similarity it is ``dammem.similarities.kernelize("dot", W)``, a pytree whose weight
is traced. Initialisations (:func:`init_kernel`):

- ``"gaussian"``: i.i.d. standard normal entries, unscaled (as ``torch.randn(F, D)`` in the public code of Wu et al.
  (2024)). Rows have norm about ``sqrt(D)``; the separation loss only sees row-normalised *features*, so the scale of
  ``W`` changes the step size of gradient descent, not the loss.
- ``"identity"``: ``[I_D; 0]``, the identity on the first ``D`` features and zero rows after them. The separation
  loss has zero gradient on those rows (every feature vector is zero there), so they stay zero.
- ``"orthogonal"``: orthonormal columns (``W^T W = I_D``), Haar-distributed: the Q factor of a Gaussian matrix with
  the signs of R's diagonal moved into Q.

After Stage I the rows of ``W`` are normalised to unit length (Wu et al. (2024), Alg. 1, line 4):
:func:`normalize_rows`.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, PRNGKey
from dammem._validate import check_floating
from dammem.uhop._checks import INITS, check_init, check_kernel_weight, check_memories, check_shape
from dammem.uhop._core import features, unit_rows

__all__ = ["INITS", "init_kernel", "normalize_rows", "unit_features"]


def init_kernel(
    key: PRNGKey | None, shape: tuple[int, int], init: str = "gaussian", dtype=jnp.float32
) -> Float[Array, "F D"]:
    """A kernel weight ``W`` of shape (F, D), F >= D (see the module docstring for the three kinds).

    Args:
      key: a ``jax.random`` key (for ``"gaussian"`` and ``"orthogonal"``; None is allowed for ``"identity"``, which
        is deterministic).
      shape: ``(F, D)`` with ``F >= D >= 1``.
      init: one of :data:`INITS`.
      dtype: a floating dtype.

    Returns:
      ``W`` (F, D).

    Example:
      >>> from dammem.uhop import init_kernel
      >>> init_kernel(None, (3, 2), "identity").tolist()
      [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    """
    context = "init_kernel"
    num_features, dim = check_shape(shape, context)
    init = check_init(init, context)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{context}: dtype must be a floating dtype, got {dtype}")
    if init == "identity":
        return jnp.eye(num_features, dim, dtype=dtype)
    if key is None:
        raise ValueError(f"{context}: init={init!r} is random and needs key=jax.random.key(...), got key=None")
    if init == "gaussian":
        return jax.random.normal(key, (num_features, dim), dtype)
    gauss = jax.random.normal(key, (num_features, dim), jnp.promote_types(dtype, jnp.float32))
    q, r = jnp.linalg.qr(gauss)  # q (F, D) with orthonormal columns
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(q.dtype)  # makes the distribution Haar
    return (q * signs).astype(dtype)


def normalize_rows(weight: Float[Array, "F D"]) -> Float[Array, "F D"]:
    """Each row of ``W`` scaled to unit Euclidean norm (Wu et al. (2024), Alg. 1, line 4); zero rows stay zero.

    Args:
      weight: (F, D).

    Returns:
      (F, D) with unit-norm (or zero) rows.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.uhop import normalize_rows
      >>> print(normalize_rows(jnp.array([[3.0, 4.0], [0.0, 0.0]])))
      [[0.6 0.8]
       [0.  0. ]]
    """
    weight = check_floating(weight, "weight", "normalize_rows")
    if weight.ndim != 2:
        raise ValueError(f"normalize_rows: weight must have shape (F, D), got {tuple(weight.shape)}")
    return unit_rows(weight)


def unit_features(weight: Float[Array, "F D"], memories: Float[Array, "K D"]) -> Float[Array, "K F"]:
    """Row-normalised features ``Phi(xi) / ||Phi(xi)||`` of every memory (a zero feature vector stays zero).

    These are the vectors the separation losses compare (the public code of Wu et al. (2024) normalises them
    before its pairwise distances). Computed at full float32 precision (``Precision.HIGHEST``).

    Args:
      weight: (F, D) kernel weight, F >= D.
      memories: (K, D) patterns.

    Returns:
      (K, F) unit (or zero) rows.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.uhop import unit_features
      >>> print(unit_features(jnp.eye(2), jnp.array([[3.0, 4.0], [0.0, 2.0]])))
      [[0.6 0.8]
       [0.  1. ]]
    """
    context = "unit_features"
    memories = check_memories(memories, context, min_memories=0)
    weight = check_kernel_weight(weight, memories.shape[1], "weight", context)
    return features(weight, memories)
