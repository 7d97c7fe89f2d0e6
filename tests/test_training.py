"""The training loop: History, batching and shuffling, NumPy == torch under ``fit``, progress bar.

The strongest test here trains a NumPy MLP and a torch MLP that start from the same weights
(``load_numpy_params``, float64) with ``fit`` and the same ``rng``: their per-epoch losses and
accuracies must agree to ~1e-12, which holds only if both see the same batches in the same
order and take the same SGD steps. With ``clip_grad_norm`` the same holds for clipped steps
(NumPy ``optimizers.clip_grad_norm`` against ``torch.nn.utils.clip_grad_norm_``), a hand-written
loop (backward, clip, step) gives the same weights, and ``History.grad_norm`` records the mean
pre-clip norm of each epoch.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.data import make_xor
from course_lib.numpy_impl.losses import cross_entropy
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.optimizers import SGD, clip_grad_norm
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import History, fit, progress_enabled


def blobs(n: int = 203, D: int = 5, C: int = 3, seed: int = 0):
    """A learnable problem: C Gaussian blobs in D dimensions. n is not a multiple of the batch."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(C, D))
    y = rng.integers(0, C, size=n)
    return centers[y] + rng.normal(size=(n, D)), y


class Spy:
    """Wraps a NumPy MLP's loss_and_grads to record every batch it is given."""

    def __init__(self, model: MLP) -> None:
        self.batches: list[np.ndarray] = []
        self.losses: list[float] = []
        real = model.loss_and_grads

        def spy(xb, yb):
            self.batches.append(np.asarray(xb)[:, 0].copy())
            loss, grads = real(xb, yb)
            self.losses.append(loss)
            return loss, grads

        model.loss_and_grads = spy


# -------------------------------------------------------------------------------------- History


def test_history_has_one_entry_per_epoch():
    X, y = blobs()
    Xv, yv = blobs(50, seed=1)
    hist = fit(MLP([5, 8, 3], rng=0), X, y, epochs=4, batch_size=32, lr=0.05, X_val=Xv, y_val=yv, rng=0)
    assert isinstance(hist, History)
    assert hist.epoch == [1, 2, 3, 4]
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds"):
        assert len(getattr(hist, k)) == 4, k
    assert all(isinstance(v, float) for v in hist.train_loss + hist.val_acc)
    assert all(t >= 0 for t in hist.seconds)
    assert_allclose(hist.total_seconds, sum(hist.seconds), rtol=1e-12)


def test_history_to_frame_columns():
    X, y = blobs()
    df = fit(MLP([5, 4, 3], rng=0), X, y, epochs=2, X_val=X[:20], y_val=y[:20]).to_frame()
    assert df.index.name == "epoch" and list(df.index) == [1, 2]
    assert list(df.columns) == ["train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    df = fit(MLP([5, 4, 3], rng=0), X, y, epochs=3, eval_train=False).to_frame()
    assert list(df.columns) == ["train_loss", "seconds"] and len(df) == 3


def test_loss_decreases_on_a_learnable_problem():
    X, y = blobs(400)
    model = MLP([5, 16, 3], "tanh", rng=0)
    before = model.loss(X, y)
    hist = fit(model, X, y, epochs=15, batch_size=20, lr=0.05, rng=0)
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    assert model.loss(X, y) < 0.5 * before
    assert np.all(np.diff(hist.train_loss[:5]) < 0)
    assert hist.train_acc[-1] > 0.9


# ------------------------------------------------------------------------ batching, shuffling


def test_batches_are_a_shuffled_partition_like_dataloader():
    """batch_size rows per batch, the last one smaller; every row exactly once per epoch."""
    N, bs = 25, 10
    X, y = np.arange(N, dtype=float)[:, None] * np.ones((1, 2)), np.arange(N) % 2
    model = MLP([2, 3, 2], rng=0)
    spy = Spy(model)
    hist = fit(model, X, y, epochs=2, batch_size=bs, lr=0.0, rng=0)
    assert [len(b) for b in spy.batches] == [10, 10, 5, 10, 10, 5]
    epochs = [np.concatenate(spy.batches[:3]), np.concatenate(spy.batches[3:])]
    for order in epochs:
        assert_array_equal(np.sort(order), np.arange(N))
    assert not np.array_equal(epochs[0], epochs[1]), "each epoch is reshuffled"
    assert not np.array_equal(epochs[0], np.arange(N)), "the order is shuffled"
    # train_loss is the mean per-example loss: batches weighted by their size
    expected = np.average(spy.losses[:3], weights=[10, 10, 5])
    assert_allclose(hist.train_loss[0], expected, rtol=1e-12)
    # lr = 0: nothing moves, so that mean is the loss over the whole set
    assert_allclose(hist.train_loss[0], cross_entropy(model.forward(X), y), rtol=1e-12)


@pytest.mark.parametrize("N, bs, n_batches", [(199, 100, 2), (250, 100, 3), (100, 100, 1), (7, 100, 1)])
def test_number_of_batches(N, bs, n_batches):
    X, y = blobs(N)
    model = MLP([5, 3, 3], rng=0)
    spy = Spy(model)
    fit(model, X, y, epochs=1, batch_size=bs, rng=0)
    assert len(spy.batches) == n_batches
    assert max(len(b) for b in spy.batches) == min(bs, N)


def test_same_rng_same_run():
    X, y = blobs()
    runs = [fit(MLP([5, 6, 3], rng=0), X, y, epochs=3, batch_size=16, lr=0.1, rng=7) for _ in range(2)]
    assert_array_equal(runs[0].train_loss, runs[1].train_loss)
    other = fit(MLP([5, 6, 3], rng=0), X, y, epochs=3, batch_size=16, lr=0.1, rng=8)
    assert not np.array_equal(runs[0].train_loss, other.train_loss)


# ------------------------------------------------------------------------- NumPy == torch


@pytest.mark.parametrize("activation", ["relu", "tanh", "prelu"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_numpy_and_torch_fit_give_the_same_history(activation, momentum):
    X, y = blobs(203)
    Xv, yv = blobs(40, seed=2)
    np_model = MLP([5, 7, 7, 3], activation, rng=1)
    th_model = TorchMLP(np_model.sizes, activation, dtype=torch.float64).load_numpy_params(np_model.params)
    kw = dict(epochs=2, batch_size=16, X_val=Xv, y_val=yv, rng=3, progress=False)
    if momentum:
        h_np = fit(np_model, X, y, optimizer=SGD(lr=0.05, momentum=momentum, nesterov=True), **kw)
        topt = torch.optim.SGD(th_model.parameters(), lr=0.05, momentum=momentum, nesterov=True)
        h_th = fit(th_model, X, y, optimizer=topt, **kw)
    else:  # the default optimizers: SGD(lr) on both sides
        h_np, h_th = fit(np_model, X, y, lr=0.05, **kw), fit(th_model, X, y, lr=0.05, **kw)
    assert_allclose(h_np.train_loss, h_th.train_loss, rtol=1e-11, atol=1e-13)
    assert_allclose(h_np.val_loss, h_th.val_loss, rtol=1e-11, atol=1e-13)
    assert_array_equal(h_np.train_acc, h_th.train_acc)
    assert_array_equal(h_np.val_acc, h_th.val_acc)
    # and the trained weights are the same
    twin = TorchMLP(np_model.sizes, activation, dtype=torch.float64).load_numpy_params(np_model.params)
    for a, b in zip(th_model.parameters(), twin.parameters(), strict=True):
        assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_torch_fit_accepts_int32_labels_and_float32_inputs():
    X, y = make_xor(20, rng=0)
    model = TorchMLP([2, 8, 2], "tanh")
    hist = fit(model, X.astype(np.float32), y.astype(np.int32), epochs=2, batch_size=10, lr=0.1)
    assert len(hist.train_loss) == 2 and np.all(np.isfinite(hist.train_loss))


# ---------------------------------------------------------------------------- inputs, progress


def test_fit_does_not_modify_its_inputs():
    X, y = blobs()
    X0, y0 = X.copy(), y.copy()
    fit(MLP([5, 4, 3], rng=0), X, y, epochs=2)
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(y=np.zeros(9, dtype=int)), "X has 10 rows but y has 9 labels"),
        (dict(epochs=0), "epochs and batch_size must be at least 1"),
        (dict(batch_size=0), "epochs and batch_size must be at least 1"),
    ],
)
def test_bad_inputs(kw, match):
    args = dict(X=np.zeros((10, 2)), y=np.zeros(10, dtype=int)) | kw
    with pytest.raises(ValueError, match=match):
        fit(MLP([2, 3, 2]), args.pop("X"), args.pop("y"), **args)


def test_progress_bar_is_quiet_under_pytest(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    assert progress_enabled(None) is False
    X, y = blobs(50)
    fit(MLP([5, 3, 3]), X, y, epochs=2)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_default_follows_the_terminal_but_not_pytest(monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    # stderr a terminal (pytest -s in a shell): PYTEST_CURRENT_TEST still turns the bar off
    monkeypatch.setattr(sys, "stderr", type("Tty", (), {"isatty": lambda self: True})())
    assert progress_enabled(None) is False
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert progress_enabled(None) is True  # an interactive terminal outside pytest
    monkeypatch.setattr(sys, "stderr", type("File", (), {"isatty": lambda self: False})())
    assert progress_enabled(None) is False  # output to a file or a page build


def test_progress_true_writes_to_stderr(capsys):
    X, y = blobs(50)
    fit(MLP([5, 3, 3]), X, y, epochs=2, progress=True)
    captured = capsys.readouterr()
    assert "epochs" in captured.err
    assert captured.out == ""


def test_course_progress_env_var(capsys, monkeypatch):
    X, y = blobs(50)
    monkeypatch.setenv("COURSE_PROGRESS", "1")
    assert progress_enabled(None) is True
    fit(MLP([5, 3, 3]), X, y, epochs=1)
    assert "epochs" in capsys.readouterr().err
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    assert progress_enabled(None) is False and progress_enabled(True) is True


# ---------------------------------------------------------------------------- gradient clipping


@pytest.mark.parametrize("norm", [None, "layer"])
def test_numpy_and_torch_fit_clip_the_same_way(norm):
    X, y = blobs(203)
    X = X * 5.0  # large inputs: large gradients, so that clipping bites
    np_model = MLP([5, 7, 7, 3], "gelu", rng=1, norm=norm)
    th_model = TorchMLP(np_model.sizes, "gelu", dtype=torch.float64, norm=norm).load_numpy_params(
        np_model.params
    )
    kw = dict(epochs=3, batch_size=16, X_val=X[:40], y_val=y[:40], rng=3, progress=False, clip_grad_norm=0.5)
    h_np = fit(np_model, X, y, optimizer=SGD(lr=0.05, momentum=0.9), **kw)
    h_th = fit(th_model, X, y, optimizer=torch.optim.SGD(th_model.parameters(), lr=0.05, momentum=0.9), **kw)
    assert len(h_np.grad_norm) == len(h_th.grad_norm) == 3
    assert min(h_np.grad_norm) > 0.5  # every epoch's mean norm was above the limit
    assert_allclose(h_np.grad_norm, h_th.grad_norm, rtol=1e-10)
    assert_allclose(h_np.train_loss, h_th.train_loss, rtol=1e-10, atol=1e-13)
    assert_allclose(h_np.val_loss, h_th.val_loss, rtol=1e-10, atol=1e-13)
    twin = TorchMLP(np_model.sizes, "gelu", dtype=torch.float64, norm=norm).load_numpy_params(np_model.params)
    for a, b in zip(th_model.parameters(), twin.parameters(), strict=True):
        assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_fit_clips_after_the_backward_pass_and_before_the_step():
    """fit with clipping == a hand-written loop: loss_and_grads, clip_grad_norm, opt.step."""
    X, y = blobs(90)
    X = X * 5.0
    model, ref = MLP([5, 6, 3], "tanh", rng=0), MLP([5, 6, 3], "tanh", rng=0)
    hist = fit(model, X, y, epochs=2, batch_size=20, optimizer=SGD(lr=0.1), rng=4, clip_grad_norm=0.2)
    rng, opt, means = np.random.default_rng(4), SGD(lr=0.1), []
    for _ in range(2):
        order, norms = rng.permutation(len(X)), []
        for i in range(0, len(X), 20):
            _, grads = ref.loss_and_grads(X[order[i : i + 20]], y[order[i : i + 20]])
            norms.append(clip_grad_norm(grads, 0.2))
            opt.step(ref.params, grads)
        means.append(np.mean(norms))
    for k, v in ref.params.items():
        assert_allclose(model.params[k], v, rtol=1e-13, atol=1e-15, err_msg=k)
    assert_allclose(hist.grad_norm, means, rtol=1e-13)
    # and clipping changed the run: without it the weights end elsewhere
    free = MLP([5, 6, 3], "tanh", rng=0)
    fit(free, X, y, epochs=2, batch_size=20, optimizer=SGD(lr=0.1), rng=4)
    assert np.abs(free.params["W1"] - model.params["W1"]).max() > 1e-2


def test_grad_norm_is_recorded_only_with_clipping():
    X, y = blobs()
    assert fit(MLP([5, 4, 3], rng=0), X, y, epochs=2).grad_norm == []
    hist = fit(MLP([5, 4, 3], rng=0), X, y, epochs=2, clip_grad_norm=1e6)  # a limit never reached
    assert len(hist.grad_norm) == 2 and all(isinstance(v, float) and v > 0 for v in hist.grad_norm)
    assert_array_equal(hist.train_loss, fit(MLP([5, 4, 3], rng=0), X, y, epochs=2).train_loss)
    assert list(hist.to_frame().columns) == ["train_loss", "train_acc", "seconds", "grad_norm"]
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="clip_grad_norm"):
            fit(MLP([5, 4, 3], rng=0), X, y, epochs=1, clip_grad_norm=bad)
