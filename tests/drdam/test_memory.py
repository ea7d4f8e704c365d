"""DrDAM memory: encode/add/remove, the energy and its custom derivative against plain references, residuals."""

import contextlib
import io
import math
import re

import jax
import jax.ad_checkpoint
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import dammem
from dammem.drdam import (
    FEATURE_KINDS,
    Memory,
    add,
    clip_fraction,
    encode,
    energy,
    make_features,
    remove,
)
from dammem.drdam.memory import _energy_parts
from dammem.energies import rbf_energy
from tests.drdam.test_features import reference_features
from tests.drdam.test_projections import omega_rows

D, Y, K, BETA = 6, 96, 9, 3.0


def patterns(key, k=K, d=D):
    """Binary patterns in {0, 1/sqrt(D)}^D (Hoover et al. (2024), Sec. 4.1)."""
    return jax.random.bernoulli(key, 0.5, (k, d)).astype(jnp.float32) / math.sqrt(d)


MEMS = patterns(jax.random.key(0))
QUERIES = jnp.concatenate([MEMS[:2] * 0.8, patterns(jax.random.key(1), 2)])


def reference_memory(kind, omega, phases, memories, beta):
    """float64 NumPy T (trigonometric) or log T (exponential)."""
    rows = np.asarray(memories, np.float64)
    phis = np.stack([reference_features(kind, omega, phases, math.sqrt(beta) * m) for m in rows])
    total = phis.sum(0)
    return np.log(total) if kind in ("exp", "expexp") else total


def reference_energy(kind, omega, phases, t, x, beta, q="log", eps=1e-6):
    """float64 NumPy DrDAM energy (Hoover et al. (2024), eq. 9), with the documented linear log continuation."""
    phi = reference_features(kind, omega, phases, math.sqrt(beta) * np.asarray(x, np.float64))
    s = phi @ (np.exp(t) if kind in ("exp", "expexp") else t)
    if q == "identity":
        return -s
    log_s = math.log(s) if s >= eps else math.log(eps) - 1 + eps / (2 * eps - s)
    return -log_s / beta


def plain_energy(kind, omega, phases, q="log", eps=1e-6):
    """A plain JAX energy on a stored matrix, differentiated by ordinary autodiff (no custom rule, no chunks)."""

    def e(x, t, beta):
        z = jnp.sqrt(beta) * x
        p = omega @ z
        y = omega.shape[0]
        if kind in ("exp", "expexp"):
            if kind == "exp":
                log_phi = p - z @ z - 0.5 * jnp.log(y)
            else:
                log_phi = jnp.stack([p, -p], -1).ravel() - z @ z - 0.5 * jnp.log(2.0 * y)
            log_s = jax.nn.logsumexp(t + log_phi)
            return -log_s / beta if q == "log" else -jnp.exp(log_s)
        if kind == "cos":
            phi = jnp.sqrt(2.0 / y) * jnp.cos(p + phases)
        else:
            phi = jnp.stack([jnp.cos(p), jnp.sin(p)], -1).ravel() / jnp.sqrt(y)
        s = phi @ t
        if q == "identity":
            return -s
        below = jnp.log(eps) - 1 + eps / (2 * eps - jnp.minimum(s, eps))
        log_s = jnp.where(s >= eps, jnp.log(jnp.maximum(s, eps)), below)
        return -log_s / beta

    return e


def _setup(kind, projection="materialized", y=Y, key=3):
    block = 16 if projection in ("gaussian", "materialized") else None
    features = make_features(kind, D, y, key=jax.random.key(key), projection=projection, block_size=block)
    omega = omega_rows(features)[:, :D]
    phases = np.asarray(features.params["phases"], np.float64) if kind == "cos" else None
    return features, omega, phases


# ----------------------------------------------------------------------------------------------------------------
# encode / add / remove


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_encode_matches_float64_sum_of_features(kind):
    features, omega, phases = _setup(kind)
    T = encode(features, MEMS, BETA)
    assert isinstance(T, Memory) and int(T.count) == K and T.t.shape == (features.size,)
    want = reference_memory(kind, omega, phases, MEMS, BETA)
    np.testing.assert_allclose(np.asarray(T.t, np.float64), want, rtol=3e-5, atol=3e-6)


@pytest.mark.parametrize("kind, projection", [("sincos", "gaussian"), ("expexp", "structured")])
def test_encode_and_energy_do_not_depend_on_chunks_or_order(kind, projection):
    features, _, _ = _setup(kind, projection)
    g = features.block_size
    base = encode(features, MEMS, BETA)
    perm = np.random.default_rng(0).permutation(K)
    variants = [
        encode(features, MEMS, BETA, chunk_size=g, batch_size=2),
        encode(features, MEMS[perm], BETA, batch_size=1),
    ]
    for other in variants:
        np.testing.assert_allclose(np.asarray(other.t), np.asarray(base.t), rtol=2e-5, atol=2e-6)
    x = QUERIES[0]
    e0, g0 = jax.value_and_grad(energy)(x, base, features, BETA)
    for rows in (g,):
        e1, g1 = jax.value_and_grad(lambda x_, rows=rows: energy(x_, base, features, BETA, chunk_size=rows))(x)
        np.testing.assert_allclose(float(e1), float(e0), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["cos", "exp"])
def test_add_one_by_one_equals_encode_and_remove_undoes_add(kind):
    features, _, _ = _setup(kind)
    T = encode(features, MEMS[:0], BETA)
    assert int(T.count) == 0
    assert np.all(np.asarray(T.t) == (-np.inf if kind == "exp" else 0.0))
    for m in MEMS:
        T = add(T, features, m[None], BETA)
    batch = encode(features, MEMS, BETA)
    assert int(T.count) == K
    np.testing.assert_allclose(np.asarray(T.t), np.asarray(batch.t), rtol=2e-5, atol=2e-6)
    # remove undoes add
    more = patterns(jax.random.key(9), 3)
    back = remove(add(batch, features, more, BETA), features, more, BETA)
    assert int(back.count) == K
    np.testing.assert_allclose(np.asarray(back.t), np.asarray(batch.t), rtol=5e-5, atol=5e-6)
    # removing everything gives the empty memory again
    empty = remove(batch, features, MEMS, BETA)
    assert int(empty.count) == 0
    if kind == "exp":
        assert np.all(np.asarray(empty.t) < np.asarray(batch.t) - 8)  # log T -> -inf (up to rounding)
    else:
        np.testing.assert_allclose(np.asarray(empty.t), 0.0, atol=2e-5)
    empty_match = r"remove: cannot remove 1 pattern\(s\) from T, which holds 0 \(the memory is empty\)"
    with pytest.raises(ValueError, match=empty_match):
        remove(encode(features, MEMS[:0], BETA), features, MEMS[:1], BETA)
    with pytest.raises(ValueError, match=r"remove: cannot remove 9 pattern\(s\) from T, which holds 2"):
        remove(encode(features, MEMS[:2], BETA), features, MEMS, BETA)


# ----------------------------------------------------------------------------------------------------------------
# energy and gradient


@pytest.mark.parametrize("kind", FEATURE_KINDS)
@pytest.mark.parametrize("q", ["log", "identity"])
def test_energy_and_gradients_match_references(kind, q):
    features, omega, phases = _setup(kind)
    T = encode(features, MEMS, BETA)
    t64 = np.asarray(T.t, np.float64)
    phases32 = None if phases is None else jnp.asarray(phases, jnp.float32)
    plain = plain_energy(kind, jnp.asarray(omega, jnp.float32), phases32, q)
    for x in QUERIES:
        want = reference_energy(kind, omega, phases, t64, x, BETA, q)
        got = energy(x, T, features, BETA, q=q)
        np.testing.assert_allclose(float(got), want, rtol=2e-5, atol=1e-6)
        # gradients with respect to x, T and beta equal plain autodiff of a plain implementation
        ours = jax.grad(lambda x_, t_, b_: energy(x_, Memory(t_, T.count), features, b_, q=q), argnums=(0, 1, 2))(
            x, T.t, BETA
        )
        ref = jax.grad(plain, argnums=(0, 1, 2))(x, T.t, BETA)
        for a, b in zip(ours, ref):
            scale = float(jnp.max(jnp.abs(b))) + 1e-6
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-4 * scale, rtol=2e-4)


@pytest.mark.slow
def test_structured_energy_gradient_matches_plain_dense_sorf():
    features, omega, _ = _setup("sincos", "structured")
    T = encode(features, MEMS, BETA)
    plain = plain_energy("sincos", jnp.asarray(omega, jnp.float32), None)
    for x in QUERIES:
        np.testing.assert_allclose(float(energy(x, T, features, BETA)), float(plain(x, T.t, BETA)), rtol=1e-5)
        np.testing.assert_allclose(
            np.asarray(jax.grad(energy)(x, T, features, BETA)),
            np.asarray(jax.grad(plain)(x, T.t, BETA)),
            rtol=2e-4,
            atol=2e-5,
        )


@pytest.mark.parametrize("kind", ["sincos", "expexp"])
def test_check_grads_float64(x64, kind):
    features = make_features(kind, D, 64, key=jax.random.key(4), projection="structured")
    mems = MEMS.astype(jnp.float64)
    T = encode(features, mems, 2.0)
    f = lambda x, t, beta: energy(x, Memory(t, T.count), features, beta)
    x = (mems[0] * 0.7 + mems[1] * 0.2).astype(jnp.float64)
    check_grads(f, (x, T.t, jnp.float64(2.0)), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_second_derivatives_float64(x64):
    features = make_features("sincos", D, 64, key=jax.random.key(4), projection="structured")
    mems = MEMS.astype(jnp.float64)
    T = encode(features, mems, 2.0)
    x = (mems[0] * 0.7 + mems[1] * 0.2).astype(jnp.float64)
    check_grads(lambda x: energy(x, T, features, 2.0), (x,), order=2, modes=("rev",), atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # a convergence rate over 64 keys and Y up to 4096; the default suite pins the energy by value
def test_energy_approximates_mrdam_and_error_falls_like_inverse_sqrt_y():
    """Hoover et al. (2024), eq. 13: the energy error is O(sqrt(D / Y)); fitted log-log slope -0.5 +- 0.1."""
    d, k, beta = 16, 12, 2.0
    mems = patterns(jax.random.key(5), k, d)
    queries = jnp.concatenate([mems[:3] * 0.9, patterns(jax.random.key(6), 3, d)])
    exact = jax.vmap(lambda x: rbf_energy(x, mems, beta))(queries)
    ys = (64, 512, 4096)
    rmse = []
    for y in ys:

        @jax.jit
        def errors(key, y=y):
            f = make_features("sincos", d, y, key=key, projection="materialized")
            T = encode(f, mems, beta)
            return jax.vmap(lambda x: energy(x, T, f, beta))(queries) - exact

        e = jax.vmap(errors)(jax.random.split(jax.random.key(7), 64))
        rmse.append(float(jnp.sqrt(jnp.mean(e**2))))
    slope = np.polyfit(np.log(ys), np.log(rmse), 1)[0]
    assert -0.6 < slope < -0.4, (slope, rmse)
    assert rmse[-1] < 0.02


def test_log_clip_is_continuous_with_a_nonzero_gradient():
    """A single far memory at large beta: the sincos estimate of s is often <= 0 and hits the clip."""
    d, beta, eps = 8, 60.0, 1e-3
    features = make_features("sincos", d, 32, key=jax.random.key(0), projection="materialized", block_size=32)
    omega = np.asarray(features.params["matrix"], np.float64)
    mem = patterns(jax.random.key(1), 1, d)
    T = encode(features, mem, beta)
    queries = patterns(jax.random.key(2), 64, d)
    t64 = np.asarray(T.t, np.float64)
    q64 = math.sqrt(beta) * np.asarray(queries, np.float64)
    s = np.array([reference_features("sincos", omega, None, z) @ t64 for z in q64])
    below = s < eps
    assert 5 < below.sum() < 60
    assert float(clip_fraction(queries, T, features, beta, eps=eps)) == pytest.approx(below.mean())
    assert float(clip_fraction(queries[0], T, features, beta, eps=eps)) == float(below[0])
    plain = plain_energy("sincos", jnp.asarray(omega, jnp.float32), None, eps=eps)
    for x, s_x in zip(queries[below][:3], s[below][:3]):
        e = energy(x, T, features, beta, eps=eps)
        assert float(e) == pytest.approx(-(math.log(eps) - 1 + eps / (2 * eps - s_x)) / beta, rel=1e-4)
        assert -math.log(eps) / beta < float(e) < (1 - math.log(eps)) / beta  # bounded: at most 1 / beta above
        g = jax.grad(energy)(x, T, features, beta, eps=eps)
        assert float(jnp.linalg.norm(g)) > 0 and bool(jnp.all(jnp.isfinite(g)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(jax.grad(plain)(x, T.t, beta)), rtol=1e-3, atol=1e-3)
    # continuity at the clip: choose eps equal to one query's s
    x = queries[np.argmax(np.where(s > 0, s, -1))]
    s_x = float(s.max())
    e_at = [float(energy(x, T, features, beta, eps=s_x * f)) for f in (1 - 1e-3, 1 + 1e-3)]
    assert abs(e_at[0] - e_at[1]) < 1e-4 * abs(e_at[0]) + 1e-5
    # exponential features never clip
    pos = make_features("exp", d, 32, key=jax.random.key(0))
    assert float(clip_fraction(queries, encode(pos, mem, beta), pos, beta)) == 0.0


def _residual_shapes(fn, *args):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        jax.ad_checkpoint.print_saved_residuals(fn, *args)
    shapes = []
    for line in buffer.getvalue().splitlines():
        match = re.match(r"\s*\w+\[([\d,]*)\]", line)
        assert match, line
        shapes.append(tuple(int(v) for v in match.group(1).split(",") if v))
    return shapes


@pytest.mark.parametrize("projection", ["gaussian", "structured"])
def test_gradient_saves_only_order_y_plus_d_residuals(projection):
    d, y = 40, 2048
    features = make_features("sincos", d, y, key=jax.random.key(0), projection=projection)
    mems = patterns(jax.random.key(1), 8, d)
    T = encode(features, mems, 4.0)
    x = mems[0]
    chunk = features.block_size if projection == "structured" else 256
    sizes = [math.prod(s) for s in _residual_shapes(lambda x: energy(x, T, features, 4.0, chunk_size=chunk), x)]
    assert max(sizes) <= features.input_dim and sum(sizes) <= 4 * features.input_dim + 8, sizes
    # with respect to T as well: one more O(F) residual, still no projection chunk
    by_t = lambda t: energy(x, Memory(t, T.count), features, 4.0, chunk_size=chunk)
    sizes_t = [math.prod(s) for s in _residual_shapes(by_t, T.t)]
    assert max(sizes_t) <= features.size and sum(sizes_t) <= features.size + 4 * features.input_dim + 8, sizes_t
    # ordinary autodiff through the same chunked pass saves every chunk's projection rows or products
    plain = lambda x: _energy_parts(x, T.t, features, jnp.float32(4.0), chunk, need_grad=False, need_dt=False)[0]
    assert sum(math.prod(s) for s in _residual_shapes(plain, x)) >= y


def test_features_are_not_differentiable():
    features = make_features("sincos", D, 32, key=jax.random.key(0), projection="materialized")
    T = encode(features, MEMS, BETA)

    def by_matrix(matrix):
        f = jax.tree_util.tree_map(lambda a: a, features)
        f.params["matrix"] = matrix
        return energy(QUERIES[0], T, f, BETA)

    match = "energy: differentiating with respect to the random features is not supported"
    with pytest.raises(ValueError, match=match):
        jax.grad(by_matrix)(features.params["matrix"])


# ----------------------------------------------------------------------------------------------------------------
# retrieval


def test_retrieve_runs_drdam_unchanged_and_tracks_mrdam():
    d, k, beta = 32, 10, 8.0
    mems = patterns(jax.random.key(2), k, d)
    features = make_features("sincos", d, 2048, key=jax.random.key(3), projection="structured")
    T = encode(features, mems, beta)
    clamp = jnp.arange(d) < d // 2
    x0 = jnp.where(clamp, mems[:4], 0.0)

    def run(energy_fn, args):
        return jax.vmap(
            lambda x: dammem.retrieve(energy_fn, x, args, step_size=0.1, clamp=clamp, max_steps=200, trace=True)
        )(x0)

    ours = run(energy, (T, features, beta))
    ref = run(rbf_energy, (mems, beta))
    assert bool(jnp.all(ours.converged)) and bool(jnp.all(ref.converged))
    np.testing.assert_array_equal(np.asarray(ours.x[:, : d // 2]), np.asarray(x0[:, : d // 2]))  # clamped
    assert bool(jnp.all(jnp.diff(ours.trace, axis=-1) <= 1e-6))  # the descent never raises the energy
    # the fixed points agree with MrDAM's (pattern entries are 0 or 0.18; Y = 2048, D = 32; measured max 0.016,
    # mean 0.0028, energy 0.0009)
    assert float(jnp.max(jnp.abs(ours.x - ref.x))) < 0.025
    assert float(jnp.mean(jnp.abs(ours.x - ref.x))) < 0.005
    assert float(jnp.max(jnp.abs(ours.energy - ref.energy))) < 0.01


def test_beta_is_traced_no_retrace():
    features = make_features("cos", D, 64, key=jax.random.key(0))
    traces = []

    @jax.jit
    def value(beta):
        traces.append(1)
        return energy(QUERIES[0], encode(features, MEMS, beta), features, beta)

    values = [float(value(b)) for b in (1.0, 2.0, 5.0)]
    assert len(traces) == 1 and len(set(values)) == 3


# ----------------------------------------------------------------------------------------------------------------
# bad inputs


@pytest.fixture(scope="module")
def small():
    features = make_features("sincos", D, 32, key=jax.random.key(0))
    return features, encode(features, MEMS, BETA)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda f, T: energy(jnp.ones(D + 1), T, f, 1.0),
            ValueError,
            r"energy: x has D = 7 but the features have dim = 6",
        ),
        (lambda f, T: energy(jnp.ones((2, D)), T, f, 1.0), ValueError, r"energy: x must be one query of shape \(D,\)"),
        (lambda f, T: energy(jnp.ones(D), T, f, 0.0), ValueError, r"energy: beta must be finite and > 0, got \[0.0\]"),
        (
            lambda f, T: energy(jnp.ones(D), T, f, 1.0, q="exp"),
            ValueError,
            r"energy: q must be one of \('log', 'identity'\), got 'exp'",
        ),
        (lambda f, T: energy(jnp.ones(D), T, f, 1.0, eps=0.0), ValueError, r"energy: eps must be a finite float > 0"),
        (lambda f, T: energy(jnp.ones(D), T.t, f, 1.0), TypeError, r"energy: T must be a Memory"),
        (
            lambda f, T: energy(jnp.ones(D), T, make_features("cos", D, 32, key=jax.random.key(0)), 1.0),
            ValueError,
            r"energy: T.t has shape \(64,\) but features of kind 'cos' with Y = 32 have F = 32",
        ),
        (
            lambda f, T: energy(jnp.ones(D), encode(f, MEMS[:0], 1.0), f, 1.0),
            ValueError,
            r"energy: T is an empty memory",
        ),
        (lambda f, T: energy(jnp.ones(D), T, "sincos", 1.0), TypeError, r"energy: features must be a Features"),
        (
            lambda f, T: encode(f, jnp.ones((3, D + 2)), 1.0),
            ValueError,
            r"encode: memories must have shape \(K, D\) with D = 6.*\(3, 8\)",
        ),
        (lambda f, T: encode(f, jnp.ones(D), 1.0), ValueError, r"encode: memories must have shape \(K, D\)"),
        (lambda f, T: encode(f, MEMS, -1.0), ValueError, r"encode: beta must be finite and > 0"),
        (lambda f, T: encode(f, MEMS, 1.0, batch_size=0), ValueError, r"encode: batch_size must be >= 1, got 0"),
        (
            lambda f, T: add(T, f, jnp.ones((1, 3)), 1.0),
            ValueError,
            r"add: memories must have shape \(K, D\) with D = 6",
        ),
        (lambda f, T: clip_fraction(jnp.ones((2, 3)), T, f, 1.0), ValueError, r"clip_fraction: x must have shape"),
    ],
)
def test_bad_inputs_name_the_argument(small, call, error, match):
    with pytest.raises(error, match=match):
        call(*small)
