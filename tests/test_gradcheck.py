"""``course_lib.gradcheck``: the precision of ``numerical_gradient_array`` (difference first).

An affine function has no truncation error in a central difference, so whatever error the
numerical gradient has is rounding: the measurement isolates the order of operations. Summing
``f(x + h) * dout`` and ``f(x - h) * dout`` before subtracting (the old formula, kept here as
``sum_first``) subtracts two sums of N*D terms and divides their rounding error by 2h; taking
the difference of the two outputs first leaves only the rounding of the entries that changed.
Measured with ``rel_error`` on f(x) = a * x + 1, x (32, 32), five seeds: the difference-first
form gives 1.4e-11 to 2.3e-11, the sum-first one 1.5e-8 to 4.6e-6 (median 2.5e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from course_lib.numpy_impl import layers

BOUND = 1e-10  # what the difference-first form meets on the affine problem, with a 4x margin


def sum_first(f, x, dout, h=1e-5):
    """The old ``numerical_gradient_array``: d sum(f(x) * dout) / dx with the sums taken first."""
    return numerical_gradient(lambda z: np.sum(f(z) * dout), x, h)


def affine_problem(seed: int, shape=(32, 32)):
    rng = np.random.default_rng(seed)
    x, dout = rng.normal(size=shape), rng.normal(size=shape)
    a = rng.uniform(0.5, 2.0, size=shape[1])
    return (lambda z: a * z + 1.0), x, dout, dout * a  # f, x, dout, the exact gradient


@pytest.mark.parametrize("seed", range(5))
def test_difference_first_is_accurate_on_an_affine_function(seed):
    f, x, dout, exact = affine_problem(seed)
    assert rel_error(numerical_gradient_array(f, x, dout), exact) < BOUND


@pytest.mark.parametrize("seed", range(5))
def test_the_sum_first_formula_fails_that_bound(seed):
    """The test above can fail: the old formula's error is over 30 times the bound (150 to 46000 here)."""
    f, x, dout, exact = affine_problem(seed)
    assert rel_error(sum_first(f, x, dout), exact) > 30 * BOUND


def test_dense_backward_checks_tighter_than_before():
    """A dense layer (linear in x): the new form is several times closer to dx = dout W^T (4e-11
    against 3.3e-10 in norm here)."""
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(64, 8)), rng.normal(size=(8, 100)), rng.normal(size=100) + 10.0
    dout = rng.normal(size=(64, 100))
    dx = layers.dense_backward(dout, layers.dense_forward(x, W, b)[1])[0]

    def f(z):
        return layers.dense_forward(z, W, b)[0]

    new, old = numerical_gradient_array(f, x, dout), sum_first(f, x, dout)
    norm_error = [np.linalg.norm(g - dx) / np.linalg.norm(dx) for g in (new, old)]
    assert norm_error[0] < 1e-10
    assert norm_error[1] > 3 * norm_error[0], norm_error


def test_x_is_restored_and_a_reused_output_buffer_is_safe():
    """x is perturbed in place and put back; f may return the same array every call."""
    rng = np.random.default_rng(1)
    x, dout = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    before = x.copy()
    buffer = np.empty_like(x)

    def f(z):
        np.multiply(z, 3.0, out=buffer)  # the same array, overwritten by the next call
        return buffer

    grad = numerical_gradient_array(f, x, dout)
    assert_array_equal(x, before)
    assert_allclose(grad, 3.0 * dout, rtol=1e-9)


def test_integer_x_is_refused():
    with pytest.raises(TypeError, match="float"):
        numerical_gradient_array(lambda z: z, np.arange(3), np.ones(3))
