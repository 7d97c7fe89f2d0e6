"""Optimizers over dicts of NumPy arrays: ``opt.step(params, grads)`` updates params in place.

Matches ``torch.optim.SGD`` exactly (book chapter 5 derives the rest). Momentum is PyTorch's
form v = mu v + g; w -= lr v. The other common form v = mu v - lr g; w += v gives the same
trajectory for a constant learning rate (v_other = -lr v_torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SGD:
    """w -= lr * (g + weight_decay * w), with optional (Nesterov) momentum."""

    lr: float = 0.01  # step size
    momentum: float = 0.0  # mu; 0 is plain SGD
    nesterov: bool = False  # use g + mu v instead of v as the step direction
    weight_decay: float = 0.0  # L2 coefficient added to the gradient (coupled decay)
    state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # velocity per param

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for k, w in params.items():
            g = grads[k]
            if self.weight_decay:
                g = g + self.weight_decay * w
            if self.momentum:
                v = self.state.get(k)
                v = g.copy() if v is None else self.momentum * v + g
                self.state[k] = v
                g = g + self.momentum * v if self.nesterov else v
            w -= self.lr * g
