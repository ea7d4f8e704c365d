"""The KROP capacity experiment's report: capacity curves, the N / ln N fit and sentences computed from the results.

References: as in :mod:`dammem.experiments.krop.capacity`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dammem.experiments._base import markdown_table, pyplot, save_figure
from dammem.experiments.krop.capacity import Config

__all__ = ["report"]


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    kinds, dims = list(results["capacity"]), results["dims"]
    fig, (ax_rate, ax_cap) = plt.subplots(1, 2, figsize=(11, 4.2))
    n_show = dims[-1]
    zero = []
    for kind in kinds:
        rate = results["success_rate"][kind][str(n_show)]
        (line,) = ax_rate.plot(results["items"][str(n_show)], rate, marker="o", ms=3, label=kind)
        cap = np.asarray(results["capacity"][kind], dtype=float)
        lo, hi = np.asarray(results["capacity_interval"][kind], dtype=float).T
        shown = cap > 0  # a log axis cannot show a capacity of 0
        zero += [f"{kind} at N={n}" for n, ok in zip(dims, shown) if not ok]
        ax_cap.errorbar(
            np.asarray(dims)[shown],
            cap[shown],
            yerr=np.clip([cap[shown] - lo[shown], hi[shown] - cap[shown]], 0, None),
            marker="o",
            ms=4,
            capsize=3,
            color=line.get_color(),
            label=kind,
        )
    ref = results["reference"]
    if ref and ref["constant"] > 0:
        fine = np.geomspace(dims[0], dims[-1], 100)
        ax_cap.plot(
            fine, ref["constant"] * fine / np.log(fine), "--", color="black", lw=1,
            label=f"{ref['constant']:.3g} N / ln N (fit to {ref['kind']})",
        )  # fmt: skip
    ax_rate.axhline(results["threshold"], color="gray", lw=0.8, ls=":")
    ax_rate.set_xlabel("stored items M")
    ax_rate.set_ylabel("success rate")
    ax_rate.set_title(f"clean-up(a_m # M) = v_m, N = {n_show}")
    ax_cap.set_xscale("log", base=2)
    ax_cap.set_yscale("log")
    ax_cap.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_cap.yaxis.set_major_formatter(ScalarFormatter())
    ax_cap.yaxis.set_minor_formatter(NullFormatter())
    ax_cap.set_xlabel("N")
    ax_cap.set_ylabel(f"capacity (items at success {results['threshold']})")
    ax_cap.set_title(
        "capacity vs N; bars: 68% bootstrap over trials"
        + (f"\nnot drawn (capacity 0): {', '.join(zero)}" if zero else ""),
        fontsize=10,
    )
    ax_rate.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    ax_cap.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    save_figure(fig, out_dir / "krop_capacity.png")

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
            "Capacity relative to the Gaussian codebook:",
            "",
            markdown_table(
                headers, [[k] + [float(v) for v in results["capacity_over_gaussian"][k]] for k in kinds], floatfmt=".3f"
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
