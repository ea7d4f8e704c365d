"""The DrDAM retrieval experiment's report: Hamming error against Y and beta over finished descents, convergence
fractions, and a table from the results.

References: as in :mod:`dammem.experiments.drdam.retrieval`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.drdam.common import QUERY_SETS, SET_LABELS
from dammem.experiments.drdam.retrieval import Config

__all__ = ["report", "reproduces", "PROSE_CONSTANTS"]

PROSE_CONSTANTS = ("0.5",)  # Delta_H of unrelated bits


def _num(v) -> float:
    return float("nan") if v is None or (isinstance(v, str) and v == "nan") else float(v)


def _figure(results: dict, out_dir: Path) -> None:
    plt = pyplot()
    ys = np.asarray(results["num_features"], np.float64)
    dims, betas = results["dims"], results["betas"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(betas)))
    shape = (len(QUERY_SETS), len(dims))
    fig, axes = plt.subplots(*shape, figsize=(3.4 * shape[1], 2.8 * shape[0]), squeeze=False)
    for r, s in enumerate(QUERY_SETS):
        for c, d in enumerate(dims):
            ax = axes[r, c]
            cell = results["hamming_error"][str(d)][s]
            for b, beta in enumerate(betas):
                mean, sem = np.asarray(cell["mean"][b], np.float64), np.asarray(cell["sem"][b], np.float64)
                ax.errorbar(ys, mean, yerr=sem, ls=":", marker=".", ms=3, lw=0.8, color=colors[b], alpha=0.6,
                            label=f"beta={beta:g}, all queries")  # fmt: skip
                done = np.asarray([_num(v) for v in results["hamming_error_finished"][str(d)][s][b]])
                ax.plot(ys, done, "-o", ms=3, color=colors[b], label=f"beta={beta:g}, both converged")
            ax.axhline(0.5, color="red", ls="--", lw=1, label="unrelated bits (0.5)")
            ax.set_xscale("log")
            ax.set_xticks(ys, [f"{y:g}" for y in ys], fontsize=7)  # the measured Y only: no crowded minor labels
            ax.minorticks_off()
            ax.set_ylim(-0.02, 0.65)
            ax.set_title(f"queries {SET_LABELS[s]}, D={d}", fontsize=8)
            if c == 0:
                ax.set_ylabel("Delta_H (fraction of bits)", fontsize=8)
            if r == len(QUERY_SETS) - 1:
                ax.set_xlabel("random projections Y")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False)
    fig.suptitle(
        f"DrDAM vs MrDAM fixed points (eq. 15), K = {results['num_memories']}, "
        f"{results['num_queries']} queries per set",
        fontsize=9,
    )
    save_figure(fig, out_dir / "drdam_retrieval.png")


def report(config: Config, results: dict, out_dir: Path, *, figures: bool = True) -> str:
    if figures:
        _figure(results, out_dir)
    ys = np.asarray(results["num_features"], np.float64)
    dims, betas = results["dims"], results["betas"]
    rows = []
    for d in dims:
        for b, beta in enumerate(betas):
            row = [d, f"{beta:g}"]
            for s in QUERY_SETS:
                done = results["hamming_error_finished"][str(d)][s][b]
                row += [_num(done[0]), _num(done[-1])]
            row.append(float(results["hamming_error"][str(d)]["near"]["mean"][b][-1]))
            row.append(float(results["mrdam_converged"][str(d)]["near"][b]))
            row.append(float(results["drdam_converged"][str(d)]["near"][b][-1]))
            row.append(float(results["both_converged"][str(d)]["near"][b][-1]))
            row.append(float(results["mrdam_recall"][str(d)]["near"][b]))
            rows.append(row)
    y0, y1 = int(ys[0]), int(ys[-1])
    headers = ["D", "beta"]
    for s in QUERY_SETS:
        headers += [f"Delta_H {s}, finished (Y={y0})", f"Delta_H {s}, finished (Y={y1})"]
    headers += [
        f"Delta_H near, all (Y={y1})",
        "MrDAM converged (near)",
        f"DrDAM converged (near, Y={y1})",
        f"both converged (near, Y={y1})",
        "MrDAM recalls (near)",
    ]
    table = markdown_table(headers, rows, floatfmt=".3g")
    conv = {
        "MrDAM": np.mean([np.mean(results["mrdam_converged"][str(d)][s]) for d in dims for s in QUERY_SETS]),
        "DrDAM": np.mean([np.mean(results["drdam_converged"][str(d)][s]) for d in dims for s in QUERY_SETS]),
        "both": np.mean([np.mean(results["both_converged"][str(d)][s]) for d in dims for s in QUERY_SETS]),
    }
    lines = [
        f"- converged ({results['criterion']}): MrDAM {conv['MrDAM']:.1%}, DrDAM {conv['DrDAM']:.1%}, both "
        f'{conv["both"]:.1%} of all (D, beta, Y, set, query) descents; "finished" columns average Delta_H over the '
        "queries where both converged (blank: none did).",
    ]
    at = [_num(results["hamming_error_finished"][str(d)][s][b][-1]) for d in dims for b in range(len(betas))
          for s in ("at", "near")]  # fmt: skip
    far = [_num(results["hamming_error_finished"][str(d)]["far"][b][-1]) for d in dims for b in range(len(betas))]
    lines.append(
        f"- at Y={y1}, finished Delta_H averages {np.nanmean(at):.3g} for queries at/near the stored patterns and "
        f"{np.nanmean(far):.3g} for far queries (paper, Fig. 4A: lowest at/near stored patterns, about 0.5 at high "
        "beta and D)."
    )
    return (
        f"`{config.kind}` features, `{config.projection}` projections; K = {config.num_memories} stored, "
        f"{config.num_queries} queries per set, {config.num_trials} trial(s) (error bars: standard error over "
        f"trials); D = {list(dims)}; descent with step {config.step_size:g} until {results['criterion']}. Delta_H "
        '(eq. 15) is the fraction of bits on which the binarised DrDAM and MrDAM fixed points differ; "MrDAM '
        'recalls" is the fraction of near queries whose MrDAM fixed point is the stored pattern.\n\n'
        f"{table}\n\n" + "\n".join(lines) + "\n\n![retrieval](drdam_retrieval.png)\n"
    )


def _finished_at_largest_y(results: dict, sets) -> float:
    values = [_num(results["hamming_error_finished"][str(d)][s][b][-1]) for d in results["dims"]
              for b in range(len(results["betas"])) for s in sets]  # fmt: skip
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")


def reproduces(config: Config, results: dict) -> list[dict]:
    """Verdict on Hoover et al. (2024), Fig. 4A (the paper gives curves, no numbers: at most qualitative): qualitative
    when, over descents that both converged at the largest Y, Delta_H at/near the stored patterns is below Delta_H
    far from them, and the near-query Delta_H at the lowest beta falls from the smallest to the largest Y in every D."""
    near_far = _finished_at_largest_y(results, ("at", "near")), _finished_at_largest_y(results, ("far",))
    falls = [
        _num(results["hamming_error_finished"][str(d)]["near"][0][-1])
        < _num(results["hamming_error_finished"][str(d)]["near"][0][0])
        for d in results["dims"]
    ]
    ok = near_far[0] < near_far[1] and all(falls)
    both = np.mean([np.mean(results["both_converged"][str(d)][s]) for d in results["dims"] for s in QUERY_SETS])
    return [
        {
            "target": "Hoover et al. (2024), Fig. 4A",
            "verdict": "qualitative" if ok else "not",
            "evidence": f"finished Delta_H at Y = {results['num_features'][-1]}: {near_far[0]:.3g} at/near vs "
            f"{near_far[1]:.3g} far; near-query Delta_H at beta = {results['betas'][0]:g} falls with Y in "
            f"{sum(falls)} of {len(falls)} D; both descents converged in {both:.1%} of cases; K = "
            f"{results['num_memories']}, {results['num_queries']} queries, D up to {max(results['dims'])} (paper: "
            "K = 500, 500 queries, D up to 1000).",
        }
    ]
