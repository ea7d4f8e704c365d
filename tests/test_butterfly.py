"""The shared butterfly: against np.kron, scipy.linalg.hadamard and explicit Sylvester matrices in float64."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

from dammem._butterfly import (
    butterfly_apply,
    butterfly_kernel,
    butterfly_matrix,
    columns_to_rows,
    default_group,
    fwht,
    group_sizes,
    hadamard_factors,
    hadamard_sign_chain,
    kron_blocks,
    log2_size,
    map_row_chunks,
    next_power_of_two,
    pad_to_power_of_two,
    row_chunk,
    rows_to_columns,
)
from tests.reference import sylvester


def ref_kron(factors) -> np.ndarray:
    f = np.asarray(factors, np.float64)
    out = f[0]
    for a in range(1, len(f)):
        out = np.kron(out, f[a])
    return out


def _factors(k, seed=0):
    return np.random.default_rng(seed).normal(size=(k, 2, 2))  # not symmetric, not orthogonal


# ---------------------------------------------------------------------------------------------------------------
# General factors
# ---------------------------------------------------------------------------------------------------------------


# slow: more sizes of groups already covered (1; even; uneven) by the default cases
@pytest.mark.parametrize(
    "k,group",
    [(1, 4), (3, 1), (6, 4), (7, 2), (11, 6)]
    + [pytest.param(k, g, marks=pytest.mark.slow) for k, g in [(6, 1), (6, 3), (10, 4), (12, 5)]],
)
def test_butterfly_apply_matches_np_kron(k, group):
    f = _factors(k, seed=k)
    x = np.random.default_rng(1).normal(size=(2, 3, 2**k))
    with jax.enable_x64(True):
        y = np.asarray(butterfly_apply(jnp.asarray(f), jnp.asarray(x), group=group))
    np.testing.assert_allclose(y, x @ ref_kron(f).T, rtol=1e-10, atol=1e-10)
    y32 = np.asarray(butterfly_apply(jnp.asarray(f, jnp.float32), jnp.asarray(x, jnp.float32), group=group))
    assert y32.dtype == np.float32 and y32.shape == x.shape
    np.testing.assert_allclose(y32, x @ ref_kron(f).T, rtol=1e-4, atol=1e-4 * np.abs(y).max())


def test_butterfly_matrix_and_blocks_match_np_kron():
    f = _factors(5)
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(butterfly_matrix(jnp.asarray(f))), ref_kron(f), atol=1e-12)
        blocks = kron_blocks(jnp.asarray(f), (2, 3))
    assert [b.shape for b in blocks] == [(4, 4), (8, 8)]
    np.testing.assert_allclose(np.asarray(blocks[0]), ref_kron(f[:2]), atol=1e-12)
    np.testing.assert_allclose(np.asarray(blocks[1]), ref_kron(f[2:]), atol=1e-12)


@pytest.mark.parametrize("sizes", [(1,), (3, 2), (2, 2, 2, 1)])
def test_both_layouts_apply_the_same_matrix_without_transposes(sizes):
    k = sum(sizes)
    f = _factors(k, seed=3)
    x = np.random.default_rng(2).normal(size=(5, 2**k))
    dense = ref_kron(f)
    with jax.enable_x64(True):
        blocks = kron_blocks(jnp.asarray(f), sizes)
        cols = np.asarray(rows_to_columns(blocks, jnp.asarray(x)))
        rows = np.asarray(columns_to_rows(blocks, jnp.asarray(x.T)))
    assert cols.shape == (2**k, 5) and rows.shape == (5, 2**k)
    np.testing.assert_allclose(cols, dense @ x.T, atol=1e-10)  # F x_b as columns
    np.testing.assert_allclose(rows, x @ dense.T, atol=1e-10)  # F x_b as rows


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        f = jnp.asarray(_factors(4))
        x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16)))
        w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 16)))
        check_grads(lambda f, x: jnp.sum(w * butterfly_apply(f, x, group=3) ** 2), (f, x), order=1)
        check_grads(lambda s, x: jnp.sum(w * hadamard_sign_chain(s, x, group=2) ** 2), (w[:2, :], x), order=1)
        check_grads(lambda x: jnp.sum(w * jnp.sin(fwht(x))), (x,), order=2)  # fwht's custom rule, differentiated


@pytest.mark.slow  # default suite: first derivatives above (butterfly_apply has no custom rule: plain autodiff)
def test_second_derivatives_of_butterfly_apply_match_finite_differences():
    with jax.enable_x64(True):
        f = jnp.asarray(_factors(4))
        x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16)))
        w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 16)))
        check_grads(lambda f, x: jnp.sum(w * butterfly_apply(f, x, group=3) ** 2), (f, x), order=2)


def test_new_factor_values_do_not_retrace():
    x = jnp.ones((2, 64))
    butterfly_apply(jnp.asarray(_factors(6, 0), jnp.float32), x)
    before = butterfly_kernel._cache_size()
    for seed in range(1, 4):
        butterfly_apply(jnp.asarray(_factors(6, seed), jnp.float32), x)
    assert butterfly_kernel._cache_size() == before


# ---------------------------------------------------------------------------------------------------------------
# Walsh-Hadamard
# ---------------------------------------------------------------------------------------------------------------


# 32 and 256 with group 1 / None (slow): those groupings run at the other sizes
@pytest.mark.parametrize(
    "n, group",
    [(n, g) for n in (1, 2, 4, 2048) for g in (1, 4, None)]
    + [(32, 4), (256, 4)]
    + [pytest.param(n, g, marks=pytest.mark.slow) for n in (32, 256) for g in (1, None)],
)
def test_fwht_equals_scipy_hadamard_over_sqrt_n(n, group):
    x = np.random.default_rng(n).normal(size=(4, 3, n))
    h = scipy.linalg.hadamard(n).astype(np.float64) / np.sqrt(n)
    np.testing.assert_array_equal(scipy.linalg.hadamard(n), sylvester(n, normalize=False))  # the two references agree
    with jax.enable_x64(True):
        y = np.asarray(fwht(jnp.asarray(x), group=group))
    np.testing.assert_allclose(y, x @ h.T, atol=1e-12)
    y32 = np.asarray(fwht(jnp.asarray(x, jnp.float32), group=group))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, x @ h.T, atol=2e-5 * np.sqrt(np.log2(n) + 1))


def test_fwht_is_an_orthogonal_involution_and_hadamard_factors_build_it():
    x = jax.random.normal(jax.random.key(0), (6, 512))
    y = fwht(x)
    np.testing.assert_allclose(np.asarray(fwht(y)), np.asarray(x), atol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(y), axis=-1), np.linalg.norm(np.asarray(x), axis=-1), rtol=1e-5
    )
    np.testing.assert_allclose(np.asarray(butterfly_apply(hadamard_factors(9), x)), np.asarray(y), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(butterfly_matrix(hadamard_factors(3, dtype=jnp.float32))), sylvester(8), atol=1e-6
    )
    assert fwht(jnp.arange(4)).dtype == jnp.float32  # integers become float32
    assert fwht(jnp.ones((0, 8))).shape == (0, 8)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_hadamard_sign_chain_equals_the_dense_product(m):
    n = 64
    rng = np.random.default_rng(m)
    signs = rng.choice([-1.0, 1.0], size=(m, n))
    x = rng.normal(size=(2, 5, n))
    h = sylvester(n)
    w = np.eye(n)
    for s in signs:  # W = H D_0 H D_1 ... H D_{m-1}
        w = w @ h @ np.diag(s)
    with jax.enable_x64(True):
        y = np.asarray(hadamard_sign_chain(jnp.asarray(signs), jnp.asarray(x), group=4))
    np.testing.assert_allclose(y, x @ w.T, atol=1e-12)
    if m > 1:  # the order matters: the diagonals applied in the reverse order give a different matrix
        w_rev = np.eye(n)
        for s in signs[::-1]:
            w_rev = w_rev @ h @ np.diag(s)
        assert np.abs(x @ w_rev.T - y).max() > 0.1
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)  # orthogonal


def test_hadamard_sign_chain_of_one_diagonal_is_fwht_of_the_signed_vector():
    x = jax.random.normal(jax.random.key(1), (3, 128))
    d = jax.random.rademacher(jax.random.key(2), (1, 128), dtype=jnp.float32)
    np.testing.assert_allclose(np.asarray(hadamard_sign_chain(d, x)), np.asarray(fwht(x * d[0])), atol=1e-6)


def test_fwht_under_vmap_jvp_and_grad_is_the_dense_transform(x64):
    """fwht's batching rule (mapped axes become leading rows): values under nested vmaps, mapped axes other than the
    first (including the transformed axis's neighbour and the last axis), an unmapped operand, a non-default group,
    its JVP and its VJP, all against the dense Sylvester matrix."""
    n = 16
    rng = np.random.default_rng(3)
    x, dx, c = (rng.normal(size=(3, 2, n)) for _ in range(3))
    h = sylvester(n)
    xj = jnp.asarray(x)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.vmap(fwht))(xj)), x @ h.T, atol=1e-12)
    swapped = jax.vmap(fwht, in_axes=1, out_axes=1)(xj)
    np.testing.assert_allclose(np.asarray(swapped), x @ h.T, atol=1e-12)
    # the mapped axis is the last one: each column of an (n, 5) array is transformed
    cols = rng.normal(size=(n, 5))
    np.testing.assert_allclose(np.asarray(jax.vmap(fwht, in_axes=1)(jnp.asarray(cols))), (h @ cols).T, atol=1e-12)
    nested = jax.vmap(jax.vmap(partial(fwht, group=3), in_axes=0), in_axes=1, out_axes=2)(xj)  # group 3: 2 passes
    np.testing.assert_allclose(np.asarray(nested), (x @ h.T).transpose(0, 2, 1), atol=1e-12)
    scaled = jax.vmap(lambda s: fwht(xj[0]) * s)(jnp.arange(4.0))  # fwht's operand is not mapped
    np.testing.assert_allclose(np.asarray(scaled), np.arange(4.0)[:, None, None] * (x[0] @ h.T), atol=1e-12)
    _, tangent = jax.jvp(jax.vmap(fwht), (xj,), (jnp.asarray(dx),))
    np.testing.assert_allclose(np.asarray(tangent), dx @ h.T, atol=1e-12)
    grad = jax.vmap(jax.grad(lambda r, w: jnp.sum(fwht(r) * w)))(xj, jnp.asarray(c))
    np.testing.assert_allclose(np.asarray(grad), c @ h, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Large batches in chunks of rows
# ---------------------------------------------------------------------------------------------------------------


def test_row_chunk_policy():
    assert row_chunk(512, 4096, backend="cpu") == 32  # 2^17 elements per chunk
    assert row_chunk(2048, 4096, backend="cpu", in_place=True) == 64  # 2^18 when no transpose follows
    assert row_chunk(127, 4096, backend="cpu") is None  # fewer than four chunks: whole batch
    assert row_chunk(128, 4096, backend="cpu") == 32
    assert row_chunk(64, 4096, backend="cpu", in_place=True) is None  # the KROP clean-up of 64 queries: unchanged
    assert row_chunk(10**6, 4096, backend="gpu") is None and row_chunk(10**6, 4096, backend="tpu") is None
    assert row_chunk(100, 2**20, backend="cpu") == 1


@pytest.mark.parametrize("b", [8, 9, pytest.param(11, marks=pytest.mark.slow)])  # 11: a second remainder, as 9
def test_map_row_chunks_equals_one_call_with_remainders_and_gradients(b):
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(b).normal(size=(b, 4)))
        w = jnp.asarray(np.random.default_rng(0).normal(size=(b,)))

        def fn(r, v):
            return jnp.sin(r) * v[:, None] + jnp.cumsum(r, axis=1)

        np.testing.assert_allclose(np.asarray(map_row_chunks(fn, (x, w), 4)), np.asarray(fn(x, w)), atol=1e-14)
        np.testing.assert_allclose(np.asarray(map_row_chunks(fn, (x, w), None)), np.asarray(fn(x, w)), atol=0)
        # jitted: one compiled program per derivative instead of many op-by-op ones
        check_grads(jax.jit(lambda x, w: jnp.sum(map_row_chunks(fn, (x, w), 4) ** 2)), (x, w), order=1, modes=("rev",))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="row chunks are a CPU policy")
def test_chunked_batches_match_the_dense_references():
    n, b = 1024, 600  # 600 rows of 1024: chunks of 128 rows and a remainder of 88
    assert row_chunk(b, n) == 128
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, n))
    h = scipy.linalg.hadamard(n) / np.sqrt(n)
    np.testing.assert_allclose(np.asarray(fwht(jnp.asarray(x, jnp.float32))), x @ h.T, atol=1e-4)
    signs = rng.choice([-1.0, 1.0], size=(3, n))
    w = h @ np.diag(signs[0]) @ h @ np.diag(signs[1]) @ h @ np.diag(signs[2])
    got = np.asarray(hadamard_sign_chain(jnp.asarray(signs, jnp.float32), jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, x @ w.T, atol=1e-4)
    f = _factors(10, seed=1) / np.sqrt(2.0)
    got = np.asarray(butterfly_apply(jnp.asarray(f, jnp.float32), jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, x @ ref_kron(f).T, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Sizes and padding
# ---------------------------------------------------------------------------------------------------------------


def test_pad_to_power_of_two():
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(pad_to_power_of_two(x)), np.asarray(x))
    p = np.asarray(pad_to_power_of_two(x, axis=0))
    assert p.shape == (4, 4)
    np.testing.assert_array_equal(p[:3], np.asarray(x))
    np.testing.assert_array_equal(p[3], 0.0)
    v = jax.random.normal(jax.random.key(0), (2, 784))
    pv = pad_to_power_of_two(v)
    assert pv.shape == (2, 1024)
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(fwht(pv)), axis=-1), np.linalg.norm(np.asarray(v), axis=-1), rtol=1e-5
    )


def test_next_power_of_two_and_log2_size():
    assert [next_power_of_two(n) for n in (1, 2, 3, 4, 5, 784, 1024, 1025)] == [1, 2, 4, 4, 8, 1024, 1024, 2048]
    assert [log2_size(n) for n in (2, 4, 1024)] == [1, 2, 10]
    assert log2_size(1, min_size=1) == 0


def test_group_sizes_are_balanced_and_cover_k():
    assert group_sizes(0, 4) == ()
    for k in range(1, 17):
        for g in range(1, 8):
            sizes = group_sizes(k, g)
            assert sum(sizes) == k and max(sizes) <= g and max(sizes) - min(sizes) <= 1
            assert len(sizes) == -(-k // g)
            assert list(sizes) == sorted(sizes, reverse=True)


def test_default_group_per_backend():
    assert default_group("cpu") == 4
    assert default_group("gpu") == 6 == default_group("tpu")
    assert default_group() == default_group(jax.default_backend())


def test_bad_inputs_raise_clear_errors():
    x = jnp.ones((2, 16))
    with pytest.raises(
        ValueError, match="fwht: x.shape\\[-1\\] must be a power of two >= 1.*got 12.*pad_to_power_of_two"
    ):
        fwht(jnp.ones((2, 12)))
    with pytest.raises(ValueError, match="fwht: x must have shape \\(..., N\\)"):
        fwht(jnp.float32(1.0))
    with pytest.raises(ValueError, match="butterfly_apply: x.shape\\[-1\\] must be a power of two >= 2.*got 1"):
        butterfly_apply(jnp.ones((0, 2, 2)), jnp.ones(1))
    with pytest.raises(ValueError, match="factors must have shape \\(K, 2, 2\\) = \\(4, 2, 2\\)"):
        butterfly_apply(jnp.ones((3, 2, 2)), x)
    with pytest.raises(ValueError, match="butterfly_matrix: factors must have shape \\(K, 2, 2\\)"):
        butterfly_matrix(jnp.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="group must be in \\[1, 10\\].*got 11"):
        fwht(x, group=11)
    with pytest.raises(ValueError, match="group must be >= 1, got 0"):
        butterfly_apply(hadamard_factors(4), x, group=0)
    with pytest.raises(ValueError, match="hadamard_sign_chain: signs must have shape \\(m, N\\) = \\(m, 16\\)"):
        hadamard_sign_chain(jnp.ones((2, 8)), x)
    with pytest.raises(ValueError, match="hadamard_sign_chain: signs must have shape"):
        hadamard_sign_chain(jnp.ones((0, 16)), x)
    with pytest.raises(TypeError, match="fwht: x must be real"):
        fwht(x.astype(jnp.complex64))
    with pytest.raises(TypeError, match="N must be an int"):
        log2_size(4.0)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        next_power_of_two(0)
    with pytest.raises(ValueError, match="pad_to_power_of_two: x must have at least one axis"):
        pad_to_power_of_two(jnp.float32(1.0))
    with pytest.raises(ValueError, match="pad_to_power_of_two: x.shape\\[0\\] must be >= 1"):
        pad_to_power_of_two(jnp.ones((0, 3)), axis=0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        pad_to_power_of_two(x, axis=2)
    with pytest.raises(ValueError, match="hadamard_factors: k must be >= 1"):
        hadamard_factors(0)
