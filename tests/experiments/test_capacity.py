import io
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem.experiments import capacity
from dammem.experiments._base import (
    ConfigError,
    Progress,
    config_from_mapping,
    load_document,
    packaged_configs,
    report_module,
    to_jsonable,
)
from dammem.experiments.capacity import (
    Config,
    classical_theory_capacity,
    distinct_bipolar,
    fit_exponential,
    grid_capacity,
    interpolated_capacity,
    mean_field_rate,
    pair_grid,
)

# A sweep where the modern capacity lies inside the grid at three dimensions (about 5 s on 2 cores).
SMALL = {
    "dims": [10, 11, 12],
    "extra_classical_dims": [64],
    "classical_pairs": [1, 2, 3, 4, 5, 6, 8, 10, 12, 14],
    "modern_pairs": [724, 1024, 1448, 2048, 2896, 4096],
    "eval_pairs": 64,
    "num_trials": 4,
}
# The override example of a too-small grid: the report must not claim what the default run shows.
TINY = {"dims": [8, 16], "modern_pairs": [2, 4], "extra_classical_dims": [], "classical_pairs": [1, 2, 4, 8, 16]}


def _run(mapping, tmp_path, seed=0, stream=None):
    config = config_from_mapping(Config, mapping)
    progress = Progress("lines", stream=stream) if stream is not None else Progress(False)
    results = to_jsonable(capacity.run(config, jax.random.key(seed), progress))
    return config, results, report_module(capacity).report(config, results, tmp_path)


def _sentences(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("- ")]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    stream = io.StringIO()
    out = _run(SMALL, tmp_path_factory.mktemp("small"), stream=stream)
    return (*out, [re.sub(r", \d+\.\d s$", "", line) for line in stream.getvalue().splitlines()])


def test_progress_names_the_memory_and_dimension(small):
    *_, stages = small
    # one stage per (memory, d); the pair grid stops at 2^d = 1024 for the modern memory at d = 10
    assert stages == [
        "[1/7] classical d=10, n up to 14",
        "[2/7] classical d=11, n up to 14",
        "[3/7] classical d=12, n up to 14",
        "[4/7] classical d=64, n up to 14",
        "[5/7] modern d=10, n up to 1024",
        "[6/7] modern d=11, n up to 2048",
        "[7/7] modern d=12, n up to 4096",
    ]


def test_small_sweep_fits_the_exponential_law(small):
    config, res, body, _ = small
    modern = res["memories"]["modern"]
    # measured (seed 0): interpolated capacities 1020, 1728, 3067 pairs at d = 10, 11, 12
    caps = [modern[str(d)]["capacity_interpolated"] for d in (10, 11, 12)]
    assert all(not modern[str(d)]["saturated"] for d in (10, 11, 12))
    for got, measured in zip(caps, (1020, 1728, 3067)):
        assert measured / 1.3 < got < measured * 1.3  # margin: +-30% (a grid step is 41%)
    fit = res["modern_fit"]
    assert fit["dims"] == [10, 11, 12]
    # measured c = 0.550; margin +-0.12; the fit must agree with its own points and with the mean-field rate
    assert 0.43 < fit["rate"] < 0.67, fit
    np.testing.assert_allclose(fit["rate"], np.polyfit([10, 11, 12], np.log(caps), 1)[0], rtol=1e-9)
    assert abs(fit["rate"] - mean_field_rate(1.0)) < 0.12
    # the experiment's own baseline: the classical memory stores 2-5 pairs at the same d, the modern one > 200x more
    for d in (10, 11, 12):
        classical = res["memories"]["classical"][str(d)]["capacity"]
        theory = classical_theory_capacity(np.array([d]), config.threshold)[0]
        assert 2 <= classical <= 5 and 0.5 * theory <= classical <= 2 * theory, (d, classical)
        assert modern[str(d)]["capacity"] > 100 * classical
    assert 6 <= res["memories"]["classical"]["64"]["capacity"] <= 11  # measured 8; Gaussian theory 8.4


def test_small_sweep_report_states_the_fit(small, tmp_path):
    config, res, body, _ = small
    lines = _sentences(body)
    fit = res["modern_fit"]
    assert any(f"{fit['prefactor']:.3g} exp({fit['rate']:.3f} d)" in s and "two points" not in s for s in lines), lines
    assert any("measured inside the grid at 3 of 3 dimensions (d = 10, 11, 12)" in s for s in lines), lines
    assert any("more pairs than the classical one at 3 of the 3 shared dimensions" in s for s in lines), lines
    assert "cannot be fitted" not in body


def test_summary_sentences_change_with_the_data(small, tmp_path):
    _, res, body = _run(TINY, tmp_path)
    tiny = _sentences(body)
    assert set(tiny).isdisjoint(_sentences(small[2]))
    assert res["modern_fit"] is None
    assert any("inside the grid at 0 of 2 dimensions" in s for s in tiny), tiny
    assert any("cannot be fitted" in s for s in tiny), tiny
    assert any("every grid point up to the top (4 pairs) was recalled" in s for s in tiny), tiny
    assert not any("exp(" in s and "fit over" in s for s in tiny)
    # a lower bound of 4 pairs does not show that the modern memory stores more than the classical one
    assert all(res["memories"]["modern"][d]["capacity"] == 4 for d in ("8", "16"))
    assert any("leaves the comparison open" in s or "at 0 of the 2" in s or "at 1 of the 2" in s for s in tiny)
    assert any("more than d pairs at 0 of them" in s for s in tiny), tiny
    assert (tmp_path / "capacity.png").stat().st_size > 1000


# jitted as the sweep runs them (eagerly, every small operation would compile on its own)
_DRAW = jax.jit(capacity._draw, static_argnums=(1, 3))
_DISTINCT_BIPOLAR = jax.jit(distinct_bipolar, static_argnums=(1, 3))


@pytest.mark.parametrize("memory, beta", [("classical", 1.0), ("modern", 1.0), ("modern", 0.6)])
def test_bucket_rates_match_a_float64_reference(memory, beta):
    """The jitted sweep (padding, masks, evaluated subset) against NumPy on the same drawn pairs."""
    d, width, n_pad, eval_pairs = 9, 12, 128, 32
    key = jax.random.key(7)
    ns = [3, 20, 64, 128] if memory == "modern" else [1, 2, 5, 9]
    got, ok = capacity._sweep_bucket(
        memory, key[None], jnp.asarray(ns, jnp.int32), jnp.int32(d), n_pad, width, eval_pairs, jnp.float32(beta)
    )
    assert bool(ok)
    keys, values, _ = _DRAW(key, n_pad, jnp.int32(d), width)
    keys, values = np.asarray(keys, np.float64)[:, :d], np.asarray(values, np.float64)[:, :d]
    for n, rate in zip(ns, np.asarray(got)):
        x, y = keys[:n], values[:n]
        q = keys[: min(n, eval_pairs)]
        if memory == "classical":
            field = q @ (y.T @ x).T
        else:
            s = beta * (q @ x.T)
            w = np.exp(s - s.max(1, keepdims=True))
            field = (w / w.sum(1, keepdims=True)) @ y
        recalled = np.where(field >= 0, 1.0, -1.0)
        expected = np.mean(np.all(recalled == values[: len(q)], 1))
        assert rate == pytest.approx(expected, abs=1e-6), (n, rate, expected)


def test_beta_reaches_the_modern_scores():
    key = jax.random.key(3)
    rates = [
        capacity._sweep_bucket(
            "modern", key[None], jnp.asarray([256], jnp.int32), jnp.int32(8), 256, 8, 256, jnp.float32(beta)
        )[0][0]
        for beta in (0.3, 1.0, 3.0)
    ]
    # all 256 keys of d = 8 stored: a hotter memory blurs its neighbours in, a colder one recalls all
    assert float(rates[0]) < 0.5 < 0.9 < float(rates[1]) < float(rates[2]) == 1.0, rates


def test_distinct_bipolar():
    # small space: all 2^d points, each once, in random order; zero columns past d
    distinct_bipolar = _DISTINCT_BIPOLAR
    rows, ok = distinct_bipolar(jax.random.key(0), 64, jnp.int32(6), 8)
    rows = np.asarray(rows)
    assert bool(ok) and rows.shape == (64, 8) and np.all(rows[:, 6:] == 0)
    codes = ((rows[:, :6] > 0) * (1 << np.arange(6))).sum(1)
    assert sorted(codes) == list(range(64)) and list(codes) != sorted(codes)
    # large space: distinct rows in {-1, 1}^d; every bit balanced on average
    rows, ok = distinct_bipolar(jax.random.key(1), 2048, jnp.int32(20), 20)
    rows = np.asarray(rows)
    assert bool(ok) and set(np.unique(rows)) == {-1.0, 1.0}
    assert len({r.tobytes() for r in rows}) == 2048
    assert np.all(np.abs(rows.mean(0)) < 0.1)
    # asking for more rows than points reports failure
    assert not bool(distinct_bipolar(jax.random.key(0), 64, jnp.int32(5), 8)[1])


def test_capacity_readers_and_fits():
    assert grid_capacity((1, 2, 4, 8), np.array([1.0, 0.95, 0.5, 0.99]), 0.9) == 2
    assert grid_capacity((1, 2), np.array([0.5, 1.0]), 0.9) == 0
    assert grid_capacity((1, 2, 4), np.array([1.0, np.nan, 1.0]), 0.9) == 1  # not run ends the scan
    # crossing at 0.9 between (4, 1.0) and (8, 0.8): half way in log n, 4 * sqrt(2)
    assert interpolated_capacity((2, 4, 8), [1.0, 1.0, 0.8], 0.9) == pytest.approx(4 * math.sqrt(2))
    assert interpolated_capacity((2, 4, 8), [1.0, 1.0, 1.0], 0.9) == 8.0
    assert interpolated_capacity((2, 4, 8), [1.0, 1.0, np.nan], 0.9) == 4.0
    assert interpolated_capacity((2, 4), [0.5, 0.1], 0.9) == 0.0
    c, a = fit_exponential([8, 10, 12], 3.0 * np.exp(0.6 * np.array([8, 10, 12])))
    assert c == pytest.approx(0.6) and a == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_exponential([8], [100.0])
    assert mean_field_rate(1.0) == pytest.approx(1 - math.log(math.cosh(1.0)))
    assert mean_field_rate(1.0) == pytest.approx(0.566219, abs=1e-6)
    assert mean_field_rate(2.0) == pytest.approx(2 - math.log((math.e**2 + math.e**-2) / 2))  # 0.675
    theory = classical_theory_capacity(np.array([16.0, 128.0, 512.0]), 0.9)
    np.testing.assert_allclose(theory, [3.6, 13.9, 42.0], atol=0.1)
    ratio = theory / (np.array([16.0, 128.0, 512.0]) / np.log([16.0, 128.0, 512.0]))
    assert np.all((ratio > 0.4) & (ratio < 0.8))  # d / log d up to its slowly varying constant
    assert pair_grid((2, 100, 300, 1000), 8) == [2, 100, 256]  # distinct keys: at most 2^8, and 2^8 itself
    assert pair_grid((2, 100, 200), 8) == [2, 100, 200]
    assert pair_grid((2, 10**6), 40) == [2, 10**6]


def test_yaml_config_is_the_default():
    doc = load_document(packaged_configs()["capacity"])
    assert config_from_mapping(Config, doc["config"]) == Config()


@pytest.mark.parametrize(
    "mapping, match",
    [
        ({"dims": [1, 8]}, "dims must be strictly increasing integers >= 2"),
        ({"dims": []}, "dims must not be empty"),
        ({"extra_classical_dims": [16]}, r"extra_classical_dims must not repeat dims, got \[16\]"),
        ({"modern_pairs": [4, 2]}, "modern_pairs must be strictly increasing"),
        ({"classical_pairs": [0, 1]}, "classical_pairs must be strictly increasing positive"),
        ({"dims": [40]}, r"d=40 draws keys independently.*= 0\.0026, exceeds 0\.001"),
        ({"threshold": 1.5}, r"threshold must lie in \(0, 1\]"),
        ({"num_trials": 0}, "num_trials must be >= 1"),
        ({"eval_pairs": 0}, "eval_pairs must be >= 1"),
        ({"beta": 0.0}, "beta must be > 0"),
    ],
)
def test_bad_configs(mapping, match):
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(Config, mapping)


@pytest.mark.slow
def test_default_run_measures_the_exponential_law(tmp_path):
    """The default config: modern capacity inside the grid at >= 3 dimensions, exponent fitted (about 80 s)."""
    config, res, body = _run({}, tmp_path)
    fit = res["modern_fit"]
    # measured (seed 0): inside the grid at d = 10, 12, ..., 17; c = 0.577, prefactor 3.05; mean field 0.566
    assert fit is not None and len(fit["dims"]) >= 3
    assert 0.5 < fit["rate"] < 0.65 and fit["max_abs_log_residual"] < 0.2
    assert res["memories"]["modern"]["8"]["every_key"]
    assert any(f"exp({fit['rate']:.3f} d)" in s for s in _sentences(body))


def test_derived_quantities_by_value(small):
    """The fitted constants, the ratio column and the verdicts, recomputed independently from the measured rates."""
    config, res, body, _ = small
    dims = np.asarray(res["classical_dims"], dtype=float)
    mems = res["memories"]
    interp = np.asarray([mems["classical"][str(int(d))]["capacity_interpolated"] for d in dims])
    shape = dims / np.log(dims)  # natural log, as in Hsu (2025)'s d / log d
    k = np.linalg.lstsq(shape[:, None], interp, rcond=None)[0][0]
    assert res["classical_fit_constant"] == pytest.approx(k, rel=1e-10)
    np.testing.assert_allclose(res["classical_capacity_over_d_log_d"], interp / shape, rtol=1e-10)
    fit = res["modern_fit"]
    caps = np.asarray([mems["modern"][str(d)]["capacity_interpolated"] for d in fit["dims"]])
    design = np.stack([np.ones(len(caps)), np.asarray(fit["dims"], float)], axis=1)
    log_a, c = np.linalg.lstsq(design, np.log(caps), rcond=None)[0]
    assert fit["rate"] == pytest.approx(c, rel=1e-8) and fit["prefactor"] == pytest.approx(np.exp(log_a), rel=1e-8)
    residual = np.log(caps) - (log_a + c * np.asarray(fit["dims"], float))
    assert fit["max_abs_log_residual"] == pytest.approx(np.max(np.abs(residual)), rel=1e-6, abs=1e-12)
    # the classical sentence quotes the grid capacities of the table, and the trend it states holds in the table
    grid = [mems["classical"][str(int(d))]["capacity"] for d in dims]
    sentence = next(s for s in _sentences(body) if s.startswith("- The classical capacity"))
    assert f"goes from {grid[0]} pairs at d = {int(dims[0])} to {grid[-1]} at d = {int(dims[-1])}" in sentence
    assert ("never falls" in sentence) == all(b >= a for a, b in zip(grid, grid[1:]))
    assert "interpolated capacity" in sentence
    verdicts = report_module(capacity).reproduces(config, res)
    upper = slice(len(dims) // 2, None)
    gap = np.max(np.abs(interp[upper] / np.asarray(res["classical_theory_capacity"])[upper] - 1))
    assert verdicts[0]["verdict"] == ("quantitative" if gap <= 0.25 else "qualitative" if
                                      (interp / shape).max() / (interp / shape).min() <= 3 else "not")  # fmt: skip
    assert f"within {gap:.0%} of the Gaussian theory" in verdicts[0]["evidence"]
    rel = abs(fit["rate"] / res["mean_field_rate"] - 1)
    assert verdicts[1]["verdict"] == ("quantitative" if rel <= 0.1 else "qualitative")
    assert f"({rel:.0%} apart)" in verdicts[1]["evidence"]
