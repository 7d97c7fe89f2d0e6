"""Weight and activity penalties and the max-norm constraint in PyTorch, same names as
``numpy_impl.regularization``; the penalties are differentiable (autograd gives their gradients).

``max_norm`` takes W in this library's (fan_in, fan_out) layout, like the NumPy function;
``max_norm_linear_`` constrains an ``nn.Linear`` in place, whose weight is (fan_out, fan_in), so
a unit's incoming weights are a *row* there. ``torch.renorm(w, 2, 0, c)`` does nearly the same,
but scales by c / (norm + 1e-7), which also shrinks rows already at the limit by about 1e-7.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def l2_penalty(W: Tensor, lam: float) -> Tensor:
    """(lam / 2) * sum(W^2)."""
    return 0.5 * lam * (W * W).sum()


def l2_grad(W: Tensor, lam: float) -> Tensor:
    """lam * W."""
    return lam * W


def l1_penalty(W: Tensor, lam: float) -> Tensor:
    """lam * sum |W|."""
    return lam * W.abs().sum()


def l1_grad(W: Tensor, lam: float) -> Tensor:
    """lam * sign(W), 0 at 0."""
    return lam * torch.sign(W)


def elastic_net_penalty(W: Tensor, l1: float, l2: float) -> Tensor:
    """l1 * sum |W| + (l2 / 2) * sum W^2."""
    return l1_penalty(W, l1) + l2_penalty(W, l2)


def elastic_net_grad(W: Tensor, l1: float, l2: float) -> Tensor:
    """l1 * sign(W) + l2 * W."""
    return l1_grad(W, l1) + l2_grad(W, l2)


def activity_penalty(h: Tensor, l1: float = 0.0, l2: float = 0.0) -> Tensor:
    """(l1 * sum |h| + (l2 / 2) * sum h^2) / N for outputs h (N, H)."""
    return elastic_net_penalty(h, l1, l2) / h.shape[0]


def activity_grad(h: Tensor, l1: float = 0.0, l2: float = 0.0) -> Tensor:
    """(l1 * sign(h) + l2 * h) / N."""
    return elastic_net_grad(h, l1, l2) / h.shape[0]


def max_norm(W: Tensor, c: float) -> Tensor:
    """W[:, j] * min(1, c / ||W[:, j]||) for W (fan_in, fan_out): a new tensor."""
    if c <= 0:
        raise ValueError(f"max_norm needs c > 0, got {c}")
    norms = torch.linalg.vector_norm(W, dim=0)  # (fan_out,)
    long = norms > c
    return W * torch.where(long, c / torch.where(long, norms, torch.ones_like(norms)), 1.0)


@torch.no_grad()
def max_norm_linear_(layer: nn.Linear, c: float) -> nn.Linear:
    """Constrain ``layer.weight`` (fan_out, fan_in) in place: every row to norm at most c."""
    layer.weight.copy_(max_norm(layer.weight.T, c).T)
    return layer
