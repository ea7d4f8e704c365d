"""What the U-Hop retrieval experiment and its report share: the methods compared, and one retrieval update per method.

A method is a similarity and a separation (Wu et al. (2024), Sec. 4.1); ``NAME+uhop`` scores the same similarity
between the features ``Phi(u) = W u`` of the fitted kernel (Wu et al. (2024), eq. 2.1). The update of every method
is ``x <- Xi^T Sep(beta sim(Phi(Xi), Phi(x)))`` (Wu et al. (2024), eq. 2.4): for the Tsallis separations (softmax,
sparsemax) it is :func:`dammem.energies.sparse_hopfield_update`; the polynomial separation
(:func:`dammem.separations.polynomial10`) is not a Tsallis one, so its update applies the same formula with
:func:`dammem.separations.get_separation`.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Krotov, Hopfield (2016). Dense Associative Memory for Pattern Recognition. NeurIPS.
  - Millidge, Salvatori, Song, Lukasiewicz, Bogacz (2022). Universal Hopfield Networks. ICML.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dammem.energies import sparse_hopfield_update
from dammem.separations import SEPARATIONS, get_separation
from dammem.similarities import Similarity, get_similarity

__all__ = ["BASE_METHODS", "METHODS", "method_update", "plain"]

# method -> (similarity, separation), names of dammem.similarities / dammem.separations
BASE_METHODS: dict[str, tuple[str, str]] = {
    "modern_hopfield": ("dot", "softmax"),
    "sparse_hopfield": ("dot", "sparsemax"),
    "polynomial10": ("dot", "polynomial10"),
    "l2_hopfield": ("neg_l2", "softmax"),
    "manhattan_hopfield": ("neg_l1", "softmax"),
    "cosine_hopfield": ("cosine", "softmax"),
}
METHODS: tuple[str, ...] = tuple(BASE_METHODS) + tuple(f"{m}+uhop" for m in BASE_METHODS)
_HIGHEST = lax.Precision.HIGHEST  # kernel features at full float32 precision (no TF32 on GPUs)


def plain(method: str) -> str:
    """The method without the kernel (``modern_hopfield+uhop`` -> ``modern_hopfield``)."""
    return method.removesuffix("+uhop")


def method_update(
    method: str, memories: jax.Array, weight: jax.Array | None, x: jax.Array, beta, features: jax.Array | None = None
) -> jax.Array:
    """One retrieval update of ``method`` from the query ``x`` (D,): ``Xi^T Sep(beta sim(Phi(Xi), Phi(x)))``.

    ``Phi(u) = W u`` for the ``+uhop`` methods (``weight`` (F, D)), the identity otherwise. ``features`` may hold
    ``Phi(Xi)`` (K, F) computed once for many queries. With ``dot`` it equals
    :func:`dammem.energies.sparse_hopfield_update` with ``similarity=kernelize("dot", W)`` (tested).
    """
    base, separation = BASE_METHODS[plain(method)]
    score = get_similarity(base)
    if method.endswith("+uhop"):
        feats = jnp.matmul(memories, weight.T, precision=_HIGHEST) if features is None else features
        # scores against the precomputed features; the update still combines the memories themselves
        similarity = Similarity(
            f"kernelize({base})", lambda _, v: score(feats, jnp.matmul(weight, v, precision=_HIGHEST))
        )
    else:
        similarity = score
    alpha = SEPARATIONS[separation].alpha
    if alpha is not None:
        return sparse_hopfield_update(x, memories, beta, alpha, similarity=similarity)
    return get_separation(separation)(beta * similarity(memories, x)) @ memories
