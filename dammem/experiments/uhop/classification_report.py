"""The report of the U-Hop classification experiment: learning curves, the rows of Table 1 of Wu et al. (2024) beside
the paper's numbers, the kernel's singular values and a verdict, every sentence computed from the results (see
:mod:`dammem.experiments.uhop.classification` for the protocols).

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

__all__ = ["report", "reproduces", "PAPER_TABLE1", "PAPER_SIZES", "verdict"]

PAPER_TABLE1: dict[str, tuple[float, float]] = {
    "modern_hopfield": (56.0, 52.2),
    "modern_hopfield+uhop": (64.6, 55.2),
    "sparse_hopfield": (55.9, 52.0),
    "sparse_hopfield+uhop": (66.4, 55.4),
}
"""Wu et al. (2024), Table 1, CIFAR10 columns: (max train accuracy, test accuracy) in %."""
PAPER_SIZES = {"train_size": 50000, "test_size": 10000, "embed_dim": 512, "epochs": 25, "batch_size": 128}
"""The sizes of Table 1 (the CIFAR-10 splits; Wu et al. (2024), Table 5)."""
TOLERANCE = 2.0  # points of accuracy within which a measured row counts as the paper's number

_COLORS = {"modern_hopfield": "tab:blue", "sparse_hopfield": "tab:red"}


def _style(name: str) -> dict:
    base = name.removesuffix("+uhop")
    return {"color": _COLORS[base], "ls": "-" if name.endswith("+uhop") else "--"}


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}%" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}%"


def _sizes(results: dict) -> dict:
    return {k: results[k] for k in PAPER_SIZES}


def verdict(results: dict, protocol: str, dataset: str = "cifar10") -> tuple[str, str]:
    """(``quantitative`` / ``qualitative`` / ``not``, the reason), for one protocol's rows.

    Quantitative: the paper's sizes (:data:`PAPER_SIZES`) and every mean max train and test accuracy (last epoch)
    within :data:`TOLERANCE` points of Table 1. Qualitative: every U-Hop model's mean max train accuracy and test
    accuracy above its plain counterpart's (the paper's claim). Not: some of these comparisons fail (the reason
    counts them)."""
    summary = results["summary"][protocol]
    pairs = [(m, m.removesuffix("+uhop")) for m in results["models"]
             if m.endswith("+uhop") and m.removesuffix("+uhop") in results["models"]]  # fmt: skip
    if dataset != "cifar10" or not pairs:
        return "not", ("Table 1 is on CIFAR-10, this run on " + dataset) if pairs else "no U-Hop / plain pair ran"
    sizes = _sizes(results)
    if sizes == PAPER_SIZES and all(m in summary for m in PAPER_TABLE1):
        gaps = [abs(100 * summary[m][f"{f}_mean"] - PAPER_TABLE1[m][i]) for m in PAPER_TABLE1
                for i, f in enumerate(("max_train_accuracy", "final_test_accuracy"))]  # fmt: skip
        if max(gaps) <= TOLERANCE:
            return "quantitative", f"every number within {max(gaps):.1f} points of Table 1 at the paper's sizes"
    held = [
        summary[u][f"{f}_mean"] > summary[p][f"{f}_mean"]
        for u, p in pairs
        for f in ("max_train_accuracy", "final_test_accuracy")
    ]
    reason = f"U-Hop above the plain model in {sum(held)} of {len(held)} comparisons (max train and test accuracy)"
    return ("qualitative" if all(held) else "not"), reason


def reproduces(config: Config, results: dict) -> list[dict]:
    """One verdict per protocol (see :func:`verdict`), for the README's table."""
    out = []
    for protocol in results["protocols"]:
        level, reason = verdict(results, protocol, config.dataset)
        sizes = ", ".join(f"{k} {v}" for k, v in _sizes(results).items())
        out.append({"target": f"Wu et al. (2024), Table 1 (CIFAR-10), protocol {protocol}", "verdict": level,
                    "evidence": f"{reason}; sizes: {sizes}."})  # fmt: skip
    return out


def _figures(config: Config, results: dict, out_dir: Path) -> None:
    plt = pyplot()
    protocols, models, curves = results["protocols"], results["models"], results["curves"]
    epochs = np.arange(1, np.shape(curves[protocols[0]][models[0]]["train_accuracy"])[1] + 1)
    params = (
        f"CIFAR-10: {results['train_size']} train / {results['test_size']} test images, embedding "
        f"{results['embed_dim']}, {results['num_patches']} patches, batch {results['batch_size']}, "
        f"{results['repeats']} seeds (mean ± std)"
        if config.dataset == "cifar10"
        else f"{config.dataset}: {results['train_size']} train / {results['test_size']} test images, embedding "
        f"{results['embed_dim']}, batch {results['batch_size']}, {results['repeats']} seeds (mean ± std)"
    )
    panels = (("train_accuracy", "train accuracy (%)", 100), ("test_accuracy", "test accuracy (%)", 100),
              ("train_loss", "train loss (nats)", 1), ("test_loss", "test loss (nats)", 1))  # fmt: skip
    fig, axes = plt.subplots(len(protocols), 4, figsize=(16, 3.4 * len(protocols) + 1.0), squeeze=False)
    for row, protocol in zip(axes, protocols):
        for ax, (field, label, scale) in zip(row, panels):
            for name in models:
                values = scale * np.asarray(curves[protocol][name][field])  # (repeats, epochs)
                ax.errorbar(epochs, values.mean(axis=0), yerr=values.std(axis=0), lw=1.3, capsize=2, label=name,
                            **_style(name))  # fmt: skip
            ax.set_ylabel(label)
            ax.set_xlabel("epoch")
            ax.set_title(f"protocol {protocol}", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    # below the figure (save_figure lays out the axes and crops to what is drawn, the legend included)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(models), fontsize=8,
               frameon=False)  # fmt: skip
    fig.suptitle(f"Learning curves (Wu et al. (2024), Fig. 4 setting). {params}", fontsize=9)
    save_figure(fig, out_dir / "curves.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for protocol in protocols:
        for name in models:
            c = curves[protocol][name]
            values = np.concatenate([np.asarray(c["initial_separation_loss"])[:, None],
                                     np.asarray(c["separation_loss"])], axis=1)  # fmt: skip
            style = dict(_style(name), marker="o" if protocol == "algorithm2" else "s", ms=3)
            x = np.arange(0, len(epochs) + 1)
            axes[0].errorbar(x, values.mean(0), yerr=values.std(0), capsize=2, label=f"{protocol}: {name}", **style)
            if name.endswith("+uhop"):
                low = np.concatenate([np.asarray(c["initial_kernel_min_singular_value"])[:, None],
                                      np.asarray(c["kernel_min_singular_value"])], axis=1)  # fmt: skip
                axes[1].errorbar(x, low.mean(0), yerr=low.std(0), capsize=2, label=f"{protocol}: {name}", **style)
    axes[0].set_ylabel(f"separation loss ({config.separation_loss}, t = {config.temperature:g}; dimensionless)")
    axes[0].set_title(f"first {results['separation_images']} test images' patch tokens", fontsize=9)
    axes[1].set_ylabel("smallest singular value of W (dimensionless)")
    axes[1].set_yscale("log")
    axes[1].set_title("U-Hop kernel (identity at epoch 0)", fontsize=9)
    if config.min_singular_value is not None:
        axes[1].axhline(config.min_singular_value, color="grey", lw=0.8, ls=":", label="safeguard bound (ours)")
    for ax in axes:
        ax.set_xlabel("epoch (0: initial)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
               fontsize=7, frameon=False)  # fmt: skip
    fig.suptitle(f"Separation loss and kernel rank. {params}", fontsize=9)
    save_figure(fig, out_dir / "kernel.png")


def late_change(curve, last: int = 5) -> tuple[float, int]:
    """``(change, k)``: how much the seed-mean of a ``(repeats, epochs)`` curve moved over its last ``k`` epochs,
    ``k = min(last, epochs - 1)`` (the last epoch's mean minus the mean ``k`` epochs before it). A curve that still
    rises there has not converged."""
    mean = np.mean(np.asarray(curve, np.float64), axis=0)
    k = min(last, mean.size - 1)
    return float(mean[-1] - mean[-1 - k]), k


def _protocol_section(config: Config, results: dict, protocol: str) -> list[str]:
    summary, models, curves = results["summary"][protocol], results["models"], results["curves"][protocol]
    rows = []
    for name in models:
        s = summary[name]
        paper = PAPER_TABLE1[name] if config.dataset == "cifar10" else None
        low = (f"{s['lowest_kernel_min_singular_value_mean']:.3g} / {s['final_kernel_max_singular_value_mean']:.3g}"
               if "lowest_kernel_min_singular_value_mean" in s else "-")  # fmt: skip
        rows.append([name, _pct(s["max_train_accuracy_mean"], s["max_train_accuracy_std"]),
                     _pct(s["final_test_accuracy_mean"], s["final_test_accuracy_std"]),
                     _pct(s["max_test_accuracy_mean"], s["max_test_accuracy_std"]),
                     f"{paper[0]:.1f}% / {paper[1]:.1f}%" if paper else "-", low])  # fmt: skip
    table = markdown_table(["model", "max train acc.", "test acc. (last epoch)", "max test acc.",
                            "Table 1 (max train / test)", "smallest sigma (lowest over epochs) / largest (last)"],
                           rows)  # fmt: skip
    out = [f"### Protocol `{protocol}`", table]
    moved = {name: late_change(curves[name]["train_accuracy"]) for name in models}
    k = next(iter(moved.values()))[1]
    out.append(
        f"Over the last {k} epochs the seed-mean train accuracy moved by "
        + ", ".join(f"{100 * change:+.1f} ({name})" for name, (change, _) in moved.items())
        + " points; a curve that still rises there has not converged."
    )
    for name in models:
        plain = name.removesuffix("+uhop")
        if not name.endswith("+uhop") or plain not in models:
            continue
        u, p = summary[name], summary[plain]
        per_repeat = np.asarray(curves[name]["max_train_accuracy"]) > np.asarray(curves[plain]["max_train_accuracy"])
        out.append(
            f"{name} reaches a max train accuracy of {_pct(u['max_train_accuracy_mean'])} against "
            f"{_pct(p['max_train_accuracy_mean'])} for {plain} "
            f"({100 * (u['max_train_accuracy_mean'] - p['max_train_accuracy_mean']):+.1f} points; higher in "
            f"{int(per_repeat.sum())} of {len(per_repeat)} seeds) and a test accuracy of "
            f"{_pct(u['final_test_accuracy_mean'])} against {_pct(p['final_test_accuracy_mean'])} "
            f"({100 * (u['final_test_accuracy_mean'] - p['final_test_accuracy_mean']):+.1f} points)."
        )
        kernel = (
            f"The kernel's singular values start in [{u['initial_kernel_min_singular_value_mean']:.3g}, "
            f"{u['initial_kernel_max_singular_value_mean']:.3g}]"
        )
        if "pretrained_kernel_min_singular_value_mean" in u:
            kernel += (
                f", lie in [{u['pretrained_kernel_min_singular_value_mean']:.3g}, "
                f"{u['pretrained_kernel_max_singular_value_mean']:.3g}] after the {results['pretrain_epochs']} "
                "separation epochs"
            )
        kernel += (
            f" and in [{u['final_kernel_min_singular_value_mean']:.3g}, "
            f"{u['final_kernel_max_singular_value_mean']:.3g}] after the last epoch; the smallest falls to "
            f"{u['lowest_kernel_min_singular_value_min']:.3g} at its lowest (over seeds and epochs). The separation "
            "loss of the test tokens goes from "
            f"{u['initial_separation_loss_mean']:.3f} to {u['final_separation_loss_mean']:.3f} ({plain}'s tokens, "
            f"without a kernel: {p['final_separation_loss_mean']:.3f})."
        )
        out.append(kernel)
    level, reason = verdict(results, protocol, config.dataset)
    said = {
        "quantitative": "reproduces Table 1 quantitatively",
        "qualitative": "reproduces Table 1 qualitatively",
        "not": "does not reproduce Table 1",
    }[level]
    out.append(f"Under `{protocol}`, this run {said}: {reason}.")
    return out


def report(config: Config, results: dict, out_dir: Path, *, figures: bool = True) -> str:
    if figures:
        _figures(config, results, out_dir)
    sizes = _sizes(results)
    at_paper_size = sizes == PAPER_SIZES and config.dataset == "cifar10"
    differ = ", ".join(f"{k} {sizes[k]} (paper {v})" for k, v in PAPER_SIZES.items() if sizes[k] != v)
    title = (
        "## Table 1 of Wu et al. (2024) (CIFAR-10), at the paper's sizes"
        if at_paper_size
        else f"## Toward Table 1 of Wu et al. (2024), at reduced sizes ({config.dataset})"
    )
    safeguard = (
        f"the full-rank safeguard (ours, not the paper's) holds every singular value of the kernel at or above "
        f"{config.min_singular_value:g}"
        if config.min_singular_value is not None
        else "no full-rank safeguard"
    )
    setup = (
        f"Data: {results['data_source']}: {results['train_size']} training and {results['test_size']} test images. "
        f"Model: {results['num_patches']} patches of {config.patch_size} x {config.patch_size} pixels, embedding "
        f"{results['embed_dim']}, {config.num_heads} head(s); {results['epochs']} epochs of "
        f"{results['steps_per_epoch']} steps, batch {results['batch_size']}, Adam {config.learning_rate:g}; "
        f"separation steps: SGD {config.kernel_learning_rate:g}, {config.separation_loss} loss, "
        f"t = {config.temperature:g}, {config.inner_steps} per task step under algorithm2, "
        f"{results['pretrain_epochs']} epochs first under authors; kernel initialised as {config.kernel_init}; "
        f"{safeguard}. Mean ± standard deviation over {results['repeats']} seeds (initial parameters and mini-batch "
        "orders; each seed gives every model the same ones). Accuracies in %."
    )
    sizes_line = (
        "These are the sizes of Table 1."
        if at_paper_size
        else f"Sizes differ from Table 1: {differ}; the comparison with its numbers is not like for like."
    )
    sections = [
        section for protocol in results["protocols"] for section in _protocol_section(config, results, protocol)
    ]
    return "\n\n".join(
        [
            title,
            setup,
            sizes_line,
            *sections,
            "Curves (Fig. 4 setting): `curves.png`; separation loss and the kernel's smallest singular value per "
            "epoch: `kernel.png`.",
        ]  # fmt: skip
    )
