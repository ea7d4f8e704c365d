"""Codebooks: every kind against an independently built float64 matrix; one interface; pytree behaviour; errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dammem.vsa.codebooks import (
    CODEBOOK_KINDS,
    BipolarCodebook,
    Codebook,
    DenseCodebook,
    GaussianCodebook,
    HadamardCodebook,
    KropCodebook,
    OneHotCodebook,
    SignedKropCodebook,
    UnitaryShiftCodebook,
    make_codebook,
)
from dammem.vsa.krop import krop_signs, uniform_angles
from tests.reference import sylvester

from .test_krop import assert_clear_argmax, ref_recursion, ref_softmax

D = 256
K = 8


def reference_matrix(cb: Codebook) -> np.ndarray:
    """Rebuild the codebook from its stored arrays with NumPy only (independent of the library's row code)."""
    if cb.kind in ("gaussian", "bipolar", "dense"):
        return np.asarray(cb.codewords, np.float64)
    if cb.kind == "one_hot":
        return np.eye(cb.dim)
    if cb.kind == "hadamard":
        return sylvester(cb.dim)
    if cb.kind == "krop":
        return ref_recursion(cb.theta)
    if cb.kind == "krop_signed":
        return ref_recursion(cb.theta) * np.asarray(cb.signs, np.float64)[None, :]
    if cb.kind == "unitary_shift":
        u = np.asarray(cb.base, np.float64)
        return np.stack([np.roll(u, j) for j in range(cb.dim)])
    raise AssertionError(cb.kind)


@pytest.fixture(scope="module", params=CODEBOOK_KINDS)
def codebook(request):
    return make_codebook(request.param, D, key=jax.random.key(11))


def test_rows_scores_cleanup_soft_match_reference(codebook):
    c = reference_matrix(codebook)
    np.testing.assert_allclose(np.asarray(codebook.matrix()), c, atol=2e-6)
    idx = jnp.array([[0, 7, 255], [128, 3, 3]])
    np.testing.assert_allclose(np.asarray(codebook.rows(idx)), c[np.asarray(idx)], atol=2e-6)

    x = jax.random.normal(jax.random.key(1), (2, 5, D)) / np.sqrt(D)
    scores = np.asarray(x, np.float64) @ c.T
    np.testing.assert_allclose(np.asarray(codebook.scores(x)), scores, atol=2e-6)
    np.testing.assert_array_equal(np.asarray(codebook.cleanup(x)), assert_clear_argmax(scores))
    beta = 5.0
    np.testing.assert_allclose(np.asarray(codebook.soft_cleanup(x, beta)), ref_softmax(beta * scores) @ c, atol=2e-6)


def test_unit_norm_rows_and_orthogonality(codebook):
    c = reference_matrix(codebook)
    norms = np.linalg.norm(c, axis=1)
    if codebook.kind == "gaussian":
        assert abs(norms.mean() - 1.0) < 0.02
    else:
        np.testing.assert_allclose(norms, 1.0, atol=1e-6)
    if codebook.kind not in ("gaussian", "bipolar"):
        np.testing.assert_allclose(c @ c.T, np.eye(D), atol=1e-5)


def test_cleanup_recovers_noisy_codewords(codebook):
    idx = jax.random.randint(jax.random.key(3), (40,), 0, D)
    noise = 0.3 / np.sqrt(D) * jax.random.normal(jax.random.key(4), (40, D))
    np.testing.assert_array_equal(np.asarray(codebook.cleanup(codebook.rows(idx) + noise)), np.asarray(idx))


def test_storage_sizes():
    expected = {
        "gaussian": D * D,
        "bipolar": D * D,
        "one_hot": 0,
        "hadamard": 0,
        "krop": K,
        "krop_signed": K + D,
        "unitary_shift": D,
    }
    for kind, size in expected.items():
        assert make_codebook(kind, D, key=jax.random.key(0)).storage_size == size
    assert make_codebook("gaussian", 64, key=jax.random.key(0), size=10).storage_size == 640


def test_dense_codebook_with_fewer_rows_than_dim():
    cb = make_codebook("bipolar", 64, key=jax.random.key(0), size=10)
    assert cb.matrix().shape == (10, 64) and cb.scores(jnp.ones(64)).shape == (10,)
    np.testing.assert_array_equal(np.asarray(cb.cleanup(cb.rows(jnp.arange(10)))), np.arange(10))
    np.testing.assert_allclose(np.abs(np.asarray(cb.matrix())), 1 / 8)


def test_same_key_same_codebook_and_kinds_differ():
    for kind in ("gaussian", "bipolar", "krop", "krop_signed", "unitary_shift"):
        a = make_codebook(kind, 64, key=jax.random.key(5))
        b = make_codebook(kind, 64, key=jax.random.key(5))
        c = make_codebook(kind, 64, key=jax.random.key(6))
        np.testing.assert_array_equal(np.asarray(a.matrix()), np.asarray(b.matrix()))
        assert not np.array_equal(np.asarray(a.matrix()), np.asarray(c.matrix()))


def test_signed_krop_flattens_the_row_spectra():
    # The reason for the signs: unsigned KROP rows concentrate their energy on few frequencies.
    def peakiness(cb):
        spec = np.abs(np.fft.rfft(np.asarray(cb.matrix(), np.float64), axis=-1)) ** 2
        return np.mean(spec.max(-1) / spec.mean(-1))

    plain = np.mean([peakiness(make_codebook("krop", 512, key=jax.random.key(s))) for s in range(4)])
    signed = np.mean([peakiness(make_codebook("krop_signed", 512, key=jax.random.key(s))) for s in range(4)])
    gauss = peakiness(make_codebook("gaussian", 512, key=jax.random.key(0)))
    assert plain > 2 * signed
    assert signed < 1.5 * gauss


def test_angles_options():
    explicit = jnp.linspace(0.1, 1.0, 6)
    cb = make_codebook("krop", 64, angles=explicit)
    np.testing.assert_array_equal(np.asarray(cb.theta), np.asarray(explicit))
    even = make_codebook("krop", 16, angles="even")  # K = 4, K + 1 = 5: no warning
    np.testing.assert_allclose(np.asarray(even.theta), 2 * np.pi * np.arange(1, 5) / 5, atol=1e-6)
    with pytest.warns(UserWarning, match="signed permutations"):
        make_codebook("krop_signed", 8, key=jax.random.key(0), angles="even")
    np.testing.assert_allclose(np.asarray(make_codebook("hadamard", 16).matrix()), sylvester(16), atol=1e-6)


def test_codebook_is_a_pytree_traced_under_jit():
    traces = []

    @jax.jit
    def f(cb, x):
        traces.append(1)
        return cb.cleanup(x), cb.soft_cleanup(x, 2.0), cb.rows(jnp.array([1, 2]))

    x = jax.random.normal(jax.random.key(0), (3, 128))
    outs = [f(make_codebook("krop_signed", 128, key=jax.random.key(s)), x) for s in range(3)]
    assert len(traces) == 1
    assert not np.array_equal(np.asarray(outs[0][1]), np.asarray(outs[1][1]))
    leaves, treedef = jax.tree_util.tree_flatten(make_codebook("krop_signed", 128, key=jax.random.key(0)))
    assert len(leaves) == 2
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is SignedKropCodebook and rebuilt.kind == "krop_signed" and rebuilt.dim == 128


def test_vmap_over_codebooks():
    cbs = jax.vmap(lambda kk: make_codebook("krop_signed", 64, key=kk))(jax.random.split(jax.random.key(0), 3))
    x = jax.random.normal(jax.random.key(1), (3, 5, 64))
    got = jax.vmap(lambda cb, x: cb.cleanup(x))(cbs, x)
    keys = jax.random.split(jax.random.key(0), 3)
    for i in range(3):
        c = reference_matrix(make_codebook("krop_signed", 64, key=keys[i]))
        np.testing.assert_array_equal(np.asarray(got[i]), assert_clear_argmax(np.asarray(x[i], np.float64) @ c.T))


KIND_CLASSES = {
    "gaussian": GaussianCodebook,
    "bipolar": BipolarCodebook,
    "one_hot": OneHotCodebook,
    "hadamard": HadamardCodebook,
    "krop": KropCodebook,
    "krop_signed": SignedKropCodebook,
    "unitary_shift": UnitaryShiftCodebook,
}


def test_one_class_per_kind_behind_one_interface():
    assert tuple(KIND_CLASSES) == CODEBOOK_KINDS
    for kind, cls in KIND_CLASSES.items():
        cb = make_codebook(kind, 64, key=jax.random.key(0))
        assert type(cb) is cls and cls.kind == kind and isinstance(cb, Codebook)
        assert cb.shape == (64, 64) == cb.matrix().shape
    assert make_codebook("gaussian", 64, key=jax.random.key(0), size=5).shape == (5, 64)
    with pytest.raises(TypeError, match="Codebook is an interface"):
        Codebook()


EXPECTED_REPR = {
    "gaussian": "GaussianCodebook(size=32, dim=32, codewords={})",
    "bipolar": "BipolarCodebook(size=32, dim=32, codewords={})",
    "one_hot": "OneHotCodebook(size=32, dim=32)",
    "hadamard": "HadamardCodebook(size=32, dim=32)",
    "krop": "KropCodebook(size=32, dim=32, theta={})",
    "krop_signed": "SignedKropCodebook(size=32, dim=32, theta={}, signs={})",
    "unitary_shift": "UnitaryShiftCodebook(size=32, dim=32, base={})",
}
LEAF_SHAPES = {
    "gaussian": [(32, 32)],
    "bipolar": [(32, 32)],
    "one_hot": [],
    "hadamard": [],
    "krop": [(5,)],
    "krop_signed": [(5,), (32,)],
    "unitary_shift": [(32,)],
}


@pytest.mark.parametrize("kind", CODEBOOK_KINDS)
def test_repr_and_sizes_survive_tree_map_and_eval_shape(kind):
    cb = make_codebook(kind, 32, key=jax.random.key(0))
    shapes = LEAF_SHAPES[kind]
    assert repr(cb) == EXPECTED_REPR[kind].format(*[f"float32{list(s)}" for s in shapes])
    mapped = jax.tree.map(jnp.shape, cb)  # leaves become tuples: repr and storage_size must not need arrays
    assert type(mapped) is type(cb)
    assert repr(mapped) == EXPECTED_REPR[kind].format(*[repr(s) for s in shapes])
    assert mapped.storage_size == cb.storage_size and mapped.shape == cb.shape
    abstract = jax.eval_shape(lambda k: make_codebook(kind, 32, key=k), jax.random.key(0))
    assert repr(abstract) == repr(cb)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(cb)[0]]
    assert paths == ["." + name for name in type(cb)._leaves]


@pytest.mark.parametrize("size", [1, 1000, 1024])
def test_dense_codebook_of_your_own_codewords(size):
    # 1000: not a multiple of the argmax block (flat argmax); 1024: the two-level argmax.
    rng = np.random.default_rng(size)
    c = rng.normal(size=(size, 48))
    cb = DenseCodebook(jnp.asarray(c, jnp.float32))
    assert cb.kind == "dense" and cb.shape == (size, 48) and cb.storage_size == size * 48
    x = jnp.asarray(rng.normal(size=(3, 7, 48)), jnp.float32)
    scores = np.asarray(x, np.float64) @ c.T
    np.testing.assert_allclose(np.asarray(cb.scores(x)), scores, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(cb.cleanup(x)), assert_clear_argmax(scores))
    np.testing.assert_allclose(np.asarray(cb.soft_cleanup(x, 0.3)), ref_softmax(0.3 * scores) @ c, atol=1e-4)
    np.testing.assert_allclose(np.asarray(cb.rows(jnp.array([0, size - 1]))), c[[0, size - 1]], atol=1e-6)


def test_kind_classes_built_directly_equal_the_factory():
    theta, d = uniform_angles(jax.random.key(0), 6), krop_signs(jax.random.key(1), 64)
    x = jax.random.normal(jax.random.key(2), (5, 64))
    direct = SignedKropCodebook(theta, d)
    np.testing.assert_allclose(np.asarray(direct.matrix()), ref_recursion(theta) * np.asarray(d)[None], atol=1e-6)
    scores = np.asarray(x, np.float64) @ ref_recursion(theta).T
    np.testing.assert_array_equal(np.asarray(KropCodebook(theta).cleanup(x)), assert_clear_argmax(scores))
    np.testing.assert_allclose(np.asarray(HadamardCodebook(64).matrix()), sylvester(64), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(OneHotCodebook(64).cleanup(x)), np.asarray(x).argmax(-1))
    with pytest.raises(ValueError, match="DenseCodebook: codewords must have shape \\(N, D\\).*\\(3,\\)"):
        DenseCodebook(jnp.ones(3))
    with pytest.raises(ValueError, match="KropCodebook: theta must be a vector"):
        KropCodebook(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="SignedKropCodebook: signs must have shape \\(N,\\) = \\(64,\\)"):
        SignedKropCodebook(theta, jnp.ones(32))
    with pytest.raises(ValueError, match="HadamardCodebook: dim must be a power of two.*got 12"):
        HadamardCodebook(12)
    with pytest.raises(ValueError, match="UnitaryShiftCodebook: base must be a vector"):
        UnitaryShiftCodebook(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="OneHotCodebook: dim must be >= 1, got 0"):
        OneHotCodebook(0)


@pytest.mark.parametrize(
    "kind", ["gaussian", pytest.param("krop", marks=pytest.mark.slow), "krop_signed", "unitary_shift"]
)  # krop_signed runs the krop path and its signs
def test_soft_cleanup_differentiable_in_the_codebook_arrays(kind):
    with jax.enable_x64(True):
        book = make_codebook(kind, 16, key=jax.random.key(0))
        book = jax.tree.map(lambda a: a.astype(jnp.float64), book)
        x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16)))
        w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 16)))
        leaves, treedef = jax.tree_util.tree_flatten(book)

        def f(*leaves):
            return jnp.sum(w * jax.tree_util.tree_unflatten(treedef, leaves).soft_cleanup(x, 3.0))

        check_grads(f, tuple(leaves), order=1, modes=("fwd", "rev"))
        grads = jax.grad(f, argnums=tuple(range(len(leaves))))(*leaves)
        assert all(np.abs(np.asarray(g)).max() > 1e-3 for g in grads)


def test_bad_inputs():
    with pytest.raises(ValueError, match="kind must be one of .*got 'sparse'"):
        make_codebook("sparse", 64, key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs key="):
        make_codebook("gaussian", 64)
    with pytest.raises(ValueError, match="dim must be a power of two.*got 100"):
        make_codebook("krop", 100, key=jax.random.key(0))
    with pytest.raises(ValueError, match="exactly dim = 64 codewords; got size = 10"):
        make_codebook("hadamard", 64, size=10)
    with pytest.raises(ValueError, match="angles applies to the kinds 'krop' and 'krop_signed' only"):
        make_codebook("gaussian", 64, key=jax.random.key(0), angles="even")
    with pytest.raises(ValueError, match="angles must have length log2\\(dim\\) = 6"):
        make_codebook("krop", 64, angles=jnp.ones(5))
    with pytest.raises(ValueError, match="angles must be 'uniform', 'even' or an array"):
        make_codebook("krop", 64, angles="random")
    cb = make_codebook("krop", 64, key=jax.random.key(0))
    with pytest.raises(
        ValueError, match="KropCodebook.cleanup: x must have shape \\(..., D\\) with D = 64.*\\(3, 32\\)"
    ):
        cb.cleanup(jnp.ones((3, 32)))
    with pytest.raises(ValueError, match="idx must lie in \\[0, N\\) = \\[0, 64\\)"):
        cb.rows(jnp.array([64]))
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        make_codebook("gaussian", 64, key=jax.random.key(0)).soft_cleanup(jnp.ones(64), 0.0)
    with pytest.raises(ValueError, match="KropCodebook.soft_cleanup: beta must be finite and > 0"):
        cb.soft_cleanup(jnp.ones(64), -2.0)
    with pytest.raises(ValueError, match="KropCodebook.soft_cleanup: beta must be a scalar or broadcastable"):
        cb.soft_cleanup(jnp.ones((2, 64)), jnp.ones(3))
    with pytest.raises(ValueError, match="GaussianCodebook.sample: dim must be >= 1, got 0"):
        GaussianCodebook.sample(jax.random.key(0), 0)
    with pytest.raises(TypeError, match="BipolarCodebook.sample: size must be an int"):
        BipolarCodebook.sample(jax.random.key(0), 8, 2.5)
    with pytest.raises(ValueError, match="make_codebook: dim must be a power of two.*got 12"):
        make_codebook("hadamard", 12)
