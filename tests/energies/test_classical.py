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
    keys, values = bipolar((n, d)), bipolar((n, d - 5))  # the hetero map changes the dimension
    w = hetero_weights(jnp.asarray(keys), jnp.asarray(values))
    for i in range(n):
        ref_c = np.where(values.T @ (keys @ keys[i]) >= 0, 1.0, -1.0)  # sign(sum_j y_j <x_j, x>)
        np.testing.assert_array_equal(np.asarray(sync_update(jnp.asarray(keys[i]), w)), ref_c)
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


def test_classical_energy_is_the_closed_form_quadratic(x64):
    """Hsu (2025), "Hopfield network": E(x) = -1/2 x^T W x, for any (also asymmetric, non-bipolar) W and x."""
    for d in (1, 5, 12):
        w, x = RNG.standard_normal((d, d)), RNG.standard_normal(d)
        np.testing.assert_allclose(
            float(classical_energy(jnp.asarray(x), jnp.asarray(w))), -0.5 * x @ w @ x, rtol=1e-12, atol=1e-14
        )
    p = bipolar((3, 16))
    x = bipolar(16)
    want = -0.5 * sum((v @ x) ** 2 for v in p)  # Hebbian: -1/2 sum_i <x_i, x>^2
    np.testing.assert_allclose(float(classical_energy(jnp.asarray(x), hebbian_weights(jnp.asarray(p)))), want)


def reference_retrieve(x0, w, mode, key, max_steps):
    """Explicit loop: sign updates (async: the same unit orders) until x is unchanged, float64 NumPy."""
    x = np.asarray(x0, np.float64)
    for t in range(max_steps):
        if mode == "sync":
            new = np.where(w @ x >= 0, 1.0, -1.0)
        else:
            new = x.copy()
            for unit in np.asarray(jax.random.permutation(jax.random.fold_in(key, t), len(x))):
                new[unit] = 1.0 if w[unit] @ new >= 0 else -1.0
        if np.array_equal(new, x):
            return new, t + 1, True
        x = new
    return x, max_steps, False


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_classical_retrieve_matches_an_explicit_loop_step_for_step(mode):
    d = 60
    p = bipolar((9, d))  # near capacity: runs take several sweeps, some end in spurious states
    w = np.asarray(hebbian_weights(jnp.asarray(p), zero_diagonal=True))
    steps_seen = set()
    for trial in range(12):
        x0 = p[trial % 9] * np.where(RNG.random(d) < 0.3, -1.0, 1.0)
        key = jax.random.key(trial) if mode == "async" else None
        for max_steps in (1, 2, 30):
            out = classical_retrieve(jnp.asarray(x0), jnp.asarray(w), mode=mode, key=key, max_steps=max_steps)
            x_ref, steps, converged = reference_retrieve(x0, w, mode, key, max_steps)
            np.testing.assert_array_equal(np.asarray(out.x), x_ref)
            assert (int(out.steps), bool(out.converged)) == (steps, converged), (trial, max_steps)
            steps_seen.add(steps)
    assert len(steps_seen) >= 3  # the counts vary, so an off-by-one in the count would show


def test_synchronous_dynamics_can_end_in_a_two_cycle():
    """x <- sign(W x) with W = [[0, -1], [-1, 0]] flips (1, 1) <-> (-1, -1) forever: converged=False."""
    w = jnp.array([[0.0, -1.0], [-1.0, 0.0]])
    x0 = jnp.array([1.0, 1.0])
    for max_steps in (1, 2, 7):
        out = classical_retrieve(x0, w, mode="sync", max_steps=max_steps)
        assert int(out.steps) == max_steps and not bool(out.converged)
        np.testing.assert_array_equal(np.asarray(out.x), np.full(2, (-1.0) ** max_steps))
    assert float(classical_energy(x0, w)) == float(classical_energy(-x0, w)) == 1.0  # the cycle keeps its energy
    # asynchronous sweeps of the same network settle (one flip makes a fixed point)
    out = classical_retrieve(x0, w, mode="async", key=jax.random.key(0), max_steps=7)
    assert bool(out.converged) and int(out.steps) == 2
    assert float(classical_energy(out.x, w)) == -1.0


def test_one_step_modern_uses_beta_in_the_scores(x64):
    """sign(sum_i exp(beta <x, x_i>) y_i) against NumPy at beta != 1 (Hsu (2025) uses beta = 1)."""
    d, n = 10, 40
    keys, values = bipolar((n, d)), bipolar((n, 6))
    queries = bipolar((30, d))  # random queries: several keys compete, so beta changes the answer
    changed = 0
    for beta in (0.05, 0.3, 2.5):
        for q in queries:
            a = beta * keys @ q
            want = np.where(np.exp(a - a.max()) @ values >= 0, 1.0, -1.0)
            got = one_step_modern(jnp.asarray(q), jnp.asarray(keys), jnp.asarray(values), beta)
            np.testing.assert_array_equal(np.asarray(got), want)
            at_one = np.where(np.exp(keys @ q - (keys @ q).max()) @ values >= 0, 1.0, -1.0)
            changed += not np.array_equal(want, at_one)
    assert changed > 10  # beta = 1 would fail this test


def test_one_step_modern_with_every_pair_masked():
    keys, values = jnp.asarray(bipolar((4, 6))), jnp.asarray(bipolar((4, 3)))
    with pytest.raises(ValueError, match="one_step_modern: mask stores no pair"):
        one_step_modern(keys[0], keys, values, mask=jnp.zeros(4, bool))
    # traced: the documented finite result, sign(0) = +1 everywhere
    out = jax.jit(lambda m: one_step_modern(keys[0], keys, values, mask=m))(jnp.zeros(4, bool))
    np.testing.assert_array_equal(np.asarray(out), np.ones(3))
    traced_beta = jax.jit(lambda b: one_step_modern(keys[0], keys, values, b))(-1.0)
    # a concrete mask closed over by a jitted function is checked, not turned into a tracer error
    partial_mask = jnp.array([True, False, True, False])
    inside = jax.jit(lambda q: one_step_modern(q, keys, values, mask=partial_mask))(keys[0])
    np.testing.assert_array_equal(np.asarray(inside), np.asarray(one_step_modern(keys[0], keys, values, mask=partial_mask)))
    no_pair = jnp.zeros(4, bool)
    with pytest.raises(ValueError, match="mask stores no pair"):
        jax.jit(lambda q: one_step_modern(q, keys, values, mask=no_pair))(keys[0])
    assert np.all(np.isnan(np.asarray(traced_beta)))


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
        (lambda: one_step_modern(jnp.ones(3), jnp.ones((2, 3)), jnp.ones((2, 3)), "1"), "beta must be a real number"),
        (
            lambda: one_step_modern(jnp.ones(3), jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones(2)),
            "beta must be a scalar",
        ),
        (lambda: classical_retrieve(jnp.ones(4), jnp.ones((3, 4)), mode="sync"), r"weights must be square .*\(3, 4\)"),
        (lambda: sync_update(jnp.ones(3), jnp.ones((2, 4))), r"sync_update: x must have shape \(4,\)"),
        (lambda: sync_update(jnp.ones(4), jnp.ones(4)), r"sync_update: weights must be a matrix"),
        (lambda: async_sweep(jax.random.key(0), jnp.ones(4), jnp.ones((5, 4))), "async_sweep: weights must be square"),
        (lambda: classical_energy(jnp.ones(4), jnp.ones((5, 4))), "classical_energy: weights must be square"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
