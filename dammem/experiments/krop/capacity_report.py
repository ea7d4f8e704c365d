"""The KROP capacity experiment's report: capacity curves, the N / ln N fit and sentences computed from the results.

References: as in :mod:`dammem.experiments.krop.capacity`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.krop.capacity import Config

__all__ = ["report", "reproduces"]

ABOUT_HALF = (0.4, 0.6)
"""Range of KROP / Gaussian capacity ratios that counts as the "about half" of re-runs of Liu et al. (2025)'s
capacity experiment (see the experiment's docstring)."""


def _plot(config: Config, results: dict, out_dir: Path) -> None:
    """Success rate at the largest N, capacity vs N with the N / ln N fit, and capacity relative to Gaussian."""
    plt = pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    kinds, dims = list(results["capacity"]), results["dims"]
    ratios = results["capacity_over_gaussian"]
    ncols = 3 if ratios else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.4))
    ax_rate, ax_cap = axes[0], axes[1]
    n_show = dims[-1]
    zero = []
    handles = []
    for k, kind in enumerate(kinds):
        color = f"C{k}"
        rate = results["success_rate"][kind][str(n_show)]
        (line,) = ax_rate.plot(results["items"][str(n_show)], rate, marker="o", ms=3, color=color, label=kind)
        handles.append(line)
        cap = np.asarray(results["capacity"][kind], dtype=float)
        lo, hi = np.asarray(results["capacity_interval"][kind], dtype=float).T
        shown = cap > 0  # a log axis cannot show a capacity of 0
        zero += [f"{kind} at N={n}" for n, ok in zip(dims, shown) if not ok]
        ax_cap.errorbar(
            np.asarray(dims)[shown], cap[shown], marker="o", ms=4, capsize=3, color=color,
            yerr=np.clip([cap[shown] - lo[shown], hi[shown] - cap[shown]], 0, None),
        )  # fmt: skip
        if ratios and kind != "gaussian":
            r = np.asarray(ratios[kind], dtype=float)
            rlo, rhi = np.asarray(results["capacity_over_gaussian_interval"][kind], dtype=float).T
            ok = np.isfinite(r) & np.isfinite(rlo) & np.isfinite(rhi)
            axes[2].errorbar(
                np.asarray(dims)[ok] * 1.03 ** (k - len(kinds) / 2), r[ok],
                yerr=np.clip([r[ok] - rlo[ok], rhi[ok] - r[ok]], 0, None), marker="o", ms=4, capsize=3, color=color,
            )  # fmt: skip
    ref = results["reference"]
    if ref and ref["constant"] > 0:
        fine = np.geomspace(dims[0], dims[-1], 100)
        (fit_line,) = ax_cap.plot(fine, ref["constant"] * fine / np.log(fine), "--", color="black", lw=1)
        handles.append(fit_line)
    ax_rate.axhline(results["threshold"], color="gray", lw=0.8, ls=":")
    ax_rate.set_xlabel("stored items M")
    ax_rate.set_ylabel("success rate (fraction of stored items)")
    ax_rate.set_title(f"clean-up(a_m # M) = v_m, N = {n_show}, {config.num_trials} trials", fontsize=10)
    ax_cap.set_xscale("log", base=2)
    ax_cap.set_yscale("log")
    ax_cap.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_cap.yaxis.set_major_formatter(ScalarFormatter())
    ax_cap.yaxis.set_minor_formatter(NullFormatter())
    ax_cap.set_xlabel("N")
    ax_cap.set_ylabel(f"capacity (items at success rate {results['threshold']:g})")
    ax_cap.set_title(
        "capacity vs N; bars: 68% bootstrap over trials"
        + (f"\nnot drawn (capacity 0): {', '.join(zero)}" if zero else ""),
        fontsize=10,
    )
    if ratios:
        axes[2].axhline(1.0, color=f"C{kinds.index('gaussian')}", lw=0.8, ls=":")
        axes[2].set_xscale("log", base=2)
        axes[2].set_xlabel("N")
        axes[2].set_ylabel("capacity / Gaussian codebook's capacity (ratio)")
        axes[2].set_title("relative capacity; bars: 68% paired bootstrap", fontsize=10)
    labels = kinds + ([f"{ref['constant']:.3g} N / ln N (fit to {ref['kind']})"] if ref and ref["constant"] > 0 else [])
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=9,
               frameon=False)  # fmt: skip
    save_figure(fig, out_dir / "krop_capacity.png")


def report(config: Config, results: dict, out_dir: Path, *, figures: bool = True) -> str:
    if figures:
        _plot(config, results, out_dir)
    kinds, dims = list(results["capacity"]), results["dims"]
    headers = ["kind"] + [f"N={n}" for n in dims]
    cap_rows = [
        [kind]
        + [
            f"{c:.1f} [{lo:.1f}, {hi:.1f}]"
            for c, (lo, hi) in zip(results["capacity"][kind], results["capacity_interval"][kind])
        ]
        for kind in kinds
    ]
    lines = [
        f"Capacity (items at success rate {results['threshold']}, interpolated), {config.num_trials} trials, "
        f"{config.address_kind} addresses; in brackets the 68% bootstrap interval over trials:",
        "",
        markdown_table(headers, cap_rows),
    ]
    if results["capacity_over_gaussian"]:
        lines += [
            "",
            "Capacity relative to the Gaussian codebook; in brackets the 68% interval of the ratio over paired "
            "bootstrap resamples of the trials:",
            "",
            markdown_table(
                headers,
                [
                    [k]
                    + [
                        f"{float(v):.3f} [{float(lo):.3f}, {float(hi):.3f}]"
                        for v, (lo, hi) in zip(
                            results["capacity_over_gaussian"][k], results["capacity_over_gaussian_interval"][k]
                        )
                    ]
                    for k in kinds
                ],
            ),
        ]
    lines += ["", *_kind_sentences(results), *_reference_sentence(results), "", "![capacity](krop_capacity.png)"]
    return "\n".join(lines)


def _reference_sentence(results: dict) -> list[str]:
    """How closely the reference codebook's capacities follow the fitted c N / ln N (computed from the results)."""
    ref = results["reference"]
    if not ref:
        return []
    dims = np.asarray(results["dims"], dtype=float)
    caps = np.asarray(results["capacity"][ref["kind"]], dtype=float)
    law = ref["constant"] * dims / np.log(dims)
    text = f"- Reference: the {ref['kind']} capacity fits {ref['constant']:.3g} N / ln N (least squares)"
    if len(dims) == 1:
        return [text + "; one N is an exact fit, not a test of the law."]
    worst = float(np.max(np.abs(caps / law - 1.0))) if ref["constant"] > 0 else float("inf")
    per_n = caps / dims
    return [
        text + f", every N within {worst:.0%} of it; capacity / N goes from {per_n[0]:.4f} at N = {int(dims[0])} to "
        f"{per_n[-1]:.4f} at N = {int(dims[-1])}."
    ]


def _kind_sentences(results: dict) -> list[str]:
    """One computed sentence per codebook kind: capacity per dimension, relative to Gaussian, grid limits."""
    dims = results["dims"]
    out = []
    for kind, caps in results["capacity"].items():
        per_n = results["capacity_over_n"][kind]
        text = f"- {kind}: capacity / N from {min(per_n):.3f} to {max(per_n):.3f} over N = {dims[0]}..{dims[-1]}"
        ratio = results["capacity_over_gaussian"].get(kind)
        if ratio and kind != "gaussian" and all(np.isfinite(ratio)):
            text += f", {min(ratio):.2f} to {max(ratio):.2f} times the Gaussian codebook's"
        capped = [n for n, c in zip(dims, caps) if c >= results["items"][str(n)][-1]]
        empty = [n for n, c in zip(dims, caps) if c == 0]
        if capped:
            text += f"; at N = {', '.join(map(str, capped))} the rate never fell below the threshold (a lower bound)"
        if empty:
            text += f"; at N = {', '.join(map(str, empty))} even the smallest grid point failed"
        out.append(text + ".")
    return out


def reproduces(config: Config, results: dict) -> list[dict]:
    """Verdict on Liu et al. (2025)'s capacity comparison: KROP below the Gaussian codebook (about half in re-runs of
    the slides' figure), the signed KROP codebook back at Gaussian capacity."""
    ratios = results["capacity_over_gaussian"]
    if not ratios or "krop" not in ratios:
        return []
    dims = results["dims"]
    krop = np.asarray(ratios["krop"], dtype=float)
    median = float(np.median(krop))
    below = [n for n, r, (lo, hi) in zip(dims, krop, results["capacity_over_gaussian_interval"]["krop"]) if hi < 1]
    half = ABOUT_HALF[0] <= median <= ABOUT_HALF[1]
    verdict = "quantitative" if half and len(below) == len(dims) else "qualitative" if below else "not"
    evidence = (
        f"KROP reaches {krop.min():.2f} to {krop.max():.2f} (median {median:.2f}) of the Gaussian codebook's capacity "
        f"over N = {dims[0]}..{dims[-1]} with {config.address_kind} addresses at success rate {config.threshold:g}, "
        f"below it (68% interval under 1) at {len(below)} of {len(dims)} N; "
        + ("about half, as in re-runs of the slides' figure" if half else "not the about one half of re-runs of the "
           "slides' figure")
    )  # fmt: skip
    if "krop_signed" in ratios:
        signed = np.asarray(ratios["krop_signed"], dtype=float)
        evidence += f"; the signed KROP codebook reaches {signed.min():.2f} to {signed.max():.2f}"
    return [
        {
            "target": "Liu et al. (2025), memory capacity per value codebook",
            "verdict": verdict,
            "evidence": evidence + ".",
        }
    ]
