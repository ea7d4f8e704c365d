"""The jaxtyping shape annotations of the public functions hold at run time (checked here only, per DESIGN)."""

import jax.numpy as jnp
import pytest
from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

from dammem import energies, similarities

K, D = 5, 7
MEM = jnp.ones((K, D))
X = jnp.ones(D)


def checked(fn):
    return jaxtyped(typechecker=beartype)(fn)


@pytest.mark.parametrize("name", ["dot", "neg_sq_l2", "neg_l1", "cosine"])
def test_similarity_shapes(name):
    fn = checked(getattr(similarities, name))
    assert fn(MEM, X).shape == (K,)
    with pytest.raises(TypeCheckError):
        fn(MEM, jnp.ones(D + 1))


@pytest.mark.parametrize("name", ["dot", "neg_sq_l2", "neg_l1", "cosine"])
def test_similarity_objects_and_kernelized_shapes(name):
    for sim in (similarities.SIMILARITIES[name], similarities.kernelize(name, jnp.ones((D + 2, D)))):
        fn = checked(sim.__call__)
        assert fn(MEM, X).shape == (K,)
        with pytest.raises(TypeCheckError):
            fn(MEM, jnp.ones(D + 1))


@pytest.mark.parametrize(
    "fn, extra, out_shape",
    [
        (energies.rbf_energy, (1.0,), ()),
        (energies.rbf_update, (1.0,), (D,)),
        (energies.edp_energy, (1.0,), ()),
        (energies.modern_hopfield_energy, (1.0,), ()),
        (energies.sparse_hopfield_energy, (1.0, 1.5), ()),
        (energies.sparse_hopfield_update, (1.0, 1.5), (D,)),
        (energies.polynomial_energy, (3,), ()),
    ],
)
def test_energy_shapes(fn, extra, out_shape):
    assert checked(fn)(X, MEM, *extra).shape == out_shape
    with pytest.raises(TypeCheckError):
        checked(fn)(jnp.ones(D + 1), MEM, *extra)


def test_classical_shapes():
    keys, values = jnp.ones((K, D)), jnp.ones((K, 3))
    w_auto, w_hetero = checked(energies.hebbian_weights)(keys), checked(energies.hetero_weights)(keys, values)
    assert w_auto.shape == (D, D) and w_hetero.shape == (3, D)
    assert checked(energies.sync_update)(X, w_hetero).shape == (3,)  # hetero-associative: (D_out, D)
    assert checked(energies.sync_update)(X, w_auto).shape == (D,)
    assert checked(energies.classical_energy)(X, w_auto).shape == ()
    assert checked(energies.one_step_modern)(X, keys, values).shape == (3,)
    with pytest.raises(TypeCheckError):
        checked(energies.hetero_weights)(keys, jnp.ones((K + 1, 3)))
    with pytest.raises(TypeCheckError):
        checked(energies.one_step_modern)(X, keys, jnp.ones((K + 1, 3)))
