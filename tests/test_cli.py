import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import dammem
from dammem import _timing
from dammem.cli import main
from dammem.experiments import EXPERIMENTS
from dammem.experiments._base import ConfigError, find_config, packaged_configs

PACKAGE = Path(dammem.__file__).resolve().parent
CONFIG_DIR = PACKAGE / "configs"
QUICKSTART = str(CONFIG_DIR / "quickstart.yaml")
TINY = ["config.num_memories=12", "config.num_queries=4", "config.num_trials=1", "config.beta_sweep=[]"]


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dammem: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------
# configs shipped in the package: names, paths, `dammem list`


def test_packaged_configs_are_the_yaml_files_of_the_package():
    on_disk = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"quickstart", "capacity", "krop_timing", "krop_capacity", "krop_mutable"} <= set(on_disk)
    configs = packaged_configs()
    assert list(configs) == on_disk
    for name, source in configs.items():
        assert source.read_text() == (CONFIG_DIR / f"{name}.yaml").read_text()


@pytest.mark.parametrize(
    "spec, name, path",
    [
        ("configs/quickstart.yaml", "quickstart", Path("configs/quickstart.yaml")),
        ("quickstart.yaml", "quickstart", Path("quickstart.yaml")),  # a suffix makes it a path, not a name
        ("./quickstart", "quickstart", Path("quickstart")),
        ("/abs/dir/my_run.yml", "my_run", Path("/abs/dir/my_run.yml")),
    ],
)
def test_find_config_paths(spec, name, path):
    assert find_config(spec) == (name, path)


def test_find_config_names(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("experiment: capacity\n")  # a local file does not shadow the name
    name, source = find_config("quickstart")
    assert name == "quickstart" and source.read_text() == (CONFIG_DIR / "quickstart.yaml").read_text()
    with pytest.raises(ConfigError, match=r"config 'quickstrat' is not a packaged config \(those are \[.*'quickstart'"):
        find_config("quickstrat")


def test_list_shows_experiments_and_packaged_configs_from_any_directory(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing here: the configs come from the package
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    split = lines.index("configs (run one with `dammem run NAME`; a path to a YAML file works too):")
    assert lines[0] == "experiments:"
    paths = sorted(CONFIG_DIR.glob("*.yaml"))
    width = max(len(name) for name in [*EXPERIMENTS, *(p.stem for p in paths)]) + 1  # one aligned column
    assert [line.split()[0] for line in lines[1:split]] == sorted(EXPERIMENTS)
    assert all(line[2 + width] == " " and line[3 + width] != " " for line in lines[1:split])
    expected = [
        "  " + path.stem.ljust(width) + " experiment " + yaml.safe_load(path.read_text())["experiment"]
        for path in paths
    ]
    assert lines[split + 1 :] == expected
    assert any(re.fullmatch(r"  quickstart +experiment quickstart", line) for line in expected)
    assert not any("bench" in line for line in lines)  # benchmarks are scripts in benchmarks/, not a subcommand


def test_bench_is_not_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "krop"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_usage_does_not_call_the_overrides_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # argparse wraps the usage line to the terminal width
    assert err.startswith("usage: dammem run [-h] [--out OUT] [--overwrite] [--no-progress] config [overrides ...] ")
    assert err.endswith("dammem run: error: the following arguments are required: config")


# ---------------------------------------------------------------------------------------------------------------
# a run: outputs, provenance, refusing a non-empty --out, nothing left behind by a failure


def _head_commit() -> str | None:
    if shutil.which("git") is None:
        return None
    tracked = subprocess.run(
        ["git", "-C", str(PACKAGE), "ls-files", "--error-unmatch", "__init__.py"], capture_output=True
    )
    if tracked.returncode != 0:
        return None
    return subprocess.run(
        ["git", "-C", str(PACKAGE), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_run_by_name_records_provenance_and_refuses_a_non_empty_out(tmp_path, capsys):
    out = tmp_path / "q"
    argv = ["run", "quickstart", *TINY, "seed=5", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == f"quickstart: wrote {out / 'results.json'}, {out / 'summary.md'} " + re.search(
        r"\(\d+\.\d s\)\n$", captured.out
    ).group(0)
    # --no-progress: one line per stage on stderr, naming the stage
    stages = captured.err.splitlines()
    assert [re.sub(r", \d+\.\d s$", "", line) for line in stages] == [
        "quickstart [1/2] compile: 1 trial, K=12, 4 queries, 0 betas in the sweep",
        "quickstart [2/2] retrieve: 1 trial x 4 queries",
    ]
    record = json.loads((out / "results.json").read_text())
    assert record["seed"] == 5 and record["config"]["num_memories"] == 12
    assert record["command"] == {
        "argv": ["dammem", *argv],
        "cwd": os.getcwd(),
        "config": "quickstart",
        "config_file": str(CONFIG_DIR / "quickstart.yaml"),
        "overrides": [*TINY, "seed=5"],
    }
    env = record["environment"]
    assert "seed" not in env  # recorded once, at the top level
    assert env["cpu_model"] == _timing.cpu_model() and env["cpu_count"] == os.cpu_count()
    assert env["git_commit"] == _head_commit()
    assert (env["git_dirty"] is None) == (env["git_commit"] is None)
    assert {p.name for p in out.iterdir()} == {"results.json", "results.npz", "summary.md", "completions.png"}

    # a second identical run refuses the non-empty directory and leaves it as it was
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert line == (
        f"dammem: error: --out '{out}' is not empty (completions.png, results.json, results.npz, summary.md); pass "
        "--overwrite to write into it (files of the same names are replaced), or choose another directory"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # --overwrite replaces the files, keeps others
    (out / "notes.txt").write_text("mine")
    assert main([*argv[:-3], "seed=6", "--out", str(out), "--overwrite", "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((out / "results.json").read_text())["seed"] == 6
    assert (out / "notes.txt").read_text() == "mine" and not any(p.name.startswith(".") for p in out.iterdir())


def test_default_out_is_runs_slash_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", QUICKSTART, *TINY, "--no-progress"]) == 0
    assert "quickstart: wrote runs/quickstart/results.json" in capsys.readouterr().out
    record = json.loads((tmp_path / "runs" / "quickstart" / "results.json").read_text())
    assert record["command"]["config"] == QUICKSTART and record["command"]["config_file"] == QUICKSTART
    with np.load(tmp_path / "runs" / "quickstart" / "results.npz") as arrays:
        assert arrays["truth"].shape == (4, 784)


def test_a_failed_run_leaves_nothing_behind(tmp_path, capsys):
    garbage = tmp_path / "mnist.npz"
    garbage.write_bytes(b"\x00" * 64)
    bad_data = [f"config.data_path={garbage}", "--no-progress"]
    # a new directory (and its new parents) disappears again
    assert main(["run", "quickstart", *bad_data, "--out", str(tmp_path / "new" / "deeper")]) == 2
    assert "config.data_path: load_mnist:" in _one_line_error(capsys)
    assert not (tmp_path / "new").exists()
    # an existing directory is left as it was: empty, or with its old files under --overwrite
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "quickstart", *bad_data, "--out", str(empty)]) == 2
    _one_line_error(capsys)
    assert list(empty.iterdir()) == []
    (empty / "results.json").write_text("old")
    assert main(["run", "quickstart", *bad_data, "--out", str(empty), "--overwrite"]) == 2
    _one_line_error(capsys)
    assert [p.name for p in empty.iterdir()] == ["results.json"] and (empty / "results.json").read_text() == "old"


def test_config_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["run", "quickstart", "config.bogus=1", "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) ['bogus']" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()
    assert main(["run", "quickstrat"]) == 2
    assert "config 'quickstrat' is not a packaged config" in _one_line_error(capsys)
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: quickstart\nconfig: [1, 2]\n")
    assert main(["run", str(bad)]) == 2
    assert "expected a mapping of Config fields" in _one_line_error(capsys)
    broken = tmp_path / "broken.yaml"
    broken.write_text("experiment: quickstart\nconfig: {a: [1, \n")
    assert main(["run", str(broken)]) == 2
    assert "not valid YAML" in _one_line_error(capsys)  # a multi-line parser message, folded into one line


def test_data_problems_exit_2_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    # decided by the config alone, before anything runs
    assert main(["run", "quickstart", "config.data_path=/nonexistent/mnist.npz", "--out", out]) == 2
    line = _one_line_error(capsys)
    assert "data_path '/nonexistent/mnist.npz' does not exist" in line
    assert main(["run", "quickstart", "config.num_memories=100000", "--out", out]) == 2
    assert "num_memories (100000) exceeds the 2000 digits of the bundled MNIST subset" in _one_line_error(capsys)
    # found when the data are read
    few = tmp_path / "few.npz"
    digits, labels = np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8)
    np.savez(few, x_train=digits, y_train=labels, x_test=digits, y_test=labels)
    assert main(["run", "quickstart", f"config.data_path={few}", "--out", out, "--no-progress"]) == 2
    assert "config.num_memories: 100 exceeds the 5 digits in" in _one_line_error(capsys)


def test_unusable_output_directory_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "quickstart", "--out", str(blocker / "sub")]) == 2
    assert f"cannot create the output directory '{blocker / 'sub'}'" in _one_line_error(capsys)
    assert main(["run", "quickstart", "--out", str(blocker)]) == 2
    assert _one_line_error(capsys) == f"dammem: error: --out '{blocker}' exists and is not a directory"


# ---------------------------------------------------------------------------------------------------------------
# robustness: leftovers of a killed run, Ctrl-C


def test_leftovers_of_a_killed_run_are_ignored_and_removed(tmp_path, capsys):
    out = tmp_path / "q"
    for flags in ([], ["--overwrite"]):
        leftover = out / ".dammem-partial-xyz"  # what a run killed (SIGKILL) while writing its report leaves
        leftover.mkdir(parents=True)
        (leftover / "results.json").write_text("{")
        assert main(["run", "quickstart", *TINY, "--out", str(out), "--no-progress", *flags]) == 0, flags
        capsys.readouterr()
        assert not leftover.exists(), flags
        assert {p.name for p in out.iterdir()} == {"results.json", "results.npz", "summary.md", "completions.png"}


@pytest.mark.parametrize("signame, status, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_stops_a_run_with_its_status_and_one_line(tmp_path, signame, status, word):
    import signal
    import sys

    out = tmp_path / "q"
    script = Path(sys.executable).with_name("dammem")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dammem.cli"]
    proc = subprocess.Popen(
        [*command, "run", "quickstart", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stderr.read(1)  # the progress bar appears once the run has started (then it compiles and runs)
    proc.send_signal(getattr(signal, signame))
    stdout, stderr = proc.communicate(timeout=120)
    lines = (first + stderr).replace("\r", "\n").strip().splitlines()
    assert proc.returncode == status, (proc.returncode, stderr[-2000:])
    assert lines[-1] == f"dammem: {word}", stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and stdout == ""
    assert not out.exists()  # a run that did not finish leaves nothing behind: no empty --out, no scratch folder


def test_overrides_after_the_options_are_kept_in_order(capsys):
    from dammem.cli import _parse

    argv = ["run", "quickstart", "config.num_memories=20", "--out", "q", *TINY, "seed=4", "--no-progress"]
    args = _parse(argv)
    assert args.out == "q" and args.no_progress
    assert args.overrides == ["config.num_memories=20", *TINY, "seed=4"]  # applied in this order: the later wins
    assert _parse(["run", "quickstart", "--out", "q"]).overrides == []
    for stray in ("--bogus", "oops"):  # an unknown option, or a word that is no key=value, is still refused
        with pytest.raises(SystemExit) as exit_info:
            _parse(["run", "quickstart", "--out", "q", stray])
        assert exit_info.value.code == 2
        assert f"unrecognized arguments: {stray}" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # `list` takes no overrides
        _parse(["list", "seed=3"])
    assert "unrecognized arguments: seed=3" in capsys.readouterr().err


def test_report_needs_a_finished_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert _one_line_error(capsys) == (
        f"dammem: error: '{tmp_path}' holds no results.json (give the --out directory of a finished run)"
    )
