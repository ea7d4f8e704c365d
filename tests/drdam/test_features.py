"""Feature maps: float64 NumPy formulas, unbiasedness over keys, variance of orthogonal/structured rows, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.drdam import FEATURE_KINDS, PROJECTIONS, feature_map, make_features
from dammem.drdam.features import sincos


def reference_features(kind, omega, phases, z):
    """Hoover et al. (2024), eq. 8 / App. C in float64 NumPy: phi(z) for rows omega (Y, D), z (D,)."""
    p = omega @ z
    y = omega.shape[0]
    if kind == "cos":
        return math.sqrt(2 / y) * np.cos(p + phases)
    if kind == "sincos":
        return np.stack([np.cos(p), np.sin(p)], -1).ravel() / math.sqrt(y)
    if kind == "exp":
        return np.exp(p - z @ z) / math.sqrt(y)
    return np.stack([np.exp(p - z @ z), np.exp(-p - z @ z)], -1).ravel() / math.sqrt(2 * y)


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_feature_map_matches_float64_formula(kind):
    d, y, beta = 6, 50, 3.0
    features = make_features(kind, d, y, key=jax.random.key(7), projection="materialized", block_size=16)
    omega = np.asarray(features.params["matrix"], np.float64)
    phases = np.asarray(features.params["phases"], np.float64) if kind == "cos" else None
    x = np.random.default_rng(0).uniform(0, 1 / math.sqrt(d), size=(3, d))
    got = np.asarray(feature_map(features, jnp.asarray(x, jnp.float32), beta), np.float64)
    want = np.stack([reference_features(kind, omega, phases, math.sqrt(beta) * xi) for xi in x])
    assert got.shape == (3, features.size)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    # the result does not depend on the compute chunk size
    other = feature_map(features, jnp.asarray(x, jnp.float32), beta, chunk_size=16)
    np.testing.assert_allclose(np.asarray(other), got, rtol=1e-5, atol=1e-7)


def test_sincos_features_have_unit_norm_and_cos_has_phases():
    f = make_features("sincos", 9, 300, key=jax.random.key(0))
    phi = feature_map(f, jnp.linspace(-1, 1, 9), 7.0)
    assert abs(float(phi @ phi) - 1.0) < 1e-5
    c = make_features("cos", 9, 300, key=jax.random.key(0))
    b = np.asarray(c.params["phases"])
    assert b.shape == (300,) and b.min() >= 0 and b.max() < 2 * math.pi and abs(b.mean() - math.pi) < 0.4


def test_exponential_features_are_computed_in_log_space():
    """||z||^2 = beta ||x||^2 = 200: exp(-||z||^2) alone underflows float32, the product does not."""
    d, beta = 4, 200.0
    f = make_features("exp", d, 8, key=jax.random.key(1), projection="materialized")
    omega = np.asarray(f.params["matrix"], np.float64)
    x = np.full(d, 0.5)
    z = math.sqrt(beta) * x
    log_ref = omega @ z - z @ z - 0.5 * math.log(8)
    got = np.asarray(feature_map(f, jnp.asarray(x, jnp.float32), beta), np.float64)
    np.testing.assert_allclose(np.log(got[got > 0]), log_ref[got > 0], rtol=1e-4)
    assert np.all(np.isfinite(got)) and np.count_nonzero(got) >= np.count_nonzero(log_ref > -87)


def _pairs():
    rng = np.random.default_rng(1)
    d = 8
    x = rng.normal(size=d)
    x *= 0.6 / np.linalg.norm(x)
    dirs = rng.normal(size=(3, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ys = x + np.array([0.3, 0.8, 1.4])[:, None] * dirs
    return d, jnp.asarray(np.concatenate([x[None], ys]), jnp.float32), np.exp(-0.5 * np.sum((ys - x) ** 2, -1))


def _estimates(projection, d, points, y, n_keys):
    @jax.jit
    def one(key):
        out = []
        for kind in FEATURE_KINDS:  # one key, the same projection rows for every kind
            phi = feature_map(make_features(kind, d, y, key=key, projection=projection), points, 1.0)
            out.append(phi[1:] @ phi[0])
        return jnp.stack(out)

    keys = jax.random.split(jax.random.key(11), n_keys)
    return np.asarray(jax.lax.map(one, keys, batch_size=500), np.float64)  # (n_keys, kinds, pairs)


@pytest.fixture(scope="module")
def kernel_estimates():
    d, points, true = _pairs()
    return true, {p: _estimates(p, d, points, 32, 2000) for p in PROJECTIONS if p != "materialized"}


@pytest.mark.slow  # statistical, 2000 keys per projection; the default suite pins the maps against float64 formulas
@pytest.mark.parametrize("projection", ["gaussian", "orthogonal", "structured"])
def test_every_map_is_unbiased_over_keys(kernel_estimates, projection):
    true, estimates = kernel_estimates
    e = estimates[projection]
    mean = e.mean(0)
    se = e.std(0) / math.sqrt(e.shape[0])
    z = (mean - true) / se
    assert np.all(np.abs(z) < 4.5), (projection, np.round(z, 2))
    # and the estimate is informative: within 3 % of the kernel for every kind and pair
    np.testing.assert_allclose(mean, np.broadcast_to(true, mean.shape), rtol=0.03)


@pytest.mark.slow  # statistical; the default suite pins orthogonal and structured rows in test_projections.py
def test_orthogonal_and_structured_rows_do_not_raise_the_variance(kernel_estimates):
    true, estimates = kernel_estimates
    mse = {p: ((e - true) ** 2).mean(0) for p, e in estimates.items()}  # (kinds, pairs)
    trig = [FEATURE_KINDS.index("cos"), FEATURE_KINDS.index("sincos")]
    for p in ("orthogonal", "structured"):
        ratio = mse[p][trig].sum(-1) / mse["gaussian"][trig].sum(-1)
        assert np.all(ratio < 1.0), (p, ratio)
    # sincos with orthogonal rows: a clear reduction at Y = 4 D
    assert mse["orthogonal"][1].sum() < 0.8 * mse["gaussian"][1].sum()


def test_same_key_same_features_and_vmap_over_keys():
    x = jnp.ones(5) / 3
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda k: feature_map(make_features("sincos", 5, 40, key=k), x, 2.0))(keys)
    for i in range(3):
        single = feature_map(make_features("sincos", 5, 40, key=keys[i]), x, 2.0)
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-6, atol=1e-7)
    assert not np.allclose(batched[0], batched[1])
    # a raw uint32 key works too and gives the same draw as its typed form
    raw = jax.random.PRNGKey(3)
    a = feature_map(make_features("cos", 5, 40, key=raw), x, 1.0)
    b = feature_map(make_features("cos", 5, 40, key=jax.random.wrap_key_data(raw)), x, 1.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda k: make_features("tanh", 4, 8, key=k), ValueError, r"make_features: kind must be one of .*got 'tanh'"),
        (
            lambda k: make_features("cos", 4, 8, key=k, projection="dense"),
            ValueError,
            r"make_features: projection must be one of .*got 'dense'",
        ),
        (lambda k: make_features("cos", 4, 0, key=k), ValueError, r"make_features: num_features must be >= 1, got 0"),
        (lambda k: make_features("cos", 4, -3, key=k), ValueError, r"make_features: num_features must be >= 1, got -3"),
        (lambda k: make_features("cos", 0, 8, key=k), ValueError, r"make_features: dim must be >= 1, got 0"),
        (lambda k: make_features("cos", 4, 8, key=7), TypeError, r"key must be a jax.random key"),
        (
            lambda k: feature_map(make_features("cos", 4, 8, key=k), jnp.ones(5), 1.0),
            ValueError,
            r"feature_map: x must have shape \(..., D\) with D = 4, got shape \(5,\)",
        ),
        (
            lambda k: feature_map(make_features("cos", 4, 8, key=k), jnp.ones(4), 0.0),
            ValueError,
            r"feature_map: beta must be finite and > 0, got \[0.0\]",
        ),
        (
            lambda k: feature_map(make_features("cos", 4, 8, key=k), jnp.ones(4), -2.0),
            ValueError,
            r"feature_map: beta must be finite and > 0",
        ),
        (
            lambda k: feature_map(make_features("cos", 4, 300, key=k), jnp.ones(4), 1.0, chunk_size=100),
            ValueError,
            r"feature_map: chunk_size must be a positive multiple of block_size = 128.*got 100",
        ),
    ],
)
def test_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(jax.random.key(0))


def test_sincos_matches_float64_numpy_over_magnitudes_and_special_values():
    """The polynomial sine/cosine pair against float64 NumPy on the same float32 arguments: within a few float32
    ulps of 1 up to |p| = 1e5 (the range of exact Cody-Waite reduction), within the rounding of p beyond."""
    rng = np.random.default_rng(0)
    eps = float(np.finfo(np.float32).eps)
    for scale in (1e-3, 1.0, 30.0, 1e3, 1e5):
        p = np.clip(rng.standard_normal(20000) * scale, -1e5, 1e5).astype(np.float32)
        p[:8] = np.float32(np.pi / 2) * np.arange(-4, 4)  # quadrant boundaries
        s, c = jax.jit(sincos)(jnp.asarray(p))
        assert s.dtype == c.dtype == jnp.float32
        p64 = p.astype(np.float64)
        np.testing.assert_allclose(np.asarray(s, np.float64), np.sin(p64), rtol=0, atol=4 * eps)
        np.testing.assert_allclose(np.asarray(c, np.float64), np.cos(p64), rtol=0, atol=4 * eps)
    p = (rng.standard_normal(2000) * 1e7).astype(np.float32)
    s, c = sincos(jnp.asarray(p))
    tol = np.spacing(np.abs(p).astype(np.float32)).astype(np.float64) + 4 * eps  # beyond 1e5: the rounding of p
    assert (np.abs(np.asarray(s, np.float64) - np.sin(p.astype(np.float64))) <= tol).all()
    assert (np.abs(np.asarray(c, np.float64) - np.cos(p.astype(np.float64))) <= tol).all()
    s, c = sincos(jnp.array([0.0, np.inf, -np.inf, np.nan], jnp.float32))
    assert float(s[0]) == 0.0 and float(c[0]) == 1.0
    assert np.isnan(np.asarray(s[1:])).all() and np.isnan(np.asarray(c[1:])).all()


def test_sincos_derivatives_are_the_pair_and_other_dtypes_use_jnp():
    p = jnp.linspace(-7.0, 7.0, 29)
    ds = jax.vmap(jax.grad(lambda v: sincos(v)[0]))(p)
    dc = jax.vmap(jax.grad(lambda v: sincos(v)[1]))(p)
    np.testing.assert_allclose(np.asarray(ds), np.cos(np.asarray(p, np.float64)), atol=4e-7)
    np.testing.assert_allclose(np.asarray(dc), -np.sin(np.asarray(p, np.float64)), atol=4e-7)
    half = jnp.asarray([0.5, 2.0], jnp.bfloat16)
    s, c = sincos(half)
    assert s.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(s), np.asarray(jnp.sin(half)))
    np.testing.assert_array_equal(np.asarray(c), np.asarray(jnp.cos(half)))
