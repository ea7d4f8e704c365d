"""Eager (un-jitted) calls of the separations reuse their compiled code: no compilation and no memory growth per call.

Measured in a fresh subprocess so that the allocations of the rest of the test session do not disturb the numbers:
after a warm-up, 200 rounds of eager calls (alpha changing from call to call) must compile nothing and leave the
peak resident set size (``VmHWM`` in ``/proc/self/status``) flat within a few MB. Before the kernels were jitted
once per (kind, axis), every eager call built fresh ``lax.while_loop`` closures, compiled two executables and
grew the process by about 4.7 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS/VmHWM from /proc")

PROBE = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from dammem import separations as S

    compiles = []

    def on_event(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(on_event)

    def status_mb(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0

    z = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    mask = np.ones((8, 64), bool)
    mask[:, ::5] = False
    alphas = [1.2, 1.3, 1.7]
    calls = [
        lambda i: S.sparsemax(z),
        lambda i: S.entmax15(z, where=mask),
        lambda i: S.entmax(z, alphas[i % 3]),
        lambda i: S.conjugate(z, alphas[i % 3]),
        lambda i: S.conjugate(z, 1.0 + (i % 2)),  # the closed-form kernels of alpha = 1 and 2
        lambda i: S.tsallis_separation(z, alphas[i % 3], axis=0),
        lambda i: S.softmax(z),
    ]
    rounds = int(sys.argv[1])
    for i in range(6):  # warm-up: every kernel and every alpha once
        for call in calls:
            jax.block_until_ready(call(i))
    rss0, hwm0, n0 = status_mb("VmRSS"), status_mb("VmHWM"), len(compiles)
    done = 0
    for i in range(rounds):
        for call in calls:
            jax.block_until_ready(call(i))
        done += len(calls)
        if len(compiles) > n0:  # recompiling: stop early, the test fails on the count
            break
    print(json.dumps({
        "calls": done,
        "compiles": len(compiles) - n0,
        "compiled": sorted(set(map(str, compiles[n0:])))[:5],
        "rss_growth_mb": status_mb("VmRSS") - rss0,
        "peak_growth_mb": status_mb("VmHWM") - hwm0,
    }))
    """
)


def run_probe(rounds: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(rounds)], capture_output=True, text=True, env=env, timeout=600, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_eager_calls_compile_once_and_keep_memory_flat():
    result = run_probe(200)
    assert result["compiles"] == 0, f"eager calls compiled again: {result}"
    assert result["calls"] == 1400
    assert result["peak_growth_mb"] < 8.0, f"peak RSS grew over 1400 eager calls: {result}"
    assert result["rss_growth_mb"] < 8.0, result
