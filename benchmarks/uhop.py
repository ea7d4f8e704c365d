"""U-Hop Stage I: dammem's ``fit_kernel`` vs PyTorch implementations of the same loss and optimiser, on the CPU.

Run from the repository root: ``python benchmarks/uhop.py [--quick] [--out FILE]`` (JSON to ``runs/bench_uhop.json``
by default).

Shape legend: ``K`` memories, ``D`` pattern dimension, ``F`` feature width (``F = D`` here).

Workload (defaults): the first ``K = 1000`` bundled MNIST digits (``D = 784``, pixels in [0, 1]), a Gaussian initial
kernel ``W`` (F x D, as the public code of Wu et al. (2024)), ``--steps`` steps of plain SGD (learning rate 1) on the
average separation loss (Wu et al. (2024), eq. 2.6, ``t = 2``) of the row-normalised features, then unit rows. One
timed call runs all the steps from the same initial ``W`` (float32):

* ``dammem.fit_kernel``: :func:`dammem.uhop.fit_kernel` (one jitted ``lax.scan``; compiled before timing);
* ``torch.pdist``: the straightforward PyTorch code, as in the public U-Hop code: ``F.normalize(M W^T)``,
  ``torch.pdist(...).pow(2).mul(-t).exp().mean().log()``, ``loss.backward()``, ``torch.optim.SGD`` (the speed target
  compares with this one);
* ``torch.gram``: the same loss from the Gram matrix of the features (``||u - v||^2 = 2 - 2 <u, v>``, a
  log-sum-exp over the off-diagonal entries), a faster PyTorch formulation shown for reference.

All three start from the same ``W`` and must agree: the JSON records the largest difference of their loss traces
and final ``W`` from dammem's. Throughput is Stage I steps per second (median call). Timing (see ``_harness``): JAX
and PyTorch are two phases that take turns in ``--rounds`` rounds with a pause before each, never interleaved call by
call; ``torch.set_num_threads(os.cpu_count())``. ``--repeats`` timed calls per method; median and minimum reported.

Memory: unless ``--no-rss``, one Stage I step (loss and gradient) at ``K = --rss-k`` (10^4 by default) memories of
``D`` uniform random pixels runs in its own process; the target is a peak resident memory within 4 GB (the process
as a whole, JAX and its compiled code included). The pair matrix alone would be ``K^2`` floats (400 MB at 10^4), and a
``K x K x F`` tensor 314 GB; the loss reduces blocks of ``chunk_size`` rows.

Targets: dammem at least 2x the steps per second of ``torch.pdist``; peak memory at ``K = 10^4`` <= 4 GB.
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

from dammem import uhop
from dammem.datasets import load_mnist, to_patterns

PEERS = ("torch",)
SPEED_TARGET = 2.0  # dammem / torch.pdist steps per second
MEMORY_TARGET_BYTES = 4 * 2**30
TEMPERATURE = 2.0
LEARNING_RATE = 1.0


def inputs(k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(memories (K, D), W0 (D, D))`` float32: MNIST digits when ``d = 784`` and ``k <= 2000``, else uniform
    random pixels; ``W0`` standard normal."""
    rng = np.random.default_rng(seed)
    if d == 784 and k <= 2000:
        x, _ = load_mnist(limit=k)
        memories = np.asarray(to_patterns(x))
    else:
        memories = rng.random((k, d), dtype=np.float32)
    return memories, rng.standard_normal((d, d), dtype=np.float32)


def prepare_dammem(memories: np.ndarray, w0: np.ndarray, steps: int):
    """``(call, compile seconds, (losses, W))``: ``fit_kernel`` from ``W0``, compiled by a first call."""
    mem, w = jnp.asarray(memories), jnp.asarray(w0)

    def call():
        return uhop.fit_kernel(mem, steps=steps, init=w, temperature=TEMPERATURE)

    t0 = time.perf_counter()
    fit = jax.block_until_ready(call())
    compile_s = time.perf_counter() - t0
    return call, compile_s, (np.asarray(fit.losses), np.asarray(fit.weight))


def torch_losses(torch):
    """The two PyTorch formulations of the average separation loss of row-normalised features."""
    functional = torch.nn.functional

    def pdist(feats):
        return torch.pdist(feats, p=2).pow(2).mul(-TEMPERATURE).exp().mean().log()

    def gram(feats):
        k = feats.shape[0]
        sq = 2.0 - 2.0 * (feats @ feats.T)
        off = ~torch.eye(k, dtype=torch.bool)
        terms = torch.where(off, -TEMPERATURE * sq, torch.full_like(sq, -math.inf))
        return torch.logsumexp(terms.reshape(-1), 0) - math.log(k * (k - 1))

    return {"torch.pdist": pdist, "torch.gram": gram}, functional


def prepare_torch(torch, loss_fn, functional, memories: np.ndarray, w0: np.ndarray, steps: int):
    """``(call, (losses, W))``: ``steps`` SGD steps of ``loss_fn`` from ``W0``, then unit rows."""
    mem = torch.from_numpy(memories.copy())
    start = torch.from_numpy(w0.copy())

    def call():
        w = start.clone().requires_grad_(True)
        opt = torch.optim.SGD([w], lr=LEARNING_RATE)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn(functional.normalize(mem @ w.T, dim=-1))
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            losses.append(loss_fn(functional.normalize(mem @ w.T, dim=-1)))
            return torch.stack(losses), functional.normalize(w, dim=-1)

    losses, weight = call()
    return call, (losses.numpy(), weight.numpy())


def loss_rss_case(k: int, d: int, chunk_size: int, seed: int):
    """A case for ``_harness.run_case``: one Stage I step (loss and gradient in W) at K memories, compiled first."""
    memories, w0 = inputs(k, d, seed)
    mem, w = jnp.asarray(memories), jnp.asarray(w0)
    step = jax.jit(jax.value_and_grad(lambda w: uhop.separation_loss(w, mem, chunk_size=chunk_size)))
    compiled = step.lower(w).compile()

    def run_once() -> dict:
        value, grad = jax.block_until_ready(compiled(w))
        return {"loss": float(value), "grad_finite": bool(np.all(np.isfinite(np.asarray(grad))))}

    return run_once


def run(args, torch) -> dict:
    memories, w0 = inputs(args.k, args.d, args.seed)
    res: dict[str, dict] = {}
    call, compile_s, (ref_losses, ref_w) = prepare_dammem(memories, w0, args.steps)
    res["dammem.fit_kernel"] = {"compile_s": compile_s}
    phases = [{"dammem.fit_kernel": call}]
    if torch is not None:
        losses, functional = torch_losses(torch)
        peer_calls = {}
        for name, fn in losses.items():
            peer_calls[name], (peer_losses, peer_w) = prepare_torch(torch, fn, functional, memories, w0, args.steps)
            res[name] = {
                "compile_s": None,
                "max_abs_loss_diff_vs_dammem": float(np.max(np.abs(peer_losses - ref_losses))),
                "max_abs_weight_diff_vs_dammem": float(np.max(np.abs(peer_w - ref_w))),
            }
        phases.append(peer_calls)
    times = H.time_interleaved(phases, repeats=args.repeats, warmup=args.warmup, rounds=args.rounds, pause_s=0.5)
    for name, seconds in times.items():
        res[name].update(H.summarize(seconds))
        res[name]["steps_per_s"] = args.steps / (res[name]["median_ms"] / 1e3)
    base = res["dammem.fit_kernel"]["steps_per_s"]
    for r in res.values():
        r["dammem_speedup"] = base / r["steps_per_s"]
    return {"results": res, "loss_first": float(ref_losses[0]), "loss_last": float(ref_losses[-1])}


def readme_table(record: dict) -> str:
    """The README's account of one run (its JSON ``record``): Stage I throughput beside PyTorch, and the peak memory
    of one step at ``rss_k`` memories."""
    c, res = record["config"], record["results"]
    rows = [
        [f"`{name}`", f"{r['median_ms']:.1f} ({r['min_ms']:.1f})", f"{r['steps_per_s']:.1f}",
         "-" if name == "dammem.fit_kernel" else f"{r['dammem_speedup']:.2f}x"]
        for name, r in res.items()
    ]  # fmt: skip
    text = (
        f"Stage I (`fit_kernel`: SGD on the separation loss), K = {c['k']} MNIST digits, D = {c['d']}, "
        f"{c['steps']} steps per call, {c['repeats']} calls per method"
    )
    out = f"{text}:\n\n" + H.markdown_table(["method", "ms per call, median (min)", "steps/s", "dammem / method"], rows)
    if record["rss"] is not None:
        out += (
            f"\n\nOne Stage I step at K = {c['rss_k']} peaks at {record['rss']['peak_rss_bytes'] / 2**20:.1f} MB of "
            "resident memory (the whole process)."
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and targets, write the JSON; returns 0 (targets never fail the run)."""
    parser = argparse.ArgumentParser(prog="python benchmarks/uhop.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_uhop.json", help="JSON output path")
    parser.add_argument("--k", type=int, default=1000, help="memories K (MNIST digits up to 2000 at D = 784)")
    parser.add_argument("--d", type=int, default=784, help="pattern dimension D (= F)")
    parser.add_argument("--steps", type=int, default=10, help="Stage I steps per timed call")
    parser.add_argument("--repeats", type=int, default=H.MIN_REPEATS, help="timed calls per method")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the JAX and PyTorch phases")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per method at the start of each turn")
    parser.add_argument("--rss-k", type=int, default=10_000, help="memories K of the peak-memory run")
    parser.add_argument("--chunk-size", type=int, default=uhop.DEFAULT_CHUNK_SIZE, help="rows per block (RSS run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of W0 (and of random pixels)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory run")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: K = 64, D = 32, 2 steps, 2 calls, RSS at K = 512"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.k, args.d, args.steps, args.repeats, args.rounds, args.warmup = 64, 32, 2, 2, 1, 0
        args.rss_k = min(args.rss_k, 512)
    if args.k < 2 or args.d < 1 or args.steps < 1 or args.rss_k < 2:
        parser.error("need --k >= 2, --d >= 1, --steps >= 1 and --rss-k >= 2")
    if not 1 <= args.rounds <= args.repeats or args.warmup < 0:
        parser.error("need 1 <= --rounds <= --repeats and --warmup >= 0")

    torch = H.load_torch()
    env = H.environment(PEERS)
    print(f"dammem U-Hop Stage I benchmark: K = {args.k}, D = F = {args.d}, {args.steps} SGD steps per call, "
          f"{args.repeats} calls per method")  # fmt: skip
    print(f"machine: {H.describe(env)}")
    if torch is None:
        print("note: torch not importable (pip install -e '.[bench]'); skipping the PyTorch columns")
    with jax.default_device(jax.devices("cpu")[0]):
        out = run(args, torch)
        rss = None
        if not args.no_rss:
            rss = H.run_case(
                "uhop:loss_rss_case", {"k": args.rss_k, "d": args.d, "chunk_size": args.chunk_size, "seed": args.seed}
            )
    res = out["results"]
    print(f"\nloss {out['loss_first']:.4f} -> {out['loss_last']:.4f} over {args.steps} steps")
    H.print_table(
        ["method", "median ms", "min ms", "steps/s", "dammem x", "max abs diff (loss, W)"],
        [
            [
                name,
                f"{r['median_ms']:.1f}",
                f"{r['min_ms']:.1f}",
                f"{r['steps_per_s']:.2f}",
                f"{r['dammem_speedup']:.2f}x",
                f"{r['max_abs_loss_diff_vs_dammem']:.1e}, {r['max_abs_weight_diff_vs_dammem']:.1e}"
                if "max_abs_loss_diff_vs_dammem" in r
                else "-",
            ]  # fmt: skip
            for name, r in res.items()
        ],
    )

    targets = []
    speed = {"target": f"dammem >= {SPEED_TARGET:g}x torch.pdist steps/s", "value": None, "pass": None}
    if "torch.pdist" in res:
        speed["value"] = res["torch.pdist"]["dammem_speedup"]
        speed["pass"] = bool(speed["value"] >= SPEED_TARGET)
    targets.append(speed)
    memory = {"target": f"peak RSS of one Stage I step at K = {args.rss_k} <= 4 GB", "value": None, "pass": None}
    if rss is not None:
        memory["value"] = rss["peak_rss_bytes"]
        memory["pass"] = bool(rss["peak_rss_bytes"] <= MEMORY_TARGET_BYTES and rss["result"]["grad_finite"])
        print(
            f"\nK = {args.rss_k}: one Stage I step (loss {rss['result']['loss']:.4f}), peak RSS "
            f"{rss['peak_rss_bytes'] / 2**20:.0f} MB ({rss['peak_increase_bytes'] / 2**20:.0f} MB above the process "
            f"before the call)"
        )
    targets.append(memory)
    print("\nTargets:")
    H.print_table(["target", "status"], [[t["target"], H.target_status(t)] for t in targets])
    record = {
        "benchmark": "uhop",
        "config": {
            "k": args.k, "d": args.d, "steps": args.steps, "repeats": args.repeats, "rounds": args.rounds,
            "warmup": args.warmup, "rss_k": args.rss_k, "chunk_size": args.chunk_size, "seed": args.seed,
            "quick": args.quick, "temperature": TEMPERATURE, "learning_rate": LEARNING_RATE, "dtype": "float32",
            "timing": "JAX and PyTorch in separate phases taking turns (0.5 s pause before each)",
        },
        "environment": env,
        "peers": torch is not None,
        **out,
        "rss": rss,
        "targets": targets,
    }  # fmt: skip
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
