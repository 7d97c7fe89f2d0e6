"""Losses and their gradients, in NumPy.

``cross_entropy`` matches ``torch.nn.functional.cross_entropy`` (mean over the batch) and
``mse`` matches ``torch.nn.functional.mse_loss``. Book chapter 1 (the output layer) derives
the softmax cross-entropy gradient (p - onehot(y)) / N.

Inputs are checked as ``F.cross_entropy`` checks them: labels must be integer class ids in
[0, C) (a label of -1 would otherwise silently index the last class), and ``mse``/``mse_grad``
refuse shapes that differ (broadcasting (N, 1) against (N,) would silently give (N, N)).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


def log_softmax(logits: Array) -> Array:
    """log softmax(z)_c = z_c - logsumexp(z), stable for any magnitude. (N, C) -> (N, C)."""
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _check(logits: Array, y: NDArray[np.integer]) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {logits.shape}")
    if y.shape != (logits.shape[0],):
        raise ValueError(
            f"labels must be integer class ids of shape ({logits.shape[0]},), got {y.shape}; "
            "pass y, not one-hot rows"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}; use y.astype(int)")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1]}) for {logits.shape[1]} classes, "
            f"got values from {y.min()} to {y.max()}"
        )


def cross_entropy(logits: Array, y: NDArray[np.integer]) -> float:
    """L = -(1/N) sum_n log softmax(z_n)_{y_n}. logits (N, C), y (N,) integer labels."""
    logits, y = np.asarray(logits), np.asarray(y)
    _check(logits, y)
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def softmax_cross_entropy_grad(logits: Array, y: NDArray[np.integer]) -> Array:
    """dL/dz = (softmax(z) - onehot(y)) / N for the mean cross-entropy. (N, C) -> (N, C)."""
    logits, y = np.asarray(logits), np.asarray(y)
    _check(logits, y)
    p = np.exp(log_softmax(logits))
    p[np.arange(len(y)), y] -= 1.0
    return p / len(y)


def _check_same_shape(pred: Array, target: Array) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {pred.shape} and target {target.shape} must have the same shape "
            "(no broadcasting: reshape one of them)"
        )


def mse(pred: Array, target: Array) -> float:
    """L = mean((pred - target)^2) over every element (PyTorch's ``MSELoss``).

    Some notes write E = 1/2 sum (y - t)^2; that differs by a constant factor only.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    _check_same_shape(pred, target)
    return float(np.mean((pred - target) ** 2))


def mse_grad(pred: Array, target: Array) -> Array:
    """dL/dpred = 2 (pred - target) / pred.size. Shape: that of ``pred``."""
    pred, target = np.asarray(pred), np.asarray(target)
    _check_same_shape(pred, target)
    return 2.0 * (pred - target) / pred.size
