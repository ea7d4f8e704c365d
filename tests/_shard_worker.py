"""Runs every sharded path of :mod:`dammem.sharding` on 8 host devices next to its single-device counterpart.

Run as ``python -m tests._shard_worker [--all]`` with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set
before JAX starts (``tests/test_sharding.py`` does so in a subprocess). Without ``--all`` it runs the cases named in
``QUICK`` (one sharded case per public function, per separation kind, per model, per mesh; the default test suite),
with ``--all`` every case (the slow tests). It prints one line, the marker and a JSON object:
``{case: {"sharded": ..., "single": ...}}`` for the comparisons, compiled all-gather shapes for the HLO checks, and
``{"type": ..., "message": ...}`` for every bad input. The assertions live in ``tests/test_sharding.py``.

Meshes: ``8``, eight devices on one axis ``("memory",)``; ``2x4``, ``("batch", "memory")`` with the memories split
over the 4 devices of ``memory`` (and queries or rows over the 2 of ``batch`` where a case says so).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import dammem
from dammem import drdam, separations
from dammem import sharding as sh
from dammem.sharding._models import LocalModel
from dammem.attention import hopfield_attention
from dammem.energies import (
    modern_hopfield_energy,
    rbf_energy,
    rbf_update,
    sparse_hopfield_energy,
    sparse_hopfield_update,
)
from dammem.vsa import krop_cleanup, krop_row, uniform_angles

MARKER = "@@shard-worker@@"
K, D, B = 32, 6, 4  # K and B divisible by 8 and 4, and by 2

OUT: dict = {}

# The cases the default suite runs; ``--all`` adds the others, each a path that a quick case already takes (the
# 2x4 mesh: the batch-split retrieval and attention; entmax15: its retrieval; softmax: the modern Hopfield update
# and energy; the exponential encode: the masked one; the derivatives of general entmax: those of sparsemax; one
# query: the batched queries through the same program) or a second size, alpha, kind, dtype. Each
# program compiled for 8 devices costs about a second of CPU, so the quick set is small.
QUICK = {
    "sep/8/sparsemax", "sep/8/entmax_rows", "grad_z/entmax_rows",
    "update/8/modern", "update/8/l2_13",
    "retrieve/8/rbf_clamp", "retrieve/8/entmax15_no_tol", "retrieve/2x4/entmax13_mask",
    "attention/8/entmax_heads_mask", "attention/2x4/softmax_weights",
    "encode/8/sincos", "encode/masked/expexp",
    "gather/retrieve_entmax15_mask", "gather/attention_sparsemax",
}  # fmt: skip


def selected(label: str, full: bool) -> bool:
    return full or label in QUICK


def put(name: str, sharded, single) -> None:
    OUT[name] = {"sharded": np.asarray(sharded, np.float64).tolist(), "single": np.asarray(single, np.float64).tolist()}


def meshes():
    return {"8": (jax.make_mesh((8,), ("memory",)), None), "2x4": (jax.make_mesh((2, 4), ("batch", "memory")), "batch")}


def data():
    keys = jax.random.split(jax.random.key(0), 4)
    memories = jax.random.normal(keys[0], (K, D))
    x = memories[jnp.array([3, 11, 20, 29])] + 0.4 * jax.random.normal(keys[1], (B, D))
    mask = jnp.ones(K, bool).at[jnp.array([0, 3, 4, 17, 18, 19, 30])].set(False)  # memory 3 (query 0's) is hidden
    return memories, x, mask


# ------------------------------------------------------------------------------------------------------------------
# Separations and conjugates inside shard_map


def scores():
    z = 2.0 * jax.random.normal(jax.random.key(1), (4, K))
    z = z.at[3].set(jnp.round(z[3]))  # ties
    where = jnp.ones((4, K), bool).at[1, ::3].set(False).at[2].set(False)  # row 2: nothing visible
    return z, where


SEPARATION_CASES = {
    "softmax": ("softmax", None),
    "sparsemax": ("sparsemax", None),
    "entmax15": ("entmax15", None),
    "entmax13": ("entmax", 1.3),
    "entmax_rows": ("entmax", jnp.array([[1.1], [1.4], [1.7], [2.0]])),
}


def reference_separation(name, alpha, z, where):
    if name == "entmax":
        return separations.entmax(z, alpha, where=where)
    return getattr(separations, name)(z, where=where)


def swap_where(fn, where, z, alpha):
    return fn(z, where, alpha)


def reference_pair(name, z, alpha, where):
    return reference_separation(name, alpha, z, where), reference_conjugate(name, alpha, z, where)


def reference_conjugate(name, alpha, z, where):
    fixed = {"softmax": 1.0, "sparsemax": 2.0, "entmax15": 1.5}
    return separations.conjugate(z, fixed.get(name, alpha), where=where)


def distributed(mesh, rows_axis, name, alpha):
    """A jitted ``(z, where, alpha) -> (weights, conjugates)`` with the scores split along their last axis over
    ``memory`` (and the rows over ``rows_axis`` when given)."""
    spec = P(rows_axis, "memory")

    def local(z, where, alpha):
        kwargs = dict(separation=name, alpha=alpha, where=where)
        return sh.distributed_separation(z, "memory", **kwargs), sh.distributed_conjugate(z, "memory", **kwargs)

    alpha_spec = None if alpha is None else P(rows_axis) if jnp.ndim(alpha) else P()
    mapped = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, alpha_spec), out_specs=(spec, P(rows_axis)))
    placement = NamedSharding(mesh, spec)
    alpha_placement = None if alpha_spec is None else NamedSharding(mesh, alpha_spec)

    def run(z, where, alpha):
        if alpha is not None:
            alpha = jax.device_put(alpha, alpha_placement)
        return mapped(jax.device_put(z, placement), jax.device_put(where, placement), alpha)

    return jax.jit(run)


SEPARATION_MESHES = {"8": tuple(SEPARATION_CASES), "2x4": ("sparsemax", "entmax15", "entmax_rows")}
GRAD_CASES = ("sparsemax", "entmax15", "entmax_rows")


def separation_cases(full: bool):
    z, where = scores()
    for mesh_name, (mesh, rows_axis) in meshes().items():
        for case in SEPARATION_MESHES[mesh_name]:
            if not selected(f"sep/{mesh_name}/{case}", full):
                continue
            name, alpha = SEPARATION_CASES[case]
            p, psi = distributed(mesh, rows_axis, name, alpha)(z, where, alpha)
            ref_p, ref_psi = jax.jit(partial(reference_pair, name))(z, alpha, where)
            put(f"sep/{mesh_name}/{case}/p", p, ref_p)
            put(f"sep/{mesh_name}/{case}/psi", psi, ref_psi)
    mesh = meshes()["8"][0]
    weights = jax.random.normal(jax.random.key(2), z.shape)
    for case in GRAD_CASES:  # first derivatives in z and alpha (jitted: see sharding)
        if not selected(f"grad_z/{case}", full):
            continue
        name, alpha = SEPARATION_CASES[case]
        sharded = distributed(mesh, None, name, alpha)

        def loss(z, alpha, fn):
            p, psi = fn(z, alpha)
            return jnp.sum(weights * p) + jnp.sum(jnp.where(jnp.isfinite(psi), psi, 0.0) * jnp.arange(4.0))

        argnums = (0,) if alpha is None else (0, 1)
        got = jax.jit(jax.grad(loss, argnums), static_argnums=2)(z, alpha, partial(swap_where, sharded, where))
        ref = jax.jit(jax.grad(loss, argnums), static_argnums=2)(z, alpha, partial(reference_pair, name, where=where))
        put(f"grad_z/{case}", got[0], ref[0])
        if alpha is not None:
            put(f"grad_alpha/{case}", got[1], ref[1])
    with jax.enable_x64(True):  # the fixed kinds end on their exact thresholds
        z64 = 3.0 * jax.random.normal(jax.random.key(3), (4, 256), jnp.float64)
        w64 = jnp.ones(z64.shape, bool)
        for case in ("sparsemax",):
            if not selected(f"x64/{case}", full):
                continue
            name, alpha = SEPARATION_CASES[case]
            got = distributed(mesh, None, name, alpha)(z64, w64, alpha)[0]
            put(f"x64/{case}", got, jax.jit(partial(reference_separation, name, alpha))(z64, None))


# ------------------------------------------------------------------------------------------------------------------
# Energies, updates, retrieval


MODEL_CASES = {  # name: (sharded keyword arguments, single-device energy, update)
    "modern": ({"model": "modern_hopfield"}, modern_hopfield_energy, partial(sparse_hopfield_update, alpha=1.0)),
    "rbf": ({"model": "rbf"}, rbf_energy, rbf_update),
    "sparse2": (
        {"model": "sparse_hopfield", "alpha": 2.0},
        partial(sparse_hopfield_energy, alpha=2.0),
        partial(sparse_hopfield_update, alpha=2.0),
    ),
    "entmax15": (
        {"model": "sparse_hopfield", "alpha": 1.5},
        partial(sparse_hopfield_energy, alpha=1.5),
        partial(sparse_hopfield_update, alpha=1.5),
    ),
    "entmax13": (
        {"model": "sparse_hopfield", "alpha": 1.3},
        partial(sparse_hopfield_energy, alpha=1.3),
        partial(sparse_hopfield_update, alpha=1.3),
    ),
    "l2_13": (
        {"model": "sparse_hopfield", "alpha": 1.3, "similarity": "neg_sq_l2"},
        partial(sparse_hopfield_energy, alpha=1.3, similarity="neg_sq_l2"),
        partial(sparse_hopfield_update, alpha=1.3, similarity="neg_sq_l2"),
    ),
    "l2_1": (
        {"model": "sparse_hopfield", "alpha": 1.0, "similarity": "neg_sq_l2"},
        partial(sparse_hopfield_energy, alpha=1.0, similarity="neg_sq_l2"),
        partial(sparse_hopfield_update, alpha=1.0, similarity="neg_sq_l2"),
    ),
}
BETA = 1.5


UPDATE_CASES = {"8": (("modern", False), ("entmax13", True), ("l2_13", True)), "2x4": (("sparse2", True),)}


def model_cases(full: bool):
    memories, x, mask = data()
    visible = memories[np.asarray(mask)]
    for mesh_name, (mesh, batch_axis) in meshes().items():
        for case, masked in UPDATE_CASES[mesh_name]:
            if not selected(f"update/{mesh_name}/{case}", full):
                continue
            kwargs, energy, update = MODEL_CASES[case]
            stored = visible if masked else memories
            common = dict(mesh=mesh, axis="memory", mask=mask if masked else None, batch_axis=batch_axis, **kwargs)
            put(
                f"update/{mesh_name}/{case}",
                sh.sharded_update(x, memories, BETA, **common),
                jax.jit(jax.vmap(lambda q, stored=stored, update=update: update(q, stored, BETA)))(x),
            )
            put(
                f"energy/{mesh_name}/{case}",
                sh.sharded_energy(x, memories, BETA, **common),
                jax.jit(jax.vmap(lambda q, stored=stored, energy=energy: energy(q, stored, BETA)))(x),
            )
    mesh = meshes()["8"][0]
    # arrays committed to one device move onto the mesh (jit would refuse them beside arrays on 8 devices)
    first = jax.devices()[0]
    put("update/committed_inputs",
        sh.sharded_update(jax.device_put(x, first), sh.distribute(memories, mesh, "memory"), BETA, mesh=mesh,
                          axis="memory"),
        jax.jit(jax.vmap(lambda q: sparse_hopfield_update(q, memories, BETA, 1.0)))(x))  # fmt: skip
    # a traced alpha (alpha = 1 exactly takes the softmax branch) and a traced beta
    traced = jax.jit(
        lambda alpha, beta: sh.sharded_update(
            x, memories, beta, mesh=mesh, axis="memory", model="sparse_hopfield", alpha=alpha
        )  # fmt: skip
    )
    for alpha in (1.0, 1.3, 2.0):
        put(f"update/traced_alpha_{alpha}", traced(alpha, BETA),
            jax.jit(jax.vmap(lambda q, alpha=alpha: sparse_hopfield_update(q, memories, BETA, alpha)))(x))  # fmt: skip
    OUT["update/traced_negative_beta"] = np.asarray(traced(1.3, -1.0)).tolist()
    for case in ("entmax13",):  # the energy's gradient in x is the single-device one (under jit: see sharding)
        kwargs, energy, _ = MODEL_CASES[case]
        grad = jax.jit(
            jax.grad(lambda q, kw=kwargs: sh.sharded_energy(q, memories, BETA, mesh=mesh, axis="memory", **kw))
        )
        put(f"energy_grad/{case}", grad(x[1]), jax.jit(jax.grad(energy))(x[1], memories, BETA))


RETRIEVE_CASES = {  # name: (model case, mask, clamp, tol, max_steps); each compares x, energy, steps, converged
    "8": {
        "modern": ("modern", False, False, 1e-4, 100),
        "rbf_clamp": ("rbf", False, True, 1e-4, 100),
        "sparse2_mask": ("sparse2", True, False, 1e-4, 100),
        "l2_1": ("l2_1", False, False, 1e-4, 100),
        "entmax15_no_tol": ("entmax15", True, True, None, 3),
    },
    "2x4": {"entmax13_mask": ("entmax13", True, False, 1e-4, 100)},
}


def retrieve_cases(full: bool):
    memories, x, mask = data()
    clamp = jnp.arange(D) < 2
    for mesh_name, (mesh, batch_axis) in meshes().items():
        for case, (model, masked, clamped, tol, steps) in RETRIEVE_CASES[mesh_name].items():
            if not selected(f"retrieve/{mesh_name}/{case}", full):
                continue
            kwargs, energy, update = MODEL_CASES[model]
            stored = memories[np.asarray(mask)] if masked else memories
            got = sh.sharded_retrieve(
                x, memories, BETA, mesh=mesh, axis="memory", mask=mask if masked else None,
                clamp=clamp if clamped else None, tol=tol, max_steps=steps, batch_axis=batch_axis, **kwargs,
            )  # fmt: skip
            ref = jax.jit(jax.vmap(
                lambda q, stored=stored, energy=energy, update=update, clamped=clamped, tol=tol, steps=steps: (
                    dammem.retrieve(
                        lambda y, m: energy(y, m, BETA),
                        q,
                        (stored,),
                        update=lambda y, m: update(y, m, BETA),
                        clamp=clamp if clamped else None,
                        tol=tol,
                        max_steps=steps,
                    )
                )  # fmt: skip
            ))(x)
            for field in ("x", "energy", "steps", "converged"):
                put(f"retrieve/{mesh_name}/{case}/{field}", getattr(got, field), getattr(ref, field))
    if not selected("retrieve/one_query", full):
        return
    one = sh.sharded_retrieve(x[2], memories, BETA, mesh=meshes()["8"][0], axis="memory", model="rbf")
    ref = dammem.retrieve(rbf_energy, x[2], (memories, BETA), update=rbf_update)
    for field in ("x", "energy", "steps", "converged"):
        put(f"retrieve/one_query/{field}", getattr(one, field), getattr(ref, field))


# ------------------------------------------------------------------------------------------------------------------
# Attention, DrDAM encode, batch parallel


ATTENTION_CASES = {"8": ("sparsemax_steps", "entmax_heads_mask"), "2x4": ("softmax_weights",)}


def attention_cases(full: bool):
    ks = jax.random.split(jax.random.key(5), 4)
    q = jax.random.normal(ks[0], (2, 3, 2, 4))  # (batch, Q, H, D)
    k = jax.random.normal(ks[1], (2, 16, 2, 4))  # S = 16
    v = jax.random.normal(ks[2], (2, 16, 2, 5))
    mask = jax.random.bernoulli(ks[3], 0.6, (2, 2, 3, 16)).at[0, 1, 2].set(False)  # one query sees nothing
    cases = {
        "8": {
            "sparsemax_steps": {"separation": "sparsemax", "update_steps": 3, "tol": 0.05, "beta": 0.8},
            "entmax_heads_mask": {"separation": "entmax", "alpha": jnp.array([1.3, 1.8]), "mask": mask,
                                  "beta": jnp.array([0.7, 1.9]), "update_steps": 2},
        },
        "2x4": {"softmax_weights": {"mask": mask[:, :, :1], "return_weights": True}},
    }  # fmt: skip
    for mesh_name, (mesh, _) in meshes().items():
        for case, kwargs in cases[mesh_name].items():
            if not selected(f"attention/{mesh_name}/{case}", full):
                continue
            got = sh.sharded_hopfield_attention(q, k, v, mesh=mesh, axis="memory", **kwargs)
            ref = jax.jit(partial(hopfield_attention, **kwargs))(q, k, v)
            if kwargs.get("return_weights"):
                put(f"attention/{mesh_name}/{case}/weights", got[1], ref[1])
                OUT[f"attention/{mesh_name}/{case}/weights_spec"] = str(got[1].sharding.spec)
                got, ref = got[0], ref[0]
            put(f"attention/{mesh_name}/{case}", got, ref)


ENCODE_CASES = {"8": ("sincos", "expexp"), "2x4": ("exp",), "masked": ("sincos", "expexp")}


def encode_cases(full: bool):
    memories = jax.random.uniform(jax.random.key(6), (K, 8)) / 4
    for mesh_name, (mesh, _) in meshes().items():
        for kind in ENCODE_CASES[mesh_name]:
            if not selected(f"encode/{mesh_name}/{kind}", full):
                continue
            features = drdam.make_features(kind, 8, 64, key=jax.random.key(7))
            got = sh.sharded_encode(features, memories, 3.0, mesh=mesh, axis="memory", batch_size=2)
            ref = jax.jit(lambda m, features=features: drdam.encode(features, m, 3.0))(memories)
            put(f"encode/{mesh_name}/{kind}", got.t, ref.t)
            OUT[f"encode/{mesh_name}/{kind}/count"] = int(got.count)
    # K = 29 patterns padded to 32 (a NaN row and two zero rows), and one stored pattern left out by the mask too
    mesh, _ = meshes()["8"]
    padded = jnp.concatenate([memories[:29], jnp.full((1, 8), jnp.nan), jnp.zeros((2, 8))])
    mask = (jnp.arange(K) < 29).at[5].set(False)
    kept = np.asarray(mask).nonzero()[0][np.asarray(mask).nonzero()[0] < 29]
    for kind in ENCODE_CASES["masked"]:
        if not selected(f"encode/masked/{kind}", full):
            continue
        features = drdam.make_features(kind, 8, 64, key=jax.random.key(7))
        got = sh.sharded_encode(features, padded, 3.0, mesh=mesh, axis="memory", mask=mask, batch_size=2)
        ref = jax.jit(lambda m, features=features: drdam.encode(features, m, 3.0))(memories[kept])
        put(f"encode/masked/{kind}", got.t, ref.t)
        OUT[f"encode/masked/{kind}/count"] = [int(got.count), len(kept)]
        # the same call with every row stored: what an ignored mask would give (NaN from the padding row)
        unmasked = sh.sharded_encode(features, padded, 3.0, mesh=mesh, axis="memory", batch_size=2)
        OUT[f"encode/masked/{kind}/unmasked_finite"] = bool(np.all(np.isfinite(np.asarray(unmasked.t))))


def trial(key):
    """One experiment trial: draw 16 patterns, flip a quarter of the first one's signs, one update; the
    recall error and the retrieved state (alpha = 1: the modern Hopfield update, the cheapest to compile)."""
    k1, k2 = jax.random.split(key)
    patterns = jnp.sign(jax.random.normal(k1, (16, 12)))
    query = patterns[0] * jnp.where(jax.random.uniform(k2, (12,)) < 0.25, -1.0, 1.0)
    out = sparse_hopfield_update(query, patterns, 0.5, 1.0)
    return jnp.mean(jnp.abs(out - patterns[0])), out


def batch_cases(full: bool):
    theta = uniform_angles(jax.random.key(8), 8)
    noisy = krop_row(theta, jnp.arange(16) * 13) + 0.02 * jax.random.normal(jax.random.key(9), (16, 256))
    keys = jax.random.split(jax.random.key(10), 16)
    mesh, batch_axis = meshes()["2x4"]
    cleaned = sh.shard_batch(krop_cleanup, mesh, batch_axis, in_axes=(None, 0))(theta, noisy)
    put("batch/2x4/krop_cleanup", cleaned, jax.jit(krop_cleanup)(theta, noisy))
    OUT["batch/2x4/krop_cleanup/spec"] = str(cleaned.sharding.spec)
    errors, states = sh.shard_batch(trial, meshes()["8"][0], "memory")(keys)
    ref_errors, ref_states = jax.jit(jax.vmap(trial))(keys)
    put("batch/8/trials/errors", errors, ref_errors)
    put("batch/8/trials/states", states, ref_states)


# ------------------------------------------------------------------------------------------------------------------
# Compiled programs: no all-gather of the memory set


def gather_cases(full: bool):
    memories, x, mask = data()
    mesh = meshes()["8"][0]
    placed = sh.distribute(memories, mesh, "memory")
    placed_mask = sh.distribute(mask, mesh, "memory")
    programs = {
        "retrieve_modern": lambda x, m, k: sh.sharded_retrieve(x, m, BETA, mesh=mesh, axis="memory").x,
        "retrieve_entmax15_mask": lambda x, m, k: (
            sh.sharded_retrieve(x, m, BETA, mesh=mesh, axis="memory", model="sparse_hopfield", alpha=1.5, mask=k).x
        ),
        "attention_sparsemax": lambda x, m, k: sh.sharded_hopfield_attention(
            x[None, :, None], m[:, None], m[:, None], mesh=mesh, axis="memory", separation="sparsemax", update_steps=2
        ),
    }
    for name, fn in programs.items():
        if not selected(f"gather/{name}", full):
            continue
        text = jax.jit(fn).lower(x, placed, placed_mask).compile().as_text()
        OUT[f"gather/{name}"] = {"shapes": sh.all_gather_shapes(text), "all_reduces": text.count("all-reduce(")}
    # the same retrieval with a read-out that gathers the memory set first: the check must see it
    original = LocalModel.read

    def gathering_read(self, p):
        everything = lax.all_gather(self.memories, self.axis, tiled=True)  # (K, D) on every device
        mine = lax.axis_index(self.axis) * self.memories.shape[0]
        return lax.psum(p @ lax.dynamic_slice_in_dim(everything, mine, self.memories.shape[0]), self.axis)

    LocalModel.read = gathering_read
    jax.clear_caches()
    try:
        text = jax.jit(programs["retrieve_entmax15_mask"]).lower(x, placed, placed_mask).compile().as_text()
        OUT["gather/gathering_variant"] = {
            "shapes": sh.all_gather_shapes(text),
            "all_reduces": text.count("all-reduce("),
        }
    finally:
        LocalModel.read = original
        jax.clear_caches()
    OUT["gather/memory_shape"] = [K, D]


# ------------------------------------------------------------------------------------------------------------------
# Bad inputs


def error_cases(full: bool):
    memories, x, mask = data()
    mesh8, _ = meshes()["8"]
    mesh24, _ = meshes()["2x4"]
    features = drdam.make_features("sincos", D, 16, key=jax.random.key(0))
    q = jnp.ones((1, 3, 2, 4))
    calls = {
        "missing_axis": lambda: sh.sharded_update(x, memories, 1.0, mesh=mesh8, axis="rows"),
        "indivisible_memories": lambda: sh.sharded_update(x, memories[:30], 1.0, mesh=mesh8, axis="memory"),
        "indivisible_batch": lambda: sh.sharded_energy(
            x[:3], memories, 1.0, mesh=mesh24, axis="memory", batch_axis="batch"
        ),  # fmt: skip
        "missing_batch_axis": lambda: sh.sharded_retrieve(
            x, memories, 1.0, mesh=mesh24, axis="memory", batch_axis="queries"
        ),  # fmt: skip
        "same_axes": lambda: sh.sharded_update(x, memories, 1.0, mesh=mesh24, axis="memory", batch_axis="memory"),
        "mask_hides_all": lambda: sh.sharded_update(
            x, memories, 1.0, mesh=mesh8, axis="memory", mask=jnp.zeros(K, bool)
        ),  # fmt: skip
        "mask_shape": lambda: sh.sharded_update(x, memories, 1.0, mesh=mesh8, axis="memory", mask=mask[:8]),
        "alpha_range": lambda: sh.sharded_update(
            x, memories, 1.0, mesh=mesh8, axis="memory", model="sparse_hopfield", alpha=2.5
        ),  # fmt: skip
        "alpha_missing": lambda: sh.sharded_update(
            x, memories, 1.0, mesh=mesh8, axis="memory", model="sparse_hopfield"
        ),  # fmt: skip
        "alpha_unused": lambda: sh.sharded_update(x, memories, 1.0, mesh=mesh8, axis="memory", alpha=1.5),
        "similarity": lambda: sh.sharded_update(
            x, memories, 1.0, mesh=mesh8, axis="memory", model="sparse_hopfield", alpha=1.5, similarity="cosine"
        ),  # fmt: skip
        "model": lambda: sh.sharded_energy(x, memories, 1.0, mesh=mesh8, axis="memory", model="classical"),
        "beta": lambda: sh.sharded_energy(x, memories, 0.0, mesh=mesh8, axis="memory"),
        "query_dim": lambda: sh.sharded_update(x[:, :4], memories, 1.0, mesh=mesh8, axis="memory"),
        "not_a_mesh": lambda: sh.sharded_update(x, memories, 1.0, mesh=jax.devices(), axis="memory"),
        "clamp": lambda: sh.sharded_retrieve(x, memories, 1.0, mesh=mesh8, axis="memory", clamp=jnp.ones(3, bool)),
        "distribute": lambda: sh.distribute(memories[:12], mesh8, "memory"),
        "encode_indivisible": lambda: sh.sharded_encode(features, memories[:12], 1.0, mesh=mesh8, axis="memory"),
        "encode_missing_axis": lambda: sh.sharded_encode(features, memories, 1.0, mesh=mesh8, axis="batch"),
        "encode_mask_shape": lambda: sh.sharded_encode(
            features, memories, 1.0, mesh=mesh8, axis="memory", mask=jnp.ones(8, bool)
        ),
        "encode_mask_dtype": lambda: sh.sharded_encode(
            features, memories, 1.0, mesh=mesh8, axis="memory", mask=jnp.ones(K)
        ),
        "attention_indivisible": lambda: sh.sharded_hopfield_attention(
            q, jnp.ones((1, 12, 2, 4)), jnp.ones((1, 12, 2, 4)), mesh=mesh8, axis="memory"
        ),
        "attention_alpha": lambda: sh.sharded_hopfield_attention(
            q,
            jnp.ones((1, 8, 2, 4)),
            jnp.ones((1, 8, 2, 4)),
            mesh=mesh8,
            axis="memory",
            separation="entmax",
            alpha=2.5,
        ),
        "attention_separation": lambda: sh.sharded_hopfield_attention(
            q, jnp.ones((1, 8, 2, 4)), jnp.ones((1, 8, 2, 4)), mesh=mesh8, axis="memory", separation=jnp.tanh
        ),
        "attention_shapes": lambda: sh.sharded_hopfield_attention(
            q, jnp.ones((1, 8, 2, 3)), jnp.ones((1, 8, 2, 4)), mesh=mesh8, axis="memory"
        ),
        "shard_batch_indivisible": lambda: sh.shard_batch(jnp.sin, mesh8, "memory")(jnp.ones(12)),
        "shard_batch_in_axes": lambda: sh.shard_batch(jnp.sin, mesh8, "memory", in_axes=1),
        "shard_batch_axis": lambda: sh.shard_batch(jnp.sin, mesh24, "trials"),
        "inside_alpha_unused": lambda: jax.shard_map(
            lambda z: sh.distributed_separation(z, "memory", separation="sparsemax", alpha=1.5),
            mesh=mesh8,
            in_specs=P("memory"),
            out_specs=P("memory"),
        )(sh.distribute(jnp.ones(8), mesh8, "memory")),  # fmt: skip
        "inside_alpha_shape": lambda: jax.shard_map(
            lambda z: sh.distributed_separation(z, "memory", separation="entmax", alpha=jnp.full((2, 4), 1.5)),
            mesh=mesh8,
            in_specs=P(None, "memory"),
            out_specs=P(None, "memory"),
        )(sh.distribute(jnp.ones((2, 32)), mesh8, "memory", dim=1)),  # fmt: skip
    }
    for name, call in calls.items():
        try:
            call()
        except Exception as err:  # noqa: BLE001 - recorded for the tests to judge
            OUT[f"error/{name}"] = {"type": type(err).__name__, "message": str(err)}
        else:
            OUT[f"error/{name}"] = {"type": None, "message": "no error"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--all"]):
        raise SystemExit(f"usage: python -m tests._shard_worker [--all], got {args}")
    full = args == ["--all"]
    OUT["device_count"] = jax.device_count()
    OUT["full"] = full
    for section in (separation_cases, model_cases, retrieve_cases, attention_cases, encode_cases, batch_cases,
                    gather_cases, error_cases):  # fmt: skip
        start = time.process_time()
        try:
            section(full)
        except Exception:  # noqa: BLE001 - a failing section is reported, the others still run
            OUT[f"crash/{section.__name__}"] = traceback.format_exc()
        OUT[f"time/{section.__name__}"] = time.process_time() - start
    print(MARKER + json.dumps(OUT), flush=True)


if __name__ == "__main__":
    main()
