"""Shared harness of the benchmark scripts in this directory (run them as ``python benchmarks/NAME.py``).

* Timing: :func:`dammem._timing.time_interleaved` (re-exported here), the one timing loop of the repository:
  interleaved calls, phases that take turns (JAX and PyTorch are never interleaved call by call, see there),
  at least :data:`MIN_REPEATS` timed calls per case by default, summarised as minimum and median.
* The machine: :func:`environment` records Python, JAX and the peers' versions, the CPU model and count, the load
  average and the glibc ``MALLOC_*`` allocator settings (they move timings of this size by up to about 30%).
* Memory: :func:`run_case` runs one case in a fresh Python process and measures its peak resident set size;
  with ``host_devices=8`` that process sees 8 XLA host (CPU) devices (``XLA_FLAGS`` set before JAX starts), for
  benchmarks of sharded code on one machine.

A *case* for :func:`run_case` is named ``"module:function"``: the subprocess imports ``module`` (this directory and
the caller's ``sys.path`` are on its path), calls ``function(**kwargs)`` to set up (inputs, compilation, a first
call) and gets back a zero-argument callable; it then resets the peak-RSS counter, calls the callable once and
reports the peak resident memory during that call with the callable's (JSON-serialisable) return value.

When run as a script this file is that subprocess (``python _harness.py --case SPEC``).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from dammem._timing import load_average, machine_state, summarize, time_interleaved
from dammem.experiments._base import markdown_table

__all__ = [
    "MIN_REPEATS",
    "time_interleaved",
    "summarize",
    "environment",
    "run_case",
    "device_count_case",
    "write_json",
    "describe",
    "print_table",
    "target_status",
]

MIN_REPEATS = 15
"""Default number of timed calls per case (at least this many in every benchmark's default run)."""

_MARKER = "@@dammem-case-result@@"
_HERE = Path(__file__).resolve().parent


def load_torch():
    """``torch`` with its thread count set to the CPU count, or None when it is not installed (the ``bench`` extra)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(peers: tuple[str, ...] = ()) -> dict:
    """Versions (Python, JAX, NumPy, dammem and the distributions ``peers``), the JAX backend and devices, and the
    machine state (CPU model and count, load average, ``MALLOC_*`` settings)."""
    import jax
    import numpy as np

    versions = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": _version("jaxlib")}
    versions |= {"numpy": np.__version__, "dammem": _version("dammem")}
    versions |= {dist: _version(dist) for dist in peers}
    return {
        "versions": versions,
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        **machine_state(),
    }


def describe(env: dict) -> str:
    """One line on the machine for the top of a benchmark's output."""
    malloc = " ".join(f"{k}={v}" for k, v in env["malloc_env"].items()) or "glibc defaults"
    return (
        f"{env['cpu_model']}, {env['cpu_count']} CPUs, load {env['load_average']}, JAX {env['versions']['jax']} "
        f"({env['jax_backend']}), allocator: {malloc}"
    )


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a markdown table after a blank line: one line per row, cells as given (format numbers first)."""
    print()
    print(markdown_table(headers, list(rows)))


def target_status(target: dict) -> str:
    """``"PASS"``, ``"FAIL"`` or ``"skip"`` (``target["pass"]`` None: not evaluated, e.g. without the peer)."""
    return "skip" if target["pass"] is None else ("PASS" if target["pass"] else "FAIL")


def write_json(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as indented JSON (parent directories created); adds the load average at the end."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = dict(record, load_average_after=load_average())
    path.write_text(json.dumps(record, indent=2))
    return path


# ---------------------------------------------------------------------------------------------------------------
# One case in its own process: peak RSS, forced host devices
# ---------------------------------------------------------------------------------------------------------------


def run_case(
    case: str,
    kwargs: dict[str, Any] | None = None,
    *,
    host_devices: int | None = None,
    timeout_s: float = 900.0,
) -> dict:
    """Run ``case`` (``"module:function"``) in a fresh Python process; returns what it measured.

    Args:
      case: ``"module:function"``; ``function(**kwargs)`` returns the zero-argument callable to measure.
      kwargs: JSON-serialisable keyword arguments of ``function``.
      host_devices: when given, the process runs JAX on the CPU with this many host devices
        (``--xla_force_host_platform_device_count`` appended to ``XLA_FLAGS``, ``JAX_PLATFORMS=cpu``).
      timeout_s: the process is killed after this many seconds.

    Returns:
      ``{"result": the callable's return value, "peak_rss_bytes": peak resident memory during the call,
      "rss_before_bytes": resident memory just before it, "peak_increase_bytes": their difference,
      "max_rss_bytes": the process's peak over its whole life (imports and set-up included),
      "peak_is_call_only": False where the peak counter could not be reset (then the peak is the lifetime one)}``.

    Raises:
      ValueError: on a malformed ``case`` or ``host_devices``.
      RuntimeError: when the process fails; the message holds the end of its stderr.
    """
    if not isinstance(case, str) or not re.fullmatch(r"[\w.]+:\w+", case):
        raise ValueError(f"run_case: case must be 'module:function', got {case!r}")
    if host_devices is not None and (
        isinstance(host_devices, bool) or not isinstance(host_devices, int) or host_devices < 1
    ):
        raise ValueError(f"run_case: host_devices must be None or an int >= 1, got {host_devices!r}")
    env = dict(os.environ)
    paths = [str(_HERE)] + [p for p in sys.path if p] + env.get("PYTHONPATH", "").split(os.pathsep)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    if host_devices is not None:
        flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")).strip()
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={host_devices}".strip()
        env["JAX_PLATFORMS"] = "cpu"
    spec = json.dumps({"case": case, "kwargs": kwargs or {}})
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--case", spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"run_case: {case} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_MARKER) :])


def device_count_case() -> Any:
    """A case for :func:`run_case`: reports the JAX platform and device count that the process sees."""
    import jax

    return lambda: {"platform": jax.default_backend(), "device_count": jax.device_count()}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's peak-RSS counter (Linux: write 5 to /proc/self/clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _max_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _child(spec: dict) -> dict:
    module, function = spec["case"].split(":")
    call = getattr(importlib.import_module(module), function)(**spec["kwargs"])
    before = _status_kib("VmRSS")
    reset = before is not None and _reset_peak()
    result = call()
    max_rss = _max_rss_bytes()
    hwm = _status_kib("VmHWM") if reset else None
    peak = 1024 * hwm if hwm is not None else max_rss
    before_bytes = 1024 * before if before is not None else None
    return {
        "result": result,
        "peak_rss_bytes": peak,
        "rss_before_bytes": before_bytes,
        "peak_increase_bytes": None if before_bytes is None else peak - before_bytes,
        "max_rss_bytes": max_rss,
        "peak_is_call_only": hwm is not None,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--case":
        raise SystemExit('usage: python _harness.py --case \'{"case": "module:function", "kwargs": {}}\'')
    print(_MARKER + json.dumps(_child(json.loads(sys.argv[2]))), flush=True)
