"""The optimizers of ``numpy_impl.optimizers`` as ``torch.optim.Optimizer`` subclasses.

Drop-in for ``torch.optim.SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW``: the same
arguments, parameter groups, ``zero_grad``, ``state_dict`` and LR schedulers (they read and
write ``param_group["lr"]``). Each ``step`` is written out in tensor operations, one parameter at
a time, so that the update rule is on the page; ``tests/test_optimizers.py`` holds every
trajectory to ``torch.optim``'s in float64. Book chapter 5 derives the rules.

``clip_grad_norm(parameters, max_norm)`` is ``torch.nn.utils.clip_grad_norm_`` written out (the
same norm of per-tensor norms, the same ``max_norm / (total + 1e-6)`` scale clamped to 1), the twin
of ``numpy_impl.optimizers.clip_grad_norm``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


class _Base(Optimizer):
    """``step`` calls ``_update(p, grad, state, group)`` for every parameter that has a gradient."""

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        if defaults["lr"] < 0:
            raise ValueError(f"invalid learning rate {defaults['lr']}")
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self._update(p, p.grad, self.state[p], group)
        return loss

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(_Base):
    """w -= lr d, d = g + weight_decay w; with momentum v = mu v + d and d -> v or d + mu v (Nesterov)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _update(self, p, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        mu = group["momentum"]
        if mu:
            if "velocity" not in state:
                state["velocity"] = grad.clone()
            else:
                state["velocity"].mul_(mu).add_(grad)
            v = state["velocity"]
            grad = grad + mu * v if group["nesterov"] else v
        p.add_(grad, alpha=-group["lr"])


class AdaGrad(_Base):
    """s += g^2; w -= lr_t g / (sqrt(s) + eps), lr_t = lr / (1 + (t - 1) lr_decay)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    def _update(self, p, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        if not state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        state["sum"].addcmul_(grad, grad)
        lr_t = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        p.addcdiv_(grad, state["sum"].sqrt().add_(group["eps"]), value=-lr_t)


class RMSProp(_Base):
    """s = alpha s + (1 - alpha) g^2; w -= lr g / (sqrt(s) + eps) (``centered``, ``momentum`` as torch)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
            ),
        )

    def _update(self, p, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        alpha = group["alpha"]
        if not state:
            state["square_avg"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
            if group["momentum"]:
                state["momentum_buffer"] = torch.zeros_like(p)
        s = state["square_avg"].mul_(alpha).addcmul_(grad, grad, value=1.0 - alpha)
        if group["centered"]:
            m = state["grad_avg"].add_(grad - state["grad_avg"], alpha=1.0 - alpha)
            denom = (s - m * m).sqrt_().add_(group["eps"])
        else:
            denom = s.sqrt().add_(group["eps"])
        if group["momentum"]:
            buf = state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(grad, denom)
            p.add_(buf, alpha=-group["lr"])
        else:
            p.addcdiv_(grad, denom, value=-group["lr"])


class Adam(_Base):
    """m, v: running averages of g and g^2; w -= lr m_hat / (sqrt(v_hat) + eps) with bias correction.

    ``weight_decay`` is L2 added to g; ``decoupled=True`` (AdamW) shrinks w by lr * weight_decay.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        decoupled: bool = False,
    ) -> None:
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        super().__init__(
            params,
            dict(
                lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, decoupled=decoupled
            ),
        )

    def _update(self, p, grad, state, group):
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        if wd and group["decoupled"]:
            p.mul_(1.0 - lr * wd)
        elif wd:
            grad = grad + wd * p
        if not state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m = state["exp_avg"].mul_(b1).add_(grad, alpha=1.0 - b1)
        v = state["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        if group["amsgrad"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        m_hat = m / (1.0 - b1**t)
        denom = (v / (1.0 - b2**t)).sqrt_().add_(group["eps"])
        p.addcdiv_(m_hat, denom, value=-lr)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as ``torch.optim.AdamW``)."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled=True)


@torch.no_grad()
def clip_grad_norm(
    parameters: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """p.grad *= min(1, max_norm / (total + 1e-6)) in place, total = ||(||p.grad||)_p||; returns total.

    As ``torch.nn.utils.clip_grad_norm_`` (parameters without a gradient are skipped; the total is
    a 0-d tensor, the norm before clipping).
    """
    if max_norm < 0:
        raise ValueError(f"max_norm is the largest total gradient norm allowed, >= 0; got {max_norm}")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type).to(grads[0].device) for g in grads])
    total = torch.linalg.vector_norm(norms, norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(f"the total gradient norm is {total.item()}, so it cannot be clipped")
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # never enlarges a gradient
    for g in grads:
        g.mul_(scale.to(g.device))
    return total


#: Name -> class, as in ``numpy_impl.optimizers.OPTIMIZERS``.
OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam, "adamw": AdamW}

__all__ = ["SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "OPTIMIZERS", "clip_grad_norm"]
