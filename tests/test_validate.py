"""The shared argument checks of dammem._validate: what passes, what raises, and the message that names it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dammem import _validate as V


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: V.check_beta(0.0, "f"), ValueError, r"f: beta must be finite and > 0, got \[0.0\]"),
        (lambda: V.check_beta(float("nan"), "f"), ValueError, r"f: beta must be finite and > 0, got \[nan\]"),
        (lambda: V.check_beta(jnp.ones(2), "f"), ValueError, r"f: beta must be a scalar, got an array of shape"),
        (lambda: V.check_beta(True, "f"), TypeError, r"f: beta must be a real number or array, got dtype bool"),
        (lambda: V.check_beta("1", "f"), TypeError, r"f: beta must be a real number or array"),
        (lambda: V.check_beta([1.0, -2.0], "f", heads=2), ValueError, r"> 0, got \[1.0, -2.0\]"),
        (lambda: V.check_beta([1.0, 2.0], "f", heads=3), ValueError, r"per head, shape \(3,\); got shape \(2,\)"),
        (lambda: V.check_alpha(1.0, "f"), ValueError, r"f: alpha must lie in \(1, 2\], got \[1.0\]"),
        (lambda: V.check_alpha(2.5, "f", allow_one=True), ValueError, r"f: alpha must lie in \[1, 2\], got \[2.5\]"),
        (lambda: V.check_alpha(None, "f"), TypeError, r"f: alpha is required"),
        (lambda: V.check_alpha_range(jnp.array([1.5, 0.5]), "f"), ValueError, r"\(1, 2\], got \[0.5\]"),
        (lambda: V.check_fraction(1.5, "p", "f"), ValueError, r"f: p must lie in \[0, 1\], got 1.5"),
        (lambda: V.check_float(0.0, "eps", "f", positive=True), ValueError, r"eps must be a finite float > 0, got 0"),
        (lambda: V.check_float(-1.0, "t", "f", allow_zero=True, optional=True), ValueError, r"None or a finite"),
        (lambda: V.check_float(1.0, "r", "f", allow_zero=True, below=1), ValueError, r"r must be a float in \[0, 1\)"),
        (lambda: V.check_float(True, "x", "f"), ValueError, r"f: x must be a finite float, got True"),
        (lambda: V.check_bool(1, "flag", "f"), TypeError, r"f: flag must be a bool, got 1"),
        (lambda: V.check_int(0, "n", "f", minimum=1), ValueError, r"f: n must be >= 1, got 0"),
        (lambda: V.check_mask(jnp.ones(3), (2, 3), "f"), TypeError, r"f: mask must be a boolean mask \(True = at"),
        (lambda: V.check_mask(jnp.ones((2, 1), bool), (3,), "f"), ValueError, r"mask of shape \(2, 1\) does not"),
        (lambda: V.check_clamp(jnp.ones(4, bool), (2, 3), "f"), ValueError, r"f: clamp of shape \(4,\) does not"),
    ],
)
def test_bad_values_raise_errors_that_name_function_argument_and_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_good_values_pass_and_keep_their_form():
    assert V.check_beta(2, "f") == 2.0 and isinstance(V.check_beta(2, "f"), float)  # weakly typed Python float
    assert V.check_beta(jnp.array(3), "f").dtype == jnp.float32
    assert V.check_beta([1.0, 2.0], "f", heads=2).shape == (2,)
    assert V.check_alpha(1.0, "f", allow_one=True) == 1.0 and V.check_alpha(2.0, "f") == 2.0
    assert V.check_alpha([1.2, 2.0], "f", heads=2).shape == (2,)
    assert V.check_fraction(0.0, "p", "f") == 0.0 and V.check_fraction(1, "p", "f") == 1.0
    assert V.check_float(None, "t", "f", optional=True) is None
    assert V.check_float(np.float32(0.5), "r", "f", allow_zero=True, below=1.0) == 0.5
    assert V.check_mask(None, (2, 3), "f") is None
    assert V.check_mask(jnp.ones((1, 3), bool), (2, 3), "f").shape == (1, 3)  # returned as given, not broadcast
    np.testing.assert_array_equal(V.check_mask(jnp.array([0.0, 2.0]), (2,), "f", nonzero=True), [False, True])
    assert V.check_clamp(jnp.ones(3, bool), (2, 3), "f").shape == (2, 3)


def test_constants_are_checked_inside_a_callers_jit_and_traced_values_pass():
    """A Python constant is concrete inside the caller's jit (checked there); a traced argument is not checkable."""
    with pytest.raises(ValueError, match=r"f: beta must be finite and > 0, got \[-1.0\]"):
        jax.jit(lambda x: x * V.check_beta(-1.0, "f"))(1.0)
    with pytest.raises(ValueError, match=r"f: alpha must lie in \(1, 2\], got \[3.0\]"):
        jax.jit(lambda x: x * V.check_alpha(3.0, "f"))(1.0)
    out = jax.jit(lambda b, a: V.check_beta(b, "f") * V.check_alpha(a, "f"))(-1.0, 3.0)  # traced: no error here
    assert float(out) == -3.0


def test_nan_unless_positive_turns_a_traced_non_positive_beta_into_nan_values_and_gradients():
    value = jnp.array([1.0, -2.0])
    assert V.nan_unless_positive(2.0, value) is value  # concrete: checked at the boundary, passed through
    f = jax.jit(lambda b: V.nan_unless_positive(b, value * b))
    np.testing.assert_array_equal(f(2.0), [2.0, -4.0])
    for beta in (0.0, -1.0):
        assert np.isnan(np.asarray(f(beta))).all()
    grad = jax.grad(lambda b: jnp.sum(V.nan_unless_positive(b, value * b)))
    assert float(grad(1.0)) == -1.0 and np.isnan(float(grad(0.0)))
