"""Weight and activity penalties, and the max-norm constraint, in NumPy.

* L2 ("ridge", weight decay): penalty (lam/2) sum W^2, gradient lam W. Keras's
  ``regularizers.l2(k)`` is k sum W^2 (no 1/2), so it equals ``lam = 2 k`` here.
* L1 ("lasso"): penalty lam sum |W|, (sub)gradient lam sign(W), with sign(0) = 0 as
  ``torch.sign`` and autograd's ``abs`` at 0.
* Elastic net: the sum of the two (Zou and Hastie, 2005).
* Activity penalties act on a layer's *outputs* h (N, H) instead of its weights, averaged over
  the batch as Keras's ``activity_regularizer`` does.
* ``max_norm(W, c)``: every column of W (fan_in, fan_out), the incoming weights of one unit, is
  rescaled to Euclidean norm c if it is longer (Srivastava et al. 2014, section 5.1; Keras
  ``constraints.MaxNorm(c, axis=0)``); shorter columns are left exactly as they are.

The gradients are checked by central differences and against torch autograd in
``tests/test_regularization.py``. Book chapter 4 derives them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


def l2_penalty(W: Array, lam: float) -> float:
    """(lam / 2) * sum(W^2), for W of any shape."""
    W = np.asarray(W)
    return float(0.5 * lam * np.sum(W * W))


def l2_grad(W: Array, lam: float) -> Array:
    """d/dW (lam/2) sum W^2 = lam * W, the shape of W."""
    return lam * np.asarray(W)


def l1_penalty(W: Array, lam: float) -> float:
    """lam * sum(|W|), for W of any shape."""
    return float(lam * np.sum(np.abs(W)))


def l1_grad(W: Array, lam: float) -> Array:
    """lam * sign(W): +lam, -lam, and 0 where W is exactly 0 (a subgradient there)."""
    return lam * np.sign(W)


def elastic_net_penalty(W: Array, l1: float, l2: float) -> float:
    """l1 * sum |W| + (l2 / 2) * sum W^2."""
    return l1_penalty(W, l1) + l2_penalty(W, l2)


def elastic_net_grad(W: Array, l1: float, l2: float) -> Array:
    """l1 * sign(W) + l2 * W."""
    return l1_grad(W, l1) + l2_grad(W, l2)


def activity_penalty(h: Array, l1: float = 0.0, l2: float = 0.0) -> float:
    """(l1 * sum |h| + (l2 / 2) * sum h^2) / N for a layer's outputs h (N, H): mean over the batch."""
    h = np.asarray(h)
    return (l1_penalty(h, l1) + l2_penalty(h, l2)) / h.shape[0]


def activity_grad(h: Array, l1: float = 0.0, l2: float = 0.0) -> Array:
    """d activity_penalty / dh = (l1 * sign(h) + l2 * h) / N, shape (N, H)."""
    h = np.asarray(h)
    return elastic_net_grad(h, l1, l2) / h.shape[0]


def column_norms(W: Array) -> Array:
    """||W[:, j]||_2 for every unit j: (fan_in, fan_out) -> (fan_out,)."""
    return np.sqrt(np.sum(np.asarray(W) ** 2, axis=0))


def max_norm(W: Array, c: float) -> Array:
    """W[:, j] * min(1, c / ||W[:, j]||) for every column j: a new array, W (fan_in, fan_out).

    The projection onto {W : every unit's incoming weight vector has norm <= c}. A bias vector
    (1-D) is a single column.
    """
    if c <= 0:
        raise ValueError(f"max_norm needs c > 0, got {c}")
    W = np.asarray(W)
    norms = column_norms(W)  # (fan_out,)
    long = norms > c
    scale = np.where(long, c / np.where(long, norms, 1.0), 1.0)  # 1 for short columns (and zeros)
    return (W * scale).astype(W.dtype, copy=False)
