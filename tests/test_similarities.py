import typing

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem import similarities as S

RNG = np.random.default_rng(0)
MEM = RNG.standard_normal((7, 5))
X = RNG.standard_normal(5)
W = RNG.standard_normal((8, 5))

REFERENCES = {
    "dot": lambda m, x: m @ x,
    "neg_sq_l2": lambda m, x: -((m - x) ** 2).sum(-1),
    "neg_l2": lambda m, x: -np.sqrt(((m - x) ** 2).sum(-1)),
    "neg_l1": lambda m, x: -np.abs(m - x).sum(-1),
    "cosine": lambda m, x: (m @ x) / (np.linalg.norm(m, axis=-1) * np.linalg.norm(x)),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_float64_reference(x64, name):
    got = S.get_similarity(name)(jnp.asarray(MEM), jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(got), REFERENCES[name](MEM, X), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(getattr(S, name)(jnp.asarray(MEM), jnp.asarray(X))), np.asarray(got))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_kernelize_applies_the_base_to_features(x64, name):
    """kernelize(sim, W)(Xi, x) = sim(Xi W^T, W x) (Wu et al. (2024), eq. 2.1): checked against the reference."""
    got = S.kernelize(name, jnp.asarray(W))(jnp.asarray(MEM), jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(got), REFERENCES[name](MEM @ W.T, W @ X), rtol=1e-12, atol=1e-12)
    same = S.kernelize(name, jnp.eye(5))(jnp.asarray(MEM), jnp.asarray(X))  # identity features: the base itself
    np.testing.assert_allclose(np.asarray(same), REFERENCES[name](MEM, X), rtol=1e-12, atol=1e-12)


def test_energy_scales_of_the_named_similarities():
    scales = {name: sim.energy_scale for name, sim in S.SIMILARITIES.items()}
    assert scales == {"dot": 1.0, "neg_sq_l2": 0.5, "neg_l2": None, "neg_l1": None, "cosine": None}
    assert S.kernelize("dot", jnp.ones((3, 2))).energy_scale == 1.0
    assert S.kernelize("neg_sq_l2", jnp.ones((3, 2))).energy_scale == 0.5
    assert S.kernelize("cosine", jnp.ones((3, 2))).energy_scale is None
    assert S.kernelize("neg_sq_l2", jnp.ones((3, 2))).name == "kernelize(neg_sq_l2)"


def test_kernelize_is_a_pytree_with_the_weight_as_its_only_leaf():
    sim = S.kernelize("neg_sq_l2", jnp.asarray(W, jnp.float32))
    leaves, treedef = jax.tree.flatten(sim)
    assert len(leaves) == 1 and leaves[0] is sim.weight
    rebuilt = jax.tree.unflatten(treedef, [2 * leaves[0]])
    assert rebuilt.base == S.SIMILARITIES["neg_sq_l2"]
    np.testing.assert_array_equal(np.asarray(rebuilt.weight), 2 * np.asarray(sim.weight))
    assert "weight shape (8, 5)" in repr(sim)
    assert "(8, 5)" in repr(jax.tree.map(jnp.shape, sim))  # the repr survives non-array leaves


def test_kernel_weight_is_traced_under_jit_and_vmap_and_gets_gradients(x64):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def scores(sim, x):
        return sim(jnp.asarray(MEM), x)

    for scale in (1.0, 0.5, -2.0):
        got = scores(S.kernelize("dot", jnp.asarray(scale * W)), jnp.asarray(X))
        np.testing.assert_allclose(np.asarray(got), scale**2 * (MEM @ W.T) @ (W @ X), rtol=1e-12)
    # vmap over a stack of weights, and a gradient in W against finite differences
    ws = jnp.stack([jnp.asarray(W), 2 * jnp.asarray(W)])
    batched = jax.vmap(lambda w: S.kernelize("dot", w)(jnp.asarray(MEM), jnp.asarray(X)))(ws)
    np.testing.assert_allclose(np.asarray(batched[1]), 4 * np.asarray(batched[0]), rtol=1e-12)
    # jitted: one compiled program each instead of many op-by-op ones
    loss = jax.jit(lambda w: jnp.sum(S.kernelize("neg_sq_l2", w)(jnp.asarray(MEM), jnp.asarray(X)) ** 2))
    grad = jax.jit(jax.grad(loss))(jnp.asarray(W))
    direction = RNG.standard_normal(W.shape)
    eps = 1e-6
    fd = (loss(jnp.asarray(W + eps * direction)) - loss(jnp.asarray(W - eps * direction))) / (2 * eps)
    np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(fd), rtol=1e-7)


def test_distances_are_negated_so_the_nearest_pattern_scores_highest():
    mem = jnp.asarray(MEM, jnp.float32)
    query = mem[3] + 0.01
    for name in ("neg_sq_l2", "neg_l2", "neg_l1", "cosine"):  # dot prefers long patterns, these the nearest one
        assert int(jnp.argmax(S.get_similarity(name)(mem, query))) == 3, name
    assert float(S.neg_sq_l2(mem, mem[3])[3]) == 0.0


def test_cosine_at_a_zero_vector_is_zero_with_a_finite_gradient(x64):
    mem = jnp.asarray(MEM).at[2].set(0.0)  # one zero memory as well
    np.testing.assert_array_equal(np.asarray(S.cosine(mem, jnp.zeros(5))), np.zeros(7))
    jac0 = jax.jit(jax.jacobian(S.cosine, argnums=(0, 1)))(mem, jnp.zeros(5))  # jitted: one program
    assert all(np.all(np.asarray(j) == 0.0) for j in jac0)
    # away from zero the gradient is the analytic one: (xi/|xi| - cos x/|x|) / |x|
    jac = np.asarray(jax.jit(jax.jacobian(S.cosine, argnums=1))(mem, jnp.asarray(X)))
    nx = np.linalg.norm(X)
    for k in (0, 1, 3):
        nm = np.linalg.norm(MEM[k])
        cos = MEM[k] @ X / (nm * nx)
        np.testing.assert_allclose(jac[k], (MEM[k] / nm - cos * X / nx) / nx, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(jac[2], np.zeros(5))


def test_get_similarity_resolves_names_objects_and_callables():
    fn = lambda m, x: -jnp.abs(m - x).max(-1)  # noqa: E731
    wrapped = S.get_similarity(fn)
    assert isinstance(wrapped, S.Similarity) and wrapped.scores is fn and wrapped.energy_scale is None
    assert S.get_similarity(fn) == wrapped and hash(S.get_similarity(fn)) == hash(wrapped)  # usable as static
    declared = S.Similarity("shifted_dot", lambda m, x: m @ x + 1.0, energy_scale=1.0)
    assert S.get_similarity(declared) is declared
    kern = S.kernelize(declared, jnp.eye(5))
    assert S.get_similarity(kern) is kern and kern.energy_scale == 1.0
    assert S.get_similarity("dot") is S.SIMILARITIES["dot"]
    batch = jax.vmap(S.neg_l1, in_axes=(None, 0))(jnp.asarray(MEM), jnp.asarray(MEM[:2]))
    assert batch.shape == (2, 7)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.get_similarity("euclid"), "unknown similarity 'euclid'"),
        (lambda: S.get_similarity(3), "similarity must be a name"),
        (lambda: S.dot(jnp.ones(5), jnp.ones(5)), "memories must have shape"),
        (lambda: S.dot(jnp.ones((3, 5)), jnp.ones((2, 5))), "one query of shape"),
        (lambda: S.neg_l1(jnp.ones((3, 5)), jnp.ones(4)), "D=5 but x has D=4"),
        (lambda: S.kernelize("dot", jnp.ones(3)), r"kernelize: weight must have shape \(F, D\)"),
        (lambda: S.kernelize("dot", "W"), "kernelize: weight must be an array"),
        (lambda: S.kernelize("dot", jnp.ones((2, 4)))(jnp.ones((3, 5)), jnp.ones(5)), "weight has D=4"),
        (lambda: S.kernelize("l2", jnp.ones((2, 4))), "unknown similarity 'l2'"),
        (lambda: S.kernelize(S.kernelize("dot", jnp.eye(2)), jnp.eye(2)), "already kernelized"),
        (lambda: S.Similarity("s", S.dot, energy_scale=-1.0), "energy_scale must be a float > 0"),
        (lambda: S.Similarity("s", "dot"), "scores must be a callable"),
        (lambda: S.cosine(jnp.ones((3, 2), jnp.complex64), jnp.ones(2)), "must be real"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_the_name_literal_lists_the_registry():
    assert set(typing.get_args(S.SimilarityName)) == set(S.SIMILARITIES) == set(REFERENCES)


def test_neg_l2_gradient_matches_finite_differences_and_is_zero_at_zero_distance(x64):
    """d(-||xi - x||)/dx = (xi - x) / ||xi - x|| (float64 central differences); 0 (a subgradient) at xi = x."""
    mem, x = jnp.asarray(MEM), jnp.asarray(X)
    jac = np.asarray(jax.jacobian(S.neg_l2, argnums=1)(mem, x))
    np.testing.assert_allclose(jac, (MEM - X) / np.linalg.norm(MEM - X, axis=-1, keepdims=True), rtol=1e-10)
    direction = RNG.standard_normal(5)
    eps = 1e-6
    fd = (S.neg_l2(mem, x + eps * direction) - S.neg_l2(mem, x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jac @ direction, np.asarray(fd), rtol=1e-7)
    at_memory = jax.jacobian(S.neg_l2, argnums=(0, 1))(mem, mem[2])
    assert all(np.all(np.isfinite(np.asarray(j))) for j in at_memory)
    np.testing.assert_array_equal(np.asarray(at_memory[1])[2], np.zeros(5))
    assert float(S.neg_l2(mem, mem[2])[2]) == 0.0
    assert np.isnan(np.asarray(S.neg_l2(mem, x.at[0].set(jnp.nan)))).all()  # NaN in, NaN out


def test_nan_or_inf_in_gives_nan_out_for_every_similarity():
    """A NaN (or an inf that makes a norm inf/inf) never reads as a zero vector: cosine's zero-vector rule applies only
    to an exact zero."""
    mem = jnp.array([[1.0, jnp.nan], [0.5, 0.2], [0.0, 0.0]])
    x = jnp.array([1.0, 2.0])
    for name in ("dot", "neg_sq_l2", "neg_l2", "neg_l1", "cosine"):
        got = np.asarray(S.get_similarity(name).scores(mem, x))
        assert np.isnan(got[0]) and np.isfinite(got[1:]).all(), name
        assert np.isnan(np.asarray(S.get_similarity(name).scores(mem[1:], x.at[1].set(jnp.nan)))).all(), name
    assert float(S.cosine(mem[2:], x)[0]) == 0.0  # an exact zero vector keeps similarity 0
