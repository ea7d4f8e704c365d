"""Smoke test of the KROP benchmark entry point (timings are never asserted)."""

import json

from dammem.cli import main


def test_bench_krop_quick_run_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1048576")
    out = tmp_path / "krop.json"
    args = ["--sizes", "64", "256", "--batch", "4", "--repeats", "1", "--rounds", "1", "--no-torch", "--out", str(out)]
    assert main(["bench", "krop", *args]) == 0
    record = json.loads(out.read_text())
    text = json.dumps(record)
    assert "64" in text and "256" in text
    assert record["malloc_env"]["MALLOC_TOP_PAD_"] == "1048576"
    assert "krop" in capsys.readouterr().out.lower()
