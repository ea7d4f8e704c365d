"""KROP butterfly clean-up vs dense codebook clean-up (same JAX process) and vs torchhd, on the CPU by default.

Run from the repository root: ``python benchmarks/krop.py [--sizes 1024 4096 16384] [--batch 64] [--out FILE]`` (JSON
to ``runs/bench_krop.json`` by default).

float32, batch ``B`` (default 64) of Gaussian vectors. The codebooks and clean-up calls are those of the
``krop_timing`` experiment (:func:`dammem.experiments.krop.timing.build_codebooks` and ``cleanup_calls``):

* ``krop``: :func:`dammem.vsa.krop_cleanup` through the KROP codebook (O(N log N) butterfly + two-level argmax);
* ``krop_signed``: the same with the +-1 column signs (``C = H D``);
* ``dense``: dammem's dense Gaussian codebook clean-up ``argmax C v`` over a precomputed (N, N) matrix;

and this benchmark adds

* ``krop_stage_by_stage``: the butterfly with ``group=1`` (one pass over the data per 2x2 stage), to show what
  grouping the stages into Kronecker blocks buys;
* ``dense_jnp_argmax``: ``jnp.argmax(v @ C^T)`` on the same matrix (the table's dense time is the faster of the two);
* ``copy``: ``2 * v`` into a fresh (B, N) buffer (the floor for any transform that reads and writes the batch);
* ``torchhd``: ``torchhd.cleanup`` one query at a time, as the library offers it (at N >= 16384 timed on 8 queries
  and scaled to the batch), and its batched equivalent ``cosine_similarity(v, C).argmax(-1)``, on the same matrix;
  skipped with a note when torchhd is not importable. torchhd ranks codewords by cosine similarity, dammem's dense
  clean-up by inner product: the two pick different rows where a Gaussian row's norm (not exactly 1) decides, so the
  JSON records the fraction of rows on which torchhd agrees with dammem's dense clean-up, and checks torchhd against
  the float64 cosine argmax. (KROP rows are orthonormal: for KROP the two rankings are the same.)

Timing (see ``_harness``): JAX and PyTorch are two phases that take turns in ``--rounds`` rounds, never interleaved
call by call (PyTorch's OpenMP workers keep spinning after each call); within a phase the methods interleave call by
call. ``--repeats`` timed calls per method; median and minimum reported, ratios from the medians. Up to N = 4096 the
KROP clean-ups are checked against the float64 argmax over their own dense matrix
(:func:`dammem.experiments.krop.timing.matches_dense_argmax`), and torchhd's batched clean-up against dammem's dense
one. Unless ``--no-rss``, ``krop`` and ``dense`` are also run once each in their own process for the peak resident
memory (the process's, the dense codebook's N^2 floats included). Stored numbers are ``log2 N`` angles for KROP vs
``N^2`` entries for the dense codebook. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

from dammem.experiments.krop import timing as krop_timing
from dammem.vsa import default_group, krop_cleanup, uniform_angles

PEERS = ("torch", "torch-hd")
SHARED = ("krop", "krop_signed", "dense")
CHECKED = ("krop", "krop_signed")


def load_peers():
    """``(torch, torchhd)``, or None when the optional ``bench`` extra is not installed."""
    try:
        import torch
        import torchhd
    except ImportError:
        return None
    return torch, torchhd


def _inputs(n: int, batch: int, seed: int, dense_max: int):
    """The codebooks of :data:`SHARED` (no dense one beyond ``dense_max``) with the dense build ms, the batch and
    the stage-by-stage angles, all from ``(seed, n)``."""
    k_cb, k_x, k_theta = jax.random.split(jax.random.fold_in(jax.random.key(seed), n), 3)
    codebooks, build_ms = krop_timing.build_codebooks(n, SHARED, k_cb, dense_max_size=dense_max)
    x = jax.random.normal(k_x, (batch, n), dtype=jnp.float32)
    return codebooks, build_ms, x, uniform_angles(k_theta, n.bit_length() - 1)


def rss_case(method: str, n: int, batch: int, seed: int):
    """A case for ``_harness.run_case``: one clean-up of the batch with the ``method`` codebook (after a warm call)."""
    codebooks, _, x, _ = _inputs(n, batch, seed, dense_max=n)
    call = krop_timing.cleanup_calls({method: codebooks[method]}, x)[method]
    jax.block_until_ready(call())

    def run_once() -> None:
        jax.block_until_ready(call())

    return run_once


def _torchhd_calls(torch, torchhd, matrix: np.ndarray, x: np.ndarray, probe: int):
    mem = torchhd.ensure_vsa_tensor(torch.from_numpy(matrix), "MAP")
    xt = torchhd.ensure_vsa_tensor(torch.from_numpy(x), "MAP")

    def loop():
        with torch.no_grad():
            return [torchhd.cleanup(xt[i], mem) for i in range(probe)]

    def batched():
        with torch.no_grad():
            return torchhd.cosine_similarity(xt, mem).argmax(-1)

    return loop, batched


def bench_size(n: int, batch: int, seed: int, *, repeats: int, rounds: int, dense_max: int, peers, rss: bool):
    k = n.bit_length() - 1
    codebooks, build_ms, x, theta = _inputs(n, batch, seed, dense_max)
    with_dense = "dense" in codebooks
    jax_calls = krop_timing.cleanup_calls(codebooks, x)
    stage_fn = jax.jit(lambda t, v: krop_cleanup(t, v, group=1))
    copy_fn = jax.jit(lambda v: v * 2.0)
    jax_calls["krop_stage_by_stage"] = lambda: stage_fn(theta, x)
    jax_calls["copy"] = lambda: copy_fn(x)
    row = {"N": n, "K": k, "batch": batch, "krop_params": k, "krop_signed_params": k + n, "dense_params": n * n}
    peer_calls = {}
    if with_dense:
        row["dense_build_ms"] = build_ms
        matrix = codebooks["dense"].matrix()
        naive_fn = jax.jit(lambda c, v: jnp.argmax(v @ c.T, axis=-1))
        jax_calls["dense_jnp_argmax"] = lambda: naive_fn(matrix, x)
        if peers is not None:
            probe = min(batch, 8) if n >= 16384 else batch
            loop, batched = _torchhd_calls(*peers, np.array(matrix), np.array(x), probe)
            peer_calls = {"torchhd_cleanup_loop": loop, "torchhd_batched": batched}
            row["torchhd_cleanup_loop_queries_timed"] = probe
            picked = batched().numpy()
            m64, x64 = np.asarray(matrix, dtype=np.float64), np.asarray(x, dtype=np.float64)
            cosine = (x64 @ m64.T) / np.linalg.norm(m64, axis=1)  # the query's norm does not move the argmax
            row["torchhd_matches_cosine_argmax"] = float(np.mean(picked == cosine.argmax(-1)))
            row["torchhd_agrees_with_dense"] = float(np.mean(picked == np.asarray(jax_calls["dense"]())))
    if n <= krop_timing.CHECK_MAX_SIZE:
        for method in CHECKED:
            row[f"{method}_matches_dense_argmax"] = krop_timing.matches_dense_argmax(codebooks[method], x)

    phases = [jax_calls] + ([peer_calls] if peer_calls else [])
    times = H.time_interleaved(phases, repeats=repeats, warmup=1, rounds=rounds, pause_s=0.5 if peer_calls else 0)
    row["timings"] = {name: H.summarize(seconds) for name, seconds in times.items()}
    ms = {name: t["median_ms"] for name, t in row["timings"].items()}
    if "torchhd_cleanup_loop" in ms:  # scale the timed queries to the batch
        for key in ("median_ms", "min_ms", "max_ms"):
            row["timings"]["torchhd_cleanup_loop"][key] *= batch / row["torchhd_cleanup_loop_queries_timed"]
        ms["torchhd_cleanup_loop"] = row["timings"]["torchhd_cleanup_loop"]["median_ms"]
    row["median_ms"] = ms
    row["krop_over_copy"] = ms["krop"] / ms["copy"]
    if with_dense:
        row["dense_ms"] = min(ms["dense"], ms["dense_jnp_argmax"])
        row["speedup_vs_dense"] = row["dense_ms"] / ms["krop"]
        row["stage_by_stage_speedup_vs_dense"] = row["dense_ms"] / ms["krop_stage_by_stage"]
        if peer_calls:
            row["speedup_vs_torchhd_loop"] = ms["torchhd_cleanup_loop"] / ms["krop"]
            row["speedup_vs_torchhd_batched"] = ms["torchhd_batched"] / ms["krop"]
    if rss:
        row["rss"] = {
            method: H.run_case("krop:rss_case", {"method": method, "n": n, "batch": batch, "seed": seed})
            for method in (("krop", "dense") if with_dense else ("krop",))
        }
    return row


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


TABLE_HEADERS = [
    "N", "params KROP / dense", "KROP ms (min)", "KROP+signs ms", "stage-by-stage ms", "dense ms", "dense/KROP",
    "dense/stage-by-stage", "torchhd loop ms", "torchhd batched ms", "torchhd batched/KROP", "copy ms", "KROP/copy",
    "dense build ms", "peak RSS MB KROP / dense",
]  # fmt: skip


def table_row(r: dict) -> list[str]:
    """The cells of one size's row of :data:`TABLE_HEADERS`."""
    ms, rss = r["median_ms"], r.get("rss", {})
    peak = " / ".join(_fmt(rss[m]["peak_rss_bytes"] / 2**20, ".0f") if m in rss else "-" for m in ("krop", "dense"))
    return [
        r["N"], f"{r['krop_params']} / {r['dense_params']}", f"{ms['krop']:.3f} ({r['timings']['krop']['min_ms']:.3f})",
        f"{ms['krop_signed']:.3f}", f"{ms['krop_stage_by_stage']:.3f}", _fmt(r.get("dense_ms")),
        _fmt(r.get("speedup_vs_dense"), ".1f"), _fmt(r.get("stage_by_stage_speedup_vs_dense"), ".1f"),
        _fmt(ms.get("torchhd_cleanup_loop")), _fmt(ms.get("torchhd_batched")),
        _fmt(r.get("speedup_vs_torchhd_batched"), ".1f"), f"{ms['copy']:.3f}", f"{r['krop_over_copy']:.2f}",
        _fmt(r.get("dense_build_ms"), ".1f"), peak,
    ]  # fmt: skip


def readme_table(record: dict) -> str:
    """The README's account of one run (its JSON ``record``): a compact table of the clean-up times (median, with
    KROP's minimum) and the speedups."""
    c = record["config"]
    rows = []
    for r in record["rows"]:
        ms = r["median_ms"]
        rows.append([
            r["N"], f"{r['krop_params']} / {r['dense_params']}",
            f"{ms['krop']:.3f} ({r['timings']['krop']['min_ms']:.3f})", _fmt(r.get("dense_ms")),
            _fmt(r.get("speedup_vs_dense"), ".1f"), _fmt(ms.get("torchhd_batched")),
            _fmt(r.get("speedup_vs_torchhd_batched"), ".1f"), f"{r['krop_over_copy']:.2f}",
        ])  # fmt: skip
    heads = ["N", "stored numbers KROP / dense", "KROP ms, median (min)", "dense ms", "dense / KROP",
             "torchhd batched ms", "torchhd / KROP", "KROP / copy"]  # fmt: skip
    checked = record["krop_matches_dense_argmax"]
    said = "not checked" if checked is None else "yes" if checked else "no"
    text = (
        f"Clean-up of a batch of {c['batch']} float32 vectors, {c['repeats']} calls per method in {c['rounds']} "
        f"rounds, median times (KROP also the minimum); KROP's clean-up equals the float64 argmax over its dense "
        f"matrix up to N = {krop_timing.CHECK_MAX_SIZE}: {said}"
    )
    return f"{text}:\n\n{H.markdown_table(heads, rows)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/krop.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="codebook sizes N (powers of two)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=H.MIN_REPEATS, help="timed calls per method")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the JAX and PyTorch phases")
    parser.add_argument("--dense-max", type=int, default=16384, help="largest N with a dense codebook")
    parser.add_argument("--no-torch", action="store_true", help="skip the torchhd columns")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory runs (one process per method)")
    parser.add_argument("--out", default="runs/bench_krop.json", help="JSON output path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    backend = jax.default_backend()
    sizes = args.sizes or ([1024, 4096, 16384] + ([65536] if backend != "cpu" else []))
    if any(n < 2 or n & (n - 1) for n in sizes):
        parser.error(f"--sizes must be powers of two >= 2, got {sizes}")
    if not 1 <= args.rounds <= args.repeats or args.batch < 1:
        parser.error("need 1 <= --rounds <= --repeats and --batch >= 1")

    peers = None if args.no_torch else load_peers()
    note = "skipped (--no-torch)" if args.no_torch else ("not importable" if peers is None else "")
    env = H.environment(PEERS)
    print(f"dammem KROP benchmark: sizes {sizes}, batch {args.batch}, float32, group {default_group()}")
    print(f"machine: {H.describe(env)}")
    print(f"timing: {args.repeats} calls per method; JAX and PyTorch in separate phases taking {args.rounds} turn(s)")
    if peers is None:
        print(f"note: torchhd {note}; skipping the torchhd columns (pip install -e '.[bench]')")
    else:
        print(f"torchhd {env['versions']['torch-hd']}, torch {env['versions']['torch']}, "
              f"{peers[0].get_num_threads()} threads")  # fmt: skip
    rows = []
    for n in sizes:
        rows.append(
            bench_size(
                n, args.batch, args.seed, repeats=args.repeats, rounds=args.rounds, dense_max=args.dense_max,
                peers=peers, rss=not args.no_rss,
            )
        )  # fmt: skip
        r = rows[-1]
        print(f"  N={n}: krop {r['median_ms']['krop']:.3f} ms, dense {_fmt(r.get('dense_ms'))} ms", flush=True)
    H.print_table(TABLE_HEADERS, [table_row(r) for r in rows])
    checks = [r[f"{m}_matches_dense_argmax"] for r in rows for m in CHECKED if f"{m}_matches_dense_argmax" in r]
    print(
        f"\nKROP clean-up equals the float64 argmax over its dense matrix (N <= {krop_timing.CHECK_MAX_SIZE}): "
        + ("not checked" if not checks else "yes" if all(checks) else "NO")
    )
    record = {
        "benchmark": "krop",
        "config": {
            "sizes": sizes, "batch": args.batch, "repeats": args.repeats, "rounds": args.rounds,
            "dense_max": args.dense_max, "seed": args.seed, "dtype": "float32", "group": default_group(),
            "rss": not args.no_rss,
            "timing": "JAX and PyTorch in separate phases taking turns (0.5 s pause before each); "
                      "methods interleaved call by call within a phase",
        },
        "environment": env,
        "peers": peers is not None,
        "krop_matches_dense_argmax": all(checks) if checks else None,
        "rows": rows,
    }  # fmt: skip
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
