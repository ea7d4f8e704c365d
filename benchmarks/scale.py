"""Memory-parallel modern Hopfield retrieval at scale: K = 2^20 memories of D = 256 split over 8 host devices.

Run from the repository root: ``python benchmarks/scale.py [--memories 1048576] [--out FILE]`` (JSON to
``runs/bench_scale.json`` by default). Each measurement runs in its own Python process with 8 XLA host (CPU)
devices (``_harness.run_case(..., host_devices=8)``), the same way the program would spread over 8 GPUs or TPU
cores.

The problem: ``K`` random Gaussian memories of dimension ``D`` (float32: ``K D 4`` bytes, 1 GiB at the defaults),
generated directly in place, one slice per device, and ``B`` queries near stored patterns. Cases:

* ``sharded_update`` / ``single_update``: one modern Hopfield update ``x <- Xi^T softmax(beta Xi x)`` of the ``B``
  queries (Ramsauer et al. (2021), eq. 3), with the memories split along ``K`` over 8 devices
  (:func:`dammem.sharding.sharded_update`) and on one device (``jax.vmap`` of
  :func:`dammem.energies.sparse_hopfield_update` with alpha = 1);
* ``sharded_retrieve`` / ``single_retrieve``: ``--steps`` fixed-point steps with the energy tracked
  (:func:`dammem.sharding.sharded_retrieve` with ``tol=None``, against ``jax.vmap`` of ``dammem.retrieve`` with the
  modern Hopfield energy and update). The single-device loop evaluates the scores twice per step (update and
  energy), the sharded one once (the energy's scores feed the next update).

Reported: per-device memory of every compiled program from ``compiled.memory_analysis()`` (arguments, outputs and
temporaries of one device's program; the sharded one should hold about 1/8 of the memories), the time of each case
(at least 15 timed calls, interleaved, minimum and median), the largest difference between the sharded and the
single-device results, and the largest ``K`` whose sharded retrieval (one step) runs on this machine: ``K`` doubles
from ``--memories`` in fresh processes, each started only while ``MemAvailable`` (``/proc/meminfo``) exceeds its
expected need (1.5 times the memory set plus 1 GiB, at most ``--max-rss-gib``) plus ``--reserve-gib`` left to
others; a watchdog kills a measuring process whose resident memory passes ``--max-rss-gib`` (8 GiB), and the search
stops at the first failure or kill, at ``--max-memories`` (2^23) or at ``--max-gib`` (4 GiB) of memories. On a CPU
the 8 "devices" share the host's cores and memory, so the sharded times measure the overhead of the split rather
than a speed-up.

Several processes: ``--processes P`` also runs the sharded cases as ``P`` local JAX processes of ``--devices / P``
devices each (``python -m dammem.launch``; e.g. ``--memories 4194304 --processes 4``: K = 2^22, 4 GiB, over 4
processes x 2 devices), each process generating only its own rows. Reported beside the single-process run: every
process's lifetime peak resident memory (``ru_maxrss``: imports and set-up included, as for the single-process
run's ``max_rss_bytes``) and its ratio to the single-process run's, the per-device memory of the compiled
programs, the times (rank 0's), and the largest difference between the multi-process and the single-process
results.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from functools import partial

import _harness as H

GIB = 1 << 30


def _memory_stats(compiled) -> dict:
    """Per-device bytes of a compiled program (``compiled.memory_analysis()``)."""
    stats = compiled.memory_analysis()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes")
    out = {name: int(getattr(stats, name)) for name in fields}
    out["total_bytes"] = out["argument_size_in_bytes"] + out["output_size_in_bytes"] + out["temp_size_in_bytes"]
    return out


def _mesh():
    """All devices on one axis ``memory`` (automatic axis types: the set-up slices the sharded memories freely)."""
    import jax
    from jax.sharding import AxisType

    return jax.make_mesh((jax.device_count(),), ("memory",), axis_types=(AxisType.Auto,))


CHUNK_ROWS = 1 << 14  # rows drawn per step when a device fills its slice of the memory set


def problem(memories: int, dim: int, queries: int, seed: int, mesh, axis: str = "memory"):
    """Gaussian memories (K, D) / sqrt(D) split over ``axis`` of ``mesh``, and queries (B, D) at 0.3 relative noise
    from the first ``B`` memories.

    Every device draws its own rows on the device, ``c`` rows at a time into its slice (``c = min(2^14, K / n)`` for
    ``n`` devices in all; chunk ``j`` of the memory set from ``fold_in(key(seed), j)``), so a process holds only its
    devices' slices plus one chunk, and the memory set is the same whatever the number of processes. (One
    ``jax.random.normal`` of a whole slice materialises several slice-sized temporaries; NumPy draws need a host copy
    beside the device's.)
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    chunk = min(CHUNK_ROWS, memories // mesh.size)
    if memories % (chunk * mesh.size):
        raise ValueError(f"problem: K = {memories} must be a multiple of {chunk * mesh.size} (chunks x devices)")
    scale = np.float32(1.0 / math.sqrt(dim))

    @partial(jax.jit, static_argnums=1)
    def fill(key, rows: int, first):  # rows [first * chunk, first * chunk + rows) of the memory set
        def body(i, buf):
            block = jax.random.normal(jax.random.fold_in(key, first + i), (chunk, dim), jnp.float32) * scale
            return lax.dynamic_update_slice(buf, block, (i * chunk, 0))

        return lax.fori_loop(0, rows // chunk, body, jnp.zeros((rows, dim), jnp.float32))

    key = jax.random.key(seed)
    sharding = NamedSharding(mesh, P(axis, None))
    slices = []
    for device, index in sharding.addressable_devices_indices_map((memories, dim)).items():
        start, stop, _ = index[0].indices(memories)
        on_device = jax.device_put((key, np.int32(start // chunk)), device)
        slices.append(fill(on_device[0], stop - start, on_device[1]))
    mem = jax.make_array_from_single_device_arrays((memories, dim), sharding, slices)
    key0, first0 = jax.device_put((key, np.int32(0)), jax.local_devices()[0])
    first_rows = np.asarray(fill(key0, -(-queries // chunk) * chunk, first0))  # whole chunks covering the B rows
    noise = np.random.default_rng([seed, memories]).standard_normal((queries, dim), dtype=np.float32)
    x = first_rows[:queries] + np.float32(0.3 / math.sqrt(dim)) * noise
    return mem, x  # the queries on the host: every process places them itself


def _programs(mem_sharded, mem_single, x, beta: float, steps: int, mesh):
    """The four cases compiled for their arguments: ``{name: (compiled program, (queries, memories))}``."""
    import jax

    import dammem
    from dammem import sharding
    from dammem.energies import modern_hopfield_energy, sparse_hopfield_update

    update = partial(sparse_hopfield_update, alpha=1.0)
    x_host = x

    def single_retrieve(x, mem):
        def one(q):
            return dammem.retrieve(
                modern_hopfield_energy, q, (mem, beta), update=update, max_steps=steps, tol=None
            ).x  # fmt: skip

        return jax.vmap(one)(x)

    funcs = {
        "sharded_update": lambda x, mem: sharding.sharded_update(x, mem, beta, mesh=mesh, axis="memory"),
        "single_update": lambda x, mem: jax.vmap(lambda q: update(q, mem, beta))(x),
        "sharded_retrieve": lambda x, mem: (
            sharding.sharded_retrieve(x, mem, beta, mesh=mesh, axis="memory", max_steps=steps, tol=None).x
        ),
        "single_retrieve": single_retrieve,
    }
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    # the queries, replicated on every device (of every process: each passes the same values)
    x_mesh = jax.make_array_from_process_local_data(NamedSharding(mesh, P()), x_host)
    x_single = jax.device_put(x_host, jax.local_devices()[0])
    programs = {}
    for name, fn in funcs.items():
        args = (x_mesh, mem_sharded) if name.startswith("sharded") else (x_single, mem_single)
        if args[1] is None:
            continue
        programs[name] = (jax.jit(fn).lower(*args).compile(), args)
    return programs


def scale_case(memories: int, dim: int, queries: int, beta: float, steps: int, repeats: int, seed: int,
               single: bool) -> object:  # fmt: skip
    """A case for ``_harness.run_case(..., host_devices=8)``: compile every case, then a call times them all."""
    import time

    import jax
    import numpy as np

    from dammem import sharding

    mesh = _mesh()
    mem_sharded, x = problem(memories, dim, queries, seed, mesh)
    mem_single = jax.device_put(mem_sharded, jax.devices()[0]) if single else None
    start = time.perf_counter()
    programs = _programs(mem_sharded, mem_single, x, beta, steps, mesh)
    compile_s = time.perf_counter() - start

    def run() -> dict:
        outputs = {name: np.asarray(compiled(*args)) for name, (compiled, args) in programs.items()}
        times = H.time_interleaved(
            [{name: partial(compiled, *args) for name, (compiled, args) in programs.items()}], repeats=repeats
        )
        gathers = {name: sharding.all_gather_shapes(c) for name, (c, _) in programs.items() if "sharded" in name}
        record = {
            "devices": jax.device_count(),
            "processes": jax.process_count(),
            "memory_bytes": memories * dim * 4,
            "sharded_outputs": {name: out.tolist() for name, out in outputs.items() if name.startswith("sharded")},
            "memory_per_device": {name: _memory_stats(c) for name, (c, _) in programs.items()},
            "timings": {name: H.summarize(t) for name, t in times.items()},
            "compile_s": compile_s,
            "all_gather_shapes": gathers,
            "memory_set_gathered": any(
                int(np.prod(s)) >= memories * dim for shapes in gathers.values() for s in shapes
            ),
        }
        if single:
            record["max_abs_diff"] = {
                kind: float(np.max(np.abs(outputs[f"sharded_{kind}"] - outputs[f"single_{kind}"])))
                for kind in ("update", "retrieve")
            }
        return record

    return run


def largest_case(memories: int, dim: int, queries: int, beta: float, seed: int) -> object:
    """A case for ``run_case``: does one sharded retrieval step of ``K = memories`` run? Reports its per-device
    memory."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from dammem import sharding

    mesh = _mesh()
    mem, x = problem(memories, dim, queries, seed, mesh)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P()), x)
    fn = jax.jit(lambda x, m: sharding.sharded_retrieve(x, m, beta, mesh=mesh, axis="memory", max_steps=1, tol=None))
    compiled = fn.lower(x, mem).compile()

    def run() -> dict:
        out = compiled(x, mem)
        return {
            "finite": bool(np.all(np.isfinite(np.asarray(out.x)))),
            "memory_per_device": _memory_stats(compiled),
        }

    return run


RANK_MARKER = "SCALE-RANK-RESULT "


def rank_main(spec: str) -> int:
    """One rank of the multi-process case (started by ``python -m dammem.launch``): ``scale_case`` without the
    single-device programs on a mesh over every process's devices; prints its record and its lifetime peak RSS."""
    import json
    import resource

    import dammem.launch

    dammem.launch.initialize()
    import jax

    run = scale_case(**json.loads(spec), single=False)
    record = run()
    record["rank"] = jax.process_index()
    record["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    if record["rank"]:
        record.pop("sharded_outputs")  # replicated: rank 0's are every rank's
    print(RANK_MARKER + json.dumps(record), flush=True)
    return 0


def multiprocess_run(args, kwargs: dict) -> dict:
    """The sharded cases on ``--processes`` local processes of ``--devices / --processes`` devices each (through
    ``python -m dammem.launch``), every process generating only its own rows of the memory set."""
    import json
    import subprocess

    spec = json.dumps({k: v for k, v in kwargs.items() if k != "single"})
    command = [
        sys.executable, "-m", "dammem.launch", "--num-processes", str(args.processes), "--devices-per-process",
        str(args.devices // args.processes), "--timeout", str(args.timeout), os.path.abspath(__file__),
        "--rank-case", spec,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + 60)
    ranks = [json.loads(line.split(RANK_MARKER, 1)[1]) for line in done.stdout.splitlines() if RANK_MARKER in line]
    if done.returncode != 0 or len(ranks) != args.processes:
        raise RuntimeError(f"the multi-process run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {"processes": args.processes, "devices_per_process": args.devices // args.processes,
            "ranks": sorted(ranks, key=lambda r: r["rank"])}  # fmt: skip


class RssWatchdog:
    """While active, kills every child process of this one whose resident memory exceeds ``limit`` bytes (polled
    every 0.1 s from ``/proc``), so that a measuring process cannot take the machine down; ``killed`` lists the
    resident sizes it saw when it killed."""

    def __init__(self, limit: int):
        self.limit = limit
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.1):
            for pid in _children(me):
                rss = _rss_bytes(pid)
                if rss is not None and rss > self.limit:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(rss)
                    except OSError:
                        pass


def _children(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:  # the field after the state is the parent's pid
                pids.append(int(entry))
    return pids


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mem_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def search_largest(args) -> dict:
    """Double K from ``--memories`` while the runs succeed, within the caps and while the machine has room (see the
    module docstring)."""
    attempts, largest, stop = [], None, "cap"
    limit = int(args.max_rss_gib * GIB)
    k = args.memories
    while k <= args.max_memories and k * args.dim * 4 <= args.max_gib * GIB:
        need = min(limit, int(1.5 * k * args.dim * 4) + GIB) + int(args.reserve_gib * GIB)
        available = mem_available_bytes()
        if available is not None and available < need:
            stop = f"MemAvailable {available / GIB:.1f} GiB < {need / GIB:.1f} GiB needed"
            break
        kwargs = {"memories": k, "dim": args.dim, "queries": args.queries, "beta": args.beta, "seed": args.seed}
        with RssWatchdog(limit) as watchdog:
            try:
                got = H.run_case("scale:largest_case", kwargs, host_devices=args.devices, timeout_s=args.search_timeout)
            except Exception as err:  # noqa: BLE001 - a failed size ends the search; the reason is recorded
                got = err
        if isinstance(got, Exception):
            reason = f"killed above {args.max_rss_gib:g} GiB resident" if watchdog.killed else "failure"
            attempts.append({"memories": k, "ok": False, "stopped_by": reason, "error": str(got)[-500:]})
            stop = reason
            break
        ok = bool(got["result"]["finite"])
        attempts.append({"memories": k, "ok": ok, "peak_rss_bytes": got["max_rss_bytes"], **got["result"]})
        print(
            f"  K = 2^{int(math.log2(k))} ({k * args.dim * 4 / GIB:.2f} GiB of memories): "
            f"{'runs' if ok else 'NOT finite'}, per device "
            f"{got['result']['memory_per_device']['total_bytes'] / GIB:.3f} GiB, process peak "
            f"{got['max_rss_bytes'] / GIB:.2f} GiB",
            flush=True,
        )
        if not ok:
            stop = "failure"
            break
        largest = k
        k *= 2
    return {"largest_memories": largest, "stopped_by": stop, "attempts": attempts}


def print_table(record: dict) -> None:
    m = record["main"]
    print(f"\n{m['devices']} devices, memory set {m['memory_bytes'] / GIB:.2f} GiB (float32)")
    print(f"{'case':<18}{'per-device MiB':>16}{'args MiB':>10}{'temp MiB':>10}{'min ms':>10}{'median ms':>11}")
    for name, t in m["timings"].items():
        mem = m["memory_per_device"][name]
        print(
            f"{name:<18}{mem['total_bytes'] / 2**20:>16.1f}{mem['argument_size_in_bytes'] / 2**20:>10.1f}"
            f"{mem['temp_size_in_bytes'] / 2**20:>10.1f}{t['min_ms']:>10.1f}{t['median_ms']:>11.1f}"
        )
    for kind in ("update", "retrieve"):
        sharded, single = f"sharded_{kind}", f"single_{kind}"
        if single in m["timings"]:
            ratio = m["memory_per_device"][sharded]["total_bytes"] / m["memory_per_device"][single]["total_bytes"]
            speed = m["timings"][single]["median_ms"] / m["timings"][sharded]["median_ms"]
            print(
                f"{kind}: per-device memory sharded/single = {ratio:.3f} (ideal 1/{m['devices']}); "
                f"speed single/sharded (medians) = {speed:.2f}x; max |sharded - single| = {m['max_abs_diff'][kind]:.2e}"
            )
    print(f"memory set gathered in a compiled sharded program: {'YES' if m['memory_set_gathered'] else 'no'}")
    mp = record.get("multiprocess")
    if mp:
        r0 = mp["ranks"][0]
        rss = [r["max_rss_bytes"] / GIB for r in mp["ranks"]]
        print(
            f"\n{'run':<26}{'peak RSS per process GiB':>26}{'update per-device MiB':>23}"
            f"{'update min / median ms':>24}{'retrieve min / median ms':>26}"
        )
        rows = [(f"1 process x {m['devices']} devices", [m["max_rss_bytes"] / GIB], m)]
        rows.append((f"{mp['processes']} processes x {mp['devices_per_process']} devices", rss, r0))
        for label, peaks, rec in rows:
            u, r = rec["timings"]["sharded_update"], rec["timings"]["sharded_retrieve"]
            peak = " / ".join(f"{v:.2f}" for v in peaks)
            print(
                f"{label:<26}{peak:>26}{rec['memory_per_device']['sharded_update']['total_bytes'] / 2**20:>23.1f}"
                f"{u['min_ms']:>12.1f} / {u['median_ms']:<9.1f}{r['min_ms']:>14.1f} / {r['median_ms']:<9.1f}"
            )
        print(
            f"largest peak RSS of a process: {max(rss) / (m['max_rss_bytes'] / GIB):.3f} of the single-process run's; "
            f"max |multi-process - single-process| (update, retrieve) = "
            f"{mp['max_abs_diff']['update']:.2e}, {mp['max_abs_diff']['retrieve']:.2e}"
        )
    s = record.get("search")
    if s:
        k = s["largest_memories"]
        size = (
            "none" if k is None else f"K = {k} (2^{int(math.log2(k))}, {k * record['config']['dim'] * 4 / GIB:.2f} GiB)"
        )
        print(f"largest K that ran: {size}; search stopped by: {s['stopped_by']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/scale.py", description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=1 << 20, help="stored patterns K (a power of two)")
    parser.add_argument("--dim", type=int, default=256, help="pattern dimension D")
    parser.add_argument("--queries", type=int, default=16, help="queries B")
    parser.add_argument("--beta", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=2, help="fixed-point steps of the retrieve cases")
    parser.add_argument("--devices", type=int, default=8, help="host devices of the measuring processes")
    parser.add_argument("--repeats", type=int, default=H.MIN_REPEATS, help="timed calls per case")
    parser.add_argument("--no-single", action="store_true", help="skip the single-device cases")
    parser.add_argument("--no-search", action="store_true", help="skip the search for the largest K")
    parser.add_argument("--max-memories", type=int, default=1 << 23, help="largest K the search tries")
    parser.add_argument("--max-gib", type=float, default=4.0, help="largest memory set (GiB) the search tries")
    parser.add_argument("--max-rss-gib", type=float, default=8.0, help="a measuring process above this is killed")
    parser.add_argument("--reserve-gib", type=float, default=4.0, help="RAM left to others during the search")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before the main run is killed")
    parser.add_argument("--search-timeout", type=float, default=900.0, help="seconds per search run")
    parser.add_argument("--out", default="runs/bench_scale.json", help="JSON output path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--processes", type=int, default=1,
        help="also run the sharded cases on this many local processes (--devices split among them)",
    )  # fmt: skip
    parser.add_argument("--rank-case", default=None, help=argparse.SUPPRESS)  # one rank of the multi-process case
    args = parser.parse_args(argv)
    if args.rank_case is not None:
        return rank_main(args.rank_case)
    for name in ("memories", "dim", "queries", "steps", "devices", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.memories % args.devices:
        parser.error(f"--memories must be a multiple of --devices = {args.devices}, got {args.memories}")
    if args.processes < 1 or args.devices % args.processes:
        parser.error(f"--processes must be >= 1 and divide --devices = {args.devices}, got {args.processes}")
    if args.queries > args.memories:
        parser.error(f"--queries must be <= --memories = {args.memories}, got {args.queries}")
    env = H.environment()
    print(
        f"dammem scale benchmark: modern Hopfield retrieval, K={args.memories} memories, D={args.dim}, "
        f"B={args.queries} queries, {args.devices} host devices, float32"
    )
    print(f"machine: {H.describe(env)}")
    kwargs = {
        "memories": args.memories, "dim": args.dim, "queries": args.queries, "beta": args.beta, "steps": args.steps,
        "repeats": args.repeats, "seed": args.seed, "single": not args.no_single,
    }  # fmt: skip
    with RssWatchdog(int(args.max_rss_gib * GIB)):
        main_run = H.run_case("scale:scale_case", kwargs, host_devices=args.devices, timeout_s=args.timeout)
    record = {
        "benchmark": "scale",
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "environment": env,
        "main": {
            **main_run["result"], "peak_rss_bytes": main_run["peak_rss_bytes"],
            "max_rss_bytes": main_run["max_rss_bytes"],
        },
    }  # fmt: skip
    if args.processes > 1:
        import numpy as np

        print(f"the sharded cases on {args.processes} processes:", flush=True)
        mp = multiprocess_run(args, kwargs)
        ref, got = record["main"]["sharded_outputs"], mp["ranks"][0]["sharded_outputs"]
        mp["max_abs_diff"] = {
            kind: float(np.max(np.abs(np.asarray(got[f"sharded_{kind}"]) - np.asarray(ref[f"sharded_{kind}"]))))
            for kind in ("update", "retrieve")
        }
        mp["peak_rss_ratio"] = max(r["max_rss_bytes"] for r in mp["ranks"]) / record["main"]["max_rss_bytes"]
        record["multiprocess"] = mp
    if not args.no_search:
        print("searching the largest K (doubling):", flush=True)
        record["search"] = search_largest(args)
    print_table(record)
    print(f"\nwrote {H.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
