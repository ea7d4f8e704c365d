"""Stage I (dammem.uhop.fit_kernel): SGD against a float64 NumPy reference, any optax optimiser, snapshots, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dammem import uhop
from dammem.datasets import load_mnist, to_patterns
from dammem.uhop import fit as fit_module
from tests.uhop import reference as ref

RNG = np.random.default_rng(11)
MEM = RNG.random((6, 4))
W0 = RNG.standard_normal((5, 4))


def _unit_rows(w):
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def test_sgd_matches_a_float64_reference_with_finite_difference_gradients(x64):
    lr, steps = 0.7, 3
    fit = uhop.fit_kernel(jnp.asarray(MEM), steps=steps, optimizer=optax.sgd(lr), init=jnp.asarray(W0))
    w, losses = W0.copy(), []
    for _ in range(steps):
        losses.append(ref.separation_loss(w, MEM))
        w = w - lr * ref.numeric_grad(lambda v: ref.separation_loss(v, MEM), w)
    losses.append(ref.separation_loss(w, MEM))
    np.testing.assert_allclose(np.asarray(fit.losses), losses, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(fit.weight), _unit_rows(w), rtol=1e-7, atol=1e-9)
    assert fit.snapshots is None


def test_default_optimizer_is_sgd_with_learning_rate_one(x64):
    a = uhop.fit_kernel(jnp.asarray(MEM), steps=4, init=jnp.asarray(W0))
    b = uhop.fit_kernel(jnp.asarray(MEM), steps=4, init=jnp.asarray(W0), optimizer=optax.sgd(1.0))
    # two compilations (the optimiser is static): float64, a few ulp per step over 4 steps
    np.testing.assert_allclose(np.asarray(a.weight), np.asarray(b.weight), rtol=1e-13, atol=1e-15)
    assert uhop.DEFAULT_OPTIMIZER is fit_module.DEFAULT_OPTIMIZER


def test_any_optax_optimizer_with_state_matches_a_manual_loop(x64):
    opt = optax.adam(0.05)
    mem, w = jnp.asarray(MEM), jnp.asarray(W0)
    fit = uhop.fit_kernel(mem, steps=5, optimizer=opt, init=w, loss="deep", temperature=1.5)
    grad_fn = jax.grad(lambda v: uhop.separation_loss(v, mem, loss="deep", temperature=1.5))

    @jax.jit
    def step(w, state):
        updates, state = opt.update(grad_fn(w), state, w)
        return optax.apply_updates(w, updates), state

    state = opt.init(w)
    for _ in range(5):
        w, state = step(w, state)
    np.testing.assert_allclose(np.asarray(fit.weight), np.asarray(uhop.normalize_rows(w)), rtol=1e-10)
    np.testing.assert_allclose(float(fit.losses[-1]), float(uhop.separation_loss(w, mem, loss="deep", temperature=1.5)))


@pytest.mark.slow  # 30 steps on MNIST; the default suite pins each step against a float64 reference
def test_average_loss_decreases_steadily_on_mnist_at_the_default_settings():
    x, _ = load_mnist(limit=40)
    fit = uhop.fit_kernel(to_patterns(x), steps=30, key=jax.random.key(0))
    losses = np.asarray(fit.losses)
    assert np.all(np.diff(losses) < -1e-3)  # every SGD step lowers the loss
    assert losses[-1] < losses[0] - 0.08  # measured: -2.443 -> -2.560, a drop of 0.116; the smallest step 0.0038
    np.testing.assert_allclose(np.linalg.norm(np.asarray(fit.weight), axis=1), 1.0, rtol=1e-6)


def test_snapshots_are_the_row_normalised_weights_after_those_steps():
    mem = jnp.asarray(MEM, jnp.float32)
    fit = uhop.fit_kernel(mem, steps=6, key=jax.random.key(2), save_at=(0, 2, 6))
    assert fit.snapshots.shape == (3, 4, 4)
    w0 = uhop.init_kernel(jax.random.key(2), (4, 4))
    np.testing.assert_allclose(np.asarray(fit.snapshots[0]), np.asarray(uhop.normalize_rows(w0)), rtol=1e-6)
    two = uhop.fit_kernel(mem, steps=2, key=jax.random.key(2))
    np.testing.assert_allclose(np.asarray(fit.snapshots[1]), np.asarray(two.weight), rtol=1e-5, atol=1e-6)
    # one program normalises the same final W twice; float32: a few ulp at most if XLA fuses the two differently
    np.testing.assert_allclose(np.asarray(fit.snapshots[2]), np.asarray(fit.weight), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(fit.losses[:3]), np.asarray(two.losses), rtol=1e-6)


def test_inits_and_feature_width():
    mem = jnp.asarray(MEM, jnp.float32)
    wide = uhop.fit_kernel(mem, steps=3, init="identity", num_features=7)
    assert wide.weight.shape == (7, 4)
    np.testing.assert_array_equal(np.asarray(wide.weight[4:]), 0.0)  # the loss never moves the zero rows
    square = uhop.fit_kernel(mem, steps=3, init="identity")
    np.testing.assert_allclose(np.asarray(wide.weight[:4]), np.asarray(square.weight), rtol=1e-6)
    orth = uhop.fit_kernel(mem, steps=0, init="orthogonal", key=jax.random.key(5), num_features=6)
    w = uhop.init_kernel(jax.random.key(5), (6, 4), "orthogonal")
    np.testing.assert_allclose(np.asarray(orth.weight), np.asarray(uhop.normalize_rows(w)), rtol=1e-6)
    assert orth.losses.shape == (1,)


@pytest.mark.slow  # three compilations; the experiment runs the vmapped fit in the default suite
def test_vmap_over_memory_sets_and_keys_equals_separate_fits():
    mems = jax.random.uniform(jax.random.key(0), (2, 8, 5))
    keys = jax.random.split(jax.random.key(1), 2)
    batched = jax.vmap(lambda m, k: uhop.fit_kernel(m, steps=3, key=k))(mems, keys)
    for i in range(2):
        one = uhop.fit_kernel(mems[i], steps=3, key=keys[i])
        np.testing.assert_allclose(np.asarray(batched.weight[i]), np.asarray(one.weight), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(batched.losses[i]), np.asarray(one.losses), rtol=1e-6)


def test_new_memories_and_temperature_reuse_the_compiled_fit():
    before = fit_module._fit._cache_size()
    for seed, t in ((0, 2.0), (1, 3.0), (2, 0.5)):
        mem = jax.random.uniform(jax.random.key(seed), (7, 3))
        uhop.fit_kernel(mem, steps=2, temperature=t, key=jax.random.key(seed), chunk_size=3)
    assert fit_module._fit._cache_size() == before + 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_features=3), r"fit_kernel: num_features must be >= D=4 .* got num_features=3"),
        (dict(init=jnp.ones((3, 4))), r"fit_kernel: init has F=3 < D=4 rows"),
        (dict(init=jnp.ones((5, 3))), r"fit_kernel: init has width D=3 but the memories have D=4"),
        (dict(init=jnp.ones((5, 4)), num_features=6), r"fit_kernel: num_features=6 disagrees with the initial W"),
        (dict(temperature=0.0), r"fit_kernel: temperature must be finite and > 0, got \[0.0\]"),
        (dict(temperature=-1.0), r"fit_kernel: temperature must be finite and > 0"),
        (dict(memories=jnp.ones((0, 4))), r"fit_kernel: memories is an empty memory set \(K=0\)"),
        (dict(memories=jnp.ones((1, 4))), r"fit_kernel: memories must hold at least 2 patterns"),
        (dict(loss="mean"), r"fit_kernel: loss must be one of \('average', 'max', 'deep'\), got 'mean'"),
        (dict(init="he"), r"fit_kernel: init must be one of \('gaussian', 'identity', 'orthogonal'\), got 'he'"),
        (dict(key=None), r"fit_kernel: init='gaussian' is random and needs key"),
        (dict(optimizer="sgd"), r"fit_kernel: optimizer must be an optax.GradientTransformation"),
        (dict(steps=-1), r"fit_kernel: steps must be >= 0, got -1"),
        (dict(steps=2.0), r"fit_kernel: steps must be an int"),
        (dict(save_at=(3,)), r"fit_kernel: save_at must be strictly increasing step counts in \[0, steps=2\]"),
        (dict(save_at=(1, 1)), r"fit_kernel: save_at must be strictly increasing"),
        (dict(chunk_size=0), r"fit_kernel: chunk_size must be >= 1"),
    ],
)
def test_bad_inputs(kwargs, message):
    args = dict(memories=jnp.asarray(MEM), steps=2, key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        uhop.fit_kernel(args.pop("memories"), **args)


def test_a_nan_memory_gives_a_nan_fit_not_a_zero_kernel():
    mem = MEM.copy()
    mem[2, 1] = np.nan
    fit = uhop.fit_kernel(jnp.asarray(mem), steps=3, init=jnp.asarray(W0))
    assert np.isnan(np.asarray(fit.losses)).all()
    assert np.isnan(np.asarray(fit.weight)).all()  # the NaN reaches every row of W through the gradient
