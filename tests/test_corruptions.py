"""Tests for dammem.corruptions: exact-count masks, half occlusions, fills, exact-norm noise, dropout, bit flips."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.corruptions import (
    OCCLUDED_HALVES,
    flip_bits,
    gaussian_noise,
    half_occlusion_mask,
    inverted_dropout,
    occlude,
    random_pixel_mask,
)
from dammem.datasets import load_mnist, to_patterns


@pytest.mark.parametrize("d", [1, 2, 3, 7, 10, 64, 784])
def test_random_pixel_mask_exact_count(d):
    # every count 0..d, the half-way fractions (k + 0.5) / d where rounding ties go to even, and random fractions;
    # vmapped over the (traced) fraction: one compilation per d
    fractions = np.concatenate(
        [np.arange(d + 1) / d, (np.arange(d) + 0.5) / d, np.random.default_rng(d).uniform(0, 1, 16)]
    ).astype(np.float32)
    masks = jax.vmap(lambda f: random_pixel_mask(jax.random.key(0), (3, d), f))(jnp.asarray(fractions))
    assert masks.shape == (len(fractions), 3, d) and masks.dtype == jnp.bool_
    expected = np.round(fractions * np.float32(d))  # float32 product, rounded half to even
    np.testing.assert_array_equal(np.asarray(masks).sum(-1), np.repeat(expected[:, None], 3, axis=1))


def test_random_pixel_mask_properties():
    key = jax.random.key(1)
    mask = random_pixel_mask(key, (3, 5, 784), 0.3)
    assert mask.shape == (3, 5, 784)
    np.testing.assert_array_equal(np.asarray(mask).sum(-1), round(0.3 * 784))
    np.testing.assert_array_equal(mask, random_pixel_mask(key, (3, 5, 784), 0.3))  # same key, same mask
    assert not np.array_equal(mask, random_pixel_mask(jax.random.key(2), (3, 5, 784), 0.3))
    flat = np.asarray(mask).reshape(15, 784)
    assert len({row.tobytes() for row in flat}) == 15  # patterns get independent masks
    assert random_pixel_mask(key, 10, 0.5).shape == (10,)
    assert not np.asarray(random_pixel_mask(key, (2, 10), 0.0)).any()
    assert np.asarray(random_pixel_mask(key, (2, 10), 1)).all()
    # placement is uniform: every position is visible with frequency ~ the fraction
    freq = np.asarray(random_pixel_mask(key, (4000, 20), 0.25)).mean(0)
    np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_random_pixel_mask_traced_fraction_does_not_retrace():
    traces = []

    @jax.jit
    def counts(key, fraction):
        traces.append(None)
        return random_pixel_mask(key, (2, 100), fraction).sum(-1)

    for fraction in (0.1, 0.5, 0.93):
        np.testing.assert_array_equal(counts(jax.random.key(0), fraction), round(fraction * 100))
    assert len(traces) == 1


def test_random_pixel_mask_errors():
    key = jax.random.key(0)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="visible_fraction must lie in"):
            random_pixel_mask(key, (2, 10), bad)
    with pytest.raises(ValueError, match=r"visible_fraction must be a scalar, got an array of shape \(2,\)"):
        random_pixel_mask(key, (2, 10), [0.5, 0.5])
    with pytest.raises(TypeError, match="shape"):
        random_pixel_mask(key, (), 0.5)
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        random_pixel_mask(key, (2, 0), 0.5)
    with pytest.raises(TypeError, match=r"shape\[0\]"):
        random_pixel_mask(key, (2.0, 10), 0.5)


@pytest.mark.parametrize("which", ["bottom", "top", "left", "right"])
def test_half_occlusion_mask_covers_half(which):
    mask = np.asarray(half_occlusion_mask((28, 28), which))
    assert mask.shape == (784,) and mask.dtype == bool and mask.sum() == 392
    visible = mask.reshape(28, 28)
    region = {
        "bottom": (slice(0, 14), slice(None)),
        "top": (slice(14, 28), slice(None)),
        "right": (slice(None), slice(0, 14)),
        "left": (slice(None), slice(14, 28)),
    }[which]
    assert visible[region].all() and visible.sum() == visible[region].size
    color = np.asarray(half_occlusion_mask((32, 32, 3), which)).reshape(32, 32, 3)
    assert color.sum() == 32 * 32 * 3 // 2
    assert (color == color[:, :, :1]).all()  # channels of a pixel share visibility


def test_half_occlusion_mask_odd_and_errors():
    mask = np.asarray(half_occlusion_mask((5, 4), "bottom")).reshape(5, 4)
    np.testing.assert_array_equal(mask.all(1), [True, True, True, False, False])  # middle row stays visible
    mask = np.asarray(half_occlusion_mask((4, 5), "left")).reshape(4, 5)
    np.testing.assert_array_equal(mask.all(0), [False, False, True, True, True])
    with pytest.raises(ValueError, match="which must be one of"):
        half_occlusion_mask((28, 28), "middle")
    with pytest.raises(ValueError, match="image_shape"):
        half_occlusion_mask((784,), "top")
    with pytest.raises(ValueError, match="image_shape"):
        half_occlusion_mask((0, 28), "top")


def test_occlude_with_half_mask_on_real_images():
    x, _ = load_mnist(limit=3)
    patterns = to_patterns(x)
    out = occlude(patterns, half_occlusion_mask((28, 28), "bottom"), fill=-1.0)
    images = np.asarray(out).reshape(3, 28, 28)
    np.testing.assert_array_equal(images[:, 14:], -1.0)
    np.testing.assert_array_equal(images[:, :14], np.asarray(patterns).reshape(3, 28, 28)[:, :14])


def test_occlude_values_and_errors():
    x = jnp.arange(6.0).reshape(2, 3)
    mask = jnp.array([[True, False, True], [False, False, True]])
    np.testing.assert_array_equal(occlude(x, mask), [[0, 0, 2], [0, 0, 5]])
    np.testing.assert_array_equal(occlude(x, mask[0], fill=9), [[0, 9, 2], [3, 9, 5]])
    assert occlude(x.astype(jnp.bfloat16), mask).dtype == jnp.bfloat16
    with pytest.raises(TypeError, match="boolean"):
        occlude(x, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="does not broadcast"):
        occlude(x, jnp.ones((4,), bool))
    with pytest.raises(ValueError, match="fill must be a scalar"):
        occlude(x, mask, fill=jnp.zeros(3))


def test_gaussian_noise_norm_is_exact():
    key = jax.random.key(3)
    x = jnp.zeros((4, 5, 784))
    noise = np.asarray(gaussian_noise(key, x, 2.5), np.float64)
    np.testing.assert_allclose(np.linalg.norm(noise, axis=-1), 2.5, rtol=2e-6)
    norms = jnp.array([0.0, 1.0, 7.0, 0.25])[:, None]  # per-pattern norms broadcast over the leading shape
    noise = np.asarray(gaussian_noise(key, x, norms), np.float64)
    np.testing.assert_allclose(np.linalg.norm(noise, axis=-1), np.broadcast_to(norms, (4, 5)), rtol=2e-6)
    patterns = to_patterns(load_mnist(limit=8)[0])
    noisy = gaussian_noise(key, patterns, 3.0)
    diff = np.asarray(noisy, np.float64) - np.asarray(patterns, np.float64)
    np.testing.assert_allclose(np.linalg.norm(diff, axis=-1), 3.0, rtol=1e-5)
    np.testing.assert_array_equal(gaussian_noise(key, patterns, 0.0), patterns)


def test_gaussian_noise_keys_dtype_and_direction():
    key = jax.random.key(4)
    x = jnp.ones((3, 50))
    a = gaussian_noise(key, x, 1.0)
    np.testing.assert_array_equal(a, gaussian_noise(key, x, 1.0))
    assert not np.array_equal(a, gaussian_noise(jax.random.key(5), x, 1.0))
    assert gaussian_noise(key, x.astype(jnp.bfloat16), 1.0).dtype == jnp.bfloat16
    # uniform direction: the mean of many unit noise vectors is near zero, each coordinate's second moment 1/D
    d = np.asarray(gaussian_noise(key, jnp.zeros((20000, 4)), 1.0), np.float64)
    np.testing.assert_allclose(d.mean(0), 0.0, atol=0.02)
    np.testing.assert_allclose((d**2).mean(0), 0.25, atol=0.01)


def test_gaussian_noise_traced_norm_does_not_retrace_and_errors():
    traces = []

    @jax.jit
    def noisy(key, norm):
        traces.append(None)
        return gaussian_noise(key, jnp.zeros((2, 30)), norm)

    for norm in (0.5, 1.5, 4.0):
        np.testing.assert_allclose(np.linalg.norm(np.asarray(noisy(jax.random.key(0), norm)), axis=-1), norm, rtol=1e-5)
    assert len(traces) == 1
    key, x = jax.random.key(0), jnp.zeros((2, 30))
    with pytest.raises(ValueError, match="norm must be finite and >= 0"):
        gaussian_noise(key, x, -1.0)
    with pytest.raises(ValueError, match="norm shape"):
        gaussian_noise(key, x, jnp.ones(3))
    with pytest.raises(ValueError, match="norm shape"):
        gaussian_noise(key, x, jnp.ones((2, 30)))
    with pytest.raises(ValueError, match="scalar"):
        gaussian_noise(key, 1.0, 1.0)


def test_inverted_dropout():
    key = jax.random.key(6)
    x = jnp.arange(1.0, 20001.0).reshape(4, 5000)
    out = np.asarray(inverted_dropout(key, x, 0.3))
    kept = out != 0
    np.testing.assert_allclose(out[kept], np.asarray(x)[kept] / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.02  # Bernoulli, not an exact count
    np.testing.assert_array_equal(out, inverted_dropout(key, x, 0.3))
    assert not np.array_equal(out, inverted_dropout(jax.random.key(7), x, 0.3))
    np.testing.assert_array_equal(inverted_dropout(key, x, 0.0), x)
    np.testing.assert_array_equal(inverted_dropout(key, x, 1.0), 0.0)
    grad = jax.grad(lambda v: inverted_dropout(key, v, 1.0).sum())(x)
    assert np.isfinite(np.asarray(grad)).all()
    for bad in (-0.2, 1.2):
        with pytest.raises(ValueError, match="drop_fraction must lie in"):
            inverted_dropout(key, x, bad)
    with pytest.raises(ValueError, match=r"drop_fraction must be a scalar, got an array of shape \(2,\)"):
        inverted_dropout(key, x, jnp.array([0.1, 0.2]))


def test_occluded_halves_are_the_literal_options():
    assert OCCLUDED_HALVES == ("bottom", "top", "left", "right")


# ---------------------------------------------------------------------------------------------------------------
# bit flips


@pytest.mark.parametrize("fraction, d", [(0.1, 100), (0.25, 8), (0.5, 7), (0.03, 50)])
def test_flip_bits_bipolar_flips_exactly_k_signs(fraction, d):
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(3, 5, d)).astype(np.float32)
    out = np.asarray(flip_bits(jax.random.key(2), x, fraction))
    k = int(np.round(np.float32(fraction) * np.float32(d)))  # 10, 2, 4 (3.5 rounds to even), 2 (1.5 rounds to 2)
    changed = out != x
    np.testing.assert_array_equal(changed.sum(-1), np.full((3, 5), k))
    np.testing.assert_array_equal(out[changed], -x[changed])  # a flipped entry is negated
    np.testing.assert_array_equal(out[~changed], x[~changed])
    # the places are those of random_pixel_mask with the same key, independently per pattern
    np.testing.assert_array_equal(changed, np.asarray(random_pixel_mask(jax.random.key(2), x.shape, fraction)))
    if d >= 50:  # C(50, 2) = 1225 placements and more: 15 independent draws are distinct
        assert len({row.tobytes() for row in changed.reshape(15, d)}) == 15


def test_flip_bits_two_levels_of_hoover_near_queries():
    """Stored patterns in {0, 1/sqrt(D)}^D with bit flips on 0.1 D entries (Hoover et al. 2024, Sec. 4.1)."""
    d = 400
    h = np.float32(1 / np.sqrt(d))
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 2, size=(6, d)) * h).astype(np.float32)
    out = np.asarray(flip_bits(jax.random.key(0), x, 0.1, levels=(0.0, float(h))))
    changed = out != x
    np.testing.assert_array_equal(changed.sum(-1), np.full(6, 40))
    expected = np.where(changed, np.where(x == 0, h, np.float32(0)), x)  # 0 <-> h exactly
    np.testing.assert_array_equal(out, expected)
    bits = np.asarray(flip_bits(jax.random.key(0), (x > 0).astype(np.float32), 0.1, levels=(0, 1)))
    np.testing.assert_array_equal(bits, (expected > 0).astype(np.float32))  # same key: the same places for bits


def test_flip_bits_ends_dtype_and_determinism():
    key = jax.random.key(3)
    x = jnp.asarray(np.random.default_rng(2).choice([-1.0, 1.0], size=(4, 30)), jnp.float32)
    np.testing.assert_array_equal(flip_bits(key, x, 0.0), x)
    np.testing.assert_array_equal(flip_bits(key, x, 1.0), -x)
    np.testing.assert_array_equal(flip_bits(key, x, 0.3), flip_bits(key, x, 0.3))
    assert not np.array_equal(flip_bits(key, x, 0.3), flip_bits(jax.random.key(4), x, 0.3))
    assert flip_bits(key, x.astype(jnp.bfloat16), 0.3).dtype == jnp.bfloat16
    signs = np.array([[1, -1, 1, -1]])
    ints = flip_bits(key, jnp.asarray(signs), 0.5)
    assert ints.dtype == jnp.float32
    changed = np.asarray(ints) != signs
    assert changed.sum() == 2 and np.array_equal(np.asarray(ints)[changed], -signs[changed])
    # placement is uniform: every position is flipped with frequency ~ the fraction
    freq = (np.asarray(flip_bits(key, jnp.ones((4000, 20)), 0.25)) < 0).mean(0)
    np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_flip_bits_traced_fraction_does_not_retrace():
    traces = []

    @jax.jit
    def flips(key, x, fraction):
        traces.append(None)
        return (flip_bits(key, x, fraction) != x).sum(-1)

    x = jnp.ones((2, 100))
    for fraction in (0.1, 0.5, 0.93):
        np.testing.assert_array_equal(flips(jax.random.key(0), x, fraction), round(fraction * 100))
    assert len(traces) == 1


def test_flip_bits_errors():
    key, x = jax.random.key(0), jnp.ones((2, 10))
    with pytest.raises(ValueError, match=r"flip_bits: x must hold only the levels \(-1.0, 1.0\).*got the value 0.5"):
        flip_bits(key, x.at[1, 3].set(0.5), 0.1)
    with pytest.raises(ValueError, match=r"flip_bits: x must hold only the levels \(0.0, 1.0\).*got the value -1.0"):
        flip_bits(key, -x, 0.1, levels=(0, 1))
    for bad in ((1.0, 1.0), (0.0,), (0.0, float("inf")), "01", (0.0, "1")):
        with pytest.raises(ValueError, match="flip_bits: levels must be two distinct finite numbers"):
            flip_bits(key, x, 0.1, levels=bad)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"flip_bits: flip_fraction must lie in \[0, 1\]"):
            flip_bits(key, x, bad)
    with pytest.raises(ValueError, match=r"flip_fraction must be a scalar, got an array of shape \(2,\)"):
        flip_bits(key, x, jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="flip_bits: x must have shape"):
        flip_bits(key, 1.0, 0.1)
