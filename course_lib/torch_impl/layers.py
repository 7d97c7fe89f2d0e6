"""Dense layer and dropout in PyTorch, same signatures as numpy_impl.layers.

W is (fan_in, fan_out) here, as in the NumPy code; ``torch.nn.Linear.weight`` is its transpose.
``Dropout`` is ``torch.nn.Dropout`` (inverted dropout, ``p`` the drop probability, identity in
``eval()``) with one addition: it draws its masks from a ``torch.Generator`` when given one, so
that a run is reproducible without a global seed. The tests check that its statistics are
``nn.Dropout``'s.

``batchnorm_forward``/``batchnorm_backward`` are the NumPy pair written with tensors: the same
formulas, the same running-average convention as ``torch.nn.functional.batch_norm`` (which the
tests compare them with). Models use ``torch.nn.BatchNorm1d`` itself.

``layernorm_forward``/``layernorm_backward`` and ``rmsnorm_forward``/``rmsnorm_backward`` likewise
write the NumPy pairs with tensors; they equal ``torch.nn.functional.layer_norm`` and
``rms_norm`` (and autograd), and models use ``torch.nn.LayerNorm`` / ``torch.nn.RMSNorm``.
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


def batchnorm_running(D: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict:
    """Fresh running statistics: ``{"mean": zeros(D), "var": ones(D)}``, as ``nn.BatchNorm1d``."""
    return {
        "mean": torch.zeros(D, dtype=dtype, device=device),
        "var": torch.ones(D, dtype=dtype, device=device),
    }


def batchnorm_forward(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running: dict[str, Tensor] | None,
    train: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Tensor, tuple]:
    """out = gamma (x - mu) / sqrt(var + eps) + beta per feature; x (N, D), gamma and beta (D,).

    As ``numpy_impl.layers.batchnorm_forward``: batch statistics in training (``running`` updated
    in place with the unbiased variance), ``running``'s in evaluation.
    """
    if train:
        n = x.shape[0]
        if n < 2:
            raise ValueError("batch normalization in training needs at least 2 rows per batch")
        mu = x.mean(0)
        centred = x - mu
        var = (centred * centred).mean(0)
        if running is not None:
            with torch.no_grad():
                running["mean"].mul_(1.0 - momentum).add_(momentum * mu)
                running["var"].mul_(1.0 - momentum).add_(momentum * var * (n / (n - 1)))
    else:
        if running is None:
            raise ValueError("batch normalization in evaluation uses the running statistics: pass running")
        centred = x - running["mean"]
        var = running["var"]
    inv_std = torch.rsqrt(var + eps)
    x_hat = centred * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std, bool(train))


def batchnorm_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """dx, dgamma, dbeta: dx = inv_std (g - mean(g) - x_hat mean(g x_hat)) with g = dout gamma."""
    x_hat, gamma, inv_std, train = cache
    g = dout * gamma
    dgamma, dbeta = (dout * x_hat).sum(0), dout.sum(0)
    if not train:
        return g * inv_std, dgamma, dbeta
    return inv_std * (g - g.mean(0) - x_hat * (g * x_hat).mean(0)), dgamma, dbeta


def _normalize_last_axis(x: Tensor, eps: float, center: bool) -> tuple[Tensor, Tensor]:
    """x_hat over the last axis, (x - mean) / sqrt(var + eps) or x / sqrt(mean x^2 + eps), and 1 / sqrt(.)."""
    if center:
        x = x - x.mean(-1, keepdim=True)
    inv = torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return x * inv, inv


def _normalize_last_axis_backward(g: Tensor, x_hat: Tensor, inv: Tensor, center: bool) -> Tensor:
    dx = g - x_hat * (g * x_hat).mean(-1, keepdim=True)
    if center:
        dx = dx - g.mean(-1, keepdim=True)
    return inv * dx


def layernorm_forward(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> tuple[Tensor, tuple]:
    """out = gamma (x - mu) / sqrt(var + eps) + beta, mu and var over each row's D features; x (N, D)."""
    x_hat, inv_std = _normalize_last_axis(x, eps, center=True)
    return gamma * x_hat + beta, (x_hat, gamma, inv_std)


def layernorm_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """dx = inv_std (g - mean_d g - x_hat mean_d(g x_hat)), g = dout gamma; dgamma, dbeta summed over rows."""
    x_hat, gamma, inv_std = cache
    dx = _normalize_last_axis_backward(dout * gamma, x_hat, inv_std, center=True)
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def rmsnorm_forward(x: Tensor, gamma: Tensor, eps: float = 1e-6) -> tuple[Tensor, tuple]:
    """out = gamma x / sqrt(mean_d x^2 + eps) per row; x (N, D), gamma (D,)."""
    x_hat, inv_rms = _normalize_last_axis(x, eps, center=False)
    return gamma * x_hat, (x_hat, gamma, inv_rms)


def rmsnorm_backward(dout: Tensor, cache: tuple) -> tuple[Tensor, Tensor]:
    """dx = inv_rms (g - x_hat mean_d(g x_hat)), g = dout gamma; dgamma = sum_n dout x_hat."""
    x_hat, gamma, inv_rms = cache
    dx = _normalize_last_axis_backward(dout * gamma, x_hat, inv_rms, center=False)
    return dx, (dout * x_hat).sum(0)
