"""Activation functions and their derivatives, in NumPy.

Every ``f`` has ``f_grad(x)`` = f'(x) elementwise (the local derivative, *not* multiplied by an
upstream gradient; layers do that). Checked against ``torch.autograd`` in
``tests/test_activations.py``. Derivations: book chapter 1, "Derivatives, step by step".

At the kinks the derivative follows PyTorch's autograd: ``relu_grad(0) = 0``,
``leaky_relu_grad(0) = alpha``, ``prelu_grad(0) = alpha``, ``elu_grad(0) = alpha``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.floating]


def _float(x: ArrayLike) -> Array:
    """Return ``x`` as a floating array (integers become float64; float32 stays float32)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def sigmoid(x: ArrayLike) -> Array:
    """sigma(x) = 1 / (1 + exp(-x)), computed without overflow for any |x|.

    Uses exp(-|x|) <= 1 only: for x >= 0, 1 / (1 + e^-x); for x < 0, e^x / (1 + e^x).
    Shape: same as ``x``.
    """
    x = _float(x)
    z = np.exp(-np.abs(x))  # in (0, 1], never overflows
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def sigmoid_grad(x: ArrayLike) -> Array:
    """sigma'(x) = sigma(x) (1 - sigma(x)), at most 1/4 (at x = 0)."""
    s = sigmoid(x)
    return s * (1.0 - s)


def tanh(x: ArrayLike) -> Array:
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigma(2x) - 1, in (-1, 1)."""
    return np.tanh(_float(x))


def tanh_grad(x: ArrayLike) -> Array:
    """tanh'(x) = 1 - tanh(x)^2, at most 1 (at x = 0)."""
    t = np.tanh(_float(x))
    return 1.0 - t * t


def relu(x: ArrayLike) -> Array:
    """relu(x) = max(0, x)."""
    x = _float(x)
    return np.maximum(x, 0.0).astype(x.dtype, copy=False)


def relu_grad(x: ArrayLike) -> Array:
    """relu'(x) = 1 if x > 0 else 0 (the step function; 0 at x = 0, as autograd)."""
    x = _float(x)
    return (x > 0).astype(x.dtype)


def leaky_relu(x: ArrayLike, alpha: float = 0.01) -> Array:
    """leaky_relu(x) = x if x > 0 else alpha * x (Maas et al. 2013; alpha = 0.01 by default)."""
    x = _float(x)
    return np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)


def leaky_relu_grad(x: ArrayLike, alpha: float = 0.01) -> Array:
    """leaky_relu'(x) = 1 if x > 0 else alpha."""
    x = _float(x)
    return np.where(x > 0, 1.0, alpha).astype(x.dtype)


def prelu(x: ArrayLike, alpha: ArrayLike) -> Array:
    """prelu(x) = x if x > 0 else alpha * x, with a *learned* alpha (He et al. 2015).

    ``alpha`` is a scalar (one slope for the layer, like ``torch.nn.PReLU()``) or an array
    that broadcasts against ``x``, e.g. shape (D,) for one slope per unit of an (N, D) input.
    """
    x = _float(x)
    return np.where(x > 0, x, np.asarray(alpha, dtype=x.dtype) * x).astype(x.dtype, copy=False)


def prelu_grad(x: ArrayLike, alpha: ArrayLike) -> Array:
    """d prelu / d x = 1 if x > 0 else alpha (elementwise, shape of ``x``)."""
    x = _float(x)
    return np.where(x > 0, 1.0, np.asarray(alpha, dtype=x.dtype)).astype(x.dtype)


def prelu_grad_alpha(x: ArrayLike, alpha: ArrayLike, dout: ArrayLike | None = None) -> Array:
    """dL/d alpha = sum over every position that shares alpha of dout * min(x, 0).

    Elementwise, d prelu / d alpha = x where x <= 0 and 0 elsewhere. Because one alpha is
    used at many positions, its gradient is the *sum* of those contributions. ``dout`` is the
    upstream gradient dL/d prelu(x) (ones when omitted). Returns an array of alpha's shape.
    """
    x = _float(x)
    alpha = np.asarray(alpha, dtype=x.dtype)
    dout = np.ones_like(x) if dout is None else np.asarray(dout, dtype=x.dtype)
    g = np.where(x > 0, 0.0, x) * dout  # (same shape as x)
    return sum_to_shape(g, alpha.shape)


def sum_to_shape(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to g.shape."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def elu(x: ArrayLike, alpha: float = 1.0) -> Array:
    """elu(x) = x if x > 0 else alpha (e^x - 1) (Clevert et al. 2016).

    ``expm1`` of min(x, 0) keeps it accurate near 0 and free of overflow for large x.
    """
    x = _float(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))).astype(x.dtype, copy=False)


def elu_grad(x: ArrayLike, alpha: float = 1.0) -> Array:
    """elu'(x) = 1 if x > 0 else alpha e^x (= elu(x) + alpha for x <= 0)."""
    x = _float(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0))).astype(x.dtype)


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis``.

    Subtracting the max changes nothing mathematically and keeps every exponent <= 0.
    Shape: same as ``x``; each slice along ``axis`` sums to 1.
    """
    x = _float(x)
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def softmax_grad(x: ArrayLike) -> Array:
    """The Jacobian d softmax(x)_i / d x_j = s_i (delta_ij - s_j) over the last axis.

    Softmax mixes its inputs, so its derivative is a matrix, not an elementwise function.
    Shape: (..., C) -> (..., C, C).
    """
    s = softmax(x, axis=-1)
    return s[..., :, None] * (np.eye(s.shape[-1], dtype=s.dtype) - s[..., None, :])


#: name -> (f, f_grad), for the MLP and the book's plots. PReLU is separate: its alpha is learned.
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "prelu": (prelu, prelu_grad),
}
