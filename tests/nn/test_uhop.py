"""UHopHopfield (Wu et al. (2024), eq. 3.1): pure retrieval against a float64 NumPy kernelized update, the layer
equal to a plain Hopfield layer on kernel features (values unmapped), the separation loss per memory set against a
brute-force reference, the kernel as the only KernelParam, an orbax round trip, and errors."""

import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from dammem import uhop
from dammem.nn import Hopfield
from dammem.nn.training import MODEL_PARAMS, KernelParam, separation_step
from dammem.nn.uhop import UHopHopfield
from dammem.similarities import kernelize
from tests.uhop import reference as ref

RNG = np.random.default_rng(7)
F, S = 4, 5


def _kernel_update(w, mem, x, beta, alpha):
    """Xi^T Sep(beta <W xi_s, W x>) in float64 (Wu et al. (2024), eq. 2.4 with K(u, v) = <W u, W v>)."""
    scores = (mem @ w.T) @ (w @ x)
    return ref.entmax(beta * scores, alpha) @ mem


@pytest.mark.parametrize("separation, alpha", [("softmax", 1.0), ("sparsemax", 2.0)])
def test_pure_retrieval_is_the_kernelized_update(x64, separation, alpha):
    layer = UHopHopfield(1, F, use_projections=False, separation=separation, beta=0.7, param_dtype=jnp.float64,
                         rngs=nnx.Rngs(0))  # fmt: skip
    layer.kernel[...] = jnp.asarray(RNG.standard_normal((F, F)))
    mem = RNG.standard_normal((2, S, F))  # two memory sets
    x = RNG.standard_normal((2, 3, F))  # three queries each
    got = np.asarray(layer(jnp.asarray(x), jnp.asarray(mem)))
    w = np.asarray(layer.kernel[...])
    for b in range(2):
        for q in range(3):
            np.testing.assert_allclose(got[b, q], _kernel_update(w, mem[b], x[b, q], 0.7, alpha), rtol=1e-10)
    if separation == "sparsemax":  # with the library's kernelized update too
        lib = uhop.kernel_update(jnp.asarray(x[0, 0]), jnp.asarray(mem[0]), 0.7, 2.0, kernelize("dot", w))
        np.testing.assert_allclose(got[0, 0], np.asarray(lib), rtol=1e-10)


def test_layer_is_hopfield_on_kernel_features_with_unmapped_values():
    kwargs = dict(qkv_features=8, out_features=3, separation="sparsemax", beta=0.5)
    layer = UHopHopfield(2, F, **kwargs, rngs=nnx.Rngs(3))
    plain = Hopfield(2, F, **kwargs, rngs=nnx.Rngs(3))
    # the wrapped layer's parameters are those of a plain Hopfield layer from the same rngs
    for (pa, a), (pb, b) in zip(nnx.to_flat_state(nnx.state(layer.hopfield)), nnx.to_flat_state(nnx.state(plain))):
        assert pa == pb and np.array_equal(np.asarray(a[...]), np.asarray(b[...]))
    xq, xk, xv = (jnp.asarray(RNG.standard_normal((2, n, F)), jnp.float32) for n in (3, S, S))

    def run(layer, plain, xq, xk, xv):  # one compiled program instead of each primitive compiled on its own
        w = layer.kernel[...]
        return (layer(xq, xk, xv), plain(xq @ w.T, xk @ w.T, xv), plain(xq, xk, xv), layer(xk),
                plain(xk @ w.T, xk @ w.T, xk))  # fmt: skip

    got, want, unmapped, self_got, self_want = nnx.jit(run)(layer, plain, xq, xk, xv)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    # a different kernel changes the output (it enters the scores), and self-attention defaults apply
    assert np.abs(np.asarray(got - unmapped)).max() > 1e-3
    np.testing.assert_allclose(np.asarray(self_got), np.asarray(self_want), rtol=1e-5, atol=1e-6)


def test_identity_kernel_starts_as_the_plain_layer():
    layer = UHopHopfield(2, F, kernel_init="identity", rngs=nnx.Rngs(1))
    plain = Hopfield(2, F, rngs=nnx.Rngs(1))
    x = jnp.asarray(RNG.standard_normal((3, S, F)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(plain(x)))


@pytest.mark.parametrize("init", ["orthogonal", "gaussian"])
def test_kernel_init_is_dammem_init_kernel(init):
    layer = UHopHopfield(1, F, use_projections=False, kernel_init=init, rngs=nnx.Rngs(5))
    key = nnx.Rngs(5).params()  # the first draw from the params stream (no projections consumed any)
    np.testing.assert_array_equal(np.asarray(layer.kernel[...]), np.asarray(uhop.init_kernel(key, (F, F), init)))


@pytest.mark.parametrize("loss", ["deep", "average"])
def test_separation_loss_is_the_mean_over_memory_sets(x64, loss):
    layer = UHopHopfield(1, F, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    mem = RNG.standard_normal((2, 3, S, F))
    got = float(layer.separation_loss(jnp.asarray(mem), temperature=1.5, loss=loss))
    w = np.asarray(layer.kernel[...])
    want = np.mean([ref.separation_loss(w, m, t=1.5, loss=loss) for m in mem.reshape(6, S, F)])
    assert got == pytest.approx(want, rel=1e-10)
    pooled = ref.separation_loss(w, mem.reshape(6 * S, F), t=1.5, loss=loss)  # not the pooled sets
    assert abs(got - pooled) > 1e-3
    one = float(layer.separation_loss(jnp.asarray(mem[0, 0]), temperature=1.5, loss=loss))
    assert one == pytest.approx(ref.separation_loss(w, mem[0, 0], t=1.5, loss=loss), rel=1e-10)


def test_kernel_is_the_only_kernel_param_and_gets_both_gradients():
    layer = UHopHopfield(2, F, rngs=nnx.Rngs(0))
    assert [p for p, _ in nnx.to_flat_state(nnx.state(layer, KernelParam))] == [("kernel",)]
    assert ("kernel",) not in {p for p, _ in nnx.to_flat_state(nnx.state(layer, MODEL_PARAMS))}
    x = jnp.asarray(RNG.standard_normal((2, S, F)), jnp.float32)
    task, sep = nnx.jit(lambda m: (nnx.grad(lambda m: jnp.sum(m(x) ** 2))(m),
                                   nnx.grad(lambda m: m.separation_loss(x))(m)))(layer)  # fmt: skip
    assert np.abs(np.asarray(task["kernel"][...])).max() > 1e-4  # the forward pass depends on W
    assert np.abs(np.asarray(sep["kernel"][...])).max() > 1e-4
    # a separation step lowers the loss and moves W only
    opt = nnx.Optimizer(layer, optax.sgd(0.05), wrt=KernelParam)
    before = float(layer.separation_loss(x))
    q0 = np.asarray(layer.hopfield.query.kernel[...])
    separation_step(layer, opt, x, separation_loss_fn=lambda m, b: m.separation_loss(b))
    assert float(layer.separation_loss(x)) < before
    assert np.array_equal(np.asarray(layer.hopfield.query.kernel[...]), q0)


def test_orbax_round_trip_gives_bit_identical_outputs(tmp_path):
    layer = UHopHopfield(2, F, separation="sparsemax", rngs=nnx.Rngs(0))
    layer.kernel[...] = layer.kernel[...] * 1.3  # not the initial value
    x = jnp.asarray(RNG.standard_normal((2, S, F)), jnp.float32)
    _, state = nnx.split(layer)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "layer", state)
    fresh = UHopHopfield(2, F, separation="sparsemax", rngs=nnx.Rngs(9))
    graph, abstract = nnx.split(fresh)
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(tmp_path / "layer", abstract)
    back = nnx.merge(graph, restored)
    assert isinstance(back.kernel, KernelParam)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(layer(x)))
    assert float(back.separation_loss(x)) == float(layer.separation_loss(x))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"UHopHopfield: in_kv_features=6 must equal in_features=4"):
        UHopHopfield(1, F, in_kv_features=6, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"UHopHopfield: kernel_init must be one of \['gaussian', 'identity', 'orth"):
        UHopHopfield(1, F, kernel_init="eye", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"UHopHopfield: rngs must be an nnx.Rngs"):
        UHopHopfield(1, F, rngs=0)
    with pytest.raises(ValueError, match=r"Hopfield: unknown separation 'sparse'"):
        UHopHopfield(1, F, separation="sparse", rngs=nnx.Rngs(0))
    layer = UHopHopfield(1, F, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"UHopHopfield: inputs must have in_features=4 features on the last axis"):
        layer(jnp.ones((2, 3, 5)))
    with pytest.raises(ValueError, match=r"UHopHopfield.separation_loss: loss must be one of \['deep', 'average'\]"):
        layer.separation_loss(jnp.ones((3, F)), loss="max")
    with pytest.raises(ValueError, match=r"separation_loss: memories must have shape \(..., S, in_features=4\) with S"):
        layer.separation_loss(jnp.ones((2, 1, F)))
    with pytest.raises(ValueError, match=r"UHopHopfield: inputs_k cannot be None when inputs_v is given"):
        layer(jnp.ones((3, F)), None, jnp.ones((3, F)))
