"""DrDAM at scale: encode time, time per descent step and peak memory of the materialized, regenerated Gaussian and
structured (SORF) random projections, side by side in one process; MrDAM for context.

Run from the repository root: ``python benchmarks/drdam.py [--features 131072] [--out FILE]`` (JSON to
``runs/bench_drdam.json`` by default).

The problem (defaults): ``K = 1000`` random binary memories in ``{0, 1/sqrt(D)}^D`` with ``D = 3072`` (Hoover et al.
(2024), Sec. 4.1), ``beta = 10``, ``sincos`` features with ``Y = 2^17`` projections (``F = 2^18`` numbers in ``T``),
and ``B = 16`` queries (stored patterns with 10% of their bits flipped). Cases, all through the public API
(:func:`dammem.drdam.make_features`, :func:`dammem.drdam.encode`, ``dammem.retrieve(dammem.drdam.energy, ...)``
vmapped over the queries):

* ``materialized``: the stored ``Y x D`` Gaussian matrix (1.6 GB at the defaults): the paper's research code's
  representation and the baseline;
* ``gaussian``: the same rows, regenerated in blocks from the key at every use (nothing of size ``Y x D`` exists);
* ``structured``: SORF blocks ``diag(r) H S_1 H S_2 H S_3`` through the Walsh-Hadamard butterfly;
* ``mrdam``: energy descent on MrDAM's RBF energy (eq. 11) over the ``K x D`` memories, for context (at ``K = 1000``
  the memory representation is small; DrDAM's cost does not grow with ``K``).

Timing (see ``_harness``): each timed call runs ``n`` descent steps (``loop="scan"``, no early stop) of the 16 queries;
the table reports milliseconds per step (call time / ``n``). ``n = --steps`` (100) for the fast cases, and
``--slow-steps`` (5) for ``materialized`` and ``gaussian`` on a CPU, where one step takes about a second or more.
Cases interleave call by call; ``--repeats`` (15) timed calls each, minimum and median reported, ratios from the
medians. Encoding is timed the same way with ``--encode-repeats`` (default 5: a call takes tens of seconds on a CPU
for the dense cases). Compilation is timed separately. ``--cases`` runs a subset beside the ``materialized``
baseline (e.g. ``--cases structured``), and ``--encode-repeats 0`` skips the encode timing. As a check, ``gaussian``
and ``materialized`` share their rows, so their end states after the same number of steps must agree to float
rounding; the JSON records the gap.

Memory: unless ``--no-rss``, each DrDAM case runs once more in its own process (``_harness.run_case``): the process
compiles the whole pipeline first (make features, encode, ``n`` steps), then the measured call runs it; the table
reports the peak resident memory during that call above the memory held before it (the compiled program, JAX
runtime and inputs are excluded; the materialized matrix, ``T`` and all buffers are included), and the process's
absolute peak. Targets: the regenerated and structured cases need at most 10% of the materialized case's memory;
the structured case runs a step at least 10x faster than the materialized one on a CPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

import dammem
from dammem import drdam
from dammem.corruptions import flip_bits
from dammem.energies import rbf_energy

DRDAM_CASES = ("materialized", "gaussian", "structured")
SLOW_ON_CPU = ("materialized", "gaussian")


def problem(dim: int, memories: int, queries: int, seed: int):
    """Binary memories (K, D) and near queries (B, D) (Sec. 4.1 of Hoover et al. (2024))."""
    k_mem, k_flip = jax.random.split(jax.random.key(seed))
    mem = jax.random.bernoulli(k_mem, 0.5, (memories, dim)).astype(jnp.float32) / math.sqrt(dim)
    x0 = flip_bits(k_flip, mem[:queries], 0.1, levels=(0.0, 1.0 / math.sqrt(dim)))
    return mem, x0


def descent(energy, args, x0, steps: int, step_size: float):
    """``steps`` descent steps of every query (vmapped ``dammem.retrieve``, fixed length)."""

    def one(x):
        return dammem.retrieve(energy, x, args, step_size=step_size, max_steps=steps, tol=None, loop="scan").x

    return jax.vmap(one)(x0)


def _features(projection: str, dim: int, num_features: int, seed: int):
    return drdam.make_features("sincos", dim, num_features, key=jax.random.key(seed + 1), projection=projection)


def memory_case(projection: str, dim: int, memories: int, queries: int, num_features: int, steps: int, beta: float,
                step_size: float, seed: int):  # fmt: skip
    """A case for ``_harness.run_case``: the whole pipeline (features, encode, ``steps`` steps), compiled first."""
    mem, x0 = problem(dim, memories, queries, seed)
    key = jax.random.key(seed + 1)

    def pipeline(key, mem, x0):
        features = drdam.make_features("sincos", dim, num_features, key=key, projection=projection)
        T = drdam.encode(features, mem, beta)
        x = descent(drdam.energy, (T, features, beta), x0, steps, step_size)
        return jnp.mean(jax.vmap(lambda q: drdam.energy(q, T, features, beta))(x))

    compiled = jax.jit(pipeline).lower(key, mem, x0).compile()

    def run_once():
        return float(compiled(key, mem, x0))

    return run_once


def _timed_compile(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, 1e3 * (time.perf_counter() - t0)


def bench(args) -> dict:
    backend = jax.default_backend()
    mem, x0 = problem(args.dim, args.memories, args.queries, args.seed)
    beta, eta = args.beta, args.step_size
    cases = args.cases
    drdam_cases = [c for c in DRDAM_CASES if c in cases]
    steps = {c: (args.slow_steps if backend == "cpu" and c in SLOW_ON_CPU else args.steps) for c in drdam_cases}
    if "mrdam" in cases:
        steps["mrdam"] = args.steps
    row = {"cases": list(cases), "steps_per_call": steps, "compile_ms": {}, "parameters": {}}
    features = {c: _features(c, args.dim, args.features, args.seed) for c in drdam_cases}
    row["parameters"] = {c: {"T": features[c].size, "stored_feature_numbers": features[c].storage_size}
                         for c in drdam_cases}  # fmt: skip
    if "mrdam" in cases:
        row["parameters"]["mrdam"] = {"memories": args.memories * args.dim}

    encode_calls, step_calls, memory = {}, {}, {}
    for c in drdam_cases:
        f = features[c]  # an argument of the compiled programs, never a constant folded into them
        enc, row["compile_ms"][f"encode_{c}"] = _timed_compile(lambda f, m: drdam.encode(f, m, beta), f, mem)
        memory[c] = enc(f, mem)
        encode_calls[c] = lambda enc=enc, f=f: enc(f, mem)
        run, row["compile_ms"][f"steps_{c}"] = _timed_compile(
            lambda f, T, x, n=steps[c]: descent(drdam.energy, (T, f, beta), x, n, eta), f, memory[c], x0
        )
        step_calls[c] = lambda run=run, f=f, T=memory[c]: run(f, T, x0)
    if "mrdam" in cases:
        mr, row["compile_ms"]["steps_mrdam"] = _timed_compile(
            lambda m, x: descent(rbf_energy, (m, beta), x, steps["mrdam"], eta), mem, x0
        )
        step_calls["mrdam"] = lambda: mr(mem, x0)

    times = H.time_interleaved([step_calls], repeats=args.repeats, warmup=1)
    row["step_timings"] = {c: H.summarize(np.asarray(t) / steps[c]) for c, t in times.items()}
    row["encode_timings"] = {}
    if args.encode_repeats:
        enc_times = H.time_interleaved([encode_calls], repeats=args.encode_repeats, warmup=1)
        row["encode_timings"] = {c: H.summarize(t) for c, t in enc_times.items()}
    ms = {c: t["median_ms"] for c, t in row["step_timings"].items()}
    row["step_ms"] = ms
    row["speedup_per_step_vs_materialized"] = {c: ms["materialized"] / ms[c] for c in ms}
    # the regenerated rows are the stored rows: equal end states after the same number of steps
    if "gaussian" in steps and steps["gaussian"] == steps["materialized"]:
        xg, xm = step_calls["gaussian"](), step_calls["materialized"]()
        row["gaussian_vs_materialized_max_abs_diff"] = float(jnp.max(jnp.abs(xg - xm)))
    if not args.no_rss:
        row["rss"] = {
            c: H.run_case(
                "drdam:memory_case",
                {
                    "projection": c, "dim": args.dim, "memories": args.memories, "queries": args.queries,
                    "num_features": args.features, "steps": steps[c], "beta": beta, "step_size": eta,
                    "seed": args.seed,
                },
                timeout_s=args.rss_timeout,
            )
            for c in drdam_cases
        }  # fmt: skip
        base = row["rss"]["materialized"]["peak_increase_bytes"]
        row["peak_increase_over_materialized"] = {c: row["rss"][c]["peak_increase_bytes"] / base for c in drdam_cases}
    return row


def _mb(b) -> str:
    return "-" if b is None else f"{b / 2**20:.0f}"


def _table(row: dict) -> tuple[list[str], list[list]]:
    """Headers and cells of the results table (ms per step: median (min); speed-ups on both)."""
    headers = [
        "case", "steps per call", "ms per step, median (min)", "speed-up vs materialized, median (min)",
        "encode s, median (min)", "peak memory MB (call)", "peak / materialized", "process peak MB",
        "compile s (encode + steps)",
    ]  # fmt: skip
    base = row["step_timings"]["materialized"]  # always run: the baseline

    def speedup(t: dict) -> str:
        return f"{base['median_ms'] / t['median_ms']:.1f}x ({base['min_ms'] / t['min_ms']:.1f}x)"

    cells = []
    for c in row["cases"]:
        t = row["step_timings"][c]
        enc = row["encode_timings"].get(c)
        rss = row.get("rss", {}).get(c)
        comp = row["compile_ms"].get(f"encode_{c}", 0) + row["compile_ms"][f"steps_{c}"]
        ratio = row.get("peak_increase_over_materialized", {}).get(c)
        cells.append([
            c, row["steps_per_call"][c], f"{t['median_ms']:.1f} ({t['min_ms']:.1f})",
            "baseline" if c == "materialized" else speedup(t),
            "-" if enc is None else f"{enc['median_ms'] / 1e3:.2f} ({enc['min_ms'] / 1e3:.2f})",
            _mb(rss["peak_increase_bytes"]) if rss else "-", "-" if ratio is None else format(ratio, ".3f"),
            _mb(rss["peak_rss_bytes"]) if rss else "-", f"{comp / 1e3:.1f}",
        ])  # fmt: skip
    return headers, cells


def print_table(row: dict) -> None:
    H.print_table(*_table(row))
    gap = row.get("gaussian_vs_materialized_max_abs_diff")
    if gap is not None:
        print(f"\ngaussian (regenerated) vs materialized end states: max |difference| = {gap:.2e}")


def readme_table(record: dict) -> str:
    """The README's account of one run (its JSON ``record``): the problem, then the table."""
    c = record["config"]
    text = (
        f"One step of energy descent for {c['queries']} queries, K = {c['memories']} memories, D = {c['dim']}, "
        f"Y = {c['features']} projections (sincos), beta = {c['beta']:g}, float32; {c['repeats']} interleaved calls "
        "per case"
    )
    return f"{text}:\n\n{H.markdown_table(*_table(record['row']))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/drdam.py", description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=3072, help="pattern dimension D")
    parser.add_argument("--memories", type=int, default=1000, help="stored patterns K")
    parser.add_argument("--queries", type=int, default=16, help="queries B descended together")
    parser.add_argument("--features", type=int, default=1 << 17, help="random projections Y (sincos: 2Y numbers)")
    parser.add_argument("--beta", type=float, default=10.0)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=100, help="descent steps per timed call")
    parser.add_argument("--slow-steps", type=int, default=5, help="steps per call of the dense cases on a CPU")
    parser.add_argument("--repeats", type=int, default=H.MIN_REPEATS, help="timed calls per case (steps)")
    parser.add_argument("--encode-repeats", type=int, default=5, help="timed calls per case (encode); 0 skips encode")
    parser.add_argument(
        "--cases",
        default=",".join((*DRDAM_CASES, "mrdam")),
        help="comma-separated cases to run, from materialized (always run: the baseline), gaussian, structured, mrdam",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory runs (one process per case)")
    parser.add_argument("--rss-timeout", type=float, default=1800.0, help="seconds before a memory run is killed")
    parser.add_argument("--out", default="runs/bench_drdam.json", help="JSON output path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("dim", "memories", "queries", "features", "steps", "slow_steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.encode_repeats < 0:
        parser.error(f"--encode-repeats must be >= 0, got {args.encode_repeats}")
    known = (*DRDAM_CASES, "mrdam")
    chosen = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = sorted(chosen - set(known))
    if unknown:
        parser.error(f"--cases must name cases from {', '.join(known)}, got {', '.join(unknown)}")
    args.cases = tuple(c for c in known if c in chosen | {"materialized"})
    if args.queries > args.memories:
        parser.error(f"--queries must be <= --memories = {args.memories}, got {args.queries}")
    env = H.environment()
    print(
        f"dammem DrDAM benchmark: K={args.memories} memories, D={args.dim}, Y={args.features} projections (sincos), "
        f"B={args.queries} queries, beta={args.beta:g}, float32"
    )
    print(f"machine: {H.describe(env)}")
    row = bench(args)
    print_table(row)
    record = {
        "benchmark": "drdam",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "environment": env,
        "row": row,
    }
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
