"""Similarity functions between stored patterns and one query: by name, as :class:`Similarity`, or kernelized.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width of a kernel map (:mod:`dammem._types`).

A similarity scores one query against every stored pattern,
``sim(memories: Float[Array, "K D"], x: Float[Array, "D"]) -> Float[Array, "K"]``; larger means more alike, so
distances enter *negated* (the "L2-distance" and "Manhattan-distance" modern Hopfield baselines of Wu et al. (2024),
Sec. 4.1, put ``-||xi - x||`` scores inside the separation).

The retrieval update ``x <- Xi^T Sep_alpha(beta sim(Xi, x))`` (Wu et al. (2024), eq. 2.4) accepts any similarity.
It descends a Lyapunov energy only for some of them. A :class:`Similarity` records which: its ``energy_scale``
``c`` makes

    E(x) = 1/2 sim(x, x) - c Psi*_alpha(beta, sim(Xi, x)),      Psi*_alpha(beta, z) = Psi*_alpha(beta z) / beta,

an energy whose concave-convex (CCCP) step is that update, so the update never increases it:

- ``dot``: ``c = 1``; ``E = 1/2 <x, x> - Psi*(beta, Xi x)`` is Wu et al. (2024), eq. 2.2 with the inner product.
- ``neg_sq_l2``: ``c = 1/2``, and ``sim(x, x) = 0``; ``E = -Psi*(-beta ||Xi - x||^2) / (2 beta)``. Since
  ``Psi*(z + t 1) = Psi*(z) + t`` on the simplex, this is the dot energy at ``2 beta`` with the bias
  ``-||xi||^2 / 2`` on each score; at alpha = 1 it is the RBF energy of Hoover et al. (2024), eq. 11 at ``2 beta``.
- ``neg_l2``, ``neg_l1`` and ``cosine``: ``None``. No energy has their update as its descent step; the update is still a
  valid one-step retrieval map (a baseline of Wu et al. (2024), Sec. 4.1), but energies refuse them.

:func:`kernelize` maps both arguments through ``Phi(u) = W u`` first (Wu et al. (2024), eq. 2.1). The energy of a
kernelized similarity is the base energy in feature space, e.g. ``E_K = 1/2 ||W x||^2 - Psi*(beta, K(Xi, x))``
(Wu et al. (2024), eq. 2.2), and the same update stays its CCCP step for any ``W``: ``W^T W x' = W^T W Xi^T p`` is
solved by ``x' = Xi^T p``. When ``W^T W`` is invertible (``F >= D``, full column rank) the update's fixed points are
exactly the energy's stationary points (Wu et al. (2024), Lemma 2.1). One caveat: resetting clamped (visible)
coordinates after the update is the CCCP step of the restricted energy only when the convex part is
``1/2 ||x||^2`` (``dot``, ``neg_sq_l2``); with ``kernelize`` the clamped update can raise ``E_K``, so complete
partially visible queries with energy descent (``dammem.retrieve(..., step_size=...)``) instead.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Millidge, Salvatori, Song, Lukasiewicz, Bogacz (2022). Universal Hopfield Networks. ICML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal, Union

import jax
import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array, ArrayLike
from dammem._validate import check_floating, check_memories_query

__all__ = [
    "dot",
    "neg_sq_l2",
    "neg_l2",
    "neg_l1",
    "cosine",
    "Similarity",
    "Kernelized",
    "kernelize",
    "get_similarity",
    "SIMILARITIES",
    "SimilarityName",
    "SimilarityLike",
]

ScoreFn = Callable[[Array, Array], Array]
"""A plain score function ``scores(memories, x) -> (K,)``."""


def dot(memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
    """Inner product ``<xi_mu, x>``, the modern Hopfield score (Wu et al. (2024), eq. 1.1).

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import dot
      >>> dot(jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([1.0, 2.0])).tolist()
      [1.0, 3.0]
    """
    memories, x = check_memories_query(memories, x, "dot")
    return memories @ x


def neg_sq_l2(memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
    """Negative squared Euclidean distance ``-||xi_mu - x||^2`` (computed from differences, not by expansion).

    With ``beta / 2`` in front this is the RBF score of Hoover et al. (2024), eq. 11.

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores (<= 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import neg_sq_l2
      >>> neg_sq_l2(jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([1.0, 2.0])).tolist()
      [-4.0, -1.0]
    """
    memories, x = check_memories_query(memories, x, "neg_sq_l2")
    return -jnp.sum(jnp.square(memories - x), axis=-1)


def neg_l2(memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
    """Negative Euclidean distance ``-||xi_mu - x||``, the "L2-distance" baseline (Wu et al. (2024), Sec. 4.1).

    Unlike :func:`neg_sq_l2` the distance is not squared (Millidge et al. (2022) score memories by it). At a zero
    distance the gradient is 0 (a subgradient; the distance has no derivative there), not NaN.

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores (<= 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import neg_l2
      >>> neg_l2(jnp.array([[1.0, 0.0], [4.0, 6.0]]), jnp.array([1.0, 2.0])).tolist()
      [-2.0, -5.0]
    """
    memories, x = check_memories_query(memories, x, "neg_l2")
    distance, nonzero = _norm_and_nonzero(memories - x)
    return -jnp.where(nonzero, distance, 0.0)


def neg_l1(memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
    """Negative Manhattan distance ``-||xi_mu - x||_1`` (Wu et al. (2024), Sec. 4.1 baseline).

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores (<= 0).

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import neg_l1
      >>> neg_l1(jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.array([1.0, 2.0])).tolist()
      [-2.0, -3.0]
    """
    memories, x = check_memories_query(memories, x, "neg_l1")
    return -jnp.sum(jnp.abs(memories - x), axis=-1)


def _norm_and_nonzero(v: Array) -> tuple[Array, Array]:
    """Euclidean norm along the last axis whose gradient is finite at 0 (0 there: the double-``where`` trick)."""
    sq = jnp.sum(jnp.square(v), axis=-1)
    nonzero = sq != 0  # NaN stays on the computed side, so NaN in gives NaN out
    return jnp.sqrt(jnp.where(nonzero, sq, 1.0)), nonzero


def cosine(memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
    """Cosine similarity ``<xi, x> / (||xi|| ||x||)``; a zero vector has similarity 0 with everything.

    At a zero vector the score is the constant 0, so its gradient there is 0 (finite), not NaN.

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores in [-1, 1].

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import cosine
      >>> cosine(jnp.array([[2.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]), jnp.array([3.0, 0.0])).tolist()
      [1.0, 0.0, -1.0]
    """
    memories, x = check_memories_query(memories, x, "cosine")
    norm_m, ok_m = _norm_and_nonzero(memories)
    norm_x, ok_x = _norm_and_nonzero(x)
    ok = ok_m & ok_x
    dots = memories @ x
    # 0 * dots: 0 at a zero vector, NaN when the other side holds a NaN or inf (NaN in, NaN out)
    return jnp.where(ok, dots / jnp.where(ok, norm_m * norm_x, 1.0), 0.0 * dots)


@dataclasses.dataclass(frozen=True)
class Similarity:
    """A similarity and the energy it belongs to (see the module docstring).

    Attributes:
      name: shown in errors and reprs.
      scores: ``scores(memories, x) -> (K,)``.
      energy_scale: ``c`` such that ``1/2 sim(x, x) - c Psi*_alpha(beta, sim(Xi, x))`` has the update
        ``x <- Xi^T Sep_alpha(beta sim(Xi, x))`` as its CCCP step; None when no such energy exists (energies refuse
        the similarity, the update still accepts it). Declaring a value is a promise about ``scores``: e.g. a dot
        product in a fixed linear feature space has ``c = 1``.

    Instances are hashable and compare by their fields, so they can be static arguments of ``jax.jit``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.energies import sparse_hopfield_energy
      >>> from dammem.similarities import Similarity
      >>> shifted = Similarity("shifted_dot", lambda m, x: m @ x + 1.0, energy_scale=1.0)
      >>> shifted(jnp.eye(2), jnp.array([1.0, 2.0])).tolist()
      [2.0, 3.0]
      >>> float(sparse_hopfield_energy(jnp.zeros(2), jnp.eye(2), 1.0, 2.0, similarity=shifted))
      -0.75
    """

    name: str
    scores: ScoreFn
    energy_scale: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Similarity: name must be a str, got {self.name!r}")
        if not callable(self.scores):
            raise TypeError(f"Similarity: scores must be a callable scores(memories, x), got {self.scores!r}")
        scale = self.energy_scale
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
            raise ValueError(f"Similarity: energy_scale must be a float > 0 or None, got {scale!r}")

    def __call__(self, memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
        return self.scores(memories, x)


SIMILARITIES: dict[SimilarityName, Similarity] = {
    "dot": Similarity("dot", dot, energy_scale=1.0),
    "neg_sq_l2": Similarity("neg_sq_l2", neg_sq_l2, energy_scale=0.5),
    "neg_l2": Similarity("neg_l2", neg_l2),
    "neg_l1": Similarity("neg_l1", neg_l1),
    "cosine": Similarity("cosine", cosine),
}


@jax.tree_util.register_pytree_node_class
class Kernelized:
    """``sim_K(Xi, x) = base(Xi W^T, W x)``, a similarity in the feature space ``Phi(u) = W u``; from :func:`kernelize`.

    A pytree: ``weight`` is its one leaf (traced under ``jit``/``grad``/``vmap``, so ``W`` can be swept or learned
    without re-tracing) and ``base`` is static. Its energy scale is the base's.
    """

    __slots__ = ("base", "weight")

    def __init__(self, base: Similarity, weight: Array):
        self.base = base
        self.weight = weight

    @property
    def name(self) -> str:
        return f"kernelize({self.base.name})"

    @property
    def energy_scale(self) -> float | None:
        return self.base.energy_scale

    def __call__(self, memories: Float[ArrayLike, "K D"], x: Float[ArrayLike, " D"]) -> Float[Array, " K"]:
        memories, x = check_memories_query(memories, x, self.name)
        if self.weight.shape[1] != x.shape[0]:
            raise ValueError(f"{self.name}: weight has D={self.weight.shape[1]} but x has D={x.shape[0]}")
        return self.base(memories @ self.weight.T, self.weight @ x)

    def __repr__(self) -> str:
        shape = getattr(self.weight, "shape", self.weight)
        return f"Kernelized(base={self.base.name!r}, weight shape {shape})"

    def tree_flatten(self):
        return (self.weight,), self.base

    @classmethod
    def tree_unflatten(cls, base, leaves):
        return cls(base, *leaves)


SimilarityName = Literal["dot", "neg_sq_l2", "neg_l2", "neg_l1", "cosine"]
"""The names of :data:`SIMILARITIES`."""

SimilarityLike = Union[SimilarityName, Similarity, Kernelized, ScoreFn]
"""What the functions that take a ``similarity`` accept: a name, a :class:`Similarity`, a :class:`Kernelized` or a
plain callable (see :func:`get_similarity`)."""


def get_similarity(similarity: SimilarityLike) -> Similarity | Kernelized:
    """Resolve a similarity given by name, as a :class:`Similarity`, a :class:`Kernelized` or a plain callable.

    Args:
      similarity: a name from :data:`SIMILARITIES` (``dot``, ``neg_sq_l2``, ``neg_l2``, ``neg_l1``, ``cosine``), a
        :class:`Similarity` or :class:`Kernelized` (returned as is), or a callable ``scores(memories, x)``, which is
        wrapped as a :class:`Similarity` without an energy (``energy_scale=None``).

    Returns:
      A callable ``sim(memories, x) -> (K,)`` with ``name`` and ``energy_scale`` attributes.
    """
    if isinstance(similarity, (Similarity, Kernelized)):
        return similarity
    if isinstance(similarity, str):
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"get_similarity: unknown similarity {similarity!r}; expected one of {sorted(SIMILARITIES)}, "
                "a Similarity, kernelize(...) or a callable"
            )
        return SIMILARITIES[similarity]
    if callable(similarity):
        return Similarity(getattr(similarity, "__name__", repr(similarity)), similarity)
    raise TypeError(
        f"get_similarity: similarity must be a name from {sorted(SIMILARITIES)}, a Similarity, kernelize(...) or a "
        f"callable, got {type(similarity).__name__}"
    )


def kernelize(similarity: Union[SimilarityName, Similarity, ScoreFn], weight: Float[ArrayLike, "F D"]) -> Kernelized:
    """The similarity ``similarity`` between features ``Phi(u) = W u`` (Wu et al. (2024), eq. 2.1).

    ``kernelize("dot", W)`` is U-Hop's kernel ``K(u, v) = <W u, W v>``; ``kernelize("neg_sq_l2", W)`` scores
    ``-||W xi - W x||^2``. Energies accept ``kernelize`` of ``dot`` and ``neg_sq_l2`` (and of any
    :class:`Similarity` with an ``energy_scale``); the update accepts every base.

    Args:
      similarity: the base similarity: a name, a :class:`Similarity` or a callable (static).
      weight: (F, D) feature map ``W`` (traced: the result is a pytree with ``weight`` as its leaf).

    Returns:
      A :class:`Kernelized` similarity ``sim(memories, x) -> (K,)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.similarities import kernelize
      >>> sim = kernelize("dot", jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # F = 3 features of D = 2
      >>> sim(jnp.eye(2), jnp.array([1.0, 1.0])).tolist()  # <W xi, W x>
      [6.0, 3.0]
    """
    if isinstance(similarity, Kernelized):
        raise TypeError("kernelize: similarity is already kernelized; compose the weights instead (W2 @ W1)")
    base = get_similarity(similarity)
    weight = check_floating(weight, "weight", "kernelize")
    if weight.ndim != 2:
        raise ValueError(f"kernelize: weight must have shape (F, D), got {tuple(weight.shape)}")
    return Kernelized(base, weight)
