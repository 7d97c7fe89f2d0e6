"""Activation functions and their derivatives, in PyTorch (same names as numpy_impl.activations).

The ``f`` are torch's own functions; the ``f_grad`` are written out by hand (so they can be
compared with autograd) and follow autograd's values at the kinks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid(x: Tensor) -> Tensor:
    """sigma(x) = 1 / (1 + exp(-x)); ``torch.sigmoid`` is already overflow-safe."""
    return torch.sigmoid(x)


def sigmoid_grad(x: Tensor) -> Tensor:
    """sigma'(x) = sigma(x) (1 - sigma(x))."""
    s = torch.sigmoid(x)
    return s * (1 - s)


def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


def tanh_grad(x: Tensor) -> Tensor:
    """tanh'(x) = 1 - tanh(x)^2."""
    return 1 - torch.tanh(x) ** 2


def relu(x: Tensor) -> Tensor:
    return torch.relu(x)


def relu_grad(x: Tensor) -> Tensor:
    """1 if x > 0 else 0."""
    return (x > 0).to(x.dtype)


def leaky_relu(x: Tensor, alpha: float = 0.01) -> Tensor:
    return F.leaky_relu(x, negative_slope=alpha)


def leaky_relu_grad(x: Tensor, alpha: float = 0.01) -> Tensor:
    """1 if x > 0 else alpha."""
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, alpha))


def prelu(x: Tensor, alpha: Tensor | float) -> Tensor:
    """x if x > 0 else alpha * x, alpha broadcasting against x (a scalar or one per unit)."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    return torch.where(x > 0, x, alpha * x)


def prelu_grad(x: Tensor, alpha: Tensor | float) -> Tensor:
    """d prelu / d x = 1 if x > 0 else alpha."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    return torch.where(x > 0, torch.ones_like(x), alpha.expand_as(x))


def prelu_grad_alpha(x: Tensor, alpha: Tensor | float, dout: Tensor | None = None) -> Tensor:
    """dL/d alpha = sum, over the positions sharing alpha, of dout * min(x, 0)."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    dout = torch.ones_like(x) if dout is None else dout
    g = torch.where(x > 0, torch.zeros_like(x), x) * dout
    return g.sum_to_size(alpha.shape) if alpha.dim() else g.sum()


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return F.elu(x, alpha=alpha)


def elu_grad(x: Tensor, alpha: float = 1.0) -> Tensor:
    """1 if x > 0 else alpha e^x."""
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0)))


def gelu(x: Tensor) -> Tensor:
    """x Phi(x), the exact (erf) form: ``F.gelu(x, approximate="none")``."""
    return F.gelu(x, approximate="none")


def gelu_grad(x: Tensor) -> Tensor:
    """Phi(x) + x phi(x), with Phi(x) = erfc(-x / sqrt 2) / 2 and phi(x) = e^(-x^2 / 2) / sqrt(2 pi)."""
    pdf = torch.exp(-0.5 * torch.clamp(x, -40.0, 40.0) ** 2) / math.sqrt(2.0 * math.pi)
    return 0.5 * torch.special.erfc(-x * math.sqrt(0.5)) + x * pdf


def silu(x: Tensor) -> Tensor:
    """x sigma(x): ``F.silu``."""
    return F.silu(x)


def silu_grad(x: Tensor) -> Tensor:
    """sigma(x) (1 + x (1 - sigma(x)))."""
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return torch.softmax(x, dim=axis)


def softmax_grad(x: Tensor) -> Tensor:
    """Jacobian s_i (delta_ij - s_j) over the last axis: (..., C) -> (..., C, C)."""
    s = torch.softmax(x, dim=-1)
    eye = torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
    return s.unsqueeze(-1) * (eye - s.unsqueeze(-2))


#: name -> module factory, for ``torch_impl.mlp.MLP``.
MODULES = {
    "sigmoid": torch.nn.Sigmoid,
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.01),
    "elu": torch.nn.ELU,
    "prelu": lambda: torch.nn.PReLU(num_parameters=1, init=0.25),
    "gelu": lambda: torch.nn.GELU(approximate="none"),
    "silu": torch.nn.SiLU,
}
