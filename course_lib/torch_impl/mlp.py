"""The MLP of numpy_impl.mlp as a ``torch.nn.Module`` (autograd does the backward).

The same regularization options as the NumPy MLP: ``dropout`` (our ``layers.Dropout``, i.e.
``nn.Dropout`` drawing from a generator) after every hidden activation and ``input_dropout``
before the first layer; ``l1``/``l2`` penalties on the weights (``penalty()``, which
``training.fit`` adds to the loss); ``max_norm`` on every unit's incoming weights
(``apply_constraints()``, which ``training.fit`` calls after each optimizer step).

``batchnorm`` as in the NumPy MLP: ``nn.BatchNorm1d`` between ``Linear`` (then without bias) and
the activation (True or ``"before"``), or after the activation (``"after"``). Its running
averages follow ``model.train()`` / ``model.eval()``, as every torch module's do. ``norm`` as in
the NumPy MLP: ``"batch"`` (= ``batchnorm=True``), ``"layer"`` (``nn.LayerNorm``, the Linear
without bias) or ``"rms"`` (``nn.RMSNorm``, the Linear keeps its bias), between Linear and the
activation.

``residual=True`` as in the NumPy MLP: a ``Skip`` module (x + layer(x)) around every hidden layer
after the first whose input and output widths agree; dropout follows the sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from course_lib.numpy_impl.mlp import (
    DEFAULT_INIT,
    check_options,
    dropout_rates,
    norm_options,
    norm_replaces_bias,
    residual_layers,
)
from course_lib.torch_impl import regularization
from course_lib.torch_impl.activations import MODULES
from course_lib.torch_impl.initializers import init_linear
from course_lib.torch_impl.layers import Dropout


class Skip(nn.Sequential):
    """x + layers(x): an identity skip around a hidden layer (``MLP(residual=True)``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


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
        dropout: float | Sequence[float] = 0.0,
        input_dropout: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        max_norm: float | None = None,
        batchnorm: bool | str = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        residual: bool = False,
        norm: str | None = None,
        norm_eps: float | None = None,
    ) -> None:
        super().__init__()
        check_options(sizes, input_dropout, l1, l2, max_norm)  # the NumPy MLP's checks
        if activation not in MODULES:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(MODULES)}")
        rates = dropout_rates(dropout, len(sizes) - 2)
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        self.sizes, self.activation = [int(s) for s in sizes], activation
        self.init = init or DEFAULT_INIT[activation]
        self.dropout, self.input_dropout = rates, float(input_dropout)
        self.l1, self.l2, self.max_norm = float(l1), float(l2), max_norm
        self.norm, self.batchnorm, self.norm_eps = norm_options(norm, batchnorm, norm_eps)
        self.residual = bool(residual)
        self.skips = residual_layers(self.sizes) if self.residual else []
        # Dropout masks come from their own generator, seeded from ``generator`` after the weights.
        n_hidden = len(self.sizes) - 2
        linears = [
            init_linear(
                nn.Linear(
                    fan_in,
                    fan_out,
                    bias=not (i < n_hidden and norm_replaces_bias(self.norm, self.batchnorm)),
                    dtype=dtype,
                ),
                self.init,
                generator,
            )
            for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        ]
        drop_gen = None
        if self.has_dropout and generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            drop_gen = torch.Generator(device=device).manual_seed(seed)
        modules: list[nn.Module] = [Dropout(self.input_dropout, drop_gen)] if self.input_dropout else []
        for i, linear in enumerate(linears):
            if i == len(rates):  # the output layer
                modules.append(linear)
                break
            # a hidden layer: linear, [norm], activation, [batch norm] (with a skip around them
            # when residual), then dropout
            width = linear.out_features
            norm_layer: list[nn.Module] = []
            if self.norm == "batch":
                norm_layer = [nn.BatchNorm1d(width, eps=bn_eps, momentum=bn_momentum, dtype=dtype)]
            elif self.norm == "layer":
                norm_layer = [nn.LayerNorm(width, eps=self.norm_eps, dtype=dtype)]
            elif self.norm == "rms":
                norm_layer = [nn.RMSNorm(width, eps=self.norm_eps, dtype=dtype)]
            after = self.batchnorm == "after"
            layer = [linear] + ([] if after else norm_layer)
            layer += [MODULES[activation]().to(dtype)] + (norm_layer if after else [])
            modules += [Skip(*layer)] if i + 1 in self.skips else layer
            if rates[i] > 0:
                modules.append(Dropout(rates[i], drop_gen))
        self.net = nn.Sequential(*modules).to(device)

    @property
    def has_dropout(self) -> bool:
        """True when some layer drops units in training."""
        return self.input_dropout > 0 or any(p > 0 for p in self.dropout)

    def penalty(self) -> Tensor:
        """l1 * sum |W| + (l2 / 2) * sum W^2 over the weight matrices (a 0-d tensor, 0 without)."""
        total = torch.zeros((), dtype=self.linears[0].weight.dtype, device=self.linears[0].weight.device)
        if self.l1 or self.l2:
            for lin in self.linears:
                total = total + regularization.elastic_net_penalty(lin.weight, self.l1, self.l2)
        return total

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Rescale, in place, every unit's incoming weights that are longer than ``max_norm``."""
        if self.max_norm is not None:
            for lin in self.linears:
                regularization.max_norm_linear_(lin, self.max_norm)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net.modules() if isinstance(m, nn.Linear)]

    @property
    def batchnorms(self) -> list[nn.BatchNorm1d]:
        return [m for m in self.net.modules() if isinstance(m, nn.BatchNorm1d)]

    @property
    def norms(self) -> list[nn.Module]:
        """The normalization modules (BatchNorm1d, LayerNorm or RMSNorm), one per hidden layer."""
        kinds = (nn.BatchNorm1d, nn.LayerNorm, nn.RMSNorm)
        return [m for m in self.net.modules() if isinstance(m, kinds)]

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) for inputs (N, D)."""
        return self.net(x)

    @torch.no_grad()
    def load_numpy_params(
        self, params: dict[str, np.ndarray], buffers: dict[str, np.ndarray] | None = None
    ) -> MLP:
        """Copy the weights of a ``numpy_impl.mlp.MLP`` (W is (in, out) there, (out, in) here), and
        its batch-norm running averages when ``buffers`` (its ``.buffers``) is given."""
        prelus = [m for m in self.net.modules() if isinstance(m, nn.PReLU)]
        norms = self.norms
        for i, lin in enumerate(self.linears, start=1):
            lin.weight.copy_(torch.as_tensor(params[f"W{i}"].T))
            if lin.bias is not None:
                lin.bias.copy_(torch.as_tensor(params[f"b{i}"]))
            if prelus and i <= len(prelus):
                prelus[i - 1].weight.fill_(float(params[f"alpha{i}"]))
            if norms and i <= len(norms):
                norm = norms[i - 1]
                norm.weight.copy_(torch.as_tensor(params[f"gamma{i}"]))
                if getattr(norm, "bias", None) is not None:  # RMSNorm has no shift
                    norm.bias.copy_(torch.as_tensor(params[f"beta{i}"]))
                if buffers is not None and isinstance(norm, nn.BatchNorm1d):
                    norm.running_mean.copy_(torch.as_tensor(buffers[f"running_mean{i}"]))
                    norm.running_var.copy_(torch.as_tensor(buffers[f"running_var{i}"]))
        return self

    def numpy_buffers(self) -> dict[str, np.ndarray]:
        """The batch-norm running averages, named as the NumPy MLP's ``buffers``."""
        out: dict[str, np.ndarray] = {}
        for i, bn in enumerate(self.batchnorms, start=1):
            out[f"running_mean{i}"] = bn.running_mean.detach().cpu().numpy().copy()
            out[f"running_var{i}"] = bn.running_var.detach().cpu().numpy().copy()
        return out

    def numpy_grads(self) -> dict[str, np.ndarray]:
        """The gradients after ``backward()``, named and laid out as the NumPy MLP's."""
        out: dict[str, np.ndarray] = {}
        prelus = [m for m in self.net.modules() if isinstance(m, nn.PReLU)]
        norms = self.norms
        for i, lin in enumerate(self.linears, start=1):
            out[f"W{i}"] = lin.weight.grad.detach().cpu().numpy().T
            if lin.bias is not None:
                out[f"b{i}"] = lin.bias.grad.detach().cpu().numpy()
            if prelus and i <= len(prelus):
                out[f"alpha{i}"] = prelus[i - 1].weight.grad.detach().cpu().numpy().reshape(())
            if norms and i <= len(norms):
                out[f"gamma{i}"] = norms[i - 1].weight.grad.detach().cpu().numpy()
                if getattr(norms[i - 1], "bias", None) is not None:
                    out[f"beta{i}"] = norms[i - 1].bias.grad.detach().cpu().numpy()
        return out
