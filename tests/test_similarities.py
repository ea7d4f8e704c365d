import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem import similarities as S

RNG = np.random.default_rng(0)
MEM = RNG.standard_normal((7, 5))
X = RNG.standard_normal(5)


@pytest.mark.parametrize(
    "name, ref",
    [
        ("dot", lambda m, x: m @ x),
        ("neg_sq_l2", lambda m, x: -((m - x) ** 2).sum(-1)),
        ("neg_l1", lambda m, x: -np.abs(m - x).sum(-1)),
        ("cosine", lambda m, x: (m @ x) / (np.linalg.norm(m, axis=-1) * np.linalg.norm(x))),
    ],
)
def test_matches_float64_reference(x64, name, ref):
    got = S.get_similarity(name)(jnp.asarray(MEM), jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(got), ref(MEM, X), rtol=1e-12, atol=1e-12)


def test_distances_are_negated_so_the_nearest_pattern_scores_highest():
    mem = jnp.asarray(MEM, jnp.float32)
    query = mem[3] + 0.01
    for name in ("neg_sq_l2", "neg_l1", "cosine", "dot"):
        scores = S.get_similarity(name)(mem, query)
        if name != "dot":  # dot prefers long patterns, the others the nearest one
            assert int(jnp.argmax(scores)) == 3, name
    assert float(S.neg_sq_l2(mem, mem[3])[3]) == 0.0


def test_cosine_of_zero_vector_is_zero_not_nan():
    out = S.cosine(jnp.asarray(MEM, jnp.float32), jnp.zeros(5))
    assert np.all(np.asarray(out) == 0.0)


def test_kernelized_is_dot_of_features(x64):
    w = RNG.standard_normal((3, 5))
    got = S.kernelized(jnp.asarray(w))(jnp.asarray(MEM), jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(got), (MEM @ w.T) @ (w @ X), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(S.kernelized(jnp.eye(5))(jnp.asarray(MEM), jnp.asarray(X))), MEM @ X)


def test_callable_passes_through_and_works_under_vmap():
    fn = lambda m, x: -jnp.abs(m - x).max(-1)  # noqa: E731
    assert S.get_similarity(fn) is fn
    batch = jax.vmap(S.neg_l1, in_axes=(None, 0))(jnp.asarray(MEM), jnp.asarray(MEM[:2]))
    assert batch.shape == (2, 7)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.get_similarity("euclid"), "unknown similarity 'euclid'"),
        (lambda: S.dot(jnp.ones(5), jnp.ones(5)), "memories must have shape"),
        (lambda: S.dot(jnp.ones((3, 5)), jnp.ones((2, 5))), "one query of shape"),
        (lambda: S.neg_l1(jnp.ones((3, 5)), jnp.ones(4)), "D=5 but x has D=4"),
        (lambda: S.kernelized(jnp.ones(3)), "weight must have shape"),
        (lambda: S.kernelized(jnp.ones((2, 4)))(jnp.ones((3, 5)), jnp.ones(5)), "weight has D=4"),
        (lambda: S.cosine(jnp.ones((3, 2), jnp.complex64), jnp.ones(2)), "must be real"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
