"""Layers as pure forward/backward pairs, in NumPy (the CS231n style).

``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache) -> gradients``. A backward
multiplies the upstream gradient ``dout`` by the local derivative; activations'
``f_grad`` give that derivative alone. Checked by central differences in
``tests/test_mlp.py``; derived in book chapter 1 (backpropagation through a dense layer).
Inverted dropout (``dropout_forward``/``dropout_backward``) is derived in book chapter 4 and
tested in ``tests/test_dropout.py``, against the statistics of ``torch.nn.Dropout`` too.
Batch normalization (``batchnorm_forward``/``batchnorm_backward``, running averages, training
and evaluation modes) is derived in book chapter 5 and checked against
``torch.nn.functional.batch_norm`` and by central differences in ``tests/test_batchnorm.py``.
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


def batchnorm_running(D: int, dtype: type = np.float64) -> dict[str, Array]:
    """Fresh running statistics for ``batchnorm_forward``: mean 0 and variance 1, shape (D,) each.

    The same start as ``torch.nn.BatchNorm1d``'s ``running_mean`` and ``running_var``.
    """
    return {"mean": np.zeros(D, dtype=dtype), "var": np.ones(D, dtype=dtype)}


def batchnorm_forward(
    x: Array,
    gamma: Array,
    beta: Array,
    running: dict[str, Array] | None,
    train: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, tuple]:
    """out = gamma * (x - mu) / sqrt(var + eps) + beta, per feature. x (N, D), gamma and beta (D,).

    Training (``train=True``): mu and var are the batch's mean and (biased) variance over the N
    rows, and ``running`` (a dict of (D,) arrays ``"mean"`` and ``"var"``, see
    ``batchnorm_running``), when given, is updated in place as PyTorch does:
    ``running = (1 - momentum) * running + momentum * batch``, with the *unbiased* batch variance
    var * N / (N - 1) for ``running["var"]``. Keras's ``momentum=0.99`` is ``1 - momentum`` here.
    Evaluation (``train=False``): mu and var are ``running``'s, nothing is updated, and the layer
    is a fixed affine map of each row.

    The cache holds x_hat = (x - mu) / sqrt(var + eps) (N, D), gamma, 1 / sqrt(var + eps) (D,)
    and the mode, for ``batchnorm_backward``.
    """
    x = np.asarray(x)
    if x.ndim != 2 or np.shape(gamma) != (x.shape[1],) or np.shape(beta) != (x.shape[1],):
        raise ValueError(
            f"batchnorm_forward: x {x.shape}, gamma {np.shape(gamma)}, beta {np.shape(beta)}; "
            "needs x (N, D) and gamma, beta (D,)"
        )
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum weighs the new batch in the running averages, in [0, 1]; got {momentum}")
    if train:
        n = x.shape[0]
        if n < 2:
            raise ValueError("batch normalization in training needs at least 2 rows per batch")
        mu = x.mean(axis=0)  # (D,)
        centred = x - mu  # (N, D)
        var = (centred * centred).mean(axis=0)  # (D,), biased: divides by N
        if running is not None:
            running["mean"] *= 1.0 - momentum
            running["mean"] += momentum * mu
            running["var"] *= 1.0 - momentum
            running["var"] += momentum * var * (n / (n - 1))
    else:
        if running is None:
            raise ValueError("batch normalization in evaluation uses the running statistics: pass running")
        centred = x - running["mean"]
        var = running["var"]
    inv_std = 1.0 / np.sqrt(var + eps)  # (D,)
    x_hat = centred * inv_std  # (N, D)
    return gamma * x_hat + beta, (x_hat, gamma, inv_std, bool(train))


def batchnorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """dx (N, D), dgamma (D,), dbeta (D,) for ``batchnorm_forward``'s output gradient dout (N, D).

    dgamma = sum_n dout * x_hat and dbeta = sum_n dout. In training, mu and var depend on every
    row, and with g = dout * gamma:
    dx = (1 / sqrt(var + eps)) * (g - mean_n(g) - x_hat * mean_n(g * x_hat)).
    In evaluation the statistics are constants and dx = g / sqrt(var + eps).
    """
    x_hat, gamma, inv_std, train = cache
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    g = dout * gamma  # (N, D): the gradient with respect to x_hat
    if not train:
        return g * inv_std, dgamma, dbeta
    dx = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dx, dgamma, dbeta
