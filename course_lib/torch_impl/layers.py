"""Dense layer forward/backward in PyTorch, same signatures as numpy_impl.layers.

W is (fan_in, fan_out) here, as in the NumPy code; ``torch.nn.Linear.weight`` is its transpose.
"""

from __future__ import annotations

from torch import Tensor


def dense_forward(x: Tensor, W: Tensor, b: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """out = x @ W + b. x (N, D), W (D, H), b (H,) -> (N, H)."""
    return x @ W + b, (x, W)


def dense_backward(dout: Tensor, cache: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """dx = dout W^T, dW = x^T dout, db = sum_n dout."""
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(0)
