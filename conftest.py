"""Settings for the whole test session that must be in place before JAX starts its backend.

The suite compiles thousands of small XLA programs and spends most of its time compiling them. LLVM's optimisation
level 0 for XLA's CPU code cuts the suite's CPU time by about a quarter (measured: tests/test_dynamics.py and
tests/energies, 136-141 s of CPU at XLA's default level 3 against 101 s at level 0, on 2 cores). The programs stay
correct; their float32 results differ from level 3 in the last bits, as they do between CPUs, which the tests
tolerate by design (CONTRIBUTING.md). A level already named in ``XLA_FLAGS`` is kept: CI's second pass runs the
numerics-sensitive tests at the default level 3 with another instruction set.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "--xla_backend_optimization_level" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()
