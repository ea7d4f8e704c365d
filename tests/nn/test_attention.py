"""Tests for dammem.nn.attention: Hopfield against jax.nn.dot_product_attention and nnx.MultiHeadAttention (same
parameters), every separation through its outputs, learnable beta and alpha, the decode cache, pooling, lookup and
errors. The layers' math is dammem.attention.hopfield_attention (tested against a float64 reference in
tests/test_attention.py); here each layer is compared with that function called on the layer's own projections."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dammem.attention import hopfield_attention
from dammem.nn import Hopfield, HopfieldLayer, HopfieldPooling


def _x(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape)


def _capture_weights(layer, *args, **kwargs):
    @nnx.capture(nnx.Intermediate)
    def run(layer, *args):
        return layer(*args, sow_weights=True, **kwargs)

    out, found = run(layer, *args)
    return out, found["attention_weights"][0]


def _jitted(fn, *args):
    """fn(*args) as one compiled program: a layer's eager call compiles each primitive on its own, which costs the
    suite more than one program per test (the layers' eager errors are tested eagerly below)."""
    return nnx.jit(fn)(*args)


def _reference(layer: Hopfield, inputs_q, inputs_k=None, inputs_v=None, **core_kwargs):
    """The pure core called on the layer's own projections, then its output projection."""
    inputs_k = inputs_q if inputs_k is None else inputs_k
    inputs_v = inputs_k if inputs_v is None else inputs_v
    q, k, v = layer.query(inputs_q), layer.key(inputs_k), layer.value(inputs_v)
    return layer.out(hopfield_attention(q, k, v, **core_kwargs))


# ----------------------------------------------------------------------------------------------------------------
# Equal to the attention it generalises
# ----------------------------------------------------------------------------------------------------------------


def test_pure_retrieval_equals_dot_product_attention():
    x, y = _x(0, (2, 5, 8)), _x(1, (2, 6, 8))
    layer = Hopfield(2, 8, use_projections=False)
    assert not nnx.state(layer, nnx.Param)  # no parameters at all
    split = lambda a: a.reshape(a.shape[:-1] + (2, 4))  # noqa: E731
    pad = jnp.arange(6) < jnp.array([6, 4])[:, None, None, None]  # (2, 1, 1, 6)
    z = _x(2, (2, 6, 6))  # values of another width (padded with a zero column for jax, which needs equal widths)

    def run(x, y, z, pad):
        padded = jnp.pad(z.reshape(2, 6, 2, 3), ((0, 0), (0, 0), (0, 0), (0, 1)))
        return [
            (layer(x, y), jax.nn.dot_product_attention(split(x), split(y), split(y)).reshape(2, 5, 8)),
            (layer(x, y, mask=pad),
             jax.nn.dot_product_attention(split(x), split(y), split(y), mask=pad).reshape(2, 5, 8)),
            (layer(x, y, z), jax.nn.dot_product_attention(split(x), split(y), padded)[..., :3].reshape(2, 5, 6)),
        ]  # fmt: skip

    for got, expected in jax.jit(run)(x, y, z, pad):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=2e-6)


def _mha_and_hopfield(**kwargs):
    mha = nnx.MultiHeadAttention(4, 12, qkv_features=16, out_features=10, decode=False, rngs=nnx.Rngs(0), **kwargs)
    hop = Hopfield(4, 12, qkv_features=16, out_features=10, rngs=nnx.Rngs(1), **kwargs)
    nnx.update(hop, nnx.state(mha, nnx.Param))
    return mha, hop


def test_projections_equal_multi_head_attention_with_copied_parameters():
    """Cross-attention with a random boolean mask, self-attention with flax's float causal mask, sowed weights."""
    mha, hop = _mha_and_hopfield()
    x, y = _x(3, (2, 7, 12)), _x(4, (2, 9, 12))
    mask = jax.random.bernoulli(jax.random.key(5), 0.7, (2, 4, 7, 9)).at[..., 0].set(True)
    causal = nnx.make_causal_mask(jnp.ones((2, 7)))  # float32, as flax builds masks

    def run(hop, mha, x, y):
        return (hop(x, y, mask=mask), mha(x, y, mask=mask),
                _capture_weights(mha, x, mask=causal), _capture_weights(hop, x, mask=causal))  # fmt: skip

    cross_hop, cross_mha, (out_mha, w_mha), (out_hop, w_hop) = _jitted(run, hop, mha, x, y)
    np.testing.assert_allclose(np.asarray(cross_hop), np.asarray(cross_mha), atol=2e-5)
    np.testing.assert_allclose(np.asarray(out_hop), np.asarray(out_mha), atol=2e-5)
    np.testing.assert_allclose(np.asarray(w_hop), np.asarray(w_mha), atol=1e-6)
    assert float(w_hop[0, 0, 0, 1]) == 0.0  # causal: the first position sees only itself


def test_normalize_qk_and_dropout_equal_multi_head_attention():
    mha, hop = _mha_and_hopfield(normalize_qk=True)
    x = _x(6, (2, 7, 12))
    np.testing.assert_allclose(np.asarray(hop(x)), np.asarray(mha(x)), atol=2e-5)
    kwargs = dict(dropout_rate=0.3)
    mha = nnx.MultiHeadAttention(4, 12, decode=False, rngs=nnx.Rngs(0, dropout=7), **kwargs)
    hop = Hopfield(4, 12, rngs=nnx.Rngs(1, dropout=7), **kwargs)
    nnx.update(hop, nnx.state(mha, nnx.Param))

    def run(hop, mha, x):
        return hop(x, deterministic=False), mha(x, deterministic=False), hop(x, deterministic=True), mha(
            x, deterministic=True)

    dropped, dropped_mha, kept, kept_mha = _jitted(run, hop, mha, x)
    np.testing.assert_allclose(np.asarray(dropped), np.asarray(dropped_mha), atol=2e-5)
    np.testing.assert_allclose(np.asarray(kept), np.asarray(kept_mha), atol=2e-5)
    assert np.max(np.abs(np.asarray(dropped - kept))) > 1e-2


# ----------------------------------------------------------------------------------------------------------------
# Separations
# ----------------------------------------------------------------------------------------------------------------

SEPARATIONS = [("softmax", {}), ("sparsemax", {}), ("entmax15", {}), ("entmax", {"alpha": 1.3})]


def test_every_separation_is_the_one_used():
    x = _x(7, (2, 6, 8))
    layers = [Hopfield(2, 8, separation=sep, beta=2.0, update_steps=2, rngs=nnx.Rngs(0), **extra)
              for sep, extra in SEPARATIONS]  # fmt: skip

    def run(layers, x):  # one program for the four layers
        return [(layer(x), _reference(layer, x, separation=sep, beta=2.0, update_steps=2, **extra))
                for layer, (sep, extra) in zip(layers, SEPARATIONS)]  # fmt: skip

    outs = []
    for out, expected in _jitted(run, layers, x):
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)
        outs.append(np.asarray(out))
    for i in range(len(outs)):
        for j in range(i):
            assert np.max(np.abs(outs[i] - outs[j])) > 1e-3, (SEPARATIONS[i][0], SEPARATIONS[j][0])


def test_sparsemax_weights_have_exact_zeros():
    layer = Hopfield(2, 8, separation="sparsemax", beta=3.0, rngs=nnx.Rngs(0))
    _, w = _capture_weights(layer, _x(8, (2, 6, 8)))
    assert w.shape == (2, 2, 6, 6)
    assert int(jnp.sum(w == 0.0)) > w.size // 4
    np.testing.assert_allclose(np.asarray(w.sum(-1)), 1.0, atol=1e-6)


def test_pooling_and_lookup_use_their_separation():
    x = _x(9, (2, 6, 8))
    pool = HopfieldPooling(2, 8, num_queries=3, out_features=5, separation="entmax15", rngs=nnx.Rngs(1))
    lookup = HopfieldLayer(2, 8, num_patterns=6, separate_targets=True, separation="sparsemax", rngs=nnx.Rngs(2))
    plain = HopfieldLayer(2, 8, num_patterns=6, rngs=nnx.Rngs(2))

    def run(pool, lookup, plain, x):
        return [
            (pool(x), _reference(pool.hopfield, pool.queries[...], x, separation="entmax15")),
            (lookup(x),
             _reference(lookup.hopfield, x, lookup.patterns[...], lookup.targets[...], separation="sparsemax")),
            (plain(x), _reference(plain.hopfield, x, plain.patterns[...])),  # the patterns are the keys and values
        ]  # fmt: skip

    results = _jitted(run, pool, lookup, plain, x)
    assert results[0][0].shape == (2, 3, 5)
    for out, expected in results:
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


def test_pooling_mask_hides_padding():
    x = _x(10, (2, 6, 8))
    pool = HopfieldPooling(2, 8, num_queries=2, separation="entmax15", rngs=nnx.Rngs(3))
    pad = jnp.arange(6)[None, None, None, :] < 4  # only the first 4 items count
    changed = x.at[:, 4:].set(100.0)
    masked, short = _jitted(lambda pool, a, b: (pool(a, mask=pad), pool(b)), pool, changed, x[:, :4])
    np.testing.assert_allclose(np.asarray(masked), np.asarray(short), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Learnable beta and alpha
# ----------------------------------------------------------------------------------------------------------------


def _loss(model, x):
    return jnp.sum(jnp.sin(3.0 * model(x)))


def test_learnable_alpha_stays_in_range_and_gets_gradients():
    x = _x(11, (2, 6, 8))
    layer = Hopfield(2, 8, separation="entmax", alpha=[1.2, 1.8], learn_alpha=True, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(np.asarray(layer.alpha), [1.2, 1.8], atol=1e-6)

    def run(layer, x):
        expected = _reference(layer, x, separation="entmax", alpha=jnp.array([1.2, 1.8]))
        return layer(x), expected, nnx.grad(_loss)(layer, x)

    out, expected, grads = _jitted(run, layer, x)
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)
    assert np.all(np.abs(np.asarray(grads["alpha_logit"][...])) > 1e-5)
    forward = nnx.jit(lambda layer, x: (layer.alpha, layer(x)))  # one program for the three logits
    for logit in (60.0, -60.0, 0.0):  # far beyond any training step: still inside (1, 2]
        layer.alpha_logit[...] = jnp.full((2,), logit)
        alpha, out = forward(layer, x)
        assert np.all((np.asarray(alpha) > 1.0) & (np.asarray(alpha) <= 2.0))
        assert np.all(np.isfinite(np.asarray(out)))


def test_learnable_beta_gets_gradients_and_reaches_its_head():
    x, y = _x(12, (2, 5, 8)), _x(13, (2, 6, 8))
    layer = Hopfield(2, 8, use_projections=False, beta=[6.0, 0.25], learn_beta=True, separation="sparsemax")
    np.testing.assert_allclose(np.asarray(layer.beta), [6.0, 0.25], rtol=1e-6)

    def run(layer, x, y):
        singles = [Hopfield(2, 8, use_projections=False, beta=beta, separation="sparsemax")(x, y)
                   for beta in (6.0, 0.25)]  # fmt: skip
        swapped = Hopfield(2, 8, use_projections=False, beta=[0.25, 6.0], separation="sparsemax")(x, y)
        return layer(x, y), singles, swapped, nnx.grad(lambda m: jnp.sum(jnp.sin(3.0 * m(x, y))))(layer)

    out, singles, swapped, grads = _jitted(run, layer, x, y)
    for head, single in enumerate(singles):
        np.testing.assert_allclose(np.asarray(out[..., 4 * head : 4 * head + 4]),
                                   np.asarray(single[..., 4 * head : 4 * head + 4]), atol=1e-5)  # fmt: skip
    assert np.max(np.abs(np.asarray(out - swapped)[..., :4])) > 0.1
    assert np.all(np.abs(np.asarray(grads["log_beta"][...])) > 1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("separation, steps", [("softmax", 1), ("sparsemax", 2)])
def test_decode_cache_equals_causal_computation(separation, steps):
    x = _x(14, (2, 6, 8))
    layer = Hopfield(2, 8, separation=separation, update_steps=steps, rngs=nnx.Rngs(0))
    full = _jitted(lambda layer, x: layer(x, is_causal=True), layer, x)
    layer.init_cache(x.shape)
    step = nnx.jit(lambda layer, x: layer(x, decode=True))  # one program for the six steps
    steps_out = [step(layer, x[:, i : i + 1]) for i in range(6)]
    np.testing.assert_allclose(np.asarray(jnp.concatenate(steps_out, axis=1)), np.asarray(full), atol=1e-5)
    assert int(layer.cache_index[...]) == 6


def test_decode_needs_a_cache():
    layer = Hopfield(2, 8, decode=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="Hopfield: autoregressive cache not initialised, call init_cache"):
        layer(_x(0, (2, 1, 8)))


# ----------------------------------------------------------------------------------------------------------------
# Training under nnx.jit
# ----------------------------------------------------------------------------------------------------------------


def test_jitted_training_step_lowers_the_loss():
    import optax

    x = _x(15, (4, 6, 8))
    target = jnp.tanh(_x(16, (4, 6, 8)))
    model = Hopfield(2, 8, separation="sparsemax", learn_beta=True, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - target) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(25)]
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match=r"Hopfield: qkv_features \(10\) must be divisible by num_heads \(3\)"):
        Hopfield(3, 8, qkv_features=10, rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: in_features \(8\) must be divisible by num_heads \(3\)"):
        Hopfield(3, 8, use_projections=False)
    with pytest.raises(ValueError, match="Hopfield: unknown separation 'relu'"):
        Hopfield(2, 8, separation="relu", rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: alpha must lie in \(1, 2\], got \[2.5\]"):
        Hopfield(2, 8, separation="entmax", alpha=2.5, rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: alpha must lie in \(1, 2\) \(a learnable alpha"):
        Hopfield(2, 8, separation="entmax", alpha=2.0, learn_alpha=True, rngs=rngs)
    with pytest.raises(ValueError, match="Hopfield: separation='entmax' needs alpha"):
        Hopfield(2, 8, separation="entmax", rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: learn_alpha is only used with a separation that takes alpha"):
        Hopfield(2, 8, separation="sparsemax", learn_alpha=True, rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: beta must be a scalar or have one value per head, shape \(2,\)"):
        Hopfield(2, 8, beta=[1.0, 2.0, 3.0], rngs=rngs)
    with pytest.raises(ValueError, match="Hopfield: beta must be finite and > 0"):
        Hopfield(2, 8, beta=0.0, rngs=rngs)
    with pytest.raises(ValueError, match="Hopfield: update_steps must be >= 1, got 0"):
        Hopfield(2, 8, update_steps=0, rngs=rngs)
    with pytest.raises(ValueError, match="Hopfield: tol must be None or a finite float >= 0, got -0.1"):
        Hopfield(2, 8, update_steps=3, tol=-0.1, rngs=rngs)
    with pytest.raises(ValueError, match="Hopfield: rngs is required"):
        Hopfield(2, 8)
    with pytest.raises(ValueError, match="Hopfield: qkv_features=16 needs projections"):
        Hopfield(2, 8, qkv_features=16, use_projections=False)
    with pytest.raises(ValueError, match="HopfieldPooling: num_queries must be >= 1"):
        HopfieldPooling(2, 8, num_queries=0, rngs=rngs)
    layer = Hopfield(2, 8, rngs=rngs)
    x = _x(0, (2, 5, 8))
    with pytest.raises(ValueError, match=r"Hopfield: mask of shape \(5, 4\) does not broadcast to the attention "
                                         r"weights' shape \(batch\.\.\., num_heads, q_length, kv_length\) = "
                                         r"\(2, 2, 5, 5\)"):  # fmt: skip
        layer(x, mask=jnp.ones((5, 4), bool))
    with pytest.raises(ValueError, match="Hopfield: inputs_q has 7 features, expected in_features=8"):
        layer(x[..., :7])
    with pytest.raises(ValueError, match="Hopfield: inputs_k cannot be None when inputs_v is given"):
        layer(x, None, x)
    with pytest.raises(ValueError, match="Hopfield: dropout_rate > 0 needs deterministic"):
        Hopfield(2, 8, dropout_rate=0.1, rngs=rngs)(x)
