import json
from pathlib import Path

from dammem.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_list_shows_experiments_and_configs(capsys):
    assert main(["list", "--configs", str(ROOT / "configs")]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "capacity" in out and "quickstart.yaml" in out and "separations" in out


def test_run_with_overrides_writes_outputs(tmp_path, capsys):
    code = main(
        [
            "run",
            str(ROOT / "configs" / "quickstart.yaml"),
            "config.num_memories=12",
            "config.num_queries=4",
            "config.num_trials=1",
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


def test_config_errors_exit_2_with_a_message(tmp_path, capsys):
    cfg = str(ROOT / "configs" / "quickstart.yaml")
    assert main(["run", cfg, "config.bogus=1", "--out", str(tmp_path)]) == 2
    assert "unknown key(s) ['bogus']" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: quickstart\nconfig: [1, 2]\n")
    assert main(["run", str(bad)]) == 2
    assert "expected a mapping of Config fields" in capsys.readouterr().err
