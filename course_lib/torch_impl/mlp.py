"""The MLP of numpy_impl.mlp as a ``torch.nn.Module`` (autograd does the backward)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from course_lib.numpy_impl.mlp import DEFAULT_INIT
from course_lib.torch_impl.activations import MODULES
from course_lib.torch_impl.initializers import init_linear


class MLP(nn.Module):
    """sizes = [D, H1, ..., C]: Linear -> activation per hidden layer, then Linear -> logits."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        init: str | None = None,
        generator: torch.Generator | int | None = 0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):  # the NumPy MLP's checks
            raise ValueError(f"sizes must be at least [inputs, outputs] of positive ints, got {sizes}")
        if activation not in MODULES:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(MODULES)}")
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        self.sizes, self.activation = [int(s) for s in sizes], activation
        self.init = init or DEFAULT_INIT[activation]
        modules: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True), start=1):
            modules.append(init_linear(nn.Linear(fan_in, fan_out, dtype=dtype), self.init, generator))
            if i < len(self.sizes) - 1:
                modules.append(MODULES[activation]().to(dtype))
        self.net = nn.Sequential(*modules).to(device)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) for inputs (N, D)."""
        return self.net(x)

    @torch.no_grad()
    def load_numpy_params(self, params: dict[str, np.ndarray]) -> MLP:
        """Copy the weights of a ``numpy_impl.mlp.MLP`` (W is (in, out) there, (out, in) here)."""
        prelus = [m for m in self.net if isinstance(m, nn.PReLU)]
        for i, lin in enumerate(self.linears, start=1):
            lin.weight.copy_(torch.as_tensor(params[f"W{i}"].T))
            lin.bias.copy_(torch.as_tensor(params[f"b{i}"]))
            if prelus and i <= len(prelus):
                prelus[i - 1].weight.fill_(float(params[f"alpha{i}"]))
        return self

    def numpy_grads(self) -> dict[str, np.ndarray]:
        """The gradients after ``backward()``, named and laid out as the NumPy MLP's."""
        out: dict[str, np.ndarray] = {}
        prelus = [m for m in self.net if isinstance(m, nn.PReLU)]
        for i, lin in enumerate(self.linears, start=1):
            out[f"W{i}"] = lin.weight.grad.detach().cpu().numpy().T
            out[f"b{i}"] = lin.bias.grad.detach().cpu().numpy()
            if prelus and i <= len(prelus):
                out[f"alpha{i}"] = prelus[i - 1].weight.grad.detach().cpu().numpy().reshape(())
        return out
