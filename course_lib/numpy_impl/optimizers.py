"""Optimizers over dicts of NumPy arrays: ``opt.step(params, grads)`` updates params in place.

SGD (with momentum, Nesterov momentum and weight decay), AdaGrad, RMSProp, Adam (with bias
correction, optionally AMSGrad) and AdamW, each matching its ``torch.optim`` namesake step for
step (``tests/test_optimizers.py`` compares 20-step trajectories in float64). Book chapter 5
derives every update rule.

Conventions, those of PyTorch:

* Momentum is v = mu v + g; w -= lr v. The other common form, v = mu v - lr g; w += v (Keras,
  Sutskever et al.), gives the same trajectory while lr is constant (v_other = -lr v_torch) and a
  different one once a schedule changes lr: the torch form applies the *new* lr to the whole
  velocity.
* ``weight_decay`` in SGD, AdaGrad, RMSProp and Adam is L2 added to the gradient (coupled);
  AdamW's shrinks the weights directly, w -= lr * weight_decay * w, outside the adaptive scaling.
* ``lr`` is a plain attribute: a learning-rate schedule sets it before a step
  (``training.fit(..., schedule=...)`` does).
* State (velocities, moment estimates, step counts) lives in ``opt.state``, one entry per
  parameter name, created at the parameter's first step.

Gradient clipping (the diagnosis chapter, exploding gradients): ``clip_grad_norm(grads, max_norm)``
rescales a dict of gradients in place, before the optimizer step, as
``torch.nn.utils.clip_grad_norm_`` does (tested against it); ``clip_grad_norm_seeds`` does the same
for every member of a ``multiseed.MultiSeedMLP``, each with its own norm. ``training.fit`` and
``fit_seeds`` call them with ``clip_grad_norm=max_norm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Params = dict[str, np.ndarray]


@dataclass
class Optimizer:
    """Base class: ``step`` walks the parameters and calls ``update`` on each one."""

    lr: float = 0.01  # step size
    # per parameter name; keyword-only, so that positional arguments follow each optimizer's fields
    state: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, kw_only=True)

    def step(self, params: Params, grads: Params) -> None:
        """One update of every array in ``params`` (in place) with the gradient of the same name."""
        for name, w in params.items():
            if name not in grads:
                continue  # a parameter without a gradient this step (e.g. frozen) is left alone
            self.update(w, np.asarray(grads[name]), self.state.setdefault(name, {}))

    def update(self, w: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass
class SGD(Optimizer):
    """w -= lr * d with d = g + weight_decay * w, or with (Nesterov) momentum v = mu v + d:
    d -> v (heavy ball) or d -> d + mu v (Nesterov), as ``torch.optim.SGD``."""

    momentum: float = 0.0  # mu; 0 is plain SGD
    nesterov: bool = False  # use g + mu v instead of v as the step direction
    weight_decay: float = 0.0  # L2 coefficient added to the gradient (coupled decay)

    def __post_init__(self) -> None:
        if self.nesterov and self.momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")

    def update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            v = state.get("velocity")
            v = g.copy() if v is None else self.momentum * v + g  # the first step starts v at g
            state["velocity"] = v
            g = g + self.momentum * v if self.nesterov else v
        w -= self.lr * g


@dataclass
class AdaGrad(Optimizer):
    """s += g^2; w -= lr_t * g / (sqrt(s) + eps): every coordinate's step shrinks with the sum of
    its squared gradients. lr_t = lr / (1 + (t - 1) lr_decay), as ``torch.optim.Adagrad``."""

    lr: float = 0.01  # step size (torch's default)
    lr_decay: float = 0.0  # torch's extra 1 / (1 + (t - 1) lr_decay) factor; 0 is Duchi et al.'s AdaGrad
    weight_decay: float = 0.0  # L2 coefficient added to the gradient
    initial_accumulator_value: float = 0.0  # the starting value of s (Keras uses 0.1)
    eps: float = 1e-10  # keeps the division finite while s is 0

    def update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if not state:
            state["t"], state["sum_sq"] = 0, np.full_like(w, self.initial_accumulator_value)
        state["t"] += 1
        state["sum_sq"] += g * g
        lr_t = self.lr / (1.0 + (state["t"] - 1) * self.lr_decay)
        w -= lr_t * g / (np.sqrt(state["sum_sq"]) + self.eps)


@dataclass
class RMSProp(Optimizer):
    """s = alpha s + (1 - alpha) g^2; w -= lr * g / (sqrt(s) + eps): AdaGrad with a leaky sum.

    ``alpha`` is Hinton's and Keras's rho (torch's name; Keras and TF1 default to 0.9, torch to
    0.99). ``centered`` divides by the square root of an estimate of the *variance*,
    s - mean(g)^2, instead; ``momentum`` accumulates the scaled steps as SGD does.
    """

    lr: float = 0.01  # step size (torch's default; Keras uses 0.001)
    alpha: float = 0.99  # decay of the running average of g^2 (rho)
    eps: float = 1e-8  # added to the square root (torch's place; TF1 adds it inside the root)
    weight_decay: float = 0.0  # L2 coefficient added to the gradient
    momentum: float = 0.0  # momentum on the scaled step, 0 for none
    centered: bool = False  # divide by an estimate of the standard deviation of g instead

    def update(self, w, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if not state:
            state["sq_avg"] = np.zeros_like(w)
            if self.centered:
                state["g_avg"] = np.zeros_like(w)
            if self.momentum:
                state["buf"] = np.zeros_like(w)
        s = state["sq_avg"]
        s *= self.alpha
        s += (1.0 - self.alpha) * g * g
        if self.centered:
            m = state["g_avg"]
            m += (1.0 - self.alpha) * (g - m)
            denom = np.sqrt(s - m * m) + self.eps
        else:
            denom = np.sqrt(s) + self.eps
        if self.momentum:
            buf = state["buf"]
            buf *= self.momentum
            buf += g / denom
            w -= self.lr * buf
        else:
            w -= self.lr * g / denom


@dataclass
class Adam(Optimizer):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr * m_hat / (sqrt(v_hat) + eps)
    with the bias corrections m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), t = 1, 2, ...

    ``weight_decay`` adds weight_decay * w to g (L2, coupled: it is then rescaled like the rest
    of the gradient); ``AdamW`` decouples it. ``amsgrad`` divides by the largest v seen so far.
    """

    lr: float = 0.001  # step size (Kingma and Ba's, torch's and Keras's default)
    betas: tuple[float, float] = (0.9, 0.999)  # decay of the first and second moment estimates
    eps: float = 1e-8  # added to sqrt(v_hat) (Keras's default is 1e-7)
    weight_decay: float = 0.0  # L2 coefficient added to the gradient
    amsgrad: bool = False  # use the running maximum of v (Reddi et al.)

    def _decay(self, w: np.ndarray) -> None:
        """AdamW's decoupled decay; nothing in Adam."""

    def update(self, w, g, state):
        self._decay(w)
        if self.weight_decay and not isinstance(self, AdamW):
            g = g + self.weight_decay * w
        b1, b2 = self.betas
        if not state:
            state["t"], state["m"], state["v"] = 0, np.zeros_like(w), np.zeros_like(w)
            if self.amsgrad:
                state["v_max"] = np.zeros_like(w)
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        if self.amsgrad:
            np.maximum(state["v_max"], v, out=state["v_max"])
            v = state["v_max"]
        m_hat = m / (1.0 - b1**t)  # unbiased while the averages still remember their zero start
        v_hat = v / (1.0 - b2**t)
        w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


@dataclass
class AdamW(Adam):
    """Adam with decoupled weight decay: w -= lr * weight_decay * w, then the Adam step on g alone.

    Loshchilov and Hutter's AdamW, as ``torch.optim.AdamW`` (whose default decay is 0.01). With
    plain SGD the two kinds of decay coincide; with Adam the coupled one is divided by sqrt(v_hat),
    so weights with large gradients are barely decayed.
    """

    weight_decay: float = 0.01  # decoupled: multiplies w by (1 - lr * weight_decay) every step

    def _decay(self, w: np.ndarray) -> None:
        if self.weight_decay:
            w *= 1.0 - self.lr * self.weight_decay


def clip_grad_norm(
    grads: Params, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """g *= min(1, max_norm / (||g||_total + 1e-6)) for every g in ``grads``, in place; returns ||g||_total.

    ||g||_total is the ``norm_type``-norm (2: Euclidean, ``inf``: max |g|) of all the gradients
    seen as one vector, computed, as torch does, as the norm of the per-array norms. The scale is
    at most 1, so gradients are only ever shrunk, to a total norm of max_norm (minus the 1e-6 that
    keeps the division finite): the direction of the step is kept, its length capped. The returned
    norm is the one *before* clipping, what ``torch.nn.utils.clip_grad_norm_`` returns. A
    non-finite norm scales everything to NaN, as torch, unless ``error_if_nonfinite`` raises.
    ``grads`` holds float arrays (the dict ``loss_and_grads`` returns), scaled in their own dtype.
    """
    if max_norm < 0:
        raise ValueError(f"max_norm is the largest total gradient norm allowed, >= 0; got {max_norm}")
    arrays = list(grads.values())
    for name, g in grads.items():
        if not (isinstance(g, np.ndarray) and np.issubdtype(g.dtype, np.floating)):
            raise TypeError(
                f"clip_grad_norm scales float arrays in place; grads[{name!r}] is {type(g).__name__}"
            )
    if not arrays:
        return 0.0
    norms = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in arrays])  # one per array
    total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"the total gradient norm is {total}, so it cannot be clipped")
    scale = np.minimum(max_norm / (total + 1e-6), 1.0)  # NaN stays NaN, as torch.clamp
    for g in arrays:
        g *= g.dtype.type(scale)
    return total


def clip_grad_norm_seeds(grads: Params, max_norm: float, norm_type: float = 2.0) -> np.ndarray:
    """``clip_grad_norm`` for each member of a stacked model: every ``grads[name]`` is (S, ...).

    Member s's gradients ``grads[name][s]`` are scaled by min(1, max_norm / (n_s + 1e-6)), n_s their
    own total norm, in place; returns the (S,) norms before clipping. The same as calling
    ``clip_grad_norm({k: g[s] ...}, max_norm)`` for each s (tested).
    """
    if max_norm < 0:
        raise ValueError(f"max_norm is the largest total gradient norm allowed, >= 0; got {max_norm}")
    arrays = list(grads.values())
    if not arrays:
        raise ValueError("clip_grad_norm_seeds needs at least one gradient array of shape (S, ...)")
    S = arrays[0].shape[0]
    norms = np.stack([np.linalg.norm(g.reshape(S, -1), ord=norm_type, axis=1) for g in arrays])  # (k, S)
    total = np.linalg.norm(norms, ord=norm_type, axis=0)  # (S,)
    scale = np.minimum(max_norm / (total + 1e-6), 1.0)  # (S,)
    for g in arrays:
        g *= scale.astype(g.dtype).reshape(S, *([1] * (g.ndim - 1)))
    return total


#: Name -> class, for pages and configuration files.
OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam, "adamw": AdamW}
