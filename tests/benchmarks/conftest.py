"""The benchmark scripts live in the repository's top-level ``benchmarks/`` directory (not in the package) and
import their harness as ``_harness``, as they do when run as ``python benchmarks/NAME.py``; put that directory on
the path, and let ``DAMMEM_REQUIRE_PEERS=1`` (set in CI after installing the ``bench`` extra) turn a missing peer
library into a failure instead of a skip."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def _require(*modules: str) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            reason = f"peer library {name!r} not installed (pip install -e '.[bench]'): {err}"
            if os.environ.get("DAMMEM_REQUIRE_PEERS") == "1":
                pytest.fail(f"DAMMEM_REQUIRE_PEERS=1 but {reason}")
            pytest.skip(reason)


@pytest.fixture
def require_peers():
    """``require_peers("torch", "entmax")`` imports the peer libraries; when one is missing the test is skipped
    with the reason, or fails when the environment variable ``DAMMEM_REQUIRE_PEERS`` is ``1``."""
    return _require
