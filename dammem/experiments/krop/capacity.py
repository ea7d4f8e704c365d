"""Capacity of an HRR key-value memory per value codebook kind, and capacity vs N.

Liu et al. (2025), experiment "Memory capacity". For each codebook kind and dimension ``N``, ``M`` pairs are stored
in one trace ``M = sum_m a_m (*) v_m`` with Gaussian addresses ``a_m ~ N(0, I/N)`` and values ``v_m = C_{j_m}``
(rows of the codebook at uniform random indices). The success rate is Liu et al.'s
``(1/M) sum_m 1[clean-up(a_m # M) = v_m]``, averaged over trials (each trial draws its own codebook, addresses and
indices; trials are vectorised). All grid sizes ``M`` of one trial share the same draws: the
memory holding the first ``M`` pairs is a prefix sum of the bound pairs.

The capacity is the number of items at which the success rate falls to ``threshold``, read off by linear
interpolation between the last grid point at or above the threshold and the next one. Its uncertainty is a
bootstrap over trials: the capacity of the mean rate of ``BOOTSTRAP_RESAMPLES`` resamples (with replacement) of the
trials, whose 16th and 84th percentiles bound a 68% interval. KROP's rows have peaky Fourier spectra, which costs
capacity; the signed KROP codebook ``C = H D`` restores it (see :mod:`dammem.vsa.krop`).

Reference law. A read ``a_m # M`` is ``v_m`` plus a noise term from the other ``M - 1`` pairs whose scores against
the codebook have a standard deviation growing like ``sqrt(M / N)`` (Plate (1995) on the noise of correlation reads);
the clean-up is right while the signal beats the largest of ``N - 1`` wrong scores, about ``sqrt(2 ln N)`` standard
deviations, so the capacity grows like ``N / ln N``. The report fits ``c N / ln N`` to the Gaussian codebook's
capacities (least squares) and draws it as the reference.

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem.experiments._base import Progress, geometric_grid, markdown_table, pyplot, save_figure
from dammem.vsa import ADDRESS_KINDS, CODEBOOK_KINDS, make_codebook, random_addresses
from dammem.vsa._kernels import bind_kernel, unbind_kernel

__all__ = ["Config", "run", "report", "item_grid", "interpolated_capacity", "bootstrap_interval", "fit_n_over_log_n"]

BOOTSTRAP_RESAMPLES = 200
"""Resamples of the trials behind each capacity's 68% interval."""


def item_grid(n: int, max_fraction: float, ratio: float) -> tuple[int, ...]:
    """Geometric grid of item counts ``2, ..., max_fraction * n`` (distinct integers, ratio ``ratio``)."""
    return geometric_grid(2, max(2, int(max_fraction * n)), ratio)


def interpolated_capacity(items, rates, threshold: float) -> float:
    """Items at which the success rate crosses ``threshold`` (linear interpolation on the grid).

    Returns 0.0 if the first grid point is already below the threshold, and the last grid point if the rate never
    falls below it (then a lower bound: the grid was too short).
    """
    items = np.asarray(items, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)
    below = np.flatnonzero(rates < threshold)
    if below.size == 0:
        return float(items[-1])
    j = int(below[0])
    if j == 0:
        return 0.0
    m0, m1, r0, r1 = items[j - 1], items[j], rates[j - 1], rates[j]
    return float(m0 + (r0 - threshold) / (r0 - r1) * (m1 - m0))


def bootstrap_interval(items, trial_rates, threshold: float, resamples: np.ndarray) -> tuple[float, float]:
    """16th and 84th percentiles of the capacity over bootstrap resamples of the trials.

    Args:
      items: the item grid (I,).
      trial_rates: success rates per trial (trials, I).
      threshold: as for :func:`interpolated_capacity`.
      resamples: (B, trials) trial indices of the resamples.
    """
    means = np.asarray(trial_rates, dtype=np.float64)[np.asarray(resamples)].mean(axis=1)  # (B, I)
    caps = [interpolated_capacity(items, rates, threshold) for rates in means]
    lo, hi = np.percentile(caps, [16.0, 84.0])
    return float(lo), float(hi)


def fit_n_over_log_n(dims, capacities) -> float:
    """Least-squares ``c`` of ``capacity ~ c N / ln N`` (through the origin)."""
    n = np.asarray(dims, dtype=np.float64)
    shape = n / np.log(n)
    return float(np.dot(np.asarray(capacities, dtype=np.float64), shape) / np.dot(shape, shape))


@dataclasses.dataclass(frozen=True)
class Config:
    """Capacity sweep over codebook kinds and dimensions.

    Attributes:
      kinds: value codebook kinds (from ``dammem.vsa.CODEBOOK_KINDS``); ``gaussian`` is the reference for ratios.
      dims: vector dimensions N (powers of two).
      max_fraction: the item grid runs from 2 to ``max_fraction * N``.
      grid_ratio: geometric ratio of the item grid (> 1).
      num_trials: independent draws (codebook, keys, values), vectorised.
      threshold: success rate that defines the capacity.
      address_kind: HRR address distribution (``gaussian`` as in Liu et al. (2025), or ``unitary``).
    """

    kinds: tuple[str, ...] = ("gaussian", "bipolar", "hadamard", "krop", "krop_signed", "unitary_shift")
    dims: tuple[int, ...] = (256, 512, 1024, 2048)
    max_fraction: float = 0.125
    grid_ratio: float = 1.25
    num_trials: int = 30
    threshold: float = 0.9
    address_kind: str = "gaussian"

    def __post_init__(self):
        kinds = list(self.kinds)
        if not kinds or any(k not in CODEBOOK_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds must be distinct names from {CODEBOOK_KINDS}, got {list(self.kinds)}")
        if not self.dims or any(d < 16 or d & (d - 1) for d in self.dims) or list(self.dims) != sorted(set(self.dims)):
            raise ValueError(f"dims must be increasing powers of two >= 16, got {list(self.dims)}")
        if not 0 < self.max_fraction <= 1:
            raise ValueError(f"max_fraction must lie in (0, 1], got {self.max_fraction}")
        if not self.grid_ratio > 1:
            raise ValueError(f"grid_ratio must be > 1, got {self.grid_ratio}")
        if self.num_trials < 1:
            raise ValueError(f"num_trials must be >= 1, got {self.num_trials}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.address_kind not in ADDRESS_KINDS:
            raise ValueError(f"address_kind must be one of {ADDRESS_KINDS}, got {self.address_kind!r}")


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _success_rates(kind: str, n: int, m_max: int, address_kind: str, trial_keys: jax.Array, items: jax.Array):
    """(trials, len(items)) success rates; the memory of the first m pairs is a prefix sum of the bound pairs."""

    def trial(key):
        k_cb, k_addr, k_idx = jax.random.split(key, 3)
        cb = make_codebook(kind, n, key=k_cb)
        addresses = random_addresses(k_addr, (m_max,), n, kind=address_kind)
        idx = jax.random.randint(k_idx, (m_max,), 0, n)
        prefix = jnp.cumsum(bind_kernel(addresses, cb.rows(idx)), axis=0)  # prefix[m - 1] stores the first m pairs

        def at(m):
            reads = unbind_kernel(prefix[m - 1], addresses)  # a_j # M for every address (only j < m are scored)
            ok = (cb.cleanup(reads) == idx) & (jnp.arange(m_max) < m)
            return jnp.sum(ok) / m

        return lax.map(at, items)

    return jax.vmap(trial)(trial_keys)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.kinds) * len(config.dims))
    grids = {n: item_grid(n, config.max_fraction, config.grid_ratio) for n in config.dims}
    rates: dict[str, dict[str, list[float]]] = {kind: {} for kind in config.kinds}
    capacity: dict[str, list[float]] = {kind: [] for kind in config.kinds}
    interval: dict[str, list[tuple[float, float]]] = {kind: [] for kind in config.kinds}
    for i, n in enumerate(config.dims):
        items = grids[n]
        # the same trial keys for every kind: the addresses and indices differ only through the codebook kind
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        # the same bootstrap resamples for every kind at this N (paired comparisons)
        boot_key = jax.random.fold_in(jax.random.fold_in(key, i), config.num_trials)
        resamples = np.asarray(
            jax.random.randint(boot_key, (BOOTSTRAP_RESAMPLES, config.num_trials), 0, config.num_trials)
        )
        for kind in config.kinds:
            progress.point(f"{kind} N={n}, M up to {items[-1]}")
            per_trial = np.asarray(
                _success_rates(kind, n, items[-1], config.address_kind, trial_keys, jnp.asarray(items, jnp.int32))
            )
            r = per_trial.mean(0)
            rates[kind][str(n)] = r.tolist()
            capacity[kind].append(interpolated_capacity(items, r, config.threshold))
            interval[kind].append(bootstrap_interval(items, per_trial, config.threshold, resamples))
            progress.update(1)
    ref = "gaussian" if "gaussian" in config.kinds else None
    ratio = {}
    if ref:
        for kind in config.kinds:
            ratio[kind] = [c / g if g > 0 else float("nan") for c, g in zip(capacity[kind], capacity[ref])]
    return {
        "dims": list(config.dims),
        "items": {str(n): list(g) for n, g in grids.items()},
        "success_rate": rates,
        "capacity": capacity,
        "capacity_interval": interval,
        "capacity_over_gaussian": ratio,
        "capacity_over_n": {kind: [c / n for c, n in zip(capacity[kind], config.dims)] for kind in config.kinds},
        "reference": {"kind": ref, "constant": fit_n_over_log_n(config.dims, capacity[ref])} if ref else None,
        "threshold": config.threshold,
    }


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
