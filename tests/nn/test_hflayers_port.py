"""Porting hopfield-layers (``hflayers``, Ramsauer et al. 2021) configurations to dammem's layers, checked against
an independent float64 NumPy forward pass of hflayers' ``Hopfield`` (``tests/nn/hflayers_reference.py``): the
options spelled the same, ``pattern_projection_as_connected``, per-head update limits and ``association_activation``
included.

The spelling differences these tests pin down: hflayers' masks are True = ignore, dammem's True = attend;
hflayers' ``update_steps_max=n`` computes up to ``n + 1`` associations, dammem's ``update_steps=n + 1``;
``scaling`` is ``beta``; ``stored_pattern``, ``state_pattern``, ``pattern_projection`` are ``inputs_k``,
``inputs_q``, ``inputs_v``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dammem.attention import hopfield_attention
from dammem.nn import Hopfield, HopfieldLayer, HopfieldPooling
from tests.nn.hflayers_reference import HflayersParams, hopfield_forward, layer_norm

RNG = np.random.default_rng(20)
N, L, S, E = 2, 3, 5, 6
STATE = RNG.standard_normal((N, L, E))
STORED = RNG.standard_normal((N, S, E))
PROJECTION = RNG.standard_normal((N, S, E))
PADDING = np.array([[False, False, True, False, False], [False, False, False, False, True]])  # hflayers: True = ignore
ASSOCIATION = np.zeros((L, S), bool)
ASSOCIATION[0, 1] = True  # the first query may not see the second stored pattern


def _f32(x):
    return jnp.asarray(x, jnp.float32)


def _params(layer: Hopfield) -> HflayersParams:
    """The reference's parameters read from a dammem ``Hopfield`` with projections: kernels (in, H, D) -> (in, H*D),
    the connected value kernel (H, D, H, D) -> (H*D, H*D), the output kernel (H, D, out) -> (H*D, out); None for an
    input taken as it is (static)."""

    def flat(linear):
        if linear is None:
            return None, None
        kernel = np.asarray(linear.kernel[...], np.float64)
        bias = None if linear.bias is None else np.asarray(linear.bias[...], np.float64).reshape(-1)
        return kernel.reshape(int(np.prod(linear.in_features)), -1), bias

    (w_q, b_q), (w_k, b_k), (w_v, b_v), (w_o, b_o) = (flat(m) for m in (layer.query, layer.key, layer.value, layer.out))
    return HflayersParams(layer.num_heads, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o)


def _attend(padding=None, association=None):
    """hflayers' masks (True = ignore) as one dammem mask (True = attend), broadcastable to (N, H, L, S)."""
    ignore = np.zeros((1, 1, 1, 1), bool)
    if padding is not None:
        ignore = ignore | padding[:, None, None, :]
    if association is not None:
        ignore = ignore | association[None, None]
    return jnp.asarray(~ignore)


@nnx.jit
def _run(layer, q, k, v, mask):
    @nnx.capture(nnx.Intermediate)
    def call(m):
        return m(q, k, v, mask=mask, sow_weights=True)

    out, found = call(layer)
    return out, found["attention_weights"][0]


# ----------------------------------------------------------------------------------------------------------------
# What dammem spells today: projections, beta, a fixed number of update steps, masks
# ----------------------------------------------------------------------------------------------------------------


def test_plain_hopfield_with_update_steps_and_masks_matches_hflayers():
    """hflayers ``Hopfield(input_size=6, hidden_size=4, output_size=5, num_heads=2, scaling=0.7,
    update_steps_max=2, normalize_*=False)`` with a padding mask and an association mask is dammem's
    ``Hopfield(2, 6, qkv_features=8, out_features=5, beta=0.7, update_steps=3)`` with the masks inverted."""
    layer = Hopfield(2, E, qkv_features=8, out_features=5, beta=0.7, update_steps=3, rngs=nnx.Rngs(0))
    want, want_xi, associations = hopfield_forward(
        _params(layer), STORED, STATE, PROJECTION, scaling=0.7, update_steps_max=2, update_steps_eps=1e-12,
        stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION,
    )  # fmt: skip
    assert associations == 3
    got, xi = _run(layer, _f32(STATE), _f32(STORED), _f32(PROJECTION), _attend(PADDING, ASSOCIATION))
    np.testing.assert_allclose(np.asarray(xi), want_xi, atol=2e-6)
    assert np.all(np.asarray(xi)[0, :, :, 2] == 0) and np.all(np.asarray(xi)[:, :, 0, 1] == 0)  # masks held
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    # The offset matters: update_steps=2 (one association fewer) is another output.
    short, _, _ = hopfield_forward(_params(layer), STORED, STATE, PROJECTION, scaling=0.7, update_steps_max=1,
                                   stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION)  # fmt: skip
    assert np.abs(short - want).max() > 1e-3


def test_hflayers_until_convergence_takes_the_steps_dammem_is_given():
    """hflayers' ``update_steps_max=None`` stops when the association matrix moves by at most ``update_steps_eps``;
    dammem's layer with that many separations computes the same output (here 4 or more associations)."""
    layer = Hopfield(1, E, beta=0.4, rngs=nnx.Rngs(1))
    params = _params(layer)
    want, want_xi, associations = hopfield_forward(params, STORED, STATE, PROJECTION, scaling=0.4,
                                                   update_steps_max=None, update_steps_eps=1e-5)  # fmt: skip
    assert associations >= 4
    ported = Hopfield(1, E, beta=0.4, update_steps=associations, rngs=nnx.Rngs(1))
    got, xi = _run(ported, _f32(STATE), _f32(STORED), _f32(PROJECTION), None)
    np.testing.assert_allclose(np.asarray(xi), want_xi, atol=2e-6)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_pooling_and_lookup_layers_match_hflayers():
    """``HopfieldPooling(quantity=P)``: the learned queries are the state patterns (hflayers flattens the P outputs);
    ``HopfieldLayer(quantity=M, lookup_weights_as_separated=True)``: learned stored patterns and targets."""
    pool = HopfieldPooling(2, E, num_queries=3, qkv_features=4, beta=0.9, update_steps=2, rngs=nnx.Rngs(2))
    queries = np.broadcast_to(np.asarray(pool.queries[...], np.float64), (N, 3, E))
    want, _, _ = hopfield_forward(_params(pool.hopfield), STORED, queries, STORED, scaling=0.9, update_steps_max=1,
                                  stored_pattern_padding_mask=PADDING)  # fmt: skip
    got = pool(_f32(STORED), mask=_attend(PADDING))
    np.testing.assert_allclose(np.asarray(got).reshape(N, -1), want.reshape(N, -1), rtol=1e-5, atol=1e-5)

    lookup = HopfieldLayer(2, E, num_patterns=4, separate_targets=True, beta=1.3, rngs=nnx.Rngs(3))
    patterns = np.broadcast_to(np.asarray(lookup.patterns[...], np.float64), (N, 4, E))
    targets = np.broadcast_to(np.asarray(lookup.targets[...], np.float64), (N, 4, E))
    want, _, _ = hopfield_forward(_params(lookup.hopfield), patterns, STATE, targets, scaling=1.3)
    np.testing.assert_allclose(np.asarray(lookup(_f32(STATE))), want, rtol=1e-5, atol=1e-5)


def test_the_reference_follows_the_documented_equations():
    """Checks of the reference itself, by hand: LayerNorm moments, the zero association's weight, the static
    execution's default scaling of 1, one association for ``update_steps_max=0``."""
    y = layer_norm(STATE, (np.full(E, 2.0), np.full(E, 0.5)))
    np.testing.assert_allclose(y.mean(-1), 0.5, atol=1e-12)
    np.testing.assert_allclose(((y - 0.5) / 2.0).var(-1), 1.0 / (1.0 + 1e-5 / STATE.var(-1)), rtol=1e-9)
    static = HflayersParams(num_heads=1)  # every input static, no projections: plain retrieval with beta = 1
    out, xi, associations = hopfield_forward(static, STORED, STATE, PROJECTION, add_zero_association=True)
    assert associations == 1
    scores = np.concatenate([STATE @ np.swapaxes(STORED, 1, 2), np.zeros((N, L, 1))], axis=-1)
    weights = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(xi[:, 0], weights, rtol=1e-12)
    np.testing.assert_allclose(out, weights[..., :S] @ PROJECTION, rtol=1e-12)


def test_a_static_configuration_until_convergence_ports_to_hopfield_attention():
    """hflayers ``Hopfield(stored/state/pattern_projection_as_static=True, disable_out_projection=True,
    normalize_*_affine=False, add_zero_association=True, update_steps_max=None)`` (plain retrieval, beta 1) is, today,
    a non-affine LayerNorm of each input, a zero stored pattern appended to the keys and values, and
    ``hopfield_attention(update_steps=None, tol=...)``: both iterate to the same fixed point."""
    static = HflayersParams(num_heads=1, norm_stored="plain", norm_state="plain", norm_projection="plain")
    state = 2.0 * STATE  # a scale at which the update takes several associations to converge
    want, _, associations = hopfield_forward(static, STORED, state, PROJECTION, add_zero_association=True,
                                             update_steps_max=None, update_steps_eps=1e-7)  # fmt: skip
    assert associations >= 3
    norm = nnx.LayerNorm(E, use_scale=False, use_bias=False, epsilon=1e-5, rngs=nnx.Rngs(0))
    zero = jnp.zeros((N, 1, E))
    keys = jnp.concatenate([norm(_f32(STORED)), zero], axis=1)[:, :, None]  # (N, S + 1, 1 head, E)
    values = jnp.concatenate([norm(_f32(PROJECTION)), zero], axis=1)[:, :, None]
    got = hopfield_attention(norm(_f32(state))[:, :, None], keys, values, beta=1.0, update_steps=None, tol=1e-7)
    np.testing.assert_allclose(np.asarray(got[:, :, 0]), want, atol=1e-4)
    one_step = hopfield_attention(norm(_f32(state))[:, :, None], keys, values, beta=1.0)
    assert np.abs(np.asarray(one_step[:, :, 0]) - want).max() > 1e-3  # the iteration matters here


def test_a_trained_layer_updating_until_convergence_matches_hflayers():
    """hflayers ``Hopfield(..., update_steps_max=None, update_steps_eps=eps)`` is dammem's
    ``Hopfield(..., update_steps=None, tol=eps)`` (the scan loop, differentiable): trained a few steps with a learned
    beta and the masks, the layer's output is the reference's with the trained weights (both at the fixed point)."""
    layer = Hopfield(2, E, qkv_features=8, out_features=4, beta=0.5, learn_beta=True, update_steps=None, tol=1e-6,
                     max_steps=40, rngs=nnx.Rngs(4))  # fmt: skip
    optimizer = nnx.Optimizer(layer, optax.adam(3e-2), wrt=nnx.Param)
    q, k, v, mask = _f32(STATE), _f32(STORED), _f32(PROJECTION), _attend(PADDING, ASSOCIATION)
    target = _f32(RNG.standard_normal((N, L, 4)))

    @nnx.jit
    def train_step(layer, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(q, k, v, mask=mask) - target) ** 2))(layer)
        optimizer.update(layer, grads)
        return loss, layer(q, k, v, mask=mask)

    losses = [float(train_step(layer, optimizer)[0]) for _ in range(6)]
    assert losses[-1] < losses[0]
    _, got = train_step(layer, optimizer)  # the output of the updated (trained) weights
    assert np.abs(np.asarray(layer.beta) - 0.5).min() > 1e-3  # beta was trained
    want, _, associations = hopfield_forward(
        _params(layer), STORED, STATE, PROJECTION, scaling=np.asarray(layer.beta, np.float64), update_steps_max=None,
        update_steps_eps=1e-6, stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION,
    )  # fmt: skip
    assert associations >= 3
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


def _norm(module):
    """A dammem LayerNorm as the reference's entry: None (off), "plain" (no scale or bias) or (scale, bias)."""
    if module is None:
        return None
    if getattr(module, "scale", None) is None:
        return "plain"
    return np.asarray(module.scale[...], np.float64), np.asarray(module.bias[...], np.float64)


def test_a_trained_port_of_a_full_hflayers_configuration_matches_the_reference():
    """hflayers ``Hopfield(input_size=6, num_heads=1, scaling=0.5, update_steps_max=None, update_steps_eps=1e-6,
    stored_pattern_as_static=True, add_zero_association=True)`` with its default affine normalisations of the
    state, stored and projected patterns is dammem's ``Hopfield(1, 6, beta=0.5, update_steps=None, tol=1e-6,
    normalize_*=True, stored_pattern_as_static=True, add_zero_association=True)``; trained a few steps (the
    normalisations' scales and biases move too), it matches the reference with its trained weights (dammem's
    LayerNorm epsilon is flax's 1e-6, given to the reference)."""
    layer = Hopfield(
        1, E, beta=0.5, update_steps=None, tol=1e-6, max_steps=60, normalize_state_pattern=True,
        normalize_stored_pattern=True, normalize_pattern_projection=True, stored_pattern_as_static=True,
        add_zero_association=True, rngs=nnx.Rngs(5),
    )  # fmt: skip
    optimizer = nnx.Optimizer(layer, optax.adam(3e-2), wrt=nnx.Param)
    q, k, v, mask = _f32(STATE), _f32(STORED), _f32(PROJECTION), _attend(PADDING, ASSOCIATION)
    target = _f32(RNG.standard_normal((N, L, E)))

    @nnx.jit
    def train_step(layer, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(q, k, v, mask=mask) - target) ** 2))(layer)
        optimizer.update(layer, grads)
        return loss, layer(q, k, v, mask=mask)

    losses = [float(train_step(layer, optimizer)[0]) for _ in range(6)]
    assert losses[-1] < losses[0]
    _, got = train_step(layer, optimizer)  # the output of the updated (trained) weights
    norms = [_norm(m) for m in (layer.stored_pattern_norm, layer.state_pattern_norm, layer.pattern_projection_norm)]
    assert all(np.abs(norm[1]).max() > 1e-3 for norm in norms)  # the affine biases were trained
    params = _params(layer)
    assert params.w_k is None and params.w_q is not None  # the stored patterns are static: taken as they are
    params.norm_stored, params.norm_state, params.norm_projection = norms
    params.norm_eps = 1e-6
    want, _, associations = hopfield_forward(
        params, STORED, STATE, PROJECTION, scaling=0.5, update_steps_max=None, update_steps_eps=1e-6,
        add_zero_association=True, stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION,
    )  # fmt: skip
    assert associations >= 3
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# pattern_projection_as_connected, per-head update limits, association_activation
# ----------------------------------------------------------------------------------------------------------------


def test_pattern_projection_as_connected_matches_hflayers():
    """hflayers ``pattern_projection_as_connected=True``: the values pass the stored patterns' projection first,
    ``V = W_V (W_K y + b_K) + b_V`` (a value projection from all key heads), or ``V = W_K y + b_K`` when the pattern
    projection is also static; the pattern projection ``y`` (not the stored patterns) is what is projected."""
    layer = Hopfield(2, E, qkv_features=8, out_features=5, beta=0.7, update_steps=2,
                     pattern_projection_as_connected=True, rngs=nnx.Rngs(6))  # fmt: skip
    assert layer.value.kernel.shape == (2, 4, 2, 4)
    mask = _attend(PADDING, ASSOCIATION)
    want, want_xi, _ = hopfield_forward(
        _params(layer), STORED, STATE, PROJECTION, scaling=0.7, update_steps_max=1, update_steps_eps=1e-12,
        pattern_projection_as_connected=True, stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION,
    )  # fmt: skip
    got, xi = _run(layer, _f32(STATE), _f32(STORED), _f32(PROJECTION), mask)
    np.testing.assert_allclose(np.asarray(xi), want_xi, atol=2e-6)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

    static = Hopfield(2, E, qkv_features=8, beta=0.7, pattern_projection_as_connected=True,
                      pattern_projection_as_static=True, disable_out_projection=True, rngs=nnx.Rngs(7))  # fmt: skip
    assert static.value is None
    want, _, _ = hopfield_forward(_params(static), STORED, STATE, PROJECTION, scaling=0.7,
                                  pattern_projection_as_connected=True)  # fmt: skip
    got, _ = _run(static, _f32(STATE), _f32(STORED), _f32(PROJECTION), None)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_connected_lookup_and_its_errors():
    """``HopfieldLayer(..., pattern_projection_as_connected=True)`` reads the targets out through the key projection
    (hflayers' lookup with connected projections); the option needs the key projection."""
    lookup = HopfieldLayer(2, E, num_patterns=4, separate_targets=True, beta=1.3, qkv_features=8,
                           pattern_projection_as_connected=True, rngs=nnx.Rngs(8))  # fmt: skip
    patterns = np.broadcast_to(np.asarray(lookup.patterns[...], np.float64), (N, 4, E))
    targets = np.broadcast_to(np.asarray(lookup.targets[...], np.float64), (N, 4, E))
    want, _, _ = hopfield_forward(_params(lookup.hopfield), patterns, STATE, targets, scaling=1.3,
                                  pattern_projection_as_connected=True)  # fmt: skip
    np.testing.assert_allclose(np.asarray(lookup(_f32(STATE))), want, rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError, match="HopfieldLayer: pattern_projection_as_connected=True sends the values through"
                                         " the key projection, so it needs use_projections=True"):  # fmt: skip
        HopfieldLayer(1, E, num_patterns=3, use_projections=False, pattern_projection_as_connected=True,
                      rngs=nnx.Rngs(0))  # fmt: skip
    with pytest.raises(ValueError, match="Hopfield: pattern_projection_as_connected=True sends the values through the"
                                         " key projection, which stored_pattern_as_static=True removes"):  # fmt: skip
        Hopfield(1, E, stored_pattern_as_static=True, pattern_projection_as_connected=True, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="Hopfield: pattern_projection_as_connected must be a bool, got 1"):
        Hopfield(1, E, pattern_projection_as_connected=1, rngs=nnx.Rngs(0))


def test_per_head_update_limits_match_hflayers_and_each_head_alone():
    """hflayers ``update_steps_max`` given per head (here ``[0, 2]``: 1 and 3 associations) is dammem's
    ``update_steps=[1, 3]``; in :func:`hopfield_attention` each head computes what it computes alone with its own
    number of steps (and its own ``tol``)."""
    layer = Hopfield(2, E, qkv_features=8, out_features=5, beta=0.7, update_steps=[1, 3], rngs=nnx.Rngs(9))
    want, want_xi, associations = hopfield_forward(
        _params(layer), STORED, STATE, PROJECTION, scaling=0.7, update_steps_max=np.array([0, 2]),
        update_steps_eps=1e-12, stored_pattern_padding_mask=PADDING, association_mask=ASSOCIATION,
    )  # fmt: skip
    assert associations == 3
    got, xi = _run(layer, _f32(STATE), _f32(STORED), _f32(PROJECTION), _attend(PADDING, ASSOCIATION))
    np.testing.assert_allclose(np.asarray(xi), want_xi, atol=2e-6)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

    q, k, v = (_f32(RNG.standard_normal((N, n, 3, 4))) for n in (L, S, S))
    beta = jnp.array([2.0, 2.5, 3.0])

    def alone(h, **kw):
        return hopfield_attention(q[..., h : h + 1, :], k[..., h : h + 1, :], v[..., h : h + 1, :], beta=beta[h], **kw)

    steps = (1, 4, 2)
    got = hopfield_attention(q, k, v, beta=beta, update_steps=steps)
    want = jnp.concatenate([alone(h, update_steps=s) for h, s in enumerate(steps)], axis=-2)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    tols = (0.0, 1e-2, 0.3)
    for loop in ("scan", "while"):
        got = hopfield_attention(q, k, v, beta=beta, update_steps=None, tol=jnp.array(tols), max_steps=8, loop=loop)
        want = [alone(h, update_steps=None, tol=t, max_steps=8) for h, t in enumerate(tols)]
        np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.concatenate(want, axis=-2)), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(alone(1, update_steps=4)) - np.asarray(alone(1, update_steps=2))).max() > 1e-3


def test_per_head_update_limits_errors():
    with pytest.raises(ValueError, match=r"Hopfield: update_steps must be an int or one int per head \(2\), got \[1, 2,"
                                         r" 3\]"):  # fmt: skip
        Hopfield(2, E + 2, update_steps=[1, 2, 3], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"HopfieldPooling: update_steps\[1\] must be >= 1, got 0"):
        HopfieldPooling(2, E + 2, update_steps=[2, 0], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"Hopfield: tol must be a number or one per head, shape \(2,\); got"):
        Hopfield(2, E + 2, update_steps=None, tol=[1e-3, 1e-3, 1e-3], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"Hopfield: tol\[1\] must be a finite float >= 0, got -1.0"):
        Hopfield(2, E + 2, update_steps=None, tol=[1e-3, -1.0], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"Hopfield: update_steps=\[1, 2\] \(one per head\) needs attention_fn=None"):
        Hopfield(2, E + 2, update_steps=[1, 2], attention_fn=nnx.dot_product_attention, rngs=nnx.Rngs(0))
    q = jnp.ones((2, 2, 4))
    with pytest.raises(ValueError, match=r"hopfield_attention: update_steps\[0\] must be >= 1, got 0"):
        hopfield_attention(q, q, q, update_steps=(0, 2))
    with pytest.raises(ValueError, match=r"hopfield_attention: tol must be a scalar or have one value per head"):
        hopfield_attention(q, q, q, update_steps=2, tol=jnp.ones(3))


def test_association_activation_is_applied_after_the_output_projection():
    """hflayers ``association_activation="tanh"`` (a torch function's name) applies it to the layer's output, after
    the output projection; a function may be given instead (here through ``HopfieldPooling``)."""
    layer = Hopfield(2, E, qkv_features=8, out_features=5, beta=0.7, association_activation="tanh",
                     rngs=nnx.Rngs(10))  # fmt: skip
    params = _params(layer)
    want, _, _ = hopfield_forward(params, STORED, STATE, PROJECTION, scaling=0.7, association_activation=np.tanh)
    got, _ = _run(layer, _f32(STATE), _f32(STORED), _f32(PROJECTION), None)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert np.abs(np.arctanh(want) - want).max() > 1e-3  # the activation matters here

    pool = HopfieldPooling(2, E, num_queries=3, qkv_features=4, beta=0.9, association_activation=jax.nn.relu,
                           rngs=nnx.Rngs(11))  # fmt: skip
    queries = np.broadcast_to(np.asarray(pool.queries[...], np.float64), (N, 3, E))
    want, _, _ = hopfield_forward(_params(pool.hopfield), STORED, queries, STORED, scaling=0.9,
                                  association_activation=lambda x: np.maximum(x, 0.0))  # fmt: skip
    assert (want == 0).any() and (want > 0).any()
    np.testing.assert_allclose(np.asarray(pool(_f32(STORED))), want, rtol=1e-5, atol=1e-6)

    message = r"Hopfield: association_activation must be None, a function or one of \['celu', 'relu', 'selu',"
    with pytest.raises(ValueError, match=message + r" 'sigmoid', 'tanh'\], got 'softmax'"):
        Hopfield(1, E, association_activation="softmax", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="HopfieldLayer: association_activation must be None, a function or one of"):
        HopfieldLayer(1, E, num_patterns=2, association_activation=3, rngs=nnx.Rngs(0))
