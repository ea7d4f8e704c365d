"""Key-value memory and the store/erase overwrite rule: references, scan vs loop, batching, errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.vsa import _memory_kernels
from dammem.vsa.codebooks import make_codebook
from dammem.vsa.hrr import bind, random_addresses, unbind
from dammem.vsa.memory import ERASE_MODES, erase_estimate, overwrite, overwrite_scan, recall, store, write

from .test_hrr import ref_convolve, ref_correlate


def _setup(n=256, m=8, kind="krop_signed", seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    cb = make_codebook(kind, n, key=k1)
    addresses = random_addresses(k2, (m,), n)
    idx = jax.random.randint(k3, (m,), 0, n)
    return cb, addresses, idx


def test_store_write_unbind_match_direct_sums():
    rng = np.random.default_rng(0)
    addresses, vals = rng.normal(size=(2, 3, 16)), rng.normal(size=(2, 3, 16))
    with jax.enable_x64(True):
        m = np.asarray(store(jnp.asarray(addresses), jnp.asarray(vals)))
        np.testing.assert_allclose(m, ref_convolve(addresses, vals).sum(-2), atol=1e-12)
        r = np.asarray(unbind(jnp.asarray(m), jnp.asarray(addresses[:, 1])))
        np.testing.assert_allclose(r, ref_correlate(addresses[:, 1], m), atol=1e-12)
        w = np.asarray(write(jnp.asarray(m), jnp.asarray(addresses[:, 0]), jnp.asarray(vals[:, 2])))
        np.testing.assert_allclose(w, m + ref_convolve(addresses[:, 0], vals[:, 2]), atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "bipolar", "krop", "krop_signed", "one_hot", "unitary_shift"])
def test_recall_few_items(kind):
    cb, addresses, idx = _setup(n=512, m=6, kind=kind)
    m = store(addresses, cb.rows(idx))
    np.testing.assert_array_equal(np.asarray(recall(m, addresses, cb)), np.asarray(idx))


def test_overwrite_with_correct_cleanup_equals_restoring():
    cb, addresses, idx = _setup()
    m = store(addresses, cb.rows(idx))
    new = (idx[3] + 17) % 256
    m2 = overwrite(m, addresses[3], cb.rows(new), cb)
    expected = store(addresses, cb.rows(idx.at[3].set(new)))
    np.testing.assert_allclose(np.asarray(m2), np.asarray(expected), atol=1e-5)  # old pair removed exactly
    assert int(recall(m2, addresses[3], cb)) == int(new)


def test_erase_modes():
    cb, addresses, idx = _setup()
    m = store(addresses, cb.rows(idx))
    r = np.asarray(unbind(m, addresses[2]), np.float64)
    np.testing.assert_allclose(np.asarray(erase_estimate(m, addresses[2], cb, erase="raw")), r, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(erase_estimate(m, addresses[2], cb, erase="sign")), np.abs(r).mean() * np.sign(r), atol=1e-6
    )
    cleaned = erase_estimate(m, addresses[2], cb, erase="cleanup")
    np.testing.assert_allclose(np.asarray(cleaned), np.asarray(cb.rows(idx[2])), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(erase_estimate(m, addresses[2], cb, erase="none")), 0.0)
    v = cb.rows(jnp.array(5))
    plain = overwrite(m, addresses[2], v, cb, erase="none")
    np.testing.assert_allclose(np.asarray(plain), np.asarray(m + bind(addresses[2], v)), atol=1e-6)


def test_overwrite_scan_equals_python_loop_and_batches_memories():
    cb, addresses, idx = _setup(n=128, m=4)
    steps = 6
    slots = jax.random.randint(jax.random.key(1), (2, steps), 0, 4)  # 2 independent memories
    new_idx = jax.random.randint(jax.random.key(2), (2, steps), 0, 128)
    mem0 = jnp.stack([store(addresses, cb.rows(idx)), store(addresses, cb.rows((idx + 1) % 128))])
    step_addresses = jnp.swapaxes(addresses[slots], 0, 1)  # (T, 2, N)
    step_vals = jnp.swapaxes(cb.rows(new_idx), 0, 1)
    for erase in ("cleanup", "sign", "raw"):
        final, hist = overwrite_scan(mem0, step_addresses, step_vals, cb, erase=erase)
        assert hist.shape == (steps, 2, 128)
        one = jax.jit(functools.partial(overwrite, erase=erase))  # one program for the twelve steps of the loop
        for b in range(2):
            m = mem0[b]
            for t in range(steps):
                m = one(m, step_addresses[t, b], step_vals[t, b], cb)
                np.testing.assert_allclose(np.asarray(hist[t, b]), np.asarray(m), atol=2e-5)
        np.testing.assert_allclose(np.asarray(final), np.asarray(hist[-1]), atol=0)  # one value, returned twice


@pytest.mark.slow  # retrieval rates over 30 overwrites; the default suite pins overwrite and its erase modes by value
def test_mutable_memory_cleanup_erase_keeps_retrieval_while_baselines_degrade():
    n, m, steps = 512, 8, 30
    cb, addresses, idx = _setup(n=n, m=m, seed=3)
    slots = jax.random.randint(jax.random.key(5), (steps,), 0, m)
    new_idx = jax.random.randint(jax.random.key(6), (steps,), 0, n)
    current = np.tile(np.asarray(idx), (steps, 1))
    for t in range(steps):
        if t:
            current[t] = current[t - 1]
        current[t, int(slots[t])] = int(new_idx[t])
    rates = {}
    for erase in ("cleanup", "none", "raw"):
        _, hist = overwrite_scan(store(addresses, cb.rows(idx)), addresses[slots], cb.rows(new_idx), cb, erase=erase)
        got = recall(hist[:, None, :], addresses[None], cb)  # (T, M)
        rates[erase] = (np.asarray(got) == current).mean(-1)
    assert rates["cleanup"].mean() >= 0.97 and rates["cleanup"][-5:].mean() >= 0.95
    assert rates["none"][-5:].mean() < 0.75  # old values pile up
    assert rates["raw"][-5:].mean() < 0.2  # a (*) (a # M) erases (a filtered copy of) the whole memory


def test_no_retrace_for_new_codebook_or_contents():
    cb, addresses, idx = _setup(n=64, m=3)
    mem0 = store(addresses, cb.rows(idx))
    overwrite_scan(mem0, addresses[jnp.array([0, 1])], cb.rows(jnp.array([1, 2])), cb)
    before = _memory_kernels.overwrite_scan_kernel._cache_size()
    for s in range(1, 3):
        cb2, addresses2, idx2 = _setup(n=64, m=3, seed=s)
        mem2 = store(addresses2, cb2.rows(idx2))
        overwrite_scan(mem2, addresses2[jnp.array([2, 0])], cb2.rows(jnp.array([5, 6])), cb2)
    assert _memory_kernels.overwrite_scan_kernel._cache_size() == before


def test_bad_inputs():
    cb, addresses, idx = _setup(n=64, m=3)
    vals = cb.rows(idx)
    with pytest.raises(ValueError, match="same vector size N.*got 64 and 32"):
        store(addresses, vals[:, :32])
    with pytest.raises(ValueError, match="same number of items M"):
        store(addresses, vals[:2])
    with pytest.raises(ValueError, match="addresses and values must have shape \\(..., M, N\\)"):
        store(addresses[0], vals[0])
    m = store(addresses, vals)
    other = make_codebook("krop", 128, key=jax.random.key(0))
    with pytest.raises(ValueError, match="codebook.dim = 128 must equal the vector size N = 64"):
        recall(m, addresses, other)
    with pytest.raises(ValueError, match="codebook.dim = 128"):
        overwrite(m, addresses[0], vals[1], other)
    with pytest.raises(TypeError, match="codebook must be a dammem.vsa.Codebook"):
        overwrite(m, addresses[0], vals[1], np.eye(64))
    assert ERASE_MODES == ("cleanup", "sign", "raw", "none")
    with pytest.raises(ValueError, match="erase must be one of \\('cleanup', 'sign', 'raw', 'none'\\), got 'zero'"):
        overwrite(m, addresses[0], vals[1], cb, erase="zero")
    with pytest.raises(ValueError, match="memory and value must have the same vector size N"):
        overwrite(m, addresses[0], vals[1, :16], cb)
    with pytest.raises(ValueError, match="addresses and values must both have shape \\(T, ..., N\\)"):
        overwrite_scan(m, addresses, vals[:2], cb)
    with pytest.raises(ValueError, match="memory must have shape \\(..., N\\) with N = 64"):
        overwrite_scan(m[:32], addresses, vals, cb)
    with pytest.raises(ValueError, match="does not broadcast"):
        overwrite_scan(jnp.stack([m, m, m]), jnp.stack([addresses[:2]] * 2), jnp.stack([vals[:2]] * 2), cb)
