"""The DrDAM image-completion experiment's report: completions, parameter counts and a table from the results.

References: as in :mod:`dammem.experiments.drdam.images`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.drdam.images import IMAGE_SHAPE, Config

__all__ = ["report"]


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()
    ys = [str(r["num_features"]) for r in results["per_y"]]
    columns = [("query", results["shown"]["query"])]
    columns += [(f"DrDAM Y={y}", results["shown"]["drdam"][y]) for y in ys]
    columns += [("MrDAM", results["shown"]["mrdam"]), ("truth", results["shown"]["truth"])]
    n = config.num_shown
    fig, axes = plt.subplots(n, len(columns), figsize=(1.5 * len(columns), 1.5 * n), squeeze=False)
    for c, (title, images) in enumerate(columns):
        for r in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(np.asarray(images[r], np.float64).reshape(IMAGE_SHAPE), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
    save_figure(fig, out_dir / "drdam_images.png")

    k_d = results["mrdam_parameters"]
    rows = [["MrDAM", "-", k_d, "1", f"{results['mrdam_mae_vs_truth']:.4f}", "-", results["mrdam_max_steps_taken"]]]
    for r in results["per_y"]:
        rows.append(
            [
                "DrDAM",
                r["num_features"],
                f"{r['drdam_parameters']} (+{r['feature_storage']} stored feature numbers)",
                f"{r['drdam_parameters'] / k_d:.2f}",
                f"{np.mean(r['mae_vs_truth']):.4f}",
                f"{np.mean(r['mae_vs_mrdam']):.4f}",
                r["max_steps_taken"],
            ]
        )
    table = markdown_table(
        ["memory", "Y", "parameters", "params / (K D)", "hidden MAE vs truth", "hidden MAE vs MrDAM", "steps"], rows
    )
    return (
        f"{config.num_images} CIFAR-10 images (D = {results['image_dim']}) stored at beta = {config.beta:g}; bottom "
        f"{config.hidden_fraction:.0%} of rows hidden (zeros) and the rest clamped; `{config.kind}` features with "
        f"`{config.projection}` projections; descent with step {config.step_size:g}, at most {config.max_steps} "
        f"steps. MAE over hidden pixels in [0, 1] units (the occluded query scores "
        f"{results['query_mae_vs_truth']:.4f}); {config.num_trials} feature draw(s).\n\n{table}\n\n"
        "![completions](drdam_images.png)\n"
    )
