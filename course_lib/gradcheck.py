"""Numerical gradients by central differences, and the relative error used to compare them.

df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h), error O(h^2). Use float64: in float32 the
rounding error of f swamps the difference for any useful h. Book chapter 1, "Checking a
backward pass".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """max_i |a_i - b_i| / max(|a_i| + |b_i|, eps): about 1e-7 or less means they agree."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), eps), initial=0.0))


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d f(x) / d x for a scalar ``f``, perturbing ``x`` in place (and restoring it)."""
    return _central_differences(lambda z: float(f(z)), x, h, lambda fp, fm: fp - fm)


def _central_differences(f, x: np.ndarray, h: float, difference) -> np.ndarray:
    """grad[i] = difference(f(x + h e_i), f(x - h e_i)) / (2h) for every index i of x, perturbing x
    in place and restoring it; ``f`` returns a value the next call cannot change (a float, a copy)."""
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError("x must be a float array (use float64)")
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = difference(fp, fm) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """d sum(f(x) * dout) / d x_i ~ sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2h), for an
    array-valued ``f``: checks a ``*_backward(dout, cache)``. x is perturbed in place and restored.

    Difference first, then the weighted sum: each entry of f(x + h e_i) - f(x - h e_i) is computed
    from two nearby numbers, so its rounding error is that of f's entry, ~eps |f_j|. Summing first,
    sum(f(x + h e_i) dout) - sum(f(x - h e_i) dout), subtracts two large sums that each carry a
    rounding error ~eps sum_j |f_j dout_j|, and dividing by 2h magnifies it: about 1e-7 relative
    error on a linear f where this form gives about 5e-11 (``tests/test_gradcheck.py``).
    """
    dout = np.asarray(dout)
    # np.array copies: f may return a view of a buffer it reuses
    return _central_differences(lambda z: np.array(f(z), dtype=np.float64), x, h,
                                lambda fp, fm: np.sum((fp - fm) * dout))  # fmt: skip


def check_model_gradients(model, x: np.ndarray, y: np.ndarray, h: float = 1e-6) -> dict[str, float]:
    """rel_error between ``model.loss_and_grads`` and central differences, per parameter.

    ``model`` is a ``numpy_impl.mlp.MLP`` (anything with ``params``, ``loss`` and
    ``loss_and_grads``) in float64.
    """
    _, grads = model.loss_and_grads(x, y)
    return {
        name: rel_error(grads[name], numerical_gradient(lambda _: model.loss(x, y), p, h))
        for name, p in model.params.items()
    }
