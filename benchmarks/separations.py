"""Separations: dammem vs ``jax.nn.softmax`` and the PyTorch ``entmax`` package, forward + backward on the CPU.

Run from the repository root: ``python benchmarks/separations.py [--quick] [--out FILE]`` (JSON to
``runs/bench_separations.json`` by default).

Shape legend: ``B`` rows, ``N`` scores per row (the last axis); ``B * N`` elements in all (2^20 by default).

Every method computes the forward map and its VJP with one fixed random cotangent, in float32 on standard-normal
scores from a fixed seed. JAX methods are compiled ahead of time (compile time reported apart). The peers
(``torch``, ``entmax``; the ``bench`` extra) run forward + ``backward`` through autograd with
``torch.set_num_threads(os.cpu_count())`` in the same process. Timing (see ``_harness``): JAX and PyTorch are two
phases that take turns in ``--rounds`` rounds with a pause before each, never interleaved call by call, because
PyTorch's OpenMP workers keep spinning after each call and slow the JAX call that follows; within a phase the
methods interleave call by call. ``--repeats`` timed calls per method; the table gives the median and minimum in
milliseconds, the median's ratio to ``jax.nn.softmax`` and the speedup over the matching ``entmax`` function, then
pass/fail for the speed targets:

* dammem sparsemax / entmax15 at least 10x faster than ``entmax.sparsemax`` / ``entmax.entmax15``;
* dammem entmax(alpha = 1.5), concrete and traced alpha, at least 20x faster than ``entmax.entmax_bisect``;
* sparsemax / entmax15 within 2x of ``jax.nn.softmax``, general (traced) alpha within 4x (minimum times).

After the per-size tables, one table gives every size's ``jax.nn.softmax`` (the physical yardstick of the same run)
beside sparsemax, 1.5-entmax and traced-alpha entmax: min and median milliseconds and their ratios to softmax.

Unless ``--no-rss``, every method is also run once in its own process for its peak resident memory (the rise over
the process's memory just before the call: inputs, outputs and temporaries of forward + backward).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import _harness as H
import jax
import jax.numpy as jnp
import numpy as np

from dammem import separations as S

JAX_BASELINE = "jax.nn.softmax"
PEERS = ("torch", "entmax")


@dataclass(frozen=True)
class JaxMethod:
    """A JAX separation ``fn(z, alpha)``; ``alpha`` is a jit argument (traced) when ``traced``, else unused."""

    name: str
    fn: Callable
    alpha: float | None = None
    peer: str | None = None
    traced: bool = False


JAX_METHODS = (
    JaxMethod(JAX_BASELINE, lambda z, a: jax.nn.softmax(z, axis=-1)),
    JaxMethod("dammem.softmax", lambda z, a: S.softmax(z)),
    JaxMethod("dammem.sparsemax", lambda z, a: S.sparsemax(z), peer="entmax.sparsemax"),
    JaxMethod("dammem.entmax15", lambda z, a: S.entmax15(z), peer="entmax.entmax15"),
    JaxMethod("dammem.entmax(1.5, concrete)", lambda z, a: S.entmax(z, 1.5), 1.5, "entmax.entmax_bisect(1.5)"),
    JaxMethod("dammem.entmax(1.5, traced)", S.entmax, 1.5, "entmax.entmax_bisect(1.5)", traced=True),
    JaxMethod("dammem.entmax(1.25, traced)", S.entmax, 1.25, traced=True),
)
JAX_BY_NAME = {m.name: m for m in JAX_METHODS}
PEER_METHODS = ("torch.softmax", "entmax.sparsemax", "entmax.entmax15", "entmax.entmax_bisect(1.5)")

# (name, kind, method, reference, threshold): "speedup" needs reference / method >= threshold on median times;
# "ratio" needs method / reference <= threshold on minimum times (the least-disturbed call of each, same run).
TARGETS = (
    ("sparsemax >= 10x entmax.sparsemax", "speedup", "dammem.sparsemax", "entmax.sparsemax", 10.0),
    ("entmax15 >= 10x entmax.entmax15", "speedup", "dammem.entmax15", "entmax.entmax15", 10.0),
    ("entmax(1.5, concrete) >= 20x entmax_bisect", "speedup", "dammem.entmax(1.5, concrete)",
     "entmax.entmax_bisect(1.5)", 20.0),
    ("entmax(1.5, traced) >= 20x entmax_bisect", "speedup", "dammem.entmax(1.5, traced)",
     "entmax.entmax_bisect(1.5)", 20.0),
    ("sparsemax <= 2x jax.nn.softmax (min)", "ratio", "dammem.sparsemax", JAX_BASELINE, 2.0),
    ("entmax15 <= 2x jax.nn.softmax (min)", "ratio", "dammem.entmax15", JAX_BASELINE, 2.0),
    ("entmax(1.5, traced) <= 4x jax.nn.softmax (min)", "ratio", "dammem.entmax(1.5, traced)", JAX_BASELINE, 4.0),
    ("entmax(1.25, traced) <= 4x jax.nn.softmax (min)", "ratio", "dammem.entmax(1.25, traced)", JAX_BASELINE, 4.0),
)  # fmt: skip
# The softmax-relative table: the physical yardstick (jax.nn.softmax in the same run) beside each separation.
SOFTMAX_TABLE = (
    (JAX_BASELINE, "softmax"), ("dammem.sparsemax", "sparsemax"), ("dammem.entmax15", "entmax15"),
    ("dammem.entmax(1.5, traced)", "entmax, traced alpha = 1.5"),
)  # fmt: skip


def inputs(rows: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal scores and cotangent, float32, ``(rows, n)``, from a fixed seed."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, n), dtype=np.float32), rng.standard_normal((rows, n), dtype=np.float32)


def prepare_jax(method: JaxMethod, z: np.ndarray, ct: np.ndarray):
    """``(call, compile seconds, (p, dz) as NumPy)`` for forward + VJP of ``method``, compiled ahead of time."""

    def fwd_bwd(z, ct, alpha):
        p, vjp = jax.vjp(lambda z: method.fn(z, alpha), z)
        return p, vjp(ct)[0]

    alpha = jnp.float32(method.alpha if method.alpha is not None else 1.0)
    args = (jnp.asarray(z), jnp.asarray(ct), alpha)
    t0 = time.perf_counter()
    compiled = jax.jit(fwd_bwd).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    p, dz = compiled(*args)
    return (lambda: compiled(*args)), compile_s, (np.asarray(p), np.asarray(dz))


def load_peers():
    """``(torch, entmax)``, or None when the optional ``bench`` extra is not installed."""
    try:
        import entmax
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch, entmax


def peer_functions(torch, entmax) -> dict[str, Callable]:
    return {
        "torch.softmax": lambda x: torch.softmax(x, dim=-1),
        "entmax.sparsemax": lambda x: entmax.sparsemax(x, dim=-1),
        "entmax.entmax15": lambda x: entmax.entmax15(x, dim=-1),
        "entmax.entmax_bisect(1.5)": lambda x: entmax.entmax_bisect(x, alpha=1.5, dim=-1),
    }


def prepare_torch(torch, fn: Callable, z: np.ndarray, ct: np.ndarray):
    """``(call, (p, dz) as NumPy)`` for forward + autograd backward of a PyTorch map."""
    x = torch.from_numpy(z.copy()).requires_grad_(True)
    cot = torch.from_numpy(ct.copy())

    def call():
        y = fn(x)
        (g,) = torch.autograd.grad(y, x, cot)
        return y, g

    y, g = call()
    return call, (y.detach().numpy(), g.numpy())


def rss_case(method: str, n: int, total: int, seed: int):
    """A case for ``_harness.run_case``: one forward + backward of ``method`` on ``(total / n, n)`` scores."""
    z, ct = inputs(total // n, n, seed)
    if method in JAX_BY_NAME:
        call = prepare_jax(JAX_BY_NAME[method], z, ct)[0]
    else:
        torch, entmax = load_peers()
        call = prepare_torch(torch, peer_functions(torch, entmax)[method], z, ct)[0]

    def run_once() -> None:
        jax.block_until_ready(call())

    return run_once


def evaluate_targets(results: dict[str, dict]) -> list[dict]:
    rows = []
    for size, res in results.items():
        for name, kind, method, ref, threshold in TARGETS:
            row = {"size": int(size), "target": name, "value": None, "threshold": threshold, "pass": None}
            if method in res and ref in res:
                stat = "median_ms" if kind == "speedup" else "min_ms"
                m, r = res[method][stat], res[ref][stat]
                row["value"] = r / m if kind == "speedup" else m / r
                row["pass"] = bool(row["value"] >= threshold if kind == "speedup" else row["value"] <= threshold)
            rows.append(row)
    return rows


def run_size(n: int, total: int, seed: int, *, repeats: int, rounds: int, warmup: int, peers, rss: bool) -> dict:
    """Time every method on ``(total / n, n)`` scores; returns ``{method: {median_ms, min_ms, ...}}``."""
    z, ct = inputs(total // n, n, seed)
    res: dict[str, dict] = {}
    jax_calls, peer_calls, outputs = {}, {}, {}
    for method in JAX_METHODS:
        jax_calls[method.name], compile_s, outputs[method.name] = prepare_jax(method, z, ct)
        res[method.name] = {"compile_s": compile_s, "alpha": method.alpha, "traced_alpha": method.traced}
    if peers is not None:
        for name, fn in peer_functions(*peers).items():
            peer_calls[name], outputs[name] = prepare_torch(peers[0], fn, z, ct)
            res[name] = {"compile_s": None}
    phases = [jax_calls] + ([peer_calls] if peer_calls else [])
    times = H.time_interleaved(phases, repeats=repeats, warmup=warmup, rounds=rounds, pause_s=0.5)
    for name, seconds in times.items():
        res[name].update(H.summarize(seconds))
    base = res[JAX_BASELINE]["median_ms"]
    for name, r in res.items():
        r["ratio_to_jax_softmax"] = r["median_ms"] / base
        peer = JAX_BY_NAME[name].peer if name in JAX_BY_NAME else None
        if peer in res:
            r["peer"] = peer
            r["speedup_vs_peer"] = res[peer]["median_ms"] / r["median_ms"]
            r["max_abs_diff_vs_peer"] = [float(np.max(np.abs(a - b))) for a, b in zip(outputs[name], outputs[peer])]
    if rss:
        for name, r in res.items():
            r["rss"] = H.run_case("separations:rss_case", {"method": name, "n": n, "total": total, "seed": seed})
    return res


def print_table(n: int, total: int, res: dict[str, dict]) -> None:
    print(f"\nN = {n} (shape ({total // n}, {n}), float32, forward + backward)")
    rows = []
    for name, r in res.items():
        peer = "-"
        if "peer" in r:
            dp, dz = r["max_abs_diff_vs_peer"]
            peer = f"{r['peer']} ({dp:.1e}, {dz:.1e})"
        rows.append([
            name, f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}",
            "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}", f"{r['ratio_to_jax_softmax']:.2f}x",
            f"{r['speedup_vs_peer']:.1f}x" if "speedup_vs_peer" in r else "-",
            f"{r['rss']['peak_increase_bytes'] / 2**20:.1f}" if "rss" in r else "-", peer,
        ])  # fmt: skip
    H.print_table(
        [
            "method",
            "median ms",
            "min ms",
            "compile s",
            "/ jax softmax",
            "vs peer",
            "peak MB",
            "peer (max abs diff: p, dz)",
        ],  # fmt: skip
        rows,
    )


def softmax_table_rows(results: dict[str, dict]) -> list[list[str]]:
    """Rows of the softmax-relative table: per size, ``min (median)`` ms of each method and ``min-ratio (median-ratio)``
    to ``jax.nn.softmax`` of the same run."""
    rows = []
    for size, res in results.items():
        base = res[JAX_BASELINE]
        row = [size]
        for name, _ in SOFTMAX_TABLE:
            r = res[name]
            ratio = f"{r['min_ms'] / base['min_ms']:.2f}x ({r['median_ms'] / base['median_ms']:.2f}x)"
            row.append(f"{r['min_ms']:.2f} ({r['median_ms']:.2f}) ms" + ("" if name == JAX_BASELINE else f", {ratio}"))
        rows.append(row)
    return rows


def print_softmax_table(results: dict[str, dict]) -> None:
    print("\nRelative to jax.nn.softmax in the same run: min (median) ms, ratio min (median):")
    H.print_table(["rows of N"] + [label for _, label in SOFTMAX_TABLE], softmax_table_rows(results))


def _target_table(targets: list[dict]) -> tuple[list[str], list[list]]:
    """Headers and cells of the targets table: value and status of each target at each size (the target's name
    carries its threshold)."""
    rows = [
        [t["size"], t["target"], "-" if t["value"] is None else f"{t['value']:.2f}",
         "skip (no peer)" if t["pass"] is None else H.target_status(t)]
        for t in targets
    ]  # fmt: skip
    return ["N", "target", "value", "status"], rows


def print_targets(targets: list[dict]) -> None:
    print("\nTargets (speedups on median times, ratios to softmax on minimum times):")
    H.print_table(*_target_table(targets))


def readme_table(record: dict) -> str:
    """The README's account of one run (its JSON ``record``): the softmax-relative table, then the speedups over the
    ``entmax`` package (when it ran) and the targets."""
    c, results = record["config"], record["results"]
    text = (
        f"Forward + backward over {c['total']} {c['dtype']} scores in rows of N, {c['repeats']} calls per method in "
        f"{c['rounds']} rounds; min (median) ms, and the ratio to `jax.nn.softmax` of the same run"
    )
    out = [f"{text}:", H.markdown_table(["rows of N"] + [label for _, label in SOFTMAX_TABLE],
                                        softmax_table_rows(results))]  # fmt: skip
    peered = [m.name for m in JAX_METHODS if m.peer]
    if record["peers"]:
        rows = [[size] + [f"{res[name]['speedup_vs_peer']:.1f}x" for name in peered] for size, res in results.items()]
        heads = [f"{name} / {JAX_BY_NAME[name].peer}" for name in peered]
        out += ["Speedup over the `entmax` package (median times):", H.markdown_table(["rows of N"] + heads, rows)]
    out += ["Targets:", H.markdown_table(*_target_table(record["targets"]))]
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and targets, write the JSON; returns 0 (targets never fail the run)."""
    parser = argparse.ArgumentParser(prog="python benchmarks/separations.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_separations.json", help="JSON output path")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per method (median and min reported)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the JAX and PyTorch phases")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per method at the start of each turn")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="last-axis sizes N (default 256 4096 65536)")
    parser.add_argument("--total", type=int, default=None, help="elements per input, B * N (default 2^20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scores and the cotangent")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory runs (one process per method)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 256, 2^11 elements, 2 calls, no RSS")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, total, repeats, rounds, warmup, rss = args.sizes or [256], args.total or 2**11, 2, 1, 1, False
    else:
        sizes, total = args.sizes or [256, 4096, 65536], args.total or 2**20
        repeats, rounds, warmup, rss = args.repeats, args.rounds, args.warmup, not args.no_rss
    if not 1 <= rounds <= repeats or warmup < 0:
        parser.error("need 1 <= --rounds <= --repeats and --warmup >= 0")
    bad = [n for n in sizes if n < 1 or total % n]
    if bad:
        parser.error(f"--sizes {bad}: every size must divide --total {total}")

    peers = load_peers()
    env = H.environment(PEERS)
    print(f"dammem separations benchmark: sizes {sizes}, {total} elements, {repeats} calls per method")
    print(f"machine: {H.describe(env)}")
    print(f"timing: JAX and PyTorch in separate phases taking {rounds} turn(s), methods interleaved within each")
    if peers is None:
        print("note: torch / entmax not importable (pip install -e '.[bench]'); skipping the peer columns")

    results: dict[str, dict] = {}
    with jax.default_device(jax.devices("cpu")[0]):
        for n in sizes:
            results[str(n)] = run_size(
                n, total, args.seed, repeats=repeats, rounds=rounds, warmup=warmup, peers=peers, rss=rss
            )
            print_table(n, total, results[str(n)])
    print_softmax_table(results)
    targets = evaluate_targets(results)
    print_targets(targets)
    evaluated = [t["pass"] for t in targets if t["pass"] is not None]
    record = {
        "benchmark": "separations",
        "config": {
            "sizes": sizes, "total": total, "repeats": repeats, "rounds": rounds, "warmup": warmup,
            "seed": args.seed, "dtype": "float32", "device": "cpu", "rss": rss, "quick": args.quick,
            "timing": "JAX and PyTorch in separate phases taking turns (0.5 s pause before each); "
                      "methods interleaved call by call within a phase",
        },
        "environment": env,
        "peers": peers is not None,
        "results": results,
        "targets": targets,
        "all_targets_pass": all(evaluated) if evaluated else None,
    }  # fmt: skip
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
