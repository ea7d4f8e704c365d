"""The clean-up timing experiment's report: time against N with N log N and N^2 guides, and a table of the results.

References: as in :mod:`dammem.experiments.krop.timing`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.krop.timing import CHECK_MAX_SIZE, Config

__all__ = ["report"]


def _guide(ax, sizes, values, power_of_log: bool, label: str) -> None:
    """A dashed ``c N log N`` or ``c N^2`` line through the last measured point."""
    n = np.asarray(sizes, dtype=np.float64)
    shape = n * np.log2(n) if power_of_log else n**2
    ax.plot(n, shape * values[-1] / shape[-1], ls="--", lw=0.8, color="gray" if power_of_log else "black",
            label=label)  # fmt: skip


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()

    sizes, batches = results["sizes"], results["batches"]
    methods = list(results["time_ms"])
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.8), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for method in methods:
            med, lo, hi = (results[k][method][str(b)] for k in ("time_ms", "min_time_ms", "max_time_ms"))
            pts = [(n, m, a, z) for n, m, a, z in zip(sizes, med, lo, hi) if m is not None]
            if not pts:
                continue
            ns, ms, los, his = (list(c) for c in zip(*pts))
            (line,) = ax.plot(ns, ms, marker="o", ms=3, label=f"{method} (median)")
            ax.fill_between(ns, los, his, color=line.get_color(), alpha=0.2, lw=0)
            if method == "krop":
                _guide(ax, ns, ms, True, r"$c\,N \log_2 N$")
            if method == "dense":
                _guide(ax, ns, ms, False, r"$c\,N^2$")
        builds = [(n, t) for n, t in zip(sizes, results["dense_build_ms"]) if t is not None]
        if builds:
            ax.plot([p[0] for p in builds], [p[1] for p in builds], ls=":", color="gray", label="dense build")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("clean-up time (ms); band: min to max")
        ax.set_title(f"batch {b} ({results['backend']}, {config.repeats} calls)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    save_figure(fig, out_dir / "krop_timing.png")

    lines = []
    for b in batches:
        headers = ["N"] + [f"{m} ms" for m in methods] + [f"dense/{m}" for m in results["speedup_over_dense"]]
        rows = []
        for j, n in enumerate(sizes):
            row = [n]
            for m in methods:
                med, lo = results["time_ms"][m][str(b)][j], results["min_time_ms"][m][str(b)][j]
                row.append("-" if med is None else f"{med:.4g} ({lo:.4g})")
            row += [results["speedup_over_dense"][m][str(b)][j] for m in results["speedup_over_dense"]]
            rows.append(["-" if v is None else v for v in row])
        lines += [
            f"Clean-up time, batch {b}: median (minimum) of {config.repeats} interleaved calls, ms; speedups from the "
            "medians:",
            "",
            markdown_table(headers, rows),
            "",
        ]
    store_rows = [
        [n]
        + ["-" if results["storage"][m][j] is None else results["storage"][m][j] for m in methods]
        + ["-" if results["dense_build_ms"][j] is None else results["dense_build_ms"][j]]
        for j, n in enumerate(sizes)
    ]
    checks = []
    for m, per_size in results["matches_dense_argmax"].items():
        done = [ok for ok in per_size if ok is not None]
        checks.append(f"{m}: {'yes' if done and all(done) else 'NO' if done else 'not checked'}")
    machine = results["machine"]
    lines += [
        "Stored numbers per codebook and dense build time (ms):",
        "",
        markdown_table(["N"] + methods + ["dense build ms"], store_rows),
        "",
        f"Clean-up equals the float64 argmax over the codebook's dense matrix (N <= {CHECK_MAX_SIZE}): "
        + ", ".join(checks)
        + ".",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, load {machine['load_average']} before and "
        f"{machine['load_average_after']} after; allocator settings {machine['malloc_env'] or 'glibc defaults'}.",
        "",
        "![timing](krop_timing.png)",
    ]
    return "\n".join(lines)
