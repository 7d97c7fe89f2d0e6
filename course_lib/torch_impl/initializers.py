"""Weight initializers in PyTorch, with the names of ``numpy_impl.initializers``.

Two ways to call them:

* ``get(name, fan_in, fan_out, generator)`` returns a new (fan_in, fan_out) tensor, the layout of
  the NumPy initializers (``x @ W``);
* ``xavier_normal(layer, generator)``, ``he_uniform(layer, generator)``, ... fill an ``nn.Linear``
  (or a weight tensor) **in place**, like ``torch.nn.init.xavier_normal_``: the weight is
  (out_features, in_features), so fan_in is its *second* dimension. A layer's bias is set to
  zero. ``init_linear(layer, name, generator)`` does the same by name.

Scales (DESIGN.md, book chapter 2): Xavier normal std = gain * sqrt(2 / (fan_in + fan_out)),
uniform limit gain * sqrt(6 / (fan_in + fan_out)); He normal std = gain * sqrt(2 / fan_in),
uniform limit gain * sqrt(6 / fan_in); LeCun normal std = gain * sqrt(1 / fan_in). They equal
``torch.nn.init``'s ``xavier_*_(gain=gain)``, ``kaiming_*_(nonlinearity="relu")`` and
``kaiming_normal_(nonlinearity="linear")``, which the tests check. Draws come from ``generator``
(a ``torch.Generator``) on the generator's device, or on the weight's device when there is none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

#: name -> (distribution, scale(fan_in, fan_out)) with scale the std or the uniform limit (gain 1).
_RULES: dict[str, tuple[str, Callable[[int, int], float]]] = {
    "xavier_normal": ("normal", lambda i, o: math.sqrt(2.0 / (i + o))),
    "xavier_uniform": ("uniform", lambda i, o: math.sqrt(6.0 / (i + o))),
    "he_normal": ("normal", lambda i, o: math.sqrt(2.0 / i)),
    "he_uniform": ("uniform", lambda i, o: math.sqrt(6.0 / i)),
    "lecun_normal": ("normal", lambda i, o: math.sqrt(1.0 / i)),
}


def _device(generator: torch.Generator | None, device: str | torch.device | None) -> torch.device:
    if generator is not None:  # a generator draws on its own device
        return torch.device(generator.device)
    return torch.device(device or "cpu")


def _normal(shape, std: float, generator, dtype, device) -> Tensor:
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    return torch.randn(shape, generator=generator, dtype=dtype, device=_device(generator, device)) * std


def _uniform(shape, limit: float, generator, dtype, device) -> Tensor:
    if not limit >= 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    # U[0, 1) -> U[-limit, limit)
    u = torch.rand(shape, generator=generator, dtype=dtype, device=_device(generator, device))
    return (u * 2 - 1) * limit


def _shape(fan_in: int, fan_out: int) -> tuple[int, int]:
    shape = (int(fan_in), int(fan_out))
    if min(shape) < 1:
        raise ValueError(f"fan_in and fan_out must be positive, got {fan_in}, {fan_out}")
    return shape


def get(
    name: str,
    fan_in: int,
    fan_out: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    gain: float = 1.0,
    device: str | torch.device | None = None,
) -> Tensor:
    """A new (fan_in, fan_out) tensor: a name from ``_RULES``, ``"zeros"``, ``"normal:STD"`` or
    ``"uniform:LIMIT"``. ``gain`` multiplies the scale of the named rules."""
    shape = _shape(fan_in, fan_out)
    if name == "zeros":
        return torch.zeros(shape, dtype=dtype, device=_device(generator, device))
    if name.startswith("normal:"):
        return _normal(shape, float(name.split(":", 1)[1]), generator, dtype, device)
    if name.startswith("uniform:"):
        return _uniform(shape, float(name.split(":", 1)[1]), generator, dtype, device)
    if name not in _RULES:
        choices = f"{sorted(_RULES)}, 'zeros', 'normal:STD', 'uniform:LIMIT'"
        raise ValueError(f"unknown initializer {name!r}; choose from {choices}")
    dist, scale = _RULES[name]
    make = _normal if dist == "normal" else _uniform
    return make(shape, gain * scale(*shape), generator, dtype, device)


Target = nn.Linear | Tensor


@torch.no_grad()
def _fill(target: Target, name: str, generator: torch.Generator | None, gain: float = 1.0) -> Target:
    """Fill ``target``'s (out, in) weight in place with initializer ``name``; zero a layer's bias."""
    weight = target.weight if isinstance(target, nn.Linear) else target
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError(f"expected an nn.Linear or a 2-D (out, in) weight, got {type(target).__name__}")
    fan_out, fan_in = weight.shape  # torch layout: (out_features, in_features)
    device = generator.device if generator is not None else weight.device
    W = get(name, fan_in, fan_out, generator, weight.dtype, gain, device)  # (fan_in, fan_out)
    weight.copy_(W.T)
    if isinstance(target, nn.Linear) and target.bias is not None:
        target.bias.zero_()
    return target


def zeros(target: Target) -> Target:
    """W = 0 in place (and b = 0 for a layer): every unit then computes the same thing."""
    return _fill(target, "zeros", None)


def normal(target: Target, std: float, generator: torch.Generator | None = None) -> Target:
    """W ~ N(0, std^2) in place, e.g. std = 0.01 as many older tutorials do."""
    return _fill(target, f"normal:{float(std)!r}", generator)


def uniform(target: Target, limit: float, generator: torch.Generator | None = None) -> Target:
    """W ~ U(-limit, limit) in place."""
    return _fill(target, f"uniform:{float(limit)!r}", generator)


def xavier_normal(target: Target, generator: torch.Generator | None = None, gain: float = 1.0) -> Target:
    """W ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)), in place (``nn.init.xavier_normal_``)."""
    return _fill(target, "xavier_normal", generator, gain)


def xavier_uniform(target: Target, generator: torch.Generator | None = None, gain: float = 1.0) -> Target:
    """W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)), in place (``nn.init.xavier_uniform_``)."""
    return _fill(target, "xavier_uniform", generator, gain)


def he_normal(target: Target, generator: torch.Generator | None = None, gain: float = 1.0) -> Target:
    """W ~ N(0, std^2), std = gain * sqrt(2 / fan_in), in place (``kaiming_normal_(nonlinearity="relu")``)."""
    return _fill(target, "he_normal", generator, gain)


def he_uniform(target: Target, generator: torch.Generator | None = None, gain: float = 1.0) -> Target:
    """W ~ U(-a, a), a = gain * sqrt(6 / fan_in), in place (``kaiming_uniform_(nonlinearity="relu")``)."""
    return _fill(target, "he_uniform", generator, gain)


def lecun_normal(target: Target, generator: torch.Generator | None = None, gain: float = 1.0) -> Target:
    """W ~ N(0, std^2), std = gain * sqrt(1 / fan_in), in place (``kaiming_normal_``, ``"linear"``)."""
    return _fill(target, "lecun_normal", generator, gain)


def init_linear(layer: nn.Linear, name: str, generator: torch.Generator | None = None) -> nn.Linear:
    """Fill ``layer.weight`` (out, in) in place with initializer ``name`` and zero the bias.

    ``name`` is anything ``get`` accepts; the draws are those of ``get(name, in, out)``, transposed.
    """
    return _fill(layer, name, generator)
