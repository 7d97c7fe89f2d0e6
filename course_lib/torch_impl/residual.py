"""Residual blocks, a residual MLP and a split-and-merge module, as ``torch.nn.Module`` s.

``ResidualBlock`` and ``ResidualMLP`` are ``numpy_impl.residual``'s block and network
(out = x + F(x), F = act -> Linear -> act -> Linear, the pre-activation block of He et al. 2016
without batch norm); autograd does the backward. ``SplitMerge`` is the other LEGO move of book
chapter 7: the input goes through parallel branches whose outputs are concatenated (as an
Inception module, Szegedy et al. 2015) or summed. Parity with the NumPy code (same weights ->
same outputs and gradients in float64) is tested in ``tests/test_residual.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from course_lib.numpy_impl.mlp import DEFAULT_INIT
from course_lib.numpy_impl.residual import _check_activation
from course_lib.torch_impl.activations import MODULES
from course_lib.torch_impl.initializers import init_linear


def _generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    return torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator


class ResidualBlock(nn.Module):
    """out = x + F(x), F(x) = Linear2(act(Linear1(act(x)))). x (N, H) -> (N, H).

    ``hidden`` is the width M of the inner layer (default H); ``skip=False`` gives F(x) alone;
    ``zero_last=True`` zeroes Linear2 so that the block starts as the identity.
    """

    def __init__(
        self,
        width: int,
        activation: str = "relu",
        init: str | None = None,
        generator: torch.Generator | int | None = 0,
        hidden: int | None = None,
        skip: bool = True,
        zero_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        generator = _generator(generator)
        init = init or DEFAULT_INIT[activation]
        hidden = hidden or width
        self.skip = skip
        self.act = MODULES[activation]()
        self.linear1 = init_linear(nn.Linear(width, hidden, dtype=dtype), init, generator)
        self.linear2 = init_linear(nn.Linear(hidden, width, dtype=dtype), init, generator)
        if zero_last:
            with torch.no_grad():
                self.linear2.weight.zero_()

    def residual(self, x: Tensor) -> Tensor:
        """F(x), the branch the block adds to its input."""
        return self.linear2(self.act(self.linear1(self.act(x))))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x) if self.skip else self.residual(x)


class ResidualMLP(nn.Module):
    """Linear (D, H) -> n_blocks ``ResidualBlock`` s -> act -> Linear (H, C): logits (N, C).

    The weights are drawn in the NumPy ``ResidualMLP`` 's order and by the same initializers;
    ``load_numpy_params`` copies a NumPy model's weights in, ``numpy_grads`` reads the gradients
    out under the NumPy names.
    """

    def __init__(
        self,
        n_inputs: int,
        width: int,
        n_classes: int,
        n_blocks: int,
        activation: str = "relu",
        init: str | None = None,
        generator: torch.Generator | int | None = 0,
        skip: bool = True,
        zero_last: bool = False,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        _check_activation(activation)
        generator = _generator(generator)
        init = init or DEFAULT_INIT[activation]
        self.stem = init_linear(nn.Linear(n_inputs, width, dtype=dtype), init, generator)
        self.blocks = nn.ModuleList(
            ResidualBlock(width, activation, init, generator, skip=skip, zero_last=zero_last, dtype=dtype)
            for _ in range(n_blocks)
        )
        self.act = MODULES[activation]()
        self.head = init_linear(nn.Linear(width, n_classes, dtype=dtype), init, generator)
        self.to(device)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)  # (N, H)
        for block in self.blocks:
            h = block(h)
        return self.head(self.act(h))  # (N, C)

    def linears(self) -> list[tuple[str, nn.Linear]]:
        """(NumPy name, layer) for every Linear in network order."""
        out = [("0", self.stem)]
        for k, block in enumerate(self.blocks, start=1):
            out += [(f"{k}_1", block.linear1), (f"{k}_2", block.linear2)]
        return [*out, ("out", self.head)]

    @torch.no_grad()
    def load_numpy_params(self, params: dict[str, np.ndarray]) -> ResidualMLP:
        """Copy a NumPy ``ResidualMLP`` 's params (W is (in, out) there, (out, in) here)."""
        for name, lin in self.linears():
            lin.weight.copy_(torch.as_tensor(params[f"W{name}"].T))
            lin.bias.copy_(torch.as_tensor(params[f"b{name}"]))
        return self

    def numpy_grads(self) -> dict[str, np.ndarray]:
        """The gradients after ``backward()``, named and laid out as the NumPy model's."""
        out: dict[str, np.ndarray] = {}
        for name, lin in self.linears():
            out[f"W{name}"] = lin.weight.grad.detach().cpu().numpy().T
            out[f"b{name}"] = lin.bias.grad.detach().cpu().numpy()
        return out


class SplitMerge(nn.Module):
    """Split the input into parallel branches and merge their outputs: concatenate or sum.

    ``branches`` are modules taking (N, D); ``merge="concat"`` returns (N, sum of their widths),
    as an Inception module stacks its 1x1, 3x3 and 5x5 branches; ``merge="sum"`` needs equal
    widths and returns their sum (a residual block is the sum of an identity branch and F).
    """

    def __init__(self, branches: Sequence[nn.Module], merge: str = "concat") -> None:
        super().__init__()
        if merge not in ("concat", "sum"):
            raise ValueError(f"merge is 'concat' or 'sum', got {merge!r}")
        if not branches:
            raise ValueError("SplitMerge needs at least one branch")
        self.branches = nn.ModuleList(branches)
        self.merge = merge

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        shapes = {tuple(o.shape) for o in outs}
        if len(shapes) != 1:
            raise ValueError(f"merge='sum' needs branches of one shape, got {sorted(shapes)}")
        return torch.stack(outs).sum(dim=0)
