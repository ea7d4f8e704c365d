"""Complete occluded MNIST digits with MrDAM energy descent and sparse Hopfield retrieval (visible pixels clamped).

Memories are MNIST test digits (pixels in [0, 1], D = 784); each query is one stored digit with part of its pixels
hidden (set to 0). Two retrievals complete it while the visible pixels stay clamped:

- MrDAM: gradient descent ``x <- x - eta grad E(x)`` on the RBF energy ``E(x) = -(1/beta) log sum_mu
  exp(-beta/2 ||xi_mu - x||^2)`` (Hoover et al. (2024), eqs. 5 and 11, gradient eq. 18) until ``|dE| < tol``, the
  gradient of the visible pixels zeroed (their App. D). With ``eta = 1`` one step is the fixed-point
  map ``x <- softmax(-beta/2 ||Xi - x||^2) Xi`` on the hidden pixels.
- sparse Hopfield: the fixed-point map ``x <- Xi^T entmax_alpha(beta sim(Xi, x))`` (Wu et al. (2024), eq. 2.4;
  alpha = 2 is sparsemax), stopped by its energy (eq. 2.2).

The default follows Wu et al. (2024), Sec. 4.1: half of each query's pixels hidden at random. ``occlusion`` hides a
half of the image instead (Hoover et al. (2024) hide the bottom). Pixels here are in [0, 1]; in the pixel scale
``[0, 1/sqrt(D)]`` of Hoover et al. (2024) the same energy has inverse temperature ``beta D``.

Metrics per method (averaged over queries and trials): mean squared error on the hidden pixels, recall accuracy
(the memory nearest to the completed image is the query's own), steps taken, and for the misses whether the
retrieved memory has less ink on the hidden pixels than the target (the zero fill of the hidden pixels pulls the
first update towards such memories). Baselines: the occluded query itself, and the memory nearest on the visible
pixels alone (its accuracy, and the error of copying its hidden pixels). A beta sweep (multiples of both betas)
runs on the same memory sets and queries. Trials (different memory sets) are vectorised over PRNG keys.

References:
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from dammem import corruptions, datasets
from dammem.dynamics import retrieve
from dammem.energies import rbf_energy, sparse_hopfield_energy, sparse_hopfield_update
from dammem.experiments._base import ConfigError, Progress

__all__ = ["Config", "run", "occlusion_masks", "DEFAULT_VISIBLE_FRACTION"]

Occlusion = Literal["random", "bottom", "top", "left", "right"]
METHODS = {"mrdam": "MrDAM", "sparse_hopfield": "sparse Hopfield"}  # result keys -> names in the report
DEFAULT_VISIBLE_FRACTION = 0.5  # Wu et al. (2024), Sec. 4.1: 50% of the pixels masked


@dataclasses.dataclass(frozen=True)
class Config:
    """Quickstart settings (the defaults run in seconds on a laptop CPU).

    Attributes:
      num_memories: digits stored per trial (K); at most the digits available (2000 in the bundled subset).
      num_queries: stored digits that are occluded and completed per trial.
      num_trials: independent memory sets (vectorised).
      occlusion: ``random`` pixels, or which half of the image is hidden.
      visible_fraction: fraction of pixels left visible by ``occlusion: random`` (None: 0.5); refused otherwise.
      beta_rbf, step_size, max_steps, tol: MrDAM energy descent (tol on ``|dE|``).
      beta_sparse, alpha, similarity, sparse_steps: sparse Hopfield fixed-point retrieval.
      beta_sweep: multipliers applied to both betas for the sweep in the report (empty: no sweep).
      data_path: optional path to the full MNIST files (mnist.npz or the idx directory); default: bundled subset.
    """

    num_memories: int = 100
    num_queries: int = 16
    num_trials: int = 4
    occlusion: Occlusion = "random"
    visible_fraction: float | None = None
    beta_rbf: float = 0.4
    step_size: float = 1.0
    max_steps: int = 300
    tol: float = 1e-5
    beta_sparse: float = 0.03
    alpha: float = 2.0
    similarity: Literal["dot", "neg_sq_l2"] = "neg_sq_l2"
    sparse_steps: int = 50
    beta_sweep: tuple[float, ...] = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    data_path: str | None = None

    def __post_init__(self):
        for name in ("num_memories", "num_queries", "num_trials", "max_steps", "sparse_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_queries > self.num_memories:
            raise ValueError(f"num_queries ({self.num_queries}) cannot exceed num_memories ({self.num_memories})")
        if self.data_path is None and self.num_memories > datasets.BUNDLED_COUNTS["mnist"]:
            raise ValueError(
                f"num_memories ({self.num_memories}) exceeds the {datasets.BUNDLED_COUNTS['mnist']} digits of the "
                "bundled MNIST subset; lower it or set data_path to the full MNIST files"
            )
        if self.data_path is not None and not Path(self.data_path).exists():
            raise ValueError(
                f"data_path {self.data_path!r} does not exist; give mnist.npz or the directory of the MNIST idx "
                "files, or leave data_path unset for the bundled subset"
            )
        for name in ("beta_rbf", "step_size", "beta_sparse"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if any(not m > 0 for m in self.beta_sweep) or list(self.beta_sweep) != sorted(set(self.beta_sweep)):
            raise ValueError(f"beta_sweep must be strictly increasing multipliers > 0, got {list(self.beta_sweep)}")
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if not 1.0 <= self.alpha <= 2.0:
            raise ValueError(f"alpha must lie in [1, 2], got {self.alpha}")
        if self.visible_fraction is not None:
            if self.occlusion != "random":
                raise ValueError(
                    f"visible_fraction is only used with occlusion 'random' (occlusion is {self.occlusion!r})"
                )
            if not 0.0 < self.visible_fraction < 1.0:
                raise ValueError(f"visible_fraction must lie in (0, 1), got {self.visible_fraction}")


def occlusion_masks(config: Config, key: jax.Array, image_shape: tuple[int, int]) -> jax.Array:
    """(num_queries, H * W) boolean masks, True = visible: exactly ``round(visible_fraction * D)`` random pixels per
    query for ``occlusion: random``, else the same half-image mask for every query."""
    d = image_shape[0] * image_shape[1]
    if config.occlusion == "random":
        fraction = DEFAULT_VISIBLE_FRACTION if config.visible_fraction is None else config.visible_fraction
        return corruptions.random_pixel_mask(key, (config.num_queries, d), fraction)
    half = corruptions.half_occlusion_mask(image_shape, config.occlusion)
    return jnp.broadcast_to(half, (config.num_queries, d))


def _complete(config: Config, memories, queries, visible, beta_rbf, beta_sparse) -> dict:
    """Both retrievals of every query (vmapped) at the given (traced) betas."""

    def mrdam(q, vis):
        return retrieve(
            rbf_energy,
            q,
            (memories, beta_rbf),
            step_size=config.step_size,
            clamp=vis,
            max_steps=config.max_steps,
            tol=config.tol,
        )

    energy = partial(sparse_hopfield_energy, similarity=config.similarity)
    update = partial(sparse_hopfield_update, similarity=config.similarity)

    def sparse(q, vis):
        return retrieve(
            energy,
            q,
            (memories, beta_sparse, config.alpha),
            update=update,
            clamp=vis,
            max_steps=config.sparse_steps,
            tol=config.tol,
        )

    return {
        name: jax.vmap(method)(queries, visible) for name, method in (("mrdam", mrdam), ("sparse_hopfield", sparse))
    }


def _trial(config: Config, pool: jax.Array, image_shape: tuple[int, int], betas: jax.Array, key: jax.Array) -> dict:
    """One memory set: store, occlude, complete with both methods at the configured betas and over the sweep."""
    k_mem, k_query, k_mask = jax.random.split(key, 3)
    memories = pool[jax.random.choice(k_mem, pool.shape[0], (config.num_memories,), replace=False)]
    targets = jax.random.choice(k_query, config.num_memories, (config.num_queries,), replace=False)
    truth = memories[targets]
    visible = occlusion_masks(config, k_mask, image_shape)
    queries = corruptions.occlude(truth, visible)
    hidden = (~visible).astype(truth.dtype)
    n_hidden = jnp.maximum(hidden.sum(-1), 1.0)
    hidden_ink = jnp.sum(jnp.square(memories[None]) * hidden[:, None], -1)  # (Q, K): memories' ink where hidden

    def scores(completed):
        mse = jnp.sum(jnp.square(completed - truth) * hidden, -1) / n_hidden
        nearest = jnp.argmin(jnp.sum(jnp.square(completed[:, None] - memories[None]), -1), -1)
        return mse, nearest

    out = {"queries": queries, "truth": truth, "visible": visible}
    main = _complete(config, memories, queries, visible, config.beta_rbf, config.beta_sparse)
    for name, result in main.items():
        mse, nearest = scores(result.x)
        correct = nearest == targets
        rows = jnp.arange(config.num_queries)
        out[name] = {
            "x": result.x,
            "mse": mse,
            "correct": correct,
            "darker_miss": ~correct & (hidden_ink[rows, nearest] < hidden_ink[rows, targets]),
            "steps": result.steps,
            "converged": result.converged,
        }

    def sweep_point(factor):
        done = _complete(config, memories, queries, visible, factor * config.beta_rbf, factor * config.beta_sparse)
        summary = {}
        for name, result in done.items():
            mse, nearest = scores(result.x)
            summary[name] = {
                "hidden_mse": mse.mean(),
                "recall_accuracy": (nearest == targets).mean(),
                "mean_steps": result.steps.mean(),
            }
        return summary

    out["sweep"] = jax.vmap(sweep_point)(betas)
    out["occluded_mse"], _ = scores(queries)
    visible_dist = jnp.sum(jnp.square((queries[:, None] - memories[None]) * visible[:, None]), -1)
    nn = jnp.argmin(visible_dist, -1)
    out["visible_nn_correct"] = nn == targets
    out["visible_nn_mse"], _ = scores(jnp.where(visible, queries, memories[nn]))
    return out


def _load(config: Config) -> np.ndarray:
    """The digits, with data problems turned into config errors that name ``data_path`` / ``num_memories``."""
    try:
        x, _ = datasets.load_mnist(config.data_path)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"config.data_path: {err}") from err
    if config.num_memories > x.shape[0]:
        raise ConfigError(
            f"config.num_memories: {config.num_memories} exceeds the {x.shape[0]} digits in "
            f"{config.data_path or 'the bundled MNIST subset'}"
        )
    return x


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    x = _load(config)
    pool = datasets.to_patterns(x, scale="unit")
    progress.total(2)
    betas = jnp.asarray(config.beta_sweep, jnp.float32)
    trial = jax.jit(jax.vmap(partial(_trial, config, pool, x.shape[1:3], betas)))
    keys = jax.random.split(key, config.num_trials)
    trials = f"{config.num_trials} trial{'s' if config.num_trials > 1 else ''}"
    progress.point(
        f"compile: {trials}, K={config.num_memories}, {config.num_queries} queries, "
        f"{len(config.beta_sweep)} betas in the sweep"
    )
    compiled = trial.lower(keys).compile()
    progress.update(1)
    progress.point(f"retrieve: {trials} x {config.num_queries} queries")
    out = jax.device_get(compiled(keys))
    progress.update(1)
    methods = {}
    for name in METHODS:
        r = out[name]
        methods[name] = {
            "beta": config.beta_rbf if name == "mrdam" else config.beta_sparse,
            "hidden_mse": float(np.mean(r["mse"])),
            "recall_accuracy": float(np.mean(r["correct"])),
            "misses": int(np.sum(~r["correct"])),
            "misses_to_less_hidden_ink": int(np.sum(r["darker_miss"])),
            "mean_steps": float(np.mean(r["steps"])),
            "max_steps_taken": int(np.max(r["steps"])),
            "converged_fraction": float(np.mean(r["converged"])),
        }
    sweep = {"multiplier": list(config.beta_sweep)}
    for name in METHODS:
        base = config.beta_rbf if name == "mrdam" else config.beta_sparse
        sweep[name] = {"beta": [m * base for m in config.beta_sweep]}
        for metric, values in out["sweep"][name].items():
            sweep[name][metric] = np.mean(values, axis=0).tolist()  # trials first, then sweep points
    show = min(8, config.num_queries)
    return {
        "num_queries_total": config.num_trials * config.num_queries,
        "pixels": int(x.shape[1] * x.shape[2]),
        "methods": methods,
        "beta_sweep": sweep,
        "occluded_query_mse": float(np.mean(out["occluded_mse"])),
        "visible_nearest_neighbour_accuracy": float(np.mean(out["visible_nn_correct"])),
        "visible_nearest_neighbour_mse": float(np.mean(out["visible_nn_mse"])),
        "image_shape": list(x.shape[1:3]),
        "arrays": {  # the first trial's first queries, for the figure; saved to results.npz
            "visible": out["visible"][0, :show],
            "query": out["queries"][0, :show],
            "mrdam": out["mrdam"]["x"][0, :show],
            "sparse_hopfield": out["sparse_hopfield"]["x"][0, :show],
            "truth": out["truth"][0, :show],
        },
    }
