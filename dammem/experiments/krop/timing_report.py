"""The clean-up timing experiment's report: time against N with fitted N log N and N^2 guides, the dense build time
on its own axis, per-size speedups and sentences computed from the results.

A call's time has a floor that does not depend on the work (dispatch, argument handling): the report takes the
smallest median time of the run as that floor and calls a point *work-dominated* when its median is at least
:data:`WORK_FACTOR` times the floor; points below are drawn hollow and called overhead-bound. The guides and the
headline speedups use the work-dominated points only, and a speedup is stated as the median over sizes with its range
(never the largest single size).

References: as in :mod:`dammem.experiments.krop.timing`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.krop.timing import CHECK_MAX_SIZE, Config

__all__ = ["report", "reproduces", "overhead_ms", "work_dominated", "fit_guide", "loglog_slope"]

WORK_FACTOR = 10.0
"""A point is work-dominated when its median time is at least this many times the run's smallest median."""
SLOPES = {"krop": (0.8, 1.4), "dense": (1.6, 2.4)}
"""Log-log slopes of time against N that agree with N log N (about 1.1 over 2^4..2^15) and N^2."""


def overhead_ms(results: dict) -> float:
    """The call-overhead floor: the smallest median time of any method, size and batch."""
    return min(t for per_b in results["time_ms"].values() for ts in per_b.values() for t in ts if t is not None)


def work_dominated(times, floor: float) -> np.ndarray:
    """Mask of the times (None: not run) at least :data:`WORK_FACTOR` times the floor."""
    return np.asarray([t is not None and t >= WORK_FACTOR * floor for t in times], dtype=bool)


def fit_guide(sizes, times, shape: str) -> float | None:
    """The constant ``c`` of ``c N log2 N`` (``shape="nlogn"``) or ``c N^2`` (``"n2"``) through the given points:
    least squares in log space (the geometric mean of time / shape); None without points."""
    n = np.asarray(sizes, dtype=np.float64)
    if n.size == 0:
        return None
    form = n * np.log2(n) if shape == "nlogn" else n**2
    return float(np.exp(np.mean(np.log(np.asarray(times, dtype=np.float64)) - np.log(form))))


def loglog_slope(sizes, times) -> float | None:
    """Least-squares slope of log time against log N; None with fewer than two points."""
    if len(sizes) < 2:
        return None
    return float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)[0])


def _work_points(results: dict, method: str, b: int, floor: float) -> tuple[list[int], list[float]]:
    times = results["time_ms"][method][str(b)]
    mask = work_dominated(times, floor)
    return [n for n, m in zip(results["sizes"], mask) if m], [t for t, m in zip(times, mask) if m]


def _plot(config: Config, results: dict, out_dir: Path, floor: float) -> None:
    plt = pyplot()
    sizes, batches = results["sizes"], results["batches"]
    methods = list(results["time_ms"])
    builds = [(n, t) for n, t in zip(sizes, results["dense_build_ms"]) if t is not None]
    ncols = len(batches) + (1 if builds else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.6), squeeze=False)
    handles, labels = {}, {}
    for ax, b in zip(axes[0], batches):
        for k, method in enumerate(methods):
            color = f"C{k}"
            med, lo, hi = (results[key][method][str(b)] for key in ("time_ms", "min_time_ms", "max_time_ms"))
            pts = [(n, m, a, z) for n, m, a, z in zip(sizes, med, lo, hi) if m is not None]
            if not pts:
                continue
            ns, ms, los, his = (np.asarray(c, dtype=float) for c in zip(*pts))
            work = ms >= WORK_FACTOR * floor
            (line,) = ax.plot(ns, ms, "-", color=color, lw=1)
            ax.plot(ns[work], ms[work], "o", ms=4, color=color)
            ax.plot(ns[~work], ms[~work], "o", ms=4, color=color, mfc="white")
            ax.fill_between(ns, los, his, color=color, alpha=0.2, lw=0)
            handles[method], labels[method] = line, f"{method} (median; band min-max)"
            shape = {"krop": "nlogn", "dense": "n2"}.get(method)
            if shape:
                wn, wt = _work_points(results, method, b, floor)
                c = fit_guide(wn, wt, shape)
                if c is not None:
                    form = ns * np.log2(ns) if shape == "nlogn" else ns**2
                    (g,) = ax.plot(ns, c * form, ls="--", lw=0.9, color=color)
                    key = f"guide {method}"
                    handles[key] = g
                    labels[key] = (
                        "c N log2 N" if shape == "nlogn" else "c N^2"
                    ) + f" fitted to {method}'s filled points"
        ax.axhline(WORK_FACTOR * floor, color="gray", lw=0.7, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("codebook size N")
        ax.set_ylabel("clean-up time per call (ms)")
        bound = " (overhead-bound)" if b == 1 else ""
        ax.set_title(
            f"batch {b}{bound}, {config.repeats} calls, {results['backend']}\nhollow: under {WORK_FACTOR:g}x the "
            f"smallest call ({floor:.3g} ms)",
            fontsize=9,
        )
    if builds:
        ax = axes[0][-1]
        ax.plot([p[0] for p in builds], [p[1] for p in builds], "o-", color=f"C{methods.index('dense')}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("codebook size N")
        ax.set_ylabel("dense codebook build time (ms)")
        ax.set_title("drawing the dense N x N Gaussian codebook\n(compilation excluded)", fontsize=9)
    fig.legend(list(handles.values()), list(labels.values()), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=3, fontsize=8, frameon=False)  # fmt: skip
    save_figure(fig, out_dir / "krop_timing.png")


def _speedup_sentences(results: dict, floor: float) -> list[str]:
    """Per batch and fast method: the median (and range) over the work-dominated sizes of dense / method."""
    out = []
    for m, per_b in results["speedup_over_dense"].items():
        for b in results["batches"]:
            dense, fast = results["time_ms"]["dense"][str(b)], results["time_ms"][m][str(b)]
            both = work_dominated(dense, floor) & work_dominated(fast, floor)
            ratios = [r for r, ok in zip(per_b[str(b)], both) if ok and r is not None]
            ns = [n for n, ok, r in zip(results["sizes"], both, per_b[str(b)]) if ok and r is not None]
            if not ratios:
                out.append(
                    f"- {m}, batch {b}: at no N are both its and the dense clean-up's times at least "
                    f"{WORK_FACTOR:g}x the smallest call ({floor:.3g} ms), so these times measure call overhead, "
                    "not the clean-up's work."
                )
                continue
            out.append(
                f"- {m}, batch {b}: dense / {m} time is {np.median(ratios):.3g} (median over the {len(ratios)} "
                f"work-dominated N = {ns[0]}..{ns[-1]}; from {min(ratios):.3g} to {max(ratios):.3g})."
            )
    return out


def _slope_sentences(results: dict, floor: float) -> list[str]:
    out = []
    for method, shape in (("krop", "N log2 N"), ("dense", "N^2")):
        if method not in results["time_ms"]:
            continue
        for b in results["batches"]:
            wn, wt = _work_points(results, method, b, floor)
            slope = loglog_slope(wn, wt)
            if slope is None:
                out.append(f"- {method}, batch {b}: fewer than two work-dominated sizes; no slope fitted.")
                continue
            c = fit_guide(wn, wt, "nlogn" if method == "krop" else "n2")
            form = np.asarray(wn, float) * np.log2(wn) if method == "krop" else np.asarray(wn, float) ** 2
            spread = float(np.exp(np.max(np.abs(np.log(np.asarray(wt) / (c * form))))))
            out.append(
                f"- {method}, batch {b}: over the {len(wn)} work-dominated N = {wn[0]}..{wn[-1]} the time grows like "
                f"N^{slope:.2f} (log-log least squares); the fitted {c:.3g} {shape} ms guide is within a factor "
                f"{spread:.2f} of every one of them."
            )
    return out


def report(config: Config, results: dict, out_dir: Path, *, figures: bool = True) -> str:
    floor = overhead_ms(results)
    if figures:
        _plot(config, results, out_dir, floor)
    sizes, batches = results["sizes"], results["batches"]
    methods = list(results["time_ms"])
    lines = [
        f"The smallest call of the run takes {floor:.3g} ms (median); a time under {WORK_FACTOR:g}x that "
        f"({WORK_FACTOR * floor:.3g} ms) is marked `*`: overhead-bound, it measures the call, not the clean-up's "
        "work. Batch 1 is overhead-bound wherever it is marked.",
        "",
    ]
    for b in batches:
        headers = ["N"] + [f"{m} ms" for m in methods] + [f"dense/{m}" for m in results["speedup_over_dense"]]
        rows = []
        for j, n in enumerate(sizes):
            row = [n]
            for m in methods:
                med, lo = results["time_ms"][m][str(b)][j], results["min_time_ms"][m][str(b)][j]
                star = "*" if med is not None and med < WORK_FACTOR * floor else ""
                row.append("-" if med is None else f"{med:.4g}{star} ({lo:.4g})")
            row += [results["speedup_over_dense"][m][str(b)][j] for m in results["speedup_over_dense"]]
            rows.append(["-" if v is None else v for v in row])
        lines += [
            f"Clean-up time, batch {b}: median (minimum) of {config.repeats} interleaved calls, ms; speedups are "
            "ratios of the medians at each N:",
            "",
            markdown_table(headers, rows),
            "",
        ]
    lines += [*_speedup_sentences(results, floor), *_slope_sentences(results, floor), ""]
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
        "Stored numbers per codebook and the time to draw the dense codebook (ms; its own panel in the figure):",
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


def reproduces(config: Config, results: dict) -> list[dict]:
    """Verdict on Liu et al. (2025)'s runtime comparison (KROP's clean-up scales better than a dense codebook's):
    quantitative when, at the largest batch, the work-dominated times grow with log-log slopes in :data:`SLOPES`
    (N log N and N^2) and KROP is faster at the largest N both ran; qualitative when only the latter holds."""
    if not {"krop", "dense"} <= set(results["time_ms"]):
        return []
    floor = overhead_ms(results)
    b = max(results["batches"])
    slopes = {m: loglog_slope(*_work_points(results, m, b, floor)) for m in ("krop", "dense")}
    dense, krop = results["time_ms"]["dense"][str(b)], results["time_ms"]["krop"][str(b)]
    common = [j for j, (d, k) in enumerate(zip(dense, krop)) if d is not None and k is not None]
    if not common:
        return []
    j = common[-1]
    faster = krop[j] < dense[j]
    fits = all(s is not None and SLOPES[m][0] <= s <= SLOPES[m][1] for m, s in slopes.items())
    verdict = "quantitative" if faster and fits else "qualitative" if faster else "not"
    shown = ", ".join(f"{m} N^{s:.2f}" if s is not None else f"{m} no fit" for m, s in slopes.items())
    return [
        {
            "target": "Liu et al. (2025), clean-up runtime vs N",
            "verdict": verdict,
            "evidence": f"at batch {b} the work-dominated times grow like {shown}; at N = {results['sizes'][j]} "
            f"KROP takes {krop[j]:.3g} ms against dense {dense[j]:.3g} ms (absolute times are this machine's).",
        }
    ]
