"""The shared VSA kernels: the one two-level argmax in both layouts, against jnp/np argmax with exact ties."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from dammem.vsa._kernels import ARGMAX_BLOCK, blockwise_argmax


@pytest.mark.parametrize("n", [2, 7, 64, 384, 512, 640, 1024, 4096])
def test_blockwise_argmax_down_columns_takes_first_maximum(n):
    rng = np.random.default_rng(n)
    s = rng.integers(0, 5, size=(n, 33)).astype(np.float32)  # many exact ties
    s[:, 0] = 0.0
    s[n // 2, 0] = 7.0  # the same maximum in two blocks: the first one wins
    s[n - 1, 0] = 7.0
    got = np.asarray(blockwise_argmax(jnp.asarray(s), axis=0))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, s.argmax(0))


@pytest.mark.parametrize("n", [7, 512, 2048])
def test_blockwise_argmax_along_last_axis_takes_first_maximum(n):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(3, 9, n)).astype(np.float32)
    s[0, 0] = -1.0
    s[0, 0, -1] = 2.0  # the maximum in the last block only
    np.testing.assert_array_equal(np.asarray(blockwise_argmax(jnp.asarray(s), axis=-1)), s.argmax(-1))


def test_blockwise_argmax_middle_axis_and_winner_inside_a_late_block():
    n = 8 * ARGMAX_BLOCK
    rng = np.random.default_rng(1)
    s = rng.normal(size=(2, n, 5)).astype(np.float32)
    s[1, 5 * ARGMAX_BLOCK + 77, 3] = 100.0  # block 5, offset 77
    got = np.asarray(blockwise_argmax(jnp.asarray(s), axis=1))
    np.testing.assert_array_equal(got, s.argmax(1))
    assert got[1, 3] == 5 * ARGMAX_BLOCK + 77
