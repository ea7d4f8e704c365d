"""Exact-recall capacity of one-step associative memories: classical (Hebbian, d / log d) vs modern (softmax, exp(c d)).

Hsu (2025), "One-step Hopfield network" and "One-step modern Hopfield network" (after Demircigil et al. (2017)):
store ``n`` pairs ``(x_i, y_i)`` with keys and values in ``{-1, +1}^d`` and ask for the largest ``n`` at which the
memory maps every stored key exactly to its value.

- classical one-step memory ``M(x) = sign(W x)``, ``W = sum_i y_i x_i^T``: capacity ~ d / log d (a union bound over
  Rademacher sums). :func:`classical_theory_capacity` gives the Gaussian approximation with its constant.
- modern one-step memory ``M(x) = sign(sum_i exp(beta <x, x_i>) y_i)`` (attention): capacity exp(Omega(d)). The
  pair ``i`` is recalled when the softmax weight of its own key dominates; since ``E exp(beta <x_1, x_k>) =
  cosh(beta)^d``, the mean-field condition ``sum_{k>1} exp(beta (<x_1, x_k> - d)) < 1`` holds while ``n <
  exp(c_mf d)`` with ``c_mf = beta - log cosh(beta)`` (0.566 at beta = 1): :func:`mean_field_rate`.

Protocol. Keys are distinct (a repeated key with two values is a collision that no memory can resolve): for
``d <= 30`` they are a uniformly random set of distinct points of ``{-1, +1}^d`` (so ``n <= 2^d``); for larger ``d``
they are drawn independently, and the config is refused unless the chance of any repeat, at most
``n^2 / 2^(d+1)``, is below 1e-3. Values are independent uniform. Recall is measured on all stored pairs, or on a
uniformly random subset of ``eval_pairs`` of them when ``n`` is larger (the recall rate is then an unbiased
estimate). The capacity at ``d`` is the largest grid ``n`` up to which every grid point's recall rate is at least
``threshold``; an interpolated capacity (geometric between the last point above and the first below) is used for
the fits: ``capacity ~ k d / log d`` for the classical memory and ``capacity ~ A exp(c d)`` for the modern one, over
the dimensions whose capacity lies inside the grid. Trials are vectorised over PRNG keys; a memory's sweep over
``n`` stops once two consecutive grid points fall below half the threshold.

References:
  - Hsu (2025). Associative memories. Lecture notes, COMS 6998-7, Columbia University.
  - Demircigil, Heusel, Loewe, Upgang, Vermet (2017). On a model of associative memory with huge storage capacity.
    J. Stat. Phys.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dammem.energies import hetero_weights, one_step_modern, sync_update
from dammem.experiments._base import Progress, geometric_grid

__all__ = [
    "Config",
    "run",
    "classical_theory_capacity",
    "mean_field_rate",
    "grid_capacity",
    "interpolated_capacity",
    "fit_exponential",
    "pair_grid",
    "distinct_bipolar",
]

MAX_CODE_BITS = 30  # keys of d <= 30 are distinct integer codes (int32); larger d draws keys independently
MAX_REPEAT_CHANCE = 1e-3  # refused above this bound on the chance of a repeated key when d > MAX_CODE_BITS
_MIN_BUCKET = 64  # pair counts are padded to powers of two >= this, so a few compilations serve the whole grid
_BATCH_ELEMENTS = 1 << 24  # score entries (queries x stored pairs) computed at once; bounds memory on large n


def classical_theory_capacity(d: np.ndarray, threshold: float) -> np.ndarray:
    """Gaussian approximation of the classical memory's capacity at exact-recall rate ``threshold``.

    A recalled bit is wrong when a sum of ``(n - 1) d`` Rademacher terms exceeds ``d`` (Hsu (2025), "Analysis of
    one-step Hopfield network"), probability ``q = P(N(0, 1) > sqrt(d / (n - 1)))``; a pair is recalled with
    probability ``(1 - q)^d ~ exp(-d q)``. Setting that to ``threshold`` gives ``n = 1 + d / z^2`` with
    ``z = Phi^-1(1 + log(threshold) / d)``, which grows like ``d / (2 log d)``: the d / log d law with its constant.
    """
    d = np.asarray(d, dtype=np.float64)
    z = np.asarray(jax.scipy.special.ndtri(jnp.asarray(1.0 + np.log(threshold) / d, jnp.float32)), np.float64)
    return 1.0 + d / np.square(z)


def mean_field_rate(beta: float) -> float:
    """``beta - log cosh(beta)``: the modern memory recalls on average while ``n < exp(rate * d)`` (module doc)."""
    return float(beta - math.log(math.cosh(beta)))


def grid_capacity(grid, rates, threshold: float) -> int:
    """Largest ``n`` of ``grid`` up to which every rate reaches ``threshold``; 0 if the first does not.

    NaN rates (grid points not run) end the scan like a failure.
    """
    capacity = 0
    for n, rate in zip(grid, rates):
        if not rate >= threshold:
            break
        capacity = int(n)
    return capacity


def interpolated_capacity(grid, rates, threshold: float) -> float:
    """Where the rate crosses ``threshold``, interpolated linearly in ``log n`` between the grid capacity and the next
    grid point; the grid capacity itself when there is no next point run (the last point run passed), 0 when the
    first point fails."""
    grid = np.asarray(grid, dtype=np.float64)
    rates = np.asarray(rates, dtype=np.float64)
    capacity = grid_capacity(grid, rates, threshold)
    if capacity == 0:
        return 0.0
    j = int(np.flatnonzero(grid == capacity)[0])
    if j + 1 >= len(grid) or np.isnan(rates[j + 1]):
        return float(capacity)
    r0, r1 = rates[j], rates[j + 1]
    frac = (r0 - threshold) / (r0 - r1)
    return float(np.exp(np.log(grid[j]) + frac * (np.log(grid[j + 1]) - np.log(grid[j]))))


def fit_exponential(dims, capacities) -> tuple[float, float]:
    """Least-squares fit of ``log capacity = log A + c d``; returns ``(c, A)``. Needs two or more points."""
    d = np.asarray(dims, dtype=np.float64)
    log_cap = np.log(np.asarray(capacities, dtype=np.float64))
    if d.size < 2:
        raise ValueError(f"fit_exponential: needs at least 2 points, got {d.size}")
    c, log_a = np.polyfit(d, log_cap, 1)
    return float(c), float(np.exp(log_a))


def distinct_bipolar(key: jax.Array, n: int, d: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """``n`` distinct rows of ``{-1, +1}^d`` (``d <= 30``, may be traced) in uniformly random order, zero-padded to
    ``width`` columns; together a uniformly random ``n``-subset of the ``2^d`` points.

    The rows are the bits of distinct integer codes in ``[0, 2^d)``. When the code space is small (``2^d <= 4 n``)
    the codes are a uniformly random ordering of all of it (random priorities over ``[0, 4 n)``, codes past ``2^d``
    last); otherwise the distinct values among ``2 n`` independent draws, of which a uniformly random ``n`` are kept
    (the set of distinct draws is exchangeable, so the kept set is a uniform ``n``-subset). Returns
    ``(rows, ok)``; ``ok`` is False when fewer than ``n`` distinct codes were found (``n > 2^d``, or, with
    probability ~ exp(-n / 2), too many repeats among the draws).
    """
    k_perm, k_draw, k_pick = jax.random.split(key, 3)
    space = jnp.left_shift(jnp.int32(1), jnp.asarray(d, jnp.int32))
    # small space: every code below 2^d, in random order
    small_codes = jnp.arange(4 * n, dtype=jnp.int32)
    small_priority = jnp.where(small_codes < space, jax.random.uniform(k_perm, (4 * n,)), 2.0)
    small = small_codes[jnp.argsort(small_priority)[:n]]
    # large space: the distinct values among 2 n draws, a random n of them
    draws = jnp.sort(jax.random.randint(k_draw, (2 * n,), 0, space))
    first = jnp.concatenate([jnp.ones((1,), bool), draws[1:] != draws[:-1]])
    large = draws[jnp.argsort(jnp.where(first, jax.random.uniform(k_pick, draws.shape), 2.0))[:n]]
    is_small = space <= 4 * n
    codes = jnp.where(is_small, small, large)
    ok = jnp.where(is_small, n <= space, jnp.sum(first) >= n)
    column = jnp.arange(width, dtype=jnp.int32)
    bits = jnp.right_shift(codes[:, None], jnp.minimum(column, MAX_CODE_BITS)) & 1
    return jnp.where(column < d, 2.0 * bits - 1.0, 0.0), ok


@dataclasses.dataclass(frozen=True)
class Config:
    """Capacity sweep.

    Attributes:
      dims: dimensions d at which both memories are measured.
      extra_classical_dims: further dimensions for the classical memory only (its capacity is a handful of pairs,
        so its d / log d law needs larger d; the modern memory there exceeds any affordable grid).
      classical_pairs: the grid of stored pair counts n for the classical memory (ascending).
      modern_pairs: the grid for the modern memory (ascending; points above 2^d are skipped at small d).
      eval_pairs: recall is measured on all stored pairs up to this many, else on a random subset of this size.
      num_trials: independent draws per (d, n), vectorised.
      beta: inverse temperature of the modern memory (Hsu (2025) uses 1).
      threshold: exact-recall rate that counts as "stored" when reading off the capacity.
    """

    dims: tuple[int, ...] = (8, 10, 12, 13, 14, 15, 16, 17, 18)
    extra_classical_dims: tuple[int, ...] = (32, 64, 128, 256, 512)
    classical_pairs: tuple[int, ...] = geometric_grid(1, 256, 1.15)
    modern_pairs: tuple[int, ...] = geometric_grid(2, 100_000, 1.5)
    eval_pairs: int = 128
    num_trials: int = 8
    beta: float = 1.0
    threshold: float = 0.9

    def __post_init__(self):
        for name in ("dims", "extra_classical_dims"):
            values = list(getattr(self, name))
            if any(d < 2 for d in values) or values != sorted(set(values)):
                raise ValueError(f"{name} must be strictly increasing integers >= 2, got {values}")
        if not self.dims:
            raise ValueError("dims must not be empty")
        repeated = sorted(set(self.dims) & set(self.extra_classical_dims))
        if repeated:
            raise ValueError(f"extra_classical_dims must not repeat dims, got {repeated}")
        for name in ("classical_pairs", "modern_pairs"):
            grid = list(getattr(self, name))
            if not grid or grid[0] < 1 or grid != sorted(set(grid)):
                raise ValueError(f"{name} must be strictly increasing positive integers, got {grid}")
        for grid_name, dims in (
            ("classical_pairs", self.dims + self.extra_classical_dims),
            ("modern_pairs", self.dims),
        ):
            n_max = max(getattr(self, grid_name))
            for d in dims:
                chance = n_max**2 / 2.0 ** (d + 1)
                if d > MAX_CODE_BITS and chance > MAX_REPEAT_CHANCE:
                    raise ValueError(
                        f"d={d} draws keys independently, and with up to {n_max} pairs ({grid_name}) the chance of a "
                        f"repeated key, up to n^2 / 2^(d+1) = {chance:.2g}, exceeds {MAX_REPEAT_CHANCE}; use "
                        f"d <= {MAX_CODE_BITS} (distinct keys) or a smaller grid"
                    )
        if self.eval_pairs < 1:
            raise ValueError(f"eval_pairs must be >= 1, got {self.eval_pairs}")
        if self.num_trials < 1:
            raise ValueError(f"num_trials must be >= 1, got {self.num_trials}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")


def _draw(key: jax.Array, n: int, d: jax.Array, width: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Keys and values (n, width), zero past column ``d``; keys distinct for ``d <= 30``, else independent."""
    k_x, k_iid, k_y = jax.random.split(key, 3)
    column = jnp.arange(width)
    coded, ok = distinct_bipolar(k_x, n, jnp.minimum(d, MAX_CODE_BITS), width)
    iid = jnp.where(jax.random.bernoulli(k_iid, 0.5, (n, width)), 1.0, -1.0) * (column < d)
    keys = jnp.where(d <= MAX_CODE_BITS, coded, iid)
    values = jnp.where(jax.random.bernoulli(k_y, 0.5, (n, width)), 1.0, -1.0) * (column < d)
    return keys, values, ok | (d > MAX_CODE_BITS)


@partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _sweep_bucket(memory: str, trial_keys, ns, d, n_pad: int, width: int, eval_pairs: int, beta):
    """(len(ns),) trial-mean recall rates for the pair counts ``ns`` (all <= n_pad) at dimension ``d`` (traced,
    padded to ``width`` zero columns, which change no score), and whether every trial's keys were distinct.

    Each trial stores the first ``n`` of ``n_pad`` drawn pairs and tests the first ``min(n, eval_pairs)`` of them:
    the pairs come in uniformly random order, so these are a uniformly random subset of the stored pairs. One
    compilation serves every d and every n of a bucket.
    """
    n_eval = min(n_pad, eval_pairs)
    counted = jnp.arange(width) < d  # recall is exact on the first d coordinates

    def one_trial(key):
        keys, values, ok = _draw(key, n_pad, d, width)
        queries, targets = keys[:n_eval], values[:n_eval]

        def at(n):
            stored = jnp.arange(n_pad) < n
            if memory == "classical":
                weights = hetero_weights(keys, values * stored[:, None])
                recalled = jax.vmap(lambda x: sync_update(x, weights))(queries)
            else:
                recalled = jax.vmap(lambda x: one_step_modern(x, keys, values, beta, mask=stored))(queries)
            hit = jnp.all((recalled == targets) | ~counted, -1) & (jnp.arange(n_eval) < n)
            return jnp.sum(hit) / jnp.minimum(n, n_eval).astype(jnp.float32)

        return jax.lax.map(at, ns), ok

    batch = max(1, min(trial_keys.shape[0], _BATCH_ELEMENTS // (n_eval * n_pad)))
    rates, ok = jax.lax.map(one_trial, trial_keys, batch_size=batch)
    return rates.mean(0), jnp.all(ok)


def _bucket_of(n: int, d: int) -> int:
    """Padded size for ``n`` pairs: the next power of two, at least _MIN_BUCKET, at most 2^d when keys are codes."""
    size = max(_MIN_BUCKET, 1 << max(int(n) - 1, 0).bit_length())
    return min(size, 1 << d) if d <= MAX_CODE_BITS else size


def pair_grid(grid: tuple[int, ...], d: int) -> list[int]:
    """The pair counts run at dimension ``d``: with distinct keys (``d <= 30``) at most ``2^d``, and ``2^d`` itself
    (every possible key stored) when the grid reaches past it."""
    if d > MAX_CODE_BITS or grid[-1] <= (1 << d):
        return list(grid)
    return [n for n in grid if n < (1 << d)] + [1 << d]


def _sweep(
    memory: str, grid: tuple[int, ...], d: int, width: int, config: Config, key: jax.Array, progress: Progress
) -> dict:
    """Recall rates over the pair grid at dimension ``d`` (NaN where not run), with the capacities read off them."""
    pairs = pair_grid(grid, d)
    rates = np.full(len(pairs), np.nan)
    buckets = [_bucket_of(n, d) for n in pairs]
    stopped = False
    for b, n_pad in enumerate(sorted(set(buckets))):
        members = [j for j, size in enumerate(buckets) if size == n_pad]
        first = members[0]
        # two consecutive points below the threshold: the capacity is read off, and larger n only recall less
        stopped = stopped or (first >= 2 and bool(np.all(rates[first - 2 : first] < config.threshold)))
        if stopped:
            continue
        trial_keys = jax.random.split(jax.random.fold_in(key, b), config.num_trials)
        # pad the counts to a length fixed per bucket size, so every d reuses the bucket's compilation
        slots = sum(n_pad // 2 < n <= n_pad for n in grid) + 1
        ns = jnp.asarray([pairs[j] for j in members] + [pairs[members[-1]]] * (slots - len(members)), jnp.int32)
        got, ok = _sweep_bucket(
            memory, trial_keys, ns, jnp.int32(d), n_pad, width, config.eval_pairs, jnp.float32(config.beta)
        )
        if not bool(ok):  # pragma: no cover - probability ~ exp(-n / 2) per draw
            raise RuntimeError(f"capacity: fewer than {n_pad} distinct keys drawn at d={d}; rerun with another seed")
        rates[members] = np.asarray(got)[: len(members)]
    progress.update(1)
    capacity = grid_capacity(pairs, rates, config.threshold)
    return {
        "pairs": pairs,
        "recall_rate": rates,
        "capacity": capacity,
        "capacity_interpolated": interpolated_capacity(pairs, rates, config.threshold),
        "saturated": capacity >= pairs[-1],  # every n run was recalled: the capacity is a lower bound
        "every_key": d <= MAX_CODE_BITS and capacity >= (1 << d),  # all 2^d possible keys stored and recalled
    }


def _modern_fit(dims, memories: dict) -> dict | None:
    """Fit ``A exp(c d)`` to the modern capacities that lie inside the grid (not saturated, first point passed)."""
    inside = [d for d in dims if not memories[str(d)]["saturated"] and memories[str(d)]["capacity"] > 0]
    if len(inside) < 2:
        return None
    c, a = fit_exponential(inside, [memories[str(d)]["capacity_interpolated"] for d in inside])
    residual = [
        math.log(memories[str(d)]["capacity_interpolated"]) - (math.log(a) + c * d) for d in inside
    ]  # log units
    return {"dims": inside, "rate": c, "prefactor": a, "max_abs_log_residual": float(np.max(np.abs(residual)))}


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    classical_dims = tuple(sorted(config.dims + config.extra_classical_dims))
    progress.total(len(classical_dims) + len(config.dims))
    memories: dict[str, dict] = {"classical": {}, "modern": {}}
    for name, grid, dims in (
        ("classical", config.classical_pairs, classical_dims),
        ("modern", config.modern_pairs, config.dims),
    ):
        for d in dims:
            progress.point(f"{name} d={d}, n up to {pair_grid(grid, d)[-1]}")
            sub = jax.random.fold_in(jax.random.fold_in(key, 0 if name == "classical" else 1), d)
            memories[name][str(d)] = _sweep(name, grid, d, max(dims), config, sub, progress)
    d_cl = np.asarray(classical_dims, dtype=float)
    cap_cl = np.asarray([memories["classical"][str(d)]["capacity_interpolated"] for d in classical_dims])
    curve = d_cl / np.log(d_cl)
    constant = float(np.dot(cap_cl, curve) / np.dot(curve, curve))  # least squares for capacity ~ k d / log d
    return {
        "dims": list(config.dims),
        "classical_dims": list(classical_dims),
        "classical_pairs": list(config.classical_pairs),
        "modern_pairs": list(config.modern_pairs),
        "memories": memories,
        "classical_fit_constant": constant,
        "classical_capacity_over_d_log_d": (cap_cl / curve).tolist(),
        "classical_theory_capacity": classical_theory_capacity(d_cl, config.threshold).tolist(),
        "modern_fit": _modern_fit(config.dims, memories["modern"]),
        "mean_field_rate": mean_field_rate(config.beta),
    }
