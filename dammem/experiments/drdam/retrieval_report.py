"""The DrDAM retrieval experiment's report: Hamming error against Y and beta, and a table from the results.

References: as in :mod:`dammem.experiments.drdam.retrieval`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.drdam.common import QUERY_SETS, SET_LABELS
from dammem.experiments.drdam.retrieval import Config

__all__ = ["report"]


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()
    ys = np.asarray(results["num_features"], np.float64)
    dims, betas = results["dims"], results["betas"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(betas)))
    shape = (len(QUERY_SETS), len(dims))
    fig, axes = plt.subplots(*shape, figsize=(3.6 * shape[1], 2.9 * shape[0]), squeeze=False)
    for r, s in enumerate(QUERY_SETS):
        for c, d in enumerate(dims):
            ax = axes[r, c]
            cell = results["hamming_error"][str(d)][s]
            for b, beta in enumerate(betas):
                mean, sem = np.asarray(cell["mean"][b]), np.asarray(cell["sem"][b])
                ax.errorbar(ys, mean, yerr=sem, marker="o", ms=3, color=colors[b], label=f"beta={beta:g}")
            ax.axhline(0.5, color="red", ls="--", lw=1, label="unrelated bits")
            ax.set_xscale("log", base=2)
            ax.set_ylim(-0.02, 0.65)
            ax.set_title(f"queries {SET_LABELS[s]}, D={d}", fontsize=8)
            if c == 0:
                ax.set_ylabel("Hamming error Delta_H")
            if r == len(QUERY_SETS) - 1:
                ax.set_xlabel("random projections Y")
    axes[0, 0].legend(fontsize=6)
    save_figure(fig, out_dir / "drdam_retrieval.png")

    rows = []
    for d in dims:
        for b, beta in enumerate(betas):
            row = [d, f"{beta:g}"]
            for s in QUERY_SETS:
                mean = results["hamming_error"][str(d)][s]["mean"][b]
                row += [float(mean[0]), float(mean[-1])]
            row.append(float(results["mrdam_recall"][str(d)]["near"][b]))
            row.append(float(np.mean(results["drdam_converged"][str(d)]["near"][b][-1])))
            rows.append(row)
    y0, y1 = int(ys[0]), int(ys[-1])
    headers = ["D", "beta"]
    for s in QUERY_SETS:
        headers += [f"Delta_H {s} (Y={y0})", f"Delta_H {s} (Y={y1})"]
    headers += ["MrDAM recalls (near)", f"DrDAM converged (near, Y={y1})"]
    table = markdown_table(headers, rows, floatfmt=".3g")
    return (
        f"`{config.kind}` features, `{config.projection}` projections; K = {config.num_memories} stored, "
        f"{config.num_queries} queries per set, {config.num_trials} trials; descent with step {config.step_size:g} "
        f"for at most {config.max_steps} steps (tol {config.tol:g}). Delta_H (eq. 15) is the fraction of bits on "
        "which the binarised DrDAM and MrDAM fixed points differ; \"MrDAM recalls\" is the fraction of near queries "
        "whose MrDAM fixed point is the stored pattern.\n\n"
        f"{table}\n\n![retrieval](drdam_retrieval.png)\n"
    )
