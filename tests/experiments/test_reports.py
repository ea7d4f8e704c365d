"""Reports say only what their results say, checked on the committed default runs (``results/<config>/``).

* Perturbation: each committed run's report is written again (without figures) from its results with every float
  and every non-structural integer perturbed by its own random factor; every number with a decimal point in the
  summary's prose must then change, unless it is zero (which scaling leaves at zero), a number of the config (read
  from the config, not from the results) or one its report module declares in ``PROSE_CONSTANTS`` (theory, such as
  sqrt(2 / pi)). A number that stays put was typed into the report, not read from the results.
* Drift: the README's generated blocks equal what ``scripts/update_readme.py`` renders from ``results/``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from dammem.experiments._base import load_results, reproduction_verdicts, resolve_document, write_report
from dammem.experiments._registry import DEFAULT_CONFIGS

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
COMMITTED = sorted(p.parent.name for p in RESULTS.glob("*/results.json"))
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[+-]?\d+)?")


def _keys(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        out |= set(node)
        out |= {n for k in node for n in re.findall(r"\d+", str(k))}  # "8x256" keys M = 8 and N = 256 too
        for v in node.values():
            _keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _keys(v, out)
    return out


def _perturb(node, rng, structural: set[str]):
    """A copy of the results with every float leaf multiplied by its own factor in [1.3, 1.9], and every integer
    leaf that names no entry of the results (a dimension or a size that keys a mapping is structure, not data)
    raised by at least 1."""
    if isinstance(node, dict):
        return {k: _perturb(v, rng, structural) for k, v in node.items()}
    if isinstance(node, list):
        return [_perturb(v, rng, structural) for v in node]
    if isinstance(node, bool):
        return node
    if isinstance(node, float) and np.isfinite(node) and node != 0.0:
        return node * float(rng.uniform(1.3, 1.9))
    if isinstance(node, int) and node > 0 and str(node) not in structural:
        return node + max(1, round(node * float(rng.uniform(0.05, 0.35))))
    return node


def _config_numbers(config_map: dict) -> set[str]:
    """How a config's floats may be printed."""
    out = set()
    stack = [config_map]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            for fmt in (".1f", ".2f", ".3f", ".2g", ".3g", ".4g", "g"):
                out.add(format(node, fmt))
    return out


def _prose_numbers(body: str) -> list[list[str]]:
    """Per prose line (tables and images left out), its decimal numbers."""
    lines = [s for s in body.splitlines() if s.strip() and not s.startswith(("|", "![", "#"))]
    return [NUMBER.findall(s) for s in lines]


def _report(name: str, tmp_path: Path, perturb: bool, seed: int = 0) -> tuple[str, list[dict]]:
    record, results = load_results(RESULTS / name)
    if perturb:
        arrays = results.pop("arrays", None)
        results = _perturb(copy.deepcopy(results), np.random.default_rng(seed), _keys(results, set()))
        if arrays is not None:
            results["arrays"] = arrays
    module, _, config = resolve_document(record)
    body = write_report(module, config, results, tmp_path, figures=False)
    return body, reproduction_verdicts(module, config, results)


def _stuck_numbers(name: str, tmp_path: Path, seed: int) -> tuple[list[str], list[dict]]:
    """The summary's prose numbers that stayed put when the results were perturbed (seed ``seed``), and the verdicts
    of the unperturbed results."""
    record, _ = load_results(RESULTS / name)
    body, verdicts = _report(name, tmp_path, perturb=False)
    moved, _ = _report(name, tmp_path, perturb=True, seed=seed)
    assert not list(tmp_path.glob("*.png")), "figures=False must skip the figures"
    from dammem.experiments._base import report_module

    module, _, _ = resolve_document(record)
    allowed = (
        {"0.0", "0.00", "0.000", "0.0000"}
        | _config_numbers(record["config"])
        | set(getattr(report_module(module), "PROSE_CONSTANTS", ()))
    )
    before, after = _prose_numbers(body), _prose_numbers(moved)
    assert sum(map(len, before)) > 0, "the summary states no number"
    stuck = []
    if len(before) == len(after):
        for old, new in zip(before, after):
            if len(old) != len(new):
                continue  # the sentence itself changed with the data
            stuck += [a for a, b in zip(old, new) if a == b and a not in allowed]
    else:  # lines came or went with the data: compare the numbers as multisets
        stuck = [a for a in sum(before, []) if a not in allowed and a in sum(after, [])]
    return stuck, verdicts


@pytest.mark.parametrize("name", COMMITTED)
def test_summary_numbers_follow_the_results(name, tmp_path):
    """A number that stays put under two independent perturbations was typed (one perturbation can leave a derived
    number, such as a ratio of two perturbed values, where it was, or put it elsewhere in the text, by chance)."""
    first, verdicts = _stuck_numbers(name, tmp_path, seed=0)
    second, _ = _stuck_numbers(name, tmp_path, seed=1)
    stuck = sorted(set(first) & set(second))
    assert not stuck, f"{name}: these numbers did not follow the results: {stuck}"
    assert all(v["evidence"] for v in verdicts)


def test_the_perturbation_finds_a_typed_number(tmp_path, monkeypatch):
    """The check above fails on a report that types a number instead of reading it."""
    if not COMMITTED:
        pytest.skip("no committed results")
    name = COMMITTED[0]
    record, _ = load_results(RESULTS / name)
    module, _, _ = resolve_document(record)
    from dammem.experiments._base import report_module

    rep = report_module(module)
    original = rep.report

    def typed(config, results, out_dir, *, figures=True):
        return original(config, results, out_dir, figures=figures) + "\n\nThe measured value is 12.345."

    monkeypatch.setattr(rep, "report", typed)
    for seed in (0, 1):
        assert "12.345" in _stuck_numbers(name, tmp_path, seed)[0]


def _update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_blocks_match_the_committed_results():
    script = _update_readme()
    readme = (ROOT / "README.md").read_text()
    assert "<!-- generated: experiments-table -->" in readme
    assert script.render_readme(readme, RESULTS) == readme, "README drifted: run scripts/update_readme.py"


def test_readme_table_lists_every_default_config_and_reads_its_results(tmp_path):
    script = _update_readme()
    table = script.experiments_table(RESULTS)
    rows = table.splitlines()[2:]
    assert [r.split(" | ")[0].lstrip("| ").split("]")[0].strip("[`") for r in rows] == list(DEFAULT_CONFIGS)
    for name, row in zip(DEFAULT_CONFIGS, rows):
        if name in COMMITTED:
            record, _ = load_results(RESULTS / name)
            assert f"{record['elapsed_s']:.0f} s" in row and record["environment"]["cpu_model"] in row
            loads = record.get("load_average")
            if loads:  # the 1-minute load average before and after the run
                assert f"load {loads['before'][0]:g} before, {loads['after'][0]:g} after" in row
            for png in (RESULTS / name).glob("*.png"):
                assert f"(results/{name}/{png.name})" in row
        else:
            assert "no committed default run" in row
    # a block is rewritten between its markers only, and an unknown block is an error
    text = "a\n<!-- generated: experiments-table -->\nold\n<!-- end generated -->\nb\n"
    empty = tmp_path / "results"
    empty.mkdir()
    new = script.render_readme(text, empty)
    assert new.startswith("a\n<!-- generated: experiments-table -->\n| config |") and new.endswith(
        "<!-- end generated -->\nb\n"
    )
    assert new.count("no committed default run") == len(DEFAULT_CONFIGS)
    with pytest.raises(ValueError, match="'nope' is not generated"):
        script.render_readme("<!-- generated: nope -->\n<!-- end generated -->", empty)


def test_readme_findings_are_the_verdicts_of_the_committed_runs(tmp_path):
    """The findings block holds every verdict's evidence sentence of every committed default run, in order."""
    script = _update_readme()
    block = script.findings(RESULTS).splitlines()
    expected = []
    for name in DEFAULT_CONFIGS:
        if name in COMMITTED:
            record, results = load_results(RESULTS / name)
            module, _, config = resolve_document({k: record[k] for k in ("experiment", "seed", "config")})
            for v in reproduction_verdicts(module, config, results):
                expected.append(f"- `{name}`, {v['target']}: **{v['verdict']}**. {v['evidence']}")
    assert block == expected and len(block) >= len(COMMITTED)
    empty = tmp_path / "results"
    empty.mkdir()
    assert script.findings(empty) == "No committed default run."


BENCH_RUNS = sorted(p.stem for p in (RESULTS / "benchmarks").glob("*.json"))


def _label_numbers(node, out: set[str]) -> set[str]:
    """Numbers written in a record's keys and strings (method names such as ``entmax(1.5, traced)``): labels."""
    if isinstance(node, dict):
        for k, v in node.items():
            out |= set(NUMBER.findall(str(k)))
            _label_numbers(v, out)
    elif isinstance(node, list):
        for v in node:
            _label_numbers(v, out)
    elif isinstance(node, str):
        out |= set(NUMBER.findall(node))
    return out


@pytest.mark.parametrize("name", BENCH_RUNS)
def test_readme_benchmark_tables_follow_the_committed_json(name, tmp_path):
    """Every decimal number of a benchmark's README account changes when the measurements in its JSON change (the
    setting, the config, stays): the account is read from the run, not typed. As for the summaries, a number counts
    as typed when it stays put under two independent perturbations (a ratio can stay by chance under one)."""
    script = _update_readme()
    assert name in script.BENCHMARKS
    record = json.loads((RESULTS / "benchmarks" / f"{name}.json").read_text())
    render = script._benchmark_module(name).readme_table
    rendered = render(record)
    allowed = _config_numbers(record["config"]) | _label_numbers(record, set())
    stuck_per_seed = []
    for seed in (1, 2):
        perturbed = _perturb(
            copy.deepcopy(record), np.random.default_rng(seed), {str(v) for v in record["config"].values()}
        )
        perturbed["config"] = record["config"]
        before, after = NUMBER.findall(rendered), NUMBER.findall(render(perturbed))
        assert before and len(before) == len(after)
        stuck_per_seed.append({a for a, b in zip(before, after) if a == b and a not in allowed})
    stuck = stuck_per_seed[0] & stuck_per_seed[1]
    assert not stuck, stuck
    # the README's block holds this account
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / f"{name}.json").write_text(json.dumps(record))
    assert rendered in script.benchmarks(tmp_path)
