"""Complete occluded MNIST digits with MrDAM energy descent and sparse Hopfield retrieval (visible pixels clamped).

Memories are bundled MNIST test digits (pixels in [0, 1], D = 784); each query is one stored digit with part of it
hidden (set to 0). Two retrievals complete it while the visible pixels stay clamped:

- MrDAM: gradient descent on the RBF energy (seed 001 eq. 11, gradient eq. 18) until ``|dE| < tol``;
- sparse Hopfield: the fixed-point map ``x <- Xi entmax_alpha(beta sim(Xi, x))`` (seed 002 eq. 2.4; alpha = 2 is
  sparsemax).

Metrics per method (averaged over queries and trials): mean squared error on the hidden pixels, recall accuracy
(the memory nearest to the completed image is the query's own), steps taken. References: the occluded query's
error and the accuracy of picking the memory nearest on the visible pixels alone. Trials (different memory sets)
are vectorised over PRNG keys.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from dammem import datasets
from dammem.dynamics import retrieve
from dammem.energies import rbf_energy, sparse_hopfield_energy, sparse_hopfield_update
from dammem.experiments._base import Progress, markdown_table, pyplot, save_figure

Occlusion = Literal["bottom", "top", "left", "right", "random"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Quickstart settings (the defaults run in well under a minute on a laptop CPU).

    Attributes:
      num_memories: digits stored per trial (K).
      num_queries: stored digits that are occluded and completed per trial.
      num_trials: independent memory sets (vectorised).
      occlusion: which half is hidden, or ``random`` pixels.
      visible_fraction: fraction of pixels left visible; required by ``occlusion: random``, refused otherwise.
      beta_rbf, step_size, max_steps, tol: MrDAM energy descent (tol on ``|dE|``).
      beta_sparse, alpha, similarity, sparse_steps: sparse Hopfield fixed-point retrieval.
      data_path: optional path to the full MNIST files (mnist.npz or the idx directory); default: bundled subset.
    """

    num_memories: int = 100
    num_queries: int = 16
    num_trials: int = 4
    occlusion: Occlusion = "bottom"
    visible_fraction: float | None = None
    beta_rbf: float = 0.5
    step_size: float = 1.0
    max_steps: int = 300
    tol: float = 1e-5
    beta_sparse: float = 0.05
    alpha: float = 2.0
    similarity: Literal["dot", "neg_sq_l2", "neg_l1", "cosine"] = "neg_sq_l2"
    sparse_steps: int = 50
    data_path: str | None = None

    def __post_init__(self):
        for name in ("num_memories", "num_queries", "num_trials", "max_steps", "sparse_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_queries > self.num_memories:
            raise ValueError(f"num_queries ({self.num_queries}) cannot exceed num_memories ({self.num_memories})")
        for name in ("beta_rbf", "step_size", "beta_sparse"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if not 1.0 <= self.alpha <= 2.0:
            raise ValueError(f"alpha must lie in [1, 2], got {self.alpha}")
        if self.occlusion == "random":
            if self.visible_fraction is None or not 0.0 < self.visible_fraction < 1.0:
                raise ValueError(f"occlusion 'random' needs visible_fraction in (0, 1), got {self.visible_fraction}")
        elif self.visible_fraction is not None:
            raise ValueError(f"visible_fraction is only used with occlusion 'random' (occlusion is {self.occlusion!r})")


def _visible(config: Config, key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """(num_queries, D) masks, True = visible."""
    if config.occlusion == "random":
        return datasets.random_pixel_mask(key, (config.num_queries, shape[0] * shape[1]), config.visible_fraction)
    half = datasets.half_occlusion_mask(shape, config.occlusion)
    return jnp.broadcast_to(half, (config.num_queries, half.shape[0]))


def _trial(config: Config, pool: jax.Array, image_shape: tuple[int, int], key: jax.Array) -> dict:
    """One memory set: store, occlude, complete with both methods (queries vmapped)."""
    k_mem, k_query, k_mask = jax.random.split(key, 3)
    memories = pool[jax.random.choice(k_mem, pool.shape[0], (config.num_memories,), replace=False)]
    targets = jax.random.choice(k_query, config.num_memories, (config.num_queries,), replace=False)
    truth = memories[targets]
    visible = _visible(config, k_mask, image_shape)
    queries = datasets.occlude(truth, visible)

    def mrdam(q, vis):
        return retrieve(
            rbf_energy,
            q,
            (memories, config.beta_rbf),
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
            (memories, config.beta_sparse, config.alpha),
            update=update,
            clamp=vis,
            max_steps=config.sparse_steps,
            tol=config.tol,
        )

    hidden = (~visible).astype(truth.dtype)
    n_hidden = jnp.maximum(hidden.sum(-1), 1.0)

    def scores(completed):
        mse = jnp.sum(jnp.square(completed - truth) * hidden, -1) / n_hidden
        nearest = jnp.argmin(jnp.sum(jnp.square(completed[:, None] - memories[None]), -1), -1)
        return mse, nearest == targets

    out = {"queries": queries, "truth": truth}
    for name, method in (("mrdam", mrdam), ("sparse_hopfield", sparse)):
        result = jax.vmap(method)(queries, visible)
        mse, correct = scores(result.x)
        out[name] = {
            "x": result.x,
            "mse": mse,
            "correct": correct,
            "steps": result.steps,
            "converged": result.converged,
        }
    query_mse, _ = scores(queries)
    visible_dist = jnp.sum(jnp.square((queries[:, None] - memories[None]) * visible[:, None]), -1)
    out["occluded_mse"] = query_mse
    out["visible_nn_correct"] = jnp.argmin(visible_dist, -1) == targets
    return out


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    x, _ = datasets.load_mnist(config.data_path)
    if config.num_memories > x.shape[0]:
        raise ValueError(f"num_memories ({config.num_memories}) exceeds the {x.shape[0]} available digits")
    pool = datasets.to_patterns(x, scale="unit")
    progress.total(2)
    trial = jax.jit(jax.vmap(partial(_trial, config, pool, x.shape[1:3])))
    keys = jax.random.split(key, config.num_trials)
    compiled = trial.lower(keys).compile()
    progress.update(1)
    out = jax.device_get(compiled(keys))
    progress.update(1)
    methods = {}
    for name in ("mrdam", "sparse_hopfield"):
        r = out[name]
        methods[name] = {
            "hidden_mse": float(np.mean(r["mse"])),
            "recall_accuracy": float(np.mean(r["correct"])),
            "mean_steps": float(np.mean(r["steps"])),
            "max_steps_taken": int(np.max(r["steps"])),
            "converged_fraction": float(np.mean(r["converged"])),
        }
    show = min(8, config.num_queries)
    return {
        "methods": methods,
        "occluded_query_mse": float(np.mean(out["occluded_mse"])),
        "visible_nearest_neighbour_accuracy": float(np.mean(out["visible_nn_correct"])),
        "examples": {
            "image_shape": list(x.shape[1:3]),
            "query": out["queries"][0, :show],
            "mrdam": out["mrdam"]["x"][0, :show],
            "sparse_hopfield": out["sparse_hopfield"]["x"][0, :show],
            "truth": out["truth"][0, :show],
        },
    }


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()

    ex = results["examples"]
    rows = [
        ("query", ex["query"]),
        ("MrDAM", ex["mrdam"]),
        ("sparse Hopfield", ex["sparse_hopfield"]),
        ("truth", ex["truth"]),
    ]
    cols = len(ex["truth"])
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.4 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(
                np.clip(np.asarray(images[c], dtype=float).reshape(ex["image_shape"]), 0, 1),
                cmap="gray",
                vmin=0,
                vmax=1,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"MNIST completion, {config.occlusion} occluded, K={config.num_memories}", fontsize=9)
    save_figure(fig, out_dir / "completions.png")

    table = markdown_table(
        ["method", "hidden-pixel MSE", "recall accuracy", "mean steps", "converged"],
        [
            [name, m["hidden_mse"], m["recall_accuracy"], m["mean_steps"], m["converged_fraction"]]
            for name, m in results["methods"].items()
        ]
        + [
            ["occluded query (no retrieval)", results["occluded_query_mse"], "-", "-", "-"],
            ["nearest memory on visible pixels", "-", results["visible_nearest_neighbour_accuracy"], "-", "-"],
        ],
    )
    return (
        f"{config.num_trials} trials x {config.num_queries} queries, K = {config.num_memories} memories, "
        f"occlusion: {config.occlusion}.\n\n{table}\n\n![completions](completions.png)\n"
    )
