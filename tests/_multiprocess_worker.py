"""One rank of the multi-process checks: every sharded path on a mesh spanning processes, beside the single-process
result that this rank computes on its own first device.

Run through the launcher (``tests/test_multiprocess.py`` does): ``python -m dammem.launch --num-processes N
--devices-per-process M tests/_multiprocess_worker.py [save=DIR | restore=DIR]``. Every rank supplies only its own
rows of the memories, keys and patterns (``sharding.process_slice`` / ``sharding.distribute_process_local``), and
prints one line: the marker and a JSON object ``{"rank", "processes", "devices", "cases": {name: {"sharded", "single"}},
"local_rows": {name: rows}}``. With ``save=DIR`` it also saves the trained model there with orbax from every process,
restores it into a fresh model and records both outputs; with ``restore=DIR`` it restores a checkpoint that a run
with another number of processes saved and compares it with its own trained model. The assertions live in
``tests/test_multiprocess.py``.

Meshes: ``flat``, one axis ``("memory",)`` over every device (each process holds a contiguous block of rows, split
again over its own devices); ``grid``, ``("memory", "batch")`` with ``memory`` of size 2 running over the processes
in order and ``batch`` over the rest (with 4 processes of 1 device the queries' ``batch`` axis spans processes too,
so results split along it are gathered with ``sharding.gather``).
"""

from __future__ import annotations

import json
import sys
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import dammem
import dammem.launch
from dammem import drdam
from dammem import sharding as sh
from dammem.attention import hopfield_attention
from dammem.energies import sparse_hopfield_energy, sparse_hopfield_update

MARKER = "MULTIPROCESS-RESULTS"
K, D, B, BETA = 64, 16, 8, 4.0


def meshes() -> dict[str, Mesh]:
    devices = np.array(jax.devices())  # listed by process, then by local id
    return {"flat": Mesh(devices, ("memory",)), "grid": Mesh(devices.reshape(2, -1), ("memory", "batch"))}


def local_rows(x: np.ndarray, mesh: Mesh, axis: str = "memory", dim: int = 0) -> np.ndarray:
    """Only this process's rows: what a process loads from its own shard of a dataset."""
    rows = sh.process_slice(x.shape[dim], mesh, axis)
    return np.take(x, np.arange(x.shape[dim])[rows], axis=dim)


def tolist(x) -> list:
    return np.asarray(x, dtype=np.float64).tolist()


def data():
    rng = np.random.default_rng(0)
    memories = (rng.standard_normal((K, D)) / np.sqrt(D)).astype(np.float32)
    queries = (memories[:B] + 0.1 * rng.standard_normal((B, D)) / np.sqrt(D)).astype(np.float32)
    mask = np.ones(K, bool)
    mask[3::5] = False  # hide every fifth memory, the third among them a query's own
    return memories, queries, mask


def retrieve_cases(out: dict, rows: dict) -> None:
    memories, queries, mask = data()
    single = jax.vmap(
        lambda q: dammem.retrieve(
            sparse_hopfield_energy,
            q,
            (memories[mask], BETA, 1.5),
            update=sparse_hopfield_update,
            max_steps=20,
            tol=None,
        )
    )(queries)
    for name, mesh in meshes().items():
        mine = local_rows(memories, mesh)
        rows[name] = int(mine.shape[0])
        placed = sh.distribute_process_local(mine, mesh, "memory")
        placed_mask = sh.distribute_process_local(local_rows(mask, mesh), mesh, "memory")
        batch_axis = "batch" if name == "grid" else None
        res = sh.sharded_retrieve(
            queries, placed, BETA, mesh=mesh, axis="memory", batch_axis=batch_axis, model="sparse_hopfield",
            alpha=1.5, mask=placed_mask, max_steps=20, tol=None,
        )  # fmt: skip
        res_x, res_steps = sh.gather((res.x, res.steps))
        out[f"retrieve/{name}"] = {"sharded": tolist(res_x), "single": tolist(single.x)}
        out[f"retrieve_steps/{name}"] = {"sharded": tolist(res_steps), "single": tolist(single.steps)}
        energy = sh.sharded_energy(
            queries, placed, BETA, mesh=mesh, axis="memory", model="modern_hopfield", mask=placed_mask
        )
        ref = jax.vmap(lambda q: dammem.energies.modern_hopfield_energy(q, memories[mask], BETA))(queries)
        out[f"energy/{name}"] = {"sharded": tolist(sh.gather(energy)), "single": tolist(ref)}
        update = sh.sharded_update(
            queries, placed, BETA, mesh=mesh, axis="memory", batch_axis=batch_axis, model="rbf", mask=placed_mask
        )
        ref = jax.vmap(lambda q: dammem.energies.rbf_update(q, memories[mask], BETA))(queries)
        out[f"update/{name}"] = {"sharded": tolist(sh.gather(update)), "single": tolist(ref)}


def batch_case(out: dict) -> None:
    """Independent trials split over every device of every process (``shard_batch``)."""

    def trial(key, scale):
        return scale * jnp.sum(jax.random.normal(key, (16,)) ** 2)

    keys = jax.random.split(jax.random.key(4), 2 * jax.device_count())
    mesh = meshes()["flat"]
    res = sh.shard_batch(trial, mesh, "memory", in_axes=(0, None))(keys, 0.5)
    out["batch/flat"] = {"sharded": tolist(sh.gather(res)), "single": tolist(jax.vmap(trial, (0, None))(keys, 0.5))}


def attention_case(out: dict) -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 5, 2, 8)).astype(np.float32)
    k = rng.standard_normal((2, 32, 2, 8)).astype(np.float32)
    v = rng.standard_normal((2, 32, 2, 4)).astype(np.float32)
    single = hopfield_attention(q, k, v, beta=0.5, separation="sparsemax", update_steps=2)
    mesh = meshes()["flat"]
    keys = sh.distribute_process_local(local_rows(k, mesh, dim=1), mesh, "memory", dim=1)
    values = sh.distribute_process_local(local_rows(v, mesh, dim=1), mesh, "memory", dim=1)
    res = sh.sharded_hopfield_attention(
        q, keys, values, mesh=mesh, axis="memory", beta=0.5, separation="sparsemax", update_steps=2
    )
    out["attention/flat"] = {"sharded": tolist(sh.gather(res)), "single": tolist(single)}


def encode_case(out: dict) -> None:
    memories, _, mask = data()
    features = drdam.make_features("sincos", D, 256, key=jax.random.key(2))
    single = drdam.encode(features, memories[mask], BETA)
    mesh = meshes()["flat"]
    placed = sh.distribute_process_local(local_rows(memories, mesh), mesh, "memory")
    placed_mask = sh.distribute_process_local(local_rows(mask, mesh), mesh, "memory")
    res = sh.sharded_encode(features, placed, BETA, mesh=mesh, axis="memory", mask=placed_mask)
    out["encode/flat"] = {"sharded": tolist(sh.gather(res.t)), "single": tolist(single.t)}


class Model(nnx.Module):
    """Self-attention by a Hopfield layer with a learnable beta, a descent on a DrDAM memory of fixed prototypes,
    and a linear read-out into class scores."""

    def __init__(self, rngs: nnx.Rngs):
        self.attn = dammem.nn.Hopfield(2, 8, learn_beta=True, rngs=rngs)
        self.memory = dammem.nn.DrDAMMemory(8, 64, beta=2.0, rngs=rngs)
        self.memory.write(jnp.eye(8)[:3])  # three prototypes
        self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        h = self.attn(x).mean(axis=1)  # (N, 8): self-attention over the L inputs, pooled
        return self.head(self.memory.retrieve(h, steps=2, step_size=0.1))


def train_data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4, 8)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    return x, y


def loss_fn(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def training_case(out: dict, checkpoint: str | None) -> None:
    x, y = train_data()
    steps = 3

    def fresh():
        model = Model(nnx.Rngs(0))
        return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    # the single-process reference, on this process's first device only
    with jax.default_device(jax.local_devices()[0]):
        ref_model, ref_opt = fresh()
        ref_losses = [float(train_step(ref_model, ref_opt, x, y)) for _ in range(steps)]
        ref_out = np.asarray(ref_model(x))

    # data parallel: every process builds the same model inside jit, where a sharding constraint replicates its
    # variables over every device of every process; the batch is split over all of them
    mesh = Mesh(np.array(jax.devices()), ("data",))
    replicated = NamedSharding(mesh, P())

    @nnx.jit
    def create():
        model, optimizer = fresh()
        state = nnx.state((model, optimizer))
        nnx.update((model, optimizer), jax.lax.with_sharding_constraint(state, replicated))
        return model, optimizer

    model, optimizer = create()
    xs = sh.distribute_process_local(local_rows(x, mesh, "data"), mesh, "data")
    ys = sh.distribute_process_local(local_rows(y, mesh, "data"), mesh, "data")
    losses = [float(sh.gather(train_step(model, optimizer, xs, ys))) for _ in range(steps)]
    out["train/loss"] = {"sharded": losses, "single": ref_losses}
    out["train/output"] = {"sharded": tolist(sh.gather(model(xs))), "single": tolist(ref_out)}
    if checkpoint is None:
        return
    from dammem.nn.checkpoint import restore_checkpoint, save_checkpoint

    mode, directory = checkpoint.split("=", 1)
    if mode == "save":  # every process writes its part (orbax multi-process)
        save_checkpoint(directory, model, overwrite=True)
    abstract = nnx.eval_shape(lambda: Model(nnx.Rngs(1)))
    nnx.update(
        abstract,
        jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), nnx.state(abstract)),
    )
    restored = restore_checkpoint(directory, abstract)  # saved by this run, or by a run with another process count
    out[f"checkpoint_{mode}/output"] = {
        "sharded": tolist(sh.gather(restored(xs))),
        "single": tolist(sh.gather(model(xs))),
    }


def main() -> None:
    dammem.launch.initialize()  # before the first computation
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else None
    cases: dict = {}
    rows: dict = {}
    errors: dict = {}
    for name, run in (
        ("retrieve", lambda: retrieve_cases(cases, rows)),
        ("batch", lambda: batch_case(cases)),
        ("attention", lambda: attention_case(cases)),
        ("encode", lambda: encode_case(cases)),
        ("training", lambda: training_case(cases, checkpoint)),
    ):
        try:  # every section runs (and all ranks stay in step) even when one fails: the test reports each error
            run()
        except Exception:  # noqa: BLE001
            errors[name] = traceback.format_exc()
    record = {
        "rank": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "local_rows": rows,
        "cases": cases,
        "errors": errors,
    }
    print(MARKER, json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
