"""Activation functions and their derivatives, in NumPy.

Every ``f`` has ``f_grad(x)`` = f'(x) elementwise (the local derivative, *not* multiplied by an
upstream gradient; layers do that). Checked against ``torch.autograd`` in
``tests/test_activations.py``. Derivations: book chapter 1, "Derivatives, step by step".

GELU (exact, erf form) and SiLU are the smooth activations of today's transformers and CNNs;
NumPy has no erf, so ``gelu`` uses a vectorised rational approximation (Cody's, accurate to a few
ulps, checked against ``math.erfc`` and mpmath in the tests).

At the kinks the derivative follows PyTorch's autograd: ``relu_grad(0) = 0``,
``leaky_relu_grad(0) = alpha``, ``prelu_grad(0) = alpha``, ``elu_grad(0) = alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence

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


# Cody's rational Chebyshev approximations of erf and erfc (Math. Comp. 23, 1969; SPECFUN's
# CALERF), coefficients from the highest power down: a few ulps in double precision (tested against
# math.erfc and mpmath), and vectorised, unlike ``math.erf``.
_ERF_A = (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
          3.77485237685302021e02, 3.20937758913846947e03)  # fmt: skip
_ERF_B = (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)  # fmt: skip
_ERFC_C = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
           6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
           1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03)  # fmt: skip
_ERFC_D = (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_ERFC_P = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
           1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)  # fmt: skip
_ERFC_Q = (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_INV_SQRT_PI = 0.5641895835477562869480794515607725858440
_SQRT1_2 = 0.7071067811865475244008443621048490392848
_INV_SQRT_2PI = 0.3989422804014326779399460599343818684759


def _ratio(z: Array, num_coefs: Sequence[float], den_coefs: Sequence[float]) -> Array:
    """(sum_k num_k z^k) / (sum_k den_k z^k) by Horner's rule, coefficients from the highest power."""
    num = np.full_like(z, num_coefs[0])
    den = np.full_like(z, den_coefs[0])
    for a in num_coefs[1:]:
        num *= z
        num += a
    for b in den_coefs[1:]:
        den *= z
        den += b
    num /= den
    return num


def _erfc(x: Array) -> Array:
    """erfc(x) = 1 - erf(x) = (2 / sqrt(pi)) int_x^inf e^(-t^2) dt, float64, elementwise.

    Three intervals of |x| (Cody 1969): |x| <= 0.46875, erfc = 1 - x R1(x^2); 0.46875 < |x| <= 4,
    erfc = e^(-x^2) R2(|x|); |x| > 4, erfc = e^(-x^2) (1/sqrt(pi) - R3(1/x^2) / x^2) / |x|, each R a
    ratio of polynomials; erfc(-x) = 2 - erfc(x). e^(-x^2) is split as e^(-s^2) e^(-(x - s)(x + s))
    with s = |x| rounded down to 1/16, so that x^2 is not rounded first. Agrees with ``math.erfc``
    to a few ulps (tested); 0 beyond x = 26.6, where erfc underflows.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.minimum(np.abs(x), 27.0)  # erfc(27) < 1e-318; NaN stays NaN
    # Every interval's formula on every element, then a choice: cheaper than boolean indexing.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        erf_small = x * _ratio(x * x, _ERF_A, _ERF_B)  # |x| <= 0.46875
        z = 1.0 / (y * y)
        tail = (_INV_SQRT_PI - z * _ratio(z, _ERFC_P, _ERFC_Q)) / y  # |x| > 4
    r = np.where(y > 4.0, tail, _ratio(y, _ERFC_C, _ERFC_D))
    s = np.floor(y * 16.0) / 16.0
    r *= np.exp(-s * s) * np.exp(-(y - s) * (y + s))  # erfc(|x|) for |x| > 0.46875
    r[y >= 27.0] = 0.0
    return np.where(y <= 0.46875, 1.0 - erf_small, np.where(x < 0, 2.0 - r, r))


def gelu(x: ArrayLike) -> Array:
    """gelu(x) = x Phi(x) = (x / 2) (1 + erf(x / sqrt 2)), Phi the standard normal CDF (Hendrycks
    and Gimpel 2016): the exact form, ``torch.nn.GELU(approximate="none")``.

    Phi(x) is computed as erfc(-x / sqrt 2) / 2, which keeps its relative precision for x << 0
    (1 + erf cancels there). Shape: same as ``x``; float32 stays float32 (computed in float64).
    """
    x = _float(x)
    x64 = x.astype(np.float64, copy=False)
    return (x64 * (0.5 * _erfc(-_SQRT1_2 * x64))).astype(x.dtype, copy=False)


def gelu_grad(x: ArrayLike) -> Array:
    """gelu'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2 / 2) / sqrt(2 pi) the normal density.

    It lies in [-0.129, 1.129] (extremes at x = -+sqrt 2, where gelu'' = phi(x) (2 - x^2) vanishes)
    and tends to 1 as x -> inf, to 0 as x -> -inf; gelu itself has its minimum, -0.170, at -0.752.
    """
    x = _float(x)
    x64 = x.astype(np.float64, copy=False)
    c = np.clip(x64, -40.0, 40.0)  # phi(40) underflows to 0; this keeps c * c finite for any x
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * c * c)
    return (0.5 * _erfc(-_SQRT1_2 * x64) + x64 * pdf).astype(x.dtype, copy=False)


def silu(x: ArrayLike) -> Array:
    """silu(x) = x sigma(x) (Elfwing et al. 2018; "swish" with beta = 1, Ramachandran et al. 2017).

    Uses the overflow-free ``sigmoid``. Shape: same as ``x``.
    """
    x = _float(x)
    return x * sigmoid(x)


def silu_grad(x: ArrayLike) -> Array:
    """silu'(x) = sigma(x) (1 + x (1 - sigma(x))), in [-0.0998, 1.0998] (at x = -+2.399); 1/2 at 0.

    silu itself has its minimum, -0.278, at x = -1.278.
    """
    x = _float(x)
    s = sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


#: name -> (f, f_grad), for the MLP and the book's plots. PReLU is separate: its alpha is learned.
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "prelu": (prelu, prelu_grad),
    "gelu": (gelu, gelu_grad),
    "silu": (silu, silu_grad),
}
