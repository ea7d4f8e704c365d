"""U-Hop memory retrieval on real images: a learned kernel against modern Hopfield baselines, each with a beta sweep.

Wu et al. (2024), Sec. 4.1 and App. F.2-F.3: store ``K`` images, corrupt each one, retrieve it with one update
``x <- Xi^T Sep(beta sim(Xi, x))`` (their eq. 2.4), and report the sum of squared pixel differences between the
retrieved and the true image (pixels in [0, 1]); U-Hop first fits the kernel ``Phi(u) = W u`` by ``N`` steps of SGD
(learning rate 1) on the separation loss (eq. 2.6, ``t = 2``) and normalises the rows of ``W`` (Alg. 1).

Methods (similarity, separation), each also as ``NAME+uhop`` with the similarity taken between features ``W u``
(``dammem.similarities.kernelize``):

- ``modern_hopfield``: dot product, softmax (Ramsauer et al. (2021));
- ``sparse_hopfield``: dot product, sparsemax (Hu et al. (2023));
- ``polynomial10``: dot product, ``p ~ max(beta s, 0)^10`` normalised, the 10th-order polynomial dense associative
  memory of Krotov & Hopfield (2016) as a one-step normalised separation (:func:`dammem.separations.polynomial10`,
  computed as ``softmax(10 log max(beta s, 0))``, so it cannot overflow; it does not depend on beta, which the sweep
  shows);
- ``l2_hopfield`` and ``manhattan_hopfield``: softmax of the negated Euclidean and Manhattan distances (Millidge et
  al. (2022); distances enter negated: :func:`dammem.similarities.neg_l2`, :func:`dammem.similarities.neg_l1`);
- ``cosine_hopfield``: softmax of the cosine similarity, a baseline outside the paper: the learned ``W`` has unit
  rows, which changes the scale of the scores, and the cosine removes scale altogether.

Every method runs at every ``beta`` of ``betas`` on the same memory sets and queries, so the gain of the learned
kernel can be told apart from a gain in effective inverse temperature: the report puts the paper's ``beta = 1``
beside each method's best ``beta`` (chosen on these same queries, an optimistic choice made equally for every
method).

Sweeps (``metrics.rows``, one row per method, beta and point):

- ``memory_size``: every ``K`` of ``memory_sizes``, queries with ``mask_fraction`` of their pixels hidden;
- ``noise``: at ``K = noise_memory_size``, queries with added Gaussian noise of level ``noise_levels``. With
  ``noise_scale = "pixel_std"`` (default) the level is the standard deviation of independent noise on every pixel
  value and the result is clipped to [0, 1], as the public code of Wu et al. (2024) does; the paper's text says
  instead that the level alters "the mean of the Gaussian vectors" (Sec. 4.1) and is "the norm of the sampled
  noise" (App. F.3). ``noise_scale = "norm"`` follows App. F.3: noise of L2 norm equal to the level
  (:func:`dammem.corruptions.gaussian_noise`), which at the paper's levels (<= 2) is small next to an image (an
  MNIST digit has norm about 9), so its curves are flat;
- ``stage1_steps``: at ``K = stage1_memory_size`` with masked queries, the U-Hop methods after each ``N`` of
  ``stage1_grid`` (one fit, snapshots of ``W``).

Stage I runs in the span of the memories (:func:`fit_in_span`): SGD's gradients ``dL/dW = G Xi`` lie in the row
space of ``Xi``, so with ``Xi = C Q^T`` (``Q`` (D, r) orthonormal, ``r = min(K, D)``) the fit of ``V = W Q`` on the
coordinates ``C`` gives ``W_N = W_0 + (V_N - V_0) Q^T`` exactly, at ``K r F`` instead of ``K D F`` per step (30x
less on CIFAR-10 at K = 100). It equals :func:`dammem.uhop.fit_kernel` with SGD (tested).

Masking. ``plain`` (default) hides exactly ``round(mask_fraction * H W)`` whole pixels (all channels) per query,
set to 0. ``inverted_dropout`` is the protocol of the public U-Hop code: every entry is dropped with probability
``mask_fraction`` and the survivors are scaled by ``1 / (1 - mask_fraction)`` (x2 at 50%). That code also fits the
kernel on the first half of each memory set only: ``fit_fraction = 0.5`` (default 1: all memories).

Theory check: the fraction of memories that sparse retrieval (sparsemax) returns exactly, ``T(xi_mu) = xi_mu``
(Wu et al. (2024), eq. 2.9), and the fraction meeting the separation condition of eq. 2.10, with the inner
product, the initial kernel and the fitted kernel (:func:`dammem.uhop.exact_retrieval_mask`,
:func:`dammem.uhop.separation_condition_mask`).

Memory sets are drawn without replacement from the loaded images (the bundled subsets by default: 2000 MNIST test
digits, 500 CIFAR-10 training images; ``data_path`` reads the full standard files). Repeats (independent memory
sets, corruptions and kernels) are vectorised over PRNG keys.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Krotov, Hopfield (2016). Dense Associative Memory for Pattern Recognition. NeurIPS.
  - Millidge, Salvatori, Song, Lukasiewicz, Bogacz (2022). Universal Hopfield Networks. ICML.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem import corruptions, datasets, uhop
from dammem.experiments._base import ConfigError, Progress
from dammem.experiments.uhop.common import BASE_METHODS, METHODS, method_update

__all__ = [
    "Config",
    "run",
    "BASE_METHODS",
    "METHODS",
    "method_update",
    "corrupt_masked",
    "corrupt_noisy",
    "fit_in_span",
]

_HIGHEST = lax.Precision.HIGHEST  # kernel features at full float32 precision (no TF32 on GPUs)
_BLOCK_ELEMENTS = 1 << 23  # queries x memories x D entries handled at once (bounds the distance computations)

Dataset = Literal["mnist", "cifar10"]
Masking = Literal["plain", "inverted_dropout"]
Split = Literal["train", "test"]
Loss = Literal["average", "max", "deep"]
Init = Literal["gaussian", "identity", "orthogonal"]
NoiseScale = Literal["pixel_std", "norm"]

DEFAULT_BETAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
PAPER_NOISE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 1.0, 1.2, 1.4, 2.0)  # Wu et al. (2024), Table 4
PAPER_STAGE1_GRID = (1, 10, 20, 50, 100, 200, 500, 1000)  # Table 4, kernel epochs
PAPER_MEMORY_SIZES = (10, 20, 30, 50, 100, 200, 500)  # Table 4


@dataclasses.dataclass(frozen=True)
class Config:
    """U-Hop retrieval benchmark.

    Attributes:
      dataset: ``mnist`` (D = 784) or ``cifar10`` (D = 3072).
      data_path: the standard files (see :mod:`dammem.datasets`); None: the bundled subset.
      split: which split to draw memories from; None: ``test`` for MNIST, ``train`` for CIFAR-10 (the bundled ones).
      memory_sizes: the K of the memory-size sweep (increasing).
      masking: ``plain`` or ``inverted_dropout`` (the public code's protocol; module docstring).
      mask_fraction: fraction of pixels hidden (``plain``) or drop probability (``inverted_dropout``), in (0, 1).
      fit_fraction: fraction of each memory set the kernel is fitted on (the first ``round(f K)``, at least 2).
      noise_levels: levels of the Gaussian query noise for the noise sweep (see ``noise_scale``).
      noise_scale: ``pixel_std`` (the level is the per-pixel standard deviation, result clipped to [0, 1], the
        public code's protocol) or ``norm`` (the level is the L2 norm of the noise vector, App. F.3).
      noise_memory_size: K of the noise sweep (one of ``memory_sizes``).
      stage1_steps: Stage I steps N of the U-Hop methods in the memory-size and noise sweeps.
      stage1_grid: the N of the Stage I sweep (increasing).
      stage1_memory_size: K of the Stage I sweep (one of ``memory_sizes``).
      betas: inverse temperatures run for every method (increasing, must include the paper's 1.0).
      update_steps: retrieval updates per query (the paper uses one).
      repeats: independent memory sets, corruptions and kernels per point (vectorised).
      temperature: t of the separation loss.
      learning_rate: SGD learning rate of Stage I.
      loss: separation loss of Stage I (``average`` eq. 2.6, ``max`` App. G.2, ``deep`` eq. 3.2).
      init: initial kernel (``gaussian`` as the public code).
      num_features: F of the kernel; None: D.
      methods: the methods run (names from :data:`METHODS`).
    """

    dataset: Dataset = "mnist"
    data_path: str | None = None
    split: Split | None = None
    memory_sizes: tuple[int, ...] = PAPER_MEMORY_SIZES
    masking: Masking = "plain"
    mask_fraction: float = 0.5
    fit_fraction: float = 1.0
    noise_levels: tuple[float, ...] = PAPER_NOISE_LEVELS
    noise_scale: NoiseScale = "pixel_std"
    noise_memory_size: int = 100
    stage1_steps: int = 100
    stage1_grid: tuple[int, ...] = PAPER_STAGE1_GRID
    stage1_memory_size: int = 100
    betas: tuple[float, ...] = DEFAULT_BETAS
    update_steps: int = 1
    repeats: int = 5
    temperature: float = 2.0
    learning_rate: float = 1.0
    loss: Loss = "average"
    init: Init = "gaussian"
    num_features: int | None = None
    methods: tuple[str, ...] = METHODS

    def __post_init__(self):
        sizes = list(self.memory_sizes)
        if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 2:
            raise ValueError(f"memory_sizes must be strictly increasing integers >= 2, got {sizes}")
        for name in ("noise_memory_size", "stage1_memory_size"):
            if getattr(self, name) not in sizes:
                raise ValueError(f"{name} must be one of memory_sizes {sizes}, got {getattr(self, name)}")
        split = self.split or ("test" if self.dataset == "mnist" else "train")
        if self.data_path is None:
            bundled = datasets.BUNDLED_COUNTS[self.dataset]
            if split != ("test" if self.dataset == "mnist" else "train"):
                raise ValueError(
                    f"split {split!r}: the bundled {self.dataset} subset holds the "
                    f"{'test' if self.dataset == 'mnist' else 'train'} split only; set data_path for the other"
                )
            if sizes[-1] > bundled:
                raise ValueError(
                    f"memory_sizes: {sizes[-1]} exceeds the {bundled} images of the bundled {self.dataset} subset; "
                    "lower it or set data_path to the full files"
                )
        elif not Path(self.data_path).exists():
            raise ValueError(f"data_path {self.data_path!r} does not exist; leave it unset for the bundled subset")
        for name in ("mask_fraction",):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        if not 0.0 < self.fit_fraction <= 1.0:
            raise ValueError(f"fit_fraction must lie in (0, 1], got {self.fit_fraction}")
        levels = list(self.noise_levels)
        if not levels or levels != sorted(set(levels)) or levels[0] < 0:
            raise ValueError(f"noise_levels must be strictly increasing levels >= 0, got {levels}")
        grid = list(self.stage1_grid)
        if not grid or grid != sorted(set(grid)) or grid[0] < 1:
            raise ValueError(f"stage1_grid must be strictly increasing integers >= 1, got {grid}")
        if self.stage1_steps < 0:
            raise ValueError(f"stage1_steps must be >= 0, got {self.stage1_steps}")
        betas = list(self.betas)
        if not betas or betas != sorted(set(betas)) or betas[0] <= 0:
            raise ValueError(f"betas must be strictly increasing values > 0, got {betas}")
        if 1.0 not in betas:
            raise ValueError(f"betas must include 1.0 (the beta of Wu et al. (2024)), got {betas}")
        if not 1 <= self.update_steps <= 1000:
            raise ValueError(f"update_steps must lie in [1, 1000], got {self.update_steps}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        for name in ("temperature", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.num_features is not None and self.num_features < 1:
            raise ValueError(f"num_features must be None or >= D, got {self.num_features}")
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct names from {list(METHODS)}, got {list(self.methods)}")


# ----------------------------------------------------------------------------------------------------------------
# Retrieval


def _errors_one_set(memories, queries, targets, weight, betas, *, methods, update_steps, batch):
    """(M, nb) mean over queries of the squared error ``sum_i (x_i - target_i)^2`` of every method and beta."""
    # the memories' features, once for all queries (only the +uhop methods use W)
    uses_kernel = any(m.endswith("+uhop") for m in methods)
    feats = jnp.matmul(memories, weight.T, precision=_HIGHEST) if uses_kernel else None

    def per_query(xt):
        x0, target = xt

        def per_beta(beta):
            errors = []
            for m in methods:
                f = feats if m.endswith("+uhop") else None
                step = partial(method_update, m, memories, weight, beta=beta, features=f)
                x = lax.fori_loop(1, update_steps, lambda _, v, step=step: step(v), step(x0))
                errors.append(jnp.sum(jnp.square(x - target)))
            return jnp.stack(errors)

        return jax.vmap(per_beta)(betas).T  # (M, nb)

    per = lax.map(per_query, (queries, targets), batch_size=batch)  # (B, M, nb)
    return per.mean(axis=0)


@partial(jax.jit, static_argnames=("methods", "update_steps", "batch"))
def _errors(memories, queries, targets, weights, betas, *, methods, update_steps, batch):
    """(R, M, nb): :func:`_errors_one_set` vectorised over the repeats (leading axis of the first four)."""
    fn = partial(_errors_one_set, methods=methods, update_steps=update_steps, batch=batch)
    return jax.vmap(fn, in_axes=(0, 0, 0, 0, None))(memories, queries, targets, weights, betas)


def corrupt_masked(key: jax.Array, patterns: jax.Array, config: Config, image_shape: tuple[int, ...]) -> jax.Array:
    """Masked queries (n, D): ``plain`` hides exactly ``round(mask_fraction * H W)`` whole pixels (set to 0);
    ``inverted_dropout`` drops each entry with probability ``mask_fraction`` and scales the rest by
    ``1 / (1 - mask_fraction)``."""
    if config.masking == "inverted_dropout":
        return corruptions.inverted_dropout(key, patterns, config.mask_fraction)
    pixels = image_shape[0] * image_shape[1]
    channels = patterns.shape[-1] // pixels
    visible = corruptions.random_pixel_mask(key, (patterns.shape[0], pixels), 1.0 - config.mask_fraction)
    return corruptions.occlude(patterns, jnp.repeat(visible, channels, axis=-1))


def corrupt_noisy(key: jax.Array, patterns: jax.Array, level, scale: NoiseScale) -> jax.Array:
    """Noisy queries (n, D): ``clip(x + level * g, 0, 1)``, ``g ~ N(0, I)`` per pixel value (``pixel_std``, the
    public code's protocol), or ``x + level * g / ||g||`` (``norm``, :func:`dammem.corruptions.gaussian_noise`)."""
    if scale == "norm":
        return corruptions.gaussian_noise(key, patterns, level)
    noise = jax.random.normal(key, patterns.shape, patterns.dtype)
    return jnp.clip(patterns + level * noise, 0.0, 1.0)


class SpanFit(NamedTuple):
    """Stage I kernels in the span of the memories: ``W_s = unit_rows(initial + steps[s] @ basis.T)``.

    Attributes:
      initial: (F, D) the initial kernel ``W_0``.
      basis: (D, r) orthonormal columns spanning the memories, ``r = min(K, D)``.
      steps: (S, F, r) ``V_s - V_0`` after each ``save_at[s]`` steps (``V = W Q``).
    """

    initial: jax.Array
    basis: jax.Array
    steps: jax.Array


@partial(jax.jit, static_argnames=("save_at", "loss", "init", "num_features"))
def fit_in_span(memories, key, temperature, learning_rate, *, save_at, loss, init, num_features) -> SpanFit:
    """Stage I of Wu et al. (2024), Alg. 1 lines 1-3 (SGD on the separation loss, eq. 2.6), in the memories' span.

    ``Xi = C Q^T`` with ``Q`` from the QR decomposition of ``Xi^T``; since the loss depends on ``W`` only through
    ``Xi W^T = C (W Q)^T``, SGD on ``V = W Q`` with memories ``C`` moves ``W`` by ``(V_N - V_0) Q^T``, the SGD path of
    ``W`` itself. The unit-row kernel after ``save_at[s]`` steps is :func:`kernel_at` ``(fit, s)``.
    """
    dim = memories.shape[1]
    initial = uhop.init_kernel(key, (num_features, dim), init, memories.dtype)
    basis, _ = jnp.linalg.qr(memories.T)  # (D, r)
    coords = jnp.matmul(memories, basis, precision=_HIGHEST)  # (K, r)
    v0 = jnp.matmul(initial, basis, precision=_HIGHEST)  # (F, r)
    grad = jax.grad(lambda v: uhop.separation_loss(v, coords, temperature=temperature, loss=loss))

    def step(v, _):
        return v - learning_rate * grad(v), None

    v, done, snapshots = v0, 0, []
    for n in save_at:
        if n > done:
            v, _ = lax.scan(step, v, None, length=n - done)
            done = n
        snapshots.append(v - v0)
    return SpanFit(initial, basis, jnp.stack(snapshots))


@partial(jax.jit, static_argnums=1)
def kernel_at(fit: SpanFit, s: int) -> jax.Array:
    """(F, D) the unit-row kernel after ``save_at[s]`` steps (Alg. 1, line 4)."""
    delta = jnp.matmul(fit.steps[s], fit.basis.T, precision=_HIGHEST)
    return uhop.normalize_rows(fit.initial + delta)


# ----------------------------------------------------------------------------------------------------------------
# Running


def _load(config: Config) -> tuple[np.ndarray, tuple[int, ...]]:
    split = config.split or ("test" if config.dataset == "mnist" else "train")
    loader = datasets.load_mnist if config.dataset == "mnist" else datasets.load_cifar10
    try:
        x, _ = loader(config.data_path, split)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"config.data_path: {err}") from err
    if config.memory_sizes[-1] > x.shape[0]:
        raise ConfigError(
            f"config.memory_sizes: {config.memory_sizes[-1]} exceeds the {x.shape[0]} images in "
            f"{config.data_path or 'the bundled subset'}"
        )
    return np.asarray(datasets.to_patterns(x, scale="unit")), tuple(x.shape[1:])


def _rows_from(errors, loss, methods, betas, dim, **fields) -> list[dict]:
    """Rows for one point: ``errors`` (R, M, nb), ``loss`` {method: (R,) separation losses}."""
    rows = []
    for i, m in enumerate(methods):
        for j, beta in enumerate(betas):
            e = np.asarray(errors[:, i, j], dtype=np.float64)
            std = float(e.std(ddof=1)) if e.size > 1 else 0.0
            row = dict(fields)
            row.update(
                method=m,
                uhop=m.endswith("+uhop"),
                beta=float(beta),
                error_mean=float(e.mean()),
                error_std=std,
                error_per_pixel_mean=float(e.mean()) / dim,
                error_per_pixel_std=std / dim,
                separation_loss_mean=float(np.mean(loss[m])),
            )
            if not row["uhop"]:
                row["stage1_steps"] = None
            rows.append(row)
    return rows


def _loss_error_rows(memory_size: int, stage1_steps: int | None, losses, errors) -> list[dict]:
    """One point of the separation-loss vs error scatter per repeat: ``losses`` and ``errors`` (R,)."""
    return [
        dict(
            memory_size=memory_size,
            stage1_steps=stage1_steps,
            repeat=r,
            separation_loss=float(losses[r]),
            error=float(errors[r]),
        )
        for r in range(len(errors))
    ]


@partial(jax.jit, static_argnums=(2, 3, 4))
def draw(key: jax.Array, patterns: jax.Array, k_size: int, config: Config, image_shape: tuple[int, ...]):
    """One point's random draws, per repeat (leading axis ``repeats``): ``K`` memories without replacement from
    ``patterns``, their masked queries, and the keys of the kernel init and of the query noise."""
    keys = jax.random.split(key, config.repeats)
    parts = jax.vmap(lambda k: jax.random.split(k, 4))(keys)  # memories, mask, kernel, noise
    index = jax.vmap(lambda k: jax.random.choice(k, patterns.shape[0], (k_size,), replace=False))(parts[:, 0])
    memories = patterns[index]  # (R, K, D)
    masked = jax.vmap(lambda k, m: corrupt_masked(k, m, config, image_shape))(parts[:, 1], memories)
    return memories, masked, parts[:, 2], parts[:, 3]


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    patterns, image_shape = _load(config)
    pool, dim = patterns.shape
    num_features = dim if config.num_features is None else config.num_features
    if num_features < dim:
        raise ConfigError(f"config.num_features: {num_features} is below D = {dim}; the kernel needs F >= D")
    methods = tuple(config.methods)
    uhop_methods = tuple(m for m in methods if m.endswith("+uhop"))
    betas = jnp.asarray(config.betas, jnp.float32)
    # one stage per memory size (Stage I, masked queries, fixed points), then the noise and the Stage I sweeps
    grid_stage = bool(uhop_methods)
    progress.total(len(config.memory_sizes) + 1 + grid_stage)

    def fit(memories, keys, save_at):
        one = partial(fit_in_span, save_at=save_at, loss=config.loss, init=config.init, num_features=num_features)
        return jax.vmap(one, in_axes=(0, 0, None, None))(memories, keys, config.temperature, config.learning_rate)

    kernels_at = jax.jit(jax.vmap(kernel_at, in_axes=(0, None)), static_argnums=1)
    loss_fn = jax.jit(jax.vmap(lambda w, m, t: uhop.separation_loss(w, m, temperature=t), in_axes=(0, 0, None)))

    patterns_device = jnp.asarray(patterns)
    add_noise = jax.jit(jax.vmap(partial(corrupt_noisy, scale=config.noise_scale), in_axes=(0, 0, None)))

    def fractions(fn):
        """(R, nb) fraction of the memories for which ``fn(memories, W, beta, alpha=2)`` holds (sparsemax)."""
        per_beta = jax.vmap(lambda m, w, b: fn(m, w, beta=b, alpha=2.0).mean(), in_axes=(None, None, 0))
        return jax.jit(jax.vmap(per_beta, in_axes=(0, 0, None)))

    exact_fraction = fractions(uhop.exact_retrieval_mask)  # eq. 2.9
    condition_fraction = fractions(uhop.separation_condition_mask)  # eq. 2.10
    errors_of = partial(_errors, betas=betas, update_steps=config.update_steps)

    rows, fixed_points, loss_vs_error, timings = [], [], [], {}
    eye = jnp.broadcast_to(jnp.eye(num_features, dim, dtype=jnp.float32), (config.repeats, num_features, dim))
    for k_size in config.memory_sizes:
        t0 = time.perf_counter()
        progress.point(
            f"K={k_size}: Stage I ({config.stage1_steps} steps), {len(methods)} methods x {len(betas)} betas"
        )
        memories, masked, fit_keys, noise_keys = draw(
            jax.random.fold_in(key, k_size), patterns_device, k_size, config, image_shape
        )
        batch = max(1, _BLOCK_ELEMENTS // (k_size * max(dim, num_features)))

        grid = config.stage1_grid if k_size == config.stage1_memory_size and grid_stage else ()
        save_at = tuple(sorted({0, config.stage1_steps, *grid}))
        n_fit = max(2, round(config.fit_fraction * k_size))
        kernels = fit(memories[:, :n_fit], fit_keys, save_at)
        weight = kernels_at(kernels, save_at.index(config.stage1_steps))
        loss_raw = np.asarray(loss_fn(eye, memories, config.temperature))
        loss_fit = np.asarray(loss_fn(weight, memories, config.temperature))
        losses = {m: (loss_fit if m.endswith("+uhop") else loss_raw) for m in methods}

        mask_errors = np.asarray(errors_of(memories, masked, memories, weight, methods=methods, batch=batch))
        common = dict(memory_size=k_size, noise=None, mask_fraction=config.mask_fraction)
        rows += _rows_from(
            mask_errors, losses, methods, config.betas, dim, sweep="memory_size", stage1_steps=config.stage1_steps,
            **common,
        )  # fmt: skip

        for kernel_name, w, n in (
            ("none", eye, None),
            ("initial", kernels_at(kernels, 0), 0),
            ("fitted", weight, config.stage1_steps),
        ):
            exact = np.asarray(exact_fraction(memories, w, betas))
            cond = np.asarray(condition_fraction(memories, w, betas))
            for j, beta in enumerate(config.betas):
                fixed_points.append(
                    dict(
                        memory_size=k_size,
                        kernel=kernel_name,
                        stage1_steps=n,
                        beta=float(beta),
                        exact_fraction_mean=float(exact[:, j].mean()),
                        eq210_fraction_mean=float(cond[:, j].mean()),
                    )
                )
        timings[str(k_size)] = time.perf_counter() - t0
        progress.update(1)

        if k_size == config.noise_memory_size:
            t0 = time.perf_counter()
            progress.point(f"noise sweep at K={k_size}: {len(config.noise_levels)} levels ({config.noise_scale})")
            for level in config.noise_levels:
                noisy = add_noise(noise_keys, memories, level)
                errors = errors_of(memories, noisy, memories, weight, methods=methods, batch=batch)
                rows += _rows_from(
                    errors, losses, methods, config.betas, dim, sweep="noise", stage1_steps=config.stage1_steps,
                    memory_size=k_size, noise=float(level), mask_fraction=None,
                )  # fmt: skip
            timings["noise"] = time.perf_counter() - t0
            progress.update(1)

        if grid:
            t0 = time.perf_counter()
            progress.point(f"Stage I sweep at K={k_size}: N = {', '.join(map(str, grid))}")
            for n in grid:
                w = weight if n == config.stage1_steps else kernels_at(kernels, save_at.index(n))
                errors = np.asarray(errors_of(memories, masked, memories, w, methods=uhop_methods, batch=batch))
                loss_n = np.asarray(loss_fn(w, memories, config.temperature))
                rows += _rows_from(
                    errors, {m: loss_n for m in uhop_methods}, uhop_methods, config.betas, dim,
                    sweep="stage1_steps", stage1_steps=n, **common,
                )  # fmt: skip
                if "modern_hopfield+uhop" in uhop_methods:
                    i, j = uhop_methods.index("modern_hopfield+uhop"), config.betas.index(1.0)
                    loss_vs_error += _loss_error_rows(k_size, n, loss_n, errors[:, i, j])
            if "modern_hopfield" in methods:  # the same queries without a kernel
                i, j = methods.index("modern_hopfield"), config.betas.index(1.0)
                loss_vs_error += _loss_error_rows(k_size, None, loss_raw, mask_errors[:, i, j])
            timings["stage1_sweep"] = time.perf_counter() - t0
            progress.update(1)

    return {
        "dataset": config.dataset,
        "image_shape": list(image_shape),
        "dim": dim,
        "num_features": num_features,
        "pool_size": pool,
        "methods": list(methods),
        "betas": list(config.betas),
        "noise_scale": config.noise_scale,
        "rows": rows,
        "fixed_points": fixed_points,
        "loss_vs_error": loss_vs_error,
        "seconds_per_stage": timings,
    }
