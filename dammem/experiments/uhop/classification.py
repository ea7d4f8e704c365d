"""U-Hop in a classifier: a one-layer ViT-style model with a Hopfield layer, with and without the learned kernel.

Wu et al. (2024), Sec. 4.2 and App. F (their Table 1 and Fig. 4): images are split into patches, the patches are
the stored patterns of a Hopfield layer and a learned ``CLS`` token is its query (their eq. 4.1); the layer's output
goes through a fully connected layer to the class scores. Four models, all from the same initial parameters and
trained on the same mini-batches:

- ``modern_hopfield``: the Hopfield layer with softmax (Ramsauer et al. (2021));
- ``sparse_hopfield``: with sparsemax (Hu et al. (2023));
- ``modern_hopfield+uhop`` and ``sparse_hopfield+uhop``: the same with U-Hop's kernel ``Phi(u) = W u`` on the query
  and the patterns (:class:`dammem.nn.UHopHopfield`, eq. 3.1), trained by Alg. 2: before every task step,
  ``inner_steps`` SGD steps on the separation loss (eq. 3.2, ``t = 2``) of the patch tokens of fresh mini-batches
  (each image's tokens are one memory set; :func:`dammem.nn.training.alternating_step`).

Model: patches (``patch_size`` squared pixels, all channels) -> linear embedding + learned position embedding ->
LayerNorm = the stored patterns ``Xi`` (``P`` per image); the learned ``CLS`` token, normalised by the same
LayerNorm, is the query; ``Hopfield(CLS, Xi)`` with ``num_heads`` heads, projections and beta ``1/sqrt(head
width)``; LayerNorm; one linear layer to the 10 classes. Cross-entropy loss, Adam (``learning_rate``) on everything
but the kernel, SGD (``kernel_learning_rate``) on the kernel (Wu et al. (2024), Table 5). The kernel starts at the
identity (``kernel_init``), so each ``+uhop`` model starts as the same function as its plain counterpart; the
difference in training comes from Alg. 2 alone.

Data: the bundled subsets (500 CIFAR-10 training images, 2000 MNIST test images), shuffled once and split into
disjoint train and test parts; with ``data_path`` the standard train and test splits (the first ``train_size`` /
``test_size`` images). Pixels are scaled to [0, 1] and standardised per channel with the training part's mean and
standard deviation. Each epoch visits the training images once in a fresh order (the same order for every model),
in ``train_size // batch_size`` mini-batches (the remainder of the shuffled order is skipped that epoch).

Metrics per epoch (after the epoch, on all images of each part, no dropout): train and test accuracy and mean
cross-entropy, the separation loss (eq. 3.2) of the test images' patch tokens (per image, averaged) under the
model's kernel (the identity for the plain models: the tokens' own separation), and for the U-Hop models the
smallest and largest singular value of ``W`` (their Assumption 2.1 asks for a full-rank kernel). Table 1 reports the
maximum train accuracy over the epochs and the test accuracy after the last epoch, as means and standard deviations
over ``repeats`` independent runs (initial parameters, mini-batch orders and kernel mini-batches; within a repeat
every model gets the same ones), trained at once under ``nnx.vmap``.

Protocol notes. This follows Alg. 2 as written: the kernel learns from the separation loss only and the task loss
never moves it. The public classification code of Wu et al. (2024) differs: it first fits the kernel (and, through
the memories, the patch embedding) for 50 epochs of SGD on the separation loss, then trains every parameter, the
kernel included, with Adam on the task loss (cosine learning-rate decay); its sparse runs compute softmax (the
separation argument does not reach the layer).

Sizes: ``size: small`` (embedding 64, 10 epochs, batch 32: minutes on a CPU) or ``size: paper`` (embedding 512,
25 epochs, batch 128: Wu et al. (2024), Table 5); ``embed_dim``, ``epochs`` and ``batch_size`` override either.
Their patch size 32 would make a CIFAR-10 image a single patch; the configs use 4 (CIFAR-10, 64 patches) and 7
(MNIST, 16 patches).

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Ramsauer et al. (2021). Hopfield Networks is All You Need. ICLR.
  - Hu, Yang, Wu, Xu, Chen, Liu (2023). On Sparse Modern Hopfield Model. NeurIPS.
  - Dosovitskiy et al. (2021). An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale. ICLR.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dammem import datasets, uhop
from dammem.experiments._base import Progress
from dammem.nn.attention import Hopfield
from dammem.nn.training import MODEL_PARAMS, KernelParam, alternating_step, supervised_step
from dammem.nn.uhop import UHopHopfield

__all__ = ["Config", "run", "MODELS", "SIZES", "ViTClassifier", "build_model", "patchify"]

MODELS: tuple[str, ...] = ("modern_hopfield", "modern_hopfield+uhop", "sparse_hopfield", "sparse_hopfield+uhop")
_SEPARATION = {"modern_hopfield": "softmax", "sparse_hopfield": "sparsemax"}
SIZES: dict[str, dict[str, int]] = {
    "small": {"embed_dim": 64, "epochs": 10, "batch_size": 32},
    "paper": {"embed_dim": 512, "epochs": 25, "batch_size": 128},  # Wu et al. (2024), Table 5
}
"""The presets of ``Config.size``: what ``embed_dim``, ``epochs`` and ``batch_size`` default to."""
NUM_CLASSES = 10
_EVAL_CHUNK = 500  # images per compiled evaluation call (the last chunk is padded to this size)

Dataset = Literal["mnist", "cifar10"]
Size = Literal["small", "paper"]
Loss = Literal["deep", "average"]
Init = Literal["identity", "orthogonal", "gaussian"]


@dataclasses.dataclass(frozen=True)
class Config:
    """ViT-style classification with Hopfield layers, with and without U-Hop.

    Attributes:
      dataset: ``cifar10`` (32 x 32 x 3) or ``mnist`` (28 x 28).
      data_path: the standard files (see :mod:`dammem.datasets`); None: the bundled subset, split in two.
      train_size: training images; None: 80% of the bundled subset, or the whole train split with ``data_path``.
      test_size: test images; None: the rest of the bundled subset, or the whole test split with ``data_path``.
      patch_size: side of the square patches (divides the image side).
      size: ``small`` or ``paper``: the defaults of the next three fields (:data:`SIZES`).
      embed_dim: embedding width (None: from ``size``).
      epochs: passes over the training images (None: from ``size``).
      batch_size: images per mini-batch, for the task and the separation steps alike (None: from ``size``).
      num_heads: heads of the Hopfield layer (divides ``embed_dim``).
      learning_rate: Adam's learning rate for everything but the kernel.
      kernel_learning_rate: SGD's learning rate for the kernel.
      inner_steps: separation steps ``N_i`` before each task step (Alg. 2).
      temperature: ``t`` of the separation loss.
      separation_loss: ``deep`` (eq. 3.2) or ``average`` (eq. 2.6).
      kernel_init: the kernel's initialisation (``identity``: the U-Hop model starts as the plain one).
      repeats: independent runs (initial parameters, mini-batch orders, kernel mini-batches), vectorised.
      models: which of :data:`MODELS` to train.
    """

    dataset: Dataset = "cifar10"
    data_path: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    patch_size: int = 4
    size: Size = "small"
    embed_dim: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    num_heads: int = 1
    learning_rate: float = 1e-3
    kernel_learning_rate: float = 0.1
    inner_steps: int = 1
    temperature: float = 2.0
    separation_loss: Loss = "deep"
    kernel_init: Init = "identity"
    repeats: int = 3
    models: tuple[str, ...] = MODELS

    def __post_init__(self):
        side = 32 if self.dataset == "cifar10" else 28
        if self.patch_size < 1 or side % self.patch_size:
            raise ValueError(f"patch_size must divide the image side {side} of {self.dataset}, got {self.patch_size}")
        if (side // self.patch_size) ** 2 < 2:
            raise ValueError(f"patch_size {self.patch_size} leaves one patch per image; the memory needs >= 2")
        for name in ("embed_dim", "epochs", "batch_size", "train_size", "test_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or >= 1, got {value}")
        if self.num_heads < 1 or self.resolved("embed_dim") % self.num_heads:
            raise ValueError(
                f"num_heads must be >= 1 and divide embed_dim {self.resolved('embed_dim')}, got {self.num_heads}"
            )
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {self.inner_steps}")
        for name in ("learning_rate", "kernel_learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.models or any(m not in MODELS for m in self.models) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names from {list(MODELS)}, got {list(self.models)}")
        if self.data_path is None:
            pool = datasets.BUNDLED_COUNTS[self.dataset]
            train, test = self.split_sizes(pool)
            if train < 1 or test < 1 or train + test > pool:
                raise ValueError(
                    f"train_size {self.train_size} and test_size {self.test_size}: the bundled {self.dataset} subset "
                    f"holds {pool} images to split into two non-empty disjoint parts; set data_path for more"
                )
            if self.resolved("batch_size") > train:
                raise ValueError(
                    f"batch_size {self.resolved('batch_size')} exceeds the {train} training images; lower it"
                )
        elif not Path(self.data_path).exists():
            raise ValueError(f"data_path {self.data_path!r} does not exist; leave it unset for the bundled subset")

    def resolved(self, name: str) -> int:
        """``embed_dim``, ``epochs`` or ``batch_size``: the field, or the ``size`` preset when it is None."""
        value = getattr(self, name)
        return SIZES[self.size][name] if value is None else value

    def split_sizes(self, pool: int) -> tuple[int, int]:
        """Train and test sizes for a bundled pool of ``pool`` images (80% / the rest by default)."""
        train = round(0.8 * pool) if self.train_size is None else self.train_size
        test = pool - train if self.test_size is None else self.test_size
        return train, test


# ----------------------------------------------------------------------------------------------------------------
# Model


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
    """(n, H, W, C) -> (n, P, p * p * C): non-overlapping ``p x p`` patches in row-major order, pixels HWC."""
    n, h, w, c = images.shape
    p = patch_size
    x = images.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


class ViTClassifier(nnx.Module):
    """Patch embedding, learned positions, a ``CLS`` query, one Hopfield layer (eq. 4.1 of Wu et al. (2024)), a
    linear head. ``memories(images)`` are the stored patterns (the normalised patch tokens)."""

    def __init__(self, *, image_shape, patch_size, embed_dim, num_heads, separation, kernel_init, rngs: nnx.Rngs):
        h, w, c = image_shape
        self.patch_size = patch_size
        num_patches = (h // patch_size) * (w // patch_size)
        self.embed = nnx.Linear(patch_size * patch_size * c, embed_dim, rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (num_patches, embed_dim)))
        self.cls = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, embed_dim)))
        self.norm = nnx.LayerNorm(embed_dim, rngs=rngs)
        self.out_norm = nnx.LayerNorm(embed_dim, rngs=rngs)
        self.head = nnx.Linear(embed_dim, NUM_CLASSES, rngs=rngs)
        # the attention layer is built last: the other parameters do not depend on whether it carries a kernel
        if kernel_init is None:
            self.attention = Hopfield(num_heads, embed_dim, separation=separation, rngs=rngs)
        else:
            self.attention = UHopHopfield(num_heads, embed_dim, separation=separation, kernel_init=kernel_init,
                                          rngs=rngs)  # fmt: skip

    def memories(self, images: jax.Array) -> jax.Array:
        """(n, H, W, C) -> (n, P, E): the stored patterns of each image."""
        return self.norm(self.embed(patchify(images, self.patch_size)) + self.position[...])

    def __call__(self, images: jax.Array) -> jax.Array:
        """(n, H, W, C) -> (n, 10) class scores."""
        memories = self.memories(images)
        query = jnp.broadcast_to(self.norm(self.cls[...]), (memories.shape[0], 1, memories.shape[-1]))
        return self.head(self.out_norm(self.attention(query, memories)[:, 0]))

    def separation_loss(self, images: jax.Array, *, temperature: float, loss: str) -> jax.Array:
        """The separation loss of each image's patterns under the kernel (the identity without one), averaged."""
        memories = self.memories(images)
        if isinstance(self.attention, UHopHopfield):
            return self.attention.separation_loss(memories, temperature=temperature, loss=loss)
        eye = jnp.eye(memories.shape[-1], dtype=memories.dtype)
        return jnp.mean(jax.vmap(lambda m: uhop.separation_loss(eye, m, temperature=temperature, loss=loss))(memories))


def build_model(config: Config, name: str, key: jax.Array, image_shape: tuple[int, int, int]) -> ViTClassifier:
    """The model ``name`` of :data:`MODELS`; every model built from the same ``key`` shares all parameters but the
    kernel."""
    base = name.removesuffix("+uhop")
    return ViTClassifier(
        image_shape=image_shape,
        patch_size=config.patch_size,
        embed_dim=config.resolved("embed_dim"),
        num_heads=config.num_heads,
        separation=_SEPARATION[base],
        kernel_init=config.kernel_init if name.endswith("+uhop") else None,
        rngs=nnx.Rngs(params=key),
    )


def _cross_entropy(model: ViTClassifier, batch):
    images, labels = batch
    logits = model(images)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels)), logits


def _kernel_loss(model: ViTClassifier, images, *, temperature: float, loss: str):
    return model.separation_loss(images, temperature=temperature, loss=loss)


def _stacked(config: Config, name: str, keys: jax.Array, image_shape) -> tuple:
    """``repeats`` models (one per key) stacked along a leading axis, with their optimisers (also stacked)."""
    models = [build_model(config, name, k, image_shape) for k in keys]
    graph = nnx.split(models[0])[0]
    model = nnx.merge(graph, jax.tree.map(lambda *leaves: jnp.stack(leaves), *(nnx.split(m)[1] for m in models)))
    with_kernel = name.endswith("+uhop")

    @nnx.vmap(in_axes=0, out_axes=0)
    def optimizers(model):
        task = nnx.Optimizer(model, optax.adam(config.learning_rate), wrt=MODEL_PARAMS)
        kernel = nnx.Optimizer(model, optax.sgd(config.kernel_learning_rate), wrt=KernelParam) if with_kernel else None
        return task, kernel

    model_opt, kernel_opt = optimizers(model)
    return model, model_opt, kernel_opt


@functools.lru_cache(maxsize=None)
def _uhop_steps(temperature: float, loss: str):
    """Alg. 2 for every repeat at once: ``kernel_images`` (R, N_i, B, ...), ``batch`` (R, B, ...)."""
    kernel_loss = functools.partial(_kernel_loss, temperature=temperature, loss=loss)

    @nnx.jit
    @functools.partial(nnx.vmap, in_axes=(0, 0, 0, 0, 0))
    def steps(model, kernel_opt, model_opt, kernel_images, batch):
        return alternating_step(model, kernel_opt, model_opt, kernel_images, batch, separation_loss_fn=kernel_loss,
                                loss_fn=_cross_entropy)  # fmt: skip

    return steps


@nnx.jit
@functools.partial(nnx.vmap, in_axes=(0, 0, 0))
def _plain_steps(model, model_opt, batch):
    return supervised_step(model, model_opt, batch, loss_fn=_cross_entropy)


@nnx.jit
@functools.partial(nnx.vmap, in_axes=(0, None, None))
def _evaluate_chunk(model: ViTClassifier, images, labels):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels), jnp.argmax(logits, -1)


@functools.lru_cache(maxsize=None)
def _separation_chunk(temperature: float, loss: str):
    @nnx.jit
    @functools.partial(nnx.vmap, in_axes=(0, None))
    def separation(model: ViTClassifier, images):
        return model.separation_loss(images, temperature=temperature, loss=loss)

    return separation


def _evaluate(model, images, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per repeat: mean cross-entropy (R,), accuracy (R,) and predictions (R, n), over all images in padded chunks
    of one compiled size."""
    n = len(images)
    losses, preds = [], []
    for start in range(0, n, _EVAL_CHUNK):
        idx = np.minimum(np.arange(start, start + _EVAL_CHUNK), n - 1)  # pad by repeating the last image
        loss, pred = _evaluate_chunk(model, images[idx], labels[idx])
        keep = min(_EVAL_CHUNK, n - start)
        losses.append(np.asarray(loss)[:, :keep])
        preds.append(np.asarray(pred)[:, :keep])
    loss, pred = np.concatenate(losses, axis=1), np.concatenate(preds, axis=1)
    return loss.mean(axis=1), (pred == np.asarray(labels)[None]).mean(axis=1), pred


def _singular_values(model) -> tuple[np.ndarray, np.ndarray]:
    """Per repeat (R,): the smallest and the largest singular value of the kernel ``W``."""
    singular = np.linalg.svd(np.asarray(model.attention.kernel[...], np.float64), compute_uv=False)
    return singular.min(axis=1), singular.max(axis=1)


def _separation(model, images, config: Config) -> np.ndarray:
    """Per repeat (R,): the separation loss of the images' patterns, averaged over the images."""
    n = len(images)
    total = 0.0
    for start in range(0, n, _EVAL_CHUNK):
        chunk = images[start : start + _EVAL_CHUNK]
        value = _separation_chunk(config.temperature, config.separation_loss)(model, chunk)
        total = total + np.asarray(value, np.float64) * len(chunk)
    return total / n


# ----------------------------------------------------------------------------------------------------------------
# Data


def _load(config: Config, key: jax.Array) -> dict:
    loader = datasets.load_mnist if config.dataset == "mnist" else datasets.load_cifar10
    if config.data_path is None:
        split = "test" if config.dataset == "mnist" else "train"
        x, y = loader(None, split)
        train, test = config.split_sizes(len(x))
        order = np.asarray(jax.random.permutation(key, len(x)))
        train_index, test_index = order[:train], order[train : train + test]
        x_train, y_train, x_test, y_test = x[train_index], y[train_index], x[test_index], y[test_index]
        source = f"the bundled {config.dataset} subset ({len(x)} images of the {split} split), split at random"
    else:
        x_train, y_train = loader(config.data_path, "train", limit=config.train_size)
        x_test, y_test = loader(config.data_path, "test", limit=config.test_size)
        train_index, test_index = np.arange(len(x_train)), np.arange(len(x_test))
        source = f"the {config.dataset} train and test splits from {config.data_path}"
    if x_train.ndim == 3:  # MNIST: one channel
        x_train, x_test = x_train[..., None], x_test[..., None]
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    mean = x_train.mean(axis=(0, 1, 2))
    std = x_train.std(axis=(0, 1, 2)) + 1e-6
    return dict(
        x_train=jnp.asarray((x_train - mean) / std),
        y_train=jnp.asarray(y_train.astype(np.int32)),
        x_test=jnp.asarray((x_test - mean) / std),
        y_test=jnp.asarray(y_test.astype(np.int32)),
        train_index=train_index,
        test_index=test_index,
        source=source,
    )


# ----------------------------------------------------------------------------------------------------------------
# Run


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    data_key, init_key, shuffle_key, kernel_key = jax.random.split(key, 4)
    data = _load(config, data_key)
    x_train, y_train, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    image_shape = tuple(x_train.shape[1:])
    epochs, batch, repeats = config.resolved("epochs"), config.resolved("batch_size"), config.repeats
    n_train = len(x_train)
    steps = n_train // batch
    init_keys = jax.random.split(init_key, repeats)  # repeat r: the same initial parameters for every model
    shuffle_keys = jax.random.split(shuffle_key, repeats)  # ... and the same mini-batches
    kernel_keys = jax.random.split(kernel_key, repeats)
    uhop_steps = _uhop_steps(config.temperature, config.separation_loss)
    draw = jax.jit(jax.vmap(lambda k: jax.random.choice(k, n_train, (config.inner_steps, batch))))
    progress.total(len(config.models) * epochs)

    curves, predictions = {}, {"train": [], "test": []}
    for name in config.models:
        model, model_opt, kernel_opt = _stacked(config, name, init_keys, image_shape)
        fields = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "separation_loss")
        fields += ("kernel_min_singular_value", "kernel_max_singular_value") if kernel_opt is not None else ()
        rows = {k: [] for k in fields}
        initial_separation = _separation(model, x_test, config)
        initial_singular = _singular_values(model) if kernel_opt is not None else None
        pred_train, pred_test = [], []
        for epoch in range(epochs):
            progress.point(f"{name} epoch {epoch + 1}/{epochs}")
            keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(shuffle_keys)
            orders = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, n_train))(keys))  # (R, n_train)
            for step in range(steps):
                idx = orders[:, step * batch : (step + 1) * batch]
                task_batch = (x_train[idx], y_train[idx])
                if kernel_opt is None:
                    _plain_steps(model, model_opt, task_batch)
                    continue
                # Alg. 2, line 3: inner_steps fresh mini-batches (drawn with replacement) for the separation steps
                step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, epoch), step))(kernel_keys)
                uhop_steps(model, kernel_opt, model_opt, x_train[np.asarray(draw(step_keys))], task_batch)
            train_loss, train_acc, p_train = _evaluate(model, x_train, y_train)
            test_loss, test_acc, p_test = _evaluate(model, x_test, y_test)
            for field, value in (("train_accuracy", train_acc), ("test_accuracy", test_acc), ("train_loss", train_loss),
                                 ("test_loss", test_loss), ("separation_loss", _separation(model, x_test, config))):
                rows[field].append(value)  # fmt: skip
            if kernel_opt is not None:  # full rank is Assumption 2.1 of Wu et al. (2024)
                low, high = _singular_values(model)
                rows["kernel_min_singular_value"].append(low)
                rows["kernel_max_singular_value"].append(high)
            pred_train.append(p_train)
            pred_test.append(p_test)
            progress.update(1)
        curve = {field: np.stack(values, axis=1) for field, values in rows.items()}  # (R, epochs)
        curve["initial_separation_loss"] = initial_separation  # (R,)
        if kernel_opt is not None:
            curve["initial_kernel_min_singular_value"], curve["initial_kernel_max_singular_value"] = initial_singular
        curve["max_train_accuracy"] = curve["train_accuracy"].max(axis=1)
        curve["final_test_accuracy"] = curve["test_accuracy"][:, -1]
        curve["max_test_accuracy"] = curve["test_accuracy"].max(axis=1)
        curves[name] = curve
        predictions["train"].append(np.stack(pred_train, axis=1))  # (R, epochs, n_train)
        predictions["test"].append(np.stack(pred_test, axis=1))

    return {
        "models": list(config.models),
        "curves": curves,
        "summary": {name: _summary(curve) for name, curve in curves.items()},
        "train_size": n_train,
        "test_size": len(x_test),
        "steps_per_epoch": steps,
        "epochs": epochs,
        "batch_size": batch,
        "repeats": repeats,
        "embed_dim": config.resolved("embed_dim"),
        "num_patches": int(patchify(x_train[:1], config.patch_size).shape[1]),
        "data_source": data["source"],
        "arrays": {
            "train_index": data["train_index"],
            "test_index": data["test_index"],
            "train_labels": np.asarray(y_train),
            "test_labels": np.asarray(y_test),
            "train_predictions": np.stack(predictions["train"]).astype(np.int8),  # (models, R, epochs, n_train)
            "test_predictions": np.stack(predictions["test"]).astype(np.int8),
        },
    }


def _summary(curve: dict) -> dict:
    """Mean and standard deviation over the repeats of the Table 1 numbers and the final separation loss."""
    out = {}
    for field in ("max_train_accuracy", "final_test_accuracy", "max_test_accuracy", "initial_separation_loss",
                  "initial_kernel_min_singular_value", "initial_kernel_max_singular_value"):  # fmt: skip
        if field in curve:
            out[f"{field}_mean"] = float(np.mean(curve[field]))
            out[f"{field}_std"] = float(np.std(curve[field]))
    for field in ("separation_loss", "kernel_min_singular_value", "kernel_max_singular_value"):
        if field in curve:
            final = np.asarray(curve[field])[:, -1]
            out[f"final_{field}_mean"], out[f"final_{field}_std"] = float(final.mean()), float(final.std())
    return out
