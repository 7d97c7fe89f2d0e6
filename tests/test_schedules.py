"""Learning-rate schedules, NumPy functions and torch ``LambdaLR`` factories; schedules in ``fit``.

* against torch's schedulers, step by step over 200 steps: ``step_decay`` = ``StepLR``,
  ``multistep_decay`` = ``MultiStepLR``, ``exponential_decay`` = ``ExponentialLR`` (gamma =
  rate^(1/decay_steps)) and, with ``staircase``, ``StepLR``; ``cosine_decay`` =
  ``CosineAnnealingLR`` up to T_max; ``cosine_decay_restarts`` = ``CosineAnnealingWarmRestarts``
  (T_mult 1, 2, 3, with eta_min); ``linear_warmup`` = ``LinearLR``;
* where torch has no scheduler, closed-form values: inverse-time decay; cosine restarts with
  ``m_mul`` and a non-integer ``t_mul`` against Keras's ``CosineDecayRestarts`` algorithm
  (written out here as Keras computes it), and the restart points;
* the ``torch_impl.schedules`` factories give the NumPy values on a real optimizer;
* Hypothesis properties: decays never increase and stay in [alpha lr0, lr0]; arrays and scalars
  agree; a warm-up is continuous where it hands over; bad arguments are refused;
* ``fit(schedule=...)``: per step and per epoch, NumPy functions and torch ``LambdaLR``, the same
  history on both backends, and ``History.lr``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from torch.optim import lr_scheduler as L

from course_lib.numpy_impl import schedules as S
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.optimizers import SGD
from course_lib.torch_impl import schedules as TS
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

T = np.arange(200)
LR0 = 0.1


def torch_lrs(make, n: int = 200, lr: float = LR0) -> np.ndarray:
    """The learning rate of each of n steps under the scheduler ``make(optimizer)``."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


# ----------------------------------------------------------------------- against torch.optim


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda t: S.step_decay(t, LR0, 30, 0.5), lambda o: L.StepLR(o, 30, 0.5)),
        (lambda t: S.step_decay(t, LR0, 7), lambda o: L.StepLR(o, 7)),
        (
            lambda t: S.multistep_decay(t, LR0, [90, 20, 50], 0.3),
            lambda o: L.MultiStepLR(o, [20, 50, 90], 0.3),
        ),
        (lambda t: S.exponential_decay(t, LR0, 0.9, 7), lambda o: L.ExponentialLR(o, 0.9 ** (1 / 7))),
        (lambda t: S.exponential_decay(t, LR0, 0.5, 25, staircase=True), lambda o: L.StepLR(o, 25, 0.5)),
        (
            lambda t: S.cosine_decay_restarts(t, LR0, 10, 2.0, alpha=0.02),
            lambda o: L.CosineAnnealingWarmRestarts(o, 10, 2, eta_min=0.02 * LR0),
        ),
        (lambda t: S.cosine_decay_restarts(t, LR0, 7, 1.0), lambda o: L.CosineAnnealingWarmRestarts(o, 7, 1)),
        (lambda t: S.cosine_decay_restarts(t, LR0, 5, 3.0), lambda o: L.CosineAnnealingWarmRestarts(o, 5, 3)),
        (lambda t: S.linear_warmup(t, LR0, 25, 0.1), lambda o: L.LinearLR(o, 0.1, 1.0, 25)),
    ],
    ids=[
        "StepLR",
        "StepLR-default-gamma",
        "MultiStepLR",
        "ExponentialLR",
        "staircase=StepLR",
        "WarmRestarts-Tmult2-eta_min",
        "WarmRestarts-Tmult1",
        "WarmRestarts-Tmult3",
        "LinearLR",
    ],
)
def test_numpy_schedule_equals_torch_scheduler(ours, theirs):
    assert_allclose(ours(T), torch_lrs(theirs), rtol=1e-12, atol=1e-16)


def test_cosine_decay_equals_cosine_annealing_up_to_t_max_then_stays():
    ref = torch_lrs(lambda o: L.CosineAnnealingLR(o, 150, eta_min=0.01 * LR0))
    ours = S.cosine_decay(T, LR0, 150, alpha=0.01)
    assert_allclose(ours[:151], ref[:151], rtol=1e-12, atol=1e-16)
    assert_allclose(ours[150:], 0.01 * LR0, rtol=1e-12)  # Keras's CosineDecay holds the floor
    assert ref[199] > ref[151]  # where torch's cosine rises again


@pytest.mark.parametrize(
    "factory, function",
    [
        (lambda o: TS.step_decay(o, 30, 0.5), functools.partial(S.step_decay, step_size=30, gamma=0.5)),
        (
            lambda o: TS.multistep_decay(o, [20, 50], 0.3),
            functools.partial(S.multistep_decay, milestones=[20, 50], gamma=0.3),
        ),
        (
            lambda o: TS.exponential_decay(o, 0.96, 10, staircase=True),
            functools.partial(S.exponential_decay, decay_rate=0.96, decay_steps=10, staircase=True),
        ),
        (
            lambda o: TS.inverse_time_decay(o, 0.5, 10),
            functools.partial(S.inverse_time_decay, decay_rate=0.5, decay_steps=10),
        ),
        (
            lambda o: TS.cosine_decay(o, 120, 0.1),
            functools.partial(S.cosine_decay, decay_steps=120, alpha=0.1),
        ),
        (
            lambda o: TS.cosine_decay_restarts(o, 10, 1.5, 0.7, 0.05),
            functools.partial(
                S.cosine_decay_restarts, first_decay_steps=10, t_mul=1.5, m_mul=0.7, alpha=0.05
            ),
        ),
        (lambda o: TS.linear_warmup(o, 15), functools.partial(S.linear_warmup, warmup_steps=15)),
        (
            lambda o: TS.with_warmup(o, functools.partial(S.cosine_decay, lr0=1.0, decay_steps=100), 20, 0.1),
            lambda t, lr0: (
                lr0 * S.with_warmup(functools.partial(S.cosine_decay, lr0=1.0, decay_steps=100), 20, 0.1)(t)
            ),
        ),
    ],
    ids=["step", "multistep", "exponential", "inverse_time", "cosine", "restarts", "warmup", "with_warmup"],
)
def test_torch_lambda_factories_give_the_numpy_values(factory, function):
    assert_allclose(torch_lrs(factory, lr=0.3), function(T, lr0=0.3), rtol=1e-12, atol=1e-16)


# ------------------------------------------------------------------------------- closed forms


def test_inverse_time_decay_values():
    assert_allclose(
        S.inverse_time_decay([0, 1, 10, 99], 1.0, 0.5), [1.0, 1 / 1.5, 1 / 6, 1 / 50.5], rtol=1e-15
    )
    assert_allclose(S.inverse_time_decay(25, 2.0, 0.5, decay_steps=10), 2.0 / (1 + 0.5 * 2.5), rtol=1e-15)
    assert_allclose(S.inverse_time_decay(25, 2.0, 0.5, decay_steps=10, staircase=True), 2.0 / 2.0, rtol=1e-15)


def test_exponential_decay_is_not_inverse_time():
    assert_allclose(
        S.exponential_decay([0, 10, 20, 15], 1.0, 0.5, 10), [1.0, 0.5, 0.25, 0.5**1.5], rtol=1e-15
    )
    assert_allclose(
        S.exponential_decay([9, 10, 19], 1.0, 0.5, 10, staircase=True), [1.0, 0.5, 0.5], rtol=1e-15
    )
    assert S.exponential_decay(100, 1.0, 0.5, 10) < S.inverse_time_decay(100, 1.0, 0.1)


def keras_cosine_decay_restarts(step, lr0, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """The algorithm of ``keras.optimizers.schedules.CosineDecayRestarts.__call__``, in float64."""
    completed_fraction = step / first_decay_steps
    if t_mul == 1.0:
        i_restart = math.floor(completed_fraction)
        completed_fraction -= i_restart
    else:
        i_restart = math.floor(math.log(1.0 - completed_fraction * (1.0 - t_mul)) / math.log(t_mul))
        sum_r = (1.0 - t_mul**i_restart) / (1.0 - t_mul)
        completed_fraction = (completed_fraction - sum_r) / t_mul**i_restart
    m_fac = m_mul**i_restart
    cosine_decayed = 0.5 * m_fac * (1.0 + math.cos(math.pi * completed_fraction))
    return lr0 * ((1.0 - alpha) * cosine_decayed + alpha)


@pytest.mark.parametrize(
    "t_mul, m_mul, alpha", [(2.0, 1.0, 0.0), (2.0, 0.5, 0.1), (1.5, 0.8, 0.0), (1.0, 0.9, 0.2)]
)
def test_cosine_decay_restarts_equals_keras(t_mul, m_mul, alpha):
    steps = [t for t in range(300) if t % 10 not in (0,)]  # away from restarts, where log rounding can differ
    expected = [keras_cosine_decay_restarts(t, 0.5, 10, t_mul, m_mul, alpha) for t in steps]
    assert_allclose(
        S.cosine_decay_restarts(np.array(steps), 0.5, 10, t_mul, m_mul, alpha), expected, rtol=1e-10
    )


def test_restarts_jump_to_m_mul_powers_at_cycle_starts():
    # t_mul = 2, T0 = 10: cycles start at 0, 10, 30, 70, 150
    starts = np.array([0, 10, 30, 70, 150])
    assert_allclose(S.cosine_decay_restarts(starts, 1.0, 10, 2.0, m_mul=0.5), 0.5 ** np.arange(5), rtol=1e-14)
    last = S.cosine_decay_restarts(starts[1:] - 1, 1.0, 10, 2.0)  # the last step of cycles 0..3
    assert_allclose(last, 0.5 * (1 + np.cos(np.pi * (1 - 1 / np.array([10, 20, 40, 80])))), rtol=1e-12)
    i, frac = S.restart_cycle(np.array([0, 9, 10, 29, 30, 69, 70]), 10, 2.0)
    assert_array_equal(i, [0, 0, 1, 1, 2, 2, 3])
    assert_allclose(frac, [0, 0.9, 0, 0.95, 0, 39 / 40, 0], rtol=1e-14, atol=1e-15)


def test_with_warmup_ramps_then_starts_the_schedule():
    sched = S.with_warmup(functools.partial(S.exponential_decay, lr0=0.2, decay_rate=0.5, decay_steps=10), 5)
    assert_allclose(sched(np.arange(7)), [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.2 * 0.5**0.1], rtol=1e-14)


# --------------------------------------------------------------------------------- properties

DECAYS = {
    "step": lambda t, a: S.step_decay(t, 1.0, 13, 0.5),
    "multistep": lambda t, a: S.multistep_decay(t, 1.0, [5, 40, 41], 0.2),
    "exponential": lambda t, a: S.exponential_decay(t, 1.0, 0.9, 7),
    "exponential-staircase": lambda t, a: S.exponential_decay(t, 1.0, 0.9, 7, staircase=True),
    "inverse_time": lambda t, a: S.inverse_time_decay(t, 1.0, 0.3, 4),
    "cosine": lambda t, a: S.cosine_decay(t, 1.0, 300, a),
}


@settings(max_examples=60, deadline=None)
@given(t=st.integers(0, 10_000), dt=st.integers(0, 500), alpha=st.floats(0.0, 0.9))
def test_decays_never_increase_and_stay_in_range(t, dt, alpha):
    for name, f in DECAYS.items():
        a, b = f(t, alpha), f(t + dt, alpha)
        assert isinstance(a, float), name
        assert 0.0 <= b <= a * (1 + 1e-15) <= 1.0 + 1e-15, name
    assert alpha - 1e-12 <= S.cosine_decay(t, 1.0, 300, alpha) <= 1.0


@settings(max_examples=60, deadline=None)
@given(
    t=st.integers(0, 5000),
    t_mul=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    m_mul=st.floats(0.3, 1.0),
    alpha=st.floats(0.0, 0.5),
    first=st.integers(1, 50),
)
def test_restarts_stay_between_the_floor_and_the_cycle_peak(t, t_mul, m_mul, alpha, first):
    lr = S.cosine_decay_restarts(t, 2.0, first, t_mul, m_mul, alpha)
    i, frac = S.restart_cycle(t, first, t_mul)
    assert i == int(i) and 0.0 <= frac < 1.0
    peak = 2.0 * ((1 - alpha) * m_mul**i + alpha)
    assert 2.0 * alpha - 1e-12 <= lr <= peak + 1e-12
    # the array version gives the same value
    assert_allclose(
        S.cosine_decay_restarts(np.array([t]), 2.0, first, t_mul, m_mul, alpha)[0], lr, rtol=1e-15
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.step_decay(-1, 1.0, 10), "counted"),
        (lambda: S.exponential_decay(1.5, 1.0, 0.5, 10), "counted"),
        (lambda: S.exponential_decay(1, 1.0, 0.5, 0), "decay_steps"),
        (lambda: S.cosine_decay_restarts(3, 1.0, 10, t_mul=0.5), "t_mul"),
        (lambda: S.linear_warmup(3, 1.0, 0), "warmup_steps"),
    ],
)
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------- in fit


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(3, 4))
    y = rng.integers(0, 3, size=n)
    return centers[y] + rng.normal(size=(n, 4)), y


def test_fit_sets_the_learning_rate_before_every_step():
    X, y = blobs()
    seen = []
    opt = SGD(lr=123.0)

    class Recording(MLP):
        def loss_and_grads(self, *a, **k):
            seen.append(opt.lr)
            return super().loss_and_grads(*a, **k)

    sched = functools.partial(S.exponential_decay, lr0=0.1, decay_rate=0.5, decay_steps=10)
    hist = fit(Recording([4, 5, 3], rng=0), X, y, epochs=2, batch_size=25, optimizer=opt, schedule=sched)
    assert len(seen) == 10  # 5 batches per epoch
    assert_allclose(seen, sched(np.arange(10)), rtol=1e-15)
    assert (
        len(hist.batch_loss) == 10
    )  # one loss per step, in order; weighted by size, their mean is train_loss
    sizes = [25, 25, 25, 25, 20]  # 120 rows in batches of 25
    expected = [
        np.average(hist.batch_loss[:5], weights=sizes),
        np.average(hist.batch_loss[5:], weights=sizes),
    ]
    assert_allclose(hist.train_loss, expected, rtol=1e-12)
    assert_allclose(hist.lr, [seen[4], seen[9]], rtol=1e-15)
    assert list(hist.to_frame().columns) == ["train_loss", "train_acc", "seconds", "lr"]


def test_fit_per_epoch_schedule():
    X, y = blobs()
    opt = SGD(lr=1.0)
    hist = fit(
        MLP([4, 5, 3], rng=0),
        X,
        y,
        epochs=4,
        batch_size=50,
        optimizer=opt,
        schedule=functools.partial(S.step_decay, lr0=0.2, step_size=2),
        schedule_unit="epoch",
    )
    assert_allclose(hist.lr, [0.2, 0.2, 0.02, 0.02], rtol=1e-15)


@pytest.mark.parametrize("unit", ["step", "epoch"])
def test_numpy_schedule_and_torch_lambda_lr_train_the_same(unit):
    X, y = blobs(150)
    np_model = MLP([4, 6, 3], "tanh", rng=0)
    th_model = TorchMLP(np_model.sizes, "tanh", dtype=torch.float64).load_numpy_params(np_model.params)
    topt = torch.optim.SGD(th_model.parameters(), lr=0.2, momentum=0.9)
    kw = dict(epochs=3, batch_size=20, rng=1, schedule_unit=unit)
    h_np = fit(
        np_model,
        X,
        y,
        optimizer=SGD(lr=0.2, momentum=0.9),
        schedule=functools.partial(S.cosine_decay_restarts, lr0=0.2, first_decay_steps=3),
        **kw,
    )
    h_th = fit(th_model, X, y, optimizer=topt, schedule=TS.cosine_decay_restarts(topt, 3), **kw)
    assert_allclose(h_np.train_loss, h_th.train_loss, rtol=1e-10)
    assert_allclose(h_np.lr, h_th.lr, rtol=1e-12)


def test_fit_refuses_a_bad_schedule():
    X, y = blobs(30)
    with pytest.raises(ValueError, match="schedule_unit"):
        fit(MLP([4, 3]), X, y, schedule=lambda t: 0.1, schedule_unit="batch")
    with pytest.raises(TypeError, match="LRScheduler"):
        fit(MLP([4, 3]), X, y, schedule=0.1)
    model = TorchMLP([4, 3])
    other = torch.optim.SGD(TorchMLP([4, 3]).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer passed to fit"):
        fit(model, X, y, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), schedule=L.StepLR(other, 2))
