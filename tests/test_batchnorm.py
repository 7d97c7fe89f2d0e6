"""Batch normalization, NumPy and torch layers: against ``torch.nn.functional.batch_norm``,
central differences and properties; running averages in the weights that ``fit`` saves.

* ``batchnorm_forward`` in training and evaluation equals ``F.batch_norm`` (float64), and the
  running averages it updates in place follow torch's (unbiased variance, momentum 0.1) over
  several batches; ``running=None`` in training updates nothing; evaluation changes nothing;
* ``batchnorm_backward`` against central differences (training: every row moves the batch
  statistics; evaluation: a fixed affine map) and against torch autograd;
* the torch-tensor pair in ``torch_impl.layers`` equals ``F.batch_norm`` and autograd too;
* Hypothesis properties: in training the output of every feature has mean beta and standard
  deviation gamma * sqrt(var / (var + eps)); it is invariant to a per-feature affine change of
  the input; dx sums to zero over the batch and is orthogonal to x_hat;
* bad inputs are refused with a message;
* ``fit``'s weights (``get_weights``, ``EarlyStopping``, ``Checkpoint``) include a NumPy MLP's
  running averages, and a checkpoint restores the evaluation outputs exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.gradcheck import numerical_gradient
from course_lib.numpy_impl import layers
from course_lib.numpy_impl.mlp import MLP
from course_lib.torch_impl import layers as TL
from course_lib.training import EarlyStopping, get_weights, load_weights, save_weights, set_weights


def problem(N: int = 8, D: int = 5, seed: int = 0):
    """A batch with per-feature offsets and scales far from (0, 1), and non-trivial gamma, beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) * rng.uniform(0.5, 3.0, D) + rng.uniform(-2, 2, D)
    gamma, beta = rng.uniform(0.5, 2.0, D), rng.normal(size=D)
    return x, gamma, beta


def torch_reference(x, gamma, beta, running, train, momentum=0.1, eps=1e-5):
    """F.batch_norm on copies; returns (out, running_mean, running_var) as NumPy."""
    rm, rv = torch.tensor(running["mean"].copy()), torch.tensor(running["var"].copy())
    out = F.batch_norm(torch.tensor(x), rm, rv, torch.tensor(gamma), torch.tensor(beta), train, momentum, eps)
    return out.numpy(), rm.numpy(), rv.numpy()


# ------------------------------------------------------------------------------- against torch


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 1e-3), (1.0, 1e-5)])
def test_training_forward_and_running_averages_match_torch(momentum, eps):
    _, gamma, beta = problem()
    running = layers.batchnorm_running(5)
    ref = {"mean": running["mean"].copy(), "var": running["var"].copy()}
    for seed in range(4):  # several batches: the running averages accumulate
        x, _, _ = problem(N=6 + seed, seed=seed + 10)
        out, _ = layers.batchnorm_forward(x, gamma, beta, running, train=True, momentum=momentum, eps=eps)
        t_out, ref["mean"], ref["var"] = torch_reference(x, gamma, beta, ref, True, momentum, eps)
        assert_allclose(out, t_out, rtol=1e-12, atol=1e-13)
        assert_allclose(running["mean"], ref["mean"], rtol=1e-13, atol=1e-15)
        assert_allclose(running["var"], ref["var"], rtol=1e-13, atol=1e-15)
    # the running variance uses the unbiased batch variance (N / (N - 1)), as torch
    x, _, _ = problem(N=4, seed=99)
    r = layers.batchnorm_running(5)
    layers.batchnorm_forward(x, gamma, beta, r, train=True, momentum=1.0)
    assert_allclose(r["var"], x.var(axis=0, ddof=1), rtol=1e-13)
    assert_allclose(r["mean"], x.mean(axis=0), rtol=1e-13)


def test_evaluation_uses_the_running_averages_and_changes_nothing():
    x, gamma, beta = problem(seed=3)
    rng = np.random.default_rng(4)
    running = {"mean": rng.normal(size=5), "var": rng.uniform(0.2, 3.0, 5)}
    before = {k: v.copy() for k, v in running.items()}
    out, _ = layers.batchnorm_forward(x, gamma, beta, running, train=False)
    t_out, _, _ = torch_reference(x, gamma, beta, running, False)
    assert_allclose(out, t_out, rtol=1e-12, atol=1e-13)
    assert_array_equal(running["mean"], before["mean"])
    assert_array_equal(running["var"], before["var"])
    # one row at a time gives the same rows: evaluation does not mix the examples of a batch
    rows = np.concatenate(
        [layers.batchnorm_forward(x[i : i + 1], gamma, beta, running, False)[0] for i in range(8)]
    )
    assert_allclose(rows, out, rtol=1e-14)


def test_training_without_running_updates_nothing():
    x, gamma, beta = problem()
    out_a, _ = layers.batchnorm_forward(x, gamma, beta, None, train=True)
    running = layers.batchnorm_running(5)
    out_b, _ = layers.batchnorm_forward(x, gamma, beta, running, train=True)
    assert_array_equal(out_a, out_b)  # the output does not depend on the running averages in training


def test_torch_layer_pair_matches_functional_batch_norm_and_autograd():
    x, gamma, beta = problem(seed=5)
    for train in (True, False):
        running = TL.batchnorm_running(5, torch.float64)
        running["mean"] += 0.3
        ref = {k: v.clone() for k, v in running.items()}
        xt = torch.tensor(x, requires_grad=True)
        gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        out, cache = TL.batchnorm_forward(xt.detach(), gt.detach(), bt.detach(), running, train)
        ref_out = F.batch_norm(xt, ref["mean"], ref["var"], gt, bt, train, 0.1, 1e-5)
        assert_allclose(out.numpy(), ref_out.detach().numpy(), rtol=1e-12, atol=1e-13)
        assert_allclose(running["var"].numpy(), ref["var"].numpy(), rtol=1e-13)
        dout = torch.tensor(np.random.default_rng(6).normal(size=x.shape))
        ref_out.backward(dout)
        dx, dgamma, dbeta = TL.batchnorm_backward(dout, cache)
        assert_allclose(dx.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        assert_allclose(dgamma.numpy(), gt.grad.numpy(), rtol=1e-11, atol=1e-12)
        assert_allclose(dbeta.numpy(), bt.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------ backward


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_backward_matches_central_differences(train):
    x, gamma, beta = problem(N=7, D=4, seed=7)
    running = {"mean": np.full(4, 0.4), "var": np.full(4, 1.7)}
    dout = np.random.default_rng(8).normal(size=x.shape)
    _, cache = layers.batchnorm_forward(x, gamma, beta, None if train else running, train)
    dx, dgamma, dbeta = layers.batchnorm_backward(dout, cache)

    def f(x_, g_, b_):
        return np.sum(layers.batchnorm_forward(x_, g_, b_, None if train else running, train)[0] * dout)

    num_dx = numerical_gradient(lambda v: f(v, gamma, beta), x.copy())
    num_dg = numerical_gradient(lambda v: f(x, v, beta), gamma.copy())
    num_db = numerical_gradient(lambda v: f(x, gamma, v), beta.copy())
    assert_allclose(dx, num_dx, rtol=1e-6, atol=1e-8)
    assert_allclose(dgamma, num_dg, rtol=1e-6, atol=1e-8)
    assert_allclose(dbeta, num_db, rtol=1e-6, atol=1e-8)


def test_backward_matches_torch_autograd():
    x, gamma, beta = problem(N=16, D=6, seed=9)
    xt = torch.tensor(x, requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    out = F.batch_norm(xt, None, None, gt, bt, True, 0.1, 1e-5)
    dout = np.random.default_rng(10).normal(size=x.shape)
    out.backward(torch.tensor(dout))
    _, cache = layers.batchnorm_forward(x, gamma, beta, None, True)
    dx, dgamma, dbeta = layers.batchnorm_backward(dout, cache)
    assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-11)
    assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-12)


def test_a_backward_that_ignores_the_batch_statistics_is_caught():
    """The check can fail: treating mu and var as constants in training gives the wrong dx."""
    x, gamma, beta = problem(seed=11)
    dout = np.random.default_rng(12).normal(size=x.shape)
    _, (x_hat, g, inv_std, _) = layers.batchnorm_forward(x, gamma, beta, None, True)
    naive = dout * g * inv_std
    num = numerical_gradient(
        lambda v: np.sum(layers.batchnorm_forward(v, gamma, beta, None, True)[0] * dout), x.copy()
    )
    assert np.max(np.abs(naive - num)) > 0.1


# ---------------------------------------------------------------------------------- properties

batches = st.integers(2, 12).flatmap(
    lambda n: st.integers(1, 5).flatmap(
        lambda d: arrays(np.float64, (n, d), elements=st.floats(-50, 50, allow_nan=False, width=64))
    )
)


@settings(max_examples=60, deadline=None)
@given(x=batches, g=st.floats(0.1, 4.0), b=st.floats(-3, 3))
def test_training_output_has_mean_beta_and_scale_gamma(x, g, b):
    D = x.shape[1]
    gamma, beta = np.full(D, g), np.full(D, b)
    out, _ = layers.batchnorm_forward(x, gamma, beta, None, True)
    var = x.var(axis=0)
    assert_allclose(out.mean(axis=0), beta, rtol=1e-9, atol=1e-9 * (1 + g))
    assert_allclose(out.std(axis=0), gamma * np.sqrt(var / (var + 1e-5)), rtol=1e-7, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(x=batches, data=st.data())
def test_training_output_is_invariant_to_per_feature_affine_changes(x, data):
    D = x.shape[1]
    scale = np.array(data.draw(st.lists(st.floats(0.5, 20.0), min_size=D, max_size=D)))
    shift = np.array(data.draw(st.lists(st.floats(-100, 100), min_size=D, max_size=D)))
    gamma, beta = np.full(D, 1.3), np.full(D, -0.2)
    x = x + np.random.default_rng(0).normal(size=x.shape)  # no constant column: var >> eps
    out, _ = layers.batchnorm_forward(x, gamma, beta, None, True, eps=1e-12)
    moved, _ = layers.batchnorm_forward(x * scale + shift, gamma, beta, None, True, eps=1e-12)
    assert_allclose(moved, out, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(x=batches, seed=st.integers(0, 2**16))
def test_dx_sums_to_zero_and_is_orthogonal_to_x_hat(x, seed):
    rng = np.random.default_rng(seed)
    x = x + rng.normal(size=x.shape)
    assume(np.all(x.var(axis=0) > 1e-6))
    D = x.shape[1]
    # eps = 0: x_hat then has variance exactly 1, which the orthogonality needs (eps > 0 leaves a
    # component of size eps / (var + eps) along x_hat)
    _, cache = layers.batchnorm_forward(x, rng.uniform(0.5, 2, D), rng.normal(size=D), None, True, eps=0.0)
    dout = rng.normal(size=x.shape)
    dx, _, _ = layers.batchnorm_backward(dout, cache)
    scale = np.abs(dx).max() + np.abs(dout).max()
    assert_allclose(dx.sum(axis=0), 0.0, atol=1e-9 * scale * len(x))
    assert_allclose((dx * cache[0]).sum(axis=0), 0.0, atol=1e-9 * scale * len(x))


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(x=np.ones((1, 3)), train=True), "at least 2 rows"),
        (dict(x=np.ones((4, 3)), gamma=np.ones(2)), "gamma"),
        (dict(x=np.ones(3)), "needs x"),
        (dict(x=np.ones((4, 3)), train=False, running=None), "running statistics"),
        (dict(x=np.ones((4, 3)), momentum=1.5), "momentum"),
    ],
)
def test_bad_inputs_are_refused(kw, match):
    args = dict(
        x=np.ones((4, 3)), gamma=np.ones(3), beta=np.zeros(3), running=layers.batchnorm_running(3), train=True
    )
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        layers.batchnorm_forward(**args)


# ------------------------------------------------------------------- running averages in fit


def test_get_and_set_weights_include_the_running_averages():
    model = MLP([4, 6, 3], "relu", rng=0, batchnorm=True)
    x, y = np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 3
    saved = get_weights(model)
    assert {"running_mean1", "running_var1", "gamma1", "beta1"} <= set(saved)
    before = model.forward(x)
    model.loss_and_grads(x, y)  # a training step's forward pass moves the running averages
    assert not np.allclose(model.buffers["running_mean1"], 0.0)
    assert not np.allclose(model.forward(x), before)
    set_weights(model, saved)
    assert_array_equal(model.forward(x), before)


def test_checkpoint_round_trip_restores_evaluation_exactly(tmp_path):
    rng = np.random.default_rng(1)
    model = MLP([4, 6, 6, 3], "tanh", rng=0, batchnorm="after")
    for _ in range(3):
        model.loss_and_grads(rng.normal(size=(12, 4)) + 2.0, rng.integers(0, 3, 12))
    path = save_weights(model, tmp_path / "bn.npz")
    twin = load_weights(MLP([4, 6, 6, 3], "tanh", rng=5, batchnorm="after"), path)
    x = rng.normal(size=(5, 4))
    assert_array_equal(twin.forward(x), model.forward(x))
    for k in model.buffers:
        assert_array_equal(twin.buffers[k], model.buffers[k])


def test_early_stopping_restores_the_running_averages_of_the_best_epoch():
    model = MLP([3, 5, 2], "relu", rng=0, batchnorm=True)
    cb = EarlyStopping(monitor="val_loss", patience=1, restore_best=True)
    cb.on_train_begin(model)
    cb.on_epoch_end(1, {"val_loss": 0.5}, model)
    best = {k: v.copy() for k, v in model.buffers.items()}
    model.loss_and_grads(np.random.default_rng(2).normal(size=(8, 3)) + 3.0, np.arange(8) % 2)
    assert cb.on_epoch_end(2, {"val_loss": 0.9}, model)
    cb.on_train_end(model)
    for k in best:
        assert_array_equal(model.buffers[k], best[k])
