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
Layer normalization (Ba et al. 2016) and RMSNorm (Zhang and Sennrich 2019) normalize each row
over its D features instead of each feature over the batch, so they behave the same in training
and evaluation, for any batch size, and keep no running statistics
(``layernorm_forward``/``layernorm_backward``, ``rmsnorm_forward``/``rmsnorm_backward``); checked
against ``torch.nn.functional.layer_norm`` / ``rms_norm``, autograd and central differences in
``tests/test_norms.py``; derived in the normalization chapter.
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


def _normalize_last_axis(x: Array, eps: float, center: bool) -> tuple[Array, Array]:
    """x_hat = (x - mean x) / sqrt(var x + eps) (``center``) or x / sqrt(mean x^2 + eps), over the last
    axis, and 1 / sqrt(...) with that axis kept (size 1): x (..., D) -> (..., D), (..., 1)."""
    if center:
        x = x - x.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    return x * inv, inv


def _normalize_last_axis_backward(g: Array, x_hat: Array, inv: Array, center: bool) -> Array:
    """dx for ``_normalize_last_axis``, from g = dL/dx_hat (..., D); means over the last axis.

    centred: dx = inv (g - mean(g) - x_hat mean(g x_hat)); not centred: dx = inv (g - x_hat mean(g x_hat)).
    """
    dx = g - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    if center:
        dx -= g.mean(axis=-1, keepdims=True)
    return inv * dx


def _check_rows(name: str, x: Array, **vectors: Array) -> Array:
    x = np.asarray(x)
    if x.ndim != 2 or any(np.shape(v) != (x.shape[1],) for v in vectors.values()):
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in vectors.items())
        raise ValueError(f"{name}: x {x.shape}, {shapes}; needs x (N, D) and {', '.join(vectors)} (D,)")
    return x


def layernorm_forward(x: Array, gamma: Array, beta: Array, eps: float = 1e-5) -> tuple[Array, tuple]:
    """out = gamma * (x - mu) / sqrt(var + eps) + beta, mu and var over the D features of each row.

    x (N, D), gamma and beta (D,) -> out (N, D). mu (N, 1) is the row's mean and var (N, 1) its
    biased variance, as ``torch.nn.LayerNorm(D, eps)``; no running statistics, so training and
    evaluation are the same function and a row's output does not depend on the other rows.
    The cache holds x_hat (N, D), gamma (D,) and 1 / sqrt(var + eps) (N, 1).
    """
    x = _check_rows("layernorm_forward", x, gamma=gamma, beta=beta)
    x_hat, inv_std = _normalize_last_axis(x, eps, center=True)
    return gamma * x_hat + beta, (x_hat, gamma, inv_std)


def layernorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """dx (N, D), dgamma (D,), dbeta (D,) for ``layernorm_forward``'s output gradient dout (N, D).

    dgamma = sum_n dout * x_hat, dbeta = sum_n dout, and with g = dout * gamma and means over the
    D features of each row: dx = (1 / sqrt(var + eps)) * (g - mean_d(g) - x_hat * mean_d(g * x_hat)),
    batch norm's formula with the roles of rows and features exchanged.
    """
    x_hat, gamma, inv_std = cache
    dx = _normalize_last_axis_backward(dout * gamma, x_hat, inv_std, center=True)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def rmsnorm_forward(x: Array, gamma: Array, eps: float = 1e-6) -> tuple[Array, tuple]:
    """out = gamma * x / sqrt(mean_d(x^2) + eps), over the D features of each row; no centring, no beta.

    x (N, D), gamma (D,) -> out (N, D), as ``torch.nn.RMSNorm(D, eps)`` (whose default eps, None,
    is the dtype's machine epsilon: pass eps to compare). The cache holds x_hat = x / rms (N, D),
    gamma (D,) and 1 / rms (N, 1), rms = sqrt(mean_d(x^2) + eps).
    """
    x = _check_rows("rmsnorm_forward", x, gamma=gamma)
    x_hat, inv_rms = _normalize_last_axis(x, eps, center=False)
    return gamma * x_hat, (x_hat, gamma, inv_rms)


def rmsnorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array]:
    """dx (N, D) and dgamma (D,) for ``rmsnorm_forward``'s output gradient dout (N, D).

    dgamma = sum_n dout * x_hat; with g = dout * gamma: dx = (1 / rms) * (g - x_hat * mean_d(g * x_hat)),
    layer norm's dx without the mean_d(g) term (nothing was subtracted).
    """
    x_hat, gamma, inv_rms = cache
    dx = _normalize_last_axis_backward(dout * gamma, x_hat, inv_rms, center=False)
    return dx, (dout * x_hat).sum(axis=0)
