"""Ablation of the random feature map and projection kind on 16-dimensional data (App. C, Fig. 6).

Hoover et al. (2024), App. C compare the ``cos``, ``sincos``, ``exp`` and ``expexp`` feature maps (eq. 8 and App. C)
as approximations of MrDAM's energy and gradient on 16-dimensional data scaled to ``[0, 1/sqrt(D)]``: 500 points
stored, 400 others as new queries. The paper used the UCI Letter data, which is not bundled; this experiment uses real
16-dimensional data from the bundled MNIST subset: each 28 x 28 image average-pooled to 4 x 4 (7 x 7 blocks), then
scaled to ``[0, 1/4]``. Besides the feature maps it sweeps the projection kinds of :mod:`dammem.drdam.projections`
(i.i.d. Gaussian, block-orthogonal, structured SORF, stored). For every (kind, projection, beta, Y) the mean absolute
errors of eq. 14 are computed at the stored points and at the new queries, averaged over feature draws (vectorised).

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eqs. 8, 14; App. C, Fig. 6).
  - F. X. Yu, A. T. Suresh, K. Choromanski, D. Holtmann-Rice, S. Kumar (2016). Orthogonal Random Features.
    NeurIPS 2016.
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
from dammem.datasets import load_mnist
from dammem.experiments._base import Progress
from dammem.experiments.drdam.common import check_sweep, drdam_values, loglog_slope, mrdam_values

__all__ = ["Config", "run", "pooled_mnist"]

QUERY_SETS = ("stored", "new")
_POOL = 7  # 28 / 7 = 4: 16 dimensions


@dataclasses.dataclass(frozen=True)
class Config:
    """Basis ablation.

    Attributes:
      kinds: feature maps compared.
      projections: projection kinds compared.
      betas: inverse temperatures.
      num_features: numbers of random projections ``Y`` (ascending).
      num_stored: points stored (500 in the paper).
      num_new: other points used as new queries (400 in the paper).
      num_trials: feature draws, vectorised.
    """

    kinds: tuple[str, ...] = ("cos", "sincos", "exp", "expexp")
    projections: tuple[str, ...] = ("gaussian", "orthogonal", "structured")
    betas: tuple[float, ...] = (1.0, 10.0, 50.0, 200.0)
    num_features: tuple[int, ...] = (64, 256, 1024, 4096)
    num_stored: int = 500
    num_new: int = 400
    num_trials: int = 2

    def __post_init__(self):
        for name, allowed in (("kinds", drdam.FEATURE_KINDS), ("projections", drdam.PROJECTIONS)):
            values = list(getattr(self, name))
            if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct values from {list(allowed)}, got {values}")
        if self.num_stored < 1 or self.num_new < 1 or self.num_stored + self.num_new > 2000:
            raise ValueError(
                f"num_stored and num_new must be >= 1 with num_stored + num_new <= 2000 (the bundled MNIST images), "
                f"got {self.num_stored} and {self.num_new}"
            )
        check_sweep(self)


def pooled_mnist(n: int) -> jax.Array:
    """The first ``n`` bundled MNIST images average-pooled to 4 x 4, flattened and scaled to ``[0, 1/sqrt(16)]``."""
    images, _ = load_mnist(limit=n)
    x = np.asarray(images, np.float64).reshape(n, 4, _POOL, 4, _POOL).mean((2, 4)) / 255.0
    return jnp.asarray(x.reshape(n, 16) / math.sqrt(16), jnp.float32)


@partial(jax.jit, static_argnums=2)
def _references(data, betas, num_stored):
    """MrDAM energies (betas, 2 sets, n) and gradients (betas, 2 sets, n, D) at the stored points and new queries."""
    stored, new = data[:num_stored], data[num_stored:]
    return lax.map(lambda beta: tuple(zip(*[mrdam_values(q, stored, beta) for q in (stored, new)])), betas)


@partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _ablation_point(trial_keys, betas, data, e_refs, g_refs, num_stored, kinds, projection, y):
    """(trials, kinds, betas, 2 metrics, 2 sets) for one projection kind and Y."""
    stored = data[:num_stored]
    sets = (stored, data[num_stored:])

    def trial(key):
        def at_beta(args):
            beta, e_ref, g_ref = args
            per_kind = []
            for kind in kinds:  # one key: every kind uses the same projection rows
                features = drdam.make_features(kind, stored.shape[1], y, key=key, projection=projection)
                T = drdam.encode(features, stored, beta)
                metrics = []
                for j, q in enumerate(sets):
                    e_hat, g_hat = drdam_values(q, T, features, beta)
                    mae_e = jnp.mean(jnp.abs(e_ref[j] - e_hat))
                    mae_g = jnp.mean(jnp.linalg.norm(g_ref[j] - g_hat, axis=-1))
                    metrics.append(jnp.stack([mae_e, mae_g]))
                per_kind.append(jnp.stack(metrics, -1))  # (2 metrics, 2 sets)
            return jnp.stack(per_kind)  # (kinds, 2, 2)

        return jnp.moveaxis(lax.map(at_beta, (betas, e_refs, g_refs)), 0, 1)  # (kinds, betas, 2, 2)

    return jax.vmap(trial)(trial_keys)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.projections) * len(config.num_features))
    data = pooled_mnist(config.num_stored + config.num_new)
    betas = jnp.asarray(config.betas, jnp.float32)
    trial_keys = jax.random.split(key, config.num_trials)
    e_refs, g_refs = _references(data, betas, config.num_stored)  # tuples over the two query sets
    values, sems = {}, {}
    for projection in config.projections:
        per_y = []
        for y in config.num_features:
            progress.point(f"{projection} Y={y}")
            out = _ablation_point(
                trial_keys, betas, data, e_refs, g_refs, config.num_stored, tuple(config.kinds), projection, y
            )
            per_y.append(np.asarray(out))
            progress.update(1)
        stacked = np.stack(per_y, -1)  # (trials, kinds, betas, 2, 2, Ys)
        values[projection] = stacked.mean(0)
        sems[projection] = stacked.std(0) / math.sqrt(config.num_trials)
    result = {}
    for m, metric in enumerate(("mae_energy", "mae_gradient")):
        for name, source in ((metric, values), (metric + "_sem", sems)):
            result[name] = {
                kind: {p: {s: source[p][k, :, m, j] for j, s in enumerate(QUERY_SETS)} for p in config.projections}
                for k, kind in enumerate(config.kinds)
            }
    best = {}
    for b, beta in enumerate(config.betas):
        grad_new = {
            (kind, p): float(result["mae_gradient"][kind][p]["new"][b][-1])
            for kind in config.kinds
            for p in config.projections
        }
        best[f"{beta:g}"] = "/".join(min(grad_new, key=grad_new.get))
    slopes = {
        kind: {
            p: [loglog_slope(config.num_features, row) for row in result["mae_gradient"][kind][p]["new"]]
            for p in config.projections
        }
        for kind in config.kinds
    }
    return {
        "kinds": list(config.kinds),
        "projections": list(config.projections),
        "betas": list(config.betas),
        "num_features": list(config.num_features),
        **result,
        "best_gradient_new": best,
        "gradient_slopes_new": slopes,
    }
