import numpy as np
import pytest

from dammem.experiments._base import ConfigError, config_from_mapping, run_experiment
from dammem.experiments.capacity import Config, _capacity, classical_theory_capacity


def test_capacity_law_on_a_small_sweep(tmp_path):
    config = {
        "dims": [16, 64],
        "classical_pairs": [1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32],
        "modern_pairs": [4, 16, 64, 256],
        "num_trials": 8,
    }
    metrics = run_experiment({"experiment": "capacity", "seed": 0, "config": config}, tmp_path, progress=False)[
        "metrics"
    ]
    classical = {d: metrics["memories"]["classical"][str(d)]["capacity"] for d in (16, 64)}
    modern = {d: metrics["memories"]["modern"][str(d)]["capacity"] for d in (16, 64)}
    # classical: a handful of pairs, growing with d like the Gaussian (union-bound) theory
    assert 2 <= classical[16] <= 6 and 6 <= classical[64] <= 12, classical
    for d in (16, 64):
        theory = classical_theory_capacity(np.array([d]), 0.9)[0]
        assert 0.5 * theory <= classical[d] <= 2 * theory
        # modern: every grid size recalled, far more pairs than d
        assert modern[d] == 256 > 3 * d
    rates = metrics["memories"]["classical"]["64"]["recall_rate"]
    assert rates[0] == 1.0 and rates[-1] < 0.05
    assert (tmp_path / "capacity.png").exists()


def test_capacity_reader_and_theory():
    assert _capacity(np.array([1.0, 0.95, 0.5, 0.99]), (1, 2, 4, 8), 0.9) == 2
    assert _capacity(np.array([0.5, 1.0]), (1, 2), 0.9) == 0
    theory = classical_theory_capacity(np.array([16.0, 128.0, 512.0]), 0.9)
    np.testing.assert_allclose(theory, [3.6, 13.9, 42.0], atol=0.1)
    ratio = theory / (np.array([16.0, 128.0, 512.0]) / np.log([16.0, 128.0, 512.0]))
    assert np.all((ratio > 0.4) & (ratio < 0.8))  # d / log d up to its slowly varying constant


@pytest.mark.parametrize(
    "mapping, match",
    [
        ({"dims": [1, 8]}, "dims must be"),
        ({"modern_pairs": [4, 2]}, "modern_pairs must be strictly increasing"),
        ({"classical_pairs": [0, 1]}, "classical_pairs must be strictly increasing positive"),
        ({"threshold": 1.5}, r"threshold must lie in \(0, 1\]"),
        ({"num_trials": 0}, "num_trials must be >= 1"),
    ],
)
def test_bad_configs(mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(Config, mapping)
