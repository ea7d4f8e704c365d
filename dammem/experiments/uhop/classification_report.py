"""The report of the U-Hop classification experiment: learning curves, Table 1 of Wu et al. (2024) and findings,
every sentence computed from the results (see :mod:`dammem.experiments.uhop.classification` for the protocol).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure

if TYPE_CHECKING:
    from dammem.experiments.uhop.classification import Config

__all__ = ["report"]

_COLORS = {"modern_hopfield": "tab:blue", "sparse_hopfield": "tab:red"}


def _style(name: str) -> dict:
    base = name.removesuffix("+uhop")
    return {"color": _COLORS[base], "ls": "-" if name.endswith("+uhop") else "--"}


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}%" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}%"


def _pair_sentences(results: dict) -> tuple[list[str], int, int]:
    summary, models, curves = results["summary"], results["models"], results["curves"]
    sentences, wins, pairs = [], 0, 0
    for name in models:
        plain = name.removesuffix("+uhop")
        if not name.endswith("+uhop") or plain not in models:
            continue
        u, p = summary[name], summary[plain]
        pairs += 1
        at_least = u["max_train_accuracy_mean"] >= p["max_train_accuracy_mean"]
        wins += at_least
        per_repeat = np.asarray(curves[name]["max_train_accuracy"]) >= np.asarray(curves[plain]["max_train_accuracy"])
        diff = 100 * (u["max_train_accuracy_mean"] - p["max_train_accuracy_mean"])
        test_diff = 100 * (u["final_test_accuracy_mean"] - p["final_test_accuracy_mean"])
        sentences.append(
            f"{name} reaches a max train accuracy of {_pct(u['max_train_accuracy_mean'])} against "
            f"{_pct(p['max_train_accuracy_mean'])} for {plain} (means over {results['repeats']} repeat(s); "
            f"{diff:+.1f} points: U-Hop {'>=' if at_least else '<'} plain; at least the plain model's in "
            f"{int(per_repeat.sum())} of {len(per_repeat)} repeat(s)); its final test accuracy is "
            f"{_pct(u['final_test_accuracy_mean'])} against {_pct(p['final_test_accuracy_mean'])} "
            f"({test_diff:+.1f} points)."
        )
        sentences.append(
            f"Alg. 2 moved the separation loss of {name}'s test tokens from {u['initial_separation_loss_mean']:.3f} "
            f"to {u['final_separation_loss_mean']:.3f}; {plain}'s tokens end at {p['final_separation_loss_mean']:.3f} "
            "(without a kernel). The kernel's singular values lie in "
            f"[{u['initial_kernel_min_singular_value_mean']:.3g}, {u['initial_kernel_max_singular_value_mean']:.3g}] "
            "at the start and in "
            f"[{u['final_kernel_min_singular_value_mean']:.3g}, {u['final_kernel_max_singular_value_mean']:.3g}] after "
            "the last epoch (means over the repeats; a full-rank kernel is Assumption 2.1 of Wu et al. (2024))."
        )
    return sentences, wins, pairs


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()
    models, curves, summary = results["models"], results["curves"], results["summary"]
    epochs = np.arange(1, results["epochs"] + 1)
    panels = (("train_accuracy", "train accuracy"), ("test_accuracy", "test accuracy"),
              ("train_loss", "train loss"), ("test_loss", "test loss"))  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (field, title) in zip(axes, panels):
        for name in models:
            values = np.asarray(curves[name][field])  # (repeats, epochs)
            ax.plot(epochs, values.mean(axis=0), lw=1.4, label=name, **_style(name))
            if len(values) > 1:
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), alpha=0.12,
                                color=_style(name)["color"])  # fmt: skip
        ax.set_title(f"{title} (mean, band: min-max over repeats)", fontsize=8)
        ax.set_xlabel("epoch")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save_figure(fig, out_dir / "curves.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name in models:
        values = np.concatenate(
            [np.asarray(curves[name]["initial_separation_loss"])[:, None], np.asarray(curves[name]["separation_loss"])],
            axis=1,
        )
        ax.plot(np.arange(0, results["epochs"] + 1), values.mean(axis=0), lw=1.4, label=name, **_style(name))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"separation loss ({config.separation_loss}, t = {config.temperature:g})")
    ax.set_title("test images' patch tokens under each model's kernel (mean over repeats)", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save_figure(fig, out_dir / "separation_loss.png")

    rows = [
        [name, _pct(summary[name]["max_train_accuracy_mean"], summary[name]["max_train_accuracy_std"]),
         _pct(summary[name]["final_test_accuracy_mean"], summary[name]["final_test_accuracy_std"]),
         _pct(summary[name]["max_test_accuracy_mean"], summary[name]["max_test_accuracy_std"]),
         f"{summary[name]['final_separation_loss_mean']:.3f}"]
        for name in models
    ]  # fmt: skip
    table = markdown_table(
        ["model", "max train acc.", "test acc. (last epoch)", "max test acc.", "separation loss (last epoch)"], rows
    )
    sentences, wins, pairs = _pair_sentences(results)
    setup = (
        f"Data: {results['data_source']}: {results['train_size']} training and {results['test_size']} test images "
        f"(disjoint). Model: {results['num_patches']} patches of {config.patch_size} x {config.patch_size} pixels, "
        f"embedding {results['embed_dim']}, {config.num_heads} head(s); {results['epochs']} epochs of "
        f"{results['steps_per_epoch']} steps, batch {results['batch_size']}, Adam {config.learning_rate:g}; U-Hop: "
        f"{config.inner_steps} separation step(s) per task step (SGD {config.kernel_learning_rate:g}, "
        f"{config.separation_loss} loss, t = {config.temperature:g}), kernel initialised as {config.kernel_init}. "
        f"Mean ± standard deviation over {results['repeats']} repeat(s) (initial parameters and mini-batch orders; "
        "each repeat gives every model the same ones)."
    )
    verdict = (
        f"U-Hop's mean max train accuracy is at least the plain model's in {wins} of {pairs} pair(s)." if pairs else ""
    )
    return "\n\n".join(
        [
            "## Table 1 (Wu et al. (2024)): max train accuracy and test accuracy",
            setup,
            table,
            verdict,
            *sentences,
            "Curves (Fig. 4 of Wu et al. (2024)): `curves.png`; the separation loss per epoch: `separation_loss.png`.",
        ]
    )
