"""Random projections: regenerated rows equal the stored ones, chunking never changes a row, orthogonality, SORF."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.drdam import make_features
from dammem.drdam.features import run_chunks
from dammem.drdam.projections import chunk_operator, default_chunk_rows
from tests.reference import sylvester


def omega_rows(features, rows=None):
    """The (Y, P) projection rows, read chunk by chunk through the operator (applied to the identity)."""
    rows = rows or default_chunk_rows(features.projection, features.dim, features.num_features, features.block_size)
    return np.asarray(_omega_rows(features, rows), np.float64)[: features.num_features]


@partial(jax.jit, static_argnums=1)
def _omega_rows(features, rows):
    def chunk(carry, index, op, extra):
        return carry, op.apply(jnp.eye(features.input_dim)).T  # (R, P)

    _, outs = run_chunks(features, rows, jnp.float32, chunk, None)
    return outs.reshape(-1, features.input_dim)


def test_gaussian_regenerates_the_materialized_rows_for_any_chunk():
    key = jax.random.key(3)
    gauss = make_features("sincos", 5, 300, key=key, block_size=16)
    stored = make_features("sincos", 5, 300, key=key, block_size=16, projection="materialized")
    matrix = np.asarray(stored.params["matrix"], np.float64)
    assert matrix.shape == (300, 5)
    assert "matrix" not in gauss.params and set(gauss.params) == {"key"}  # nothing of size Y x D is stored
    for rows in (16, 304):
        np.testing.assert_array_equal(omega_rows(gauss, rows), matrix)
    np.testing.assert_array_equal(omega_rows(stored, 48), matrix)
    # block j is N(0, I) drawn from fold_in(key, j): the first block matches a direct draw
    k_proj = jax.random.split(key)[0]
    first = jax.random.normal(jax.random.fold_in(k_proj, 0), (16, 5))
    np.testing.assert_array_equal(matrix[:16], np.asarray(first))
    # a different block size is a different (equally valid) draw
    assert not np.allclose(omega_rows(make_features("sincos", 5, 300, key=key, block_size=32)), matrix)


def test_gaussian_rows_are_standard_normal():
    omega = omega_rows(make_features("cos", 16, 4000, key=jax.random.key(0)))
    assert abs(omega.mean()) < 4 / math.sqrt(omega.size)
    assert abs(omega.var() - 1.0) < 4 * math.sqrt(2 / omega.size)
    assert abs(np.corrcoef(omega[:, 0], omega[:, 1])[0, 1]) < 4 / math.sqrt(4000)


def test_orthogonal_blocks_are_orthogonal_with_chi_norms():
    d, y = 12, 12 * 200
    features = make_features("cos", d, y, key=jax.random.key(1), projection="orthogonal")
    omega = omega_rows(features, rows=3 * d)
    np.testing.assert_array_equal(omega, omega_rows(features, rows=d))
    blocks = omega.reshape(-1, d, d)
    norms = np.linalg.norm(blocks, axis=-1)
    directions = blocks / norms[..., None]
    gram = directions @ np.swapaxes(directions, 1, 2)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(d), blocks.shape), atol=1e-5)
    # squared norms ~ chi^2(D): mean D, variance 2 D
    sq = norms.ravel() ** 2
    assert abs(sq.mean() - d) < 4 * math.sqrt(2 * d / sq.size)
    assert abs(sq.var() / (2 * d) - 1) < 0.15
    # each coordinate is N(0, 1) marginally (Haar directions times chi norms)
    assert abs(omega.var() - 1.0) < 0.05
    # block_size < D keeps the first rows of each orthogonal block
    part = make_features("cos", d, 40, key=jax.random.key(1), projection="orthogonal", block_size=4)
    rows = omega_rows(part, rows=8).reshape(-1, 4, d)
    gram = rows @ np.swapaxes(rows, 1, 2)
    off = gram - np.einsum("bij,ij->bij", gram, np.eye(4))
    assert np.abs(off).max() < 1e-4


def test_structured_equals_dense_sorf_from_numpy():
    d, y = 6, 40  # P = 8, five blocks, the last one cut at row 40
    features = make_features("sincos", d, y, key=jax.random.key(2), projection="structured")
    assert features.block_size == 8 and features.input_dim == 8
    signs = np.asarray(features.params["signs"], np.float64)  # (5, 3, 8)
    norms = np.asarray(features.params["norms"], np.float64)
    assert signs.shape == (5, 3, 8) and set(np.unique(signs)) == {-1.0, 1.0}
    assert features.params["signs"].dtype == jnp.int8 and norms.shape == (y,)
    h = sylvester(8)
    dense = np.concatenate([h @ np.diag(s[0]) @ h @ np.diag(s[1]) @ h @ np.diag(s[2]) for s in signs])[:y]
    dense = norms[:, None] * dense
    for rows in (8, 16, 40):
        np.testing.assert_allclose(omega_rows(features, rows), dense, atol=1e-5)
    # the transpose is the adjoint: <apply(z), c> = <z, apply_t(c)>
    op = chunk_operator("structured", features.params, d, y, 8, 0, 16, jnp.float32)
    z, c = np.random.default_rng(0).normal(size=(2, 16))
    z, c = z[:8], c
    lhs = float(np.dot(np.asarray(op.apply(jnp.asarray(z, jnp.float32))), c))
    rhs = float(np.dot(z, np.asarray(op.apply_t(jnp.asarray(c, jnp.float32)))))
    assert abs(lhs - rhs) < 1e-4 * (1 + abs(lhs))
    # every row is a unit direction times its chi(P) norm
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), norms, rtol=1e-6)


def test_structured_norms_are_chi_of_the_padded_dimension():
    features = make_features("cos", 20, 20000, key=jax.random.key(4), projection="structured")
    sq = np.asarray(features.params["norms"], np.float64) ** 2
    assert features.input_dim == 32
    assert abs(sq.mean() - 32) < 4 * math.sqrt(64 / sq.size)


def test_stored_sizes_are_order_y_except_materialized():
    d, y = 100, 1024
    sizes = {
        p: make_features("sincos", d, y, key=jax.random.key(0), projection=p).storage_size
        for p in ("gaussian", "orthogonal", "structured", "materialized")
    }
    assert sizes["gaussian"] == sizes["orthogonal"] == 2
    assert sizes["structured"] == 3 * 1024 + y  # int8 signs for 8 blocks of 128, one norm per row
    assert sizes["materialized"] == y * d


@pytest.mark.parametrize(
    "projection, block_size, match",
    [
        ("structured", 24, r"block_size must be a power of two >= dim = 20 for projection='structured'.*got 24"),
        ("structured", 16, r"block_size must be a power of two >= dim = 20.*got 16; e.g. 32"),
        ("orthogonal", 21, r"block_size must be <= dim = 20 for projection='orthogonal'.*got 21"),
        ("gaussian", 0, r"block_size must be a positive int or None, got 0"),
        ("gaussian", 2.0, r"block_size must be a positive int or None, got 2.0"),
    ],
)
def test_bad_block_sizes(projection, block_size, match):
    with pytest.raises(ValueError, match=r"make_features: " + match):
        make_features("cos", 20, 64, key=jax.random.key(0), projection=projection, block_size=block_size)
