"""Clean-up time vs codebook size N: KROP butterfly vs dense codebooks (Liu et al. 2025, "Comparing clean-up runtime").

For each ``N = 2^K`` and batch size, the clean-up ``argmax_j <C_j, v>`` of a batch of random Gaussian vectors is
timed for

* ``krop``: the O(N log N) butterfly (:func:`dammem.vsa.krop_cleanup`), ``log2 N`` stored angles;
* ``krop_signed``: the same with the +-1 column signs (``log2 N + N`` stored numbers);
* ``unitary_shift``: rows are cyclic shifts of one vector, clean-up by one FFT correlation (O(N log N), N stored);
* ``dense``: ``argmax C v`` with a precomputed dense Gaussian ``(N, N)`` codebook (O(N^2) time and storage);
  only up to ``dense_max_size`` (the matrix has N^2 entries).

Each clean-up is jitted; after ``warmup`` untimed calls the methods are timed ``repeats`` times each, interleaved
call by call (:func:`dammem._timing.time_interleaved`), and the minimum, median and maximum are reported. The time
to build the dense codebook (drawing its N^2 entries, compilation excluded) is reported apart from its clean-up
time. Up to ``N = 4096`` every fast clean-up is checked against the argmax over its own dense matrix, computed in
float64 NumPy. Times are wall-clock on the machine that runs the experiment (its CPU model, load and allocator
settings are recorded); timings are not trials, so nothing is vectorised over keys.

The same codebooks and clean-up calls (:func:`build_codebooks`, :func:`cleanup_calls`, :func:`matches_dense_argmax`)
serve the repository's KROP benchmark, which adds the peer library.

References:
  R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
  Kronecker Rotation Products. NeSy 2025. Experiment "Comparing clean-up runtime" (clean-up time vs N = 2^4 .. 2^15).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dammem._timing import load_average, machine_state, summarize, time_interleaved
from dammem.experiments._base import Progress
from dammem.vsa import Codebook, make_codebook

__all__ = ["Config", "run", "METHODS", "build_codebooks", "cleanup_calls", "matches_dense_argmax"]

METHODS = ("krop", "krop_signed", "unitary_shift", "dense")
CHECK_MAX_SIZE = 4096
"""Largest N at which the fast clean-ups are checked against the argmax over their dense matrix."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Timing sweep.

    Attributes:
      sizes: codebook sizes N (powers of two; Liu et al. 2025 use 2^4 .. 2^15).
      batches: numbers of vectors cleaned up per call.
      methods: subset of ``METHODS``.
      dense_max_size: largest N with a dense codebook (it stores N^2 float32 numbers).
      repeats: timed calls per method and point (minimum and median reported).
      warmup: untimed calls before timing (the first one compiles).
    """

    sizes: tuple[int, ...] = tuple(2**k for k in range(4, 16))
    batches: tuple[int, ...] = (1, 256)
    methods: tuple[str, ...] = METHODS
    dense_max_size: int = 16384
    repeats: int = 15
    warmup: int = 2

    def __post_init__(self):
        sizes = list(self.sizes)
        if not sizes or any(n < 2 or n & (n - 1) for n in sizes) or sizes != sorted(set(sizes)):
            raise ValueError(f"sizes must be increasing powers of two >= 2, got {list(self.sizes)}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError(f"batches must be positive integers, got {list(self.batches)}")
        if (
            not self.methods
            or any(m not in METHODS for m in self.methods)
            or len(set(self.methods)) < len(self.methods)
        ):
            raise ValueError(f"methods must be distinct names from {METHODS}, got {list(self.methods)}")
        if self.dense_max_size < 2:
            raise ValueError(f"dense_max_size must be >= 2, got {self.dense_max_size}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be >= 1 (the first call compiles), got {self.warmup}")


_CLEANUP = jax.jit(lambda cb, v: cb.cleanup(v))


def build_codebooks(
    n: int, methods: Sequence[str], key: jax.Array, *, dense_max_size: int
) -> tuple[dict[str, Codebook], float | None]:
    """The codebooks of size ``n`` for ``methods`` (names from :data:`METHODS`), all from one key.

    Returns:
      ``({method: codebook}, dense build ms)``; ``dense`` is left out when ``n > dense_max_size``, and the build
      time (drawing the N^2 entries, compilation excluded) is None when there is no dense codebook.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"build_codebooks: methods must be names from {METHODS}, got {list(methods)}")
    codebooks, build_ms = {}, None
    for method in methods:
        if method == "dense":
            if n > dense_max_size:
                continue
            sampler = jax.jit(lambda kk: make_codebook("gaussian", n, key=kk)).lower(key).compile()
            t0 = time.perf_counter()
            codebooks[method] = jax.block_until_ready(sampler(key))
            build_ms = 1e3 * (time.perf_counter() - t0)
        else:
            codebooks[method] = make_codebook(method, n, key=key)
    return codebooks, build_ms


def cleanup_calls(codebooks: dict[str, Codebook], x: jax.Array) -> dict[str, Callable[[], jax.Array]]:
    """``{method: call}``: each call is the jitted hard clean-up of the batch ``x`` with that codebook."""
    return {method: partial(_CLEANUP, cb, x) for method, cb in codebooks.items()}


def matches_dense_argmax(codebook: Codebook, x: jax.Array) -> bool:
    """Whether ``codebook.cleanup(x)`` equals the argmax over the codebook's dense matrix, computed in float64 NumPy."""
    matrix = np.asarray(codebook.matrix(), dtype=np.float64)
    brute = np.argmax(np.asarray(x, dtype=np.float64) @ matrix.T, axis=-1)
    return bool(np.array_equal(np.asarray(_CLEANUP(codebook, x)), brute))


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.sizes))
    machine = machine_state()
    stats = ("median_ms", "min_ms", "max_ms")
    times = {s: {m: {str(b): [] for b in config.batches} for m in config.methods} for s in stats}
    storage: dict[str, list[int | None]] = {m: [] for m in config.methods}
    build_ms: list[float | None] = []
    checked: dict[str, list[bool | None]] = {m: [] for m in config.methods if m != "dense"}
    for i, n in enumerate(config.sizes):
        progress.point(f"N={n}, batches {list(config.batches)}")
        k_cb, k_x = jax.random.split(jax.random.fold_in(key, i))
        codebooks, build = build_codebooks(n, config.methods, k_cb, dense_max_size=config.dense_max_size)
        build_ms.append(build)
        for method in config.methods:
            storage[method].append(codebooks[method].storage_size if method in codebooks else None)
        agree = {m: True for m in checked}
        for b in config.batches:
            x = jax.random.normal(jax.random.fold_in(k_x, b), (b, n), dtype=jnp.float32)
            seconds = time_interleaved([cleanup_calls(codebooks, x)], repeats=config.repeats, warmup=config.warmup)
            for method in config.methods:
                summary = summarize(seconds[method]) if method in seconds else dict.fromkeys(stats)
                for s in stats:
                    times[s][method][str(b)].append(summary[s])
            if n <= CHECK_MAX_SIZE:
                for method in checked:
                    agree[method] &= matches_dense_argmax(codebooks[method], x)
        for method in checked:
            checked[method].append(agree[method] if n <= CHECK_MAX_SIZE else None)
        progress.update(1)
    speedup = {}
    if "dense" in config.methods:
        for m in config.methods:
            if m == "dense":
                continue
            speedup[m] = {}
            for b in config.batches:
                pairs = zip(times["median_ms"]["dense"][str(b)], times["median_ms"][m][str(b)])
                speedup[m][str(b)] = [d / t if d is not None and t else None for d, t in pairs]
    return {
        "sizes": list(config.sizes),
        "batches": list(config.batches),
        "time_ms": times["median_ms"],
        "min_time_ms": times["min_ms"],
        "max_time_ms": times["max_ms"],
        "dense_build_ms": build_ms,
        "storage": storage,
        "speedup_over_dense": speedup,
        "matches_dense_argmax": checked,
        "backend": jax.default_backend(),
        "machine": dict(machine, load_average_after=load_average()),
    }
