"""Diagnostics: the learning-rate range test and the training monitors (book/diagnosis.md).

* ``lr_range_test``: its learning rates are exactly geometric; on a quadratic of curvature h, where
  gradient descent diverges for lr > 2/h, it stops just past 2/h; it leaves the model and the
  optimizer as they were; NumPy and torch (float64, same weights, same rng) give the same lrs and
  losses. ``suggest_lr`` finds the steepest point and the min/10 point of a known curve.
* ``UpdateRatio``, ``GradNorm``, ``activation_stats``/``ActivationStats``: against hand computations
  on a tiny network; 0 with lr = 0; dead fraction 1 with very negative biases; saturation 1 with
  huge tanh weights; per member in ``fit_seeds`` equal to ``fit`` on each member; torch = NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib import monitors, training
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.multiseed import MultiSeedMLP
from course_lib.numpy_impl.optimizers import SGD
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit, fit_seeds, lr_range_test, suggest_lr


def blobs(n=60, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    X = rng.normal(size=(n, d)) + 2.0 * np.eye(c, d)[y]
    return X, y


class Quadratic:
    """L(w) = (1/2) sum_j h_j w_j^2, whatever the batch: gradient descent diverges iff lr > 2 / max h."""

    def __init__(self, h):
        self.h = np.asarray(h, dtype=float)
        self.params = {"W1": np.ones_like(self.h)}

    def loss_and_grads(self, x, y):
        w = self.params["W1"]
        return 0.5 * float((self.h * w * w).sum()), {"W1": self.h * w}


# ------------------------------------------------------------------------------- range test


@settings(max_examples=25, deadline=None)
@given(
    lr_min=st.floats(1e-6, 1e-2),
    decades=st.floats(0.5, 6.0),
    steps=st.integers(2, 60),
)
def test_range_test_lrs_are_geometric(lr_min, decades, steps):
    lr_max = lr_min * 10**decades
    model = Quadratic([1e-9])  # never diverges in this range: the test runs all its steps
    lrs, losses = lr_range_test(model, np.zeros((10, 1)), np.zeros(10), lr_min, lr_max, steps, batch_size=3)
    assert lrs.shape == losses.shape == (steps,)
    assert_allclose(lrs[0], lr_min, rtol=1e-14)
    assert_allclose(lrs[-1], lr_max, rtol=1e-12)
    assert_allclose(lrs[1:] / lrs[:-1], (lr_max / lr_min) ** (1 / (steps - 1)), rtol=1e-12)


class Regression:
    """L_B(w) = (h/2) mean_{n in B} (w - x_n)^2: curvature h, and mini-batch noise (the batch mean of x)."""

    def __init__(self, h):
        self.h, self.params = h, {"W1": np.zeros(1)}

    def loss_and_grads(self, x, y):
        r = self.params["W1"][0] - x[:, 0]  # (B,)
        return 0.5 * self.h * float((r * r).mean()), {"W1": np.array([self.h * r.mean()])}


@pytest.mark.parametrize("h", [0.5, 4.0, 50.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_range_test_stops_just_past_two_over_curvature(h, seed):
    """SGD on a quadratic of curvature h diverges exactly when lr > 2/h; the test stops a few steps later."""
    threshold = 2.0 / h
    X = np.random.default_rng(seed).normal(size=(200, 1))
    lrs, losses = lr_range_test(
        Regression(h), X, np.zeros(200), threshold / 100, threshold * 100, 200, batch_size=10, rng=seed
    )
    assert len(lrs) < 200  # it stopped ...
    assert threshold < lrs[-1] < 2.0 * threshold  # ... after 2/h, within 15 steps of ratio 1.047
    assert losses[-1] > 4.0 * losses[:-1].min()


def test_range_test_stop_matches_the_recursion_by_hand():
    """Deterministic quadratic, no smoothing: w_{t+1} = (1 - lr_t h) w_t, stop when L_t > 4 min L."""
    h, lr_min, lr_max, steps = 4.0, 1e-3, 10.0, 120
    lrs, losses = lr_range_test(
        Quadratic([h]), np.zeros((5, 1)), np.zeros(5), lr_min, lr_max, steps, smooth=0.0
    )
    w, expected = 1.0, []
    for lr in lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1)):
        expected.append(0.5 * h * w * w)
        if expected[-1] > 4.0 * min(expected[:-1], default=np.inf):
            break
        w *= 1.0 - lr * h
    assert_allclose(losses, expected, rtol=1e-12)
    assert lrs[-1] > 2.0 / h  # never before divergence: below 2/h the loss only falls
    assert np.all(np.diff(losses[lrs < 2.0 / h]) < 0)


def test_range_test_leaves_numpy_model_and_optimizer_unchanged():
    X, y = blobs()
    model = MLP([5, 8, 3], "relu", rng=1)
    opt = SGD(lr=0.1, momentum=0.9)
    fit(model, X, y, epochs=1, batch_size=20, optimizer=opt)  # the optimizer now has a velocity
    before, velocity = training.get_weights(model), {k: v["velocity"].copy() for k, v in opt.state.items()}
    lrs, _ = lr_range_test(model, X, y, 1e-3, 10.0, 50, batch_size=20, optimizer=opt)
    assert len(lrs) > 5
    for k, v in training.get_weights(model).items():
        assert_array_equal(v, before[k])
    assert opt.lr == 0.1 and opt.state.keys() == velocity.keys()
    for k, v in opt.state.items():
        assert_array_equal(v["velocity"], velocity[k])


def test_range_test_leaves_torch_model_and_optimizer_unchanged():
    X, y = blobs()
    model = TorchMLP([5, 8, 3], "tanh", generator=1, dtype=torch.float64, norm="batch")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fit(model, X, y, epochs=1, batch_size=20, optimizer=opt)
    before = training.get_weights(model)
    state = {k: v["exp_avg"].clone() for k, v in opt.state_dict()["state"].items()}
    lr_range_test(model, X, y, 1e-4, 1.0, 30, batch_size=20, optimizer=opt)
    for k, v in training.get_weights(model).items():
        assert torch.equal(v, before[k]), k
    for k, v in opt.state_dict()["state"].items():
        assert torch.equal(v["exp_avg"], state[k])
    assert opt.param_groups[0]["lr"] == 1e-2  # the learning rate the test swept is put back


def test_range_test_numpy_equals_torch():
    X, y = blobs(n=70)
    np_model = MLP([5, 16, 3], "relu", rng=3)
    th_model = TorchMLP(np_model.sizes, "relu", dtype=torch.float64).load_numpy_params(np_model.params)
    kw = dict(lr_min=1e-3, lr_max=30.0, steps=80, batch_size=16, rng=7)  # 70 rows: batches of 16, then 6
    lrs_np, loss_np = lr_range_test(np_model, X, y, **kw)
    lrs_th, loss_th = lr_range_test(th_model, X, y, **kw)
    assert_array_equal(lrs_np, lrs_th)
    assert_allclose(loss_np, loss_th, rtol=1e-9)
    assert 10 < len(lrs_np) < 80  # 30 is far too large for this net: both stop, at the same step


def test_range_test_rejects_bad_arguments():
    model, X, y = Quadratic([1.0]), np.zeros((4, 1)), np.zeros(4)
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        lr_range_test(model, X, y, 1.0, 0.1, 10)
    with pytest.raises(ValueError, match="steps"):
        lr_range_test(model, X, y, 0.1, 1.0, 1)
    with pytest.raises(ValueError, match="stop_factor"):
        lr_range_test(model, X, y, 0.1, 1.0, 10, stop_factor=1.0)


def test_suggest_lr_on_a_known_curve():
    lrs = np.logspace(-5, 0, 101)  # log10 lr in steps of 0.05; the first 10 and last 5 are skipped
    u = np.log10(lrs)
    losses = 2.0 - np.tanh(2 * (u + 3)) + np.exp(3 * (u + 0.5))  # falls fastest at 1e-3, min near 10^-1
    assert_allclose(suggest_lr(lrs, losses, "steepest"), 1e-3, rtol=1e-9)
    lowest = lrs[np.argmin(losses)]
    assert_allclose(suggest_lr(lrs, losses, "min/10"), lowest / 10, rtol=1e-12)
    with pytest.raises(ValueError, match="rule"):
        suggest_lr(lrs, losses, "median")


# ------------------------------------------------------------------------------ monitors


def test_update_ratio_and_grad_norm_by_hand():
    X, y = blobs(n=12, d=3)
    model = MLP([3, 4, 3], "tanh", rng=2)
    start = training.get_weights(model)
    _, grads = model.loss_and_grads(X, y)
    ratio, gnorm = monitors.UpdateRatio(), monitors.GradNorm()
    fit(model, X, y, epochs=1, batch_size=12, lr=0.3, callbacks=[ratio, gnorm])  # one full-batch step
    assert ratio.steps == gnorm.steps == [0]
    for i, name in enumerate(["W1", "W2"]):
        g, W = grads[name], start[name]
        assert_allclose(gnorm.values()[0, i], np.sqrt((g**2).sum()), rtol=1e-10)
        assert_allclose(ratio.values()[0, i], 0.3 * np.sqrt((g**2).sum()) / np.sqrt((W**2).sum()), rtol=1e-10)


def test_update_ratio_is_zero_with_lr_zero_and_every_skips_steps():
    X, y = blobs()
    ratio = monitors.UpdateRatio(every=2)
    fit(MLP([5, 6, 6, 3], rng=0), X, y, epochs=2, batch_size=10, lr=0.0, callbacks=[ratio])
    assert ratio.steps == [0, 2, 4, 6, 8, 10]
    assert ratio.values().shape == (6, 3)
    assert_array_equal(ratio.values(), 0.0)


def test_grad_norm_sees_the_clipped_gradients():
    X, y = blobs()
    gnorm = monitors.GradNorm()
    model = MLP([5, 8, 3], "relu", init="normal:3.0", rng=0)
    hist = fit(model, X, y, epochs=2, batch_size=10, lr=0.01, clip_grad_norm=0.5, callbacks=[gnorm])
    assert max(hist.grad_norm) > 0.5  # clipping did something
    per_step = np.sqrt((gnorm.values() ** 2).sum(axis=1))  # W's only, so at most the global norm
    assert np.all(per_step <= 0.5 + 1e-12)


def test_monitors_per_member_equal_fit_on_each_member():
    X, y = blobs(n=40)
    seeds = [0, 1, 2]
    multi = MultiSeedMLP([5, 7, 3], seeds, activation="relu")
    members = [multi.member(s) for s in range(3)]
    probe = X[:15]
    mons = [monitors.UpdateRatio(), monitors.GradNorm(), monitors.ActivationStats(probe)]
    fit_seeds(multi, X, y, rngs=seeds, epochs=2, batch_size=8, lr=0.2, callbacks=mons)
    assert mons[0].values().shape == (10, 3, 2)
    assert mons[2].values("dead").shape == (3, 3, 1)  # epochs 0, 1, 2; members; hidden layers
    for s, member in enumerate(members):
        one = [monitors.UpdateRatio(), monitors.GradNorm(), monitors.ActivationStats(probe)]
        fit(member, X, y, rng=seeds[s], epochs=2, batch_size=8, lr=0.2, callbacks=one)
        assert_allclose(mons[0].values()[:, s], one[0].values(), rtol=1e-9)
        assert_allclose(mons[1].values()[:, s], one[1].values(), rtol=1e-9)
        assert_allclose(mons[2].values("dead")[:, s], one[2].values("dead"), rtol=0)


def test_monitors_torch_equal_numpy():
    X, y = blobs()
    np_model = MLP([5, 8, 6, 3], "tanh", rng=4)
    th_model = TorchMLP(np_model.sizes, "tanh", dtype=torch.float64).load_numpy_params(np_model.params)
    results = []
    for model in (np_model, th_model):
        mons = [monitors.UpdateRatio(), monitors.GradNorm(), monitors.ActivationStats(X[:20])]
        fit(model, X, y, epochs=2, batch_size=10, lr=0.5, rng=1, callbacks=mons)
        results.append([mons[0].values(), mons[1].values(), mons[2].values("saturated")])
    for a, b in zip(*results, strict=True):
        assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_activation_stats_by_hand():
    X = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]])
    model = MLP([2, 3, 2], "tanh", rng=0)
    model.params["W1"][...] = [[3.0, 0.1, -1.0], [0.0, 0.2, -2.0]]
    model.params["b1"][...] = [0.0, 0.0, 1.0]
    a = np.tanh(X @ model.params["W1"] + model.params["b1"])  # (3, 3)
    sat, dead = monitors.activation_stats(model, X)
    assert_allclose(sat, [(np.abs(a) > 0.99).mean()])
    assert (np.abs(a) > 0.99).sum() == 4  # 4 of the 9 entries: z = 3, 4, -3, -4 (tanh(3) = 0.995)
    assert_array_equal(dead, [0.0])
    relu = MLP([2, 3, 2], "relu", rng=0)
    relu.params["W1"][...] = [[1.0, 1.0, -1.0], [1.0, -1.0, 0.0]]
    relu.params["b1"][...] = [-10.0, 0.0, -1.5]  # z0 = -11, -9, -8 and z2 = -2.5, -2, -0.5: dead
    sat, dead = monitors.activation_stats(relu, X)
    assert np.isnan(sat[0])
    assert_allclose(dead, [2 / 3])


def test_sigmoid_saturation_threshold():
    model = MLP([1, 2, 2], "sigmoid", rng=0)
    model.params["W1"][...] = [[1.0, 1.0]]
    model.params["b1"][...] = [0.0, 0.0]
    z = np.log(np.array([0.996, 0.994]) / (1 - np.array([0.996, 0.994])))  # sigma(z) = 0.996, 0.994
    sat, _ = monitors.activation_stats(model, z[:, None])
    assert_allclose(sat, [0.5])  # 0.996 is saturated (2a - 1 = 0.992 > 0.99), 0.994 is not


def test_dead_fraction_is_one_with_very_negative_biases():
    X, y = blobs()
    model = MLP([5, 10, 10, 3], "relu", rng=0)
    for i in (1, 2):
        model.params[f"b{i}"][...] = -1e3
    _, dead = monitors.activation_stats(model, X)
    assert_array_equal(dead, [1.0, 1.0])
    stats = monitors.ActivationStats(X)
    fit(model, X, y, epochs=2, lr=0.5, callbacks=[stats])  # dead units get no gradient: they stay dead
    assert_array_equal(stats.values("dead"), 1.0)
    assert stats.epochs == [0, 1, 2]


def test_saturation_is_one_with_huge_tanh_weights():
    X, _ = blobs()
    model = MLP([5, 10, 10, 3], "tanh", init="normal:1e6", rng=0)
    sat, dead = monitors.activation_stats(model, X)
    assert_array_equal(sat, [1.0, 1.0])
    assert_array_equal(dead, [0.0, 0.0])
    th = TorchMLP(model.sizes, "tanh", dtype=torch.float64).load_numpy_params(model.params)
    assert_array_equal(monitors.activation_stats(th, X)[0], [1.0, 1.0])


def test_fit_seeds_callbacks_can_stop_training():
    class StopAfter(training.Callback):
        def on_epoch_end(self, epoch, logs, model):
            self.logs = logs
            return epoch == 2

    X, y = blobs()
    cb = StopAfter()
    hist = fit_seeds(MultiSeedMLP([5, 4, 3], [0, 1]), X, y, rngs=[0, 1], epochs=5, callbacks=[cb])
    assert hist.epoch == [1, 2]
    assert cb.logs["train_loss"].shape == (2,)


def test_monitors_complain_when_unused():
    with pytest.raises(ValueError, match="recorded nothing"):
        monitors.UpdateRatio().values()
    with pytest.raises(ValueError, match="every"):
        monitors.GradNorm(every=0)
