"""Orbax round trip of every dammem.nn module: restored into a fresh module (other rngs) or an abstract one, the
outputs are bit-identical; mismatched targets and bad paths raise clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dammem.energies import rbf_update
from dammem.nn import Hopfield, HopfieldLayer, HopfieldPooling
from dammem.nn.checkpoint import restore_checkpoint, save_checkpoint
from dammem.nn.drdam import DrDAMMemory
from dammem.nn.energy import EnergyDescent
from dammem.nn.uhop import UHopHopfield
from dammem.nn.vsa import KropCodebookLayer

RNG = np.random.default_rng(5)
SEQ = jnp.asarray(RNG.standard_normal((2, 5, 8)), jnp.float32)  # (batch, positions, features)
VEC = jnp.asarray(RNG.standard_normal((3, 8)), jnp.float32)
MEM = jnp.asarray(RNG.standard_normal((4, 8)) / np.sqrt(8), jnp.float32)


def _drdam(rngs):
    return DrDAMMemory(8, 64, kind="cos", beta=2.0, rngs=rngs)


def _drdam_write(mod):
    mod.write(MEM[:3])
    mod.add(MEM[3:])


def _energy_write(mod):
    mod.write(MEM)


# name -> (build(rngs), change the state after construction, outputs(module))
CASES = {
    "EnergyDescent": (
        lambda rngs: EnergyDescent(4, 8, energy="rbf", steps=3, step_size=0.3, learn_beta=True, rngs=rngs),
        None,
        lambda m: (m(VEC), m.energy(VEC)),
    ),
    "EnergyDescent-fixed-memories": (
        lambda rngs: EnergyDescent(4, 8, update=rbf_update, steps=2, learn_memories=False, rngs=rngs),
        _energy_write,
        lambda m: m(VEC),
    ),
    "DrDAMMemory": (_drdam, _drdam_write, lambda m: (m.energy(VEC), m.retrieve(VEC, 3, 0.2))),
    "KropCodebookLayer": (
        lambda rngs: KropCodebookLayer(8, signed=True, rngs=rngs),
        None,
        lambda m: (m.cleanup(VEC), m.soft_cleanup(VEC, 2.0)),
    ),
    "Hopfield": (
        lambda rngs: Hopfield(2, 8, separation="entmax", alpha=1.5, learn_alpha=True, learn_beta=True, update_steps=2,
                              dropout_rate=0.2, rngs=rngs),
        None,
        lambda m: (m(SEQ, deterministic=True), m(SEQ, deterministic=False)),  # dropout draws from the saved stream
    ),
    "HopfieldPooling": (
        lambda rngs: HopfieldPooling(2, 8, num_queries=3, separation="sparsemax", rngs=rngs),
        None,
        lambda m: m(SEQ),
    ),
    "HopfieldLayer": (
        lambda rngs: HopfieldLayer(2, 8, num_patterns=6, separate_targets=True, rngs=rngs),
        None,
        lambda m: m(SEQ),
    ),
    "UHopHopfield": (
        lambda rngs: UHopHopfield(2, 8, separation="sparsemax", rngs=rngs),
        None,
        lambda m: (m(SEQ), m.separation_loss(SEQ)),
    ),
}


def _assert_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) > 0
    for x, y in zip(leaves_a, leaves_b):
        assert x.dtype == y.dtype
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_is_bit_identical(name, tmp_path):
    build, change, outputs = CASES[name]
    module = build(nnx.Rngs(0))
    if change is not None:
        change(module)
    save_checkpoint(tmp_path / "ckpt", module)
    saved = nnx.to_pure_dict(nnx.state(module))
    want = outputs(module)

    fresh = build(nnx.Rngs(1))  # other rngs: other initial values
    if change is None:
        assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(outputs(fresh)), jax.tree.leaves(want)))
    restored = restore_checkpoint(tmp_path / "ckpt", build(nnx.Rngs(1)))
    assert type(restored) is type(module)
    _assert_identical(outputs(restored), want)

    abstract = nnx.eval_shape(lambda: build(nnx.Rngs(2)))
    restored = restore_checkpoint(str(tmp_path / "ckpt"), abstract)
    _assert_identical(nnx.to_pure_dict(nnx.state(restored)), saved)  # every variable, Param or not
    _assert_identical(outputs(restored), want)


def test_typed_prng_keys_survive_the_round_trip(tmp_path):
    mod = _drdam(nnx.Rngs(0))
    key = mod.random_features.get_value()["key"]
    assert jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    save_checkpoint(tmp_path / "ckpt", mod)
    back = restore_checkpoint(tmp_path / "ckpt", nnx.eval_shape(lambda: _drdam(nnx.Rngs(3))))
    restored_key = back.random_features.get_value()["key"]
    assert restored_key.dtype == key.dtype
    assert np.array_equal(jax.random.key_data(restored_key), jax.random.key_data(key))


def test_restore_refuses_a_mismatched_target_and_save_refuses_to_overwrite(tmp_path):
    book = KropCodebookLayer(8, signed=True, rngs=nnx.Rngs(0))
    save_checkpoint(tmp_path / "ckpt", book)
    with pytest.raises(ValueError, match=r"restore_checkpoint: the checkpoint at .* does not match the target "
                       r"KropCodebookLayer .*signs/value has shape \(8,\) in the checkpoint but \(16,\) in the target"):
        restore_checkpoint(tmp_path / "ckpt", KropCodebookLayer(16, signed=True, rngs=nnx.Rngs(0)))  # other shape
    with pytest.raises(ValueError, match="signs/value is in the checkpoint but not in the target"):
        restore_checkpoint(tmp_path / "ckpt", KropCodebookLayer(8, rngs=nnx.Rngs(0)))  # no signs
    with pytest.raises(ValueError, match="does not match the target EnergyDescent .*memories/value is not in the "):
        restore_checkpoint(tmp_path / "ckpt", EnergyDescent(2, 8, step_size=0.1, rngs=nnx.Rngs(0)))
    drdam = _drdam(nnx.Rngs(0))  # a typed PRNG key is compared by its key data
    save_checkpoint(tmp_path / "drdam", drdam)
    with pytest.raises(ValueError, match="random_features/value/phases has shape"):
        restore_checkpoint(tmp_path / "drdam", DrDAMMemory(8, 32, kind="cos", beta=2.0, rngs=nnx.Rngs(0)))
    with pytest.raises(FileNotFoundError, match="restore_checkpoint: no checkpoint directory"):
        restore_checkpoint(tmp_path / "missing", book)
    with pytest.raises(ValueError, match="save_checkpoint: path .* already exists; pass overwrite=True"):
        save_checkpoint(tmp_path / "ckpt", book)
    other = KropCodebookLayer(8, signed=True, rngs=nnx.Rngs(7))
    save_checkpoint(tmp_path / "ckpt", other, overwrite=True)
    back = restore_checkpoint(tmp_path / "ckpt", book)
    assert np.array_equal(back.theta[...], other.theta[...])
    assert not np.array_equal(book.theta[...], other.theta[...])  # the target itself is left untouched
    with pytest.raises(TypeError, match="save_checkpoint: target must be a flax.nnx.Module, an nnx.Optimizer "
                       r"\(any nnx.Pytree\) or an nnx.State, got dict"):
        save_checkpoint(tmp_path / "x", {"a": jnp.ones(2)})
    with pytest.raises(TypeError, match="restore_checkpoint: target must be a flax.nnx.Module, .* got list"):
        restore_checkpoint(tmp_path / "ckpt", [book])
    with pytest.raises(ValueError, match="does not match the target State .*theta/value is not in the checkpoint"):
        restore_checkpoint(tmp_path / "ckpt", nnx.state({"other": book}))
    with pytest.raises(TypeError, match="save_checkpoint: path must be a str or os.PathLike"):
        save_checkpoint(3, book)


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_checkpoint_raises_an_error_naming_its_path(tmp_path, damage):
    import os

    book = KropCodebookLayer(4096, signed=True, rngs=nnx.Rngs(0))  # signs too large to be inlined in the index
    save_checkpoint(tmp_path / "ckpt", book)
    data = max((p for p in (tmp_path / "ckpt").rglob("*") if p.parent.name == "d"), key=os.path.getsize)
    if damage == "truncate":
        os.truncate(data, data.stat().st_size // 2)
    else:
        data.unlink()
    with pytest.raises(ValueError, match=r"restore_checkpoint: the checkpoint at '.*ckpt' is damaged or incomplete "
                       r"\(a file is missing or truncated; save it again\): [A-Z_]+: Error reading") as info:
        restore_checkpoint(tmp_path / "ckpt", book)
    assert info.value.__cause__ is not None  # orbax's error, with TensorStore's below it
    (tmp_path / "ckpt" / "_METADATA").unlink()
    with pytest.raises(ValueError, match=r"checkpoint at '.*ckpt' is damaged or incomplete .*its metadata"):
        restore_checkpoint(tmp_path / "ckpt", book)


class _Tagger(nnx.Module):
    """A small sequence model: embedding, Hopfield attention with learned beta, a linear read-out."""

    def __init__(self, rngs):
        self.embed = nnx.Linear(8, 16, rngs=rngs)
        self.hopfield = Hopfield(2, 16, separation="sparsemax", learn_beta=True, dropout_rate=0.1, rngs=rngs)
        self.head = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        h = self.embed(x)
        return self.head(h + self.hopfield(h, deterministic=False))  # dropout draws from the module's stream


def _training():
    labels = jnp.asarray(RNG.integers(0, 3, SEQ.shape[:2]))

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(m):
            return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(m(SEQ)), labels[..., None], axis=-1))

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    return step


def test_training_resumes_bit_identically_from_a_saved_model_and_optimizer(tmp_path):
    """Train, save model + optimizer, go on training; a fresh model and optimizer restored from the checkpoint go on
    with bit-identical losses, weights, optimizer state and dropout draws (same program on the same machine). Saved
    as two objects and as one ``nnx.State`` of both."""
    import optax

    tx = optax.adam(1e-2)
    step = _training()
    model = _Tagger(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    for _ in range(3):
        step(model, optimizer)
    save_checkpoint(tmp_path / "model", model)
    save_checkpoint(tmp_path / "optimizer", optimizer)
    save_checkpoint(tmp_path / "both", nnx.state((model, optimizer)))
    want_losses = [step(model, optimizer) for _ in range(2)]
    want_state = nnx.state((model, optimizer))

    def fresh_pair(seed):
        fresh = _Tagger(nnx.Rngs(seed))
        return fresh, nnx.Optimizer(fresh, tx, wrt=nnx.Param)

    fresh, fresh_optimizer = fresh_pair(1)
    fresh = restore_checkpoint(tmp_path / "model", fresh)
    fresh_optimizer = restore_checkpoint(tmp_path / "optimizer", fresh_optimizer)
    assert type(fresh_optimizer) is nnx.Optimizer
    pair_from_state = fresh_pair(2)
    state = restore_checkpoint(tmp_path / "both", nnx.state(pair_from_state))
    assert isinstance(state, nnx.State)
    nnx.update(pair_from_state, state)
    for m, opt in [(fresh, fresh_optimizer), pair_from_state]:
        assert int(opt.step[...]) == 3
        _assert_identical([step(m, opt) for _ in range(2)], want_losses)
        _assert_identical(nnx.state((m, opt)), want_state)
