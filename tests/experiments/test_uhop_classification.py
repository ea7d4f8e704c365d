"""The uhop_classification experiment: patches by value, models sharing their initial parameters, a tiny run's
accuracies recomputed from its saved predictions, disjoint splits, curves per epoch, Alg. 2 lowering the separation
loss (and, with no separation steps, the U-Hop model training exactly as the plain one), the report's sentences on
synthetic results, the configs and their errors."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dammem import datasets
from dammem.experiments import EXPERIMENTS
from dammem.experiments._base import ConfigError, config_from_mapping, load_document, run_experiment
from dammem.experiments.uhop import classification as uc
from dammem.experiments.uhop import classification_report as uc_report
from dammem.nn.training import MODEL_PARAMS, KernelParam

CONFIGS = Path(uc.__file__).resolve().parents[2] / "configs"
TINY = dict(dataset="mnist", patch_size=7, train_size=160, test_size=80, embed_dim=16, epochs=3, batch_size=20,
            repeats=2, models=["modern_hopfield", "modern_hopfield+uhop"])  # fmt: skip
FIELDS = ("train_accuracy", "test_accuracy", "train_loss", "test_loss", "separation_loss")


def test_registered():
    assert EXPERIMENTS["uhop_classification"] == "dammem.experiments.uhop.classification"


def test_patchify_cuts_row_major_patches():
    images = jnp.arange(2 * 8 * 12 * 3, dtype=jnp.float32).reshape(2, 8, 12, 3)
    patches = np.asarray(uc.patchify(images, 4))
    assert patches.shape == (2, 6, 48)
    imgs = np.asarray(images)
    for n in range(2):
        for i in range(2):
            for j in range(3):
                block = imgs[n, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                np.testing.assert_array_equal(patches[n, 3 * i + j], block.ravel())


def test_models_share_every_parameter_but_the_kernel():
    config = uc.Config(dataset="mnist", patch_size=7, embed_dim=16)
    key = jax.random.key(3)
    models = {name: uc.build_model(config, name, key, (28, 28, 1)) for name in uc.MODELS}

    def params(model):
        state = nnx.to_flat_state(nnx.state(model, MODEL_PARAMS))
        return {tuple(p for p in path if p != "hopfield"): np.asarray(v[...]) for path, v in state}

    plain = params(models["modern_hopfield"])
    for name, model in models.items():
        got = params(model)
        assert got.keys() == plain.keys() and all(np.array_equal(got[k], plain[k]) for k in plain), name
        kernels = nnx.to_flat_state(nnx.state(model, KernelParam))
        assert len(kernels) == (1 if name.endswith("+uhop") else 0)
    images = jax.random.normal(jax.random.key(4), (5, 28, 28, 1))
    logits = {name: np.asarray(model(images)) for name, model in models.items()}
    # the identity kernel: each U-Hop model starts as its plain counterpart; softmax and sparsemax differ. Bit
    # equality is the contract here on any CPU: multiplying by the identity is exact in IEEE arithmetic (x * 1 +
    # 0 * y = x), and everything after it runs the same eager operations on the same values
    np.testing.assert_array_equal(logits["modern_hopfield+uhop"], logits["modern_hopfield"])
    np.testing.assert_array_equal(logits["sparse_hopfield+uhop"], logits["sparse_hopfield"])
    assert np.abs(logits["sparse_hopfield"] - logits["modern_hopfield"]).max() > 1e-4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ucls")
    record = run_experiment({"experiment": "uhop_classification", "seed": 0, "config": TINY}, out, progress=False)
    return record, out


def test_tiny_run_accuracies_are_those_of_the_saved_predictions(tiny_run):
    record, out = tiny_run
    m = record["metrics"]
    arrays = np.load(out / "results.npz")
    assert m["models"] == TINY["models"] and m["epochs"] == 3 and m["steps_per_epoch"] == 160 // 20
    assert arrays["train_predictions"].shape == (2, 2, 3, 160) and arrays["test_predictions"].shape == (2, 2, 3, 80)
    for i, name in enumerate(m["models"]):
        c, s = m["curves"][name], m["summary"][name]
        kernel = ("kernel_min_singular_value", "kernel_max_singular_value") if name.endswith("+uhop") else ()
        assert all(np.shape(c[f]) == (2, 3) for f in FIELDS + kernel)  # (repeats, epochs)
        assert not kernel or "kernel_min_singular_value" not in m["curves"]["modern_hopfield"]
        for part in ("train", "test"):
            acc = (arrays[f"{part}_predictions"][i] == arrays[f"{part}_labels"]).mean(axis=-1)
            np.testing.assert_allclose(c[f"{part}_accuracy"], acc, rtol=0, atol=1e-12)
        assert c["max_train_accuracy"] == np.max(c["train_accuracy"], axis=1).tolist()
        assert c["final_test_accuracy"] == np.asarray(c["test_accuracy"])[:, -1].tolist()
        assert c["max_test_accuracy"] == np.max(c["test_accuracy"], axis=1).tolist()
        assert s["max_train_accuracy_mean"] == pytest.approx(np.mean(c["max_train_accuracy"]), rel=1e-12)
        assert s["max_train_accuracy_std"] == pytest.approx(np.std(c["max_train_accuracy"]), rel=1e-12)
        assert np.all(np.asarray(c["train_loss"]) > 0) and np.all(np.asarray(c["test_loss"]) > 0)
    # the repeats differ (their own initial parameters and mini-batch orders)
    assert not np.array_equal(arrays["test_predictions"][0, 0], arrays["test_predictions"][0, 1])
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"]["curves"] == json.loads(json.dumps(m["curves"]))
    assert {"curves.png", "separation_loss.png", "summary.md", "results.npz"} <= {p.name for p in out.iterdir()}


def test_tiny_run_splits_are_disjoint_parts_of_the_bundled_subset(tiny_run):
    _, out = tiny_run
    arrays = np.load(out / "results.npz")
    train, test = arrays["train_index"], arrays["test_index"]
    assert len(set(train.tolist())) == 160 and len(set(test.tolist())) == 80 and not set(train) & set(test)
    _, labels = datasets.load_mnist()
    np.testing.assert_array_equal(arrays["train_labels"], labels[train])
    np.testing.assert_array_equal(arrays["test_labels"], labels[test])


def test_tiny_run_alg2_lowers_the_separation_loss(tiny_run):
    """Measured (seed 0, 3 epochs of 8 steps, N_i = 1, SGD 0.1): the deep loss (eq. 3.2, t = 2) of the test tokens
    under the U-Hop model's kernel starts at -1.331 / -1.420 (two repeats) and reaches -1.778 / -1.733 at its lowest
    (the SGD steps at the paper's learning rate 0.1 overshoot at times: -1.376 at the last epoch of repeat 2); the mean
    over the repeats is below the plain model's (whose tokens stay near -1.37) by 0.10, 0.29, 0.21 at the three
    epochs. Margins: a fall of 0.2 per repeat, 0.05 at every epoch."""
    record, out = tiny_run
    c = record["metrics"]["curves"]
    u, p = c["modern_hopfield+uhop"], c["modern_hopfield"]
    # same start: the identity kernel gives the plain model's tokens exactly, but the two losses come from different
    # programs (with and without the kernel), so float32 rounding may differ by a few ulp per reduction over the
    # tokens' pairs (about 1e-6 relative each): rtol 1e-5
    np.testing.assert_allclose(u["initial_separation_loss"], p["initial_separation_loss"], rtol=1e-5)
    # the identity kernel has every singular value 1; the separation steps shrink some directions (measured smallest
    # 0.077 / 0.54 after the last epoch, 0.33-0.38 after the second; margin: below 0.8 at every epoch after the first)
    assert u["initial_kernel_min_singular_value"] == [1.0, 1.0] == u["initial_kernel_max_singular_value"]
    assert np.all(np.asarray(u["kernel_min_singular_value"])[:, 1:] < 0.8)
    assert np.all(np.min(u["separation_loss"], axis=1) < np.asarray(u["initial_separation_loss"]) - 0.2)
    assert np.all(np.mean(u["separation_loss"], axis=0) < np.mean(p["separation_loss"], axis=0) - 0.05)
    summary = (out / "summary.md").read_text()
    s = record["metrics"]["summary"]
    wins = int(s["modern_hopfield+uhop"]["max_train_accuracy_mean"] >= s["modern_hopfield"]["max_train_accuracy_mean"])
    assert f"U-Hop's mean max train accuracy is at least the plain model's in {wins} of 1 pair(s)." in summary
    assert "160 training and 80 test images (disjoint)" in summary and "issue" not in summary.lower()


def test_without_separation_steps_the_uhop_model_trains_exactly_as_the_plain_one(tmp_path):
    """N_i = 0 and the identity kernel: the same initial parameters, mini-batches and updates, so every curve is equal
    (this is what makes the comparison with N_i > 0 about Alg. 2 alone)."""
    config = dict(TINY, epochs=2, inner_steps=0)
    record = run_experiment({"experiment": "uhop_classification", "seed": 0, "config": config}, tmp_path,
                            progress=False)  # fmt: skip
    c = record["metrics"]["curves"]
    for field in FIELDS:
        assert c["modern_hopfield+uhop"][field] == c["modern_hopfield"][field], field


def _synthetic(max_train: dict, final_test: dict) -> dict:
    """Two repeats; repeat 2 of every model is repeat 1 shifted by +0.02 (so the means are the values + 0.01)."""
    curves, summary = {}, {}
    for name in uc.MODELS:
        mt, ft = max_train[name], final_test[name]
        curve = {f: [[0.5, 0.6], [0.5, 0.6]] for f in FIELDS}
        curve["train_accuracy"] = [[mt - 0.1, mt], [mt - 0.08, mt + 0.02]]
        curve["test_accuracy"] = [[ft + 0.05, ft], [ft + 0.07, ft + 0.02]]
        curve["separation_loss"] = [[-1.5, -2.0 if name.endswith("+uhop") else -1.6]] * 2
        if name.endswith("+uhop"):
            curve.update(initial_kernel_min_singular_value=[1.0, 1.0], initial_kernel_max_singular_value=[1.0, 1.0],
                         kernel_min_singular_value=[[0.5, 0.25], [0.5, 0.05]],
                         kernel_max_singular_value=[[2.0, 3.0], [2.0, 4.0]])  # fmt: skip
        curve.update(initial_separation_loss=[-1.4, -1.4], max_train_accuracy=[mt, mt + 0.02],
                     final_test_accuracy=[ft, ft + 0.02], max_test_accuracy=[ft + 0.05, ft + 0.07])  # fmt: skip
        curves[name] = curve
        summary[name] = uc._summary({k: np.asarray(v) for k, v in curve.items()})
    return dict(models=list(uc.MODELS), curves=curves, summary=summary, train_size=400, test_size=100,
                steps_per_epoch=12, epochs=2, batch_size=32, repeats=2, embed_dim=64, num_patches=64,
                data_source="synthetic")  # fmt: skip


def test_report_sentences_are_computed_from_the_results(tmp_path):
    max_train = {"modern_hopfield": 0.5, "modern_hopfield+uhop": 0.625, "sparse_hopfield": 0.7,
                 "sparse_hopfield+uhop": 0.55}  # fmt: skip
    final_test = {"modern_hopfield": 0.4, "modern_hopfield+uhop": 0.45, "sparse_hopfield": 0.42,
                  "sparse_hopfield+uhop": 0.41}  # fmt: skip
    text = uc_report.report(uc.Config(), _synthetic(max_train, final_test), tmp_path)
    for sentence in [
        "U-Hop's mean max train accuracy is at least the plain model's in 1 of 2 pair(s).",
        "modern_hopfield+uhop reaches a max train accuracy of 63.5% against 51.0% for modern_hopfield (means over 2 "
        "repeat(s); +12.5 points: U-Hop >= plain; at least the plain model's in 2 of 2 repeat(s)); its final test "
        "accuracy is 46.0% against 41.0% (+5.0 points).",
        "sparse_hopfield+uhop reaches a max train accuracy of 56.0% against 71.0% for sparse_hopfield (means over 2 "
        "repeat(s); -15.0 points: U-Hop < plain; at least the plain model's in 0 of 2 repeat(s)); its final test "
        "accuracy is 42.0% against 43.0% (-1.0 points).",
        "Alg. 2 moved the separation loss of sparse_hopfield+uhop's test tokens from -1.400 to -2.000; "
        "sparse_hopfield's tokens end at -1.600 (without a kernel). The kernel's singular values lie in [1, 1] at the "
        "start and in [0.15, 3.5] after the last epoch (means over the repeats;",
        "| modern_hopfield+uhop | 63.5 ± 1.0% | 46.0 ± 1.0% | 51.0 ± 1.0% | -2.000 |",
        "400 training and 100 test images (disjoint)",
        "Mean ± standard deviation over 2 repeat(s)",
    ]:
        assert sentence in text, sentence
    assert (tmp_path / "curves.png").exists() and (tmp_path / "separation_loss.png").exists()
    # a tie counts as "at least"
    max_train["sparse_hopfield+uhop"] = 0.7
    text = uc_report.report(uc.Config(), _synthetic(max_train, final_test), tmp_path)
    assert "at least the plain model's in 2 of 2 pair(s)" in text


def test_yaml_configs_and_the_paper_preset():
    cifar = config_from_mapping(uc.Config, load_document(CONFIGS / "uhop_classification_cifar10.yaml")["config"])
    assert cifar == uc.Config()
    mnist = config_from_mapping(uc.Config, load_document(CONFIGS / "uhop_classification_mnist.yaml")["config"])
    assert mnist == uc.Config(dataset="mnist", patch_size=7)
    assert [cifar.resolved(k) for k in ("embed_dim", "epochs", "batch_size")] == [64, 10, 32]
    paper = config_from_mapping(uc.Config, {"size": "paper"})  # Wu et al. (2024), Table 5
    assert [paper.resolved(k) for k in ("embed_dim", "epochs", "batch_size")] == [512, 25, 128]
    assert (paper.learning_rate, paper.kernel_learning_rate, paper.separation_loss) == (1e-3, 0.1, "deep")
    assert config_from_mapping(uc.Config, {"size": "paper", "epochs": 3}).resolved("epochs") == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(patch_size=5), r"patch_size must divide the image side 32 of cifar10, got 5"),
        (dict(patch_size=32), r"patch_size 32 leaves one patch per image"),
        (dict(train_size=450, test_size=100), r"the bundled cifar10 subset holds 500 images to split into two"),
        (dict(batch_size=500, train_size=300), r"batch_size 500 exceeds the 300 training images"),
        (dict(num_heads=3), r"num_heads must be >= 1 and divide embed_dim 64, got 3"),
        (dict(models=["hopfield"]), r"models must be distinct names from"),
        (dict(inner_steps=-1), r"inner_steps must be >= 0"),
        (dict(kernel_learning_rate=0.0), r"kernel_learning_rate must be > 0"),
        (dict(size="large"), r"config.size: 'large' is not allowed"),
        (dict(data_path="/no/such/dir"), r"data_path '/no/such/dir' does not exist"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(uc.Config, overrides)
