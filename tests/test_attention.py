"""Tests for dammem.attention: a float64 NumPy reference with explicit loops, jax.nn.dot_product_attention,
per-head beta and alpha, update steps and tolerance freezing, finite-difference gradients, edge cases and errors.

The reference (written here from Wu et al. (2024), eqs. 1.2, 2.4 and C.1) loops over batch entries, heads and
queries: the state ``xi`` of one query starts at the query, ``update_steps - 1`` times ``xi <- K^T Sep(beta K xi)``
(a query stops once a step moved it by at most ``tol``), then ``out = V^T Sep(beta K xi)``. Its separations are
the float64 bisection of ``tests/reference.py`` on the visible keys only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dammem.attention import hopfield_attention
from tests.reference import entmax_bisect

ALPHA = {"softmax": 1.0, "sparsemax": 2.0, "entmax15": 1.5}


# ----------------------------------------------------------------------------------------------------------------
# Float64 reference
# ----------------------------------------------------------------------------------------------------------------


def ref_separation(z, alpha, visible):
    """Weights over one row of scores: alpha-entmax of the visible scores, zero elsewhere (all hidden: zeros)."""
    p = np.zeros_like(z)
    if visible.any():
        p[visible] = entmax_bisect(z[visible], alpha)
    return p


def ref_hopfield(q, k, v, beta, alpha, mask=None, steps=1, tol=None):
    """Explicit loops. q (B, Q, H, D), k (B, S, H_kv, D), v (B, S, H_kv, V); beta, alpha (H,); mask (B, H, Q, S)."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    nb, nq, nh, _ = q.shape
    ns = k.shape[1]
    beta = np.broadcast_to(np.asarray(beta, np.float64), (nh,))
    alpha = np.broadcast_to(np.asarray(alpha, np.float64), (nh,))
    mask = np.ones((nb, nh, nq, ns), bool) if mask is None else np.broadcast_to(mask, (nb, nh, nq, ns))
    out = np.zeros((nb, nq, nh, v.shape[-1]))
    weights = np.zeros((nb, nh, nq, ns))
    group = nh // k.shape[2]  # grouped-query attention: query head h reads key/value head h // group
    for b in range(nb):
        for h in range(nh):
            keys, vals = k[b, :, h // group], v[b, :, h // group]
            for t in range(nq):
                xi, active = q[b, t, h].copy(), True
                for _ in range(steps - 1):
                    new = keys.T @ ref_separation(beta[h] * keys @ xi, alpha[h], mask[b, h, t])
                    if active:
                        moved = np.max(np.abs(new - xi))
                        xi = new
                        active = tol is None or moved > tol
                p = ref_separation(beta[h] * keys @ xi, alpha[h], mask[b, h, t])
                weights[b, h, t] = p
                out[b, t, h] = vals.T @ p
    return out, weights


def _inputs(seed=0, nb=2, nq=3, ns=5, nh=2, d=4, dv=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(nb, nq, nh, d))
    k = rng.normal(size=(nb, ns, nh, d))
    v = rng.normal(size=(nb, ns, nh, dv))
    return (jnp.asarray(x, dtype) for x in (q, k, v))


def _padding_mask(nb=2, nq=3, ns=5):
    """(B, 1, 1, S): batch 0 sees every key, batch 1 the first three."""
    mask = np.ones((nb, 1, 1, ns), bool)
    mask[1, ..., 3:] = False
    return jnp.asarray(mask)


# ----------------------------------------------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("separation, steps", [("softmax", 1), ("sparsemax", 3), ("entmax15", 1), ("entmax", 3)])
def test_matches_reference(x64, separation, steps):
    q, k, v = _inputs(1, dtype=np.float64)
    beta = None if separation == "softmax" else np.array([1.7, 0.6])  # None: 1 / sqrt(D) = 1 / 2
    alpha = np.array([1.3, 1.8]) if separation == "entmax" else ALPHA[separation]
    mask = np.random.default_rng(2).random((2, 2, 3, 5)) < 0.7
    mask[..., 0] = True
    out, w = hopfield_attention(
        q, k, v, beta=None if beta is None else jnp.asarray(beta), separation=separation, mask=jnp.asarray(mask),
        update_steps=steps, alpha=jnp.asarray(alpha) if separation == "entmax" else None, return_weights=True,
    )  # fmt: skip
    ref_out, ref_w = ref_hopfield(q, k, v, 0.5 if beta is None else beta, alpha, mask, steps)
    np.testing.assert_allclose(np.asarray(w), ref_w, atol=1e-9)
    np.testing.assert_allclose(np.asarray(out), ref_out, atol=1e-9)
    assert out.dtype == jnp.float64 and w.shape == (2, 2, 3, 5)


# ----------------------------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [None, 0.8])
def test_softmax_one_step_equals_dot_product_attention(beta):
    q, k, v = _inputs(4, nq=5, ns=5, dv=4)
    expected = jax.nn.dot_product_attention(q, k, v, scale=beta)
    np.testing.assert_allclose(np.asarray(hopfield_attention(q, k, v, beta=beta)), expected, atol=2e-6)


def test_softmax_one_step_equals_dot_product_attention_with_masks():
    q, k, v = _inputs(5, nq=5, ns=5, dv=4)
    pad = jnp.broadcast_to(_padding_mask(ns=5), (2, 1, 5, 5))
    causal = jnp.broadcast_to(jnp.tril(jnp.ones((5, 5), bool)), (2, 1, 5, 5))
    cases = ((pad, dict(mask=pad)), (causal, dict(is_causal=True)), (pad & causal, dict(mask=pad & causal)))
    for ours, theirs in cases:
        expected = jax.nn.dot_product_attention(q, k, v, **theirs)
        np.testing.assert_allclose(np.asarray(hopfield_attention(q, k, v, mask=ours)), expected, atol=2e-6)


def test_unbatched_and_broadcast_key_batch():
    """No batch axes, and stored patterns shared across a batch of queries (key and value without batch axes)."""
    q, k, v = _inputs(6)
    shared = hopfield_attention(q, k[0], v[0])
    for b in range(2):
        one = hopfield_attention(q[b], k[0], v[0])
        np.testing.assert_allclose(np.asarray(shared[b]), np.asarray(one), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(hopfield_attention(q, k[0], v[0], update_steps=2)),
        np.asarray(hopfield_attention(q, jnp.broadcast_to(k[0], k.shape), jnp.broadcast_to(v[0], v.shape),
                                      update_steps=2)),
        atol=1e-6,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Separations, per-head parameters, update steps
# ----------------------------------------------------------------------------------------------------------------


def test_sparsemax_weights_have_exact_zeros():
    q, k, v = _inputs(7)
    _, w = hopfield_attention(q, k, v, beta=jnp.asarray(3.0), separation="sparsemax", return_weights=True)
    _, ref_w = ref_hopfield(q, k, v, 3.0, 2.0)
    assert np.sum(np.asarray(w) == 0.0) > w.size // 4
    np.testing.assert_array_equal(np.asarray(w) == 0.0, ref_w == 0.0)
    np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, atol=1e-6)


def test_per_head_beta_reaches_its_head():
    q, k, v = _inputs(8)
    out = hopfield_attention(q, k, v, beta=jnp.array([25.0, 0.5]), separation="entmax15")
    head0 = hopfield_attention(q, k, v, beta=jnp.full(2, 25.0), separation="entmax15")[..., 0, :]
    head1 = hopfield_attention(q, k, v, beta=jnp.full(2, 0.5), separation="entmax15")[..., 1, :]
    np.testing.assert_allclose(np.asarray(out[..., 0, :]), np.asarray(head0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out[..., 1, :]), np.asarray(head1), atol=1e-6)
    assert np.max(np.abs(np.asarray(head0) - np.asarray(hopfield_attention(q, k, v, beta=0.5)[..., 0, :]))) > 0.1


def test_per_head_alpha_reaches_its_head():
    q, k, v = _inputs(9)
    out = hopfield_attention(q, k, v, beta=2.0, separation="entmax", alpha=jnp.array([1.1, 2.0]))
    head0 = hopfield_attention(q, k, v, beta=2.0, separation="entmax", alpha=jnp.full(2, 1.1))[..., 0, :]
    head1 = hopfield_attention(q, k, v, beta=2.0, separation="sparsemax")[..., 1, :]
    np.testing.assert_allclose(np.asarray(out[..., 0, :]), np.asarray(head0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out[..., 1, :]), np.asarray(head1), atol=1e-5)
    other = hopfield_attention(q, k, v, beta=2.0, separation="sparsemax")[..., 0, :]
    assert np.max(np.abs(np.asarray(head0) - np.asarray(other))) > 0.05


def test_callable_separation():
    q, k, v = _inputs(10)
    calls = []

    def sep(scores, axis, where):
        calls.append(scores.shape)
        return jax.nn.softmax(2.0 * scores, axis=axis, where=where)

    out = hopfield_attention(q, k, v, beta=0.5, separation=sep)
    np.testing.assert_allclose(np.asarray(out), np.asarray(hopfield_attention(q, k, v, beta=1.0)), atol=1e-6)
    assert calls[0] == (2, 2, 3, 5)


def test_update_steps_equal_explicit_iteration():
    """Two steps = one retrieval from the keys (value = key), then the read-out from the new state."""
    q, k, v = _inputs(11)
    for separation in ("softmax", "sparsemax"):
        xi = hopfield_attention(q, k, k, beta=1.3, separation=separation)
        xi = hopfield_attention(xi, k, k, beta=1.3, separation=separation)
        expected = hopfield_attention(xi, k, v, beta=1.3, separation=separation)
        out = hopfield_attention(q, k, v, beta=1.3, separation=separation, update_steps=3)
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


def test_tol_freezes_queries_like_the_reference(x64):
    q, k, v = _inputs(12, nq=6, dtype=np.float64)
    q = q.at[:, :3].multiply(6.0)  # near a stored pattern at once: these freeze after the first step
    beta, steps = np.array([1.0, 0.4]), 5
    ref_free, _ = ref_hopfield(q, k, v, beta, 1.0, steps=steps)
    for tol in (0.05, 0.3):
        out = hopfield_attention(q, k, v, beta=jnp.asarray(beta), update_steps=steps, tol=tol)
        ref_out, _ = ref_hopfield(q, k, v, beta, 1.0, steps=steps, tol=tol)
        np.testing.assert_allclose(np.asarray(out), ref_out, atol=1e-10)
        assert np.max(np.abs(ref_out - ref_free)) > 1e-4  # freezing changed the result
    out = hopfield_attention(q, k, v, beta=jnp.asarray(beta), update_steps=steps, tol=0.0)
    np.testing.assert_allclose(np.asarray(out), ref_free, atol=1e-10)


def test_traced_beta_alpha_tol_do_not_retrace():
    q, k, v = _inputs(13)
    traces = []

    @jax.jit
    def f(beta, alpha, tol):
        traces.append(1)
        return hopfield_attention(q, k, v, beta=beta, alpha=alpha, separation="entmax", update_steps=3, tol=tol)

    for beta, alpha in ((0.5, 1.2), (2.0, 1.7), (1.0, 2.0)):
        out = f(jnp.array([beta, 1.0]), jnp.asarray(alpha), jnp.asarray(0.01))
        eager = hopfield_attention(
            q, k, v, beta=jnp.array([beta, 1.0]), alpha=alpha, separation="entmax", update_steps=3, tol=0.01
        )
        np.testing.assert_allclose(np.asarray(out), np.asarray(eager), atol=1e-5)
    assert len(traces) == 1


# ----------------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("separation, steps", [("softmax", 1), ("entmax", 2)])
def test_gradients_match_finite_differences(x64, separation, steps):
    """Softmax with one step is the fused read-out with its own derivative rule (forward and reverse mode checked);
    entmax with two steps differentiates through the separations and the update."""
    q, k, v = _inputs(14, nq=2, ns=4, d=3, dv=2, dtype=np.float64)
    mask = jnp.asarray(np.array([True, True, True, False]))
    weights = jnp.asarray(np.random.default_rng(15).normal(size=(2, 2, 2, 2)))

    def loss(q, k, v, beta, alpha):
        out = hopfield_attention(
            q, k, v, beta=beta, mask=mask, update_steps=steps, separation=separation,
            alpha=alpha if separation == "entmax" else None,
        )  # fmt: skip
        return jnp.sum(out * weights)

    args = (q, k, v, jnp.array([0.9, 1.4]), jnp.array([1.4, 1.7]))
    modes = ["fwd", "rev"] if separation == "softmax" else ["rev"]
    check_grads(loss, args, order=1, modes=modes, atol=1e-6, rtol=1e-6, eps=1e-5)
    grads = jax.grad(loss, argnums=(3, 4))(*args)
    assert np.all(np.abs(np.asarray(grads[0])) > 1e-6)  # each head's beta has an effect
    if separation == "entmax":
        assert np.all(np.abs(np.asarray(grads[1])) > 1e-6)


def test_fused_softmax_read_out_equals_the_separation_path():
    """The fused one-step softmax (no weights asked) against the generic path (weights asked, and the separations'
    softmax passed as a callable): outputs and gradients, with a padding mask, a fully hidden row and shared keys."""
    from dammem.separations import softmax

    q, k, v = _inputs(20)
    mask = jnp.ones((2, 1, 3, 5), bool).at[1, :, :, 3:].set(False).at[0, :, 2].set(False)
    beta = jnp.array([0.8, 1.9])
    cot = jnp.asarray(np.random.default_rng(21).normal(size=(2, 3, 2, 3)), jnp.float32)

    def loss(sep, q, k, v, beta):
        return jnp.sum(cot * hopfield_attention(q, k[0], v[0], beta=beta, mask=mask, separation=sep))

    fused, generic = jax.value_and_grad(loss, argnums=(1, 2, 3, 4)), jax.value_and_grad(loss, argnums=(1, 2, 3, 4))
    (l1, g1), (l2, g2) = fused("softmax", q, k, v, beta), generic(softmax, q, k, v, beta)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-6)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
    out, _ = hopfield_attention(q, k, v, mask=mask, return_weights=True)
    np.testing.assert_allclose(np.asarray(hopfield_attention(q, k, v, mask=mask)), np.asarray(out), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Edge cases
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("separation", ["softmax", "sparsemax"])
def test_all_masked_rows_give_finite_zeros(separation):
    q, k, v = _inputs(16)
    mask = jnp.ones((2, 1, 3, 5), bool).at[0, :, 1].set(False)  # batch 0, query 1 sees nothing
    out, w = hopfield_attention(q, k, v, mask=mask, separation=separation, update_steps=2, return_weights=True)
    assert np.all(np.isfinite(np.asarray(out)))
    np.testing.assert_array_equal(np.asarray(out[0, 1]), 0.0)
    np.testing.assert_array_equal(np.asarray(w[0, :, 1]), 0.0)
    assert np.all(np.abs(np.asarray(out[0, 0])) > 0)
    grad = jax.grad(lambda q: jnp.sum(hopfield_attention(q, k, v, mask=mask, separation=separation)))(q)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_array_equal(np.asarray(grad[0, 1]), 0.0)


def test_low_precision_inputs():
    dtype = jnp.bfloat16
    q, k, v = _inputs(17)
    ref = hopfield_attention(q, k, v, beta=8.0, separation="entmax15", update_steps=2)
    out = hopfield_attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), beta=8.0, separation="entmax15",
                             update_steps=2)  # fmt: skip
    assert out.dtype == dtype
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref), atol=0.1)


def test_dropout_on_read_out_weights():
    nq, ns = 4, 6
    q, k, _ = _inputs(18, nq=nq, ns=ns)
    onehot = jnp.broadcast_to(jnp.eye(ns)[:, None, :], (2, ns, 2, ns))  # out[..., q, h, :] = the read weights
    _, w = hopfield_attention(q, k, onehot, return_weights=True)
    key = jax.random.key(3)
    for broadcast, shape in ((True, (1, 1, nq, ns)), (False, (2, 2, nq, ns))):
        out, w_before = hopfield_attention(
            q, k, onehot, dropout_rate=0.25, dropout_key=key, broadcast_dropout=broadcast, return_weights=True
        )
        keep = jax.random.bernoulli(key, 0.75, shape)
        expected = jnp.where(keep, w / 0.75, 0.0)
        np.testing.assert_allclose(np.asarray(jnp.swapaxes(out, -3, -2)), np.asarray(expected), atol=1e-6)
        np.testing.assert_allclose(np.asarray(w_before), np.asarray(w), atol=1e-7)


def test_shape_annotations():
    """The jaxtyping annotations hold at run time (checked with beartype), broadcast batches included."""
    from beartype import beartype
    from jaxtyping import TypeCheckError, jaxtyped

    checked = jaxtyped(typechecker=beartype)(hopfield_attention)
    q, k, v = _inputs(22)
    assert checked(q, k[0], v[0], mask=jnp.ones((1, 1, 5), bool)).shape == (2, 3, 2, 3)
    assert checked(q[0], k, v, return_weights=True)[1].shape == (2, 2, 3, 5)
    with pytest.raises(TypeCheckError):
        checked(q, k, v[:, :4])


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    q, k, v = _inputs(19)
    with pytest.raises(ValueError, match=r"hopfield_attention: key of shape \(2, 5, 2, 3\) must have \(H_kv, D\)"):
        hopfield_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"hopfield_attention: value of shape \(2, 4, 2, 3\) must have \(S, H_kv\)"):
        hopfield_attention(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"hopfield_attention: query must have shape \(\.\.\., Q, H, D\)"):
        hopfield_attention(q[0, 0], k, v)
    with pytest.raises(ValueError, match=r"batch axes of query .* do not broadcast"):
        hopfield_attention(q, jnp.concatenate([k, k, k]), jnp.concatenate([v, v, v]))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 3\) does not broadcast .* \(2, 2, 3, 5\)"):
        hopfield_attention(q, k, v, mask=jnp.ones((3, 3), bool))
    with pytest.raises(TypeError, match=r"hopfield_attention: mask must be a boolean mask \(True = attend\)"):
        hopfield_attention(q, k, v, mask=jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="hopfield_attention: unknown separation 'relu'"):
        hopfield_attention(q, k, v, separation="relu")
    with pytest.raises(ValueError, match=r"hopfield_attention: alpha must lie in \(1, 2\], got \[1.0\]"):
        hopfield_attention(q, k, v, separation="entmax", alpha=1.0)
    with pytest.raises(ValueError, match=r"alpha must lie in \(1, 2\], got \[2.5\]"):
        hopfield_attention(q, k, v, separation="entmax", alpha=jnp.array([1.5, 2.5]))
    with pytest.raises(ValueError, match="separation='entmax' needs alpha"):
        hopfield_attention(q, k, v, separation="entmax")
    with pytest.raises(ValueError, match="separation='sparsemax' has a fixed alpha=2.0; alpha is only used with 'entm"):
        hopfield_attention(q, k, v, separation="sparsemax", alpha=1.5)
    with pytest.raises(ValueError, match=r"hopfield_attention: beta must be a scalar or have one value per head, "
                                         r"shape \(2,\); got shape \(3,\)"):  # fmt: skip
        hopfield_attention(q, k, v, beta=jnp.ones(3))
    with pytest.raises(ValueError, match=r"hopfield_attention: beta must be finite and > 0, got \[-1.0\]"):
        hopfield_attention(q, k, v, beta=-1.0)
    with pytest.raises(ValueError, match="hopfield_attention: update_steps must be >= 1, got 0"):
        hopfield_attention(q, k, v, update_steps=0)
    with pytest.raises(TypeError, match="hopfield_attention: update_steps must be an int"):
        hopfield_attention(q, k, v, update_steps=2.0)
    with pytest.raises(ValueError, match="hopfield_attention: tol must be finite and >= 0"):
        hopfield_attention(q, k, v, update_steps=2, tol=-1.0)
    with pytest.raises(ValueError, match=r"hopfield_attention: dropout_rate must be a float in \[0, 1\)"):
        hopfield_attention(q, k, v, dropout_rate=1.0)
    with pytest.raises(ValueError, match="needs a dropout_key"):
        hopfield_attention(q, k, v, dropout_rate=0.1)
    with pytest.raises(TypeError, match="hopfield_attention: query must be real"):
        hopfield_attention(q.astype(jnp.complex64), k, v)


def test_constant_arguments_are_checked_inside_a_callers_jit():
    """A Python constant is still a value inside the caller's jit: out-of-range beta/alpha/tol raise there too."""
    q, k, v = _inputs(19)
    with pytest.raises(ValueError, match=r"alpha must lie in \(1, 2\], got \[3.0\]"):
        jax.jit(lambda q: hopfield_attention(q, k, v, separation="entmax", alpha=3.0))(q)
    with pytest.raises(ValueError, match=r"beta must be finite and > 0, got \[-1.0\]"):
        jax.jit(lambda q: hopfield_attention(q, k, v, beta=-1.0))(q)
    with pytest.raises(ValueError, match="tol must be finite and >= 0"):
        jax.jit(lambda q: hopfield_attention(q, k, v, update_steps=2, tol=-1.0))(q)


# ----------------------------------------------------------------------------------------------------------------
# Grouped-query attention, masks with any callable, traced beta, convergence, precision
# ----------------------------------------------------------------------------------------------------------------


def test_grouped_query_attention_matches_the_reference_with_update_steps():
    """4 query heads share 2 key/value heads (query head h reads key head h // 2); each query head keeps its own
    state through the update steps."""
    q, _, _ = _inputs(30, nh=4)
    _, k, v = _inputs(31, nh=2, dv=4)
    beta = jnp.array([0.5, 1.0, 1.5, 2.0])
    out, w = hopfield_attention(q, k, v, beta=beta, separation="sparsemax", update_steps=3, return_weights=True)
    ref_out, ref_w = ref_hopfield(q, k, v, beta, 2.0, steps=3)
    # float32, sums over S = 5 keys of unit-scale terms, three chained separations: ~1e-5
    np.testing.assert_allclose(np.asarray(out), ref_out, atol=1e-4)
    np.testing.assert_allclose(np.asarray(w), ref_w, atol=1e-4)
    # one step of softmax: the same as jax.nn.dot_product_attention's grouped-query form
    expected = jax.nn.dot_product_attention(q, k, v, scale=0.5)
    np.testing.assert_allclose(hopfield_attention(q, k, v, beta=0.5), expected, atol=1e-5)  # float32, S = 5


def test_callable_ignoring_where_never_attends_to_hidden_keys():
    """A callable separation that ignores ``where`` still gets the mask: its weights on hidden keys are dropped and
    the rest renormalised, in the read-out and in every update step."""
    q, k, v = _inputs(32)
    mask = jnp.asarray(np.random.default_rng(33).random((2, 2, 3, 5)) < 0.6).at[..., 0].set(True)

    def careless(scores, axis=-1, where=None):  # ignores where
        return jax.nn.softmax(scores, axis=axis)

    out, w = hopfield_attention(q, k, v, beta=1.0, separation=careless, mask=mask, update_steps=2, return_weights=True)
    ref_out, ref_w = ref_hopfield(q, k, v, 1.0, 1.0, mask=mask, steps=2)
    assert np.all(np.asarray(w)[~np.asarray(mask)] == 0.0)
    np.testing.assert_allclose(np.asarray(w), ref_w, atol=1e-5)  # float32 softmax over 5 keys, two steps
    np.testing.assert_allclose(np.asarray(out), ref_out, atol=1e-5)


def test_traced_non_positive_beta_gives_nan():
    """Inside the caller's jit beta cannot be checked: beta <= 0 gives NaN, not attention to the least similar key."""
    q, k, v = _inputs(34)
    run = jax.jit(lambda b: hopfield_attention(q, k, v, beta=b, return_weights=True))
    out, w = run(-1.0)
    assert np.all(np.isnan(np.asarray(out))) and np.all(np.isnan(np.asarray(w)))
    out, _ = run(1.0)
    np.testing.assert_allclose(out, ref_hopfield(q, k, v, 1.0, 1.0)[0], atol=1e-5)  # float32, S = 5


def test_until_convergence_while_and_scan_agree_with_the_reference():
    """update_steps=None: updates until every query moved by at most tol, at most max_steps of them; loop="while"
    stops early (forward only), loop="scan" runs max_steps with converged queries frozen (differentiable)."""
    q, k, v = _inputs(35)
    kw = dict(beta=2.0, update_steps=None, tol=1e-3, max_steps=6)
    ref_out, _ = ref_hopfield(q, k, v, 2.0, 1.0, steps=7, tol=1e-3)
    fast = hopfield_attention(q, k, v, loop="while", **kw)
    slow = hopfield_attention(q, k, v, loop="scan", **kw)
    # float32 softmax over 5 keys, up to 7 separations: ~1e-5; a query at the tolerance's edge may
    # stop one step apart between programs, which moves it by at most tol = 1e-3
    np.testing.assert_allclose(np.asarray(fast), ref_out, atol=2e-3)
    np.testing.assert_allclose(np.asarray(slow), np.asarray(fast), atol=2e-3)
    grad = jax.grad(lambda x: hopfield_attention(x, k, v, loop="scan", **kw).sum())(q)
    assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)
    with pytest.raises(ValueError, match="hopfield_attention: update_steps=None .* needs tol"):
        hopfield_attention(q, k, v, update_steps=None)
    with pytest.raises(ValueError, match="hopfield_attention: loop='while' is for update_steps=None"):
        hopfield_attention(q, k, v, loop="while")
    with pytest.raises(ValueError, match="hopfield_attention: loop must be 'scan' or 'while', got 'for'"):
        hopfield_attention(q, k, v, loop="for")


def test_precision_reaches_every_product():
    q, k, v = _inputs(36)
    text = str(jax.make_jaxpr(lambda x: hopfield_attention(x, k, v, precision="highest", update_steps=2))(q))
    assert text.count("Precision.HIGHEST") >= 3  # the update's two products and the read-out's
