"""Shared fixtures: float64 mode for reference and gradient checks; compiled code freed after each test module."""

import gc

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled (for float64 references and finite differences)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_code():
    """Drop JAX's compilation caches after each test module. A whole-suite run compiles thousands of programs;
    kept alive, their code mappings approach the kernel's per-process map limit (vm.max_map_count) and XLA's
    compiler aborts the process."""
    yield
    jax.clear_caches()
    gc.collect()
