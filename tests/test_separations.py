"""Tests for dammem.separations: float64 NumPy references, custom derivatives, invariants, edge cases, errors.

References (all float64 NumPy, written here): a sort-based simplex projection (sparsemax), a 200-step bisection on the
threshold for alpha-entmax at any alpha (renormalised), a max-shifted softmax and the Tsallis conjugate
``<p, z> + (1 - sum p^alpha) / (alpha (alpha - 1))`` (alpha = 1: logsumexp) evaluated at the reference p.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from dammem import separations as S

TOL = 1e-5  # absolute tolerance on probabilities (float32 results vs float64 references)
NINF = -np.inf


# ----------------------------------------------------------------------------------------------------------------
# Float64 references
# ----------------------------------------------------------------------------------------------------------------


def _rows(z, axis=-1):
    """(R, N) float64 rows of ``z`` with ``axis`` moved last, and the moved shape."""
    zt = np.moveaxis(np.asarray(z, np.float64), axis, -1)
    return zt.reshape(-1, zt.shape[-1]), zt.shape


def _unrows(p2, moved_shape, axis=-1):
    return np.moveaxis(p2.reshape(moved_shape), -1, axis)


def _alpha_per_row(alpha, shape, axis=-1):
    """alpha broadcast like dammem does (size 1 along ``axis``), flattened to one value per row."""
    al = np.asarray(alpha, np.float64)
    al = al.reshape((1,) * (len(shape) - al.ndim) + al.shape)
    target = list(shape)
    target[axis] = 1
    return np.moveaxis(np.broadcast_to(al, target), axis, -1).reshape(-1)


def ref_softmax(z, axis=-1):
    z2, shape = _rows(z, axis)
    m = z2.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(z2 - m)
    total = e.sum(-1, keepdims=True)
    return _unrows(e / np.where(total > 0, total, 1.0), shape, axis)


def ref_sparsemax(z, axis=-1):
    """Sort-based Euclidean projection onto the simplex (Martins & Astudillo 2016, Alg. 1); -inf entries get 0."""
    z2, shape = _rows(z, axis)
    out = np.zeros_like(z2)
    for r, row in enumerate(z2):
        fin = np.isfinite(row)
        if not fin.any():
            continue
        u = np.sort(row[fin])[::-1]
        css = np.cumsum(u)
        k = np.arange(1, u.size + 1)
        kk = k[1.0 + k * u > css][-1]
        tau = (css[kk - 1] - 1.0) / kk
        out[r, fin] = np.maximum(row[fin] - tau, 0.0)
    return _unrows(out, shape, axis)


def ref_entmax_base(z, alpha, axis=-1, iters=200):
    """alpha-entmax by bisection on tau: ``p = [a (z - max) - tau]_+^(1/a)``, a = alpha - 1 (scalar or per row).

    Returns (p, base) with ``base = a (z - max) - tau`` (p > 0 exactly where base > 0), both shaped like ``z``.
    """
    z2, shape = _rows(z, axis)
    a = _alpha_per_row(alpha, np.shape(z), axis)[:, None] - 1.0
    assert np.all((a > 0) & (a <= 1)), "reference needs alpha in (1, 2]"
    finite = np.isfinite(z2)
    live = finite.any(-1, keepdims=True)
    m = np.where(live, np.where(finite, z2, NINF).max(-1, keepdims=True), 0.0)
    x = np.where(live, a * (z2 - m), 0.0)  # <= 0, max 0; -inf entries stay -inf
    n = np.maximum(finite.sum(-1, keepdims=True), 1)
    lo, hi = -np.ones_like(m), -((1.0 / n) ** a)  # S(lo) >= 1 >= S(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        big = (np.maximum(x - mid, 0.0) ** (1.0 / a)).sum(-1, keepdims=True) >= 1.0
        lo, hi = np.where(big, mid, lo), np.where(big, hi, mid)
    base = x - lo
    p = np.maximum(base, 0.0) ** (1.0 / a)
    p = np.where(live, p / np.where(live, p.sum(-1, keepdims=True), 1.0), 0.0)
    return _unrows(p, shape, axis), _unrows(np.where(live, base, NINF), shape, axis)


def ref_entmax(z, alpha, axis=-1):
    return ref_entmax_base(z, alpha, axis)[0]


def ref_separation(z, alpha, axis=-1):
    if np.ndim(alpha) == 0 and alpha == 1.0:
        return ref_softmax(z, axis)
    if np.ndim(alpha) == 0 and alpha == 2.0:
        return ref_sparsemax(z, axis)
    return ref_entmax(z, alpha, axis)


def ref_conjugate(z, alpha, axis=-1):
    """Psi*_alpha(z) = <p, z> + (1 - sum p^alpha) / (alpha (alpha - 1)) at the reference p; alpha = 1: logsumexp."""
    z2, shape = _rows(z, axis)
    live = np.isfinite(z2).any(-1)
    if np.ndim(alpha) == 0 and alpha == 1.0:
        m = np.where(live, np.where(np.isfinite(z2), z2, NINF).max(-1), 0.0)
        val = m + np.log(np.exp(z2 - m[:, None]).sum(-1))
    else:
        p2 = _rows(ref_separation(z, alpha, axis), axis)[0]
        al = _alpha_per_row(alpha, np.shape(z), axis)
        pz = np.where(p2 > 0, p2 * np.where(np.isfinite(z2), z2, 0.0), 0.0).sum(-1)
        val = pz + (1.0 - (p2 ** al[:, None]).sum(-1)) / (al * (al - 1.0))
    return np.where(live, val, NINF).reshape(shape[:-1])


def ref_jvp(p, alpha, dz):
    """The closed-form Jacobian of a Tsallis separation applied to dz: ``s dz - s <s, dz> / sum s``, s = p^(2-alpha)."""
    s = np.where(p > 0, p ** (2.0 - alpha), 0.0)
    return s * dz - s * (s * dz).sum(-1, keepdims=True) / s.sum(-1, keepdims=True)


def test_references_agree_with_each_other():
    """The bisection reference reproduces the sort-based sparsemax at alpha = 2 and softmax as alpha -> 1."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 9)) * 2
    z[1, :4] = NINF
    np.testing.assert_allclose(ref_entmax(z, 2.0), ref_sparsemax(z), atol=1e-12)
    np.testing.assert_allclose(ref_entmax(z, 1 + 1e-7), ref_softmax(z), atol=1e-6)
    np.testing.assert_allclose(ref_sparsemax(z).sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(ref_sparsemax([[1.0, 0.8, -1.0]]), [[0.6, 0.4, 0.0]], atol=1e-12)
    # Psi*_2 = <p, z> + (1 - ||p||^2) / 2
    p = ref_sparsemax(z)
    zf = np.where(np.isfinite(z), z, 0.0)
    np.testing.assert_allclose(ref_conjugate(z, 2.0), (p * zf).sum(-1) + (1 - (p**2).sum(-1)) / 2, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# The separations under test, jitted once per (function, fixed arguments) with alpha either static or traced
# ----------------------------------------------------------------------------------------------------------------


def jit_of(fn, **fixed):
    """``fn`` jitted with the keyword arguments ``fixed`` (alpha, axis) held static: an alpha given here is concrete.

    One jitted function per distinct call (``axis=-1`` is the default and dropped), so tests that pass arguments of
    the same shapes and dtypes share one compiled program; a traced alpha is passed as ``jnp.float32`` throughout
    (a weakly typed Python float would compile a second program)."""
    if fixed.get("axis") == -1:
        del fixed["axis"]
    return _jit_of(fn, tuple(sorted(fixed.items())))


@functools.cache
def _jit_of(fn, fixed):
    return jax.jit(functools.partial(fn, **dict(fixed)))


_FN = {"softmax": S.softmax, "sparsemax": S.sparsemax, "entmax15": S.entmax15, "entmax": S.entmax}
_FN["tsallis"] = S.tsallis_separation
SEP_ALPHA = {  # name -> the alpha of its reference; "_traced_" names pass alpha as a jit argument (general kernel)
    "softmax": 1.0,
    "sparsemax": 2.0,
    "entmax15": 1.5,
    "entmax_1.25": 1.25,
    "entmax_1.75": 1.75,
    "entmax_traced_1.25": 1.25,
    "entmax_traced_1.5": 1.5,
    "entmax_traced_2.0": 2.0,
    "tsallis_1.0": 1.0,
    "tsallis_traced_1.0": 1.0,
    "tsallis_traced_1.3": 1.3,
}


def sep(name: str, axis: int = -1):
    """The separation ``name`` as ``f(z, where=None)``, jitted."""
    alpha = SEP_ALPHA[name]
    base = name.split("_")[0]
    fn = _FN[base]
    if "_traced_" in name:
        traced = jit_of(fn, axis=axis)
        return lambda z, where=None: traced(z, jnp.float32(alpha), where=where)
    fixed = jit_of(fn, alpha=alpha, axis=axis) if base in ("entmax", "tsallis") else jit_of(fn, axis=axis)
    return lambda z, where=None: fixed(z, where=where)


# entmax_1.75 and tsallis_traced_1.3 run the same general kernel as entmax_1.25 / entmax_traced_1.5: they are
# checked against the reference in the property, mask and conjugate tests rather than here (runtime)
REF_SEPS = ["softmax", "sparsemax", "entmax15", "entmax_traced_1.25", "entmax_traced_1.5", "entmax_traced_2.0"]
# slow: tsallis_1.0 runs the kernel of softmax; entmax_1.25 the general kernel of the traced cases at a constant alpha
REF_SEPS_SLOW = ["entmax_1.25", "tsallis_1.0"]
SPARSE = [n for n in REF_SEPS if SEP_ALPHA[n] > 1.0]
EDGE_SEPS = ["softmax", "sparsemax", "entmax15", "entmax_1.25", "entmax_traced_1.25", "tsallis_traced_1.0"]


def _input_families(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 (4, n) inputs per family; every row keeps at least one finite score."""
    rng = np.random.default_rng(seed + n)
    g = lambda: rng.standard_normal((4, n))  # noqa: E731
    ties = rng.integers(-2, 3, (4, n)) * 0.5
    ties[0] = 0.7  # an all-equal row
    ties[1, : n // 2] = 1.5  # many equal top scores
    neg_inf = g()
    neg_inf[rng.random((4, n)) < 0.5] = NINF
    neg_inf[:, 0] = rng.standard_normal(4)
    fam = {
        "normal_0.1": 0.1 * g(),
        "normal_1": g(),
        "normal_10": 10.0 * g(),
        "offset_1e4_scale_1e3": 1e4 + 1e3 * g(),
        "offset_1e4_scale_1": 1e4 + g(),  # top scores closer than 1 at |z| ~ 1e4: needs an exact z - max
        "offset_-300_scale_0.1": -300.0 + 0.1 * g(),
        "ties": ties,
        "partly_neg_inf": neg_inf,
        "beta_1e4": 1e4 * g(),
    }
    return {k: v.astype(np.float32) for k, v in fam.items()}


@functools.cache
def _families_and_ref(n: int, seed: int, alpha: float):
    fams = _input_families(n, seed)
    z = np.concatenate(list(fams.values()))
    return fams, z, ref_separation(z.astype(np.float64), alpha)


def _ref_cases(names, sizes, slow_names=()):
    """(name, n) cases: the sizes in ``sizes`` for every name, except that 257 (unblocked, not a multiple of the
    block) runs only the traced entmax names (one program for their three alphas) and the other kernels there in the
    slow suite; ``slow_names`` and the sizes 1 and 1024 run in the slow suite."""
    cases = []
    for name in list(names) + list(slow_names):
        for n in sizes:
            slow = name in slow_names or n in (1, 1024) or (n == 257 and "_traced_" not in name)
            cases.append(pytest.param(name, n, marks=pytest.mark.slow) if slow else (name, n))
    return cases


# 2048 > 1024 and divisible by 256: the blocked row view; 1024 is the largest unblocked size; single scores (slow
# here) are pinned by test_single_score_rows
@pytest.mark.parametrize("name, n", _ref_cases(REF_SEPS, [3, 257, 2048, 1024, 1], REF_SEPS_SLOW))
def test_matches_float64_reference(name, n):
    fams, z, ref = _families_and_ref(n, 0, SEP_ALPHA[name])
    got = np.asarray(sep(name)(z), np.float64)
    assert got.shape == z.shape
    for i, fam in enumerate(fams):
        rows = slice(4 * i, 4 * i + 4)
        np.testing.assert_allclose(got[rows], ref[rows], atol=TOL, rtol=0, err_msg=f"{name}, N={n}, inputs {fam}")
    assert np.all(got[np.isneginf(z)] == 0.0), f"{name}: -inf scores must get exactly 0"
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=TOL)


@pytest.mark.parametrize("name, n", _ref_cases(SPARSE, [3, 257, 2048]))  # the programs of the reference test
def test_exact_zeros_where_reference_is_zero(name, n):
    """Every score clearly below the threshold (reference base < -margin) gets exactly 0, not a tiny value."""
    alpha = SEP_ALPHA[name]
    _, z, _ = _families_and_ref(n, 1, alpha)
    got = np.asarray(sep(name)(z))
    _, base = ref_entmax_base(z.astype(np.float64), alpha)
    x = (alpha - 1.0) * (z.astype(np.float64) - z.max(-1, keepdims=True))
    outside = base < -1e-5 * (1.0 + np.abs(x))
    inside = base > 1e-5 * (1.0 + np.abs(x))
    assert outside.any() and inside.any()  # not vacuous
    assert np.all(got[outside] == 0.0), f"{name}: {np.count_nonzero(got[outside])} nonzero entries off the support"
    assert np.all(got[inside] > 0.0), f"{name}: entries clearly inside the support must be positive"


def test_documented_examples_eager():
    """The docstring examples, called eagerly (the rest of the file calls the functions under jit)."""
    np.testing.assert_allclose(np.asarray(S.sparsemax(jnp.array([1.0, 0.8, -1.0]))), [0.6, 0.4, 0.0], atol=1e-7)
    out = np.asarray(S.entmax15(jnp.array([2.0, 1.0, -3.0])))
    assert out[2] == 0.0 and out[0] > out[1] > 0
    np.testing.assert_allclose(out, ref_entmax([2.0, 1.0, -3.0], 1.5), atol=TOL)
    out = np.asarray(S.entmax(jnp.array([2.0, 1.0, -3.0]), alpha=1.25))
    np.testing.assert_allclose(out, ref_entmax([2.0, 1.0, -3.0], 1.25), atol=TOL)
    np.testing.assert_allclose(np.asarray(S.softmax(jnp.array([0.0, np.log(3.0)]))), [0.25, 0.75], atol=1e-7)
    np.testing.assert_allclose(float(S.conjugate(jnp.zeros(4), 1.0)), np.log(4.0), rtol=1e-6)


# the axis is moved by code shared by sparsemax, entmax15 and the general kernel (slow); softmax has its own
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize(
    "name",
    ["softmax", "entmax_traced_1.5"] + [pytest.param(n, marks=pytest.mark.slow) for n in ("sparsemax", "entmax15")],
)
def test_axis_of_3d_input(name, axis):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((5, 6, 7)) * 2).astype(np.float32)
    got = np.asarray(sep(name, axis)(z))
    np.testing.assert_allclose(got, ref_separation(z.astype(np.float64), SEP_ALPHA[name], axis), atol=TOL)
    np.testing.assert_allclose(got.sum(axis), 1.0, atol=TOL)


def test_negative_axis_equals_positive_axis():
    z = jnp.asarray(np.random.default_rng(3).standard_normal((5, 6, 7)), jnp.float32)
    # eager: the kernel is compiled per normalised axis, so both calls run one executable (bit-identity: the contract)
    assert np.array_equal(np.asarray(S.entmax15(z, axis=-3)), np.asarray(S.entmax15(z, axis=0)))


def _masked_scores():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4, 6, 9)).astype(np.float32)
    mask = rng.random((4, 6, 9)) < 0.6
    mask[..., 0] = mask[0] = True  # every row along either axis keeps one score
    return z, mask


# entmax_1.25 (slow): the general kernel of tsallis_traced_1.3 at a constant alpha
@pytest.mark.parametrize(
    "name", ["softmax", "sparsemax", "tsallis_traced_1.3", pytest.param("entmax_1.25", marks=pytest.mark.slow)]
)
def test_where_mask_equals_neg_inf_scores(name):
    alpha = SEP_ALPHA[name]
    z, mask = _masked_scores()
    got = np.asarray(sep(name)(z, where=jnp.asarray(mask)))
    ref = ref_separation(np.where(mask, z, NINF).astype(np.float64), alpha)
    np.testing.assert_allclose(got, ref, atol=TOL)
    assert np.all(got[~mask] == 0.0)


# the mask is moved by code shared by sparsemax and the general kernel (slow); softmax has its own
@pytest.mark.parametrize(
    "name",
    ["softmax", "tsallis_traced_1.3"] + [pytest.param(n, marks=pytest.mark.slow) for n in ("sparsemax", "entmax_1.25")],
)
def test_where_mask_moves_with_the_scores_along_axis_0(name):
    alpha = SEP_ALPHA[name]
    z, mask = _masked_scores()
    got0 = np.asarray(sep(name, axis=0)(z, where=jnp.asarray(mask)))
    ref0 = ref_separation(np.where(mask, z, NINF).astype(np.float64), alpha, axis=0)
    np.testing.assert_allclose(got0, ref0, atol=TOL)
    assert np.all(got0[~mask] == 0.0)


# sparsemax (slow): the mask is broadcast by code shared with the general kernel
@pytest.mark.parametrize("name", ["softmax", "entmax_traced_1.5", pytest.param("sparsemax", marks=pytest.mark.slow)])
def test_where_mask_broadcasts(name):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4, 6, 9)).astype(np.float32)
    cols = rng.random(9) < 0.5
    cols[0] = True
    got = np.asarray(sep(name)(z, where=jnp.asarray(cols)))  # (N,) mask broadcast over the batch
    ref = ref_separation(np.where(cols, z, NINF).astype(np.float64), SEP_ALPHA[name])
    np.testing.assert_allclose(got, ref, atol=TOL)
    assert np.all(got[..., ~cols] == 0.0)


# slow: 1.25 and 1.75 compile the general kernel at a constant alpha (the traced call covers it at 1.0, 1.5, 2.0)
@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0] + [pytest.param(a, marks=pytest.mark.slow) for a in (1.25, 1.75)])
@pytest.mark.parametrize("n", [3, 2048])
def test_conjugate_matches_reference(alpha, n):
    fams = _input_families(n, seed=2)
    z = np.concatenate(list(fams.values()))
    got = np.asarray(jit_of(S.conjugate, alpha=alpha)(z), np.float64)
    got_traced = np.asarray(jit_of(S.conjugate)(z, jnp.float32(alpha)), np.float64)
    ref = ref_conjugate(z.astype(np.float64), alpha)
    # float32 resolves Psi* (~ max z + log N) only to a few ulps of its magnitude: relative error ~1e-7
    scale = 1.0 + np.abs(np.where(np.isfinite(z), z, 0.0)).max(-1) + np.abs(ref)
    for i, fam in enumerate(fams):
        rows = slice(4 * i, 4 * i + 4)
        atol = 1e-6 * scale[rows].max()
        np.testing.assert_allclose(got[rows], ref[rows], rtol=0, atol=atol, err_msg=fam)
        np.testing.assert_allclose(got_traced[rows], ref[rows], rtol=0, atol=atol, err_msg=f"traced {fam}")


def test_conjugate_axis_where_and_per_row_alpha():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 4, 5)).astype(np.float32)
    alpha = np.array([1.2, 1.5, 2.0])[:, None, None]  # (3, 1, 1): per leading index, size 1 on axis 1
    mask = rng.random((3, 4, 5)) < 0.7
    mask[:, 0, :] = True
    got = np.asarray(jit_of(S.conjugate, axis=1)(z, jnp.asarray(alpha), where=jnp.asarray(mask)))
    ref = ref_conjugate(np.where(mask, z, NINF).astype(np.float64), alpha, axis=1)
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, ref, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Derivatives: check_grads in float64, and the closed-form Jacobian on long (blocked) rows
# ----------------------------------------------------------------------------------------------------------------

# Distinct scores, every element at least 0.02 away from the support boundary at the alphas used (checked below).
Z_GRAD = np.array(
    [
        [1.30, 0.10, -0.40, 0.90, -2.00, 0.55, 1.05],
        [0.20, 0.35, -0.15, 0.00, 0.60, -1.10, 0.45],
        [-0.30, 2.10, 1.20, -0.80, 1.75, 0.15, -1.60],
    ]
)
MASK_GRAD = Z_GRAD > -1.5
# eps = 1e-4: at 1e-3 the central difference itself is off by ~2e-5 (p = base^(1/(alpha-1)) curves sharply near
# the support edge); the derivatives agree with a 1e-6 difference of the float64 reference to 1e-10.
GRAD_KW = dict(order=1, modes=("fwd", "rev"), eps=1e-4, atol=1e-5, rtol=1e-5)


def _assert_away_from_kinks(z, alpha, margin=0.02):
    _, base = ref_entmax_base(z, alpha)
    finite = np.isfinite(base)
    assert np.all(np.abs(base[finite]) > margin), "test inputs must not sit on a support boundary"


def test_grad_inputs_are_away_from_kinks():
    for alpha in (1.3, 1.5, 1.6, 1.7, 1.9, 2.0):
        _assert_away_from_kinks(Z_GRAD, alpha)
    _assert_away_from_kinks(Z_GRAD.T, 2.0)  # sparsemax along axis 0
    _assert_away_from_kinks(np.where(MASK_GRAD, Z_GRAD, NINF), 1.5)  # the masked entmax15


@pytest.mark.parametrize(
    "fn, kw",
    [
        pytest.param(S.softmax, {}, marks=pytest.mark.slow),  # plain JAX autodiff, no custom rule
        (S.sparsemax, {}),
        (S.entmax15, {}),
        pytest.param(S.tsallis_separation, {"alpha": 1.0}, marks=pytest.mark.slow),  # softmax's kernel: no rule
        (S.conjugate, {"alpha": 1.0}),
        (S.conjugate, {"alpha": 1.5}),
        (S.conjugate, {"alpha": 2.0}),
        pytest.param(S.sparsemax, {"axis": 0}, marks=pytest.mark.slow),  # the axis is a moveaxis around the kernel
    ],
    ids=lambda x: getattr(x, "__name__", None) or "-".join(f"{k}={v}" for k, v in x.items()) or "default",
)
def test_check_grads_in_z(x64, fn, kw):
    z = jnp.asarray(Z_GRAD)
    f = jit_of(fn, **kw)
    assert f(z).dtype == jnp.float64  # float64 in, float64 computation
    check_grads(f, (z,), **GRAD_KW)


def test_check_grads_masked(x64):
    f = jit_of(S.entmax15)
    mask = jnp.asarray(MASK_GRAD)
    check_grads(lambda z: f(z, where=mask), (jnp.asarray(Z_GRAD),), **GRAD_KW)


# entmax at a traced alpha runs the general kernel of tsallis_separation (slow: the same derivative rules)
@pytest.mark.parametrize("alpha", [1.3, pytest.param(1.7, marks=pytest.mark.slow)])  # per-row: 1.3, 1.6, 1.9
@pytest.mark.parametrize(
    "fn",
    [pytest.param(S.entmax, marks=pytest.mark.slow), S.tsallis_separation, S.conjugate],
    ids=lambda f: f.__name__,
)
def test_check_grads_in_z_and_alpha(x64, fn, alpha):
    z, al = jnp.asarray(Z_GRAD), jnp.asarray(alpha, jnp.float64)
    check_grads(jit_of(fn), (z, al), **GRAD_KW)


# entmax (slow): its per-row alpha derivative is also pinned by test_alpha_derivative_matches_reference_...
@pytest.mark.slow  # default suite: per-row alpha derivatives against the reference (test_alpha_derivative_matches_...)
@pytest.mark.parametrize("fn", [S.entmax, S.conjugate], ids=lambda f: f.__name__)
def test_check_grads_per_row_alpha(x64, fn):
    z, al = jnp.asarray(Z_GRAD), jnp.asarray([[1.3], [1.6], [1.9]], jnp.float64)
    check_grads(jit_of(fn), (z, al), **GRAD_KW)


def test_alpha_derivative_matches_reference_finite_difference(x64):
    """d p / d alpha against a central difference of the float64 bisection reference (per-row alpha)."""
    z, alpha = jnp.asarray(Z_GRAD), jnp.asarray([[1.25], [1.5], [1.8]])
    _, dp = jax.jvp(lambda a: jit_of(S.entmax)(z, a), (alpha,), (jnp.ones_like(alpha),))
    h, al = 1e-5, np.asarray(alpha)
    fd = (ref_entmax(Z_GRAD, al + h) - ref_entmax(Z_GRAD, al - h)) / (2 * h)
    assert np.abs(fd).max() > 1e-2  # the comparison is not vacuous
    np.testing.assert_allclose(np.asarray(dp), fd, atol=1e-7)
    # conjugate: d Psi* / d alpha = d H_alpha(p) / d alpha at fixed p (envelope theorem)
    dc = jax.grad(lambda a: jit_of(S.conjugate)(z, a).sum())(alpha)
    fdc = (ref_conjugate(Z_GRAD, al + h) - ref_conjugate(Z_GRAD, al - h)) / (2 * h)
    np.testing.assert_allclose(np.asarray(dc).ravel(), fdc, atol=1e-7)


@pytest.mark.parametrize("n", [2048, pytest.param(7, marks=pytest.mark.slow)])  # short rows: check_grads below
# entmax_1.25 (slow): the derivative rule of entmax_traced_1.5's kernel at a constant alpha
@pytest.mark.parametrize(
    "name", ["sparsemax", "entmax15", "entmax_traced_1.5", pytest.param("entmax_1.25", marks=pytest.mark.slow)]
)
def test_jvp_and_vjp_match_closed_form_jacobian(name, n):
    """Float32 JVP/VJP on short and blocked rows against J = diag(s) - s s^T / sum s from the reference p."""
    fn, alpha = sep(name), SEP_ALPHA[name]
    rng = np.random.default_rng(6)
    z = (rng.standard_normal((3, n)) * 2).astype(np.float32)
    z[1, ::3] = NINF
    dz = rng.standard_normal((3, n)).astype(np.float32)
    want = ref_jvp(ref_separation(z.astype(np.float64), alpha), alpha, dz.astype(np.float64))
    _, tangent = jax.jvp(fn, (jnp.asarray(z),), (jnp.asarray(dz),))
    _, vjp = jax.vjp(fn, jnp.asarray(z))
    (cot,) = vjp(jnp.asarray(dz))  # J is symmetric
    np.testing.assert_allclose(np.asarray(tangent), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(cot), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tangent).sum(-1), 0.0, atol=1e-5)  # the mass stays 1
    assert np.all(np.asarray(cot)[np.isneginf(z)] == 0.0)


# entmax15 (slow): the mask enters the derivative rule as it does for sparsemax and the general kernel
@pytest.mark.parametrize(
    "name", ["softmax", "sparsemax", "entmax_1.25", pytest.param("entmax15", marks=pytest.mark.slow)]
)
def test_masked_gradient_equals_gradient_of_the_compact_problem(name):
    fn = sep(name)
    rng = np.random.default_rng(7)
    z = (0.3 * rng.standard_normal(8)).astype(np.float32)  # a support of several scores: J != 0
    w = rng.standard_normal(8).astype(np.float32)
    mask = np.array([1, 0, 1, 1, 0, 1, 0, 1], bool)
    g_masked = jax.grad(lambda z: jnp.vdot(fn(z, where=jnp.asarray(mask)), w))(jnp.asarray(z))
    g_compact = jax.grad(lambda zc: jnp.vdot(fn(zc), w[mask]))(jnp.asarray(z[mask]))
    np.testing.assert_allclose(np.asarray(g_masked)[mask], np.asarray(g_compact), atol=1e-6)
    assert np.all(np.asarray(g_masked)[~mask] == 0.0) and np.any(np.asarray(g_compact) != 0.0)


# ----------------------------------------------------------------------------------------------------------------
# Second derivatives (float64): Jacobians of Jacobians in every mode, Hessians of the conjugate, derivatives in alpha
# ----------------------------------------------------------------------------------------------------------------

Z_H = Z_GRAD[0]  # 7 distinct scores, every one at least 0.02 from a support boundary (test_grad_inputs_are_away...)


def fd_jacobian(f, x, h=1e-6):
    """Central differences of ``f`` at ``x`` (float64): shape ``f(x).shape + x.shape``."""
    x = np.asarray(x, np.float64)
    steps = h * np.eye(x.size).reshape((x.size,) + x.shape)
    cols = [(np.asarray(f(x + e), np.float64) - np.asarray(f(x - e), np.float64)) / (2 * h) for e in steps]
    return np.moveaxis(np.stack(cols), 0, -1).reshape(np.shape(f(x)) + x.shape)


def fd_alpha(f, alpha, h=1e-5):
    """d f / d alpha by differences: central inside (1, 2), second-order one-sided at the end points 1 and 2."""
    if 1.0 < alpha < 2.0:
        return (np.asarray(f(alpha + h)) - np.asarray(f(alpha - h))) / (2 * h)
    h = h if alpha == 1.0 else -h  # the one-sided limit from inside [1, 2]
    return (-3 * np.asarray(f(alpha)) + 4 * np.asarray(f(alpha + h)) - np.asarray(f(alpha + 2 * h))) / (2 * h)


# name -> (function of (z, alpha), alpha, traced): a traced alpha is an argument of the jitted derivative
SECOND_ORDER = {
    "softmax": (lambda z, a: S.softmax(z), None, False),
    "sparsemax": (lambda z, a: S.sparsemax(z), None, False),
    "entmax15": (lambda z, a: S.entmax15(z), None, False),
    "entmax_1.3": (lambda z, a: S.entmax(z, 1.3), None, False),
    "entmax_traced_1.3": (S.entmax, 1.3, True),
    "entmax_traced_1.75": (S.entmax, 1.75, True),
    "tsallis_traced_1.0": (S.tsallis_separation, 1.0, True),
    "tsallis_traced_1.3": (S.tsallis_separation, 1.3, True),
    "tsallis_traced_1.75": (S.tsallis_separation, 1.75, True),
    "tsallis_traced_2.0": (S.tsallis_separation, 2.0, True),
}
# slow: softmax is plain JAX autodiff; entmax at a traced alpha runs the general kernel of the traced
# tsallis_separation cases (one compiled program for the four alphas), entmax_1.3 the same kernel at a concrete alpha
SECOND_ORDER_SLOW = {"softmax", "entmax_1.3", "entmax_traced_1.3", "entmax_traced_1.75"}
MODES = {
    "jacfwd(jacfwd)": lambda f: jax.jacfwd(jax.jacfwd(f)),
    "jacrev(jacrev)": lambda f: jax.jacrev(jax.jacrev(f)),
    "jacfwd(jacrev)": lambda f: jax.jacfwd(jax.jacrev(f)),
}


@functools.cache
def _jacobians_of(fn):
    """``(jac, {mode: jac2})`` of ``f(z, a) = p + p^2``, ``p = fn(z, a)``: the first and second z-derivatives,
    jitted once per function (the traced alphas of one function share the programs)."""

    def f(z, a):
        p = fn(z, a)
        return p + p * p  # the p^2 term adds J^T J terms; for sparsemax they are the only second derivative

    second = {mode: jax.jit(lambda z, a, make=make: make(lambda z: f(z, a))(z)) for mode, make in MODES.items()}
    return jax.jit(jax.jacrev(f)), second


def _second_order_cases():
    """(name, modes): the general kernel (traced tsallis_separation) in all three modes; sparsemax and entmax15 in
    forward-over-reverse, their other two modes in the slow suite (the modes differ in how JAX transposes the one
    derivative rule, which the general kernel pins)."""
    slow = pytest.mark.slow
    cases = []
    for name in SECOND_ORDER:
        if name in ("sparsemax", "entmax15"):
            cases.append(pytest.param(name, ("jacfwd(jacrev)",), id=f"{name}-fwd_rev"))
            cases.append(
                pytest.param(name, ("jacfwd(jacfwd)", "jacrev(jacrev)"), marks=slow, id=f"{name}-fwd_fwd-rev_rev")
            )
        else:
            marks = slow if name in SECOND_ORDER_SLOW else ()
            cases.append(pytest.param(name, tuple(MODES), marks=marks, id=f"{name}-all"))
    return cases


@pytest.mark.parametrize("name, modes", _second_order_cases())
def test_jacobian_of_jacobian_matches_differences_of_the_jacobian(x64, name, modes):
    """d^2 (p + p^2) / dz^2 in three modes against central differences of the first derivative."""
    fn, alpha, traced = SECOND_ORDER[name]
    a = jnp.float64(alpha if traced else 0.0)
    jac, second = _jacobians_of(fn)
    want = fd_jacobian(lambda z: jac(jnp.asarray(z), a), Z_H)
    assert np.abs(want).max() > 0.05  # not vacuous
    for mode in modes:
        jac2 = second[mode]
        got = np.asarray(jac2(jnp.asarray(Z_H), a))
        assert np.all(np.isfinite(got)), (name, mode)
        np.testing.assert_allclose(got, want, atol=1e-7, rtol=0, err_msg=f"{name} {mode}")


@functools.cache
def _traced_conjugate_derivatives():
    """The jitted Hessian and gradient in ``z`` of the conjugate, alpha traced."""
    return jax.jit(jax.hessian(S.conjugate)), jax.jit(jax.grad(S.conjugate))


# concrete 1.3 and 1.5 (slow): the traced program covers them, and the concrete kernels' Jacobians are pinned by
# test_jvp_and_vjp_match_closed_form_jacobian
@pytest.mark.parametrize(
    "alpha, traced",
    [(a, True) for a in (1.0, 1.3, 1.5, 2.0)]
    + [(1.0, False), (2.0, False)]
    + [pytest.param(a, False, marks=pytest.mark.slow) for a in (1.3, 1.5)],
)
def test_conjugate_hessian(x64, alpha, traced):
    """Hessian of Psi* = Jacobian of the separation: differences of its gradient and the closed form from the
    float64 reference p (J = diag(s) - s s^T / sum s, s = p^(2 - alpha))."""
    if traced:  # one compile of each derivative serves every alpha
        hess, grad = _traced_conjugate_derivatives()
        got, g = hess(jnp.asarray(Z_H), alpha), (lambda z: grad(jnp.asarray(z), alpha))
    else:
        conj = lambda z: S.conjugate(z, alpha)  # noqa: E731
        got, g = jax.jit(jax.hessian(conj))(jnp.asarray(Z_H)), jax.jit(jax.grad(conj))
    got = np.asarray(got)
    np.testing.assert_allclose(got, fd_jacobian(lambda z: g(jnp.asarray(z)), Z_H), atol=1e-7, rtol=0)
    p = ref_separation(Z_H, alpha)
    closed = np.stack([ref_jvp(p, alpha, e) for e in np.eye(Z_H.size)], -1)
    assert np.abs(closed).max() > 0.05
    np.testing.assert_allclose(got, closed, atol=1e-9, rtol=0)


# entmax at a traced alpha is the general kernel of tsallis_separation (slow); the tsallis cases share one program
ALPHA_SECOND = [
    pytest.param(S.entmax, 1.3, marks=pytest.mark.slow, id="entmax-1.3"),
    pytest.param(S.entmax, 1.75, marks=pytest.mark.slow, id="entmax-1.75"),
    pytest.param(S.tsallis_separation, 1.0, id="tsallis_separation-1.0"),  # one-sided derivatives at the end points
    pytest.param(S.tsallis_separation, 1.3, id="tsallis_separation-1.3"),
    pytest.param(S.tsallis_separation, 1.75, id="tsallis_separation-1.75"),
    pytest.param(S.conjugate, 1.0, id="conjugate-1.0"),
    pytest.param(S.conjugate, 1.6, id="conjugate-1.6"),
    pytest.param(S.conjugate, 2.0, id="conjugate-2.0"),
]


@functools.cache
def _alpha_derivatives(fn):
    """Jitted first and second derivatives of ``fn(z, alpha)`` in z and alpha, once per function (alpha traced)."""
    jac_z = jax.jit(jax.jacrev(fn, 0))
    d_alpha = jax.jit(jax.jacfwd(fn, 1))
    mixed = jax.jit(jax.jacfwd(jac_z, 1))
    mixed_other_order = jax.jit(jax.jacrev(d_alpha, 0))
    d2_alpha = jax.jit(jax.jacrev(jax.jacrev(fn, 1), 1))
    return jac_z, d_alpha, mixed, mixed_other_order, d2_alpha


@pytest.mark.parametrize("fn, alpha", ALPHA_SECOND)
def test_second_derivatives_in_alpha(x64, fn, alpha):
    """d/dalpha of the z-Jacobian, d/dz of the alpha-derivative and d^2/dalpha^2, against differences of the
    first derivatives (one-sided at alpha = 1 and 2)."""
    z = jnp.asarray(Z_H)
    jac_z, d_alpha, mixed, mixed_other_order, d2_alpha = _alpha_derivatives(fn)
    want = fd_alpha(lambda a: jac_z(z, a), alpha)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(np.asarray(mixed(z, alpha)), want, atol=2e-7, rtol=0)
    # the other order (the alpha rule differentiated in z) agrees: mixed partials commute
    np.testing.assert_allclose(np.asarray(mixed_other_order(z, alpha)), want, atol=2e-7, rtol=0)
    want2 = fd_alpha(lambda a: d_alpha(z, a), alpha)
    np.testing.assert_allclose(np.asarray(d2_alpha(z, alpha)), want2, atol=2e-7)


@pytest.mark.parametrize("alpha", [1.0, 1.02])
def test_alpha_derivative_near_one_matches_reference_differences(x64, alpha):
    """dp/dalpha and dPsi*/dalpha at a traced alpha = 1 (the one-sided limit) and just above it (where ``a log p`` is
    small and series evaluate the closed forms) against differences of the float64 references."""
    z = Z_GRAD
    ref_p = lambda a: ref_softmax(z) if a == 1.0 else ref_entmax(z, a)  # noqa: E731
    want_p = fd_alpha(ref_p, alpha, h=1e-4)
    want_c = fd_alpha(lambda a: ref_conjugate(z, a), alpha, h=1e-4)
    _, got_p = jax.jvp(lambda a: jit_of(S.tsallis_separation)(jnp.asarray(z), a), (alpha,), (1.0,))
    got_c = jax.jacfwd(lambda a: jit_of(S.conjugate)(jnp.asarray(z), a))(alpha)
    assert np.abs(want_p).max() > 0.05 and np.abs(want_c).min() > 0.05
    np.testing.assert_allclose(np.asarray(got_p), want_p, atol=1e-7)
    np.testing.assert_allclose(np.asarray(got_c), want_c, atol=1e-7)


def test_traced_alpha_one_is_exactly_softmax_and_logsumexp(x64):
    """A traced alpha of exactly 1 runs the softmax formula (not 1 + 1e-6), also row by row in a per-row alpha."""
    z = _z(shape=(4, 33)).astype(np.float64)
    # one per-row alpha of shape (4, 1) for both calls (one compile each): all ones, then mixed
    ones = np.ones((4, 1))
    np.testing.assert_allclose(np.asarray(jit_of(S.conjugate)(z, ones)), ref_conjugate(z, 1.0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jit_of(S.tsallis_separation)(z, ones)), ref_softmax(z), rtol=0, atol=1e-14)
    alpha = np.array([[1.0], [1.5], [1.0], [1.3]])
    got = np.asarray(jit_of(S.tsallis_separation)(z, alpha))
    conj = np.asarray(jit_of(S.conjugate)(z, alpha))
    for r, a in enumerate(alpha[:, 0]):
        want = ref_softmax(z[r]) if a == 1.0 else ref_entmax(z[r], a)
        np.testing.assert_allclose(got[r], want, rtol=0, atol=1e-12 if a == 1.0 else 1e-10)
        np.testing.assert_allclose(conj[r], ref_conjugate(z[r], a), rtol=0, atol=1e-12 if a == 1.0 else 1e-10)


# ----------------------------------------------------------------------------------------------------------------
# Gradients through scan-mode energy descent (the custom rules differentiated inside lax.scan, reverse mode)
# ----------------------------------------------------------------------------------------------------------------


@functools.cache
def _scan_descent_loss():
    """Jitted ``(x0, memories, beta, alpha, w) -> (<x_T, w>, x_T)`` after 6 scan steps of energy descent, and its
    gradient in the first four arguments (alpha traced: one compile serves every alpha)."""
    import dammem
    from dammem import energies

    def loss(x0, memories, beta, alpha, w):
        out = dammem.retrieve(
            energies.sparse_hopfield_energy,
            x0,
            (memories, beta, alpha),
            step_size=0.3,
            max_steps=6,
            tol=None,
            loop="scan",
        )
        return jnp.vdot(out.x, w), out.x

    return jax.jit(loss), jax.jit(jax.grad(lambda *args: loss(*args)[0], argnums=(0, 1, 2, 3)))


@pytest.mark.parametrize("alpha", [1.3, 1.5, 2.0])
def test_grad_through_scan_descent_matches_differences(x64, alpha):
    rng = np.random.default_rng(24)
    memories = rng.standard_normal((5, 4))
    x0 = rng.standard_normal(4)
    beta = 0.3
    w = rng.standard_normal(4)
    loss_w, grad_w = _scan_descent_loss()
    loss = lambda *args: loss_w(*args, w)  # noqa: E731

    # the final state keeps several memories in the support: the Jacobian of the separation matters
    x_final = loss(x0, memories, beta, alpha)[1]
    assert np.count_nonzero(np.asarray(S.tsallis_separation(beta * memories @ x_final, alpha))) >= 2
    value = lambda *args: loss(*args)[0]  # noqa: E731
    grads = grad_w(x0, memories, beta, alpha, w)
    fd_x0 = fd_jacobian(lambda x: value(x, memories, beta, alpha), x0)
    fd_mem = fd_jacobian(lambda m: value(x0, m, beta, alpha), memories)
    fd_beta = fd_jacobian(lambda b: value(x0, memories, b, alpha), np.float64(beta))
    for got, want in zip(grads[:3], (fd_x0, fd_mem, fd_beta)):
        assert np.abs(want).max() > 1e-2
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-7, rtol=0)
    np.testing.assert_allclose(float(grads[3]), fd_alpha(lambda a: value(x0, memories, beta, a), alpha), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Properties (hypothesis)
# ----------------------------------------------------------------------------------------------------------------

# one name per kernel and alpha mode: the traced general kernel is tsallis_traced_1.3 (entmax_traced_* is the same)
PROP_SEPS = ["softmax", "sparsemax", "entmax15", "entmax_1.25", "tsallis_traced_1.3"]


@st.composite
def score_rows(draw, grid=False):
    """(2, n) float32 scores with n from three sizes (to bound compiles); ties are likely (values from a small set)."""
    n = draw(st.sampled_from([1, 3, 8]))
    if grid:  # multiples of 2^-8 in [-8, 8]: adding an integer up to 1e4 stays exact in float32
        elems = st.integers(-(2**11), 2**11).map(lambda k: k / 256.0)
    else:
        elems = st.one_of(
            st.floats(-20, 20, width=32, allow_subnormal=False),
            st.sampled_from([0.0, 1.0, -1.0, 0.5, 3.0]),
            st.just(NINF),
        )
    vals = draw(st.lists(elems, min_size=2 * n, max_size=2 * n))
    z = np.array(vals, np.float32).reshape(2, n)
    z[:, 0] = np.where(np.isfinite(z[:, 0]), z[:, 0], 0.25)  # every row keeps one finite score
    return z


PROPS = settings(max_examples=25, deadline=None)


@PROPS
@given(z=score_rows(), name=st.sampled_from(PROP_SEPS))
def test_property_simplex_and_reference_zeros(z, name):
    alpha = SEP_ALPHA[name]
    p = np.asarray(sep(name)(z))
    assert np.all(p >= 0.0)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=TOL)
    assert np.all(p[np.isneginf(z)] == 0.0)
    np.testing.assert_allclose(p, ref_separation(z.astype(np.float64), alpha), atol=TOL)
    if alpha > 1.0:
        _, base = ref_entmax_base(z.astype(np.float64), alpha)
        x = (alpha - 1.0) * (z.astype(np.float64) - z.max(-1, keepdims=True))
        assert np.all(p[base < -1e-5 * (1.0 + np.abs(x))] == 0.0)


@PROPS
@given(z=score_rows(grid=True), shift=st.integers(-10_000, 10_000), name=st.sampled_from(PROP_SEPS))
def test_property_shift_invariance(z, shift, name):
    """Adding a constant to a row changes nothing (the shift is exact in float32 here, so the outputs must agree)."""
    fn = sep(name)
    shifted = z + np.float32(shift)
    assert np.array_equal(shifted - np.float32(shift), z)  # the shift itself is exact
    np.testing.assert_allclose(np.asarray(fn(shifted)), np.asarray(fn(z)), atol=TOL)


@PROPS
@given(z=score_rows(), seed=st.integers(0, 2**16), name=st.sampled_from(PROP_SEPS))
def test_property_permutation_equivariance(z, seed, name):
    fn = sep(name)
    perm = np.random.default_rng(seed).permutation(z.shape[-1])
    np.testing.assert_allclose(np.asarray(fn(z[:, perm])), np.asarray(fn(z))[:, perm], atol=1e-6)


@PROPS
@given(z=score_rows(), name=st.sampled_from(["sparsemax", "entmax15", "entmax_1.25", "entmax_traced_2.0"]))
def test_property_support_contains_argmax(z, name):
    p = np.asarray(sep(name)(z))
    top = z == z.max(-1, keepdims=True)
    assert np.all(p[top] > 0.0)  # every maximiser (ties included) is in the support
    np.testing.assert_allclose(p[top], np.broadcast_to(p.max(-1, keepdims=True), p.shape)[top], rtol=1e-6)
    for row_p, row_z in zip(p, z):  # probabilities are ordered like the scores
        order = np.argsort(row_z, kind="stable")
        assert np.all(np.diff(row_p[order]) >= -1e-7)


# ----------------------------------------------------------------------------------------------------------------
# Consistency between the kernels
# ----------------------------------------------------------------------------------------------------------------


def _z(seed=8, shape=(6, 33), scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_fixed_alphas_dispatch_to_the_closed_forms():
    """Eager calls: a kernel is compiled once per (kind, axis, shape), so a concrete alpha that dispatches to a closed
    form runs the very executable of sparsemax / entmax15 and the outputs are bit-identical (the contract)."""
    z = _z()
    same = lambda a, b: np.array_equal(np.asarray(a), np.asarray(b))  # noqa: E731
    assert same(S.entmax(z, 2.0), S.sparsemax(z))
    assert same(S.entmax(z, 1.5), S.entmax15(z))
    assert same(S.tsallis_separation(z, 2.0), S.sparsemax(z))
    assert same(S.entmax(z, np.full((6, 1), 1.5)), S.entmax15(z))  # a concrete, uniform array alpha
    assert not same(S.sparsemax(z), S.entmax15(z))  # not vacuous: the kernels differ
    # alpha = 1 runs the softmax kernel of the threshold machinery; the public softmax is the direct formula
    # float32: a few ulp per exp and per sum over 33 terms
    np.testing.assert_allclose(np.asarray(S.tsallis_separation(z, 1.0)), np.asarray(S.softmax(z)), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(S.softmax(z)), np.asarray(jax.nn.softmax(z)), rtol=1e-6, atol=1e-9)


def test_traced_alpha_matches_closed_form_kernels():
    z = _z()
    np.testing.assert_allclose(np.asarray(sep("entmax_traced_1.5")(z)), np.asarray(sep("entmax15")(z)), atol=TOL)
    np.testing.assert_allclose(np.asarray(sep("entmax_traced_2.0")(z)), np.asarray(sep("sparsemax")(z)), atol=TOL)
    # a traced alpha of exactly 1 runs the softmax formula
    np.testing.assert_allclose(np.asarray(sep("tsallis_traced_1.0")(z)), np.asarray(sep("softmax")(z)), atol=1e-7)


def test_alpha_to_one_approaches_softmax():
    z = _z(scale=3.0)
    sm = ref_softmax(z.astype(np.float64))
    errors = []
    for eps in (1e-2, 1e-3, 1e-4):
        got = np.asarray(jit_of(S.entmax)(z, jnp.float32(1.0 + eps)), np.float64)
        np.testing.assert_allclose(got, ref_entmax(z.astype(np.float64), 1.0 + eps), atol=1e-6)
        errors.append(np.abs(got - sm).max())
    assert errors[0] > 5 * errors[1] > 25 * errors[2] > 0, errors  # ~linear in alpha - 1
    assert errors[2] < 1e-3


def test_conjugate_gradient_is_the_separation_at_a_traced_alpha():
    """One compiled gradient for every alpha, against the float64 reference separation."""
    z = _z(shape=(4, 19))
    z[2, :5] = NINF
    grad = jax.jit(jax.grad(lambda z, a: jit_of(S.conjugate)(z, a).sum()))
    for alpha in (1.0, 1.3, 1.5, 2.0):
        want = ref_separation(z.astype(np.float64), alpha)
        np.testing.assert_allclose(np.asarray(grad(z, jnp.float32(alpha))), want, atol=TOL, err_msg=str(alpha))


@pytest.mark.slow  # default suite: the traced alpha above, and check_grads of the concrete kernels' conjugates
@pytest.mark.parametrize("alpha", [1.0, 1.3, 1.5, 2.0])
def test_conjugate_gradient_is_the_separation(alpha):
    z = _z(shape=(4, 19))
    z[2, :5] = NINF
    want = np.asarray(jit_of(S.tsallis_separation, alpha=alpha)(z))
    grad = jax.grad(lambda z: jit_of(S.conjugate, alpha=alpha)(z).sum())(jnp.asarray(z))
    np.testing.assert_allclose(np.asarray(grad), want, atol=1e-6)
    grad_t = jax.grad(lambda z, a: jit_of(S.conjugate)(z, a).sum())(jnp.asarray(z), jnp.float32(alpha))
    np.testing.assert_allclose(np.asarray(grad_t), want, atol=TOL)


def test_conjugate_closed_forms():
    z = _z()  # the shape of the other (6, 33) checks: shared programs
    conj = jit_of(S.conjugate)
    p = np.asarray(jit_of(S.sparsemax)(z), np.float64)
    want = (p * z).sum(-1) + (1.0 - (p**2).sum(-1)) / 2.0
    np.testing.assert_allclose(np.asarray(jit_of(S.conjugate, alpha=2.0)(z)), want, rtol=1e-6, atol=1e-6)
    lse = np.asarray(jax.scipy.special.logsumexp(jnp.asarray(z), axis=-1))
    np.testing.assert_allclose(np.asarray(jit_of(S.conjugate, alpha=1.0)(z)), lse, rtol=1e-6)
    # Psi*(z + c) = Psi*(z) + c, and Psi* >= max z (Tsallis entropy >= 0) with equality for one-hot rows
    a17 = jnp.float32(1.7)
    np.testing.assert_allclose(np.asarray(conj(z + 3.0, a17)), np.asarray(conj(z, a17)) + 3.0, atol=1e-5)
    assert np.all(np.asarray(conj(z, a17)) >= z.max(-1) - 1e-6)
    one_hot = jnp.asarray([[5.0, -20.0, -30.0, 1.0] + [-40.0] * 29] * 6)  # the shape of z: the same program
    np.testing.assert_allclose(np.asarray(conj(one_hot, jnp.float32(1.5))), [5.0] * 6, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Edge cases (module docstring policy)
# ----------------------------------------------------------------------------------------------------------------


@functools.cache
def _value_and_grad(name: str):
    """``(z, where, w) -> (p, d<p, w>/dz)`` for separation ``name``, jitted: the edge-case tests share one compile
    per separation, dtype and shape (a mask is always passed; all True where a test needs none)."""
    fn = sep(name)

    @jax.jit
    def f(z, where, w):
        p, vjp = jax.vjp(lambda z: fn(z, where=where), z)
        return p, vjp(w.astype(p.dtype))[0]

    return f


EDGE_SHAPE = (4, 50)
ALL_TRUE = np.ones(EDGE_SHAPE, bool)
W_EDGE = _z(seed=9, shape=EDGE_SHAPE)


@pytest.mark.parametrize("name", EDGE_SEPS)
def test_dead_rows_give_zeros_and_zero_gradient(name):
    f = _value_and_grad(name)
    z = _z(shape=EDGE_SHAPE)
    clean, _ = map(np.asarray, f(z, ALL_TRUE, W_EDGE))
    dead = z.copy()
    dead[1] = NINF
    mask = ALL_TRUE.copy()
    mask[1] = False
    for zz, where in ((dead, ALL_TRUE), (z, mask)):  # no finite score, or all masked out
        p, g = map(np.asarray, f(zz, where, W_EDGE))
        assert np.all(p[1] == 0.0)
        assert np.array_equal(p[[0, 2, 3]], clean[[0, 2, 3]])
        assert np.all(np.isfinite(g)) and np.all(g[1] == 0.0) and np.any(g[0] != 0.0)


# 1.25 and 1.5 (slow): dead rows are handled before the kernels, as at 1.0 (softmax) and 2.0
@pytest.mark.parametrize("alpha", [1.0, 2.0] + [pytest.param(a, marks=pytest.mark.slow) for a in (1.25, 1.5)])
def test_dead_row_conjugate_is_neg_inf_with_zero_gradient(alpha):
    z = _z(shape=(3, 6))
    z[1] = NINF
    for conj in (jit_of(S.conjugate, alpha=alpha), lambda z: jit_of(S.conjugate)(z, alpha)):
        c, vjp = jax.vjp(conj, jnp.asarray(z))
        c = np.asarray(c)
        assert c[1] == NINF and np.all(np.isfinite(c[[0, 2]]))
        (g,) = vjp(jnp.asarray([0.0, 1.0, 0.0]))
        assert np.all(np.asarray(g) == 0.0)
    mask = np.ones((3, 6), bool)
    mask[2] = False
    assert float(jit_of(S.conjugate, alpha=alpha)(_z(shape=(3, 6)), where=jnp.asarray(mask))[2]) == NINF


@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("name", EDGE_SEPS)
def test_inf_or_nan_poisons_only_its_row(name, bad):
    f = _value_and_grad(name)
    z = _z(shape=EDGE_SHAPE)
    clean, _ = map(np.asarray, f(z, ALL_TRUE, W_EDGE))
    z[1, 5] = bad
    p, _ = map(np.asarray, f(z, ALL_TRUE, W_EDGE))
    assert np.all(np.isnan(p[1])), "a +inf/NaN score gives NaN in its whole row"
    np.testing.assert_array_equal(p[[0, 2, 3]], clean[[0, 2, 3]])


@pytest.mark.parametrize("alpha", [1.0, 1.3, 2.0, pytest.param(1.5, marks=pytest.mark.slow)])
def test_inf_or_nan_conjugate_is_nan_in_its_row(alpha):
    z = _z(shape=(3, 6))
    z[0, 2], z[2, 4] = np.inf, np.nan
    for c in (jit_of(S.conjugate, alpha=alpha)(z), jit_of(S.conjugate)(z, alpha)):
        c = np.asarray(c)
        assert np.isnan(c[0]) and np.isnan(c[2]) and np.isfinite(c[1])


# the casts around the kernels are shared: float16 runs for softmax (its own kernel) and the general kernel, and in
# the slow suite for sparsemax and entmax15 (covered in bfloat16 here)
@pytest.mark.parametrize(
    "name, dtype, atol",
    [(n, jnp.bfloat16, 2.0**-8) for n in ("softmax", "sparsemax", "entmax15", "entmax_traced_1.25")]
    + [(n, jnp.float16, 2.0**-11) for n in ("softmax", "entmax_traced_1.25")]
    + [pytest.param(n, jnp.float16, 2.0**-11, marks=pytest.mark.slow) for n in ("sparsemax", "entmax15")],
)
def test_low_precision_inputs(name, dtype, atol):
    """bf16/fp16 in, same dtype out, computed in float32: the float32 result of the same scores, rounded once."""
    f = _value_and_grad(name)
    z = _z(shape=EDGE_SHAPE)
    z[2, :4] = [60000.0, 59990.0, -60000.0, NINF]  # near the fp16 limit: no overflow to inf/NaN
    z[3] = NINF  # a dead row stays zeros
    z = jnp.asarray(z).astype(dtype)
    p, g = f(z, ALL_TRUE, W_EDGE)
    assert p.dtype == dtype and g.dtype == dtype
    p32, g32 = f(z.astype(jnp.float32), ALL_TRUE, W_EDGE)
    p, p32, g = np.asarray(p, np.float32), np.asarray(p32), np.asarray(g, np.float32)
    np.testing.assert_array_equal(p, np.asarray(jnp.asarray(p32).astype(dtype), np.float32))
    np.testing.assert_allclose(p, p32, atol=atol)
    np.testing.assert_allclose(p[:3].sum(-1), 1.0, atol=atol)  # each p_i is rounded relatively
    assert np.all(p[3] == 0.0) and np.all(np.isfinite(g)) and np.any(g != 0.0)
    np.testing.assert_allclose(g, np.asarray(g32), atol=0.05 * np.abs(g32).max())


@pytest.mark.parametrize("name", EDGE_SEPS)
def test_large_beta_scaling_stays_finite_and_exact(name):
    z = _z(seed=9, shape=EDGE_SHAPE, scale=1.0) * np.float32(1e4)
    top2 = np.sort(z, -1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 200.0)  # precondition: exp(-gap) underflows (gap > 104)
    p, g = map(np.asarray, _value_and_grad(name)(z, ALL_TRUE, W_EDGE))
    assert np.array_equal(p, (z == z.max(-1, keepdims=True)).astype(np.float32))  # exactly one-hot
    assert np.all(g == 0.0)  # a one-hot output is locally constant


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5, 3.0, np.nan])
def test_traced_out_of_range_alpha_gives_nan(alpha):
    z = _z()  # (6, 33) and a float32 alpha: the programs of the other traced-alpha checks
    a = jnp.float32(alpha)
    assert np.all(np.isnan(np.asarray(jit_of(S.entmax)(z, a))))
    if 1.0 <= alpha <= 2.0:  # alpha = 1 lies inside [1, 2] for the conjugate and tsallis_separation
        assert np.all(np.isfinite(np.asarray(jit_of(S.conjugate)(z, a))))
    else:
        assert np.all(np.isnan(np.asarray(jit_of(S.conjugate)(z, a))))
        assert np.all(np.isnan(np.asarray(jit_of(S.tsallis_separation)(z, a))))
    per_row = jnp.asarray([[1.5], [alpha]] * 3, jnp.float32)  # only the offending rows of a per-row alpha
    out = np.asarray(jit_of(S.entmax)(z, per_row))
    assert np.all(np.isnan(out[1::2])) and np.all(np.isfinite(out[0::2]))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5, np.nan, np.inf])
def test_concrete_out_of_range_alpha_raises(alpha):
    with pytest.raises(ValueError, match=r"entmax: alpha must lie in \(1, 2\]"):
        S.entmax(jnp.ones(3), alpha)
    if alpha != 1.0:
        with pytest.raises(ValueError, match=r"conjugate: alpha must lie in \[1, 2\]"):
            S.conjugate(jnp.ones(3), alpha)
        with pytest.raises(ValueError, match=r"tsallis_separation: alpha must lie in \[1, 2\]"):
            S.tsallis_separation(jnp.ones(3), alpha)


# entmax_1.25 (slow): the kernel of entmax_traced_1.25 at a constant alpha
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "entmax_1.25" else n for n in EDGE_SEPS]
)
def test_single_score_rows(name):
    p, g = _value_and_grad(name)(jnp.asarray([[3.0], [-1e4]]), np.ones((2, 1), bool), jnp.asarray([[2.0], [3.0]]))
    assert np.array_equal(np.asarray(p), [[1.0], [1.0]])
    assert np.all(np.asarray(g) == 0.0)


def test_single_score_conjugate():
    z = jnp.asarray([[3.0], [-1e4]])
    np.testing.assert_allclose(np.asarray(jit_of(S.conjugate, alpha=1.5)(z)), [3.0, -1e4])
    np.testing.assert_allclose(np.asarray(jit_of(S.conjugate)(z, 1.3)), [3.0, -1e4])


def test_vmap_matches_reference():
    z = _z(shape=(5, 4, 9))
    for name in ("sparsemax", "entmax_traced_1.25"):  # the vmapped kernel against the float64 reference
        got = np.asarray(jax.vmap(sep(name))(z))
        np.testing.assert_allclose(got, ref_separation(z.astype(np.float64), SEP_ALPHA[name]), atol=TOL, err_msg=name)
    alphas = np.linspace(1.1, 2.0, 5)
    per = jax.jit(jax.vmap(lambda z, a: S.entmax(z, a)))(z, jnp.asarray(alphas, jnp.float32))
    for i, a in enumerate(alphas.astype(np.float32)):
        np.testing.assert_allclose(np.asarray(per[i]), ref_entmax(z[i].astype(np.float64), float(a)), atol=TOL)


# ----------------------------------------------------------------------------------------------------------------
# Static vs traced
# ----------------------------------------------------------------------------------------------------------------


def test_alpha_and_scores_do_not_retrace():
    traces = []

    @jax.jit
    def step(z, alpha):
        traces.append(None)
        p, vjp = jax.vjp(lambda z, a: S.entmax(z, a), z, alpha)
        return p, vjp(jnp.ones_like(p)), S.conjugate(z, alpha)

    z = jnp.asarray(_z(shape=(3, 10)))
    outs = [step(z * k, jnp.float32(a)) for k, a in [(1.0, 1.1), (2.0, 1.5), (0.5, 2.0), (3.0, 1.9)]]
    assert len(traces) == 1
    np.testing.assert_allclose(np.asarray(outs[1][0]), ref_entmax(np.asarray(z * 2.0, np.float64), 1.5), atol=TOL)
    np.testing.assert_allclose(np.asarray(outs[2][0]), ref_sparsemax(np.asarray(z * 0.5, np.float64)), atol=TOL)
    # a per-head alpha array of fixed shape is traced too
    per_head = []

    @jax.jit
    def heads(z, alpha):
        per_head.append(None)
        return S.entmax(z, alpha)

    zh = jnp.asarray(_z(shape=(2, 3, 8)))
    for vals in ([1.2, 1.5, 1.9], [1.9, 1.01, 2.0], [1.5, 1.5, 1.5]):
        heads(zh, jnp.asarray(vals, jnp.float32)[:, None])
    assert len(per_head) == 1


def test_per_head_alpha_matches_loop_over_heads():
    z = _z(shape=(2, 3, 16))  # (B, H, N)
    alpha = np.array([[1.2], [1.5], [1.9]], np.float32)  # (H, 1)
    head = jit_of(S.entmax)  # one head at a time: (B, N) scores, scalar alpha
    got = np.asarray(jit_of(S.entmax)(z, alpha))
    for h in range(3):
        np.testing.assert_allclose(got[:, h], np.asarray(head(z[:, h], alpha[h, 0])), atol=TOL)
    np.testing.assert_allclose(got, ref_entmax(z.astype(np.float64), alpha), atol=TOL)


@pytest.mark.slow  # default suite: per-row alpha derivatives against the reference (test_alpha_derivative_matches_...)
def test_per_head_alpha_gradients_and_conjugate_match_loop_over_heads():
    z = _z(shape=(2, 3, 16))  # (B, H, N)
    alpha = np.array([[1.2], [1.5], [1.9]], np.float32)  # (H, 1)
    # gradients in the per-head alpha equal the per-head gradients of the loop
    w = jnp.asarray(_z(seed=10, shape=(2, 3, 16)))
    grad_alpha = jax.jit(jax.grad(lambda z, a, w: jnp.vdot(jit_of(S.entmax)(z, a), w), argnums=1))
    g = grad_alpha(z, jnp.asarray(alpha), w)
    for h in range(3):  # one compile for the three heads
        gh = grad_alpha(z[:, h], jnp.float32(alpha[h, 0]), w[:, h])
        np.testing.assert_allclose(float(g[h, 0]), float(gh), rtol=1e-4, atol=1e-6)
    cj = np.asarray(jit_of(S.conjugate)(z, alpha))
    for h in range(3):
        np.testing.assert_allclose(cj[:, h], np.asarray(jit_of(S.conjugate)(z[:, h], alpha[h, 0])), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Registry and argument errors
# ----------------------------------------------------------------------------------------------------------------


def test_registry():
    z = jnp.asarray(_z(shape=(2, 7)))
    assert set(S.SEPARATIONS) == {"softmax", "sparsemax", "entmax15", "entmax", "polynomial10"}
    assert S.get_separation("sparsemax") is S.sparsemax
    assert S.get_separation("softmax") is S.softmax
    assert S.get_separation(S.entmax15) is S.entmax15
    ent = S.get_separation("entmax", 1.3)
    p = np.asarray(jax.jit(ent)(z))
    np.testing.assert_allclose(p, ref_entmax(np.asarray(z, np.float64), 1.3), atol=TOL)
    np.testing.assert_array_equal(np.asarray(jax.jit(functools.partial(ent, axis=0))(z.T)), p.T)
    assert S.separation_alpha("softmax") == 1.0 and S.separation_alpha("entmax15") == 1.5
    assert S.separation_alpha("sparsemax") == 2.0 and S.separation_alpha("entmax", 1.3) == 1.3


def test_registry_entries_hold_what_callers_need_and_one_alpha_to_kernel_map():
    """Each entry: function, takes_alpha, fixed alpha, kernel; closed_form_kernel maps alpha back."""
    for name, spec in S.SEPARATIONS.items():
        assert callable(spec.fn) and (spec.alpha is None or not spec.takes_alpha), name
        if spec.alpha is not None and spec.kernel is not None:  # a fixed Tsallis alpha runs its own closed form
            assert S.closed_form_kernel(spec.alpha) == spec.kernel == S.closed_form_kernel(np.full((2, 1), spec.alpha))
            assert S.separation_alpha(name) == spec.alpha
    assert S.SEPARATIONS["entmax"].takes_alpha and S.SEPARATIONS["softmax"].alpha == 1.0
    general = S.SEPARATIONS["entmax"].kernel
    for alpha in (1.3, np.array([1.5, 2.0]), None, "2"):
        assert S.closed_form_kernel(alpha) == general
    assert jax.jit(lambda a: jnp.float32(S.closed_form_kernel(a) == general))(2.0)  # traced: the general search
    assert S.resolve_separation(S.softmax, None, "f") is None
    assert S.resolve_separation("entmax", 1.3, "f") is S.SEPARATIONS["entmax"]
    with pytest.raises(ValueError, match=r"f: unknown separation 'relu'; expected one of \['softmax'"):
        S.resolve_separation("relu", None, "f")
    with pytest.raises(ValueError, match="f: separation='entmax' needs alpha"):
        S.resolve_separation("entmax", None, "f")
    with pytest.raises(ValueError, match="^unknown separation 'relu'"):  # unprefixed: its callers add their name
        S.separation_alpha("relu")


Z2 = jnp.ones((2, 3))


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: S.sparsemax(jnp.float32(1.0)), ValueError, "sparsemax: z must have at least one axis"),
        (lambda: S.entmax(jnp.ones((2, 0)), 1.5), ValueError, "entmax: z has size 0 along axis 1"),
        (lambda: S.softmax(Z2, axis=2), ValueError, "softmax: axis 2 is out of range"),
        (lambda: S.entmax15(Z2, axis=-3), ValueError, "entmax15: axis -3 is out of range"),
        (lambda: S.sparsemax(Z2, axis=1.0), TypeError, "sparsemax: axis must be an int"),
        (lambda: S.sparsemax(Z2, axis=None), TypeError, "sparsemax: axis must be an int"),
        (lambda: S.conjugate(Z2, 1.5, axis=True), TypeError, "conjugate: axis must be an int"),
        (lambda: S.sparsemax(jnp.ones(3, jnp.complex64)), TypeError, "sparsemax: z must be real"),
        (lambda: S.sparsemax("abc"), TypeError, "sparsemax: z must be an array of real numbers"),
        (lambda: S.entmax15(Z2, where=jnp.ones((2, 3), jnp.int32)), TypeError, "entmax15: where must be a boolean"),
        (lambda: S.softmax(Z2, where=jnp.ones((4,), bool)), ValueError, r"softmax: where of shape \(4,\)"),
        (lambda: S.entmax(Z2, 1.0), ValueError, r"entmax: alpha must lie in \(1, 2\], got \[1.0\]"),
        (lambda: S.entmax(Z2, 0.5), ValueError, r"entmax: alpha must lie in \(1, 2\], got \[0.5\]"),
        (lambda: S.entmax(Z2, 2.5), ValueError, r"entmax: alpha must lie in \(1, 2\], got \[2.5\]"),
        (lambda: S.entmax(Z2, float("nan")), ValueError, r"entmax: alpha must lie in \(1, 2\], got \[nan\]"),
        (lambda: S.entmax(Z2, jnp.array([[1.5], [2.5]])), ValueError, r"entmax: alpha must lie in \(1, 2\]"),
        (lambda: S.conjugate(Z2, 0.9), ValueError, r"conjugate: alpha must lie in \[1, 2\]"),
        (lambda: S.conjugate(Z2, 2.1), ValueError, r"conjugate: alpha must lie in \[1, 2\]"),
        (lambda: S.tsallis_separation(Z2, 0.0), ValueError, r"tsallis_separation: alpha must lie in \[1, 2\]"),
        (lambda: S.entmax(Z2, jnp.full((2, 3), 1.5)), ValueError, "entmax: alpha of shape .* varies along the sep"),
        (lambda: S.conjugate(Z2, jnp.full((1, 3), 1.5)), ValueError, "conjugate: alpha of shape .* varies along"),
        (lambda: S.entmax(Z2, jnp.full((1, 1, 1), 1.5)), ValueError, "entmax: alpha has 3 dims but z has only 2"),
        (lambda: S.entmax(Z2, jnp.full((3, 1), 1.5)), ValueError, r"entmax: alpha of shape \(3, 1\) does not broad"),
        (lambda: S.entmax(Z2, 1.5 + 0.5j), TypeError, "entmax: alpha must be a real number"),
        (lambda: S.entmax(Z2, "1.5"), TypeError, "entmax: alpha must be a real number"),
        (lambda: S.entmax(Z2, True), TypeError, "entmax: alpha must be a real number"),
        (lambda: S.entmax(Z2, None), TypeError, r"entmax: alpha is required: a real number or array in \(1, 2\]"),
        (lambda: S.conjugate(Z2, None), TypeError, r"conjugate: alpha is required: a real number or array in \[1"),
        (lambda: S.tsallis_separation(Z2, None), TypeError, "tsallis_separation: alpha is required"),
        (lambda: S.get_separation("sparsemaxx"), ValueError, "unknown separation 'sparsemaxx'"),
        (lambda: S.get_separation("entmax"), ValueError, "separation='entmax' needs alpha"),
        (lambda: S.get_separation("softmax", 1.5), ValueError, "separation='softmax' has a fixed alpha"),
        (lambda: S.get_separation(S.softmax, 1.5), ValueError, "get_separation: alpha is only used with 'entmax'"),
        (lambda: S.separation_alpha(S.softmax), ValueError, "separation_alpha: a callable separation"),
        (lambda: S.separation_alpha("entmax"), ValueError, "separation='entmax' needs alpha"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_alpha_shape_errors_under_jit_are_raised_at_trace_time():
    """Shape errors of a traced alpha surface as ValueError at the Python boundary, not as XLA errors."""
    with pytest.raises(ValueError, match="entmax: alpha of shape .* varies along the separation axis"):
        jax.jit(S.entmax)(Z2, jnp.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="entmax: alpha has 2 dims but z has only 1"):
        jax.jit(S.entmax)(jnp.ones(3), jnp.full((1, 1), 1.5))


@pytest.mark.parametrize("kind", ["sparsemax", "entmax15", "entmax13"])
def test_rows_of_mixed_difficulty_take_the_compacted_path(kind):
    """Peaked rows settle in a step or two, flat rows need many: the slow quarter is gathered and finished apart."""
    rng = np.random.default_rng(11)
    rows = [10.0 * rng.standard_normal(300) for _ in range(48)]  # peaked: quick
    rows += [1e-3 * rng.standard_normal(300) for _ in range(8)]  # nearly flat: broad support, many steps
    rows += [rng.uniform(size=300) for _ in range(8)]
    z = np.stack(rows)[rng.permutation(64)].astype(np.float32)
    if kind == "sparsemax":
        got, want = S.sparsemax(z), ref_sparsemax(z.astype(np.float64))
    elif kind == "entmax15":
        got, want = S.entmax15(z), ref_entmax(z.astype(np.float64), 1.5)
    else:
        got = jax.jit(S.entmax)(z, jnp.float32(1.3))
        want = ref_entmax(z.astype(np.float64), 1.3)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got).sum(-1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# polynomial (outside the Tsallis family)
# ----------------------------------------------------------------------------------------------------------------


def _ref_polynomial(z: np.ndarray, power: float) -> np.ndarray:
    """float64 ``max(z, 0)^n / sum max(z, 0)^n`` along the last axis, rows without a positive score all zero."""
    num = np.maximum(z, 0.0) ** power
    total = num.sum(-1, keepdims=True)
    return np.divide(num, total, out=np.zeros_like(num), where=total > 0)


def test_polynomial_matches_float64_reference_and_is_registered(x64):
    z = np.random.default_rng(11).standard_normal((4, 6))
    z[3] = -np.abs(z[3])  # a row without a positive score: zeros
    for power in (1, 3.5, 10):
        got = np.asarray(S.polynomial(jnp.asarray(z), power))
        np.testing.assert_allclose(got, _ref_polynomial(z, power), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(S.polynomial(jnp.asarray(z.T), 10, axis=0)).T, _ref_polynomial(z, 10))
    assert S.get_separation("polynomial10") is S.polynomial10
    np.testing.assert_allclose(np.asarray(S.polynomial10(jnp.asarray(z))), _ref_polynomial(z, 10), rtol=1e-12)
    # beta does not change it, and large scores do not overflow (float32: the log form; a few ulp)
    big = jnp.asarray([3e4, 2e4, 1.0], jnp.float32)
    np.testing.assert_allclose(np.asarray(S.polynomial10(big)), _ref_polynomial(np.asarray(big, np.float64), 10),
                               rtol=1e-5, atol=1e-30)  # fmt: skip
    masked = np.asarray(S.polynomial(jnp.asarray(z[0]), 2.0, where=jnp.arange(6) != 0))
    np.testing.assert_allclose(masked, _ref_polynomial(np.where(np.arange(6) != 0, z[0], 0.0), 2.0), rtol=1e-12)
    assert np.isnan(np.asarray(S.polynomial10(jnp.asarray([np.nan, 1.0])))).all()  # NaN in, NaN out
    with pytest.raises(ValueError, match="not a Tsallis separation"):
        S.separation_alpha("polynomial10")
    with pytest.raises(ValueError, match="polynomial: power must be a number > 0, got 0"):
        S.polynomial(jnp.ones(3), 0)


def test_polynomial_gradient_matches_finite_differences(x64):
    """The Jacobian in z against float64 central differences (scores away from 0, where it is smooth)."""
    z = jnp.asarray([[0.7, 1.3, 0.2, -0.5], [2.0, 0.4, 1.1, 0.9]])
    poly3 = jax.jit(lambda v: S.polynomial(v, 3.0))  # jitted: one program per derivative, not many op-by-op ones
    check_grads(poly3, (z,), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)  # order 2: the slow test below
    jac = np.asarray(jax.jacobian(S.polynomial10)(jnp.asarray([0.5, -0.5, 0.0])))
    assert np.isfinite(jac).all() and np.all(jac[:, 1:] == 0.0)  # rectified scores: zero gradient, not NaN


@pytest.mark.slow  # default suite: first derivatives above (polynomial has no custom rule: plain autodiff)
def test_polynomial_second_derivatives_match_finite_differences(x64):
    z = jnp.asarray([[0.7, 1.3, 0.2, -0.5], [2.0, 0.4, 1.1, 0.9]])
    poly3 = jax.jit(lambda v: S.polynomial(v, 3.0))
    check_grads(poly3, (z,), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_traced_alpha_renormalises_by_the_searched_sum():
    """Traced alpha: p is renormalised by ``S(v) = (1 + a F(v))^(1/a)`` from the search's last evaluation (no extra
    pass over p). The sums are 1 and the values the float64 bisection reference's, for the hard cases: alpha near 1
    and 2, ties, masked (-inf) scores, huge scores, rows of 256 (unblocked) and 2048 (blocked row view)."""
    from dammem import _entmax_solver as E

    # threshold_probs divides by exp(log_norm) inside the exponent (sign and scale would break this)
    z0, c0, a0 = jnp.asarray([[0.0, -0.3, -2.5]]), jnp.asarray([[0.1]]), jnp.asarray([[0.4]])
    base = np.asarray(E.threshold_probs(E.GENERAL, z0, c0, a0))
    np.testing.assert_allclose(np.asarray(E.threshold_probs(E.GENERAL, z0, c0, a0, np.log(2.0))), base / 2, rtol=1e-6)
    rng = np.random.default_rng(7)
    entmax_traced = jax.jit(S.entmax)
    for n in (256, 2048):
        z = rng.standard_normal((6, n)).astype(np.float32)
        z[1] = np.round(z[1] * 2)  # ties
        z[2, ::3] = -np.inf  # masked
        z[3] *= 1e4  # huge scores: one or two survive
        z[4] += 1e4  # large offset, O(1) gaps
        for alpha in (1.01, 1.25, 1.5, 1.9, 2.0):
            got = np.asarray(entmax_traced(jnp.asarray(z), jnp.float32(alpha)), np.float64)
            np.testing.assert_allclose(got, ref_entmax(z, alpha), atol=TOL, rtol=0, err_msg=f"N={n}, alpha={alpha}")
            np.testing.assert_allclose(got.sum(-1), 1.0, atol=n * 2e-8, err_msg=f"N={n}, alpha={alpha}")
            assert np.all(got[np.isneginf(z)] == 0.0)
