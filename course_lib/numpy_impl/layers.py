"""Layers as pure forward/backward pairs, in NumPy (the CS231n style).

``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache) -> gradients``. A backward
multiplies the upstream gradient ``dout`` by the local derivative; activations'
``f_grad`` give that derivative alone. Checked by central differences in
``tests/test_mlp.py``; derived in book chapter 1 (backpropagation through a dense layer).
Inverted dropout (``dropout_forward``/``dropout_backward``) is derived in book chapter 4 and
tested in ``tests/test_dropout.py``, against the statistics of ``torch.nn.Dropout`` too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl import activations as A

Array = NDArray[np.floating]


def dense_forward(x: Array, W: Array, b: Array) -> tuple[Array, tuple[Array, Array]]:
    """out = x @ W + b. x (N, D), W (D, H), b (H,) -> out (N, H)."""
    if x.ndim != 2 or W.ndim != 2 or x.shape[1] != W.shape[0]:
        raise ValueError(f"dense_forward: x {x.shape} @ W {W.shape} needs x (N, D) and W (D, H)")
    return x @ W + b, (x, W)


def dense_backward(dout: Array, cache: tuple[Array, Array]) -> tuple[Array, Array, Array]:
    """dx = dout @ W^T (N, D), dW = x^T @ dout (D, H), db = sum_n dout (H,)."""
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def activation_forward(x: Array, name: str, alpha: Any = None) -> tuple[Array, tuple]:
    """out = f(x) for the activation called ``name`` (see ``activations.ACTIVATIONS``).

    ``alpha`` is PReLU's learned slope; other activations use their defaults.
    """
    if name not in A.ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(A.ACTIVATIONS)}")
    f, _ = A.ACTIVATIONS[name]
    out = f(x, alpha) if name == "prelu" else f(x)
    return out, (x, name, alpha, out)


def activation_backward(dout: Array, cache: tuple) -> tuple[Array, Array | None]:
    """dx = dout * f'(x); also d alpha for PReLU (None otherwise)."""
    x, name, alpha, out = cache
    if name == "sigmoid":  # reuse the forward output: sigma' = sigma (1 - sigma)
        return dout * out * (1.0 - out), None
    if name == "tanh":
        return dout * (1.0 - out * out), None
    if name == "relu":
        return dout * (x > 0), None
    if name == "prelu":
        return dout * A.prelu_grad(x, alpha), A.prelu_grad_alpha(x, alpha, dout)
    return dout * A.ACTIVATIONS[name][1](x), None


def dropout_forward(
    x: Array, p: float, rng: np.random.Generator | None, train: bool = True
) -> tuple[Array, Array | None]:
    """Inverted dropout: out = x * m with m = keep / (1 - p), keep ~ Bernoulli(1 - p), shape of x.

    ``p`` is the probability of *dropping* a unit (PyTorch's ``p``, Keras's ``rate``; TF1's
    ``keep_prob`` is 1 - p). Kept units are scaled by 1/(1 - p) so that E[out] = x, and
    evaluation (``train=False``) is the identity, with no scaling and no random numbers drawn.
    The cache is the multiplier m (None in evaluation); ``dropout_backward`` reuses it.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout p is the probability of dropping a unit, in [0, 1]; got {p}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not train or p == 0.0:
        return x, None
    if rng is None:
        raise ValueError("dropout in training needs rng, a np.random.Generator that draws the mask")
    if p == 1.0:  # everything dropped; 1/(1 - p) would be inf
        m = np.zeros_like(x)
    else:
        u = rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        m = (u >= p).astype(x.dtype) / x.dtype.type(1.0 - p)  # (N, H): 0 or 1/(1 - p)
    return x * m, m


def dropout_backward(dout: Array, cache: Array | None) -> Array:
    """dx = dout * m with the forward pass's multiplier m (identity when there was none)."""
    return dout if cache is None else dout * cache
