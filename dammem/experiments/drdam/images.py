"""Completing occluded CIFAR-10 images with MrDAM and with DrDAM (Figs. 1, 2 and 4B).

Hoover et al. (2024), App. D and Sec. 4.2: ``K`` images are flattened, scaled to ``[0, 1/sqrt(D)]`` (``D = 3072``
for CIFAR-10; the bundled subset of :func:`dammem.datasets.load_cifar10`) and stored in MrDAM (eq. 11) and in DrDAM
(eq. 9, ``sincos`` features). Each query is a stored image whose bottom rows are hidden (set to 0); the visible
pixels are clamped (their gradient is zeroed) and energy descent (eq. 5) runs on both energies from the same query.
The completions are compared on the hidden pixels (mean absolute error in 0-255 pixel units / 255), and the PNG shows,
for each ``beta``, query, DrDAM (one column per ``Y``), MrDAM and the original. Descents stop when
``|E(x_t) - E(x_{t-1})| < tol`` (the paper's criterion) or at ``max_steps``; the converged fractions are reported.
The paper's Figs. 1-2 use 64 x 64 x 3 Tiny ImageNet images (``D = 12288``), which are not bundled: this experiment
uses CIFAR-10 (``D = 3072``). The summary gives the parameter count of each memory:
``K D`` numbers for MrDAM; ``F = 2 Y`` numbers in ``T`` for DrDAM (whatever ``K``), plus the stored random
features (only a key for ``gaussian``; ``O(Y)`` signs and norms for ``structured``). With ``2 Y < K D`` DrDAM
compresses the memories, as in Fig. 2. Trials (feature draws) are vectorised; the PNG shows the first.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eqs. 5, 9, 11; Figs. 1, 2, 4B; App. D).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dammem import drdam
from dammem.datasets import load_cifar10, to_patterns
from dammem.energies import rbf_energy
from dammem.experiments._base import Progress
from dammem.experiments.drdam.common import FeatureKind, Projection, check_sweep, descend

__all__ = ["Config", "run", "bottom_rows_mask"]

IMAGE_SHAPE = (32, 32, 3)


@dataclasses.dataclass(frozen=True)
class Config:
    """Image completion.

    Attributes:
      num_images: ``K`` images stored (the first ones of the bundled CIFAR-10 subset, at most 500).
      hidden_fraction: fraction of image rows hidden from the bottom (0.5 in Fig. 4B, 0.4 in Fig. 2).
      betas: inverse temperatures (60 in App. D; Fig. 4B compares several).
      num_features: numbers of random projections ``Y`` (ascending); DrDAM has ``2 Y`` parameters for sincos.
      kind: random feature map.
      projection: random projection kind (``structured`` makes ``D = 3072`` cheap on a CPU).
      step_size: energy-descent step (0.1 in App. D).
      max_steps: at most this many steps.
      tol: stop when the energy changes by less than this.
      num_trials: independent feature draws, vectorised.
      num_shown: images drawn in the PNG.
    """

    num_images: int = 20
    hidden_fraction: float = 0.4
    betas: tuple[float, ...] = (20.0, 60.0)
    num_features: tuple[int, ...] = (16384, 65536)
    kind: FeatureKind = "sincos"
    projection: Projection = "structured"
    step_size: float = 0.1
    max_steps: int = 1000
    tol: float = 1e-7
    num_trials: int = 1
    num_shown: int = 4

    def __post_init__(self):
        if not 1 <= self.num_images <= 500:
            raise ValueError(f"num_images must lie in [1, 500] (the bundled CIFAR-10 subset), got {self.num_images}")
        if not 0 < self.hidden_fraction < 1:
            raise ValueError(f"hidden_fraction must lie in (0, 1), got {self.hidden_fraction}")
        if not 1 <= self.num_shown <= self.num_images:
            raise ValueError(f"num_shown must lie in [1, num_images = {self.num_images}], got {self.num_shown}")
        check_sweep(self)


def bottom_rows_mask(image_shape: tuple[int, int, int], hidden_fraction: float) -> jax.Array:
    """Flattened (C order) visibility mask hiding the bottom ``round(hidden_fraction * H)`` rows (True = visible)."""
    h, w, c = image_shape
    visible_rows = h - int(round(hidden_fraction * h))
    visible = np.broadcast_to((np.arange(h) < visible_rows)[:, None, None], (h, w, c))
    return jnp.asarray(visible.reshape(-1))


@partial(jax.jit, static_argnums=4)
def _mrdam(memories, queries, clamp, beta, max_steps, step_size, tol):
    out = descend(
        rbf_energy,
        queries,
        (memories, beta),
        step_size=step_size,
        max_steps=max_steps,
        tol=tol,
        clamp=clamp,
        sequential=True,
    )
    return out.x, out.steps, out.converged


@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _drdam(keys, memories, queries, clamp, y, kind, projection, max_steps, beta, step_size, tol):
    def trial(key):
        features = drdam.make_features(kind, memories.shape[1], y, key=key, projection=projection)
        T = drdam.encode(features, memories, beta)
        out = descend(
            drdam.energy,
            queries,
            (T, features, beta),
            step_size=step_size,
            max_steps=max_steps,
            tol=tol,
            clamp=clamp,
            sequential=True,
        )
        return out.x, out.steps, out.converged

    return jax.vmap(trial)(keys)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.betas) * (1 + len(config.num_features)))
    images, labels = load_cifar10(limit=config.num_images)
    d = math.prod(IMAGE_SHAPE)
    memories = to_patterns(images) / math.sqrt(d)  # [0, 1/sqrt(D)], App. D / Sec. 4.2
    clamp = bottom_rows_mask(IMAGE_SHAPE, config.hidden_fraction)
    queries = jnp.where(clamp, memories, 0.0)
    hidden = ~np.asarray(clamp)
    scale = math.sqrt(d)  # back to [0, 1] pixel units
    keys = jax.random.split(key, config.num_trials)
    width = 2 if config.kind in ("sincos", "expexp") else 1

    def hidden_mae(a, b):
        return float(np.abs(np.asarray(a) - np.asarray(b))[..., hidden].mean() * scale)

    per_beta = []
    arrays = {  # the images drawn, in [0, 1] pixel units (saved to results.npz)
        "query": np.asarray(queries[: config.num_shown]) * scale,
        "truth": np.asarray(memories[: config.num_shown]) * scale,
    }
    for beta_value in config.betas:
        beta = jnp.float32(beta_value)
        progress.point(f"beta={beta_value:g} MrDAM")
        mr_x, mr_steps, mr_conv = _mrdam(memories, queries, clamp, beta, config.max_steps, config.step_size, config.tol)
        mr_steps = np.asarray(mr_steps)
        progress.update(1)
        per_y = []
        for y in config.num_features:
            progress.point(f"beta={beta_value:g} Y={y} DrDAM")
            x, steps, conv = _drdam(
                keys,
                memories,
                queries,
                clamp,
                y,
                config.kind,
                config.projection,
                config.max_steps,
                beta,
                config.step_size,
                config.tol,
            )
            storage = drdam.make_features(config.kind, d, y, key=keys[0], projection=config.projection).storage_size
            x, steps = np.asarray(x), np.asarray(steps)  # (trials, K, D), (trials, K)
            per_y.append(
                {
                    "num_features": y,
                    "drdam_parameters": width * y,
                    "feature_storage": storage,
                    "mae_vs_truth": [hidden_mae(x[t], memories) for t in range(config.num_trials)],
                    "mae_vs_mrdam": [hidden_mae(x[t], mr_x) for t in range(config.num_trials)],
                    "clamped_unchanged": bool(np.all(x[:, :, ~hidden] == np.asarray(queries)[None][:, :, ~hidden])),
                    "converged_fraction": float(np.mean(np.asarray(conv))),
                    "max_steps_taken": int(steps.max()),
                }
            )
            arrays[f"drdam_beta{beta_value:g}_Y{y}"] = x[0, : config.num_shown] * scale
            progress.update(1)
        per_beta.append(
            {
                "beta": beta_value,
                "mrdam_mae_vs_truth": hidden_mae(mr_x, memories),
                "mrdam_converged_fraction": float(np.mean(np.asarray(mr_conv))),
                "mrdam_max_steps_taken": int(mr_steps.max()),
                "per_y": per_y,
            }
        )
        arrays[f"mrdam_beta{beta_value:g}"] = np.asarray(mr_x[: config.num_shown]) * scale
    return {
        "labels": np.asarray(labels).tolist(),
        "image_dim": d,
        "num_images": config.num_images,
        "hidden_fraction": config.hidden_fraction,
        "mrdam_parameters": config.num_images * d,
        "query_mae_vs_truth": hidden_mae(queries, memories),
        "per_beta": per_beta,
        "arrays": arrays,
    }
