"""The jaxtyping shape annotations of the U-Hop public functions hold at run time (checked in tests only)."""

import jax
import jax.numpy as jnp
import pytest
from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

from dammem import uhop
from dammem.similarities import kernelize

K, D, F = 5, 4, 6
MEM = jax.random.uniform(jax.random.key(0), (K, D))
W = jax.random.normal(jax.random.key(1), (F, D))


def checked(fn):
    return jaxtyped(typechecker=beartype)(fn)


def test_kernel_and_loss_shapes():
    assert checked(uhop.normalize_rows)(W).shape == (F, D)
    assert checked(uhop.unit_features)(W, MEM).shape == (K, F)
    assert checked(uhop.separation_loss)(W, MEM).shape == ()
    with pytest.raises(TypeCheckError):
        checked(uhop.separation_loss)(W, jnp.ones(D))


def test_retrieval_shapes():
    x = MEM[0]
    assert checked(uhop.kernel_energy)(x, MEM, 1.0, 2.0, kernelize("dot", W)).shape == ()
    assert checked(uhop.kernel_update)(x, MEM, 1.0, 2.0, kernelize("dot", W)).shape == (D,)
    assert checked(uhop.exact_retrieval_mask)(MEM, W).shape == (K,)
    assert checked(uhop.separation_condition_mask)(MEM, W).shape == (K,)
    with pytest.raises(TypeCheckError):  # the valid calls are compiled by the other tests
        checked(uhop.uhop_retrieve)(MEM[:2], MEM, jnp.ones((F, D + 1)))
    with pytest.raises(TypeCheckError):
        checked(uhop.fit_kernel)(jnp.ones(D), steps=1, key=jax.random.key(2))
