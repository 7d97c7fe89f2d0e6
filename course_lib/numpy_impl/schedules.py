"""Learning-rate schedules: the learning rate as a function of the step t = 0, 1, 2, ...

Every schedule takes the step (an int, or an array of steps for a plot) and the initial rate
``lr0`` first and returns the rate for that step (a float, or an array). A "step" is whatever the
caller counts: mini-batches (Keras and TF1 schedules) or epochs (most PyTorch examples).

* ``step_decay`` = ``torch.optim.lr_scheduler.StepLR``; ``multistep_decay`` = ``MultiStepLR``;
* ``exponential_decay`` = Keras ``ExponentialDecay`` / TF1 ``tf.train.exponential_decay``:
  lr0 * rate^(t / decay_steps), the exponent floored with ``staircase`` (without it, ``ExponentialLR``
  with gamma = rate^(1 / decay_steps));
* ``inverse_time_decay`` = Keras ``InverseTimeDecay``: lr0 / (1 + rate * t / decay_steps);
* ``cosine_decay`` = Keras ``CosineDecay`` = ``CosineAnnealingLR`` up to ``decay_steps``;
* ``cosine_decay_restarts`` = SGDR (Loshchilov and Hutter) = Keras ``CosineDecayRestarts`` =
  ``CosineAnnealingWarmRestarts`` when ``m_mul = 1`` and ``t_mul`` is an integer;
* ``linear_warmup`` and ``with_warmup``: a linear ramp over the first steps (Goyal et al.).

``tests/test_schedules.py`` checks them against the torch schedulers, and against closed-form
values where torch has none; book chapter 5 plots and explains them. ``torch_impl.schedules``
wraps each one as a ``LambdaLR``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

Steps = int | ArrayLike
Schedule = Callable[[Steps], "float | np.ndarray"]


def _steps(step: Steps) -> np.ndarray:
    t = np.asarray(step, dtype=np.float64)
    if np.any(t < 0) or np.any(t != np.floor(t)):
        raise ValueError(f"steps are counted 0, 1, 2, ...; got {step}")
    return t


def _out(step: Steps, value: np.ndarray) -> float | np.ndarray:
    """A Python float for a scalar step, an array for an array of steps."""
    return float(value) if np.ndim(step) == 0 else value


def _positive(**kw: float) -> None:
    for name, value in kw.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def step_decay(step: Steps, lr0: float, step_size: int, gamma: float = 0.1) -> float | np.ndarray:
    """lr0 * gamma^floor(t / step_size): divide by 1/gamma every ``step_size`` steps (StepLR)."""
    _positive(step_size=step_size)
    t = _steps(step)
    return _out(step, lr0 * gamma ** np.floor(t / step_size))


def multistep_decay(
    step: Steps, lr0: float, milestones: Sequence[int], gamma: float = 0.1
) -> float | np.ndarray:
    """lr0 * gamma^(number of milestones <= t) (MultiStepLR).

    Keras's ``PiecewiseConstantDecay(boundaries, values)`` switches one step later: its value i
    holds for boundaries[i-1] < t <= boundaries[i], so ``milestones = [b + 1 for b in boundaries]``.
    """
    t = _steps(step)
    ms = sorted(int(m) for m in milestones)
    passed = np.vectorize(lambda s: bisect.bisect_right(ms, s), otypes=[np.float64])(t)
    return _out(step, lr0 * gamma**passed)


def exponential_decay(
    step: Steps, lr0: float, decay_rate: float, decay_steps: float, staircase: bool = False
) -> float | np.ndarray:
    """lr0 * decay_rate^(t / decay_steps); with ``staircase`` the exponent is floor(t / decay_steps).

    The rate is multiplied by ``decay_rate`` every ``decay_steps`` steps, smoothly or at once.
    1 / (1 + k t) is *inverse-time* decay, not this one.
    """
    _positive(decay_steps=decay_steps, decay_rate=decay_rate)
    p = _steps(step) / decay_steps
    if staircase:
        p = np.floor(p)
    return _out(step, lr0 * decay_rate**p)


def inverse_time_decay(
    step: Steps, lr0: float, decay_rate: float, decay_steps: float = 1.0, staircase: bool = False
) -> float | np.ndarray:
    """lr0 / (1 + decay_rate * t / decay_steps) (floor of t / decay_steps with ``staircase``).

    With decay_steps = 1 this is lr0 / (1 + k t): the rate falls like 1/t, the decay under which
    SGD provably converges on convex problems (sum lr = inf, sum lr^2 < inf).
    """
    _positive(decay_steps=decay_steps)
    p = _steps(step) / decay_steps
    if staircase:
        p = np.floor(p)
    return _out(step, lr0 / (1.0 + decay_rate * p))


def cosine_decay(step: Steps, lr0: float, decay_steps: int, alpha: float = 0.0) -> float | np.ndarray:
    """lr0 * (alpha + (1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2), T = decay_steps.

    Half a cosine from lr0 down to alpha * lr0 in T steps, then constant (Keras ``CosineDecay``;
    ``CosineAnnealingLR(T_max=T, eta_min=alpha * lr0)`` for t <= T, after which torch's rises again).
    """
    _positive(decay_steps=decay_steps)
    t = np.minimum(_steps(step), decay_steps)
    return _out(step, lr0 * (alpha + (1.0 - alpha) * 0.5 * (1.0 + np.cos(np.pi * t / decay_steps))))


def restart_cycle(step: Steps, first_decay_steps: float, t_mul: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(i, fraction): the index i = 0, 1, ... of the cycle that step t falls in, and how far into
    that cycle it is, in [0, 1). Cycle i lasts T_i = first_decay_steps * t_mul^i steps."""
    _positive(first_decay_steps=first_decay_steps)
    if not t_mul >= 1.0:
        raise ValueError(f"t_mul is how much longer each cycle is than the last, >= 1; got {t_mul}")
    u = _steps(step) / first_decay_steps  # the time in units of the first cycle
    if t_mul == 1.0:
        i = np.floor(u)
        return i, u - i

    def start(k):  # where cycle k begins: 1 + t_mul + ... + t_mul^(k-1)
        return (t_mul**k - 1.0) / (t_mul - 1.0)

    with np.errstate(divide="ignore"):
        i = np.floor(np.log1p(u * (t_mul - 1.0)) / np.log(t_mul))
    i = np.maximum(i, 0.0)
    i = np.where(u < start(i), i - 1, i)  # the logarithm can land a rounding error on either side
    i = np.where(u >= start(i + 1), i + 1, i)
    return i, (u - start(i)) / t_mul**i


def cosine_decay_restarts(
    step: Steps,
    lr0: float,
    first_decay_steps: int,
    t_mul: float = 2.0,
    m_mul: float = 1.0,
    alpha: float = 0.0,
) -> float | np.ndarray:
    """Cosine decay with warm restarts (SGDR): lr0 * (alpha + (1 - alpha) * m_mul^i * (1 + cos(pi f)) / 2),
    f = the fraction of cycle i done. Cycle i lasts first_decay_steps * t_mul^i steps.

    At the start of each cycle the rate jumps back up, to m_mul^i * lr0 (plus the floor): Keras's
    ``CosineDecayRestarts(lr0, first_decay_steps, t_mul, m_mul, alpha)``. With m_mul = 1 and an
    integer t_mul it is ``CosineAnnealingWarmRestarts(T_0=first_decay_steps, T_mult=t_mul,
    eta_min=alpha * lr0)``, SGDR's (T_0, T_mult, eta_min).
    """
    i, frac = restart_cycle(step, first_decay_steps, t_mul)
    cosine = 0.5 * m_mul**i * (1.0 + np.cos(np.pi * frac))
    return _out(step, lr0 * ((1.0 - alpha) * cosine + alpha))


def linear_warmup(
    step: Steps, lr0: float, warmup_steps: int, start_factor: float = 0.0
) -> float | np.ndarray:
    """lr0 * (s + (1 - s) * min(t, W) / W), s = start_factor, W = warmup_steps: a straight line from
    s * lr0 at t = 0 to lr0 at t = W, then constant (``LinearLR(start_factor, 1.0, W)``)."""
    _positive(warmup_steps=warmup_steps)
    t = np.minimum(_steps(step), warmup_steps)
    return _out(step, lr0 * (start_factor + (1.0 - start_factor) * t / warmup_steps))


def with_warmup(schedule: Schedule, warmup_steps: int, start_factor: float = 0.0) -> Schedule:
    """A schedule that ramps linearly to ``schedule(0)`` over ``warmup_steps`` steps, then follows
    ``schedule`` shifted by ``warmup_steps`` (so that it starts from its beginning).

    ``schedule`` is a function of the step alone, e.g.
    ``functools.partial(cosine_decay, lr0=0.1, decay_steps=1000)``.
    """
    _positive(warmup_steps=warmup_steps)

    def warmed(step: Steps) -> float | np.ndarray:
        t = _steps(step)
        ramp = linear_warmup(t, 1.0, warmup_steps, start_factor) * schedule(np.zeros_like(t))
        after = schedule(np.maximum(t - warmup_steps, 0.0))
        return _out(step, np.where(t < warmup_steps, ramp, after))

    return warmed


#: Name -> schedule, for pages and configuration files.
SCHEDULES = {
    "step_decay": step_decay,
    "multistep_decay": multistep_decay,
    "exponential_decay": exponential_decay,
    "inverse_time_decay": inverse_time_decay,
    "cosine_decay": cosine_decay,
    "cosine_decay_restarts": cosine_decay_restarts,
    "linear_warmup": linear_warmup,
}
