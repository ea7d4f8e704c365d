"""U-Hop in a classifier: a one-layer ViT-style model with a Hopfield layer, with and without the learned kernel.

Wu et al. (2024), Sec. 4.2 and App. F (their Table 1 and Fig. 4): images are split into patches, the patches are
the stored patterns of a Hopfield layer and a learned ``CLS`` token is its query (their eq. 4.1); the layer's output
goes through a fully connected layer to the class scores. Four models, all from the same initial parameters and
trained on the same mini-batches:

- ``modern_hopfield``: the Hopfield layer with softmax (Ramsauer et al. (2021));
- ``sparse_hopfield``: with sparsemax (Hu et al. (2023));
- ``modern_hopfield+uhop`` and ``sparse_hopfield+uhop``: the same with U-Hop's kernel ``Phi(u) = W u`` on the query
  and the patterns (:class:`dammem.nn.UHopHopfield`, eq. 3.1).

Model: patches (``patch_size`` squared pixels, all channels) -> linear embedding + learned position embedding ->
LayerNorm = the stored patterns ``Xi`` (``P`` per image); the learned ``CLS`` token, normalised by the same
LayerNorm, is the query; ``Hopfield(CLS, Xi)`` with ``num_heads`` heads, projections and beta ``1/sqrt(head
width)``; LayerNorm; one linear layer to the 10 classes; cross-entropy loss. The kernel starts at the identity
(``kernel_init``), so each ``+uhop`` model starts as the same function as its plain counterpart.

Protocols (``protocols``, one or both; every model is trained under each):

- ``algorithm2``: Alg. 2 of Wu et al. (2024) as printed. Before every task step, ``inner_steps`` SGD steps
  (``kernel_learning_rate``) on the separation loss (eq. 3.2, ``t = 2``) of the patch tokens of fresh mini-batches
  drawn with replacement (line 3; each image's tokens are one memory set) move the kernel only (line 4); the task
  step (line 7) moves every other parameter with Adam (``learning_rate``, their Table 5). The task loss never moves
  the kernel. The plain models get the same task steps.
- ``authors``: the protocol of the authors' public classification code. First ``pretrain_epochs`` epochs of SGD
  (``kernel_learning_rate``) on the separation loss move the kernel and the patch embedding (everything the stored
  patterns depend on: the linear embedding, the position embedding and their LayerNorm); then every parameter, the
  kernel included, is trained with Adam on the task loss with a cosine decay of the learning rate from
  ``learning_rate`` to 0 over the ``epochs``. The plain models get the Adam phase only. (Their code's "sparse"
  layer computes softmax; here sparse means sparsemax in both protocols.)

Full-rank safeguard (ours, not the paper's): Alg. 2 as printed can drive the kernel towards singular (the separation
loss of eq. 3.2 only asks for distinct unit features, so directions the tokens do not use may shrink without
bound), while Assumption 2.1 of Wu et al. (2024) asks for a full-rank kernel. With ``min_singular_value = s``,
after every separation step the kernel ``W = U diag(sigma) V^T`` is replaced by ``U diag(max(sigma, s)) V^T``, the
nearest matrix (in the Frobenius norm) whose singular values are all ``>= s``. None (default) leaves the kernel as
the separation steps make it.

Compute. The query is one learned token, so the Hopfield layer's scores and read-out are computed with the
products re-associated: the scores ``(W_K Phi(xi_j) + b_K) . q = xi_j . (W^T W_K^T q) + b_K . q`` (``q = W_Q
Phi(CLS) + b_Q``) take one ``E``-vector per head instead of projecting every pattern, and the read-out ``sum_j p_j
(W_V xi_j + b_V) = W_V (sum_j p_j xi_j) + b_V sum_j p_j`` projects one vector per image instead of ``P`` (the same
function as :class:`dammem.nn.Hopfield`, tested by value; about ``P`` times fewer operations). Each epoch is one
compiled program (``lax.scan`` over its steps) vectorised over the ``repeats``.

Data (``dataset: cifar10`` or ``mnist``):

- nothing set: the bundled subsets (500 CIFAR-10 training images, 2000 MNIST test images), shuffled once and split
  into disjoint train and test parts (``train_size`` / ``test_size``, default 80% / the rest);
- ``data_path``: the standard files (:func:`dammem.datasets.load_cifar10`: the CIFAR-10 python batches
  ``data_batch_1`` ... ``data_batch_5``, ``test_batch``; :func:`dammem.datasets.load_mnist`), the first
  ``train_size`` / ``test_size`` images of the train and test splits (the first 10,000 training images of CIFAR-10
  are ``data_batch_1``);
- ``train_archive`` and ``test_archive`` (CIFAR-10 only): ``.npz`` archives in the format of the bundled subsets
  (:func:`dammem.datasets.load_cifar10_archive`), first ``train_size`` / ``test_size`` images.

``require_data`` makes a run without ``data_path`` or archives an error that says where to get the data (the
Table 1 config sets it: the bundled 500 images cannot answer Table 1). Pixels are scaled to [0, 1] and standardised
per channel with the training part's mean and standard deviation. Each epoch visits the training images once in a
fresh order (the same order for every model), in ``train_size // batch_size`` mini-batches.

Metrics per epoch (after the epoch, on all images of each part): train and test accuracy (fraction correct) and
mean cross-entropy, the separation loss (eq. 3.2) of the first ``separation_images`` test images' patch tokens
(per image, averaged) under the model's kernel (the identity for the plain models), and for the U-Hop models the
smallest and largest singular value of ``W``. Table 1 reports the maximum train accuracy over the epochs and the
test accuracy (after the last epoch, and its maximum over the epochs), as means and standard deviations over
``repeats`` independent runs (initial parameters, mini-batch orders and kernel mini-batches; within a repeat every
model gets the same ones).

Sizes: ``size: small`` (embedding 64, 10 epochs, batch 32) or ``size: paper`` (embedding 512, 25 epochs, batch 128:
Wu et al. (2024), Table 5); ``embed_dim``, ``epochs`` and ``batch_size`` override either. Their patch size 32 would
make a CIFAR-10 image a single patch; the configs use 4 (CIFAR-10, 64 patches) and 7 (MNIST, 16 patches).

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
from jax import lax

from dammem import datasets, uhop
from dammem.experiments._base import Progress
from dammem.nn.attention import Hopfield
from dammem.nn.training import MODEL_PARAMS, KernelParam
from dammem.nn.uhop import UHopHopfield
from dammem.separations import get_separation

__all__ = ["Config", "run", "MODELS", "PROTOCOLS", "SIZES", "ViTClassifier", "build_model", "patchify",
           "clip_singular_values", "DATA_HELP"]  # fmt: skip

MODELS: tuple[str, ...] = ("modern_hopfield", "modern_hopfield+uhop", "sparse_hopfield", "sparse_hopfield+uhop")
PROTOCOLS: tuple[str, ...] = ("algorithm2", "authors")
_SEPARATION = {"modern_hopfield": "softmax", "sparse_hopfield": "sparsemax"}
SIZES: dict[str, dict[str, int]] = {
    "small": {"embed_dim": 64, "epochs": 10, "batch_size": 32},
    "paper": {"embed_dim": 512, "epochs": 25, "batch_size": 128},  # Wu et al. (2024), Table 5
}
"""The presets of ``Config.size``: what ``embed_dim``, ``epochs`` and ``batch_size`` default to."""
NUM_CLASSES = 10
_EVAL_CHUNK = 500  # images per compiled evaluation call (the last chunk is padded to this size)
# what the stored patterns depend on: the parameters the authors' protocol fits with the kernel before the task
_EMBEDDING = nnx.Any(KernelParam, nnx.PathContains("embed"), nnx.PathContains("position"), nnx.PathContains("norm"))

DATA_HELP = (
    "download the CIFAR-10 python version (cifar-10-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html), "
    "extract it and pass config.data_path=<folder>/cifar-10-batches-py (train_size 10000 reads data_batch_1 only), "
    "or pass config.train_archive=<file>.npz config.test_archive=<file>.npz with arrays x (n, 32, 32, 3) uint8 "
    "and y (n,) (a development checkout has ../shared/data/cifar10_data_batch_1.npz and "
    "cifar10_test_first1000.npz)"
)
"""How to point the experiment at CIFAR-10 (part of its error messages)."""

Dataset = Literal["mnist", "cifar10"]
Size = Literal["small", "paper"]
Loss = Literal["deep", "average"]
Init = Literal["identity", "orthogonal", "gaussian"]
Protocol = Literal["algorithm2", "authors"]


@dataclasses.dataclass(frozen=True)
class Config:
    """ViT-style classification with Hopfield layers, with and without U-Hop.

    Attributes:
      dataset: ``cifar10`` (32 x 32 x 3) or ``mnist`` (28 x 28).
      data_path: the standard files (see :mod:`dammem.datasets`); None: the archives or the bundled subset.
      train_archive: a CIFAR-10 ``.npz`` archive (x, y) of training images (with ``test_archive``).
      test_archive: a CIFAR-10 ``.npz`` archive (x, y) of test images.
      require_data: refuse to run on the bundled subset (the Table 1 config: say where to get the data instead).
      train_size: training images; None: 80% of the bundled subset, or the whole train split / archive.
      test_size: test images; None: the rest of the bundled subset, or the whole test split / archive.
      patch_size: side of the square patches (divides the image side).
      size: ``small`` or ``paper``: the defaults of the next three fields (:data:`SIZES`).
      embed_dim: embedding width (None: from ``size``).
      epochs: passes over the training images with the task loss (None: from ``size``).
      batch_size: images per mini-batch, for the task and the separation steps alike (None: from ``size``).
      num_heads: heads of the Hopfield layer (divides ``embed_dim``).
      learning_rate: Adam's learning rate (the start of the cosine decay under ``authors``).
      kernel_learning_rate: SGD's learning rate of the separation steps.
      inner_steps: separation steps ``N_i`` before each task step (``algorithm2``).
      pretrain_epochs: epochs of separation steps before the task under ``authors`` (their code: 50).
      protocols: ``algorithm2`` and / or ``authors`` (see the module docstring).
      min_singular_value: the full-rank safeguard (ours): after every separation step the kernel's singular values
        are raised to at least this value; None: no safeguard.
      temperature: ``t`` of the separation loss.
      separation_loss: ``deep`` (eq. 3.2) or ``average`` (eq. 2.6).
      separation_images: test images whose tokens' separation loss is recorded per epoch (the first ones).
      kernel_init: the kernel's initialisation (``identity``: the U-Hop model starts as the plain one).
      repeats: independent runs (initial parameters, mini-batch orders, kernel mini-batches), vectorised.
      models: which of :data:`MODELS` to train.
    """

    dataset: Dataset = "cifar10"
    data_path: str | None = None
    train_archive: str | None = None
    test_archive: str | None = None
    require_data: bool = False
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
    pretrain_epochs: int = 5
    protocols: tuple[Protocol, ...] = ("algorithm2",)
    min_singular_value: float | None = None
    temperature: float = 2.0
    separation_loss: Loss = "deep"
    separation_images: int = 200
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
        for name in ("repeats", "separation_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_steps", "pretrain_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "kernel_learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.min_singular_value is not None and not self.min_singular_value > 0:
            raise ValueError(f"min_singular_value must be None or > 0, got {self.min_singular_value}")
        if not self.models or any(m not in MODELS for m in self.models) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names from {list(MODELS)}, got {list(self.models)}")
        if not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols must be distinct names from {list(PROTOCOLS)}, got {list(self.protocols)}")
        archives = (self.train_archive, self.test_archive)
        if any(a is not None for a in archives):
            if None in archives or self.data_path is not None or self.dataset != "cifar10":
                raise ValueError(
                    "train_archive and test_archive go together, with dataset cifar10 and without data_path; got "
                    f"train_archive={self.train_archive!r}, test_archive={self.test_archive!r}, "
                    f"data_path={self.data_path!r}, dataset={self.dataset!r}"
                )
            for name, value in zip(("train_archive", "test_archive"), archives):
                if not Path(value).is_file():
                    raise ValueError(f"{name} {value!r} is not a file; {DATA_HELP}")
        elif self.data_path is None:
            if self.require_data:
                raise ValueError(
                    f"this config needs real {self.dataset} data beyond the bundled subset (data_path is unset): "
                    + (DATA_HELP if self.dataset == "cifar10" else "pass config.data_path=<mnist.npz or idx folder>")
                )
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
            raise ValueError(
                f"data_path {self.data_path!r} does not exist; "
                + (DATA_HELP if self.dataset == "cifar10" else "leave it unset for the bundled subset")
            )

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


def clip_singular_values(weight: jax.Array, minimum: float) -> jax.Array:
    """``U diag(max(sigma, minimum)) V^T`` for ``weight = U diag(sigma) V^T``: the nearest matrix (Frobenius norm)
    whose singular values are all ``>= minimum`` (the full-rank safeguard of this experiment; ours, not the
    paper's)."""
    u, sigma, vt = jnp.linalg.svd(weight, full_matrices=False)
    return (u * jnp.maximum(sigma, minimum)) @ vt


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

    def query(self) -> jax.Array:
        """(1, E): the normalised ``CLS`` token."""
        return self.norm(self.cls[...])

    def retrieve(self, memories: jax.Array) -> jax.Array:
        """(n, P, E) -> (n, E): ``attention(CLS, memories)`` with the products re-associated (module docstring):
        the same function as ``self.attention(query, memories)[:, 0]``, about ``P`` times cheaper."""
        layer = self.attention
        hopfield = layer.hopfield if isinstance(layer, UHopHopfield) else layer
        weight = layer.kernel[...] if isinstance(layer, UHopHopfield) else None
        cls = self.query()[0]
        q = hopfield.query(cls if weight is None else weight @ cls)  # (H, d): W_Q Phi(CLS) + b_Q
        key_q = jnp.einsum("ehd,hd->eh", hopfield.key.kernel[...], q)  # W_K^T q per head
        direction = key_q if weight is None else weight.T @ key_q  # W^T W_K^T q: Phi's adjoint
        offset = jnp.sum(hopfield.key.bias[...] * q, axis=-1)  # b_K . q per head
        beta = jnp.broadcast_to(jnp.asarray(hopfield.beta, memories.dtype), offset.shape)
        scores = beta[:, None] * (jnp.einsum("npe,eh->nhp", memories, direction) + offset[:, None])
        weights = get_separation(hopfield.separation)(scores, axis=-1)  # (n, H, P)
        mixed = jnp.einsum("nhp,npe->nhe", weights, memories)
        values = jnp.einsum("nhe,ehd->nhd", mixed, hopfield.value.kernel[...])
        values = values + jnp.sum(weights, -1)[..., None] * hopfield.value.bias[...]
        return hopfield.out(values)

    def __call__(self, images: jax.Array) -> jax.Array:
        """(n, H, W, C) -> (n, 10) class scores."""
        return self.head(self.out_norm(self.retrieve(self.memories(images))))

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


# ----------------------------------------------------------------------------------------------------------------
# Training: one compiled program per epoch, vectorised over the repeats


def _task_loss(model: ViTClassifier, images, labels) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(images), labels))


def _separation_step(model, optimizer, images, config: Config) -> None:
    """One SGD step on the separation loss (Alg. 2, line 4) over the optimiser's variables, then the safeguard."""

    def loss(m):
        return m.separation_loss(images, temperature=config.temperature, loss=config.separation_loss)

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, optimizer.wrt))(model)
    optimizer.update(model, grads)
    if config.min_singular_value is not None:
        kernel = model.attention.kernel
        kernel[...] = clip_singular_values(kernel[...], config.min_singular_value)


def _task_step(model, optimizer, images, labels) -> None:
    grads = nnx.grad(_task_loss, argnums=nnx.DiffState(0, optimizer.wrt))(model, images, labels)
    optimizer.update(model, grads)


def _optimizers(config: Config, name: str, protocol: str, model, total_steps: int) -> dict:
    """The optimisers of one model under one protocol (module docstring)."""
    with_kernel = name.endswith("+uhop")
    if protocol == "algorithm2":
        out = {"task": nnx.Optimizer(model, optax.adam(config.learning_rate), wrt=MODEL_PARAMS)}
        if with_kernel:
            out["separation"] = nnx.Optimizer(model, optax.sgd(config.kernel_learning_rate), wrt=KernelParam)
        return out
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(total_steps, 1))
    out = {"task": nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)}
    if with_kernel:
        out["separation"] = nnx.Optimizer(model, optax.sgd(config.kernel_learning_rate), wrt=_EMBEDDING)
    return out


def _stacked(config: Config, name: str, protocol: str, keys: jax.Array, image_shape, total_steps: int):
    """``repeats`` models with their optimisers (one per key), split: the graph and the states stacked on axis 0."""
    states, graph = [], None
    for k in keys:
        model = build_model(config, name, k, image_shape)
        graph, state = nnx.split((model, _optimizers(config, name, protocol, model, total_steps)))
        states.append(state)
    return graph, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


@functools.partial(jax.jit, static_argnames=("graph", "config", "phase"))
def _epoch(graph, state, x_train, y_train, orders, kernel_draws, *, config: Config, phase: str):
    """One epoch of every repeat: ``orders`` (R, steps, B) the task mini-batches, ``kernel_draws`` (R, steps, N_i,
    B) the separation mini-batches of Alg. 2 (unused by the other phases). ``phase``: ``algorithm2`` (separation
    steps, then the task step), ``pretrain`` (one separation step per mini-batch of ``orders``) or ``task``."""

    def one_repeat(state, orders, draws):
        def body(state, xs):
            idx, draw = xs
            model, opts = nnx.merge(graph, state)
            if phase in ("algorithm2", "pretrain") and "separation" in opts:
                batches = draw if phase == "algorithm2" else idx[None]
                for j in range(batches.shape[0]):  # N_i separation steps (Alg. 2, lines 2-5)
                    _separation_step(model, opts["separation"], x_train[batches[j]], config)
            if phase != "pretrain":
                _task_step(model, opts["task"], x_train[idx], y_train[idx])
            return nnx.state((model, opts)), None

        return lax.scan(body, state, (orders, draws))[0]

    return jax.vmap(one_repeat)(state, orders, kernel_draws)


@functools.partial(jax.jit, static_argnames=("graph",))
def _evaluate_chunk(graph, state, images, labels):
    def one(state):
        model, _ = nnx.merge(graph, state)
        logits = model(images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels), jnp.argmax(logits, -1)

    return jax.vmap(one)(state)


@functools.partial(jax.jit, static_argnames=("graph", "temperature", "loss"))
def _separation_chunk(graph, state, images, *, temperature: float, loss: str):
    def one(state):
        model, _ = nnx.merge(graph, state)
        return model.separation_loss(images, temperature=temperature, loss=loss)

    return jax.vmap(one)(state)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The fraction of correct predictions along the last axis (``predictions`` (..., n), ``labels`` (n,))."""
    return (np.asarray(predictions) == np.asarray(labels)).mean(axis=-1)


def _evaluate(graph, state, images, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per repeat: mean cross-entropy (R,), accuracy (R,) and predictions (R, n), over all images in padded chunks
    of one compiled size."""
    n = len(images)
    losses, preds = [], []
    for start in range(0, n, _EVAL_CHUNK):
        idx = np.minimum(np.arange(start, start + _EVAL_CHUNK), n - 1)  # pad by repeating the last image
        loss, pred = _evaluate_chunk(graph, state, images[idx], labels[idx])
        keep = min(_EVAL_CHUNK, n - start)
        losses.append(np.asarray(loss)[:, :keep])
        preds.append(np.asarray(pred)[:, :keep])
    loss, pred = np.concatenate(losses, axis=1), np.concatenate(preds, axis=1)
    return loss.mean(axis=1), accuracy(pred, labels), pred


def singular_values(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per repeat: the smallest and the largest singular value of the kernels (R, E, E), in float64."""
    singular = np.linalg.svd(np.asarray(kernels, np.float64), compute_uv=False)
    return singular.min(axis=-1), singular.max(axis=-1)


def _kernels(graph, state) -> np.ndarray:
    model, _ = nnx.merge(graph, state)
    return np.asarray(model.attention.kernel[...])


def _separation(graph, state, images, config: Config) -> np.ndarray:
    """Per repeat (R,): the separation loss of the images' patterns, averaged over the images."""
    n = len(images)
    total = 0.0
    for start in range(0, n, _EVAL_CHUNK):
        chunk = images[start : start + _EVAL_CHUNK]
        value = _separation_chunk(graph, state, chunk, temperature=config.temperature, loss=config.separation_loss)
        total = total + np.asarray(value, np.float64) * len(chunk)
    return total / n


# ----------------------------------------------------------------------------------------------------------------
# Data


def _load(config: Config, key: jax.Array) -> dict:
    loader = datasets.load_mnist if config.dataset == "mnist" else datasets.load_cifar10
    if config.train_archive is not None:
        x_train, y_train = datasets.load_cifar10_archive(config.train_archive, limit=config.train_size)
        x_test, y_test = datasets.load_cifar10_archive(config.test_archive, limit=config.test_size)
        train_index, test_index = np.arange(len(x_train)), np.arange(len(x_test))
        source = f"CIFAR-10 archives {Path(config.train_archive).name} (train) and {Path(config.test_archive).name} "
        source += "(test), the first images of each"
    elif config.data_path is None:
        split = "test" if config.dataset == "mnist" else "train"
        x, y = loader(None, split)
        train, test = config.split_sizes(len(x))
        order = np.asarray(jax.random.permutation(key, len(x)))
        train_index, test_index = order[:train], order[train : train + test]
        x_train, y_train, x_test, y_test = x[train_index], y[train_index], x[test_index], y[test_index]
        source = f"the bundled {config.dataset} subset ({len(x)} images of the {split} split), split at random"
    else:
        try:
            x_train, y_train = loader(config.data_path, "train", limit=config.train_size)
            x_test, y_test = loader(config.data_path, "test", limit=config.test_size)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err}; " + (DATA_HELP if config.dataset == "cifar10" else "")) from err
        train_index, test_index = np.arange(len(x_train)), np.arange(len(x_test))
        source = f"the first images of the {config.dataset} train and test splits in {config.data_path}"
    if len(x_train) < config.resolved("batch_size"):
        raise ValueError(f"batch_size {config.resolved('batch_size')} exceeds the {len(x_train)} training images")
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


def _train(config: Config, name: str, protocol: str, data: dict, keys: dict, progress: Progress) -> tuple:
    """Train ``repeats`` copies of model ``name`` under ``protocol``: its curves and predictions per epoch."""
    x_train, y_train, x_test, y_test = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    epochs, batch, repeats = config.resolved("epochs"), config.resolved("batch_size"), config.repeats
    n_train, steps = len(x_train), len(x_train) // batch
    with_kernel = name.endswith("+uhop")
    graph, state = _stacked(config, name, protocol, keys["init"], tuple(x_train.shape[1:]), epochs * steps)
    x_sep = x_test[: config.separation_images]

    def orders(epoch: int) -> jax.Array:  # (R, steps, B): the same for every model and protocol
        epoch_keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys["shuffle"])
        perm = jax.vmap(lambda k: jax.random.permutation(k, n_train))(epoch_keys)
        return perm[:, : steps * batch].reshape(repeats, steps, batch)

    def draws(epoch: int) -> jax.Array:  # (R, steps, N_i, B): Alg. 2, line 3, with replacement
        epoch_keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys["kernel"])
        return jax.vmap(lambda k: jax.random.choice(k, n_train, (steps, config.inner_steps, batch)))(epoch_keys)

    fields = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "separation_loss")
    fields += ("kernel_min_singular_value", "kernel_max_singular_value") if with_kernel else ()
    rows = {k: [] for k in fields}
    curve = {"initial_separation_loss": _separation(graph, state, x_sep, config)}
    if with_kernel:
        curve["initial_kernel_min_singular_value"], curve["initial_kernel_max_singular_value"] = singular_values(
            _kernels(graph, state)
        )
    empty = jnp.zeros((repeats, steps, 0, batch), jnp.int32)
    if protocol == "authors" and with_kernel:
        for epoch in range(config.pretrain_epochs):
            progress.point(f"{protocol} {name}: kernel and embedding, epoch {epoch + 1}/{config.pretrain_epochs}")
            # its own mini-batch orders: those of the task epochs epochs, epochs + 1, ... (never used by the task)
            pre = orders(epochs + epoch)
            state = _epoch(graph, state, x_train, y_train, pre, empty, config=config, phase="pretrain")
            progress.update(1)
        curve["pretrained_separation_loss"] = _separation(graph, state, x_sep, config)
        low, high = singular_values(_kernels(graph, state))
        curve["pretrained_kernel_min_singular_value"], curve["pretrained_kernel_max_singular_value"] = low, high
    phase = "algorithm2" if protocol == "algorithm2" else "task"
    pred_train, pred_test = [], []
    for epoch in range(epochs):
        progress.point(f"{protocol} {name}: epoch {epoch + 1}/{epochs}")
        kernel_draws = draws(epoch) if phase == "algorithm2" and with_kernel else empty
        state = _epoch(graph, state, x_train, y_train, orders(epoch), kernel_draws, config=config, phase=phase)
        train_loss, train_acc, p_train = _evaluate(graph, state, x_train, y_train)
        test_loss, test_acc, p_test = _evaluate(graph, state, x_test, y_test)
        for field, value in (
            ("train_accuracy", train_acc),
            ("test_accuracy", test_acc),
            ("train_loss", train_loss),
            ("test_loss", test_loss),
            ("separation_loss", _separation(graph, state, x_sep, config)),
        ):
            rows[field].append(value)  # fmt: skip
        if with_kernel:  # full rank is Assumption 2.1 of Wu et al. (2024)
            low, high = singular_values(_kernels(graph, state))
            rows["kernel_min_singular_value"].append(low)
            rows["kernel_max_singular_value"].append(high)
        pred_train.append(p_train)
        pred_test.append(p_test)
        progress.update(1)
    curve.update({field: np.stack(values, axis=1) for field, values in rows.items()})  # (R, epochs)
    curve["max_train_accuracy"] = curve["train_accuracy"].max(axis=1)
    curve["final_test_accuracy"] = curve["test_accuracy"][:, -1]
    curve["max_test_accuracy"] = curve["test_accuracy"].max(axis=1)
    return curve, np.stack(pred_train, axis=1), np.stack(pred_test, axis=1)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    data_key, init_key, shuffle_key, kernel_key = jax.random.split(key, 4)
    data = _load(config, data_key)
    epochs, batch, repeats = config.resolved("epochs"), config.resolved("batch_size"), config.repeats
    # repeat r: the same initial parameters, mini-batches and kernel mini-batches for every model and protocol
    keys = {name: jax.random.split(k, repeats) for name, k in
            (("init", init_key), ("shuffle", shuffle_key), ("kernel", kernel_key))}  # fmt: skip
    with_kernel = sum(m.endswith("+uhop") for m in config.models)
    pretrain = config.pretrain_epochs * with_kernel * ("authors" in config.protocols)
    progress.total(len(config.protocols) * len(config.models) * epochs + pretrain)

    curves, summary, predictions = {}, {}, {"train": [], "test": []}
    for protocol in config.protocols:
        curves[protocol], summary[protocol] = {}, {}
        for name in config.models:
            curve, p_train, p_test = _train(config, name, protocol, data, keys, progress)
            curves[protocol][name], summary[protocol][name] = curve, _summary(curve)
            predictions["train"].append(p_train)
            predictions["test"].append(p_test)
    shape = (len(config.protocols), len(config.models))
    return {
        "models": list(config.models),
        "protocols": list(config.protocols),
        "curves": curves,
        "summary": summary,
        "train_size": len(data["x_train"]),
        "test_size": len(data["x_test"]),
        "separation_images": min(config.separation_images, len(data["x_test"])),
        "steps_per_epoch": len(data["x_train"]) // batch,
        "epochs": epochs,
        "pretrain_epochs": config.pretrain_epochs,
        "batch_size": batch,
        "repeats": repeats,
        "embed_dim": config.resolved("embed_dim"),
        "num_patches": int(patchify(data["x_train"][:1], config.patch_size).shape[1]),
        "data_source": data["source"],
        "arrays": {
            "train_index": data["train_index"],
            "test_index": data["test_index"],
            "train_labels": np.asarray(data["y_train"]),
            "test_labels": np.asarray(data["y_test"]),
            # (protocols, models, R, epochs, n)
            "train_predictions": np.stack(predictions["train"]).reshape(shape + (repeats, epochs, -1)).astype(np.int8),
            "test_predictions": np.stack(predictions["test"]).reshape(shape + (repeats, epochs, -1)).astype(np.int8),
        },
    }


def _summary(curve: dict) -> dict:
    """Mean and standard deviation over the repeats of the Table 1 numbers, the separation loss and the kernel's
    singular values."""
    out = {}
    for field in ("max_train_accuracy", "final_test_accuracy", "max_test_accuracy", "initial_separation_loss",
                  "initial_kernel_min_singular_value", "initial_kernel_max_singular_value",
                  "pretrained_separation_loss", "pretrained_kernel_min_singular_value",
                  "pretrained_kernel_max_singular_value"):  # fmt: skip
        if field in curve:
            out[f"{field}_mean"] = float(np.mean(curve[field]))
            out[f"{field}_std"] = float(np.std(curve[field]))
    for field in ("separation_loss", "kernel_min_singular_value", "kernel_max_singular_value"):
        if field in curve:
            final = np.asarray(curve[field])[:, -1]
            out[f"final_{field}_mean"], out[f"final_{field}_std"] = float(final.mean()), float(final.std())
    for field in ("kernel_min_singular_value",):  # the smallest over all epochs (a collapse may recover)
        if field in curve:
            low = np.asarray(curve[field]).min(axis=1)
            out[f"lowest_{field}_mean"], out[f"lowest_{field}_min"] = float(low.mean()), float(low.min())
    return out
