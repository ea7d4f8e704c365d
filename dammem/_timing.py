"""Wall-clock timing of interleaved cases, and the state of the machine that moves such timings.

One timing loop for the package's timing experiment (:mod:`dammem.experiments.krop.timing`) and the benchmark
scripts of the repository (``benchmarks/``): every case is a zero-argument callable, timed one call at a time with
``time.perf_counter`` and synchronised with ``jax.block_until_ready`` (which returns non-JAX results unchanged, so
PyTorch or NumPy calls time the same way). Cases are interleaved, one call of each in turn, so that a burst of
background load spreads over all of them instead of landing on one; the summary keeps the minimum (the least
disturbed call) and the median.

Cases can be split into *phases* that never interleave with each other, for frameworks that disturb whatever runs
right after them: PyTorch's OpenMP workers keep spinning for a while after each call and slow a JAX call that
follows. Phases take turns in ``rounds``, with a pause before each phase so that the previous one's worker threads go
idle; within a phase the cases interleave call by call.

Example:
  >>> import jax.numpy as jnp
  >>> from dammem._timing import summarize, time_interleaved
  >>> x = jnp.ones((64, 64))
  >>> times = time_interleaved([{"sum": lambda: x.sum(), "max": lambda: x.max()}], repeats=3, warmup=1)
  >>> sorted(times), [len(t) for t in times.values()]
  (['max', 'sum'], [3, 3])
  >>> sorted(summarize(times["sum"]))
  ['max_ms', 'median_ms', 'min_ms', 'repeats']
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

__all__ = ["time_interleaved", "summarize", "cpu_model", "load_average", "malloc_env", "machine_state"]


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"time_interleaved: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"time_interleaved: {name} must be >= {minimum}, got {value}")
    return value


def time_interleaved(
    phases: Sequence[Mapping[str, Callable[[], Any]]],
    *,
    repeats: int = 15,
    warmup: int = 1,
    rounds: int = 1,
    pause_s: float = 0.0,
    sync: Callable[[Any], Any] = jax.block_until_ready,
) -> dict[str, list[float]]:
    """Time every case ``repeats`` times, interleaved call by call within a phase; phases take turns in rounds.

    Args:
      phases: one or more mappings ``{name: case}``; names are unique over all phases. A case is called with no
        arguments and its result passed to ``sync`` before the clock stops.
      repeats: timed calls per case in all (>= 1); with several rounds they are spread as evenly as possible,
        the first rounds taking one more when ``rounds`` does not divide ``repeats``.
      warmup: untimed calls of each case of a phase at the start of each of its rounds (>= 0).
      rounds: turns of the phases (1 <= rounds <= repeats): phase 1, phase 2, ..., phase 1, phase 2, ...
      pause_s: seconds of sleep before each phase of each round (>= 0).
      sync: waits for a case's result (default ``jax.block_until_ready``).

    Returns:
      ``{name: [seconds of each timed call, in the order taken]}``, ``repeats`` values per case, in the order of the
      phases and of the cases within each phase.
    """
    if isinstance(phases, Mapping) or not isinstance(phases, Sequence) or not phases:
        raise TypeError(
            f"time_interleaved: phases must be a non-empty sequence of {{name: case}} mappings, got {phases!r}"
        )
    seen: set[str] = set()
    for i, phase in enumerate(phases):
        if not isinstance(phase, Mapping) or not phase:
            raise TypeError(f"time_interleaved: phases[{i}] must be a non-empty {{name: case}} mapping, got {phase!r}")
        for name, case in phase.items():
            if name in seen:
                raise ValueError(f"time_interleaved: case name {name!r} appears twice; names must be unique")
            if not callable(case):
                raise TypeError(f"time_interleaved: case {name!r} must be a zero-argument callable, got {case!r}")
            seen.add(name)
    repeats = _check_count(repeats, "repeats", 1)
    warmup = _check_count(warmup, "warmup", 0)
    rounds = _check_count(rounds, "rounds", 1)
    if rounds > repeats:
        raise ValueError(f"time_interleaved: rounds must be <= repeats = {repeats}, got {rounds}")
    if isinstance(pause_s, bool) or not isinstance(pause_s, (int, float)) or not pause_s >= 0:
        raise ValueError(f"time_interleaved: pause_s must be a number >= 0, got {pause_s!r}")

    times: dict[str, list[float]] = {name: [] for phase in phases for name in phase}
    for r in range(rounds):
        count = repeats // rounds + (r < repeats % rounds)
        for phase in phases:
            if pause_s:
                time.sleep(pause_s)
            for case in phase.values():
                for _ in range(warmup):
                    sync(case())
            for _ in range(count):
                for name, case in phase.items():
                    t0 = time.perf_counter()
                    sync(case())
                    times[name].append(time.perf_counter() - t0)
    return times


def summarize(seconds: Sequence[float]) -> dict[str, float | int]:
    """Minimum, median and maximum of timings in seconds, as milliseconds, and their number.

    Example:
      >>> from dammem._timing import summarize
      >>> summarize([0.003, 0.001, 0.002, 0.010])
      {'min_ms': 1.0, 'median_ms': 2.5, 'max_ms': 10.0, 'repeats': 4}
    """
    values = [float(s) for s in seconds]
    if not values:
        raise ValueError("summarize: seconds must hold at least one timing, got an empty sequence")
    return {
        "min_ms": 1e3 * min(values),
        "median_ms": 1e3 * statistics.median(values),
        "max_ms": 1e3 * max(values),
        "repeats": len(values),
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; else ``platform.processor()`` or the machine type)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``os.getloadavg``), or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def malloc_env() -> dict[str, str]:
    """glibc allocator settings in the environment (``MALLOC_*``), recorded because they move the timings.

    A call that allocates fresh multi-megabyte buffers gives them back to the OS on free with glibc's defaults, so
    the next call page-faults them in again, in JAX and in PyTorch alike. Raising ``MALLOC_TRIM_THRESHOLD_`` and
    ``MALLOC_MMAP_THRESHOLD_`` removes that cost (measured on the separation benchmark: ratios move by up to about
    30%, the ``entmax`` package gaining more than dammem).
    """
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")}


def machine_state() -> dict:
    """CPU model and count, load average and allocator settings: what to record beside any timing."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "malloc_env": malloc_env(),
    }
