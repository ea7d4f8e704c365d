"""The DrDAM approximation experiment's report: error curves against Y and sentences computed from the results.

References: as in :mod:`dammem.experiments.drdam.approx`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.drdam.approx import Config
from dammem.experiments.drdam.common import QUERY_SETS, SET_LABELS

__all__ = ["report"]


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()
    ys = np.asarray(results["num_features"], np.float64)
    dims, betas = results["dims"], results["betas"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(betas)))
    for metric, label in (("mae_energy", "energy"), ("mae_gradient", "gradient")):
        guess_metric = "guess_" + label
        fig, axes = plt.subplots(
            len(QUERY_SETS), len(dims), figsize=(3.6 * len(dims), 2.9 * len(QUERY_SETS)), squeeze=False
        )
        for r, s in enumerate(QUERY_SETS):
            for c, d in enumerate(dims):
                ax = axes[r, c]
                cell = results[metric][str(d)][s]
                for b, beta in enumerate(betas):
                    mean, sem = np.asarray(cell["mean"][b]), np.asarray(cell["sem"][b])
                    ax.errorbar(ys, mean, yerr=sem, marker="o", ms=3, color=colors[b], label=f"beta={beta:g}")
                guess = np.asarray(results[guess_metric][str(d)][s]["mean"]).mean(-1).max()
                ax.axhline(guess, color="red", ls="--", lw=1, label="random guess")
                first = float(cell["mean"][0][0])
                if first > 0:
                    ax.plot(ys, first * np.sqrt(ys[0] / ys), ":", color="gray", label="~ sqrt(D / Y)")
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_title(f"queries {SET_LABELS[s]}, D={d}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(f"MAE of the {label}")
                if r == len(QUERY_SETS) - 1:
                    ax.set_xlabel("random projections Y")
        axes[0, 0].legend(fontsize=6)
        save_figure(fig, out_dir / f"drdam_approx_{label}.png")

    rows = []
    for d in dims:
        for b, beta in enumerate(betas):
            row = [d, f"{beta:g}"]
            for s in QUERY_SETS:
                row.append(float(results["mae_energy"][str(d)][s]["mean"][b][-1]))
            near = results["mae_gradient"][str(d)]["near"]["mean"][b]
            row += [float(near[0]), float(near[-1]), results["slopes"]["mae_gradient"][str(d)]["near"][b]]
            row.append(float(np.mean(results["guess_gradient"][str(d)]["near"]["mean"][b])))
            row.append(float(results["clip_fraction"][str(d)]["far"]["mean"][b][-1]))
            rows.append(row)
    y0, y1 = int(ys[0]), int(ys[-1])
    table = markdown_table(
        [
            "D",
            "beta",
            f"MAE_E at (Y={y1})",
            f"MAE_E near (Y={y1})",
            f"MAE_E far (Y={y1})",
            f"MAE_grad near (Y={y0})",
            f"MAE_grad near (Y={y1})",
            "slope in Y",
            "random guess (grad, near)",
            f"far on clip (Y={y1})",
        ],
        rows,
        floatfmt=".3g",
    )
    t = results["trends"]
    lines = [
        f"- error falls from Y={y0} to Y={y1}: {t['mae_energy']['falls_with_y']:.0%} of energy curves, "
        f"{t['mae_gradient']['falls_with_y']:.0%} of gradient curves (D, beta, query set);",
        f"- error rises with beta (at Y={y1}, each beta step): {t['mae_energy']['rises_with_beta']:.0%} (energy), "
        f"{t['mae_gradient']['rises_with_beta']:.0%} (gradient);",
        f"- lowest at the stored patterns (at <= near, far at Y={y1}): {t['mae_energy']['lowest_at_stored']:.0%} "
        f"(energy), {t['mae_gradient']['lowest_at_stored']:.0%} (gradient) of (D, beta).",
    ]
    return (
        f"`{config.kind}` features, `{config.projection}` projections; K = {config.num_memories} stored patterns, "
        f"{config.num_trials} trials; Y = {list(results['num_features'])} projections "
        f"({'2Y' if config.kind in ('sincos', 'expexp') else 'Y'} features). MAE of eq. 14; "
        "\"slope in Y\" is the log-log slope of the near-query gradient error (Corollary 1: -0.5 while the "
        "approximation is better than a random guess); \"far on clip\": fraction of far queries whose kernel-sum "
        "estimate fell below the log clip.\n\n"
        f"{table}\n\n" + "\n".join(lines) + "\n\n![energy](drdam_approx_energy.png)\n\n"
        "![gradient](drdam_approx_gradient.png)\n"
    )
