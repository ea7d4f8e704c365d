"""A character-level language model (a small GPT) with sparse Hopfield attention, against the same model with
``flax.nnx.MultiHeadAttention``.

The text is the repository's README (read at run time): the first 90 % trains, the last 10 % is held out. Both
models share everything but the attention layer: token and position embeddings, two pre-norm Transformer blocks
(causal self-attention, a GELU MLP), a linear read-out. ``dammem.nn.Hopfield`` uses the sparsemax separation
(Hu et al. (2023)) with a learned inverse temperature per head; it takes the constructor and call of
``nnx.MultiHeadAttention``, so the block code is the same for both. Printed: the held-out loss (nats per
character) of each model, the loss of the unigram (character-frequency) model for scale, and a greedy sample.

Run: ``python examples/minigpt.py`` (about a minute on two CPU cores).
"""

from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dammem.nn import Hopfield

SEQ_LEN, WIDTH, HEADS, BLOCKS, BATCH, STEPS = 64, 64, 4, 2, 16, 250


class Block(nnx.Module):
    def __init__(self, attention: nnx.Module, rngs: nnx.Rngs):
        self.norm1, self.norm2 = nnx.LayerNorm(WIDTH, rngs=rngs), nnx.LayerNorm(WIDTH, rngs=rngs)
        self.attention = attention
        self.mlp_in, self.mlp_out = nnx.Linear(WIDTH, 4 * WIDTH, rngs=rngs), nnx.Linear(4 * WIDTH, WIDTH, rngs=rngs)

    def __call__(self, x):
        x = x + self.attention(self.norm1(x), is_causal=True)
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm2(x))))


class MiniGPT(nnx.Module):
    def __init__(self, vocab: int, attention: str, rngs: nnx.Rngs):
        def layer():
            if attention == "hopfield":
                return Hopfield(HEADS, WIDTH, separation="sparsemax", learn_beta=True, rngs=rngs)
            return nnx.MultiHeadAttention(HEADS, WIDTH, decode=False, rngs=rngs)

        self.tokens = nnx.Embed(vocab, WIDTH, rngs=rngs)
        self.positions = nnx.Embed(SEQ_LEN, WIDTH, rngs=rngs)
        self.blocks = nnx.List([Block(layer(), rngs) for _ in range(BLOCKS)])
        self.norm = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.head = nnx.Linear(WIDTH, vocab, rngs=rngs)

    def __call__(self, ids):
        x = self.tokens(ids) + self.positions(jnp.arange(ids.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def loss_fn(model, ids):
    logits = model(ids[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()


@nnx.jit
def train_step(model, optimizer, ids):
    loss, grads = nnx.value_and_grad(loss_fn)(model, ids)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_loss(model, ids):
    return loss_fn(model, ids)


@nnx.jit
def next_token(model, window):
    return jnp.argmax(model(window[None])[0, -1])


def windows(data: np.ndarray, starts: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(np.stack([data[s : s + SEQ_LEN + 1] for s in starts]))


def run(attention: str, train: np.ndarray, held_out: np.ndarray, vocab: int) -> tuple[float, list[int], float]:
    model = MiniGPT(vocab, attention, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adamw(3e-3, weight_decay=0.01), wrt=nnx.Param)
    rng = np.random.default_rng(0)  # the same batches for both models
    start = time.perf_counter()
    for _ in range(STEPS):
        train_step(model, optimizer, windows(train, rng.integers(0, len(train) - SEQ_LEN - 1, BATCH)))
    seconds = time.perf_counter() - start
    starts = np.arange(0, len(held_out) - SEQ_LEN - 1, SEQ_LEN)  # every held-out character once
    held = float(np.mean([eval_loss(model, windows(held_out, starts[i : i + 64])) for i in range(0, len(starts), 64)]))
    window = list(held_out[:SEQ_LEN])
    for _ in range(60):
        window = window[1:] + [int(next_token(model, jnp.asarray(window[-SEQ_LEN:])))]
    return held, window[-60:], seconds


def main() -> dict[str, float]:
    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_bytes()
    chars = np.unique(np.frombuffer(text, np.uint8))
    lookup = np.zeros(256, np.int32)
    lookup[chars] = np.arange(len(chars))
    data = lookup[np.frombuffer(text, np.uint8)]
    split = int(0.9 * len(data))
    train, held_out = data[:split], data[split:]
    counts = np.bincount(train, minlength=len(chars)) + 1.0  # add-one smoothing
    unigram = float(-np.mean(np.log(counts / counts.sum())[held_out]))
    print(f"text: README.md, {len(data)} characters, vocabulary {len(chars)}; {STEPS} steps of {BATCH} x {SEQ_LEN}")
    results = {"unigram": unigram}
    for attention in ("hopfield", "multihead"):
        held, sample, seconds = run(attention, train, held_out, len(chars))
        sample = bytes(chars[sample]).decode("utf-8", errors="replace")
        name = "Hopfield (sparsemax)" if attention == "hopfield" else "nnx.MultiHeadAttention"
        print(f"{name:24s} held-out loss {held:.3f} nats/char (training {seconds:.1f} s); sample: {sample!r}")
        results[attention] = held
    print(f"{'unigram model':24s} held-out loss {unigram:.3f} nats/char")
    print(f"RESULT hopfield={results['hopfield']:.4f} multihead={results['multihead']:.4f} unigram={unigram:.4f}")
    return results


if __name__ == "__main__":
    main()
