"""Separation losses (dammem.uhop.losses) against float64 NumPy brute force: values, gradients, chunking, memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dammem import uhop
from dammem.uhop import _core
from tests.uhop import reference as ref

RNG = np.random.default_rng(7)
MEM = RNG.random((9, 5))  # non-negative, like pixel patterns
W = RNG.standard_normal((6, 5))
LOSSES = ["average", "max", "deep"]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("t", [0.5, 2.0, 7.0])
def test_value_matches_brute_force(x64, loss, t):
    got = float(uhop.separation_loss(jnp.asarray(W), jnp.asarray(MEM), temperature=t, loss=loss))
    np.testing.assert_allclose(got, ref.separation_loss(W, MEM, t, loss), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_matches_finite_differences_of_the_reference(x64, loss):
    grad = np.asarray(jax.grad(lambda w: uhop.separation_loss(w, jnp.asarray(MEM), loss=loss))(jnp.asarray(W)))
    expected = ref.numeric_grad(lambda w: ref.separation_loss(w, MEM, 2.0, loss), W)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
    assert np.abs(grad).max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_in_the_memories_matches_finite_differences(x64, loss):
    grad = np.asarray(jax.grad(lambda m: uhop.separation_loss(jnp.asarray(W), m, loss=loss))(jnp.asarray(MEM)))
    expected = ref.numeric_grad(lambda m: ref.separation_loss(W, m, 2.0, loss), MEM)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", LOSSES)
def test_custom_derivative_of_the_pair_reduction_against_finite_differences(x64, loss):
    """The custom VJP (symmetric pairs, blocks recomputed) in the features and the temperature, with padded blocks."""
    feats = jnp.asarray(ref.unit_features(W, MEM))
    fn = lambda u, t: _core.pair_reduction(u, t, loss, 4)  # noqa: E731  (9 rows: blocks of 4, 4, 1 + padding)
    check_grads(fn, (feats, 1.7), order=1, modes=("rev",), atol=1e-7, rtol=1e-6)
    d_t = float(jax.grad(lambda t: uhop.separation_loss(jnp.asarray(W), jnp.asarray(MEM), temperature=t, loss=loss))(
        1.7
    ))  # fmt: skip
    eps = 1e-6
    expected = (ref.separation_loss(W, MEM, 1.7 + eps, loss) - ref.separation_loss(W, MEM, 1.7 - eps, loss)) / (2 * eps)
    assert d_t == pytest.approx(expected, rel=1e-6)


def test_max_loss_ties_share_the_gradient(x64):
    """Two pairs tie at the maximum: the subgradient is the mean of the two pairs' gradients."""
    u = jnp.asarray([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, -0.6, 0.0], [0.0, 0.0, 1.0]])
    grad = np.asarray(jax.grad(lambda f: _core.pair_reduction(f, 2.0, "max", 2))(u))
    # the pairs (0, 1) and (0, 2) are at squared distance 0.4; g = -t ||u_i - u_j||^2, each pair counted twice
    g01 = np.zeros((4, 3))
    g01[0], g01[1] = -2 * 2.0 * (u[0] - u[1]), -2 * 2.0 * (u[1] - u[0])
    g02 = np.zeros((4, 3))
    g02[0], g02[2] = -2 * 2.0 * (u[0] - u[2]), -2 * 2.0 * (u[2] - u[0])
    np.testing.assert_allclose(grad, (g01 + g02) / 2, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_chunk_size_does_not_change_value_or_gradient(x64, loss):
    w, mem = jnp.asarray(W), jnp.asarray(MEM)
    fn = lambda w, c: uhop.separation_loss(w, mem, loss=loss, chunk_size=c)  # noqa: E731
    value0, grad0 = jax.value_and_grad(fn)(w, 9)
    for chunk in (1, 4):  # one row per block; blocks of 4 with a padded last block (9 rows: one block above)
        value, grad = jax.value_and_grad(fn)(w, chunk)
        np.testing.assert_allclose(float(value), float(value0), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(grad0), rtol=1e-10, atol=1e-13)


def test_closed_forms():
    eye = jnp.eye(3)
    # orthogonal memories: every pair at squared distance 2 -> log G_t = -2 t for all pairs
    assert float(uhop.separation_loss(eye, eye, temperature=1.5)) == pytest.approx(-3.0, abs=1e-6)
    assert float(uhop.separation_loss(eye, eye, temperature=1.5, loss="deep")) == pytest.approx(-3.0, abs=1e-6)
    # two identical memories and one orthogonal: the worst pair has distance 0
    mem = jnp.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert float(uhop.separation_loss(eye, mem, loss="max")) == pytest.approx(0.0, abs=1e-7)
    # average over the 6 ordered pairs: 2 at distance 0, 4 at distance 2 (t = 2): log((2 + 4 e^-4) / 6)
    expected = np.log((2 + 4 * np.exp(-4.0)) / 6)
    assert float(uhop.separation_loss(eye, mem)) == pytest.approx(expected, rel=1e-6)
    # antipodal memories: the deep loss (c^2) sees them as identical, the average loss as maximally apart
    anti = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    assert float(uhop.separation_loss(jnp.eye(2), anti, loss="deep")) == pytest.approx(0.0, abs=1e-7)
    assert float(uhop.separation_loss(jnp.eye(2), anti)) == pytest.approx(-8.0, abs=1e-6)


def test_invariant_to_the_scale_of_w_and_of_each_memory(x64):
    w, mem = jnp.asarray(W), jnp.asarray(MEM)
    base = float(uhop.separation_loss(w, mem))
    scaled = mem * jnp.arange(1.0, 10.0)[:, None]
    assert float(uhop.separation_loss(3.7 * w, scaled)) == pytest.approx(base, rel=1e-12)


def test_large_temperature_does_not_underflow():
    eye = jnp.eye(4)
    value_and_grad = jax.jit(jax.value_and_grad(lambda w, t: uhop.separation_loss(w, eye, temperature=t)))
    for t in (50.0, 500.0):  # exp(-4 t) underflows float32; the running log-sum-exp does not
        assert float(value_and_grad(eye, t)[0]) == pytest.approx(-2.0 * t, rel=1e-6)
        grad = value_and_grad(eye + 0.1, t)[1]
        assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).max()) > 0


def test_zero_memory_gives_finite_loss_and_gradient(x64):
    mem = MEM.copy()
    mem[3] = 0.0
    value, grad = jax.value_and_grad(lambda w: uhop.separation_loss(w, jnp.asarray(mem)))(jnp.asarray(W))
    np.testing.assert_allclose(float(value), ref.separation_loss(W, mem), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_temperature_is_traced_and_a_traced_nonpositive_value_is_nan():
    w, mem = jnp.asarray(W, jnp.float32), jnp.asarray(MEM, jnp.float32)
    fn = jax.jit(lambda t: uhop.separation_loss(w, mem, temperature=t))
    assert np.isfinite(float(fn(2.0))) and float(fn(2.0)) != float(fn(3.0))
    assert np.isnan(float(fn(0.0))) and np.isnan(float(fn(-1.0)))
    assert fn._cache_size() == 1


def test_memory_stays_in_blocks_of_rows():
    """K = 10^4: the compiled loss and gradient hold blocks of rows, not the K x K pair matrix (400 MB)."""
    k, d, chunk = 10_000, 8, 256
    mem, w = jnp.ones((k, d)), jnp.eye(d)
    fn = jax.jit(jax.value_and_grad(lambda w: uhop.separation_loss(w, mem, chunk_size=chunk)))
    temp = fn.lower(w).compile().memory_analysis().temp_size_in_bytes
    assert temp < 8 * chunk * k * 4  # a few (chunk, K) float32 blocks
    assert temp < k * k * 4 / 4  # measured 53 MB; the pair matrix alone is 400 MB


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), r"separation_loss: temperature must be finite and > 0, got \[0.0\]"),
        (dict(temperature=-2.0), r"separation_loss: temperature must be finite and > 0, got \[-2.0\]"),
        (dict(temperature=jnp.ones(2)), r"separation_loss: temperature must be a scalar, got an array of shape"),
        (dict(loss="min"), r"separation_loss: loss must be one of \('average', 'max', 'deep'\), got 'min'"),
        (dict(chunk_size=0), r"separation_loss: chunk_size must be >= 1, got 0"),
        (dict(weight=jnp.ones((6, 4))), r"separation_loss: weight has width D=4 but the memories have D=5"),
        (dict(weight=jnp.ones((4, 5))), r"separation_loss: weight has F=4 < D=5 rows"),
        (dict(memories=jnp.ones((0, 5))), r"separation_loss: memories is an empty memory set \(K=0\)"),
        (dict(memories=jnp.ones((1, 5))), r"separation_loss: memories must hold at least 2 patterns .* got K=1"),
        (dict(memories=jnp.ones(5)), r"separation_loss: memories must have shape \(K, D\)"),
    ],
)
def test_bad_inputs(kwargs, message):
    args = dict(weight=jnp.asarray(W), memories=jnp.asarray(MEM))
    args.update(kwargs)
    weight, memories = args.pop("weight"), args.pop("memories")
    with pytest.raises((ValueError, TypeError), match=message):
        uhop.separation_loss(weight, memories, **args)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_memories_or_weight_give_nan_not_a_zeroed_row(loss, bad):
    mem, w = MEM.copy(), W.copy()
    mem[3, 1] = bad  # a zeroed row 3 would give a finite loss
    assert np.isnan(float(uhop.separation_loss(jnp.asarray(W), jnp.asarray(mem), loss=loss)))
    w[2, 4] = bad
    assert np.isnan(float(uhop.separation_loss(jnp.asarray(w), jnp.asarray(MEM), loss=loss)))
    feats = np.asarray(uhop.unit_features(jnp.asarray(W), jnp.asarray(mem)))
    assert np.isnan(feats[3]).any() and np.isfinite(np.delete(feats, 3, axis=0)).all()
    assert np.isnan(np.asarray(uhop.normalize_rows(jnp.asarray(w)))[2]).any()
