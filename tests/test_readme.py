"""The README's tour is executable documentation: run it."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs():
    block = re.search(r"## A short tour\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its tour block"
    namespace: dict = {}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    out = namespace["out"]
    assert out.x.shape == (784,) and bool(out.converged)


def test_readme_quickstart_has_exactly_two_commands():
    text = README.read_text()
    section = re.search(r"## Quickstart\n\n```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in section.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "dammem run quickstart" in commands[0] and "pytest" in commands[1]
    ci = (README.parent / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci


def _blocks_under(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


@pytest.mark.slow  # the layers' training and checkpoint round trip are pinned in tests/nn by default
def test_readme_flax_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, checkpoint = _blocks_under("### Flax NNX layers")
    namespace: dict = {}
    exec(compile(train, str(README), "exec"), namespace)
    losses, model = namespace["losses"], namespace["model"]
    assert losses[-1] < 0.1 * losses[0]  # measured 0.639 -> 0.000 in 30 steps
    alpha = model.hopfield.alpha
    assert alpha.shape == (4,) and bool(((alpha > 1.0) & (alpha <= 2.0)).all())
    exec(compile(checkpoint, str(README), "exec"), {})  # asserts bit-identical outputs after the restore


@pytest.mark.slow  # the batch-split sparse retrieval on a 2x4 mesh is pinned by tests/test_sharding.py by default
def test_readme_shard_example_runs():
    """The single-host sharding example, in a fresh process (it sets XLA_FLAGS before JAX starts)."""
    import subprocess
    import sys

    (block, _) = _blocks_under("### Several devices")
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
