"""Several JAX processes on this machine (``python -m dammem.launch``): every sharded path on a mesh that spans
processes equals the single-process result, and the launcher fails a run as a whole when a rank fails or hangs.

The multi-process runs (``tests/_multiprocess_worker.py``) use 2 processes x 2 CPU devices and 4 processes x 1
device; the 4-process run restores the checkpoint that the 2-process run saved. They take about two minutes on
2 cores, so their tests are marked slow (CI runs them after the default suite); the default suite keeps the
README's 2-process example. The launcher checks run plain
Python ranks (no JAX), so they take about a second each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dammem import launch
from tests._multiprocess_worker import MARKER

ROOT = Path(__file__).resolve().parents[1]
# the launcher tests' ranks sleep 600 s; a launcher that did not stop them would not end within this
STOP_WITHIN = 240
RUN_TIMEOUT = 420  # seconds a whole multi-process run may take (compiles included) before the launcher stops it

# float32 reductions in another order (across devices) vs one device: a few ulps of the values' scale
CASE_ATOL = {
    "retrieve": 2e-6,
    "retrieve_steps": 0,
    "energy": 2e-6,
    "update": 2e-6,
    "batch": 2e-6,
    "attention": 1e-5,
    "encode": 2e-6,
    "train": 2e-6,
    "checkpoint_save": 0,  # the restored model computes the saved model's outputs bit for bit (same program)
    "checkpoint_restore": 2e-6,  # trained by a run with another process count: equal to float32 rounding
}


def _launch(tmp: Path, processes: int, devices: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dammem.launch", "--num-processes", str(processes), "--devices-per-process",
         str(devices), "--timeout", str(RUN_TIMEOUT), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=RUN_TIMEOUT + 60,
    )  # fmt: skip


def _records(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line.split(MARKER, 1)[1]) for line in done.stdout.splitlines() if MARKER in line]
    return sorted(records, key=lambda r: r["rank"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    """The worker's records, per layout: ``"2x2"`` (saves a checkpoint) and ``"4x1"`` (restores it)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    checkpoint = tmp / "model"
    out = {"2x2": _records(_launch(tmp, 2, 2, "tests/_multiprocess_worker.py", f"save={checkpoint}"))}
    out["4x1"] = _records(_launch(tmp, 4, 1, "tests/_multiprocess_worker.py", f"restore={checkpoint}"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("layout, processes, devices", [("2x2", 2, 4), ("4x1", 4, 4)])
def test_every_rank_ran_every_section(runs, layout, processes, devices):
    records = runs[layout]
    assert [r["rank"] for r in records] == list(range(processes))
    for r in records:
        assert r["errors"] == {}, r["errors"]
        assert (r["processes"], r["devices"], r["local_devices"]) == (processes, devices, devices // processes)
        # each process holds only its rows of the 64 memories: the flat mesh splits them over all processes, the
        # grid's memory axis over 2 groups of processes
        assert r["local_rows"] == {"flat": 64 // processes, "grid": 32}
        expected = {"retrieve", "retrieve_steps", "energy", "update", "batch", "attention", "encode", "train"}
        expected.add("checkpoint_save" if layout == "2x2" else "checkpoint_restore")
        assert {name.split("/")[0] for name in r["cases"]} == expected


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["2x2", "4x1"])
def test_multiprocess_paths_equal_single_process(runs, layout):
    for record in runs[layout]:
        for name, case in record["cases"].items():
            sharded, single = np.asarray(case["sharded"]), np.asarray(case["single"])
            assert sharded.shape == single.shape, name
            np.testing.assert_allclose(sharded, single, rtol=0, atol=CASE_ATOL[name.split("/")[0]], err_msg=name)


@pytest.mark.slow
def test_ranks_agree(runs):
    """Replicated results and gathered results are the same whole arrays on every rank."""
    for records in runs.values():
        for record in records[1:]:
            for name, case in record["cases"].items():
                np.testing.assert_array_equal(case["sharded"], records[0]["cases"][name]["sharded"], err_msg=name)


@pytest.mark.slow
def test_training_changed_the_model(runs):
    """The data-parallel training steps did train: the loss moved (a no-op step would pass the comparisons)."""
    losses = runs["2x2"][0]["cases"]["train/loss"]["sharded"]
    assert len(losses) == 3 and losses[-1] < losses[0] - 1e-3


# ----------------------------------------------------------------------------------------------------------------
# The launcher itself: plain Python ranks
# ----------------------------------------------------------------------------------------------------------------


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rank.py"
    path.write_text("import os, sys, time\nrank = int(os.environ['DAMMEM_PROCESS_ID'])\n" + textwrap.dedent(body))
    return path


def _sleeper(tmp_path: Path, before_sleep: str = "") -> Path:
    """Ranks that write their pid to ``pid<rank>``, run ``before_sleep``, then sleep 600 s."""
    return _script(
        tmp_path,
        f"open(r'{tmp_path}/pid%d' % rank, 'w').write(str(os.getpid()))\n{before_sleep}\ntime.sleep(600)\n",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _pids(tmp_path: Path, n: int, deadline: float = 120.0) -> list[int]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        files = sorted(tmp_path.glob("pid*"))
        if len(files) == n and all(f.read_text() for f in files):
            return [int(f.read_text()) for f in files]
        time.sleep(0.05)
    raise AssertionError(f"the ranks did not start: {list(tmp_path.iterdir())}")


def _run_launcher(*args: str, timeout: float = 60) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dammem.launch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT,
    )  # fmt: skip


def test_launcher_prefixes_output_and_sets_the_environment(tmp_path):
    script = _script(
        tmp_path,
        """
        print(rank, os.environ['DAMMEM_NUM_PROCESSES'], os.environ['JAX_COORDINATOR_ADDRESS'].split(':')[0],
              '|'.join(os.environ['XLA_FLAGS'].split()), flush=True)
        print('to stderr', file=sys.stderr)
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "dammem.launch", "-n", "3", "--devices-per-process", "2", str(script)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_cpu_enable_fast_math=false"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    flag = "--xla_cpu_enable_fast_math=false|--xla_force_host_platform_device_count=2"  # the caller's 8 replaced
    assert sorted(done.stdout.splitlines()) == [f"[rank {r}] {r} 3 127.0.0.1 {flag}" for r in range(3)]
    assert sorted(done.stderr.splitlines()) == [f"[rank {r}] to stderr" for r in range(3)]


def test_launcher_failing_rank_stops_the_others(tmp_path):
    script = _sleeper(tmp_path, "if rank == 1:\n    time.sleep(0.5)\n    sys.exit(3)")
    proc = _run_launcher("-n", "3", str(script))
    out, err = proc.communicate(timeout=STOP_WITHIN)
    assert proc.returncode == 3, err
    assert "dammem.launch: rank 1 exited with status 3; stopping 2 other rank(s)" in err
    assert not any(_alive(pid) for pid in _pids(tmp_path, 3))


def test_launcher_rank_killed_from_outside(tmp_path):
    script = _sleeper(tmp_path)
    proc = _run_launcher("-n", "2", str(script))
    pids = _pids(tmp_path, 2)
    os.kill(pids[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=STOP_WITHIN)
    assert proc.returncode == 128 + signal.SIGKILL
    assert "rank 1 was killed by signal SIGKILL" in err
    assert not any(_alive(pid) for pid in pids)


def test_launcher_timeout_stops_every_rank(tmp_path):
    # a hung rank that ignores SIGTERM: SIGKILL follows
    script = _sleeper(tmp_path, "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    proc = _run_launcher("-n", "2", "--timeout", "2", str(script))
    out, err = proc.communicate(timeout=STOP_WITHIN)
    assert proc.returncode == launch.TIMEOUT_STATUS
    assert "timeout after 2 s with rank(s) [0, 1] still running" in err
    assert not any(_alive(pid) for pid in _pids(tmp_path, 2))


def test_launcher_stopped_by_sigterm_stops_every_rank(tmp_path):
    script = _sleeper(tmp_path)
    proc = _run_launcher("-n", "2", str(script))
    pids = _pids(tmp_path, 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=STOP_WITHIN)
    assert proc.returncode == 128 + signal.SIGTERM and "the launcher got SIGTERM" in err
    assert not any(_alive(pid) for pid in pids)


def test_launcher_module_form_and_arguments(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "dammem.launch", "-n", "2", "-m", "json.tool", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert sum(line.startswith("[rank ") and "usage" in line for line in done.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_processes": 0}, "num_processes=0; allowed: an integer >= 1"),
        ({"num_processes": 2, "devices_per_process": 1.5}, "devices_per_process=1.5; allowed: an integer >= 1"),
        ({"num_processes": 2, "timeout": 0}, "timeout=0; allowed: a positive number of seconds"),
    ],
)
def test_launcher_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        launch.launch([sys.executable, "-c", "pass"], **kwargs)


def test_initialize_refuses_the_launchers_own_settings(monkeypatch):
    monkeypatch.setenv(launch.ENV_PROCESS_ID, "0")
    with pytest.raises(ValueError, match="num_processes come from the launcher"):
        launch.initialize(num_processes=2)


def test_readme_several_processes_example_runs(tmp_path):
    """The README's several-processes example, run as it says (through the launcher, 2 processes x 2 devices)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Several processes or hosts:**") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = block.splitlines()[0].removeprefix("# ").split()
    assert command[:3] == ["python", "-m", "dammem.launch"] and command[-1] == "retrieve.py"
    (tmp_path / "retrieve.py").write_text(block)
    done = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=RUN_TIMEOUT + 60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the program's lines; gloo's connection messages go to the same stdout, some of them split over lines
    printed = [line for line in done.stdout.splitlines() if "slice(" in line]
    assert sorted(printed) == [
        "[rank 0] 0 slice(0, 2048, None) True",
        "[rank 1] 1 slice(2048, 4096, None) True",
    ]


# ----------------------------------------------------------------------------------------------------------------
# The per-process placement functions in this (one-process) test process
# ----------------------------------------------------------------------------------------------------------------


def test_process_local_functions_in_one_process():
    """With one process every row is local: the slice is all rows, the global array is the local one, gather is the
    value (each against the plain NumPy array)."""
    import jax

    from dammem import sharding as sh

    mesh = jax.make_mesh((1,), ("memory",))
    x = np.arange(24.0, dtype=np.float32).reshape(4, 6)
    assert sh.process_slice(4, mesh, "memory") == slice(0, 4)
    for dim in (0, 1, -1):
        placed = sh.distribute_process_local(x, mesh, "memory", dim=dim)
        expected_spec = ("memory", None) if dim == 0 else (None, "memory")
        assert tuple(placed.sharding.spec) == expected_spec
        np.testing.assert_array_equal(sh.gather({"a": placed})["a"], x)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda sh, m: sh.process_slice(0, m, "memory"), "process_slice: length=0; allowed: a positive int"),
        (lambda sh, m: sh.process_slice(4, m, "rows"), "process_slice: axis='rows' is not an axis of the mesh"),
        (lambda sh, m: sh.process_slice(4, "mesh", "memory"), "process_slice: mesh must be a jax.sharding.Mesh"),
        (
            lambda sh, m: sh.distribute_process_local(np.float32(1.0), m, "memory"),
            "distribute_process_local: local must have at least one axis to split, got a scalar",
        ),
        (
            lambda sh, m: sh.distribute_process_local(np.ones((2, 3)), m, "memory", dim=2),
            r"distribute_process_local: dim=2 is not an axis of local, of shape \(2, 3\)",
        ),
        (
            lambda sh, m: sh.distribute(np.ones((2, 3)), m, "memory", dim=-3),
            r"distribute: dim=-3 is not an axis of array, of shape \(2, 3\)",
        ),
    ],
)
def test_process_local_functions_bad_input(call, message):
    import jax

    from dammem import sharding as sh

    with pytest.raises((ValueError, TypeError), match=message):
        call(sh, jax.make_mesh((1,), ("memory",)))
