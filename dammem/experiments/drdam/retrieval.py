"""DrDAM vs MrDAM fixed points: normalised Hamming error of the retrieved memories vs Y and beta (Fig. 4A).

Hoover et al. (2024), Sec. 4.2: the patterns and queries of Sec. 4.1 (see :mod:`dammem.experiments.drdam.approx`:
``2K`` distinct binary patterns in ``{0, 1/sqrt(D)}^D``, ``K`` stored; queries at, near and far from them). From the
same queries, energy descent (eq. 5, :func:`dammem.retrieve`) runs on MrDAM's energy (eq. 11) and on DrDAM's
(eq. 9) until ``|E(x_t) - E(x_{t-1})| < tol`` or ``max_steps``. Both fixed points are binarised at
``1 / (2 sqrt(D))`` and compared with eq. 15,

    Delta_H = (1 / sqrt(D)) sum_i |ceil(x*_i) - ceil(x^*_i)|,

the fraction of the ``D`` bits on which they differ (0: same memory, about 0.5: unrelated). Trials (patterns and
features) are vectorised. The paper runs the dynamics "until convergence" with this criterion (Sec. 4.2); a descent
that reaches ``max_steps`` first is unfinished. The results give the fraction of MrDAM and DrDAM descents that
converged, and Delta_H both over all queries and over the queries where both descents converged (``finished``), so
that unfinished descents are never compared silently. The summary also reports how often MrDAM itself returns the
stored pattern a query came from.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eqs. 5, 9, 11, 15; Sec. 4.2, Fig. 4A).
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
from dammem.energies import rbf_energy
from dammem.experiments._base import Progress
from dammem.experiments.drdam.common import (
    QUERY_SETS,
    FeatureKind,
    Projection,
    check_sweep,
    descend,
    trial_data,
)

__all__ = ["Config", "run", "binarize", "hamming_error", "finished_mean"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Retrieval sweep.

    Attributes:
      dims: pattern dimensions ``D``.
      betas: inverse temperatures.
      num_features: numbers of random projections ``Y`` (ascending).
      num_memories: ``K`` stored patterns.
      num_queries: queries per set (the first ones of the ``K``; at most ``K``).
      near_flip_fraction: fraction of bits flipped for the near queries.
      kind: random feature map.
      projection: random projection kind.
      step_size: energy-descent step ``eta`` (eq. 5).
      max_steps: at most this many steps.
      tol: stop when the energy changes by less than this.
      num_trials: independent draws of patterns and features, vectorised.
    """

    dims: tuple[int, ...] = (16, 64)
    betas: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0)
    num_features: tuple[int, ...] = (256, 1024, 4096)
    num_memories: int = 100
    num_queries: int = 32
    near_flip_fraction: float = 0.1
    kind: FeatureKind = "sincos"
    projection: Projection = "structured"
    step_size: float = 0.1
    max_steps: int = 1000
    tol: float = 1e-6
    num_trials: int = 2

    def __post_init__(self):
        if not self.dims or any(d < 1 or (d < 63 and 2**d < 2 * self.num_memories) for d in self.dims):
            raise ValueError(
                f"dims must be positive integers with at least 2 * num_memories binary patterns, got {list(self.dims)}"
            )
        if self.num_memories < 1:
            raise ValueError(f"num_memories must be >= 1, got {self.num_memories}")
        if not 1 <= self.num_queries <= self.num_memories:
            raise ValueError(f"num_queries must lie in [1, num_memories = {self.num_memories}], got {self.num_queries}")
        check_sweep(self)


def binarize(x: jax.Array) -> jax.Array:
    """``ceil(x)`` of eq. 15 as bits: True where ``x >= 1 / (2 sqrt(D))``."""
    return x >= 0.5 / math.sqrt(x.shape[-1])


def hamming_error(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """Eq. 15: ``(1/sqrt(D)) sum_i |ceil(x_i) - ceil(x^_i)|`` with ``ceil`` in ``{0, 1/sqrt(D)}``, i.e. the fraction of
    differing bits (over the last axis)."""
    return jnp.mean(binarize(x) != binarize(x_hat), axis=-1)


@partial(jax.jit, static_argnums=(3, 4))
def _mrdam_points(stored, refs, betas, q, max_steps, step_size, tol):
    """MrDAM fixed points (trials, betas, 3, q, D), whether they equal the stored pattern (trials, betas, 2, q) and
    whether the descent converged (trials, betas, 3, q)."""

    def trial(stored, refs):
        d = stored.shape[-1]
        queries = refs[:, :q].reshape(-1, d)

        def at_beta(beta):
            out = descend(rbf_energy, queries, (stored, beta), step_size=step_size, max_steps=max_steps, tol=tol)
            x = out.x.reshape(3, q, d)
            recalled = jnp.all(binarize(x[:2]) == binarize(stored[:q])[None], -1)
            return x, recalled, out.converged.reshape(3, q)

        return lax.map(at_beta, betas)

    return jax.vmap(trial)(stored, refs)


@partial(jax.jit, static_argnums=(5, 6, 7, 8, 9))
def _drdam_errors(feature_keys, stored, refs, betas, mr_points, y, q, kind, projection, max_steps, step_size, tol):
    """Delta_H per query (trials, betas, 3, q) and whether DrDAM's descent converged (trials, betas, 3, q) for one Y."""

    def trial(key, stored, refs, points):
        d = stored.shape[-1]
        queries = refs[:, :q].reshape(-1, d)
        features = drdam.make_features(kind, d, y, key=key, projection=projection)

        def at_beta(args):
            beta, mr = args
            T = drdam.encode(features, stored, beta)
            energy_args = (T, features, beta)
            out = descend(drdam.energy, queries, energy_args, step_size=step_size, max_steps=max_steps, tol=tol)
            return hamming_error(mr, out.x.reshape(3, q, d)), out.converged.reshape(3, q)

        return lax.map(at_beta, (betas, points))

    return jax.vmap(trial)(feature_keys, stored, refs, mr_points)


def finished_mean(errors, finished) -> np.ndarray:
    """Mean of ``errors`` over the entries where ``finished`` holds, over the first axis (trials) and the last
    (queries) of ``(trials, ..., q)`` arrays; nan where none finished."""
    errors, finished = np.asarray(errors, np.float64), np.asarray(finished, bool)
    count = finished.sum((0, -1))
    total = np.where(finished, errors, 0.0).sum((0, -1))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.dims) * (1 + len(config.num_features)))
    betas = jnp.asarray(config.betas, jnp.float32)
    fixed = (config.step_size, config.tol)
    errors, finished_errors, converged, both, mr_converged, recall = {}, {}, {}, {}, {}, {}
    for i, d in enumerate(config.dims):
        progress.point(f"D={d} MrDAM descents")
        # the same trial keys as drdam_approx draw the same patterns and features
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        stored, refs, _, feature_keys = trial_data(trial_keys, d, config.num_memories, config.near_flip_fraction)
        mr_points, recalled, mr_conv = _mrdam_points(stored, refs, betas, config.num_queries, config.max_steps, *fixed)
        mr_conv = np.asarray(mr_conv)  # (trials, betas, 3, q)
        progress.update(1)
        recall[str(d)] = {s: np.asarray(recalled[:, :, j]).mean((0, 2)) for j, s in enumerate(QUERY_SETS[:2])}
        mr_converged[str(d)] = {s: mr_conv[:, :, j].mean((0, 2)) for j, s in enumerate(QUERY_SETS)}
        per_y, conv_y = [], []
        for y in config.num_features:
            progress.point(f"D={d} Y={y} DrDAM descents")
            err, conv = _drdam_errors(
                feature_keys,
                stored,
                refs,
                betas,
                mr_points,
                y,
                config.num_queries,
                config.kind,
                config.projection,
                config.max_steps,
                *fixed,
            )
            per_y.append(np.asarray(err))
            conv_y.append(np.asarray(conv))
            progress.update(1)
        err = np.stack(per_y, -2)  # (trials, betas, 3, Ys, q)
        conv = np.stack(conv_y, -2)
        done = conv & mr_conv[:, :, :, None, :]
        per_trial = err.mean(-1)  # (trials, betas, 3, Ys)
        errors[str(d)] = {
            s: {"mean": per_trial[:, :, j].mean(0), "sem": per_trial[:, :, j].std(0) / math.sqrt(config.num_trials)}
            for j, s in enumerate(QUERY_SETS)
        }
        finished_errors[str(d)] = {s: finished_mean(err[:, :, j], done[:, :, j]) for j, s in enumerate(QUERY_SETS)}
        converged[str(d)] = {s: conv[:, :, j].mean((0, -1)) for j, s in enumerate(QUERY_SETS)}
        both[str(d)] = {s: done[:, :, j].mean((0, -1)) for j, s in enumerate(QUERY_SETS)}
    return {
        "dims": list(config.dims),
        "betas": list(config.betas),
        "num_features": list(config.num_features),
        "num_memories": config.num_memories,
        "num_queries": config.num_queries,
        "criterion": f"|E(x_t) - E(x_(t-1))| < {config.tol:g} within {config.max_steps} steps of size "
        f"{config.step_size:g}",
        "hamming_error": errors,
        "hamming_error_finished": finished_errors,
        "drdam_converged": converged,
        "mrdam_converged": mr_converged,
        "both_converged": both,
        "mrdam_recall": recall,
    }
