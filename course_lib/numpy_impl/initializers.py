"""Weight initializers, in NumPy. Every one returns W of shape (fan_in, fan_out) for ``x @ W``.

Conventions (``../shared/DESIGN.md``, book chapter 2):

* Xavier/Glorot (Glorot & Bengio 2010): Var W = gain^2 * 2 / (fan_in + fan_out);
  normal std = gain * sqrt(2 / (fan_in + fan_out)), uniform limit = gain * sqrt(6 / (fan_in + fan_out)).
* He/Kaiming (He et al. 2015): Var W = gain^2 * 2 / fan_in (the 2 undoes ReLU halving the variance).
* LeCun: Var W = gain^2 / fan_in, the sqrt(1/n) rule some notes mislabel "Xavier".

Checked against the statistics of ``torch.nn.init`` in the tests. Randomness is always an
argument: pass an ``np.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


def _check(fan_in: int, fan_out: int) -> None:
    if int(fan_in) < 1 or int(fan_out) < 1:
        raise ValueError(f"fan_in and fan_out must be positive, got {fan_in}, {fan_out}")


def zeros(fan_in: int, fan_out: int, rng: np.random.Generator | None = None) -> Array:
    """W = 0. Every hidden unit then computes the same thing forever (chapter 2, symmetry)."""
    _check(fan_in, fan_out)
    return np.zeros((fan_in, fan_out))


def normal(fan_in: int, fan_out: int, std: float, rng: np.random.Generator) -> Array:
    """W ~ N(0, std^2), e.g. std = 0.01 as many older tutorials do."""
    _check(fan_in, fan_out)
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    return rng.normal(0.0, std, size=(fan_in, fan_out))


def uniform(fan_in: int, fan_out: int, limit: float, rng: np.random.Generator) -> Array:
    """W ~ U(-limit, limit)."""
    _check(fan_in, fan_out)
    if not limit >= 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def xavier_normal(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """W ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check(fan_in, fan_out)  # before the scale divides by a fan
    return normal(fan_in, fan_out, gain * np.sqrt(2.0 / (fan_in + fan_out)), rng)


def xavier_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (same variance as xavier_normal)."""
    _check(fan_in, fan_out)  # before the scale divides by a fan
    return uniform(fan_in, fan_out, gain * np.sqrt(6.0 / (fan_in + fan_out)), rng)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """W ~ N(0, std^2), std = gain * sqrt(2 / fan_in)."""
    _check(fan_in, fan_out)  # before the scale divides by a fan
    return normal(fan_in, fan_out, gain * np.sqrt(2.0 / fan_in), rng)


def he_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """W ~ U(-a, a), a = gain * sqrt(6 / fan_in)."""
    _check(fan_in, fan_out)  # before the scale divides by a fan
    return uniform(fan_in, fan_out, gain * np.sqrt(6.0 / fan_in), rng)


def lecun_normal(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """W ~ N(0, std^2), std = gain * sqrt(1 / fan_in) (LeCun et al. 1998)."""
    _check(fan_in, fan_out)  # before the scale divides by a fan
    return normal(fan_in, fan_out, gain * np.sqrt(1.0 / fan_in), rng)


def get(name: str, fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> Array:
    """Initialise by name: any function above, ``"normal:0.01"`` for N(0, 0.01^2) or
    ``"uniform:0.05"`` for U(-0.05, 0.05). ``gain`` multiplies the scale of the Xavier, He and
    LeCun rules."""
    if name.startswith("normal:"):
        return normal(fan_in, fan_out, float(name.split(":", 1)[1]), rng)
    if name.startswith("uniform:"):
        return uniform(fan_in, fan_out, float(name.split(":", 1)[1]), rng)
    if name == "zeros":
        return zeros(fan_in, fan_out, rng)
    table = {
        "xavier_normal": xavier_normal,
        "xavier_uniform": xavier_uniform,
        "he_normal": he_normal,
        "he_uniform": he_uniform,
        "lecun_normal": lecun_normal,
    }
    if name not in table:
        choices = sorted([*table, "zeros"])
        raise ValueError(
            f"unknown initializer {name!r}; choose from {choices}, 'normal:STD' or 'uniform:LIMIT'"
        )
    return table[name](fan_in, fan_out, rng, gain=gain)
