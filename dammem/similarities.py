"""Similarity functions between stored patterns and one query, looked up by name or passed as callables.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width of a kernel map.

A similarity is ``sim(memories: Float[Array, "K D"], x: Float[Array, "D"]) -> Float[Array, "K"]``: larger means more
alike, so distances enter *negated* (seed 002, Sec. 4.1 baselines: "L2-distance" and "Manhattan-distance" modern
Hopfield use ``-||xi - x||`` scores inside the separation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import jax.numpy as jnp
from jaxtyping import Float

from dammem._types import Array
from dammem._validate import check_floating, check_memories_query

__all__ = ["dot", "neg_sq_l2", "neg_l1", "cosine", "kernelized", "get_similarity", "SIMILARITIES"]

Similarity = Callable[[Array, Array], Array]


def dot(memories: Float[Array, "K D"], x: Float[Array, " D"]) -> Float[Array, " K"]:
    """Inner product ``<xi_mu, x>`` (the modern Hopfield score, seed 002 eq. 1.1).

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores.

    Example:
      >>> dot(jnp.eye(2), jnp.array([1.0, 2.0]))  # [1, 2]
    """
    memories, x = check_memories_query(memories, x, "dot")
    return memories @ x


def neg_sq_l2(memories: Float[Array, "K D"], x: Float[Array, " D"]) -> Float[Array, " K"]:
    """Negative squared Euclidean distance ``-||xi_mu - x||^2`` (computed from differences, not by expansion).

    With ``beta / 2`` in front this is the RBF score of MrDAM (seed 001 eq. 11).

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores (<= 0).
    """
    memories, x = check_memories_query(memories, x, "neg_sq_l2")
    return -jnp.sum(jnp.square(memories - x), axis=-1)


def neg_l1(memories: Float[Array, "K D"], x: Float[Array, " D"]) -> Float[Array, " K"]:
    """Negative Manhattan distance ``-||xi_mu - x||_1`` (seed 002 Sec. 4.1 baseline).

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores (<= 0).
    """
    memories, x = check_memories_query(memories, x, "neg_l1")
    return -jnp.sum(jnp.abs(memories - x), axis=-1)


def cosine(memories: Float[Array, "K D"], x: Float[Array, " D"]) -> Float[Array, " K"]:
    """Cosine similarity ``<xi, x> / (||xi|| ||x||)``; a zero vector has similarity 0 with everything.

    Args:
      memories: (K, D) stored patterns.
      x: (D,) query.

    Returns:
      (K,) scores in [-1, 1].
    """
    memories, x = check_memories_query(memories, x, "cosine")
    tiny = jnp.finfo(jnp.result_type(memories.dtype, x.dtype)).tiny
    norms = jnp.linalg.norm(memories, axis=-1) * jnp.linalg.norm(x)
    return (memories @ x) / jnp.maximum(norms, tiny)


def kernelized(weight: Float[Array, "F D"]) -> Similarity:
    """The learnable-kernel similarity ``K(xi, x) = <W xi, W x>`` of U-Hop (seed 002 eq. 2.1).

    Args:
      weight: (F, D) feature map ``Phi(u) = W u``.

    Returns:
      A similarity ``sim(memories, x) -> (K,)``.

    Example:
      >>> sim = kernelized(jnp.eye(3)); sim(jnp.eye(3), jnp.ones(3))  # equals dot
    """
    weight = check_floating(weight, "weight", "kernelized")
    if weight.ndim != 2:
        raise ValueError(f"kernelized: weight must have shape (F, D), got {tuple(weight.shape)}")

    def sim(memories: Array, x: Array) -> Array:
        memories, x = check_memories_query(memories, x, "kernelized")
        if weight.shape[1] != x.shape[0]:
            raise ValueError(f"kernelized: weight has D={weight.shape[1]} but x has D={x.shape[0]}")
        return (memories @ weight.T) @ (weight @ x)

    return sim


SIMILARITIES: dict[str, Similarity] = {"dot": dot, "neg_sq_l2": neg_sq_l2, "neg_l1": neg_l1, "cosine": cosine}


def get_similarity(similarity: Union[str, Similarity]) -> Similarity:
    """Look up a similarity by name (``dot``, ``neg_sq_l2``, ``neg_l1``, ``cosine``) or return a callable as is."""
    if callable(similarity):
        return similarity
    if not isinstance(similarity, str) or similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; expected one of {sorted(SIMILARITIES)} or a callable")
    return SIMILARITIES[similarity]
