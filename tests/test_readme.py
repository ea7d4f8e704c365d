"""The README's tour is executable documentation: run it."""

import re
from pathlib import Path

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
