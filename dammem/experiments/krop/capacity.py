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
capacity; the signed KROP codebook ``C = H D`` restores it (see :mod:`dammem.vsa.krop`). The slides do not print the
setting of their capacity figure (address distribution, threshold); the "about half" of Gaussian capacity noted for
re-runs of it is therefore a claim about one unstated setting: the report states the ratio this run measures, with
its setting, and calls it "about half" only when the data give it (``ABOUT_HALF`` in the report).

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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem.experiments._base import Progress, geometric_grid
from dammem.vsa import ADDRESS_KINDS, CODEBOOK_KINDS, make_codebook, random_addresses
from dammem.vsa._kernels import bind_kernel, unbind_kernel

__all__ = [
    "Config",
    "run",
    "item_grid",
    "interpolated_capacity",
    "bootstrap_capacities",
    "bootstrap_interval",
    "ratio_interval",
    "fit_n_over_log_n",
]

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


def bootstrap_capacities(items, trial_rates, threshold: float, resamples: np.ndarray) -> np.ndarray:
    """(B,) capacities of the mean success rate of each bootstrap resample of the trials.

    Args:
      items: the item grid (I,).
      trial_rates: success rates per trial (trials, I).
      threshold: as for :func:`interpolated_capacity`.
      resamples: (B, trials) trial indices of the resamples.
    """
    means = np.asarray(trial_rates, dtype=np.float64)[np.asarray(resamples)].mean(axis=1)  # (B, I)
    return np.asarray([interpolated_capacity(items, rates, threshold) for rates in means])


def bootstrap_interval(items, trial_rates, threshold: float, resamples: np.ndarray) -> tuple[float, float]:
    """16th and 84th percentiles of the capacity over bootstrap resamples of the trials (a 68% interval)."""
    lo, hi = np.percentile(bootstrap_capacities(items, trial_rates, threshold, resamples), [16.0, 84.0])
    return float(lo), float(hi)


def ratio_interval(caps: np.ndarray, reference_caps: np.ndarray) -> tuple[float, float]:
    """16th and 84th percentiles of ``caps / reference_caps`` over paired bootstrap resamples (the same trial
    indices for both; resamples where the reference capacity is 0 are left out); (nan, nan) when none is left."""
    caps, ref = np.asarray(caps, dtype=np.float64), np.asarray(reference_caps, dtype=np.float64)
    keep = ref > 0
    if not keep.any():
        return float("nan"), float("nan")
    lo, hi = np.percentile(caps[keep] / ref[keep], [16.0, 84.0])
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
    ref = "gaussian" if "gaussian" in config.kinds else None
    ratio_ci: dict[str, list[tuple[float, float]]] = {kind: [] for kind in config.kinds} if ref else {}
    for i, n in enumerate(config.dims):
        items = grids[n]
        # the same trial keys for every kind: the addresses and indices differ only through the codebook kind
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        # the same bootstrap resamples for every kind at this N (paired comparisons)
        boot_key = jax.random.fold_in(jax.random.fold_in(key, i), config.num_trials)
        resamples = np.asarray(
            jax.random.randint(boot_key, (BOOTSTRAP_RESAMPLES, config.num_trials), 0, config.num_trials)
        )
        boots = {}
        for kind in config.kinds:
            progress.point(f"{kind} N={n}, M up to {items[-1]}")
            per_trial = np.asarray(
                _success_rates(kind, n, items[-1], config.address_kind, trial_keys, jnp.asarray(items, jnp.int32))
            )
            r = per_trial.mean(0)
            rates[kind][str(n)] = r.tolist()
            capacity[kind].append(interpolated_capacity(items, r, config.threshold))
            boots[kind] = bootstrap_capacities(items, per_trial, config.threshold, resamples)
            lo, hi = np.percentile(boots[kind], [16.0, 84.0])
            interval[kind].append((float(lo), float(hi)))
            progress.update(1)
        for kind in ratio_ci:
            ratio_ci[kind].append(ratio_interval(boots[kind], boots[ref]))
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
        "capacity_over_gaussian_interval": ratio_ci,
        "capacity_over_n": {kind: [c / n for c, n in zip(capacity[kind], config.dims)] for kind in config.kinds},
        "reference": {"kind": ref, "constant": fit_n_over_log_n(config.dims, capacity[ref])} if ref else None,
        "threshold": config.threshold,
    }
