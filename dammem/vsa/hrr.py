"""Holographic reduced representations (HRR): binding by circular convolution, unbinding by circular correlation.

Shape legend: ``N`` vector dimension (any N >= 1; powers of two are not required here), ``...`` leading batch axes
that broadcast between the two operands.

Plate (1995), as used by seed 000's key-value memory ``M = sum_i a_i (*) v_i``, read ``v'_k = M # a_k``::

    bind(a, b)_j      = (a (*) b)_j = sum_k a_k b_{(j - k) mod N}         circular convolution
    correlate(a, b)_j = (a # b)_j   = sum_k a_k b_{(k + j) mod N} = (a^* (*) b)_j,   a^*_k = a_{-k mod N}

Both are computed with real FFTs in O(N log N): ``bind = irfft(rfft(a) rfft(b))``. ``unbind(m, a)`` recovers ``b``
from ``m = a (*) b`` approximately by correlation with the involution ``a^*`` (Plate's choice: robust, the noise of
other stored pairs stays bounded), or exactly by dividing by ``rfft(a)``, which is noisier for random Gaussian keys
because small Fourier coefficients of ``a`` amplify the crosstalk. For unitary keys (``|rfft(a)| = 1``) the two are
the same and ``a^*`` is the exact inverse.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_int

__all__ = ["bind", "unbind", "correlate", "involution", "random_keys", "KEY_KINDS"]

KEY_KINDS = ("gaussian", "unitary")


def _pair(a: ArrayLike, b: ArrayLike, names: tuple[str, str], where: str) -> tuple[Array, Array]:
    a = check_floating(a, names[0], where)
    b = check_floating(b, names[1], where)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"{where}: {names[0]} and {names[1]} must have shape (..., N), got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{where}: {names[0]} and {names[1]} must have the same vector size N (last axis), "
            f"got {a.shape[-1]} and {b.shape[-1]} (shapes {a.shape} and {b.shape})"
        )
    try:
        np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    except ValueError as err:
        raise ValueError(
            f"{where}: the leading (batch) axes of {names[0]} {a.shape[:-1]} and {names[1]} {b.shape[:-1]} "
            "do not broadcast"
        ) from err
    dtype = jnp.result_type(a.dtype, b.dtype)
    return a.astype(dtype), b.astype(dtype)


def _rfft(x: Array) -> Array:
    return jnp.fft.rfft(x, axis=-1)


def _irfft(f: Array, n: int, dtype) -> Array:
    return jnp.fft.irfft(f, n=n, axis=-1).astype(dtype)


def bind(a: Float[Array, "*#ba N"], b: Float[Array, "*#bb N"]) -> Float[Array, "*batch N"]:
    """Circular convolution ``(a (*) b)_j = sum_k a_k b_{(j-k) mod N}`` (HRR binding; seed 000 write ``a (*) v``).

    Args:
      a: ``(..., N)``.
      b: ``(..., N)``; leading axes broadcast with ``a``.

    Returns:
      ``(..., N)``, computed as ``irfft(rfft(a) * rfft(b))``.

    Example:
      >>> bind(jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 0.0]))  # a shifted by one: [3, 1, 2]
    """
    a, b = _pair(a, b, ("a", "b"), "bind")
    return _bind(a, b)


@jax.jit
def _bind(a, b):
    return _irfft(_rfft(a) * _rfft(b), a.shape[-1], a.dtype)


def correlate(a: Float[Array, "*#ba N"], b: Float[Array, "*#bb N"]) -> Float[Array, "*batch N"]:
    """Circular correlation ``(a # b)_j = sum_k a_k b_{(k+j) mod N} = (a^* (*) b)_j`` (seed 000 read ``M # a``).

    Args:
      a: ``(..., N)`` (the key).
      b: ``(..., N)`` (the trace); leading axes broadcast.

    Returns:
      ``(..., N)``, computed as ``irfft(conj(rfft(a)) * rfft(b))``.
    """
    a, b = _pair(a, b, ("a", "b"), "correlate")
    return _correlate(a, b)


@jax.jit
def _correlate(a, b):
    return _irfft(jnp.conj(_rfft(a)) * _rfft(b), a.shape[-1], a.dtype)


def involution(a: Float[Array, "*batch N"]) -> Float[Array, "*batch N"]:
    """Plate's approximate inverse ``a^*_k = a_{-k mod N}`` (``a^* (*) b = a # b``).

    Args:
      a: ``(..., N)``.

    Returns:
      ``(..., N)``: ``[a_0, a_{N-1}, ..., a_1]``.
    """
    a = check_floating(a, "a", "involution")
    if a.ndim < 1:
        raise ValueError("involution: a must have shape (..., N), got a scalar")
    return jnp.roll(jnp.flip(a, axis=-1), 1, axis=-1)


def unbind(
    memory: Float[Array, "*#bm N"], key: Float[Array, "*#bk N"], *, exact: bool = False, eps: float = 1e-6
) -> Float[Array, "*batch N"]:
    """Retrieve what ``key`` was bound to: ``key # memory`` (default) or the exact inverse ``F^-1[F m / F a]``.

    The default correlation (Plate 1995; seed 000's read ``v'_k = M # a_k``) is the approximate inverse: for one
    bound pair it returns ``b`` filtered by ``|F a|^2`` (exact for unitary keys), and crosstalk from other pairs
    stays of order ``1/sqrt(N)`` per stored item. ``exact=True`` divides by ``F a`` (with ``|F a|^2`` floored at
    ``eps``): exact for a single pair but noisier in a superposition, because small coefficients of ``F a`` amplify
    the other pairs.

    Args:
      memory: ``(..., N)`` trace, e.g. ``bind(key, value)`` or a sum of such.
      key: ``(..., N)``; leading axes broadcast with ``memory``.
      exact: use the exact inverse instead of the involution.
      eps: floor on ``|F a|^2`` in the exact inverse (> 0).

    Returns:
      ``(..., N)`` noisy value estimate ``v'``.
    """
    where = "unbind"
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"{where}: exact must be True or False, got {exact!r}")
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{where}: eps must be a number > 0, got {eps!r}")
    m, a = _pair(memory, key, ("memory", "key"), where)
    if exact:
        return _unbind_exact(m, a, float(eps))
    return _correlate(a, m)


@jax.jit
def _unbind_exact(m, a, eps):
    fa = _rfft(a)
    power = jnp.maximum(jnp.real(fa) ** 2 + jnp.imag(fa) ** 2, eps)
    return _irfft(_rfft(m) * jnp.conj(fa) / power, m.shape[-1], m.dtype)


def random_keys(key: PRNGKey, shape: int | tuple[int, ...], n: int, *, kind: str = "gaussian") -> Array:
    """Random HRR vectors: i.i.d. ``N(0, 1/N)`` entries, or unitary (``|rfft| = 1``, unit norm, exact inverse ``a^*``).

    Unitary vectors take uniform random phases on the non-redundant frequencies and a random sign on the real ones
    (frequency 0 and, for even N, N/2), so they are real, of unit norm, and ``unbind`` by correlation is exact.

    Args:
      key: ``jax.random`` key (same key -> same vectors).
      shape: leading shape (an int or a tuple), e.g. the number of items M.
      n: vector dimension ``N >= 1``.
      kind: ``"gaussian"`` or ``"unitary"``.

    Returns:
      ``shape + (N,)`` float32.
    """
    where = "random_keys"
    n = check_int(n, "n", where, minimum=1)
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, tuple) or not all(
        isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise TypeError(f"{where}: shape must be an int or a tuple of ints >= 0, got {shape!r}")
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
    raise ValueError(f"{where}: kind must be one of {KEY_KINDS}, got {kind!r}")
