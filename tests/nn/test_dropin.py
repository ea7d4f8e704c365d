"""The drop-in contract of dammem.nn.Hopfield for flax.nnx.MultiHeadAttention, masks that always hold, and the
errors of the pooling and lookup layers.

The contract test reads nnx.MultiHeadAttention's constructor and call signatures from the installed flax and passes
every argument (positional ones positionally) to both classes: an argument flax adds has no value in the tables
below and fails the test until Hopfield takes it too.
"""

from __future__ import annotations

import collections
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.nnx.nn import dtypes
from jax import lax

from dammem.attention import hopfield_attention
from dammem.nn import Hopfield, HopfieldLayer, HopfieldPooling, MemoryState

CALLS: collections.Counter = collections.Counter()


def _counting(name, fn):
    def wrapped(*args, **kwargs):
        CALLS[name] += 1
        return fn(*args, **kwargs)

    return wrapped


class _CountingDot:
    """A dot_general class (flax's ``*_dot_general_cls``): instantiated per call, counts its uses."""

    def __call__(self, *args, **kwargs):
        CALLS["out_dot_general_cls"] += 1
        return lax.dot_general(*args, **kwargs)


def _init_arguments(attention_fn: bool) -> dict:
    """A value for every argument of nnx.MultiHeadAttention.__init__ (grouped-query heads, qk normalisation,
    a dropout rate that deterministic=True switches off, counted promote and dot_general functions, metadata)."""
    values = dict(
        num_heads=4, in_features=12, qkv_features=16, out_features=10, num_kv_heads=2, in_kv_features=6,
        dtype=jnp.float32, param_dtype=jnp.float32, broadcast_dropout=False, dropout_rate=0.25, deterministic=True,
        precision="highest", kernel_init=nnx.initializers.normal(0.3), out_kernel_init=nnx.initializers.normal(0.2),
        bias_init=nnx.initializers.normal(0.1), out_bias_init=nnx.initializers.normal(0.05), use_bias=True,
        attention_fn=nnx.dot_product_attention, decode=False, normalize_qk=True,
        qkv_promote_dtype=_counting("qkv_promote_dtype", dtypes.promote_dtype),
        out_promote_dtype=_counting("out_promote_dtype", dtypes.promote_dtype),
        ln_promote_dtype=_counting("ln_promote_dtype", dtypes.promote_dtype),
        qkv_dot_general=_counting("qkv_dot_general", lax.dot_general), out_dot_general=None,
        qkv_dot_general_cls=None, out_dot_general_cls=_CountingDot, rngs=None, keep_rngs=True,
        kernel_metadata={"tag": "kernel"}, out_kernel_metadata={"tag": "out_kernel"}, bias_metadata={"tag": "bias"},
        out_bias_metadata={"tag": "out_bias"}, query_ln_scale_metadata={"tag": "query_ln"},
        key_ln_scale_metadata={"tag": "key_ln"},
    )  # fmt: skip
    if not attention_fn:
        del values["attention_fn"]  # each class's own default: flax's dot_product_attention, hopfield_attention
    return values


def _call_arguments() -> dict:
    x = jax.random.normal(jax.random.key(0), (2, 5, 12))
    y = jax.random.normal(jax.random.key(1), (2, 7, 6))
    z = jax.random.normal(jax.random.key(2), (2, 7, 6))
    mask = (jax.random.uniform(jax.random.key(3), (2, 1, 5, 7)) < 0.6).at[..., 0].set(True)
    return dict(
        inputs_q=x, inputs_k=y, inputs_v=z, mask=mask, deterministic=True, rngs=nnx.Rngs(dropout=4),
        sow_weights=True, decode=False, is_causal=True, out_sharding=None, qkv_sharding=None,
    )  # fmt: skip


def _split(fn, values: dict) -> tuple[list, dict]:
    """values as fn's positional arguments (in its order) and keywords; a missing name is a KeyError."""
    params = [p for name, p in inspect.signature(fn).parameters.items() if name != "self"]
    args = [values[p.name] for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.name in values]
    kwargs = {p.name: values[p.name] for p in params if p.kind is p.KEYWORD_ONLY and p.name in values}
    missing = {p.name for p in params} - set(values)
    return args, kwargs, missing


def _build(cls, init: dict):
    args, kwargs, _ = _split(nnx.MultiHeadAttention.__init__, {**init, "rngs": nnx.Rngs(0)})
    return cls(*args, **kwargs)


def _run(layer, call: dict):
    args, kwargs, _ = _split(nnx.MultiHeadAttention.__call__, call)

    @nnx.jit
    @nnx.capture(nnx.Intermediate)
    def run(layer, *args):
        return layer(*args, **kwargs)

    out, found = run(layer, *args)
    return out, found["attention_weights"][0]


@pytest.mark.parametrize("attention_fn", [True, False], ids=["flax_attention_fn", "hopfield_read_out"])
def test_every_argument_of_multi_head_attention_means_the_same(attention_fn):
    init, call = _init_arguments(attention_fn), _call_arguments()
    for fn, values in ((nnx.MultiHeadAttention.__init__, init), (nnx.MultiHeadAttention.__call__, call)):
        missing = _split(fn, {**values, "attention_fn": None, "rngs": None})[2]
        assert not missing, f"flax added arguments this test (and Hopfield) do not know: {sorted(missing)}"
        ours = inspect.signature(getattr(Hopfield, fn.__name__)).parameters
        theirs = inspect.signature(fn).parameters
        positional = [n for n, p in theirs.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert [n for n, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == positional  # same order
        assert set(theirs) <= set(ours)

    reference = _build(nnx.MultiHeadAttention, init)
    CALLS.clear()
    layer = _build(Hopfield, init)
    nnx.update(layer, nnx.state(reference, nnx.Param))  # copied weights (the same draws anyway)
    for path, variable in nnx.to_flat_state(nnx.state(reference, nnx.Param)):
        ours = nnx.to_flat_state(nnx.state(layer, nnx.Param))
        assert dict(ours)[path].get_metadata()["tag"] == variable.get_metadata()["tag"]
    out, weights = _run(layer, call)
    for name in ("qkv_promote_dtype", "out_promote_dtype", "ln_promote_dtype", "qkv_dot_general",
                 "out_dot_general_cls"):  # fmt: skip
        assert CALLS[name] > 0, name
    expected, expected_weights = _run(reference, call)
    # float32 at precision="highest": sums over 12 input features, 7 keys and 16 head features: ~1e-6
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=2e-5)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(expected_weights), atol=2e-6)
    assert np.all(np.asarray(weights)[..., np.triu_indices(5, 1, 7)[0], np.triu_indices(5, 1, 7)[1]] == 0.0)


@pytest.mark.slow
def test_attention_fn_reads_out_the_state_after_the_update_steps():
    """With attention_fn, the update steps run in hopfield_attention (softmax) and attention_fn reads out from the
    final state: with flax's dot_product_attention that is the layer without attention_fn. A function of
    jax.nn.dot_product_attention's convention gets beta as its scale."""
    x = jax.random.normal(jax.random.key(5), (2, 4, 8))
    mask = jnp.tril(jnp.ones((4, 4), bool)).at[2, 1].set(False)
    plain = Hopfield(2, 8, update_steps=3, rngs=nnx.Rngs(0))
    with_fn = Hopfield(2, 8, update_steps=3, attention_fn=nnx.dot_product_attention, rngs=nnx.Rngs(0))
    jax_fn = Hopfield(2, 8, beta=0.7, attention_fn=jax.nn.dot_product_attention, rngs=nnx.Rngs(0))
    scaled = Hopfield(2, 8, beta=0.7, rngs=nnx.Rngs(0))
    outs = nnx.jit(lambda a, b, c, d: [m(x, mask=mask) for m in (a, b, c, d)])(plain, with_fn, jax_fn, scaled)
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)  # float32, three softmax steps over 4 keys
    np.testing.assert_allclose(outs[2], outs[3], atol=1e-5)
    with pytest.raises(ValueError, match="Hopfield: attention_fn computes the read-out .* separation='sparsemax'"):
        Hopfield(2, 8, separation="sparsemax", attention_fn=nnx.dot_product_attention, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="Hopfield: an attention_fn of flax's convention applies its own scale"):
        Hopfield(2, 8, beta=2.0, attention_fn=nnx.dot_product_attention, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="Hopfield: attention_fn must take flax's keywords"):
        Hopfield(2, 8, attention_fn=lambda q, k, v: q, rngs=nnx.Rngs(0))


# ----------------------------------------------------------------------------------------------------------------
# Masks always hold
# ----------------------------------------------------------------------------------------------------------------


def _careless(scores, axis=-1, where=None):
    """A separation that ignores where."""
    return jax.nn.softmax(scores, axis=axis)


def test_causal_and_mask_both_hold_with_a_separation_that_ignores_where():
    """is_causal and the caller's mask together, with a callable that ignores ``where``, in Hopfield, pooling and
    lookup: no weight on a future key or a hidden key, and the rows equal softmax over the visible keys."""
    x = jax.random.normal(jax.random.key(6), (2, 4, 8))
    hidden = jnp.ones((2, 1, 4, 4), bool).at[:, :, 3, 1].set(False).at[1, :, 2, 0].set(False)
    layer = Hopfield(2, 8, separation=_careless, update_steps=2, rngs=nnx.Rngs(0))
    pool = HopfieldPooling(2, 8, num_queries=3, separation=_careless, rngs=nnx.Rngs(0))
    lookup = HopfieldLayer(2, 8, num_patterns=4, separation=_careless, rngs=nnx.Rngs(0))
    pad = jnp.ones((2, 1, 1, 4), bool).at[1, ..., 3].set(False)

    def weights(module, **kwargs):
        @nnx.capture(nnx.Intermediate)
        def run(module):
            return module(x, sow_weights=True, **kwargs)

        found = run(module)[1]
        return (found if isinstance(module, Hopfield) else found["hopfield"])["attention_weights"][0]

    found = nnx.jit(
        lambda a, b, c: [weights(a, mask=hidden, is_causal=True), weights(b, mask=pad), weights(c, mask=pad)]
    )(layer, pool, lookup)
    w, w_pool, w_lookup = (np.asarray(a) for a in found)
    visible = np.asarray(hidden & jnp.tril(jnp.ones((4, 4), bool)))
    assert np.all(w[~np.broadcast_to(visible, w.shape)] == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert np.all(w_pool[1, ..., 3] == 0.0) and np.all(w_lookup[1, ..., 3] == 0.0)


@pytest.mark.slow
def test_decode_honours_the_callers_mask_and_the_cache():
    """Decoding one position at a time (grouped-query heads, a separation that ignores where) with a mask that hides
    key 1 from every later query equals the full causal computation with that mask."""
    x = jax.random.normal(jax.random.key(7), (2, 4, 8))
    mask = jnp.ones((4, 4), bool).at[2:, 1].set(False)
    layer = Hopfield(4, 8, num_kv_heads=2, separation=_careless, rngs=nnx.Rngs(0))

    def decode(layer):
        layer.init_cache(x.shape)
        return jnp.concatenate([layer(x[:, i : i + 1], mask=mask[i : i + 1], decode=True) for i in range(4)], axis=1)

    full, steps = nnx.jit(lambda m: (m(x, mask=mask, is_causal=True), decode(m)))(layer)
    np.testing.assert_allclose(np.asarray(steps), np.asarray(full), atol=1e-5)  # float32, 4 keys
    unmasked = nnx.jit(lambda m: m(x, is_causal=True))(layer)
    assert np.max(np.abs(np.asarray(unmasked - full))) > 1e-3  # the mask changes the result


# ----------------------------------------------------------------------------------------------------------------
# Errors name the class and the caller's argument
# ----------------------------------------------------------------------------------------------------------------


def test_errors_name_the_layer_and_the_callers_argument():
    rngs = nnx.Rngs(0)
    pool = HopfieldPooling(2, 16, num_queries=2, rngs=rngs)
    lookup = HopfieldLayer(2, 16, num_patterns=3, rngs=rngs)
    layer = Hopfield(2, 16, rngs=rngs)
    x = jnp.ones((2, 5, 16))
    with pytest.raises(ValueError, match="HopfieldPooling: inputs has 15 features, expected 16"):
        pool(x[..., :15])
    with pytest.raises(ValueError, match=r"HopfieldPooling: inputs must have shape .*, got \(16,\)"):
        pool(x[0, 0])
    with pytest.raises(ValueError, match="HopfieldLayer: inputs has 15 features, expected 16"):
        lookup(x[..., :15])
    with pytest.raises(ValueError, match=r"HopfieldLayer: inputs must have shape .*, got \(16,\)"):
        lookup(x[0, 0])
    with pytest.raises(ValueError, match=r"HopfieldLayer: mask of shape \(7,\) does not broadcast"):
        lookup(x, mask=jnp.ones(7, bool))
    with pytest.raises(ValueError, match=r"HopfieldPooling: qkv_features \(10\) must be divisible by num_heads"):
        HopfieldPooling(3, 16, qkv_features=10, rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: inputs_q must have shape .*, got \(16,\)"):
        layer(x[0, 0])
    with pytest.raises(ValueError, match=r"Hopfield: the batch axes of inputs_q \(2, 5, 16\), inputs_k \(3, 5, 16\)"):
        layer(x, jnp.ones((3, 5, 16)))
    with pytest.raises(ValueError, match="Hopfield: num_heads .4. must be divisible by num_kv_heads .3."):
        Hopfield(4, 16, None, None, 3, rngs=rngs)
    with pytest.raises(ValueError, match=r"Hopfield: update_steps=None .* needs tol"):
        Hopfield(2, 16, update_steps=None, rngs=rngs)


# ----------------------------------------------------------------------------------------------------------------
# beta and alpha, trainable
# ----------------------------------------------------------------------------------------------------------------


def test_beta_and_alpha_are_arrays_on_every_layer_and_fixed_patterns_are_not_params():
    rngs = nnx.Rngs(0)
    pool = HopfieldPooling(2, 8, separation="sparsemax", beta=[0.5, 2.0], trainable=False, rngs=rngs)
    lookup = HopfieldLayer(2, 8, 3, separation="entmax", alpha=1.3, learn_beta=True, separate_targets=True,
                           trainable=False, rngs=rngs)  # fmt: skip
    layer = Hopfield(2, 8, rngs=rngs)
    assert isinstance(layer.beta, jax.Array) and float(layer.beta) == pytest.approx(0.5)
    np.testing.assert_allclose(np.asarray(pool.beta), [0.5, 2.0])
    assert float(pool.alpha) == 2.0 and float(layer.alpha) == 1.0
    assert float(lookup.alpha) == pytest.approx(1.3) and lookup.beta.shape == (2,)
    assert isinstance(pool.queries, MemoryState) and isinstance(lookup.targets, MemoryState)
    params = nnx.state(lookup, nnx.Param)
    assert "patterns" not in params and "targets" not in params and "queries" not in nnx.state(pool, nnx.Param)


# ----------------------------------------------------------------------------------------------------------------
# The layer's energy
# ----------------------------------------------------------------------------------------------------------------


def _lse_energy(xi, keys, beta):
    """1/2 <xi, xi> - lse(beta, K xi) in float64 (Ramsauer et al. (2021), eq. 2, without its constants)."""
    z = beta * keys @ xi
    top = z.max()
    return 0.5 * xi @ xi - (top + np.log(np.sum(np.exp(z - top)))) / beta


@pytest.mark.parametrize(
    "sparse_layer",
    [
        pytest.param(lambda: HopfieldPooling(2, 8, num_queries=3, separation="sparsemax", beta=3.0, rngs=nnx.Rngs(1)),
                     id="pooling_sparsemax", marks=pytest.mark.slow),
        pytest.param(lambda: HopfieldLayer(2, 8, 6, separation="entmax", alpha=[1.3, 1.7], learn_alpha=True,
                                           beta=3.0, rngs=nnx.Rngs(2)),
                     id="lookup_learned_entmax", marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_energy_is_ramsauers_and_every_update_step_lowers_it(sparse_layer):
    """Softmax, grouped-query heads: Hopfield.energy after t updates equals a float64 loop over the projected
    patterns; and for sparse separations (pooling with sparsemax; lookup with a learned per-head entmax alpha)
    no step raises it."""
    x, y = jax.random.normal(jax.random.key(8), (2, 3, 8)), jax.random.normal(jax.random.key(9), (2, 5, 8))
    layer = Hopfield(4, 8, num_kv_heads=2, beta=[0.5, 1.0, 2.0, 4.0], rngs=nnx.Rngs(0))
    sparse_layer = sparse_layer()
    sparse_input = y if isinstance(sparse_layer, HopfieldPooling) else x
    run = nnx.jit(lambda a, b: [(a.energy(x, y, steps=t), b.energy(sparse_input, steps=t)) for t in range(4)])
    found = run(layer, sparse_layer)
    energies = np.stack([np.asarray(e[0]) for e in found])  # (steps, B, H, Q)
    sparse = np.stack([np.asarray(e[1]) for e in found])  # (steps, B, H, Q)
    q = np.asarray(layer.query(x), np.float64)
    k = np.asarray(layer.key(y), np.float64)
    beta = [0.5, 1.0, 2.0, 4.0]
    for b in range(2):
        for h in range(4):
            keys = k[b, :, h // 2]
            for i in range(3):
                xi = q[b, i, h]
                for t in range(4):
                    # float32 projections and steps, energies of unit scale: ~1e-5
                    np.testing.assert_allclose(energies[t, b, h, i], _lse_energy(xi, keys, beta[h]), atol=1e-4)
                    z = beta[h] * keys @ xi
                    p = np.exp(z - z.max())
                    xi = keys.T @ (p / p.sum())
    steps = np.diff(sparse, axis=0)
    assert np.all(steps <= 1e-5)  # float32 energies of unit scale: a step never raises one by more than rounding
    assert np.any(steps < -1e-3)  # and they do move
    with pytest.raises(ValueError, match="Hopfield.energy: a callable separation has no energy"):
        Hopfield(2, 8, separation=_careless, rngs=nnx.Rngs(0)).energy(x)


# ----------------------------------------------------------------------------------------------------------------
# hopfield-layers options
# ----------------------------------------------------------------------------------------------------------------


def _layer_norm(x, eps=1e-6):
    """LayerNorm without affine parameters (or at their initial scale 1, bias 0), float64."""
    x = np.asarray(x, np.float64)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def test_hflayers_options_match_the_core_on_normalised_inputs_with_appended_patterns():
    """Normalised state / stored / projected patterns (affine and not), a learned bias pattern and the zero
    association appended (visible through the caller's mask), no output projection: equals hopfield_attention on
    the projections of the normalised inputs with the two patterns appended."""
    x, y = jax.random.normal(jax.random.key(10), (2, 3, 8)) * 3 + 1, jax.random.normal(jax.random.key(11), (2, 5, 8))
    mask = jnp.ones((2, 1, 3, 5), bool).at[1, :, :, :].set(False)  # batch 1 hides every key but the appended two
    layer = Hopfield(2, 8, separation="sparsemax", beta=2.0, normalize_state_pattern=True,
                     normalize_stored_pattern=True, normalize_stored_pattern_affine=False,
                     normalize_pattern_projection=True, concat_bias_pattern=True, add_zero_association=True,
                     disable_out_projection=True, rngs=nnx.Rngs(0))  # fmt: skip
    assert layer.stored_pattern_norm.scale is None and layer.state_pattern_norm.scale is not None
    out, weights = nnx.jit(
        lambda m: _capture_weights_of(m, x, y, mask=mask)
    )(layer)  # fmt: skip
    xs, ys = (jnp.asarray(_layer_norm(a), jnp.float32) for a in (x, y))
    q, k, v = layer.query(xs), layer.key(ys), layer.value(ys)
    extra_k = jnp.stack([layer.bias_key[...], jnp.zeros((2, 4))])
    extra_v = jnp.stack([layer.bias_value[...], jnp.zeros((2, 4))])
    k = jnp.concatenate([k, jnp.broadcast_to(extra_k, (2, 2, 2, 4))], axis=1)
    v = jnp.concatenate([v, jnp.broadcast_to(extra_v, (2, 2, 2, 4))], axis=1)
    full = jnp.concatenate([jnp.broadcast_to(mask, (2, 2, 3, 5)), jnp.ones((2, 2, 3, 2), bool)], axis=-1)
    expected, expected_w = hopfield_attention(q, k, v, beta=2.0, separation="sparsemax", mask=full,
                                              return_weights=True)  # fmt: skip
    assert out.shape == (2, 3, 8)  # heads concatenated, no projection
    # float32 LayerNorm against float64 (eps 1e-6 at unit variance), sums over 8 features and 7 keys: ~1e-5
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected).reshape(2, 3, 8), atol=1e-4)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(expected_w), atol=1e-4)
    assert np.all(np.asarray(weights)[1, ..., :5] == 0.0) and np.all(np.asarray(weights)[1, ..., 5:].sum(-1) > 0.99)
    with pytest.raises(ValueError, match="Hopfield: out_features=4 needs the output projection"):
        Hopfield(2, 8, out_features=4, disable_out_projection=True, rngs=nnx.Rngs(0))


def _capture_weights_of(layer, *args, **kwargs):
    @nnx.capture(nnx.Intermediate)
    def run(layer):
        return layer(*args, sow_weights=True, **kwargs)

    out, found = run(layer)
    return out, found["attention_weights"][0]


def test_static_patterns_are_taken_as_they_are():
    """stored_pattern_as_static and pattern_projection_as_static: the keys and values are the inputs split into
    heads (no key/value projection, no parameters for them); the query is still projected."""
    x, y = jax.random.normal(jax.random.key(12), (2, 3, 6)), jax.random.normal(jax.random.key(13), (2, 5, 8))
    layer = Hopfield(2, 6, qkv_features=8, in_kv_features=8, stored_pattern_as_static=True,
                     pattern_projection_as_static=True, separation="entmax15", rngs=nnx.Rngs(0))  # fmt: skip
    assert layer.key is None and layer.value is None and layer.query is not None
    out = nnx.jit(lambda m: m(x, y))(layer)
    heads = y.reshape(2, 5, 2, 4)
    expected = layer.out(hopfield_attention(layer.query(x), heads, heads, beta=0.5, separation="entmax15"))
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)  # float32, the same operations
    with pytest.raises(ValueError, match=r"Hopfield: stored_pattern_as_static=True .* in_kv_features=6 must equal"):
        Hopfield(2, 6, qkv_features=8, stored_pattern_as_static=True, rngs=nnx.Rngs(0))
