"""The schedules of ``numpy_impl.schedules`` as ``torch.optim.lr_scheduler.LambdaLR`` factories.

``exponential_decay(opt, decay_rate=0.96, decay_steps=100)`` returns a ``LambdaLR`` whose factor
at step t is ``numpy_impl.schedules.exponential_decay(t, 1.0, ...)``: the optimizer's own ``lr``
plays the part of ``lr0``. Call ``scheduler.step()`` once per unit the schedule counts: after
every mini-batch for a Keras-style schedule (``decay_steps`` in batches), after every epoch for
one counted in epochs. ``tests/test_schedules.py`` checks that they follow torch's own
``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``,
``CosineAnnealingWarmRestarts`` and ``LinearLR`` step for step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from course_lib.numpy_impl import schedules as S


def lambda_schedule(optimizer: Optimizer, factor: Callable[[int], float], last_epoch: int = -1) -> LambdaLR:
    """A ``LambdaLR`` with the multiplier ``factor(t)`` (any schedule above with lr0 = 1)."""
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def step_decay(optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> LambdaLR:
    """lr * gamma^floor(t / step_size), as ``StepLR``."""
    return lambda_schedule(
        optimizer, functools.partial(S.step_decay, lr0=1.0, step_size=step_size, gamma=gamma)
    )


def multistep_decay(optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> LambdaLR:
    """lr * gamma^(number of milestones <= t), as ``MultiStepLR``."""
    return lambda_schedule(
        optimizer, functools.partial(S.multistep_decay, lr0=1.0, milestones=tuple(milestones), gamma=gamma)
    )


def exponential_decay(
    optimizer: Optimizer, decay_rate: float, decay_steps: float, staircase: bool = False
) -> LambdaLR:
    """lr * decay_rate^(t / decay_steps), exponent floored with ``staircase`` (Keras ``ExponentialDecay``)."""
    return lambda_schedule(
        optimizer,
        functools.partial(
            S.exponential_decay, lr0=1.0, decay_rate=decay_rate, decay_steps=decay_steps, staircase=staircase
        ),
    )


def inverse_time_decay(
    optimizer: Optimizer, decay_rate: float, decay_steps: float = 1.0, staircase: bool = False
) -> LambdaLR:
    """lr / (1 + decay_rate * t / decay_steps), as Keras ``InverseTimeDecay``."""
    return lambda_schedule(
        optimizer,
        functools.partial(
            S.inverse_time_decay, lr0=1.0, decay_rate=decay_rate, decay_steps=decay_steps, staircase=staircase
        ),
    )


def cosine_decay(optimizer: Optimizer, decay_steps: int, alpha: float = 0.0) -> LambdaLR:
    """Half a cosine from lr to alpha * lr in ``decay_steps`` steps, then constant (Keras ``CosineDecay``)."""
    return lambda_schedule(
        optimizer, functools.partial(S.cosine_decay, lr0=1.0, decay_steps=decay_steps, alpha=alpha)
    )


def cosine_decay_restarts(
    optimizer: Optimizer, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0, alpha: float = 0.0
) -> LambdaLR:
    """SGDR / Keras ``CosineDecayRestarts``: unlike ``CosineAnnealingWarmRestarts`` it has ``m_mul``
    and accepts a non-integer ``t_mul``."""
    return lambda_schedule(
        optimizer,
        functools.partial(
            S.cosine_decay_restarts,
            lr0=1.0,
            first_decay_steps=first_decay_steps,
            t_mul=t_mul,
            m_mul=m_mul,
            alpha=alpha,
        ),
    )


def linear_warmup(optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.0) -> LambdaLR:
    """From start_factor * lr to lr in ``warmup_steps`` steps, then constant, as ``LinearLR``."""
    return lambda_schedule(
        optimizer,
        functools.partial(S.linear_warmup, lr0=1.0, warmup_steps=warmup_steps, start_factor=start_factor),
    )


def with_warmup(
    optimizer: Optimizer, factor: Callable[[int], float], warmup_steps: int, start_factor: float = 0.0
) -> LambdaLR:
    """A linear warm-up over ``warmup_steps`` steps, then the multiplier ``factor`` (a schedule with
    lr0 = 1) from its beginning: ``numpy_impl.schedules.with_warmup`` as a ``LambdaLR``."""
    return lambda_schedule(optimizer, S.with_warmup(factor, warmup_steps, start_factor))
