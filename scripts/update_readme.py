"""Rewrite the generated blocks of README.md from the committed default runs in ``results/<config name>/``.

A generated block sits between two marker comments::

    <!-- generated: experiments-table -->
    ...
    <!-- end generated -->

and is replaced as a whole; everything outside the markers is left alone. Blocks:

* ``experiments-table``: one row per default config (``dammem.experiments._registry.DEFAULT_CONFIGS``, in that
  order): its run time (``elapsed_s``, and ``report_s`` when recorded) on the machine that ``results.json`` records
  (CPU model and count, the 1-minute load average before and after the run when recorded), its figures (the PNG
  files beside it) and what it reproduces, as its report module's ``reproduces(config, results)`` computes it from
  the committed results. A default config without a committed run gets a row that says so.
* ``findings``: for every default config with a committed run, its verdicts with the evidence sentence its report
  module computes from the committed results (the numbers the README states about the reproductions live here, so
  they cannot drift from the results).
* ``benchmarks``: for every benchmark run committed as ``results/benchmarks/<name>.json`` (in :data:`BENCHMARKS`
  order), the command, the machine and load it ran on, and the table its script's ``readme_table(record)`` renders.

Usage (from the repository root)::

    .venv/bin/python scripts/update_readme.py           # rewrite README.md in place
    .venv/bin/python scripts/update_readme.py --check   # exit 1 when README.md differs from what would be written

``tests/experiments/test_reports.py`` runs :func:`render_readme` in memory and fails when the README has drifted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

from dammem.experiments._base import load_results, reproduction_verdicts, resolve_document
from dammem.experiments._registry import DEFAULT_CONFIGS

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- generated: {name} -->"
END = "<!-- end generated -->"


def _wall_time(record: dict) -> str:
    env = record["environment"]
    text = f"{record['elapsed_s']:.0f} s"
    if record.get("report_s") is not None:
        text += f" + {record['report_s']:.0f} s report"
    loads = record.get("load_average") or {}
    before, after = loads.get("before"), loads.get("after")
    loaded = f", load {before[0]:g} before" if before else ", load not recorded"
    if before and after:
        loaded += f", {after[0]:g} after"
    return f"{text} ({env.get('cpu_model')}, {env.get('cpu_count')} CPUs{loaded})"


def committed_run(folder: Path) -> tuple[dict, list[dict]] | None:
    """``(record, verdicts)`` of the run committed in ``folder``, or ``None`` when there is none."""
    if not (folder / "results.json").is_file():
        return None
    record, results = load_results(folder)
    module, _, config = resolve_document({k: record[k] for k in ("experiment", "seed", "config")})
    return record, reproduction_verdicts(module, config, results)


def experiment_row(name: str, results_dir: Path) -> list[str]:
    """The table row of one default config: config, experiment, run time, figures, verdicts."""
    folder = results_dir / name
    run = committed_run(folder)
    if run is None:
        return [f"`{name}`", "-", "no committed default run", "-", "-"]
    record, verdicts = run
    figures = sorted(p.name for p in folder.glob("*.png"))
    rel = folder.relative_to(results_dir.parent) if results_dir.parent in folder.parents else folder
    shown = "<br>".join(f"[{f}]({rel.as_posix()}/{f})" for f in figures) or "-"
    said = "<br>".join(f"{v['target']}: **{v['verdict']}**" for v in verdicts) or "-"
    return [f"[`{name}`]({rel.as_posix()}/summary.md)", f"`{record['experiment']}`", _wall_time(record), shown, said]


def experiments_table(results_dir: Path) -> str:
    rows = [experiment_row(name, results_dir) for name in DEFAULT_CONFIGS]
    head = ["config", "experiment", "default run time (machine)", "figures", "reproduces (verdict from its results)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def findings(results_dir: Path) -> str:
    """One bullet per verdict of every committed default run: config, target, verdict and the evidence sentence."""
    lines = []
    for name in DEFAULT_CONFIGS:
        run = committed_run(results_dir / name)
        for v in run[1] if run else []:
            lines.append(f"- `{name}`, {v['target']}: **{v['verdict']}**. {v['evidence']}")
    return "\n".join(lines) if lines else "No committed default run."


BENCHMARKS = ("separations", "krop", "drdam", "layers", "uhop")
"""Benchmarks whose committed runs the README shows, in this order."""


def _benchmark_module(name: str):
    folder = str(ROOT / "benchmarks")
    if folder not in sys.path:  # the scripts import their harness as a top-level module
        sys.path.insert(0, folder)
    key = f"_bench_{name}"
    if key not in sys.modules:  # registered before it runs: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(key, ROOT / "benchmarks" / f"{name}.py")
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


def benchmarks(results_dir: Path) -> str:
    """Each committed benchmark run: its command, machine, load and table (the script's ``readme_table``)."""
    parts = []
    for name in BENCHMARKS:
        path = results_dir / "benchmarks" / f"{name}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        env = record["environment"]
        load = env.get("load_average")
        machine = f"{env['cpu_model']}, {env['cpu_count']} CPUs, JAX {env['versions']['jax']} ({env['jax_backend']})"
        head = f"`python benchmarks/{name}.py` (`results/benchmarks/{name}.json`; {machine}, load {load} before)"
        parts.append(f"{head}. {_benchmark_module(name).readme_table(record)}")
    return "\n\n".join(parts) if parts else "No committed benchmark run."


BLOCKS = {"experiments-table": experiments_table, "findings": findings, "benchmarks": benchmarks}
"""Generated block name -> function of the results directory that renders it."""


def render_readme(readme: str, results_dir: Path) -> str:
    """``readme`` with every generated block rewritten; a block named in the text but unknown is an error."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise ValueError(f"README block {name!r} is not generated by this script (known: {sorted(BLOCKS)})")
        return f"{BEGIN.format(name=name)}\n{BLOCKS[name](results_dir)}\n{END}"

    pattern = re.compile(r"<!-- generated: ([\w-]+) -->\n.*?<!-- end generated -->", re.DOTALL)
    return pattern.sub(replace, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README differs; write nothing")
    args = parser.parse_args(argv)
    old = args.readme.read_text()
    new = render_readme(old, args.results)
    if args.check:
        if new != old:
            print(f"{args.readme}: generated blocks differ from {args.results}; run scripts/update_readme.py")
            return 1
        return 0
    if new != old:
        args.readme.write_text(new)
    print(f"{args.readme}: {'rewritten' if new != old else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
