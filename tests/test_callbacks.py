"""EarlyStopping and Checkpoint: scripted metric curves, ``fit`` integration, files and failures.

* ``EarlyStopping`` on scripted curves stops at the epoch Keras's rule gives (best + patience),
  honours ``min_delta``, ``mode`` and NaN, and restores the best epoch's weights (NumPy and torch);
  inside ``fit`` it ends the ``History`` at ``stopped_epoch``;
* ``Checkpoint`` saves when the metric improves (or every epoch, one file per epoch with a
  pattern), and the file holds that epoch's weights;
* ``save_weights``/``load_weights``: round trips, a crash mid-write leaves the previous file
  intact and no temporary file, and missing, truncated, foreign or mismatched files raise
  errors that say so, without touching the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from course_lib import training
from course_lib.numpy_impl.mlp import MLP
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import (
    Callback,
    Checkpoint,
    CheckpointError,
    CheckpointNotFoundError,
    EarlyStopping,
    fit,
    get_weights,
    load_weights,
    save_weights,
)

# val_loss per epoch (epoch 1 first): best 0.69 at epoch 5, never better afterwards until epoch 10
CURVE = [1.0, 0.8, 0.7, 0.72, 0.69, 0.71, 0.73, 0.74, 0.75, 0.6]


def run_script(cb, curve, model=None, key="val_loss"):
    """Feed ``curve`` to the callback as fit would; mark each epoch in the weights. Returns the
    epoch at which it asked to stop (None if never) and the model."""
    model = model or MLP([3, 4, 2], rng=0)
    cb.on_train_begin(model)
    stopped = None
    for epoch, value in enumerate(curve, start=1):
        mark(model, epoch)
        if cb.on_epoch_end(epoch, {key: value, "train_loss": 0.0}, model):
            stopped = epoch
            break
    cb.on_train_end(model)
    return stopped, model


def mark(model, epoch):
    """Weights that say which epoch they come from."""
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
    else:
        for p in model.params.values():
            p[...] = epoch


def epoch_of(model) -> float:
    if isinstance(model, torch.nn.Module):
        return float(next(model.parameters()).detach().flatten()[0])
    return float(model.params["W1"].flat[0])


# ------------------------------------------------------------------------------ early stopping


@pytest.mark.parametrize("patience, best, stop", [(1, 3, 4), (3, 5, 8), (4, 5, 9), (5, 10, None)])
def test_early_stopping_stops_patience_epochs_after_the_best(patience, best, stop):
    es = EarlyStopping("val_loss", patience=patience)
    stopped, model = run_script(es, CURVE)
    assert stopped == es.stopped_epoch == stop
    assert es.best_epoch == best and es.best == CURVE[best - 1]  # unstopped: epoch 10's 0.6
    assert epoch_of(model) == best, "the best epoch's weights are restored"


def test_min_delta_counts_only_clear_improvements():
    # improvements of more than 0.02: epochs 1, 2, 3 (0.8 -> 0.7); 0.69 is not 0.02 better than 0.7
    es = EarlyStopping(patience=3, min_delta=0.02)
    stopped, model = run_script(es, CURVE)
    assert (stopped, es.best_epoch, epoch_of(model)) == (6, 3, 3)


def test_patience_zero_stops_at_the_first_non_improvement():
    stopped, _ = run_script(EarlyStopping(patience=0), CURVE)
    assert stopped == 4


def test_accuracy_is_maximised_and_nan_never_improves():
    acc = [0.5, 0.7, 0.69, 0.71, 0.705, 0.70]
    es = EarlyStopping("val_acc", patience=2)
    stopped, model = run_script(es, acc, key="val_acc")
    assert (stopped, es.best_epoch, epoch_of(model)) == (6, 4, 4)
    es = EarlyStopping(patience=2)
    stopped, _ = run_script(es, [1.0, float("nan"), float("nan"), 0.5])
    assert (stopped, es.best_epoch) == (3, 1)
    es = EarlyStopping("val_acc", patience=2, mode="min")
    assert run_script(es, acc, key="val_acc")[0] == 3


def test_restore_best_false_keeps_the_last_weights():
    es = EarlyStopping(patience=3, restore_best=False)
    stopped, model = run_script(es, CURVE)
    assert stopped == 8 and epoch_of(model) == 8


def test_early_stopping_restores_torch_weights():
    es = EarlyStopping(patience=3)
    stopped, model = run_script(es, CURVE, model=TorchMLP([3, 4, 2]))
    assert stopped == 8 and epoch_of(model) == 5
    assert all(torch.all(p == 5.0) for p in model.parameters())


@pytest.mark.parametrize("kw, match", [
    (dict(patience=-1), "patience"),
    (dict(patience=1.5), "patience"),
    (dict(min_delta=-0.1), "min_delta"),
    (dict(mode="lowest"), "mode must be"),
])
def test_bad_early_stopping_options(kw, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kw)


def blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.0, size=(3, 6))
    y = rng.integers(0, 3, size=n)
    return centers[y] + rng.normal(size=(n, 6)), y


class Recorder(Callback):
    """Keeps every epoch's logs and weights."""

    def on_train_begin(self, model):
        self.logs, self.weights = [], []

    def on_epoch_end(self, epoch, logs, model):
        self.logs.append(dict(logs))
        self.weights.append(get_weights(model))
        return False


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fit_stops_and_restores_with_real_training(backend):
    X, y = blobs(120)
    Xv, yv = blobs(80, seed=1)
    model = MLP([6, 64, 3], rng=0) if backend == "numpy" else TorchMLP([6, 64, 3], generator=0)
    es, rec = EarlyStopping(patience=2, min_delta=10.0), Recorder()  # only epoch 1 "improves"
    hist = fit(model, X, y, epochs=20, batch_size=10, lr=0.2, X_val=Xv, y_val=yv, rng=0,
               callbacks=[es, rec])
    assert es.best_epoch == 1 and es.stopped_epoch == 3
    assert hist.epoch == [1, 2, 3] and len(rec.logs) == 3, "fit stops after the stopping epoch"
    assert rec.logs[0]["val_loss"] == hist.val_loss[0]
    restored = get_weights(model)
    for k, v in rec.weights[0].items():
        assert_array_equal(np.asarray(restored[k]), np.asarray(v), err_msg=k)
    last, first = rec.weights[2], rec.weights[0]
    assert not all(np.array_equal(np.asarray(last[k]), np.asarray(v)) for k, v in first.items())


def test_early_stopping_on_real_overfitting_picks_the_lowest_val_loss():
    X, y = blobs(60)
    Xv, yv = blobs(200, seed=1)
    es, rec = EarlyStopping(patience=5), Recorder()
    hist = fit(MLP([6, 128, 128, 3], rng=0), X, y, epochs=80, batch_size=10, lr=0.1, X_val=Xv, y_val=yv,
               rng=0, callbacks=[es, rec])
    assert es.stopped_epoch is not None and es.stopped_epoch < 80, "a small training set overfits"
    assert es.best_epoch == int(np.argmin(hist.val_loss)) + 1
    assert es.stopped_epoch == es.best_epoch + 5


def test_missing_metric_says_to_pass_validation_data():
    X, y = blobs(30)
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*pass X_val and y_val"):
        fit(MLP([6, 4, 3]), X, y, epochs=2, callbacks=[EarlyStopping()])


# ---------------------------------------------------------------------------------- checkpoints


def test_checkpoint_saves_the_best_epoch(tmp_path):
    path = tmp_path / "best.npz"
    ck = Checkpoint(path)
    run_script(ck, CURVE[:9])
    assert ck.saved_epochs == [1, 2, 3, 5] and ck.best_epoch == 5 and ck.path == path
    fresh = load_weights(MLP([3, 4, 2], rng=1), path)
    assert epoch_of(fresh) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"], "no temporary files left"


def test_checkpoint_every_epoch_with_a_pattern(tmp_path):
    ck = Checkpoint(tmp_path / "w-{epoch:02d}-{val_loss:.2f}.npz", save_best_only=False)
    run_script(ck, CURVE[:4])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["w-01-1.00.npz", "w-02-0.80.npz", "w-03-0.70.npz", "w-04-0.72.npz"]
    assert epoch_of(load_weights(MLP([3, 4, 2]), tmp_path / "w-02-0.80.npz")) == 2
    assert ck.best_epoch == 3 and ck.saved_epochs == [1, 2, 3, 4]


def test_checkpoint_in_fit_holds_the_best_val_epoch(tmp_path):
    X, y = blobs(60)
    Xv, yv = blobs(100, seed=1)
    rec, ck = Recorder(), Checkpoint(tmp_path / "ck.npz", monitor="val_acc")
    hist = fit(MLP([6, 32, 3], rng=0), X, y, epochs=6, lr=0.3, batch_size=10, X_val=Xv, y_val=yv,
               callbacks=[rec, ck])
    best = int(np.argmax(hist.val_acc)) + 1  # the first epoch with the highest accuracy
    assert ck.best_epoch == best
    loaded = get_weights(load_weights(MLP([6, 32, 3], rng=5), ck.path))
    for k, v in rec.weights[best - 1].items():
        assert_array_equal(loaded[k], v, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_round_trip(tmp_path, dtype):
    model = MLP([4, 5, 5, 3], "prelu", rng=0, dtype=dtype)
    before = get_weights(model)
    assert save_weights(model, tmp_path / "sub" / "m.npz") == tmp_path / "sub" / "m.npz"
    other = MLP([4, 5, 5, 3], "prelu", rng=9, dtype=dtype)
    ids = {k: id(v) for k, v in other.params.items()}
    assert load_weights(other, tmp_path / "sub" / "m.npz") is other
    for k, v in before.items():
        assert_array_equal(other.params[k], v)
        assert other.params[k].dtype == dtype
    assert {k: id(v) for k, v in other.params.items()} == ids, "loaded in place (optimizer state stays valid)"


def test_torch_round_trip(tmp_path):
    model = TorchMLP([4, 5, 3], "prelu", generator=0, dropout=0.5)
    save_weights(model, tmp_path / "m.pt")
    other = TorchMLP([4, 5, 3], "prelu", generator=3, dropout=0.5)
    load_weights(other, tmp_path / "m.pt")
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_crash_mid_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch, backend):
    def make(seed):
        return MLP([4, 5, 3], rng=seed) if backend == "numpy" else TorchMLP([4, 5, 3], generator=seed)

    path = tmp_path / "ck"
    save_weights(make(0), path)
    good = path.read_bytes()

    def crash(*args, **kwargs):  # np.savez(f, **arrays) or torch.save(obj, f)
        f = next(a for a in args if hasattr(a, "write"))
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", crash)
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_weights(make(1), path)
    monkeypatch.undo()
    assert path.read_bytes() == good, "the old checkpoint is untouched"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"], "the temporary file is removed"
    restored = load_weights(make(2), path)
    for k, v in get_weights(make(0)).items():
        assert_array_equal(np.asarray(get_weights(restored)[k]), np.asarray(v))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_missing_truncated_and_garbage_files(tmp_path, backend):
    model = MLP([4, 5, 3], rng=0) if backend == "numpy" else TorchMLP([4, 5, 3])
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint at") as info:
        load_weights(model, tmp_path / "nothing.npz")
    assert isinstance(info.value, FileNotFoundError)
    path = save_weights(model, tmp_path / "ck")
    before = get_weights(model)
    for damaged in (path.read_bytes()[: len(path.read_bytes()) // 2], b"\x00" * 100, b"", b"hello"):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_weights(model, path)
    after = get_weights(model)
    assert all(np.array_equal(np.asarray(after[k]), np.asarray(v)) for k, v in before.items())


def test_mismatched_models_get_a_clear_error_and_stay_unchanged(tmp_path):
    path = save_weights(MLP([4, 5, 3], rng=0), tmp_path / "small.npz")
    bigger = MLP([4, 8, 3], rng=1)
    before = get_weights(bigger)
    with pytest.raises(CheckpointError, match=r"W1 has shape \(4, 5\) there but \(4, 8\) in the model"):
        load_weights(bigger, path)
    assert all(np.array_equal(bigger.params[k], v) for k, v in before.items())
    with pytest.raises(CheckpointError, match="W3 is missing"):
        load_weights(MLP([4, 5, 5, 3]), path)
    with pytest.raises(CheckpointError, match="alpha1 is missing"):
        load_weights(MLP([4, 5, 3], "prelu"), path)
    tpath = save_weights(TorchMLP([4, 5, 3]), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match=r"net.0.weight has shape \(5, 4\) there but \(8, 4\)"):
        load_weights(TorchMLP([4, 8, 3]), tpath)


def test_the_other_backend_or_a_foreign_file_is_named(tmp_path):
    npath = save_weights(MLP([4, 5, 3]), tmp_path / "n.npz")
    tpath = save_weights(TorchMLP([4, 5, 3]), tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="holds numpy weights but the model is a torch model"):
        load_weights(TorchMLP([4, 5, 3]), npath)
    with pytest.raises(CheckpointError, match="holds torch weights but the model is a numpy model"):
        load_weights(MLP([4, 5, 3]), tpath)
    np.savez(tmp_path / "plain.npz", W1=np.zeros((4, 5)))
    with pytest.raises(CheckpointError, match="not a course_lib checkpoint"):
        load_weights(MLP([4, 5, 3]), tmp_path / "plain.npz")
    torch.save({"net.0.weight": torch.zeros(5, 4)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a course_lib checkpoint"):
        load_weights(TorchMLP([4, 5, 3]), tmp_path / "plain.pt")


def test_numpy_checkpoints_need_no_pickle(tmp_path):
    path = save_weights(MLP([4, 5, 3]), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"W1", "b1", "W2", "b2", training._META}


def test_the_chapter_exercise_on_patience():
    """Chapter 4's exercise: patience 3 stops at 9 (best 6); with min_delta 0.01, at 7 (best 4)."""
    curve = [0.90, 0.70, 0.62, 0.60, 0.61, 0.595, 0.60, 0.62, 0.63, 0.64]
    es = EarlyStopping(patience=3)
    stopped, model = run_script(es, curve)
    assert (stopped, es.best_epoch, epoch_of(model)) == (9, 6, 6)
    es = EarlyStopping(patience=3, min_delta=0.01)
    assert run_script(es, curve)[0] == 7 and es.best_epoch == 4
