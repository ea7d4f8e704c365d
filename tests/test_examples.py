"""The worked examples under ``examples/`` run as scripts (each in a fresh interpreter, as a user runs them) and
their printed measurements hold by value."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: pathlib.Path) -> dict[str, float]:
    """Run ``examples/<script>`` and parse its ``RESULT name=value ...`` line."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, done.stdout
    return {key: float(value) for key, value in (item.split("=") for item in lines[0].split()[1:])}


@pytest.mark.slow
def test_minigpt_learns_the_text(tmp_path):
    """Both language models beat the unigram model on held-out text by a clear margin (nats per character)."""
    result = _run("minigpt.py", cwd=tmp_path)
    assert result["hopfield"] < result["unigram"] - 0.3
    assert result["multihead"] < result["unigram"] - 0.3


@pytest.mark.slow
def test_multiple_instance_learning_finds_the_key_digits(tmp_path):
    """HopfieldPooling classifies bags well above chance (0.5, balanced bags) and puts most of its association
    weight on the 9s of positive bags, far above their share of the digits; the plot is written."""
    result = _run("mil_mnist.py", str(tmp_path / "weights.png"), cwd=tmp_path)
    assert result["hopfield"] >= 0.7
    assert result["mean"] > 0.55
    assert result["weight_on_targets"] > 0.5 > 2 * result["target_share"]
    assert (tmp_path / "weights.png").stat().st_size > 10_000


@pytest.mark.slow
def test_lookup_classifier_classifies_digits(tmp_path):
    """The lookup classifier and its baseline without the memory layer both classify held-out digits far above
    chance (0.1); sparsemax touches few of the 32 stored patterns."""
    result = _run("lookup_classifier.py", cwd=tmp_path)
    assert result["lookup"] > 0.75
    assert result["plain"] > 0.75
    assert 1.0 <= result["touched"] < 8.0
