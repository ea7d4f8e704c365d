"""Holographic reduced representations (HRR): binding by circular convolution, unbinding by circular correlation.

Shape legend: ``N`` vector dimension (any N >= 1; powers of two are not required here), ``...`` leading batch axes
that broadcast between the two operands.

Plate (1995) binds two vectors by circular convolution and recovers one from the pair by circular correlation
with the other; Liu et al. (2025, slide "Issue During Reading") store a key-value memory as
``M = sum_i a_i (*) v_i`` and read ``v'_k = M # a_k`` with an *address* vector ``a_k`` (a random HRR vector, not
a PRNG key)::

    bind(a, b)_j             = (a (*) b)_j = sum_k a_k b_{(j - k) mod N}                  circular convolution
    unbind(memory, address)_j = (a # m)_j  = sum_k a_k m_{(k + j) mod N} = (a^* (*) m)_j,   a^*_k = a_{-k mod N}

Both cost O(N log N) by real FFTs: ``bind = irfft(rfft(a) rfft(b))``. ``unbind`` is Plate's approximate inverse,
correlation with the involution ``a^*`` (robust: the crosstalk of other stored pairs stays bounded); ``exact=True``
divides by ``rfft(a)`` instead, which is exact for one pair but noisier in a superposition for Gaussian addresses,
because small Fourier coefficients of ``a`` amplify the crosstalk. For unitary addresses (``|rfft(a)| = 1``,
:func:`random_addresses` with ``kind="unitary"``) the two coincide and ``a^*`` is the exact inverse.

References:
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025 (slides "Holographic Reduced Representations", "Issue During Reading").
"""

from __future__ import annotations

import numbers
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Float

from dammem._types import Array, PRNGKey
from dammem._validate import check_floating, check_int
from dammem.vsa._checks import check_pair
from dammem.vsa._kernels import bind_kernel, unbind_exact_kernel, unbind_kernel

__all__ = ["bind", "unbind", "involution", "random_addresses", "AddressKind", "ADDRESS_KINDS"]

AddressKind = Literal["gaussian", "unitary"]
ADDRESS_KINDS: tuple[str, ...] = get_args(AddressKind)
"""Distributions of :func:`random_addresses`: i.i.d. ``N(0, 1/N)`` entries, or unitary vectors."""


def bind(a: Float[ArrayLike, "*#ba N"], b: Float[ArrayLike, "*#bb N"]) -> Float[Array, "*batch N"]:
    """Circular convolution ``(a (*) b)_j = sum_k a_k b_{(j-k) mod N}`` (Plate (1995); the write ``a (*) v`` of
    Liu et al. (2025)).

    Args:
      a: ``(..., N)``.
      b: ``(..., N)``; leading axes broadcast with ``a``.

    Returns:
      ``(..., N)``, computed as ``irfft(rfft(a) * rfft(b))``; commutative and associative, ``e_0`` is the identity.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import bind
      >>> bind(jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 0.0])).round(4)  # e_1 shifts a by one
      Array([3., 1., 2.], dtype=float32)
    """
    a, b = check_pair(a, b, ("a", "b"), "bind")
    return bind_kernel(a, b)


def unbind(
    memory: Float[ArrayLike, "*#bm N"],
    address: Float[ArrayLike, "*#ba N"],
    *,
    exact: bool = False,
    eps: float = 1e-6,
) -> Float[Array, "*batch N"]:
    """What ``address`` is bound to in ``memory``: ``address # memory`` (default) or the exact inverse.

    The default correlation (Plate (1995); the read ``v'_k = M # a_k`` of Liu et al. (2025)) is the approximate
    inverse: for one bound pair it returns the value filtered by ``|F a|^2`` (exact for unitary addresses), and the
    crosstalk of other pairs stays of order ``1/sqrt(N)`` per stored item. ``exact=True`` computes
    ``F^-1[F m conj(F a) / max(|F a|^2, eps)]``: exact for a single pair but noisier in a superposition, because
    small coefficients of ``F a`` amplify the other pairs.

    Args:
      memory: ``(..., N)`` trace, e.g. ``bind(address, value)`` or a sum of such.
      address: ``(..., N)``; leading axes broadcast with ``memory``.
      exact: use the exact inverse instead of the involution.
      eps: floor on ``|F a|^2`` in the exact inverse (> 0).

    Returns:
      ``(..., N)`` noisy value estimate ``v'``.

    Example:
      >>> import jax
      >>> from dammem.vsa import bind, random_addresses, unbind
      >>> address, value = random_addresses(jax.random.key(0), 2, 64, kind="unitary")
      >>> bool(jax.numpy.allclose(unbind(bind(address, value), address), value, atol=1e-5))
      True
    """
    context = "unbind"
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"{context}: exact must be True or False, got {exact!r}")
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{context}: eps must be a number > 0, got {eps!r}")
    memory, address = check_pair(memory, address, ("memory", "address"), context)
    if exact:
        return unbind_exact_kernel(memory, address, float(eps))
    return unbind_kernel(memory, address)


def involution(a: Float[ArrayLike, "*batch N"]) -> Float[Array, "*batch N"]:
    """Plate's approximate inverse ``a^*_k = a_{-k mod N}``, so that ``bind(involution(a), m) = unbind(m, a)``.

    Args:
      a: ``(..., N)``.

    Returns:
      ``(..., N)``: ``[a_0, a_{N-1}, ..., a_1]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import involution
      >>> involution(jnp.array([1.0, 2.0, 3.0, 4.0]))
      Array([1., 4., 3., 2.], dtype=float32)
    """
    a = check_floating(a, "a", "involution")
    if a.ndim < 1:
        raise ValueError("involution: a must have shape (..., N), got a scalar")
    return jnp.roll(jnp.flip(a, axis=-1), 1, axis=-1)


def random_addresses(
    key: PRNGKey, shape: int | tuple[int, ...], n: int, *, kind: AddressKind = "gaussian"
) -> Float[Array, "*shape N"]:
    """Random HRR address vectors: i.i.d. ``N(0, 1/N)`` entries (Plate (1995)), or unitary (``|rfft| = 1``).

    Unitary vectors take uniform random phases on the non-redundant frequencies and a random sign on the real ones
    (frequency 0 and, for even N, N/2), so they are real, of unit norm, and :func:`unbind` by correlation is exact.

    Args:
      key: ``jax.random`` key (same key -> same vectors).
      shape: leading shape (an int or a tuple), e.g. the number of items M.
      n: vector dimension ``N >= 1``.
      kind: one of :data:`ADDRESS_KINDS`.

    Returns:
      ``shape + (N,)`` float32.

    Example:
      >>> import jax
      >>> from dammem.vsa import random_addresses
      >>> random_addresses(jax.random.key(0), 16, 1024).shape
      (16, 1024)
    """
    context = "random_addresses"
    n = check_int(n, "n", context, minimum=1)
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, tuple) or not all(
        isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise TypeError(f"{context}: shape must be an int or a tuple of ints >= 0, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if kind == "gaussian":
        return jax.random.normal(key, shape + (n,), dtype=jnp.float32) / np.sqrt(n)
    if kind == "unitary":
        nf = n // 2 + 1
        k_phase, k_sign = jax.random.split(key)
        phase = jax.random.uniform(k_phase, shape + (nf,), minval=-np.pi, maxval=np.pi)
        real_bins = np.zeros(nf, dtype=bool)
        real_bins[0] = True
        if n % 2 == 0:
            real_bins[-1] = True
        sign = jax.random.rademacher(k_sign, shape + (nf,), dtype=jnp.float32)
        spectrum = jnp.where(real_bins, sign + 0j, jnp.exp(1j * phase))
        return jnp.fft.irfft(spectrum, n=n, axis=-1).astype(jnp.float32)
    raise ValueError(f"{context}: kind must be one of {ADDRESS_KINDS}, got {kind!r}")

