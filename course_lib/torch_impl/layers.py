"""Dense layer and dropout in PyTorch, same signatures as numpy_impl.layers.

W is (fan_in, fan_out) here, as in the NumPy code; ``torch.nn.Linear.weight`` is its transpose.
``Dropout`` is ``torch.nn.Dropout`` (inverted dropout, ``p`` the drop probability, identity in
``eval()``) with one addition: it draws its masks from a ``torch.Generator`` when given one, so
that a run is reproducible without a global seed. The tests check that its statistics are
``nn.Dropout``'s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dense_forward(x: Tensor, W: Tensor, b: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """out = x @ W + b. x (N, D), W (D, H), b (H,) -> (N, H)."""
    return x @ W + b, (x, W)


def dense_backward(dout: Tensor, cache: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """dx = dout W^T, dW = x^T dout, db = sum_n dout."""
    x, W = cache
    return dout @ W.T, x.T @ dout, dout.sum(0)


def dropout_mask(
    shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """keep / (1 - p) with keep ~ Bernoulli(1 - p): 0 or 1/(1 - p), dtype and device of ``like``."""
    if p == 1.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype)
    return ((u >= p).to(like.dtype) / (1.0 - p)).to(like.device)


def dropout_forward(
    x: Tensor, p: float, generator: torch.Generator | None = None, train: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Inverted dropout: out = x * m, m = keep / (1 - p); identity (cache None) when not training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout p is the probability of dropping a unit, in [0, 1]; got {p}")
    if not train or p == 0.0:
        return x, None
    m = dropout_mask(x.shape, p, generator, x)
    return x * m, m


def dropout_backward(dout: Tensor, cache: Tensor | None) -> Tensor:
    """dx = dout * m, with the forward pass's multiplier m."""
    return dout if cache is None else dout * cache


class Dropout(nn.Module):
    """``nn.Dropout(p)`` whose masks come from ``generator`` (the global generator when None)."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout p is the probability of dropping a unit, in [0, 1]; got {p}")
        self.p, self.generator = float(p), generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x.shape, self.p, self.generator, x)

    def extra_repr(self) -> str:
        return f"p={self.p}"
