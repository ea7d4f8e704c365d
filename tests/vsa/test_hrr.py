"""HRR bind/unbind against direct O(N^2) sums (no FFT) in float64, identities, random addresses, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.vsa.hrr import ADDRESS_KINDS, bind, involution, random_addresses, unbind


def ref_convolve(a, b):
    """(a (*) b)_j = sum_k a_k b_{(j - k) mod N}, by the definition (no FFT)."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    n = a.shape[-1]
    out = np.zeros(a.shape)
    for j in range(n):
        for k in range(n):
            out[..., j] += a[..., k] * b[..., (j - k) % n]
    return out


def ref_correlate(a, b):
    """(a # b)_j = sum_k a_k b_{(k + j) mod N}."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    n = a.shape[-1]
    out = np.zeros(a.shape)
    for j in range(n):
        for k in range(n):
            out[..., j] += a[..., k] * b[..., (k + j) % n]
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_bind_and_unbind_match_direct_sums_with_broadcasting(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(2, 1, n))
    b = rng.normal(size=(3, n))
    with jax.enable_x64(True):
        c = np.asarray(bind(jnp.asarray(a), jnp.asarray(b)))
        r = np.asarray(unbind(jnp.asarray(b), jnp.asarray(a)))  # a # b: the address a unbinds the memory b
    assert c.shape == (2, 3, n)
    np.testing.assert_allclose(c, ref_convolve(a, b), atol=1e-12)
    np.testing.assert_allclose(r, ref_correlate(a, b), atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(bind(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))), ref_convolve(a, b), atol=1e-5
    )


def test_bind_identities():
    a, b, c = random_addresses(jax.random.key(0), (3,), 64)
    np.testing.assert_allclose(np.asarray(bind(a, b)), np.asarray(bind(b, a)), atol=1e-6)  # commutative
    np.testing.assert_allclose(np.asarray(bind(bind(a, b), c)), np.asarray(bind(a, bind(b, c))), atol=1e-6)
    e0 = jnp.zeros(64).at[0].set(1.0)
    np.testing.assert_allclose(np.asarray(bind(a, e0)), np.asarray(a), atol=1e-6)  # identity element
    e1 = jnp.zeros(64).at[1].set(1.0)
    np.testing.assert_allclose(np.asarray(bind(a, e1)), np.roll(np.asarray(a), 1), atol=1e-6)  # shift
    # correlation = convolution with the involution; the involution is a^*_k = a_{-k}
    np.testing.assert_allclose(np.asarray(unbind(b, a)), np.asarray(bind(involution(a), b)), atol=1e-6)
    inv = np.asarray(involution(a))
    np.testing.assert_array_equal(inv, np.asarray(a)[(-np.arange(64)) % 64])
    np.testing.assert_array_equal(np.asarray(involution(involution(a))), np.asarray(a))
    # bilinear
    np.testing.assert_allclose(np.asarray(bind(a, 2 * b + c)), np.asarray(2 * bind(a, b) + bind(a, c)), atol=1e-6)


def test_unbind_single_pair():
    n = 128
    a = random_addresses(jax.random.key(1), (), n)
    b = random_addresses(jax.random.key(2), (), n)
    assert np.min(np.abs(np.fft.rfft(np.asarray(a, np.float64))) ** 2) > 1e-3  # well conditioned for the test
    m = bind(a, b)
    np.testing.assert_allclose(np.asarray(unbind(m, a, exact=True)), np.asarray(b), atol=1e-4)
    approx = np.asarray(unbind(m, a))
    np.testing.assert_allclose(approx, ref_correlate(a, m), atol=1e-6)
    cos = approx @ np.asarray(b) / np.linalg.norm(approx) / np.linalg.norm(np.asarray(b))
    assert 0.5 < cos < 0.999  # approximate: b filtered by |F a|^2


def test_unitary_addresses_are_exactly_invertible():
    for n in [15, 64]:
        a = random_addresses(jax.random.key(3), (4,), n, kind="unitary")
        spectrum = np.abs(np.fft.rfft(np.asarray(a, np.float64), axis=-1))
        np.testing.assert_allclose(spectrum, 1.0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(a), axis=-1), 1.0, atol=1e-5)
        b = random_addresses(jax.random.key(4), (4,), n)
        np.testing.assert_allclose(np.asarray(unbind(bind(a, b), a)), np.asarray(b), atol=1e-5)
        np.testing.assert_allclose(np.asarray(unbind(bind(a, b), a, exact=True)), np.asarray(b), atol=1e-5)


def test_exact_inverse_is_noisier_in_a_superposition():
    # Retrieval by clean-up against the stored values: correlation beats the exact inverse for Gaussian addresses.
    n, m, trials = 256, 24, 20

    def trial(key):
        k1, k2 = jax.random.split(key)
        addresses = random_addresses(k1, (m,), n)
        vals = random_addresses(k2, (m,), n)
        mem = jnp.sum(bind(addresses, vals), axis=0)

        def err(exact):
            est = unbind(mem, addresses, exact=exact)
            cos = jnp.sum(est * vals, -1) / jnp.linalg.norm(est, axis=-1) / jnp.linalg.norm(vals, axis=-1)
            return jnp.mean(cos)

        return err(False), err(True)

    approx, exact = jax.vmap(trial)(jax.random.split(jax.random.key(0), trials))
    assert float(jnp.mean(approx)) > float(jnp.mean(exact)) + 0.02


def test_random_addresses_statistics_and_reproducibility():
    a = random_addresses(jax.random.key(7), (400,), 256)
    assert a.shape == (400, 256) and a.dtype == jnp.float32
    v = np.asarray(a, np.float64)
    assert abs(v.mean()) < 0.01 / np.sqrt(256) * 10
    assert abs(v.var() * 256 - 1.0) < 0.02  # N(0, 1/N)
    np.testing.assert_array_equal(v, np.asarray(random_addresses(jax.random.key(7), 400, 256)))
    assert not np.array_equal(v, np.asarray(random_addresses(jax.random.key(8), 400, 256)))
    u = random_addresses(jax.random.key(7), (2, 3), 32, kind="unitary")
    assert u.shape == (2, 3, 32)
    again = random_addresses(jax.random.key(7), (2, 3), 32, kind="unitary")
    np.testing.assert_array_equal(np.asarray(u), np.asarray(again))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_inputs_keep_their_dtype_and_match_float32(dtype):
    a, b = random_addresses(jax.random.key(0), 2, 32)
    a16, b16 = a.astype(dtype), b.astype(dtype)
    out = bind(a16, b16)
    assert out.dtype == dtype
    ref = ref_convolve(np.asarray(a16.astype(jnp.float32)), np.asarray(b16.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=1e-2)
    back = unbind(out, a16, exact=True)
    assert back.dtype == dtype and np.all(np.isfinite(np.asarray(back, np.float32)))


def test_bad_inputs():
    a = jnp.ones((3, 8))
    with pytest.raises(ValueError, match="same vector size N.*got 8 and 6"):
        bind(a, jnp.ones((3, 6)))
    with pytest.raises(ValueError, match="do not broadcast"):
        bind(a, jnp.ones((4, 8)))
    with pytest.raises(ValueError, match="unbind: memory and address must have the same vector size N"):
        unbind(jnp.ones(8), jnp.ones(4))
    with pytest.raises(ValueError, match="shape \\(..., N\\)"):
        bind(jnp.float32(1.0), a)
    with pytest.raises(TypeError, match="must be real"):
        bind(a.astype(jnp.complex64), a)
    assert ADDRESS_KINDS == ("gaussian", "unitary")
    with pytest.raises(
        ValueError, match="random_addresses: kind must be one of \\('gaussian', 'unitary'\\), got 'binary'"
    ):
        random_addresses(jax.random.key(0), 2, 8, kind="binary")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        random_addresses(jax.random.key(0), 2, 0)
    with pytest.raises(TypeError, match="shape must be an int or a tuple"):
        random_addresses(jax.random.key(0), [2], 8)
    with pytest.raises(TypeError, match="exact must be True or False"):
        unbind(a, a, exact="yes")
    with pytest.raises(ValueError, match="eps must be a number > 0"):
        unbind(a, a, exact=True, eps=0.0)
