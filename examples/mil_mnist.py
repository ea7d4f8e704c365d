"""Multiple-instance learning with ``HopfieldPooling`` on bags of MNIST digits, against mean pooling.

A bag holds 5 to 12 digits (padded to 12 and masked); it is positive when it holds at least one 9 (half the bags).
Only the bag label is seen in training. The model encodes each digit with a small MLP, pools the bag with
``dammem.nn.HopfieldPooling`` (one learned query retrieves from the digits, Ramsauer et al. (2021)) and reads the
bag logit out of the pooled vector; the baseline is the same model with a masked mean over the digits in place of
the memory layer. Bags are built from the bundled MNIST subset (the first 2000 test images): digits 0-1499 make the
training bags, digits 1500-1999 the test bags, so no digit is in both.

Printed: the test-bag accuracy of both models and, for the Hopfield model, the share of the association weight
that falls on the 9s of positive test bags (against their share of the digits). The association weights of four
test bags are plotted to ``mil_association.png`` (or the path given as the first argument).

Run: ``python examples/mil_mnist.py [out.png]`` (about a minute on two CPU cores).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx

from dammem.datasets import load_mnist, to_patterns
from dammem.nn import HopfieldPooling

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET, MAX_BAG, WIDTH, STEPS = 9, 12, 64, 150


def make_bags(y: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` bags: digit indices (count, MAX_BAG), a mask of the real digits, labels (half positive)."""
    targets, others = np.flatnonzero(y == TARGET), np.flatnonzero(y != TARGET)
    index = np.zeros((count, MAX_BAG), np.int64)
    mask = np.zeros((count, MAX_BAG), bool)
    labels = np.arange(count) % 2
    for b in range(count):
        size = rng.integers(5, MAX_BAG + 1)
        chosen = rng.choice(others, size, replace=False)
        if labels[b]:
            hits = rng.integers(1, 3)
            chosen[rng.choice(size, hits, replace=False)] = rng.choice(targets, hits, replace=False)
        index[b, :size], mask[b, :size] = chosen, True
    return index, mask, labels


class BagClassifier(nnx.Module):
    def __init__(self, pooling: str, rngs: nnx.Rngs):
        self.encode1 = nnx.Linear(28 * 28, 128, rngs=rngs)
        self.encode2 = nnx.Linear(128, WIDTH, rngs=rngs)
        self.pool = (
            HopfieldPooling(1, WIDTH, num_queries=1, learn_beta=True, rngs=rngs) if pooling == "hopfield" else None
        )
        self.head = nnx.Linear(WIDTH, 1, rngs=rngs)

    def __call__(self, images, mask, sow_weights=False):
        h = self.encode2(jax.nn.relu(self.encode1(images)))  # (bags, MAX_BAG, WIDTH)
        if self.pool is None:
            pooled = (h * mask[..., None]).sum(-2) / mask.sum(-1, keepdims=True)
        else:
            pooled = self.pool(h, mask=mask[:, None, None, :], sow_weights=sow_weights)[:, 0]  # (bags, WIDTH)
        return self.head(pooled)[:, 0]


def loss_fn(model, images, mask, labels):
    return optax.sigmoid_binary_cross_entropy(model(images, mask), labels).mean()


@nnx.jit
def train_step(model, optimizer, images, mask, labels):
    loss, grads = nnx.value_and_grad(loss_fn)(model, images, mask, labels)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def predict(model, images, mask):
    return model(images, mask) > 0


@nnx.jit
@nnx.capture(nnx.Intermediate)
def association(model, images, mask):
    return model(images, mask, sow_weights=True)


def train(pooling: str, data) -> tuple[BagClassifier, float]:
    (train_images, train_mask, train_labels), (test_images, test_mask, test_labels) = data
    model = BagClassifier(pooling, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    for _ in range(STEPS):
        train_step(model, optimizer, train_images, train_mask, train_labels)
    accuracy = float(np.mean(np.asarray(predict(model, test_images, test_mask)) == test_labels))
    return model, accuracy


def plot(weights, digits, mask, labels, path: str) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
    for ax, w, d, m, label in zip(axes, weights, digits, mask, labels):
        n = int(m.sum())
        colors = ["tab:red" if digit == TARGET else "tab:gray" for digit in d[:n]]
        ax.bar(np.arange(n), w[:n], color=colors)
        ax.set_xticks(np.arange(n), [str(digit) for digit in d[:n]])
        ax.set_xlabel("digit in the bag (instance)")
        ax.set_title(f"{'positive' if label else 'negative'} bag")
    axes[0].set_ylabel("association weight")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:red", "tab:gray")]
    fig.legend(handles, [f"a {TARGET} (the key instance)", "another digit"], loc="upper right", ncol=2, frameon=False)
    fig.suptitle("HopfieldPooling: association weights of the learned query on test bags", x=0.3, ha="center")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(out: str = "mil_association.png") -> dict[str, float]:
    x, y = load_mnist()
    patterns = np.asarray(to_patterns(x))  # (2000, 784) pixels in [0, 1]
    rng = np.random.default_rng(0)
    train_index, train_mask, train_labels = make_bags(y[:1500], 300, rng)
    test_index, test_mask, test_labels = make_bags(y[1500:], 200, rng)
    test_index += 1500
    data = (
        (jnp.asarray(patterns[train_index]), jnp.asarray(train_mask), jnp.asarray(train_labels, jnp.float32)),
        (jnp.asarray(patterns[test_index]), jnp.asarray(test_mask), test_labels),
    )
    print(f"{len(train_labels)} training bags, {len(test_labels)} test bags of 5-{MAX_BAG} digits; positive: has a 9")
    hopfield, hopfield_accuracy = train("hopfield", data)
    _, mean_accuracy = train("mean", data)

    _, found = association(hopfield, data[1][0], data[1][1])
    weights = np.asarray(found["pool"]["hopfield"]["attention_weights"][0])[:, 0, 0, :]  # (bags, MAX_BAG)
    digits = y[test_index]
    positive = test_labels == 1
    is_target = (digits == TARGET) & test_mask
    weight_on_targets = float(np.mean((weights * is_target).sum(-1)[positive]))
    target_share = float(np.mean(is_target.sum(-1)[positive] / test_mask.sum(-1)[positive]))
    shown = np.concatenate([np.flatnonzero(positive)[:2], np.flatnonzero(~positive)[:2]])
    plot(weights[shown], digits[shown], test_mask[shown], test_labels[shown], out)

    print(f"HopfieldPooling   test-bag accuracy {hopfield_accuracy:.3f}")
    print(f"mean pooling      test-bag accuracy {mean_accuracy:.3f}")
    print(f"positive test bags: {weight_on_targets:.3f} of the association weight on the 9s, which are "
          f"{target_share:.3f} of the digits; weights of 4 bags plotted to {out}")
    print(f"RESULT hopfield={hopfield_accuracy:.4f} mean={mean_accuracy:.4f} weight_on_targets={weight_on_targets:.4f}"
          f" target_share={target_share:.4f}")
    return {"hopfield": hopfield_accuracy, "mean": mean_accuracy, "weight_on_targets": weight_on_targets}


if __name__ == "__main__":
    main(*sys.argv[1:2])
