"""Kernel map initialisations, row normalisation and unit features (dammem.uhop.kernel)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem import uhop
from tests.uhop import reference as ref

KEY = jax.random.key(3)


def test_identity_is_identity_then_zero_rows():
    w = np.asarray(uhop.init_kernel(None, (5, 3), "identity"))
    np.testing.assert_array_equal(w, np.vstack([np.eye(3), np.zeros((2, 3))]))


def test_gaussian_is_unscaled_standard_normal_as_in_the_authors_code():
    w = uhop.init_kernel(KEY, (300, 200), "gaussian")
    np.testing.assert_array_equal(np.asarray(w), np.asarray(jax.random.normal(KEY, (300, 200))))  # the same call
    assert abs(float(w.mean())) < 0.01 and abs(float(w.std()) - 1.0) < 0.01  # N(0, 1), no 1/sqrt(D) scale
    np.testing.assert_array_equal(np.asarray(uhop.init_kernel(KEY, (300, 200))), np.asarray(w))  # same key, same W


@pytest.mark.parametrize("shape", [(6, 6), (9, 4)])
def test_orthogonal_has_orthonormal_columns_and_haar_signs(x64, shape):
    w = np.asarray(uhop.init_kernel(KEY, shape, "orthogonal", dtype=jnp.float64))
    np.testing.assert_allclose(w.T @ w, np.eye(shape[1]), atol=1e-12)
    # W = Q diag(sign(diag R)) for the QR of the same Gaussian draw: W^T G is upper triangular with a positive diagonal
    gauss = np.asarray(jax.random.normal(KEY, shape, jnp.float64))
    r = w.T @ gauss
    np.testing.assert_allclose(np.tril(r, -1), 0.0, atol=1e-10)
    assert np.all(np.diag(r) > 0)


def test_orthogonal_differs_by_key():
    a = uhop.init_kernel(jax.random.key(0), (4, 4), "orthogonal")
    b = uhop.init_kernel(jax.random.key(1), (4, 4), "orthogonal")
    assert float(jnp.max(jnp.abs(a - b))) > 0.1


def test_normalize_rows_unit_rows_and_zero_rows_stay_zero():
    w = jnp.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(np.asarray(uhop.normalize_rows(w)), [[0.6, 0.8], [0, 0], [-1, 0]], atol=1e-7)
    g = jax.grad(lambda w: uhop.normalize_rows(w).sum())(w)
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_array_equal(np.asarray(g[1]), 0.0)


def test_unit_features_match_reference(x64):
    rng = np.random.default_rng(0)
    w, mem = rng.standard_normal((7, 4)), rng.standard_normal((5, 4))
    mem[2] = 0.0
    got = np.asarray(uhop.unit_features(jnp.asarray(w), jnp.asarray(mem)))
    np.testing.assert_allclose(got, ref.unit_features(w, mem), atol=1e-14)
    assert np.all(got[2] == 0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: uhop.init_kernel(KEY, (3, 4)), r"init_kernel: shape \(F, D\) needs F >= D .* got F=3 < D=4"),
        (lambda: uhop.init_kernel(KEY, (4, 4), "xavier"), r"init_kernel: init must be one of .*'xavier'"),
        (lambda: uhop.init_kernel(None, (4, 4), "gaussian"), r"init_kernel: init='gaussian' is random and needs key"),
        (lambda: uhop.init_kernel(KEY, (4,)), r"init_kernel: shape must be a pair of ints"),
        (lambda: uhop.init_kernel(KEY, (4, 0)), r"init_kernel: shape \(F, D\) needs D >= 1"),
        (lambda: uhop.init_kernel(KEY, (4, 4), dtype=jnp.int32), r"init_kernel: dtype must be a floating dtype"),
        (lambda: uhop.normalize_rows(jnp.ones(3)), r"normalize_rows: weight must have shape \(F, D\)"),
        (lambda: uhop.unit_features(jnp.ones((4, 3)), jnp.ones((2, 4))), r"unit_features: weight has width D=3"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
