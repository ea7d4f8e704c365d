"""The reproduction pages' content, read at build time from the committed runs under ``results/<config>/``.

Nothing here is typed by hand: the command, commit, machine, figures and the summary (whose "What this reproduces"
section puts the paper's claim beside the measurement, in sentences the experiment's report computes from the
data) all come from the run's own files, so a run committed later appears at the next build.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
CONFIGS = ROOT / "dammem" / "configs"


def configs(prefixes: tuple[str, ...]) -> list[str]:
    """The packaged configs whose names start with one of ``prefixes``."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem.startswith(prefixes))


def _config_note(name: str) -> str:
    lines = (CONFIGS / f"{name}.yaml").read_text().splitlines()
    return " ".join(line.lstrip("# ").strip() for line in lines if line.startswith("#"))


def _summary_body(text: str) -> str:
    """The summary without its title and figure links, headings made into bold lines (they would be page sections)."""
    out = []
    for line in text.splitlines()[1:]:
        if line.startswith("!["):
            continue
        heading = re.match(r"^#+ (.*)$", line)
        line = line.replace("(*)", "(\\*)")  # the binding operator, not emphasis
        out.append(f"**{heading.group(1)}**" if heading else line)
    return "\n".join(out).strip()


def show_config(name: str) -> None:
    """Display one config's committed run: command, commit, machine, summary and figures."""
    from IPython.display import Image, Markdown, display

    out = RESULTS / name
    note = _config_note(name)
    if not (out / "results.json").is_file():
        display(Markdown(f"{note}\n\nNo committed run yet: `dammem run {name}` writes it into `runs/{name}/`."))
        return
    results = json.loads((out / "results.json").read_text())
    command = results.get("command", {})
    cmd = "dammem run " + " ".join([command.get("config", name), *map(shlex.quote, command.get("overrides", []))])
    env = results.get("environment", {})
    commit = env.get("git_commit") or "unknown"
    dirty = " (with uncommitted changes in the working tree)" if env.get("git_dirty") else ""
    machine = f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs, {env.get('backend', '?')} backend"
    elapsed = results.get("elapsed_s")
    took = f", {elapsed:.0f} s" if isinstance(elapsed, (int, float)) else ""
    display(Markdown(
        f"{note}\n\n```bash\n{cmd}\n```\n\nCommitted run: commit `{commit[:10]}`{dirty}; {machine}{took}. "
        f"Files: `results/{name}/`.\n"
    ))
    summary = out / "summary.md"
    if summary.is_file():
        display(Markdown(_summary_body(summary.read_text())))
    for png in sorted(out.glob("*.png")):
        display(Markdown(f"*{png.name}*"))
        display(Image(filename=str(png), width=720))


def show_paper(prefixes: tuple[str, ...]) -> None:
    from IPython.display import Markdown, display

    for name in configs(prefixes):
        display(Markdown(f"**Config `{name}`**"))
        show_config(name)
