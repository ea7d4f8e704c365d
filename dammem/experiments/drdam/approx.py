"""DrDAM approximation error of MrDAM's energy and gradient vs the number of random features (Fig. 3).

Hoover et al. (2024), Sec. 4.1: ``2K`` distinct random binary patterns in ``{0, 1/sqrt(D)}^D``; ``K`` are stored in
MrDAM (the RBF energy of eq. 11, :func:`dammem.energies.rbf_energy`) and, through ``T = sum_mu phi(xi_mu)`` (eq. 9),
in DrDAM (:mod:`dammem.drdam`). Queries: **at** the stored patterns, **near** them (``0.1 D`` bits flipped) and
**far** (the other ``K`` patterns). For each ``D``, ``beta`` and ``Y`` the mean absolute errors of eq. 14,

    MAE_E = (1/K) sum_b |E_b - E^_b|,    MAE_grad = (1/K) sum_b ||grad E_b - grad E^_b||,

are averaged over trials (each trial draws its own patterns and features; trials are vectorised). The "random
guess" error follows the paper: DrDAM's energy (gradient) at ``K`` fresh random patterns against MrDAM's at the
reference queries, averaged over ``Y``; the figure draws its maximum over ``beta``. Corollary 1 predicts errors of
order ``sqrt(D / Y)``: the figure draws that slope, and the summary fits the log-log slope of the error in ``Y``.
Queries whose kernel-sum estimate falls below the log clip (see :mod:`dammem.drdam.memory`) are counted.

The bound curves: Fig. 3 draws the theoretical bound of Theorem 2 on the gradient errors. Its per-query term is
Lemma 3 (eq. 33; eq. 13 is its sum over the ``L`` steps of a descent under Corollary 1's step size),

    ||grad E(x) - grad E^(x)|| <= 2 C_1 K exp(beta E(x)) sqrt(D / Y),

where assumption (A2) defines ``C_1`` by ``|k(x, x') - <phi(x), phi(x')>| <= C_1 sqrt(D / Y)`` for the kernel
``k = exp(-beta/2 ||x - x'||^2)``. The paper does not give the ``C_1`` it drew; here ``C_1`` is measured (ours):
the largest kernel error over the ``bound_pairs x bound_pairs`` pairs of near queries and stored patterns, times
``sqrt(Y / D)``, maximised over ``Y`` and trials (per ``D`` and ``beta``). The bound drawn for a query set is the mean
of eq. 33 over its queries (an upper bound of MAE_grad when every per-query bound holds); as in the paper it is drawn
only where it lies below the random-guess error.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eqs. 9, 11, 13, 14; Sec. 4.1, Fig. 3).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem import drdam
from dammem.experiments._base import Progress
from dammem.experiments.drdam.common import (
    QUERY_SETS,
    FeatureKind,
    Projection,
    check_sweep,
    drdam_values,
    loglog_slope,
    mrdam_values,
    trial_data,
)

__all__ = ["Config", "run", "bound_factor", "gradient_bound", "trends"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Approximation-error sweep.

    Attributes:
      dims: pattern dimensions ``D`` (each needs ``2^min(D, 20) >= 2 K`` distinct patterns).
      betas: inverse temperatures.
      num_features: the numbers of random projections ``Y`` (ascending).
      num_memories: ``K`` stored patterns (and ``K`` far queries).
      near_flip_fraction: fraction of bits flipped for the near queries (0.1 in the paper).
      kind: random feature map (``sincos`` in the paper's main text).
      projection: random projection kind.
      num_trials: independent draws of patterns and features, vectorised.
      bound_pairs: near queries and stored patterns (each) whose pairwise kernel errors measure ``C_1`` of eq. 33.
    """

    dims: tuple[int, ...] = (16, 64, 256)
    betas: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0)
    num_features: tuple[int, ...] = (256, 1024, 4096, 16384)
    num_memories: int = 500
    near_flip_fraction: float = 0.1
    kind: FeatureKind = "sincos"
    projection: Projection = "structured"
    num_trials: int = 2
    bound_pairs: int = 32

    def __post_init__(self):
        if not self.dims or any(d < 1 for d in self.dims):
            raise ValueError(f"dims must be a non-empty list of positive integers, got {list(self.dims)}")
        if self.num_memories < 1:
            raise ValueError(f"num_memories must be >= 1, got {self.num_memories}")
        for d in self.dims:
            if d < 63 and 2**d < 2 * self.num_memories:
                raise ValueError(
                    f"dims: D = {d} has only {2**d} binary patterns, fewer than 2 * num_memories = "
                    f"{2 * self.num_memories}"
                )
        if not 1 <= self.bound_pairs <= self.num_memories:
            raise ValueError(f"bound_pairs must lie in [1, num_memories = {self.num_memories}], got {self.bound_pairs}")
        check_sweep(self)


def bound_factor(energies, beta, num_memories: int) -> np.ndarray:
    """``K exp(beta E(x))`` of eq. 33 from MrDAM energies ``E(x)`` (float64; ``= 1 / b`` of Lemma 3's proof)."""
    return num_memories * np.exp(beta * np.asarray(energies, np.float64))


def gradient_bound(c1, factor, d: int, ys) -> np.ndarray:
    """Eq. 33 over ``Y``: ``2 C_1 factor sqrt(D / Y)`` with ``factor = K exp(beta E(x))`` (see :func:`bound_factor`)."""
    return 2.0 * c1 * factor * np.sqrt(d / np.asarray(ys, np.float64))


@jax.jit
def _references(stored, refs, betas):
    """MrDAM energies (trials, betas, 3, K) and gradients (trials, betas, 3, K, D) at the reference queries."""
    return jax.vmap(lambda st, rf: lax.map(lambda beta: mrdam_values(rf, st, beta), betas))(stored, refs)


@partial(jax.jit, static_argnums=(7, 8, 9, 10))
def _sweep_point(feature_keys, stored, refs, guess, e_refs, g_refs, betas, y: int, kind: str, projection: str, m: int):
    """For one Y: per trial and beta, [MAE_E, MAE_grad, guess_E, guess_grad, clipped] per query set, and the
    largest kernel error over ``m x m`` (near query, stored pattern) pairs (trials, betas)."""

    def trial(key, stored, refs, guess, e_ref_b, g_ref_b):
        features = drdam.make_features(kind, stored.shape[-1], y, key=key, projection=projection)

        def at_beta(args):
            beta, e_ref, g_ref = args  # (3, K), (3, K, D)
            T = drdam.encode(features, stored, beta)
            e_hat, g_hat = drdam_values(jnp.concatenate([refs, guess[None]]), T, features, beta)
            e_guess, g_guess = e_hat[3], g_hat[3]
            e_hat, g_hat = e_hat[:3], g_hat[:3]
            mae_e = jnp.mean(jnp.abs(e_ref - e_hat), -1)
            mae_g = jnp.mean(jnp.linalg.norm(g_ref - g_hat, axis=-1), -1)
            guess_e = jnp.mean(jnp.abs(e_ref - e_guess[None]), -1)
            guess_g = jnp.mean(jnp.linalg.norm(g_ref - g_guess[None], axis=-1), -1)
            # s < eps exactly when E^ > -log(eps) / beta (the log continuation lies above that value)
            clipped = jnp.mean(e_hat > -math.log(drdam.DEFAULT_EPS) / beta, -1)
            near, pats = refs[1, :m], stored[:m]
            k_hat = drdam.feature_map(features, near, beta) @ drdam.feature_map(features, pats, beta).T
            k = jnp.exp(-beta / 2 * jnp.sum((near[:, None] - pats[None]) ** 2, -1))
            return jnp.stack([mae_e, mae_g, guess_e, guess_g, clipped]), jnp.max(jnp.abs(k - k_hat))

        return lax.map(at_beta, (betas, e_ref_b, g_ref_b))  # (betas, 5, 3), (betas,)

    return jax.vmap(trial)(feature_keys, stored, refs, guess, e_refs, g_refs)  # (trials, betas, 5, 3), (trials, betas)


_METRICS = ("mae_energy", "mae_gradient", "guess_energy", "guess_gradient", "clip_fraction")


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.dims) * (1 + len(config.num_features)))
    betas = jnp.asarray(config.betas, jnp.float32)
    out = {m: {} for m in _METRICS}
    c1, bound = {}, {}
    for i, d in enumerate(config.dims):
        progress.point(f"D={d} MrDAM references")
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        stored, refs, guess, feature_keys = trial_data(trial_keys, d, config.num_memories, config.near_flip_fraction)
        e_refs, g_refs = _references(stored, refs, betas)  # MrDAM does not depend on Y
        progress.update(1)
        per_y, kernel_errors = [], []
        for y in config.num_features:
            progress.point(f"D={d} Y={y}")
            point, kernel_error = _sweep_point(
                feature_keys,
                stored,
                refs,
                guess,
                e_refs,
                g_refs,
                betas,
                y,
                config.kind,
                config.projection,
                config.bound_pairs,
            )
            per_y.append(np.asarray(point))
            kernel_errors.append(np.asarray(kernel_error, np.float64) * math.sqrt(y / d))  # (trials, betas)
            progress.update(1)
        values = np.stack(per_y, axis=-1)  # (trials, betas, 5, 3, Ys)
        for m, name in enumerate(_METRICS):
            out[name][str(d)] = {
                s: {
                    "mean": values[:, :, m, j].mean(0),
                    "sem": values[:, :, m, j].std(0) / math.sqrt(config.num_trials),
                }
                for j, s in enumerate(QUERY_SETS)
            }
        c1_d = np.max(np.stack(kernel_errors), axis=(0, 1))  # (betas,)
        c1[str(d)] = c1_d
        factors = bound_factor(np.asarray(e_refs), np.asarray(config.betas)[None, :, None, None], config.num_memories)
        bound[str(d)] = {
            s: np.stack(
                [
                    gradient_bound(c1_d[b], factors[:, b, j].mean(), d, config.num_features)
                    for b in range(len(config.betas))
                ]
            )
            for j, s in enumerate(QUERY_SETS)
        }
    slopes = {
        metric: {
            str(d): {
                s: [loglog_slope(config.num_features, row) for row in out[metric][str(d)][s]["mean"]]
                for s in QUERY_SETS
            }
            for d in config.dims
        }
        for metric in ("mae_energy", "mae_gradient")
    }
    return {
        "dims": list(config.dims),
        "betas": list(config.betas),
        "num_features": list(config.num_features),
        "num_memories": config.num_memories,
        **out,
        "c1": c1,
        "gradient_bound": bound,
        "bound_holds": bound_holds(out, bound, config.dims),
        "slopes": slopes,
        "trends": trends(out, config.dims),
    }


def bound_holds(out: dict, bound: dict, dims) -> dict:
    """Per query set: the fraction of (D, beta, Y) points where the measured MAE_grad is at most the eq. 33 bound,
    and the median ratio bound / MAE_grad over the points where the bound is below the random guess (tightness)."""
    result = {}
    for s in QUERY_SETS:
        holds, ratios = [], []
        for d in dims:
            mae = np.asarray(out["mae_gradient"][str(d)][s]["mean"], np.float64)  # (betas, Ys)
            b = np.asarray(bound[str(d)][s], np.float64)
            guess = np.asarray(out["guess_gradient"][str(d)][s]["mean"], np.float64).mean(-1, keepdims=True)
            holds += list((mae <= b).ravel())
            shown = (b < guess) & (mae > 0)
            ratios += list((b / np.where(mae > 0, mae, 1.0))[shown])
        result[s] = {
            "fraction": float(np.mean(holds)),
            "median_ratio_shown": float(np.median(ratios)) if ratios else None,
            "points_shown": len(ratios),
        }
    return result


def trends(out: dict, dims) -> dict:
    """Fractions of (D, beta, set) curves where Fig. 3's observations hold.

    ``falls_with_y``: the error at the largest ``Y`` is below the error at the smallest; ``rises_with_beta``: at the
    largest ``Y``, the error at each beta is at least the error at the previous beta (per D and set);
    ``lowest_at_stored``: at the largest ``Y``, ``at <= near`` and ``at <= far`` (per D and beta).
    """
    result = {}
    for metric in ("mae_energy", "mae_gradient"):
        falls, rises, lowest = [], [], []
        for d in dims:
            curves = {s: np.asarray(out[metric][str(d)][s]["mean"]) for s in QUERY_SETS}  # (betas, Ys)
            for s in QUERY_SETS:
                falls += list(curves[s][:, -1] < curves[s][:, 0])
                rises += list(np.diff(curves[s][:, -1]) >= 0)
            at = curves["at"][:, -1]
            lowest += list((at <= curves["near"][:, -1]) & (at <= curves["far"][:, -1]))
        result[metric] = {
            "falls_with_y": float(np.mean(falls)),
            "rises_with_beta": float(np.mean(rises)),
            "lowest_at_stored": float(np.mean(lowest)),
        }
    return result
