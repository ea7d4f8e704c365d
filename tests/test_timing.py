"""The shared timing loop and machine facts (dammem._timing), checked by value with a fake clock."""

from __future__ import annotations

import os
import re
import statistics

import pytest

from dammem import _timing


class FakeClock:
    """``time.perf_counter`` stand-in: each case advances it by its own fixed duration, and logs its call."""

    def __init__(self):
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def case(self, name: str, seconds: float):
        def call():
            self.calls.append(name)
            self.now += seconds
            return name

        return call


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(_timing.time, "perf_counter", fake)
    return fake


def test_one_phase_interleaves_call_by_call_and_times_each_call(clock):
    phase = {"a": clock.case("a", 1.0), "b": clock.case("b", 0.25)}
    synced = []
    times = _timing.time_interleaved([phase], repeats=3, warmup=1, sync=synced.append)
    assert clock.calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up call each, then a, b, a, b, ...
    assert times == {"a": [1.0, 1.0, 1.0], "b": [0.25, 0.25, 0.25]}
    assert synced == clock.calls  # every result, warm-up included, goes through sync


def test_phases_take_turns_in_rounds_and_never_interleave(clock, monkeypatch):
    pauses = []
    monkeypatch.setattr(_timing.time, "sleep", pauses.append)
    jax_like = {"a": clock.case("a", 1.0), "b": clock.case("b", 2.0)}
    torch_like = {"c": clock.case("c", 3.0)}
    times = _timing.time_interleaved([jax_like, torch_like], repeats=5, warmup=1, rounds=2, pause_s=0.5)
    # 5 = 3 + 2: the first round takes the extra call
    expected = ["a", "b"] + ["a", "b"] * 3 + ["c"] + ["c"] * 3
    expected += ["a", "b"] + ["a", "b"] * 2 + ["c"] + ["c"] * 2
    assert clock.calls == expected
    assert pauses == [0.5] * 4  # before each phase of each round
    assert times == {"a": [1.0] * 5, "b": [2.0] * 5, "c": [3.0] * 5}
    assert list(times) == ["a", "b", "c"]


def test_no_pause_and_no_warmup(clock, monkeypatch):
    monkeypatch.setattr(_timing.time, "sleep", lambda s: pytest.fail("slept without pause_s"))
    times = _timing.time_interleaved([{"a": clock.case("a", 0.5)}], repeats=2, warmup=0, rounds=2)
    assert clock.calls == ["a", "a"] and times == {"a": [0.5, 0.5]}


def test_real_clock_times_are_positive():
    times = _timing.time_interleaved([{"sum": lambda: sum(range(1000))}], repeats=15)
    assert len(times["sum"]) == 15 and all(t > 0 for t in times["sum"])


@pytest.mark.parametrize(
    "phases, kwargs, error, match",
    [
        ({"a": lambda: 0}, {}, TypeError, "phases must be a non-empty sequence"),
        ([], {}, TypeError, "phases must be a non-empty sequence"),
        ([{}], {}, TypeError, r"phases\[0\] must be a non-empty"),
        ([{"a": lambda: 0}, {"a": lambda: 1}], {}, ValueError, "case name 'a' appears twice"),
        ([{"a": 3}], {}, TypeError, "case 'a' must be a zero-argument callable"),
        ([{"a": lambda: 0}], {"repeats": 0}, ValueError, "repeats must be >= 1, got 0"),
        ([{"a": lambda: 0}], {"repeats": 2.0}, TypeError, "repeats must be an int"),
        ([{"a": lambda: 0}], {"warmup": -1}, ValueError, "warmup must be >= 0"),
        ([{"a": lambda: 0}], {"repeats": 2, "rounds": 3}, ValueError, "rounds must be <= repeats = 2, got 3"),
        ([{"a": lambda: 0}], {"pause_s": -1.0}, ValueError, "pause_s must be a number >= 0"),
    ],
)
def test_bad_arguments_are_refused(phases, kwargs, error, match):
    with pytest.raises(error, match=f"time_interleaved: {match}"):
        _timing.time_interleaved(phases, **kwargs)


def test_summarize_by_value():
    assert _timing.summarize([0.003, 0.001, 0.002, 0.010]) == pytest.approx(
        {"min_ms": 1.0, "median_ms": 2.5, "max_ms": 10.0, "repeats": 4}
    )
    seconds = [0.007, 0.002, 0.011, 0.005, 0.003]
    summary = _timing.summarize(seconds)
    assert summary["median_ms"] == pytest.approx(5.0) and summary["min_ms"] == pytest.approx(2.0)
    assert summary["median_ms"] != pytest.approx(1e3 * statistics.mean(seconds))
    assert summary["repeats"] == 5
    with pytest.raises(ValueError, match="summarize: seconds must hold at least one timing"):
        _timing.summarize([])


def test_malloc_env_records_only_the_allocator_variables(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4000000000")
    monkeypatch.setenv("NOT_MALLOC_SETTING", "1")
    env = _timing.malloc_env()
    assert env["MALLOC_TRIM_THRESHOLD_"] == "4000000000"
    assert "NOT_MALLOC_SETTING" not in env and all(k.startswith("MALLOC_") for k in env)


def test_machine_state():
    state = _timing.machine_state()
    assert state["cpu_count"] == os.cpu_count()
    assert state["malloc_env"] == _timing.malloc_env()
    load = state["load_average"]
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            names = re.findall(r"^model name\s*:\s*(.+)$", fh.read(), flags=re.M)
        if names:
            assert state["cpu_model"] == names[0].strip()
    assert state["cpu_model"]
