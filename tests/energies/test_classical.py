import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.energies import (
    async_sweep,
    bipolar_sign,
    classical_energy,
    classical_retrieve,
    hebbian_weights,
    hetero_weights,
    one_step_hetero,
    one_step_modern,
    sync_update,
)

RNG = np.random.default_rng(3)


def bipolar(shape):
    return np.where(RNG.random(shape) < 0.5, -1.0, 1.0)


def test_hebbian_and_hetero_weights_match_outer_product_sums():
    p = bipolar((4, 10))
    np.testing.assert_allclose(np.asarray(hebbian_weights(jnp.asarray(p))), sum(np.outer(v, v) for v in p))
    w0 = np.asarray(hebbian_weights(jnp.asarray(p), zero_diagonal=True))
    assert np.all(np.diag(w0) == 0)
    keys, values = bipolar((5, 8)), bipolar((5, 3))
    np.testing.assert_allclose(
        np.asarray(hetero_weights(jnp.asarray(keys), jnp.asarray(values))),
        sum(np.outer(y, x) for x, y in zip(keys, values)),
    )


def test_sign_of_zero_is_plus_one():
    np.testing.assert_array_equal(np.asarray(bipolar_sign(jnp.array([-2.0, 0.0, 3.0]))), [-1.0, 1.0, 1.0])


def test_async_sweeps_never_increase_the_energy():
    p = jnp.asarray(bipolar((6, 40)))
    w = hebbian_weights(p, zero_diagonal=True)
    x = jnp.asarray(bipolar(40))
    e = float(classical_energy(x, w))
    for t in range(5):
        x = async_sweep(jax.random.key(t), x, w)
        e_new = float(classical_energy(x, w))
        assert e_new <= e + 1e-6
        e = e_new
    assert set(np.unique(np.asarray(x))) <= {-1.0, 1.0}


def test_few_patterns_are_fixed_points_and_attract_corrupted_queries():
    d, k = 200, 4  # well under d / log d
    p = jnp.asarray(bipolar((k, d)))
    w = hebbian_weights(p, zero_diagonal=True)
    for mode, key in (("sync", None), ("async", jax.random.key(0))):
        for i in range(k):
            np.testing.assert_array_equal(np.asarray(sync_update(p[i], w)), np.asarray(p[i]))
            noisy = p[i].at[:20].multiply(-1.0)
            out = classical_retrieve(noisy, w, mode=mode, key=key, max_steps=20)
            assert bool(out.converged)
            np.testing.assert_array_equal(np.asarray(out.x), np.asarray(p[i]))


def test_one_step_memories_match_references(x64):
    d, n = 12, 6
    keys, values = bipolar((n, d)), bipolar((n, d))
    w = hetero_weights(jnp.asarray(keys), jnp.asarray(values))
    for i in range(n):
        ref_c = np.where(w @ keys[i] >= 0, 1.0, -1.0)
        np.testing.assert_array_equal(np.asarray(one_step_hetero(jnp.asarray(keys[i]), w)), ref_c)
        ref_m = np.where(np.exp(keys @ keys[i]) @ values >= 0, 1.0, -1.0)  # exp directly: d is small
        got = one_step_modern(jnp.asarray(keys[i]), jnp.asarray(keys), jnp.asarray(values))
        np.testing.assert_array_equal(np.asarray(got), ref_m)


def test_one_step_modern_recalls_far_beyond_d_and_respects_the_mask():
    d, n = 24, 400
    keys, values = jnp.asarray(bipolar((n, d))), jnp.asarray(bipolar((n, d)))
    recalled = jax.vmap(lambda x: one_step_modern(x, keys, values))(keys)
    assert float(jnp.mean(jnp.all(recalled == values, -1))) > 0.99
    # with only the first pair stored, every query returns that pair's value
    mask = jnp.arange(n) == 0
    out = jax.vmap(lambda x: one_step_modern(x, keys, values, mask=mask))(keys[:5])
    np.testing.assert_array_equal(np.asarray(out), np.tile(np.asarray(values[0]), (5, 1)))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hebbian_weights(jnp.ones(4)), "patterns must be a matrix"),
        (lambda: hetero_weights(jnp.ones((3, 4)), jnp.ones((2, 4))), "3 keys but 2 values"),
        (lambda: sync_update(jnp.ones(3), jnp.ones((4, 4))), r"x must have shape \(4,\)"),
        (lambda: classical_retrieve(jnp.ones(4), jnp.eye(4), mode="async"), "needs a PRNG key"),
        (lambda: classical_retrieve(jnp.ones(4), jnp.eye(4), mode="batch"), "mode must be 'sync' or 'async'"),
        (lambda: classical_retrieve(jnp.ones(4), jnp.eye(4), mode="sync", key=jax.random.key(0)), "only used by"),
        (lambda: classical_retrieve(jnp.ones(4), jnp.eye(4), mode="sync", max_steps=-1), "max_steps must be >= 1"),
        (lambda: one_step_modern(jnp.ones(3), jnp.ones((2, 3)), jnp.ones((2, 3)), beta=-1.0), "beta must be"),
        (lambda: one_step_modern(jnp.ones(3), jnp.ones((2, 3)), jnp.ones((2, 3)), mask=jnp.ones(3, bool)), "mask must"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
