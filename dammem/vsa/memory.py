"""HRR key-value memory with codebook clean-up, and a mutable memory with the store/erase overwrite rule.

Shape legend: ``N`` vector dimension, ``M`` stored items, ``T`` overwrite steps, ``...`` independent memories (any
leading batch axes; every function broadcasts over them).

Seed 000 turns NVM's matrix memory (Katz et al. 2019) into a vector-symbolic one::

    NVM:  read  v = sigma(M a)            write  M <- M - sigma(M a) a^T / N + v a^T / N
    VSA:  read  v' = M # a, v = clean(v') write  M <- M - a (*) clean(M # a) + a (*) v

with ``M = sum_m a_m (*) v_m`` (circular convolution ``(*)``, correlation ``#``) and ``clean`` the codebook
clean-up (``argmax_j <C_j, v'>``, returning the codeword). The erase term removes the *cleaned-up* old value, so
when the clean-up is right the old pair is removed exactly and the memory holds the same number of pairs after
every overwrite. The baselines replace ``clean(M # a)`` by a quantised or raw read (see :data:`ERASE_MODES`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Float, Int

from dammem._types import Array, ArrayLike
from dammem._validate import check_floating
from dammem.vsa.codebooks import Codebook
from dammem.vsa.hrr import _bind, _correlate, _pair, unbind

__all__ = ["store", "write", "read", "recall", "erase_estimate", "overwrite", "overwrite_scan", "ERASE_MODES"]

ERASE_MODES = ("cleanup", "sign", "raw", "none")
"""What the overwrite rule subtracts (bound to the key) before storing the new value:

* ``"cleanup"``: the cleaned-up read ``C_{argmax C (M # a)}`` (seed 000; NVM's erase with the clean-up as sigma);
* ``"sign"``: the sign-quantised read ``mean(|r|) sign(r)``, ``r = M # a`` (NVM's ``sigma = sign``, rescaled by the
  least-squares factor so that it matches the read's scale);
* ``"raw"``: the raw read ``r = M # a`` (no clean-up);
* ``"none"``: nothing (plain superposition; old values pile up).
"""


def _check_codebook(codebook, n: int, where: str) -> Codebook:
    if not isinstance(codebook, Codebook):
        raise TypeError(f"{where}: codebook must be a dammem.vsa.Codebook (see make_codebook), got {type(codebook)}")
    if codebook.dim != n:
        raise ValueError(f"{where}: codebook.dim = {codebook.dim} must equal the vector size N = {n} of the memory")
    return codebook


def store(keys: Float[Array, "*#bk M N"], values: Float[Array, "*#bv M N"]) -> Float[Array, "*batch N"]:
    """Superpose ``M`` key-value pairs: ``M = sum_m a_m (*) v_m`` (seed 000, "Memory M = sum_i a_i (*) v_i").

    Args:
      keys: ``(..., M, N)``.
      values: ``(..., M, N)``, the same shape as ``keys`` (leading axes broadcast).

    Returns:
      ``(..., N)`` memory trace.
    """
    where = "store"
    keys = check_floating(keys, "keys", where)
    values = check_floating(values, "values", where)
    if keys.ndim < 2 or values.ndim < 2 or keys.shape[-2] != values.shape[-2]:
        raise ValueError(
            f"{where}: keys and values must have shape (..., M, N) with the same number of items M, "
            f"got {keys.shape} and {values.shape}"
        )
    keys, values = _pair(keys, values, ("keys", "values"), where)
    return jnp.sum(_bind(keys, values), axis=-2)


def write(memory: ArrayLike, key: ArrayLike, value: ArrayLike) -> Array:
    """Add one pair: ``M + a (*) v`` (seed 000 write ``v a^T / N => a (*) v``). Shapes ``(..., N)``, broadcasting."""
    memory, key = _pair(memory, key, ("memory", "key"), "write")
    _, value = _pair(memory, value, ("memory", "value"), "write")
    return memory + _bind(key, value)


def read(
    memory: Float[Array, "*#bm N"], key: Float[Array, "*#bk N"], *, exact: bool = False
) -> Float[Array, "*batch N"]:
    """Noisy read-out ``v' = M # a`` (seed 000, "Read M # a_k = v'_k"); ``exact`` uses the exact inverse of ``a``.

    Args:
      memory: ``(..., N)``.
      key: ``(..., N)``, broadcasting with ``memory``.
      exact: see :func:`dammem.vsa.hrr.unbind`.

    Returns:
      ``(..., N)``.
    """
    return unbind(memory, key, exact=exact)


def recall(
    memory: Float[Array, "*#bm N"], key: Float[Array, "*#bk N"], codebook: Codebook, *, exact: bool = False
) -> Int[Array, "*batch"]:
    """Clean-up of the read: ``argmax_j <C_j, M # a>`` (seed 000, "v_k^cleaned = argmax H v'_k").

    Args:
      memory: ``(..., N)``.
      key: ``(..., N)``, broadcasting with ``memory`` (e.g. ``memory[..., None, :]`` against ``(..., M, N)`` keys).
      codebook: value codebook with ``dim = N``.
      exact: read with the exact inverse of the key.

    Returns:
      ``(...,)`` int32 codeword indices.
    """
    r = read(memory, key, exact=exact)
    return _check_codebook(codebook, r.shape[-1], "recall").cleanup(r)


def erase_estimate(memory: ArrayLike, key: ArrayLike, codebook: Codebook, *, erase: str = "cleanup") -> Array:
    """The vector the overwrite rule removes for ``key``: the current value as seen by the chosen erase mode.

    Args:
      memory: ``(..., N)``.
      key: ``(..., N)``.
      codebook: value codebook (used by ``"cleanup"``; its ``dim`` must be N).
      erase: one of :data:`ERASE_MODES`.

    Returns:
      ``(..., N)`` estimate ``e`` of the old value (``M - a (*) e`` erases it).
    """
    where = "erase_estimate"
    if erase not in ERASE_MODES:
        raise ValueError(f"{where}: erase must be one of {ERASE_MODES}, got {erase!r}")
    memory, key = _pair(memory, key, ("memory", "key"), where)
    _check_codebook(codebook, memory.shape[-1], where)
    return _erase(memory, key, codebook, erase)


def _erase(memory, key, codebook, erase):
    if erase == "none":
        return jnp.zeros(jnp.broadcast_shapes(memory.shape, key.shape), memory.dtype)
    r = _correlate(key, memory)
    if erase == "raw":
        return r
    if erase == "sign":
        return jnp.mean(jnp.abs(r), axis=-1, keepdims=True) * jnp.sign(r)
    return codebook.rows(codebook.cleanup(r)).astype(r.dtype)


def overwrite(
    memory: ArrayLike, key: ArrayLike, value: ArrayLike, codebook: Codebook, *, erase: str = "cleanup"
) -> Array:
    """Store/erase overwrite ``M <- M - a (*) e + a (*) v`` with ``e`` from :func:`erase_estimate` (seed 000's
    analogue of NVM's ``M <- M - sigma(M a) a^T / N + v a^T / N``).

    Args:
      memory: ``(..., N)``.
      key: ``(..., N)`` the slot's key.
      value: ``(..., N)`` the new value.
      codebook: value codebook (``dim = N``).
      erase: one of :data:`ERASE_MODES` (``"cleanup"``: seed 000's rule).

    Returns:
      ``(..., N)`` updated memory.
    """
    where = "overwrite"
    if erase not in ERASE_MODES:
        raise ValueError(f"{where}: erase must be one of {ERASE_MODES}, got {erase!r}")
    memory, key = _pair(memory, key, ("memory", "key"), where)
    _, value = _pair(memory, value, ("memory", "value"), where)
    _check_codebook(codebook, memory.shape[-1], where)
    return _overwrite(memory, key, value, codebook, erase)


def _overwrite(memory, key, value, codebook, erase):
    e = _erase(memory, key, codebook, erase)
    return memory + _bind(key, value - e)


def overwrite_scan(
    memory: ArrayLike, keys: ArrayLike, values: ArrayLike, codebook: Codebook, *, erase: str = "cleanup"
) -> tuple[Array, Array]:
    """Run ``T`` overwrites in order under one ``lax.scan``: step ``t`` writes ``values[t]`` under ``keys[t]``.

    Args:
      memory: ``(..., N)`` initial memory (e.g. from :func:`store`); leading axes are independent memories.
      keys: ``(T, ..., N)`` key of the slot written at each step (broadcasting with ``memory``).
      values: ``(T, ..., N)`` new values.
      codebook: value codebook (``dim = N``); a pytree, so its arrays are traced.
      erase: one of :data:`ERASE_MODES` (static).

    Returns:
      ``(final, history)``: the final memory ``(..., N)`` and the memory after every step ``(T, ..., N)``.
    """
    where = "overwrite_scan"
    if erase not in ERASE_MODES:
        raise ValueError(f"{where}: erase must be one of {ERASE_MODES}, got {erase!r}")
    memory = check_floating(memory, "memory", where)
    keys = check_floating(keys, "keys", where)
    values = check_floating(values, "values", where)
    if keys.ndim < 2 or keys.shape != values.shape:
        raise ValueError(
            f"{where}: keys and values must both have shape (T, ..., N) (the same shape), got {keys.shape} and "
            f"{values.shape}"
        )
    if memory.ndim < 1 or memory.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"{where}: memory must have shape (..., N) with N = {keys.shape[-1]} (the size of keys), got {memory.shape}"
        )
    try:
        out_shape = jnp.broadcast_shapes(memory.shape, keys.shape[1:])
    except ValueError as err:
        raise ValueError(
            f"{where}: memory {memory.shape} does not broadcast with one step of keys {keys.shape[1:]}"
        ) from err
    _check_codebook(codebook, memory.shape[-1], where)
    dtype = jnp.result_type(memory.dtype, keys.dtype, values.dtype)
    memory = jnp.broadcast_to(memory, out_shape).astype(dtype)
    keys, values = keys.astype(dtype), values.astype(dtype)
    return _overwrite_scan(memory, keys, values, codebook, erase)


@partial(jax.jit, static_argnums=4)
def _overwrite_scan(memory, keys, values, codebook, erase):
    def step(m, kv):
        m = _overwrite(m, kv[0], kv[1], codebook, erase)
        return m, m

    return lax.scan(step, memory, (keys, values))
