"""HRR key-value memory with codebook clean-up, and a mutable memory with the store/erase overwrite rule.

Shape legend: ``N`` vector dimension, ``M`` stored items, ``T`` overwrite steps, ``...`` independent memories (any
leading batch axes; every function broadcasts over them).

Liu et al. (2025, slides "Dive into NVM's Memory" and "Resulting In") turn the matrix memory of the neural virtual
machine (Katz et al. (2019)) into a vector-symbolic one, with address vectors ``a`` and values ``v``::

    NVM:  read  v = sigma(M a)            write  M <- M - sigma(M a) a^T / N + v a^T / N
    VSA:  read  v' = M # a, v = clean(v') write  M <- M - a (*) clean(M # a) + a (*) v

with ``M = sum_m a_m (*) v_m`` (circular convolution ``(*)``, correlation ``#``; :mod:`dammem.vsa.hrr`) and
``clean`` the codebook clean-up (``argmax_j <C_j, v'>``, returning the codeword). The read ``M # a`` is
:func:`dammem.vsa.unbind`. The erase term removes the *cleaned-up* old value, so when the clean-up is right the old
pair is removed exactly and the memory holds the same number of pairs after every overwrite. The baselines replace
``clean(M # a)`` by a quantised or raw read (see :data:`ERASE_MODES`).

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
  - G. E. Katz, G. P. Davis, R. J. Gentili, J. A. Reggia (2019). A programmable neural virtual machine based on a
    fast store-erase learning rule. Neural Networks 119, 10-30.
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
"""

from __future__ import annotations

from typing import get_args

import jax.numpy as jnp
from jax.typing import ArrayLike
from jaxtyping import Float, Int

from dammem._types import Array
from dammem._validate import check_floating
from dammem.vsa._checks import check_pair
from dammem.vsa._kernels import bind_kernel
from dammem.vsa._memory_kernels import EraseMode, erase_kernel, overwrite_kernel, overwrite_scan_kernel
from dammem.vsa.codebooks import Codebook
from dammem.vsa.hrr import unbind

__all__ = ["store", "write", "recall", "erase_estimate", "overwrite", "overwrite_scan", "EraseMode", "ERASE_MODES"]

ERASE_MODES: tuple[str, ...] = get_args(EraseMode)
"""What the overwrite rule subtracts (bound to the address) before storing the new value:

* ``"cleanup"``: the cleaned-up read ``C_{argmax C (M # a)}`` (Liu et al. (2025); NVM's erase with the clean-up as
  sigma);
* ``"sign"``: the sign-quantised read ``mean(|r|) sign(r)``, ``r = M # a`` (NVM's ``sigma = sign``, rescaled by the
  least-squares factor so that it matches the read's scale);
* ``"raw"``: the raw read ``r = M # a`` (no clean-up);
* ``"none"``: nothing (plain superposition; old values pile up).
"""


def _check_codebook(codebook: Codebook, n: int, context: str) -> Codebook:
    if not isinstance(codebook, Codebook):
        raise TypeError(f"{context}: codebook must be a dammem.vsa.Codebook (see make_codebook), got {type(codebook)}")
    if codebook.dim != n:
        raise ValueError(f"{context}: codebook.dim = {codebook.dim} must equal the vector size N = {n} of the memory")
    return codebook


def _check_erase(erase: str, context: str) -> None:
    if erase not in ERASE_MODES:
        raise ValueError(f"{context}: erase must be one of {ERASE_MODES}, got {erase!r}")


def store(addresses: Float[ArrayLike, "*#ba M N"], values: Float[ArrayLike, "*#bv M N"]) -> Float[Array, "*batch N"]:
    """Superpose ``M`` address-value pairs: ``M = sum_m a_m (*) v_m`` (Liu et al. (2025), slide "Issue During
    Reading").

    Args:
      addresses: ``(..., M, N)``.
      values: ``(..., M, N)``, the same ``M`` and ``N`` as ``addresses`` (leading axes broadcast).

    Returns:
      ``(..., N)`` memory trace.

    Example:
      >>> import jax
      >>> from dammem.vsa import make_codebook, random_addresses, recall, store
      >>> book = make_codebook("krop_signed", 1024, key=jax.random.key(1))
      >>> addresses = random_addresses(jax.random.key(2), 16, 1024)
      >>> values = jax.numpy.arange(16) * 7
      >>> memory = store(addresses, book.rows(values))
      >>> bool((recall(memory, addresses, book) == values).all())
      True
    """
    context = "store"
    addresses = check_floating(addresses, "addresses", context)
    values = check_floating(values, "values", context)
    if addresses.ndim < 2 or values.ndim < 2 or addresses.shape[-2] != values.shape[-2]:
        raise ValueError(
            f"{context}: addresses and values must have shape (..., M, N) with the same number of items M, "
            f"got {addresses.shape} and {values.shape}"
        )
    addresses, values = check_pair(addresses, values, ("addresses", "values"), context)
    return jnp.sum(bind_kernel(addresses, values), axis=-2)


def write(
    memory: Float[ArrayLike, "*#bm N"], address: Float[ArrayLike, "*#ba N"], value: Float[ArrayLike, "*#bv N"]
) -> Float[Array, "*batch N"]:
    """Add one pair: ``M + a (*) v`` (Liu et al. (2025), slide "Resulting In": NVM's ``v a^T / N`` becomes
    ``a (*) v``).

    Args:
      memory: ``(..., N)``.
      address: ``(..., N)``.
      value: ``(..., N)``; all three broadcast.

    Returns:
      ``(..., N)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import write
      >>> write(jnp.zeros(3), jnp.array([0.0, 1.0, 0.0]), jnp.array([1.0, 2.0, 3.0])).round(4)  # a shift by one
      Array([3., 1., 2.], dtype=float32)
    """
    memory, address = check_pair(memory, address, ("memory", "address"), "write")
    _, value = check_pair(memory, value, ("memory", "value"), "write")
    return memory + bind_kernel(address, value)


def recall(
    memory: Float[ArrayLike, "*#bm N"],
    addresses: Float[ArrayLike, "*#ba N"],
    codebook: Codebook,
    *,
    exact: bool = False,
) -> Int[Array, "*batch"]:
    """Clean-up of the read: ``argmax_j <C_j, M # a>`` (Liu et al. (2025), slide "Issue During Reading":
    ``v_k^cleaned = argmax H v'_k``).

    Args:
      memory: ``(..., N)``.
      addresses: ``(..., N)``, broadcasting with ``memory`` (e.g. ``memory[..., None, :]`` against ``(..., M, N)``).
      codebook: value codebook with ``dim = N``.
      exact: read with the exact inverse of the address (see :func:`dammem.vsa.unbind`).

    Returns:
      ``(...,)`` int32 codeword indices (see :func:`store` for an example).
    """
    r = unbind(memory, addresses, exact=exact)
    return _check_codebook(codebook, r.shape[-1], "recall").cleanup(r)


def erase_estimate(
    memory: Float[ArrayLike, "*#bm N"],
    address: Float[ArrayLike, "*#ba N"],
    codebook: Codebook,
    *,
    erase: EraseMode = "cleanup",
) -> Float[Array, "*batch N"]:
    """The vector the overwrite rule removes for ``address``: the current value as seen by the chosen erase mode.

    Args:
      memory: ``(..., N)``.
      address: ``(..., N)``.
      codebook: value codebook (used by ``"cleanup"``; its ``dim`` must be N).
      erase: one of :data:`ERASE_MODES`.

    Returns:
      ``(..., N)`` estimate ``e`` of the old value (``M - a (*) e`` erases it).
    """
    context = "erase_estimate"
    _check_erase(erase, context)
    memory, address = check_pair(memory, address, ("memory", "address"), context)
    _check_codebook(codebook, memory.shape[-1], context)
    return erase_kernel(memory, address, codebook, erase)


def overwrite(
    memory: Float[ArrayLike, "*#bm N"],
    address: Float[ArrayLike, "*#ba N"],
    value: Float[ArrayLike, "*#bv N"],
    codebook: Codebook,
    *,
    erase: EraseMode = "cleanup",
) -> Float[Array, "*batch N"]:
    """Store/erase overwrite ``M <- M - a (*) e + a (*) v`` with ``e`` from :func:`erase_estimate` (Liu et al.
    (2025)'s analogue of the NVM write ``M <- M - sigma(M a) a^T / N + v a^T / N`` of Katz et al. (2019)).

    Args:
      memory: ``(..., N)``.
      address: ``(..., N)`` the slot's address.
      value: ``(..., N)`` the new value.
      codebook: value codebook (``dim = N``).
      erase: one of :data:`ERASE_MODES` (``"cleanup"``: the rule of Liu et al. (2025)).

    Returns:
      ``(..., N)`` updated memory.

    Example:
      >>> import jax
      >>> from dammem.vsa import make_codebook, overwrite, random_addresses, recall, store
      >>> book = make_codebook("krop_signed", 512, key=jax.random.key(0))
      >>> addresses = random_addresses(jax.random.key(1), 4, 512)
      >>> memory = store(addresses, book.rows(jax.numpy.array([10, 20, 30, 40])))
      >>> memory = overwrite(memory, addresses[2], book.rows(99), book)
      >>> recall(memory, addresses, book)
      Array([10, 20, 99, 40], dtype=int32)
    """
    context = "overwrite"
    _check_erase(erase, context)
    memory, address = check_pair(memory, address, ("memory", "address"), context)
    _, value = check_pair(memory, value, ("memory", "value"), context)
    _check_codebook(codebook, memory.shape[-1], context)
    return overwrite_kernel(memory, address, value, codebook, erase)


def overwrite_scan(
    memory: Float[ArrayLike, "*#bm N"],
    addresses: Float[ArrayLike, "T *#ba N"],
    values: Float[ArrayLike, "T *#ba N"],
    codebook: Codebook,
    *,
    erase: EraseMode = "cleanup",
) -> tuple[Float[Array, "*batch N"], Float[Array, "T *batch N"]]:
    """Run ``T`` overwrites in order under one ``lax.scan``: step ``t`` writes ``values[t]`` under ``addresses[t]``.

    Args:
      memory: ``(..., N)`` initial memory (e.g. from :func:`store`); leading axes are independent memories.
      addresses: ``(T, ..., N)`` address of the slot written at each step (broadcasting with ``memory``).
      values: ``(T, ..., N)`` new values, the shape of ``addresses``.
      codebook: value codebook (``dim = N``); a pytree, so its arrays are traced.
      erase: one of :data:`ERASE_MODES` (static).

    Returns:
      ``(final, history)``: the final memory ``(..., N)`` and the memory after every step ``(T, ..., N)``.
    """
    context = "overwrite_scan"
    _check_erase(erase, context)
    memory = check_floating(memory, "memory", context)
    addresses = check_floating(addresses, "addresses", context)
    values = check_floating(values, "values", context)
    if addresses.ndim < 2 or addresses.shape != values.shape:
        raise ValueError(
            f"{context}: addresses and values must both have shape (T, ..., N) (the same shape), got "
            f"{addresses.shape} and {values.shape}"
        )
    if memory.ndim < 1 or memory.shape[-1] != addresses.shape[-1]:
        raise ValueError(
            f"{context}: memory must have shape (..., N) with N = {addresses.shape[-1]} (the size of addresses), "
            f"got {memory.shape}"
        )
    try:
        out_shape = jnp.broadcast_shapes(memory.shape, addresses.shape[1:])
    except ValueError as err:
        raise ValueError(
            f"{context}: memory {memory.shape} does not broadcast with one step of addresses {addresses.shape[1:]}"
        ) from err
    _check_codebook(codebook, memory.shape[-1], context)
    dtype = jnp.result_type(memory.dtype, addresses.dtype, values.dtype)
    memory = jnp.broadcast_to(memory, out_shape).astype(dtype)
    return overwrite_scan_kernel(memory, addresses.astype(dtype), values.astype(dtype), codebook, erase)

