"""Weight initializers in PyTorch, same names as numpy_impl.initializers.

Called with (fan_in, fan_out, generator) they return a (fan_in, fan_out) tensor; called on an
``nn.Linear`` (``init_linear``) they fill its (out, in) weight in place, like ``torch.nn.init``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _normal(shape: tuple[int, int], std: float, generator: torch.Generator | None, dtype) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype) * std


def _uniform(shape: tuple[int, int], limit: float, generator: torch.Generator | None, dtype) -> Tensor:
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * limit


#: name -> (distribution, scale(fan_in, fan_out)) with scale the std or the uniform limit.
_RULES = {
    "xavier_normal": ("normal", lambda i, o: math.sqrt(2.0 / (i + o))),
    "xavier_uniform": ("uniform", lambda i, o: math.sqrt(6.0 / (i + o))),
    "he_normal": ("normal", lambda i, o: math.sqrt(2.0 / i)),
    "he_uniform": ("uniform", lambda i, o: math.sqrt(6.0 / i)),
    "lecun_normal": ("normal", lambda i, o: math.sqrt(1.0 / i)),
}


def get(
    name: str,
    fan_in: int,
    fan_out: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A (fan_in, fan_out) tensor: a name from ``_RULES``, ``"zeros"`` or ``"normal:STD"``."""
    shape = (int(fan_in), int(fan_out))
    if min(shape) < 1:
        raise ValueError(f"fan_in and fan_out must be positive, got {fan_in}, {fan_out}")
    if name == "zeros":
        return torch.zeros(shape, dtype=dtype)
    if name.startswith("normal:"):
        return _normal(shape, float(name.split(":", 1)[1]), generator, dtype)
    if name not in _RULES:
        raise ValueError(f"unknown initializer {name!r}; choose from {sorted(_RULES)}, 'zeros', 'normal:STD'")
    dist, scale = _RULES[name]
    make = _normal if dist == "normal" else _uniform
    return make(shape, scale(*shape), generator, dtype)


@torch.no_grad()
def init_linear(layer: nn.Linear, name: str, generator: torch.Generator | None = None) -> nn.Linear:
    """Fill ``layer.weight`` (out, in) in place with initializer ``name`` and zero the bias."""
    fan_out, fan_in = layer.weight.shape
    W = get(name, fan_in, fan_out, generator, layer.weight.dtype)
    layer.weight.copy_(W.T)
    if layer.bias is not None:
        layer.bias.zero_()
    return layer
