"""Clean-up time vs codebook size N: KROP butterfly vs dense codebooks (seed 000, "Comparing clean-up runtime").

For each ``N = 2^K`` and batch size, the clean-up ``argmax_j <C_j, v>`` of a batch of random vectors is timed
(jitted, after warm-up, median of ``repeats`` calls, ``block_until_ready``) for

* ``krop``: the O(N log N) butterfly (:func:`dammem.vsa.krop_cleanup`), ``log2 N`` stored angles;
* ``krop_signed``: the same with the +-1 column signs (``log2 N + N`` stored numbers);
* ``unitary_shift``: rows are cyclic shifts of one vector, clean-up by one FFT correlation (O(N log N), N stored);
* ``dense``: ``argmax C v`` with a precomputed dense Gaussian ``(N, N)`` codebook (O(N^2) time and storage);
  only up to ``dense_max_size`` (the matrix has N^2 entries).

The time to build the dense codebook (drawing its N^2 entries, compilation excluded) is reported separately from
its clean-up time. Times
are wall-clock on the machine that runs the experiment; timings are not trials, so nothing is vectorised over keys.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dammem.experiments._base import Progress, markdown_table, pyplot, save_figure
from dammem.vsa import make_codebook

__all__ = ["Config", "run", "report", "METHODS"]

METHODS = ("krop", "krop_signed", "unitary_shift", "dense")


@dataclasses.dataclass(frozen=True)
class Config:
    """Timing sweep.

    Attributes:
      sizes: codebook sizes N (powers of two; seed 000 uses 2^4 .. 2^15).
      batches: numbers of vectors cleaned up per call.
      methods: subset of ``METHODS``.
      dense_max_size: largest N with a dense codebook (it stores N^2 float32 numbers).
      repeats: timed calls per point (the median is reported).
      warmup: untimed calls before timing (the first one compiles).
    """

    sizes: tuple[int, ...] = tuple(2**k for k in range(4, 16))
    batches: tuple[int, ...] = (1, 256)
    methods: tuple[str, ...] = METHODS
    dense_max_size: int = 16384
    repeats: int = 5
    warmup: int = 2

    def __post_init__(self):
        sizes = list(self.sizes)
        if not sizes or any(n < 2 or n & (n - 1) for n in sizes) or sizes != sorted(set(sizes)):
            raise ValueError(f"sizes must be increasing powers of two >= 2, got {list(self.sizes)}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError(f"batches must be positive integers, got {list(self.batches)}")
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ValueError(f"methods must be names from {METHODS}, got {list(self.methods)}")
        if self.dense_max_size < 2:
            raise ValueError(f"dense_max_size must be >= 2, got {self.dense_max_size}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be >= 1 (the first call compiles), got {self.warmup}")


def _median_ms(fn, args, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


_CLEANUP = jax.jit(lambda cb, v: cb.cleanup(v))


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.sizes))
    times = {m: {str(b): [] for b in config.batches} for m in config.methods}
    params = {m: [] for m in config.methods}
    build_ms: list[float | None] = []
    agree: list[bool | None] = []
    for i, n in enumerate(config.sizes):
        k_cb, k_x = jax.random.split(jax.random.fold_in(key, i))
        codebooks = {}
        build = None
        for method in config.methods:
            if method == "dense":
                if n > config.dense_max_size:
                    continue
                sampler = jax.jit(lambda kk, n=n: make_codebook("gaussian", n, key=kk)).lower(k_cb).compile()
                t0 = time.perf_counter()  # compiling the sampler is not counted
                cb = sampler(k_cb)
                jax.block_until_ready(cb.params["matrix"])
                build = 1e3 * (time.perf_counter() - t0)
            else:
                cb = make_codebook(method, n, key=k_cb)
            codebooks[method] = cb
        build_ms.append(build)
        for method in config.methods:
            params[method].append(codebooks[method].storage_size if method in codebooks else None)
        same = None
        for b in config.batches:
            x = jax.random.normal(jax.random.fold_in(k_x, b), (b, n), dtype=jnp.float32)
            for method in config.methods:
                if method not in codebooks:
                    times[method][str(b)].append(None)
                    continue
                times[method][str(b)].append(
                    _median_ms(_CLEANUP, (codebooks[method], x), config.repeats, config.warmup)
                )
            if "krop" in codebooks and n <= 4096:  # the butterfly agrees with argmax over the dense KROP matrix
                brute = jnp.argmax(x @ codebooks["krop"].matrix().T, axis=-1)
                same = bool(np.array_equal(np.asarray(_CLEANUP(codebooks["krop"], x)), np.asarray(brute)))
        agree.append(same)
        progress.update(1)
    speedup = {}
    if "dense" in config.methods:
        for m in config.methods:
            if m == "dense":
                continue
            speedup[m] = {}
            for b in config.batches:
                pairs = zip(times["dense"][str(b)], times[m][str(b)])
                speedup[m][str(b)] = [d / t if d is not None and t else None for d, t in pairs]
    return {
        "sizes": list(config.sizes),
        "batches": list(config.batches),
        "time_ms": times,
        "dense_build_ms": build_ms,
        "storage": params,
        "speedup_over_dense": speedup,
        "krop_matches_dense_matrix": agree,
        "backend": jax.default_backend(),
    }


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()

    sizes, batches = results["sizes"], results["batches"]
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.2), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for method, per_batch in results["time_ms"].items():
            pts = [(n, t) for n, t in zip(sizes, per_batch[str(b)]) if t is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=method)
        builds = [(n, t) for n, t in zip(sizes, results["dense_build_ms"]) if t is not None]
        if builds:
            ax.plot([p[0] for p in builds], [p[1] for p in builds], ls=":", color="gray", label="dense build")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("clean-up time (ms)")
        ax.set_title(f"batch {b} ({results['backend']})")
        ax.legend(fontsize=7)
    save_figure(fig, out_dir / "krop_timing.png")

    methods = list(results["time_ms"])
    lines = []
    for b in batches:
        headers = ["N"] + [f"{m} ms" for m in methods] + [f"dense/{m}" for m in results["speedup_over_dense"]]
        rows = []
        for j, n in enumerate(sizes):
            row = [n] + [results["time_ms"][m][str(b)][j] for m in methods]
            row += [results["speedup_over_dense"][m][str(b)][j] for m in results["speedup_over_dense"]]
            rows.append(["-" if v is None else v for v in row])
        lines += [f"Clean-up time, batch {b} (median of {config.repeats}):", "", markdown_table(headers, rows), ""]
    store_rows = [
        [n]
        + ["-" if results["storage"][m][j] is None else results["storage"][m][j] for m in methods]
        + ["-" if results["dense_build_ms"][j] is None else results["dense_build_ms"][j]]
        for j, n in enumerate(sizes)
    ]
    lines += [
        "Stored numbers per codebook and dense build time (ms):",
        "",
        markdown_table(["N"] + methods + ["dense build ms"], store_rows),
        "",
        "![timing](krop_timing.png)",
    ]
    return "\n".join(lines)
