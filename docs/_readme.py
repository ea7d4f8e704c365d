"""Pieces of the README shown in the docs (executed in the pages' hidden cells), so each table has one home."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _lines() -> list[str]:
    return README.read_text().splitlines()


def section(title: str, *, skip_heading: bool = True) -> str:
    """The README's section whose heading is ``title`` (any level), up to the next heading of that level or above."""
    lines = _lines()
    fenced, in_fence = [], False
    for line in lines:  # a "#" comment inside a code fence is not a heading
        if line.startswith("```"):
            in_fence = not in_fence
        fenced.append(in_fence)
    for i, line in enumerate(lines):
        match = None if fenced[i] else re.match(r"^(#+) (.*)$", line)
        if match and match.group(2).strip() == title:
            level = len(match.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if not fenced[j] and re.match(rf"^#{{1,{level}}} ", lines[j])), len(lines))
            body = lines[i + 1 if skip_heading else i : end]
            return "\n".join(body).strip() + "\n"
    raise KeyError(f"README.md has no section {title!r}")


def table(header: str) -> str:
    """The README's table whose header line starts with ``header``."""
    lines = _lines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next((j for j in range(start, len(lines)) if not lines[j].startswith("|")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def show(markdown: str):
    """Display markdown in an executed cell (MyST-NB renders it as part of the page)."""
    from IPython.display import Markdown

    return Markdown(markdown)
