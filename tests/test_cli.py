import json
from pathlib import Path

import numpy as np
import pytest

from dammem.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


def test_list_shows_experiments_and_configs(capsys):
    assert main(["list", "--configs", str(ROOT / "configs")]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "capacity" in out and "quickstart.yaml" in out
    assert "benchmarks" not in out  # benchmarks are scripts in benchmarks/, not a subcommand


def test_bench_is_not_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "krop"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bench'" in capsys.readouterr().err


def test_run_with_overrides_writes_outputs(tmp_path, capsys):
    code = main(
        [
            "run",
            QUICKSTART,
            "config.num_memories=12",
            "config.num_queries=4",
            "config.num_trials=1",
            "config.beta_sweep=[]",
            "seed=5",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["seed"] == 5 and record["config"]["num_memories"] == 12
    assert {"results.json", "summary.md", "completions.png"} <= {p.name for p in tmp_path.iterdir()}
    assert f"quickstart: wrote {tmp_path / 'results.json'}" in capsys.readouterr().out


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dammem: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_config_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["run", QUICKSTART, "config.bogus=1", "--out", str(tmp_path)]) == 2
    assert "unknown key(s) ['bogus']" in _one_line_error(capsys)
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
    assert main(["run", QUICKSTART, "config.data_path=/nonexistent/mnist.npz", "--out", out]) == 2
    line = _one_line_error(capsys)
    assert "data_path '/nonexistent/mnist.npz' does not exist" in line
    assert main(["run", QUICKSTART, "config.num_memories=100000", "--out", out]) == 2
    assert "num_memories (100000) exceeds the 2000 digits of the bundled MNIST subset" in _one_line_error(capsys)
    # found when the data are read
    garbage = tmp_path / "mnist.npz"
    garbage.write_bytes(b"\x00" * 64)
    assert main(["run", QUICKSTART, f"config.data_path={garbage}", "--out", out, "--no-progress"]) == 2
    assert "config.data_path: load_mnist:" in _one_line_error(capsys)
    few = tmp_path / "few.npz"
    digits, labels = np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8)
    np.savez(few, x_train=digits, y_train=labels, x_test=digits, y_test=labels)
    assert main(["run", QUICKSTART, f"config.data_path={few}", "--out", out, "--no-progress"]) == 2
    assert "config.num_memories: 100 exceeds the 5 digits in" in _one_line_error(capsys)


def test_unwritable_output_directory_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", QUICKSTART, "--out", str(blocker / "sub")]) == 2
    assert "cannot create the output directory" in _one_line_error(capsys)
