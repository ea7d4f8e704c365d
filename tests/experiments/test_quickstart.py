import json

import pytest

from dammem.experiments._base import ConfigError, config_from_mapping, run_experiment
from dammem.experiments.quickstart import Config

TINY = {"num_memories": 20, "num_queries": 6, "num_trials": 2, "max_steps": 100, "sparse_steps": 20}


def test_quickstart_completes_occluded_digits(tmp_path):
    record = run_experiment({"experiment": "quickstart", "seed": 0, "config": TINY}, tmp_path, progress=False)
    metrics = record["metrics"]
    for name in ("mrdam", "sparse_hopfield"):
        m = metrics["methods"][name]
        # retrieval must beat leaving the hidden half blank, and find most of the right digits
        assert m["hidden_mse"] < 0.5 * metrics["occluded_query_mse"], (name, m)
        assert m["recall_accuracy"] >= 0.7, (name, m)
        assert m["converged_fraction"] == 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["num_memories"] == 20 and saved["seed"] == 0
    assert saved["environment"]["versions"]["jax"]
    assert (tmp_path / "completions.png").stat().st_size > 1000
    assert "| mrdam |" in (tmp_path / "summary.md").read_text()


def test_same_seed_same_result_and_random_occlusion(tmp_path):
    doc = {"experiment": "quickstart", "seed": 3, "config": dict(TINY, occlusion="random", visible_fraction=0.6)}
    a = run_experiment(doc, tmp_path / "a", progress=False)["metrics"]["methods"]
    b = run_experiment(doc, tmp_path / "b", progress=False)["metrics"]["methods"]
    assert a == b


@pytest.mark.parametrize(
    "mapping, match",
    [
        ({"occlusion": "random"}, "needs visible_fraction"),
        ({"visible_fraction": 0.5}, "only used with occlusion 'random'"),
        ({"num_queries": 200, "num_memories": 100}, "cannot exceed num_memories"),
        ({"alpha": 3.0}, r"alpha must lie in \[1, 2\]"),
        ({"beta_rbf": 0.0}, "beta_rbf must be > 0"),
        ({"similarity": "l2"}, "is not allowed"),
    ],
)
def test_bad_configs(mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(Config, mapping)
