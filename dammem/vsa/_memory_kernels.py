"""Unvalidated kernels of the mutable VSA memory: the erase estimate and the store/erase overwrite rule.

Shape legend: ``N`` vector dimension, ``T`` overwrite steps, ``...`` independent memories. Inputs are assumed valid
(the public :func:`~dammem.vsa.overwrite`, :func:`~dammem.vsa.overwrite_scan` and :func:`~dammem.vsa.erase_estimate`
check them once); the clean-up calls the unchecked codebook kernels of :mod:`dammem.vsa._codebook_kernels`, so a
``lax.scan`` over many overwrites runs no argument checks.

Liu et al. (2025), slide "Resulting In" (after the neural virtual machine of Katz et al. (2019)):
``M <- M - a (*) e + a (*) v`` with the erase estimate ``e`` of the value stored under ``a`` (:func:`erase_kernel`;
the modes are described at :data:`dammem.vsa.ERASE_MODES`).

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
  - G. E. Katz, G. P. Davis, R. J. Gentili, J. A. Reggia (2019). A programmable neural virtual machine based on a
    fast store-erase learning rule. Neural Networks 119, 10-30.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

from dammem._types import Array
from dammem.vsa._codebook_kernels import cleanup_kernel, rows_kernel
from dammem.vsa._kernels import bind_kernel, unbind_kernel

__all__ = ["EraseMode", "erase_kernel", "overwrite_kernel", "overwrite_scan_kernel"]

EraseMode = Literal["cleanup", "sign", "raw", "none"]
"""What the overwrite rule subtracts before storing a new value (see :data:`dammem.vsa.memory.ERASE_MODES`)."""


def erase_kernel(memory: Array, address: Array, codebook: Any, erase: EraseMode) -> Array:
    """The estimate ``e`` of the value stored under ``address`` that the overwrite rule removes (``erase`` static;
    ``codebook`` a :class:`~dammem.vsa.Codebook`, used by ``"cleanup"``)."""
    if erase == "none":
        return jnp.zeros(jnp.broadcast_shapes(memory.shape, address.shape), memory.dtype)
    r = unbind_kernel(memory, address)
    if erase == "raw":
        return r
    if erase == "sign":
        return jnp.mean(jnp.abs(r), axis=-1, keepdims=True) * jnp.sign(r)
    return rows_kernel(codebook, cleanup_kernel(codebook, r)).astype(r.dtype)


def overwrite_kernel(memory: Array, address: Array, value: Array, codebook: Any, erase: EraseMode) -> Array:
    """``M - a (*) e + a (*) v = M + a (*) (v - e)``."""
    return memory + bind_kernel(address, value - erase_kernel(memory, address, codebook, erase))


@partial(jax.jit, static_argnums=4)
def overwrite_scan_kernel(
    memory: Array, addresses: Array, values: Array, codebook: Any, erase: EraseMode
) -> tuple[Array, Array]:
    """``T`` overwrites in order under one ``lax.scan``: ``(final memory, memory after every step)``."""

    def step(m, av):
        m = overwrite_kernel(m, av[0], av[1], codebook, erase)
        return m, m

    return lax.scan(step, memory, (addresses, values))
