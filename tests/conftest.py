"""Shared fixtures: float64 mode for reference and gradient checks."""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled (for float64 references and finite differences)."""
    with jax.enable_x64(True):
        yield
