"""Benchmark: KROP butterfly clean-up vs dense codebook clean-up (same JAX run) and vs torchhd.

One process, float32, batch B (default 64). For each codebook size N it times, after warm-up, the median of repeated
calls (``block_until_ready``):

* ``krop``: :func:`dammem.vsa.krop_cleanup` (O(N log N) butterfly + two-level argmax), jitted, theta traced;
* ``krop_signed``: the same with the +-1 column signs (``C = H D``);
* ``krop_stage_by_stage``: the same butterfly with ``group=1`` (one pass over the data per 2x2 stage), to show
  what the grouping of stages into Kronecker blocks buys;
* ``dense``: ``argmax(v @ C^T)`` over a precomputed (N, N) Gaussian codebook ``C`` in the same jitted JAX run
  (the faster of ``jnp.argmax`` and dammem's dense ``Codebook.cleanup``, which uses the same two-level argmax);
* ``torchhd``: ``torchhd.cleanup`` (one query at a time, as the library offers it; at N >= 16384 timed on 8 queries
  and scaled to the batch) and its batched equivalent ``cosine_similarity(v, C).argmax(-1)``, on the same matrix
  ``C``; skipped with a note when torchhd is not importable;
* ``copy``: a device memory copy of the (B, N) batch (the floor for any transform that reads and writes it).

JAX timings are taken in ``--rounds`` interleaved rounds (each method once per round) and the median round is
reported, so a change of machine load affects all methods alike. The dense codebook's build time (random
generation of N^2 entries) is reported separately; parameters are
``log2 N`` angles for KROP vs ``N^2`` entries for the dense codebook. Prints a table with ratios and writes JSON.

Usage::

    dammem bench krop [--sizes 1024 4096 16384] [--batch 64] [--out bench_krop.json]
    python scripts/bench_krop.py [same arguments]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dammem.benchmarks.separations import malloc_env
from dammem.vsa import krop_cleanup, krop_signs, make_codebook, uniform_angles
from dammem.vsa.krop import default_group


def _timeit(fn, *args, repeats: int, warmup: int = 2, sync=jax.block_until_ready) -> float:
    """Median wall time in milliseconds of ``fn(*args)`` after ``warmup`` calls."""
    for _ in range(warmup):
        sync(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _repeats(n: int, base: int) -> int:
    return max(5, base * 1024 // n) if n > 1024 else base


def bench_size(n: int, batch: int, repeats: int, rounds: int, dense_max: int, torch_mod, torchhd_mod, key) -> dict:
    k = n.bit_length() - 1
    k_theta, k_signs, k_x, k_dense = jax.random.split(jax.random.fold_in(key, n), 4)
    theta = uniform_angles(k_theta, k)
    signs = krop_signs(k_signs, n)
    x = jax.random.normal(k_x, (batch, n), dtype=jnp.float32)

    krop_fn = jax.jit(lambda t, v: krop_cleanup(t, v))
    krop_signed_fn = jax.jit(lambda t, d, v: krop_cleanup(t, v, signs=d))
    krop_stage_fn = jax.jit(lambda t, v: krop_cleanup(t, v, group=1))  # ungrouped: one pass per 2x2 stage
    copy_fn = jax.jit(lambda v: v * 2.0)  # writes a fresh (B, N) buffer: one read + one write of the batch

    t_compile = time.perf_counter()
    jax.block_until_ready(krop_fn(theta, x))
    t_compile = 1e3 * (time.perf_counter() - t_compile)
    row = {
        "N": n,
        "K": k,
        "batch": batch,
        "krop_params": k,
        "krop_signed_params": k + n,
        "dense_params": n * n,
        "krop_compile_ms": t_compile,
    }
    timed = {
        "krop_ms": (krop_fn, (theta, x), _repeats(n, repeats)),
        "krop_signed_ms": (krop_signed_fn, (theta, signs, x), _repeats(n, repeats)),
        "krop_stage_by_stage_ms": (krop_stage_fn, (theta, x), _repeats(n, repeats)),
        "copy_ms": (copy_fn, (x,), _repeats(n, repeats)),
    }
    if n <= dense_max:
        sampler = jax.jit(lambda kk: make_codebook("gaussian", n, key=kk)).lower(k_dense).compile()
        t0 = time.perf_counter()  # build time without compilation
        cb = sampler(k_dense)
        dense = jax.block_until_ready(cb.params["matrix"])
        row["dense_build_ms"] = 1e3 * (time.perf_counter() - t0)
        naive_fn = jax.jit(lambda c, v: jnp.argmax(v @ c.T, axis=-1))
        lib_fn = jax.jit(lambda c, v: c.cleanup(v))
        dense_reps = max(3, min(_repeats(n, repeats), 20))
        timed["dense_jnp_argmax_ms"] = (naive_fn, (dense, x), dense_reps)
        timed["dense_codebook_ms"] = (lib_fn, (cb, x), dense_reps)
        if n <= 4096:  # the butterfly must pick the same rows as the dense matrix of the same KROP codebook
            h = make_codebook("krop", n, angles=theta).matrix()
            row["krop_matches_dense_krop_matrix"] = bool(
                np.array_equal(np.asarray(krop_fn(theta, x)), np.asarray(naive_fn(h, x)))
            )

    # interleaved rounds: every method is timed once per round, so load changes hit all of them alike
    samples = {name: [] for name in timed}
    for _ in range(rounds):
        for name, (fn, args, reps) in timed.items():
            samples[name].append(_timeit(fn, *args, repeats=reps))
    for name, values in samples.items():
        row[name] = statistics.median(values)
        row[name.replace("_ms", "_rounds_ms")] = values
    row["krop_over_copy"] = row["krop_ms"] / row["copy_ms"]

    if n <= dense_max:
        row["dense_ms"] = min(row["dense_jnp_argmax_ms"], row["dense_codebook_ms"])
        row["speedup_vs_dense"] = row["dense_ms"] / row["krop_ms"]
        row["stage_by_stage_speedup_vs_dense"] = row["dense_ms"] / row["krop_stage_by_stage_ms"]
        if torchhd_mod is not None:
            torch = torch_mod
            mem = torchhd_mod.ensure_vsa_tensor(torch.from_numpy(np.array(dense)), "MAP")
            xt = torchhd_mod.ensure_vsa_tensor(torch.from_numpy(np.array(x)), "MAP")
            probe = min(batch, 8 if n >= 16384 else batch)

            def th_loop(v):
                with torch.no_grad():
                    return [torchhd_mod.cleanup(v[i], mem) for i in range(probe)]

            def th_batched(v):
                with torch.no_grad():
                    return torchhd_mod.cosine_similarity(v, mem).argmax(-1)

            reps = max(3, min(_repeats(n, repeats), 10))
            loop_ms = _timeit(th_loop, xt, repeats=1 if n >= 16384 else 3, warmup=1, sync=lambda r: r)
            row["torchhd_cleanup_loop_ms"] = loop_ms * batch / probe
            row["torchhd_cleanup_loop_queries_timed"] = probe
            row["torchhd_batched_ms"] = _timeit(th_batched, xt, repeats=reps, warmup=1, sync=lambda r: r)
            row["speedup_vs_torchhd_loop"] = row["torchhd_cleanup_loop_ms"] / row["krop_ms"]
            row["speedup_vs_torchhd_batched"] = row["torchhd_batched_ms"] / row["krop_ms"]
            agree = th_batched(xt).numpy() == np.asarray(lib_fn(cb, x))
            row["torchhd_agrees_with_dense"] = float(agree.mean())
        del dense, cb
    return row


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dammem bench krop", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="codebook sizes N (powers of two)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls at N = 1024 (fewer for larger N)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median round is reported")
    parser.add_argument("--dense-max", type=int, default=16384, help="largest N with a dense codebook")
    parser.add_argument("--no-torch", action="store_true", help="skip the torchhd column")
    parser.add_argument("--out", default="bench_krop.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    backend = jax.default_backend()
    sizes = args.sizes or ([1024, 4096, 16384] + ([65536] if backend != "cpu" else []))
    torch_mod = torchhd_mod = None
    torch_note = "skipped (--no-torch)" if args.no_torch else ""
    if not args.no_torch:
        try:
            import torch
            import torchhd

            torch_mod, torchhd_mod = torch, torchhd
            torch_note = (
                f"torch {torch.__version__}, torchhd {getattr(torchhd, '__version__', '?')}, "
                f"{torch.get_num_threads()} threads, CPU"
            )
        except ImportError as err:  # optional peer
            torch_note = f"skipped: torchhd not importable ({err})"

    print(
        f"# bench_krop: backend={backend} device={jax.devices()[0].device_kind} batch={args.batch} float32 "
        f"group={default_group()}"
    )
    print(f"# torchhd: {torch_note}")
    key = jax.random.key(args.seed)
    rows = []
    for n in sizes:
        rows.append(bench_size(n, args.batch, args.repeats, args.rounds, args.dense_max, torch_mod, torchhd_mod, key))
        r = rows[-1]
        print(f"  N={n}: krop {r['krop_ms']:.3f} ms, dense {_fmt(r.get('dense_ms'))} ms", flush=True)

    header = (
        "| N | params KROP / dense | KROP ms | KROP+signs ms | stage-by-stage ms | dense ms | dense/KROP | "
        "dense/stage-by-stage | torchhd loop ms | "
        "torchhd batched ms | torchhd batched/KROP | copy ms | KROP/copy | dense build ms |"
    )
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(
            f"| {r['N']} | {r['krop_params']} / {r['dense_params']} | {r['krop_ms']:.3f} | {r['krop_signed_ms']:.3f} | "
            f"{r['krop_stage_by_stage_ms']:.3f} | {_fmt(r.get('dense_ms'))} | "
            f"{_fmt(r.get('speedup_vs_dense'), '.1f')} | "
            f"{_fmt(r.get('stage_by_stage_speedup_vs_dense'), '.1f')} | "
            f"{_fmt(r.get('torchhd_cleanup_loop_ms'))} | {_fmt(r.get('torchhd_batched_ms'))} | "
            f"{_fmt(r.get('speedup_vs_torchhd_batched'), '.1f')} | {r['copy_ms']:.3f} | {r['krop_over_copy']:.2f} | "
            f"{_fmt(r.get('dense_build_ms'), '.1f')} |"
        )
    result = {
        "backend": backend,
        "device": jax.devices()[0].device_kind,
        "batch": args.batch,
        "dtype": "float32",
        "group": default_group(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "torchhd": torch_note,
        "malloc_env": malloc_env(),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0
