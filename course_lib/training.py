"""Mini-batch training for the NumPy and the torch MLPs, with a ``History`` of every epoch.

``fit`` shuffles with a seeded NumPy Generator, so the NumPy and torch models see the same
batches. Batches follow ``torch.utils.data.DataLoader(shuffle=True)``: ``batch_size`` rows each,
the last one smaller when ``batch_size`` does not divide N (``drop_last=False``); an epoch's
``train_loss`` weights each batch's mean loss by its size, so it is the mean per-example loss.

Its progress bar (tqdm) shows in a terminal and stays quiet in tests, page builds and notebooks
unless asked for (``progress=True``) or forced with ``COURSE_PROGRESS=1``.

Regularization (book chapter 4): a model with dropout gets the masks' Generator in every
training step (spawned from ``rng``, so the batches are the same with or without dropout); a
model's ``penalty()`` (L1/L2) is part of the training loss; ``apply_constraints()`` (max-norm)
runs after every optimizer step. ``callbacks`` see every epoch's metrics: ``EarlyStopping``
stops training when the monitored metric stops improving and can restore the best weights;
``Checkpoint`` saves the weights (``save_weights``: NumPy ``.npz``, torch ``state_dict``) to
a file, atomically, and ``load_weights`` reads them back with a clear error when the file is
damaged or belongs to another model. Keras's ``EarlyStopping`` and ``ModelCheckpoint`` are the
references for their behaviour.

Learning-rate schedules (book chapter 5): ``schedule`` is a function of the step count (a
``numpy_impl.schedules`` function with its other arguments bound) that sets the optimizer's
learning rate before every mini-batch (``schedule_unit="step"``, Keras's convention) or before
every epoch (``"epoch"``), or a torch ``LRScheduler`` whose ``step()`` is called after every
mini-batch or epoch. A NumPy MLP's batch-norm running averages are part of its weights here
(``get_weights``, checkpoints), as they are of a torch module's ``state_dict``.

Several seeds at once (book chapters 1-7): ``fit_seeds`` trains the S members of a
``numpy_impl.multiseed.MultiSeedMLP`` together, one batched step for all of them, each member on
exactly the batches, dropout masks and learning rates ``fit`` would give it alone (the tests
check the parameters and every ``History`` field against S separate ``fit`` runs). Its
``SeedHistory`` holds an (S,) array per epoch and metric, with ``mean``/``sd`` over the seeds.

Gradient clipping (the diagnosis chapter): ``clip_grad_norm=max_norm`` rescales every step's
gradients, after the backward pass and before the optimizer step, so that their global L2 norm is
at most max_norm (``numpy_impl.optimizers.clip_grad_norm``, ``torch.nn.utils.clip_grad_norm_``;
in ``fit_seeds`` each member by its own norm); ``History.grad_norm`` records each epoch's mean
norm *before* clipping, how large the gradients wanted to be.

Diagnostics (book/diagnosis.md): callbacks may also define ``on_batch_begin(step, model)`` and
``on_batch_end(step, model, grads)``, which ``fit`` and ``fit_seeds`` call around every gradient
step; ``course_lib.monitors`` builds the training monitors on them (update/weight ratio, per-layer
gradient norms, saturated and dead units), each keeping its records on itself. ``lr_range_test``
is the learning-rate range test of Smith (2017): one short run with a geometrically growing
learning rate, the model restored afterwards; ``suggest_lr`` reads a learning rate off its curve.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm


@dataclass
class History:
    """Per-epoch metrics; ``seconds`` is the training time of each epoch (evaluation excluded)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean loss per example over the epoch
    train_acc: list[float] = field(default_factory=list)  # accuracy on the whole training set
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # learning rate of each epoch's last step (with a schedule)
    batch_loss: list[float] = field(
        default_factory=list, repr=False
    )  # every mini-batch's mean loss, in order
    grad_norm: list[float] = field(default_factory=list)  # mean pre-clip gradient norm (with clipping)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_frame(self):
        """A pandas DataFrame, one row per epoch (columns without values are dropped; ``batch_loss``,
        one value per step, is not a column)."""
        import pandas as pd

        cols = {k: v for k, v in self.__dict__.items() if v and k != "batch_loss"}
        return pd.DataFrame(cols).set_index("epoch")


@dataclass
class SeedHistory:
    """Per-epoch metrics of the S members that ``fit_seeds`` trains together.

    Every entry of ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (and of ``batch_loss``,
    one per mini-batch) is an array of shape (S,), member s's value at s; ``seconds`` (training
    time of the whole batched epoch) and ``lr`` (shared by the members) are one float per epoch.
    ``values(field)`` is (epochs, S); ``final``, ``mean`` and ``sd`` summarise it; ``member(s)``
    is member s's ``History``, what ``fit`` would have returned for it.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[np.ndarray] = field(default_factory=list)  # (S,): mean loss per example
    train_acc: list[np.ndarray] = field(default_factory=list)  # (S,): on X, or on X_train_eval if given
    val_loss: list[np.ndarray] = field(default_factory=list)  # (S,)
    val_acc: list[np.ndarray] = field(default_factory=list)  # (S,)
    seconds: list[float] = field(default_factory=list)  # training time of all S members together
    lr: list[float] = field(default_factory=list)  # learning rate of each epoch's last step (one for all)
    batch_loss: list[np.ndarray] = field(default_factory=list, repr=False)  # (S,) for every mini-batch
    grad_norm: list[np.ndarray] = field(default_factory=list)  # (S,): mean pre-clip norm (with clipping)

    #: The fields with one value per member; the others hold one float for all of them.
    PER_MEMBER = ("train_loss", "train_acc", "val_loss", "val_acc", "batch_loss", "grad_norm")

    @property
    def n_seeds(self) -> int:
        """S, or 0 before the first epoch."""
        return len(self.train_loss[0]) if self.train_loss else 0

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def values(self, name: str) -> np.ndarray:
        """The field as an array (epochs, S); a shared field (``lr``, ``seconds``) is repeated per member."""
        if name not in self.__dataclass_fields__:
            raise ValueError(f"unknown field {name!r}; choose from {sorted(self.__dataclass_fields__)}")
        values = getattr(self, name)
        if not values:
            hint = " (pass X_val and y_val to fit_seeds)" if name.startswith("val_") else ""
            hint = " (pass clip_grad_norm to fit_seeds)" if name == "grad_norm" else hint
            raise ValueError(f"no {name} was recorded{hint}")
        if name in self.PER_MEMBER:
            return np.stack(values)  # (E, S)
        return np.repeat(np.asarray(values, dtype=float)[:, None], self.n_seeds, axis=1)

    def final(self, name: str) -> np.ndarray:
        """The last epoch's value of every member: (S,)."""
        return self.values(name)[-1]

    def mean(self, name: str) -> np.ndarray:
        """mean_s of the field at every epoch: (epochs,)."""
        return self.values(name).mean(axis=1)

    def sd(self, name: str) -> np.ndarray:
        """Sample standard deviation over the members, sqrt(sum_s (v_s - mean)^2 / (S - 1)): (epochs,)."""
        if self.n_seeds < 2:
            raise ValueError("a standard deviation over seeds needs at least 2 members")
        return self.values(name).std(axis=1, ddof=1)

    def member(self, s: int) -> History:
        """Member s's ``History`` (floats), as ``fit`` records it for one model."""

        def pick(name: str) -> list[float]:
            return [float(v[s]) for v in getattr(self, name)]

        return History(
            epoch=list(self.epoch),
            train_loss=pick("train_loss"),
            train_acc=pick("train_acc"),
            val_loss=pick("val_loss"),
            val_acc=pick("val_acc"),
            seconds=list(self.seconds),
            lr=list(self.lr),
            batch_loss=pick("batch_loss"),
            grad_norm=pick("grad_norm"),
        )


def progress_enabled(progress: bool | None) -> bool:
    """None means: on in an interactive terminal, off under pytest, in page builds and in files."""
    if progress is not None:
        return progress
    env = os.environ.get("COURSE_PROGRESS")
    if env in ("0", "1"):
        return env == "1"
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return sys.stderr.isatty()


#: The per-epoch metrics of a ``History`` that callbacks can monitor.
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def _is_torch(model: Any) -> bool:
    return "torch" in sys.modules and isinstance(model, sys.modules["torch"].nn.Module)


def fit(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.01,
    optimizer: Any = None,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    rng: np.random.Generator | int = 0,
    progress: bool | None = None,
    eval_train: bool = True,
    callbacks: Sequence[Callback] = (),
    schedule: Any = None,
    schedule_unit: str = "step",
    clip_grad_norm: float | None = None,
) -> History:
    """Train ``model`` with mini-batches for ``epochs`` epochs; returns its ``History``.

    ``model`` is a ``numpy_impl.mlp.MLP`` (``optimizer`` defaults to ``numpy_impl.optimizers.SGD(lr)``)
    or a ``torch.nn.Module`` returning logits (``optimizer`` defaults to ``torch.optim.SGD``).
    ``callbacks`` (``EarlyStopping``, ``Checkpoint``, or anything with their three methods) are
    told about every epoch and may stop training early.

    ``schedule``: a function ``t -> lr`` called before each mini-batch with the number of steps
    taken so far, t = 0, 1, ... (``schedule_unit="step"``), or before each epoch with the number of
    epochs done (``"epoch"``); its value becomes the learning rate (of every parameter group of a
    torch optimizer). A torch ``LRScheduler`` built on ``optimizer`` is stepped after every
    mini-batch or epoch instead. ``History.lr`` then records each epoch's last learning rate.

    ``clip_grad_norm``: the largest global L2 norm of a step's gradients; larger ones are scaled
    down to it after the backward pass, before the optimizer step (as
    ``torch.nn.utils.clip_grad_norm_``). ``History.grad_norm`` records each epoch's mean pre-clip norm.

    A callback with ``on_batch_begin(step, model)`` / ``on_batch_end(step, model, grads)`` is also
    told about every mini-batch (step = 0, 1, ... over the whole run), before the gradient step and
    after the optimizer step; ``grads`` are the gradients that step applied (after clipping): the
    NumPy model's dict, or ``{name: parameter.grad}`` for torch. The monitors of ``course_lib.monitors``
    (update/weight ratio, gradient norms) use them.
    """
    _check_clip(clip_grad_norm)
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    if schedule_unit not in ("step", "epoch"):
        raise ValueError(f"schedule_unit is 'step' (every mini-batch) or 'epoch', got {schedule_unit!r}")
    scheduler = schedule if schedule is not None and not callable(schedule) else None
    if scheduler is not None and not hasattr(scheduler, "step"):
        raise TypeError(f"schedule must be a function of the step or a torch LRScheduler, got {schedule!r}")
    rng = np.random.default_rng(rng)
    # Dropout masks come from a child of rng: spawning does not advance rng, so the batches are
    # the same with or without dropout. torch models draw from their own generator.
    drop_rng = rng.spawn(1)[0] if getattr(model, "has_dropout", False) and not _is_torch(model) else None
    grad_norms: list[float] = []  # the pre-clip norms of this epoch's steps (with clipping)
    begin_hooks, end_hooks = _batch_hooks(callbacks)
    grads: dict[str, Any] | None = {} if end_hooks else None  # each step's gradients, for the hooks
    step, evaluate, opt = (_torch_fns if _is_torch(model) else _numpy_fns)(
        model, lr, optimizer, drop_rng, clip=clip_grad_norm, grad_norms=grad_norms, grads_out=grads
    )
    if scheduler is not None and getattr(scheduler, "optimizer", opt) is not opt:
        raise ValueError("the LR scheduler must be built on the optimizer passed to fit")
    set_lr, get_lr = _lr_access(opt)
    n_steps, last_lr = 0, None

    def scheduled_step(xb, yb):
        nonlocal n_steps, last_lr
        if callable(schedule) and schedule_unit == "step":
            set_lr(schedule(n_steps))
        last_lr = get_lr()
        for hook in begin_hooks:
            hook(n_steps, model)
        loss = step(xb, yb)
        for hook in end_hooks:
            hook(n_steps, model, grads)
        n_steps += 1
        if scheduler is not None and schedule_unit == "step":
            scheduler.step()
        return loss

    hist = History()
    for cb in callbacks:
        cb.on_train_begin(model)
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        order = rng.permutation(len(X))
        batches = [order[i : i + batch_size] for i in range(0, len(X), batch_size)]
        if callable(schedule) and schedule_unit == "epoch":
            set_lr(schedule(epoch - 1))
        t0 = time.perf_counter()
        batch_losses = [scheduled_step(X[idx], y[idx]) for idx in batches]
        hist.seconds.append(time.perf_counter() - t0)
        if schedule is not None:
            hist.lr.append(float(last_lr))
        if scheduler is not None and schedule_unit == "epoch":
            scheduler.step()
        hist.epoch.append(epoch)
        hist.train_loss.append(float(np.average(batch_losses, weights=[len(b) for b in batches])))
        hist.batch_loss.extend(float(v) for v in batch_losses)
        if clip_grad_norm is not None:
            hist.grad_norm.append(float(np.mean(grad_norms)))
            grad_norms.clear()
        if eval_train:
            hist.train_acc.append(evaluate(X, y)[1])
        if X_val is not None:
            vl, va = evaluate(X_val, y_val)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
        val_acc = f"{hist.val_acc[-1]:.3f}" if hist.val_acc else "-"
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", val_acc=val_acc)
        logs = {k: getattr(hist, k)[-1] for k in METRICS if getattr(hist, k)}
        stop = [cb.on_epoch_end(epoch, logs, model) for cb in callbacks]  # every callback sees it
        if any(stop):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return hist


def fit_seeds(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    rngs: Sequence[np.random.Generator | int],
    epochs: int = 10,
    batch_size: int = 100,
    lr: float = 0.01,
    optimizer: Any = None,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    eval_train: bool = True,
    schedule: Any = None,
    schedule_unit: str = "step",
    X_train_eval: np.ndarray | None = None,
    y_train_eval: np.ndarray | None = None,
    clip_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> SeedHistory:
    """``fit`` for the S members of a ``numpy_impl.multiseed.MultiSeedMLP`` at once; a ``SeedHistory``.

    Member s trains as ``fit(member, X[s], y[s], rng=rngs[s], ...)`` would train it alone: the
    same permutations (one Generator per member, ``rngs[s]``), the same dropout masks (from
    ``rngs[s].spawn(1)[0]``), the same schedule, but every step is one batched step of all the
    members, (S, B, D) -> (S, B, C). X is (N, D) shared by the members or (S, N, D) one training
    set per member; y (N,) or (S, N); ``X_val``/``y_val`` likewise. ``optimizer`` is any
    ``numpy_impl.optimizers`` instance, stepping the stacked arrays (default ``SGD(lr)``);
    its updates are elementwise, so this equals stepping each member with its own copy.
    ``schedule`` is a function ``t -> lr`` of the step (or, with ``schedule_unit="epoch"``, the
    epoch) count, as in ``fit``. ``X_train_eval``/``y_train_eval``: a fixed subset on which
    ``train_acc`` is measured (with ``eval_train``) instead of all of X. ``clip_grad_norm``: as in
    ``fit``, member by member (``optimizers.clip_grad_norm_seeds``: each member's gradients are
    scaled by their own norm); ``SeedHistory.grad_norm`` holds the (S,) mean pre-clip norms.

    ``callbacks`` are told what ``fit`` tells them, about the batched model: ``on_train_begin``,
    ``on_batch_begin``/``on_batch_end`` (grads (S, ...) per name), ``on_epoch_end`` with logs of (S,)
    arrays (True stops every member; ``EarlyStopping`` monitors one float, so it is for ``fit``),
    ``on_train_end``. The ``course_lib.monitors`` callbacks record per member.
    """
    if not hasattr(model, "n_seeds"):
        raise TypeError(
            f"fit_seeds trains a MultiSeedMLP (all seeds at once); use fit for a {type(model).__name__}"
        )
    S = model.n_seeds
    X, y = np.asarray(X), np.asarray(y)
    rngs = list(rngs)
    if len(rngs) != S:
        raise ValueError(f"rngs needs one seed or Generator per member ({S}), got {len(rngs)}")
    if not (X.ndim == 2 or (X.ndim == 3 and X.shape[0] == S)):
        raise ValueError(f"X must be (N, D) shared by the members or ({S}, N, D), got {X.shape}")
    n = X.shape[-2]
    if y.shape not in ((n,), (S, n)):
        raise ValueError(f"y must be ({n},) or ({S}, {n}) for X of shape {X.shape}, got {y.shape}")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    if schedule_unit not in ("step", "epoch"):
        raise ValueError(f"schedule_unit is 'step' (every mini-batch) or 'epoch', got {schedule_unit!r}")
    if schedule is not None and not callable(schedule):
        raise TypeError(f"fit_seeds takes a schedule that is a function of the step, got {schedule!r}")
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if (X_train_eval is None) != (y_train_eval is None):
        raise ValueError("pass both X_train_eval and y_train_eval, or neither")
    _check_clip(clip_grad_norm)
    from course_lib.numpy_impl.optimizers import SGD, clip_grad_norm_seeds

    gens = [np.random.default_rng(r) for r in rngs]
    # As in fit: each member's dropout masks come from a child of its rng (spawning does not advance it).
    drop_rngs = [g.spawn(1)[0] for g in gens] if model.has_dropout else None
    opt = optimizer or SGD(lr=lr)
    members = np.arange(S)[:, None]  # (S, 1): with an (S, B) index, picks member s's rows of (S, N, ...)
    X_eval, y_eval = (X, y) if X_train_eval is None else (X_train_eval, y_train_eval)
    n_steps, last_lr = 0, None
    begin_hooks, end_hooks = _batch_hooks(callbacks)
    hist = SeedHistory()
    for cb in callbacks:
        cb.on_train_begin(model)
    for epoch in range(1, epochs + 1):
        order = np.stack([g.permutation(n) for g in gens])  # (S, N)
        if schedule is not None and schedule_unit == "epoch":
            opt.lr = float(schedule(epoch - 1))
        t0 = time.perf_counter()
        batch_losses, sizes, grad_norms = [], [], []
        for start in range(0, n, batch_size):
            idx = order[:, start : start + batch_size]  # (S, B)
            xb = X[idx] if X.ndim == 2 else X[members, idx]  # (S, B, D)
            yb = y[idx] if y.ndim == 1 else y[members, idx]  # (S, B)
            if schedule is not None and schedule_unit == "step":
                opt.lr = float(schedule(n_steps))
            last_lr = opt.lr
            losses, grads = model.loss_and_grads(xb, yb, drop_rngs)
            if clip_grad_norm is not None:
                grad_norms.append(clip_grad_norm_seeds(grads, clip_grad_norm))  # (S,), before clipping
            for hook in begin_hooks:
                hook(n_steps, model)
            opt.step(model.params, grads)
            model.apply_constraints()
            for hook in end_hooks:
                hook(n_steps, model, grads)
            n_steps += 1
            batch_losses.append(losses)
            sizes.append(idx.shape[1])
        hist.seconds.append(time.perf_counter() - t0)
        if schedule is not None:
            hist.lr.append(float(last_lr))
        hist.epoch.append(epoch)
        # (S, n_batches), each row contiguous: the same weighted mean fit takes of one member's losses
        hist.train_loss.append(np.average(np.stack(batch_losses, axis=1), axis=1, weights=sizes))
        hist.batch_loss.extend(batch_losses)
        if clip_grad_norm is not None:
            hist.grad_norm.append(np.stack(grad_norms).mean(axis=0))  # (S,)
        if eval_train:
            hist.train_acc.append(model.evaluate(X_eval, y_eval)[1])
        if X_val is not None:
            vl, va = model.evaluate(X_val, y_val)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
        logs = {k: getattr(hist, k)[-1] for k in METRICS if getattr(hist, k)}
        if any([cb.on_epoch_end(epoch, logs, model) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return hist


def _batch_hooks(callbacks: Sequence[Any]) -> tuple[list, list]:
    """The callbacks' ``on_batch_begin`` and ``on_batch_end`` methods (optional: older ones lack them)."""

    def overridden(cb, name):  # Callback's own no-op methods are left out: no cost per step
        method = getattr(type(cb), name, None)
        return method is not None and method is not getattr(Callback, name)

    begin = [cb.on_batch_begin for cb in callbacks if overridden(cb, "on_batch_begin")]
    end = [cb.on_batch_end for cb in callbacks if overridden(cb, "on_batch_end")]
    return begin, end


# ------------------------------------------------------------------- learning-rate range test


def lr_range_test(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    lr_min: float,
    lr_max: float,
    steps: int,
    *,
    batch_size: int = 100,
    rng: np.random.Generator | int = 0,
    optimizer: Any = None,
    stop_factor: float = 4.0,
    smooth: float = 0.98,
) -> tuple[np.ndarray, np.ndarray]:
    """lr_t = lr_min (lr_max / lr_min)^(t / (steps - 1)), t = 0..steps-1: one mini-batch step at each.

    The range test of Smith (2017, "Cyclical learning rates for training neural networks"): the
    learning rate grows geometrically over ``steps`` mini-batches (the batches ``fit`` would draw
    with this ``rng``, epoch after epoch if ``steps`` exceeds one epoch), and each step records the batch's
    loss before its update, smoothed as an exponential moving average with bias correction,
    s_t = m_t / (1 - smooth^(t+1)), m_t = smooth m_{t-1} + (1 - smooth) loss_t (``smooth=0``: the raw
    losses). The test stops after the first step whose smoothed loss is not finite or exceeds
    ``stop_factor`` times the smallest smoothed loss so far. Returns ``(lrs, losses)``, arrays (T,),
    T <= steps, the learning rates tried and their smoothed losses; ``suggest_lr`` reads them.

    ``model`` is a NumPy MLP (or anything ``fit`` trains with ``loss_and_grads``) or a torch module;
    ``optimizer`` as in ``fit`` (default plain SGD), its learning rate overwritten at every step.
    The model and the optimizer are left as they were: the test trains the model itself and then
    restores its parameters (and buffers: ``get_weights``/``set_weights``), and it steps a deep copy
    of a NumPy optimizer, or restores a torch optimizer's ``state_dict`` afterwards.
    """
    import copy

    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got lr_min={lr_min}, lr_max={lr_max}")
    if steps < 2 or batch_size < 1:
        raise ValueError("steps must be at least 2 and batch_size at least 1")
    if not stop_factor > 1:
        raise ValueError(f"stop_factor must be > 1, got {stop_factor}")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must lie in [0, 1), got {smooth}")
    torch_model = _is_torch(model)
    rng = np.random.default_rng(rng)
    drop_rng = rng.spawn(1)[0] if getattr(model, "has_dropout", False) and not torch_model else None
    weights = get_weights(model)
    opt_state = None
    if optimizer is not None and torch_model:
        opt_state = copy.deepcopy(optimizer.state_dict())
    elif optimizer is not None:
        optimizer = copy.deepcopy(optimizer)
    step, _, opt = (_torch_fns if torch_model else _numpy_fns)(model, lr_min, optimizer, drop_rng)
    set_lr, _ = _lr_access(opt)
    lrs = lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1))  # (steps,): geometric
    batches: list[np.ndarray] = []  # what is left of this epoch's batches, as fit draws them
    avg, best, losses = 0.0, math.inf, []
    try:
        for t, lr in enumerate(lrs):
            if not batches:  # a new epoch: a new permutation
                order = rng.permutation(len(X))
                batches = [order[i : i + batch_size] for i in range(0, len(X), batch_size)][::-1]
            idx = batches.pop()
            set_lr(lr)
            with np.errstate(over="ignore", invalid="ignore"):
                avg = smooth * avg + (1.0 - smooth) * float(step(X[idx], y[idx]))
                smoothed = avg / (1.0 - smooth ** (t + 1))
            losses.append(smoothed)
            if not math.isfinite(smoothed) or smoothed > stop_factor * best:
                break
            best = min(best, smoothed)
    finally:
        set_weights(model, weights)
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
    return lrs[: len(losses)].copy(), np.asarray(losses, dtype=float)


def suggest_lr(
    lrs: np.ndarray, losses: np.ndarray, rule: str = "steepest", *, skip_start: int = 10, skip_end: int = 5
) -> float:
    """A learning rate read off a range test's curve (``lr_range_test``'s ``(lrs, losses)``, (T,) each).

    ``"steepest"``: the lr where the loss falls fastest, argmin_t d loss / d log lr (``np.gradient``),
    among the points from ``skip_start`` up to the smallest loss and at most T - 1 - ``skip_end``
    (fastai's defaults: the first points are one noisy batch each, the last ones diverge);
    ``"min/10"``: a tenth of the lr with the smallest loss, fastai's rule, one order of magnitude below
    where the loss stops falling.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.shape != losses.shape or lrs.ndim != 1 or len(lrs) < 2:
        raise ValueError(
            f"lrs and losses must be arrays (T,) of one length T >= 2, got {lrs.shape} and {losses.shape}"
        )
    lowest = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
    if rule == "min/10":
        return float(lrs[lowest] / 10.0)
    if rule == "steepest":
        slope = np.gradient(losses, np.log(lrs))  # (T,)
        end = min(lowest, len(lrs) - 1 - skip_end)
        start = min(skip_start, max(end, 0))
        if end < start:
            raise ValueError(f"too few points ({len(lrs)}) for skip_start={skip_start}, skip_end={skip_end}")
        return float(lrs[start + int(np.nanargmin(slope[start : end + 1]))])
    raise ValueError(f"rule is 'steepest' or 'min/10', got {rule!r}")


def _check_clip(clip_grad_norm: float | None) -> None:
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(
            f"clip_grad_norm is the largest gradient norm allowed, > 0, or None; got {clip_grad_norm}"
        )


def _numpy_fns(model, lr, optimizer, drop_rng=None, *, clip=None, grad_norms=None, grads_out=None):
    """(step, evaluate, optimizer) for a NumPy model. With ``clip``, every step clips its gradients'
    global norm to ``clip`` before the optimizer step and appends the pre-clip norm to ``grad_norms``.
    ``grads_out``: a dict that every step fills with the gradients it applied (for callbacks)."""
    from course_lib.numpy_impl.optimizers import SGD, clip_grad_norm

    opt = optimizer or SGD(lr=lr)
    constrain = getattr(model, "apply_constraints", None)

    def step(xb, yb):
        if drop_rng is None:
            loss, grads = model.loss_and_grads(xb, yb)
        else:
            loss, grads = model.loss_and_grads(xb, yb, rng=drop_rng)
        if clip is not None:
            norm = clip_grad_norm(grads, clip)
            if grad_norms is not None:
                grad_norms.append(norm)
        if grads_out is not None:
            grads_out.clear()
            grads_out.update(grads)
        opt.step(model.params, grads)
        if constrain is not None:
            constrain()
        return loss

    def evaluate(Xe, ye):
        logits = model.forward(Xe)
        from course_lib.numpy_impl.losses import cross_entropy

        return cross_entropy(logits, ye), float((logits.argmax(1) == ye).mean())

    return step, evaluate, opt


def _torch_fns(model, lr, optimizer, drop_rng=None, *, clip=None, grad_norms=None, grads_out=None):
    """(step, evaluate, optimizer) for a torch module; ``clip``, ``grad_norms`` and ``grads_out`` (here
    ``{name: parameter.grad}``) as in ``_numpy_fns``."""
    import torch
    import torch.nn.functional as F

    from course_lib.torch_impl.optimizers import clip_grad_norm

    p = next(model.parameters())
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=lr)
    penalty = getattr(model, "penalty", None)
    constrain = getattr(model, "apply_constraints", None)

    def tensors(Xe, ye):
        return (  # class ids as int64 (F.cross_entropy's "Long"), whatever int type y has
            torch.as_tensor(Xe, dtype=p.dtype, device=p.device),
            torch.as_tensor(ye, dtype=torch.long, device=p.device),
        )

    def step(xb, yb):
        xb, yb = tensors(xb, yb)
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        if clip is not None:
            norm = clip_grad_norm(model.parameters(), clip)
            if grad_norms is not None:
                grad_norms.append(norm.item())
        if grads_out is not None:
            grads_out.clear()
            grads_out.update((k, v.grad) for k, v in model.named_parameters() if v.grad is not None)
        opt.step()
        if constrain is not None:
            constrain()
        return loss.item()

    @torch.no_grad()
    def evaluate(Xe, ye):
        model.eval()
        xe, ye = tensors(Xe, ye)
        logits = model(xe)
        # accuracy as count / N, exactly as the NumPy side (a float32 mean is off by ~1e-8)
        return F.cross_entropy(logits, ye).item(), (logits.argmax(1) == ye).sum().item() / len(ye)

    return step, evaluate, opt


def _lr_access(opt):
    """(set_lr, get_lr) for a NumPy optimizer (its ``lr``) or a torch one (every group's ``lr``)."""
    if hasattr(opt, "param_groups"):

        def set_lr(value):
            for group in opt.param_groups:
                group["lr"] = float(value)

        return set_lr, lambda: opt.param_groups[0]["lr"]

    def set_numpy_lr(value):
        opt.lr = float(value)

    return set_numpy_lr, lambda: opt.lr


# ------------------------------------------------------------------------------------ callbacks


class Callback:
    """What ``fit`` tells a callback. ``on_epoch_end`` returns True to stop training.

    ``on_batch_begin``/``on_batch_end`` bracket every gradient step (``step`` counts from 0 over the
    run); ``grads`` are the gradients the step applied. The base class does nothing in any of them.
    """

    def on_train_begin(self, model: Any) -> None:
        pass

    def on_batch_begin(self, step: int, model: Any) -> None:
        pass

    def on_batch_end(self, step: int, model: Any, grads: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Any) -> bool:
        return False

    def on_train_end(self, model: Any) -> None:
        pass


class _Monitor(Callback):
    """Tracks the best value of one metric: lower for a loss, higher for an accuracy (``mode="auto"``)."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def _value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            hint = " (pass X_val and y_val to fit)" if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, but fit records only {sorted(logs)}{hint}"
            )
        return float(logs[self.monitor])

    def _improves(self, value: float) -> bool:
        """Better than the best so far by more than min_delta (NaN never improves)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def _record(self, epoch: int, value: float) -> bool:
        if self._improves(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    As Keras's ``EarlyStopping``: with the best value at epoch b, training stops at the end of
    epoch b + patience if none of those epochs improved on it. With ``restore_best``, the model
    gets the weights of epoch b back when training ends (stopped early or not). After ``fit``,
    ``best_epoch``, ``best`` and ``stopped_epoch`` (None if it ran all its epochs) say what
    happened.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str = "auto",
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        if int(patience) != patience or patience < 0:
            raise ValueError(f"patience is a number of epochs >= 0, got {patience}")
        self.patience, self.restore_best = int(patience), restore_best

    def on_train_begin(self, model: Any) -> None:
        self.best = self.best_epoch = self.stopped_epoch = None
        self.wait = 0
        self.best_weights: dict | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Any) -> bool:
        if self._record(epoch, self._value(logs)):
            self.wait = 0
            if self.restore_best:
                self.best_weights = get_weights(model)
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model: Any) -> None:
        if self.restore_best and self.best_weights is not None:
            set_weights(model, self.best_weights)


class Checkpoint(_Monitor):
    """Save the model's weights to ``path`` after an epoch: every epoch, or (``save_best_only``)
    only when ``monitor`` improves, as Keras's ``ModelCheckpoint(save_weights_only=True)``.

    ``path`` may contain ``{epoch}`` or a metric (``"ckpt-{epoch:03d}-{val_acc:.3f}.npz"``) to
    keep one file per save. Writes are atomic (``save_weights``). ``saved_epochs`` lists the
    epochs saved; ``load_weights(model, checkpoint.path)`` reads the best one back.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.pattern, self.save_best_only = str(path), save_best_only
        self.path: Path | None = None if "{" in self.pattern else Path(self.pattern)
        self.saved_epochs: list[int] = []

    def on_train_begin(self, model: Any) -> None:
        self.best = self.best_epoch = None
        self.saved_epochs = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Any) -> bool:
        if self.save_best_only:
            save = self._record(epoch, self._value(logs))
        else:  # every epoch; the best is still tracked when the metric is recorded
            save = True
            if self.monitor in logs:
                self._record(epoch, float(logs[self.monitor]))
        if save:
            self.path = Path(self.pattern.format(epoch=epoch, **logs))
            save_weights(model, self.path)
            self.saved_epochs.append(epoch)
        return False


# -------------------------------------------------------------------------- weights and files


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not fit the model; the message says why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """There is no checkpoint file at that path."""


#: Names written into every checkpoint, to recognise it and the library that wrote it.
_NUMPY_FORMAT, _TORCH_FORMAT = "course_lib.numpy_impl", "course_lib.torch_impl"
_META = "__meta__"


def _numpy_arrays(model: Any) -> dict[str, np.ndarray]:
    """A NumPy model's ``params`` and, if it has them, its ``buffers`` (batch-norm running averages)."""
    return {**model.params, **getattr(model, "buffers", {})}


def get_weights(model: Any) -> dict[str, Any]:
    """A copy of the model's weights: ``params`` and ``buffers`` (NumPy) or the ``state_dict`` (torch)."""
    if _is_torch(model):
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {k: np.array(v, copy=True) for k, v in _numpy_arrays(model).items()}


def set_weights(model: Any, weights: dict[str, Any]) -> None:
    """Put ``weights`` (from ``get_weights`` or a checkpoint) back into the model, in place."""
    _check_fits(model, {k: tuple(v.shape) for k, v in weights.items()}, "these weights")
    if _is_torch(model):
        model.load_state_dict(weights)
    else:
        arrays = _numpy_arrays(model)
        for k, v in weights.items():
            arrays[k][...] = v


def _model_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    if _is_torch(model):
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return {k: tuple(np.shape(v)) for k, v in _numpy_arrays(model).items()}


def _check_fits(model: Any, shapes: dict[str, tuple[int, ...]], what: str) -> None:
    expected = _model_shapes(model)
    problems = [f"{k} is missing" for k in expected if k not in shapes]
    problems += [f"{k} is not a parameter of the model" for k in shapes if k not in expected]
    problems += [
        f"{k} has shape {shapes[k]} there but {expected[k]} in the model"
        for k in expected
        if k in shapes and shapes[k] != expected[k]
    ]
    if problems:
        sizes = getattr(model, "sizes", None)
        model_desc = type(model).__name__ + (f"{sizes}" if sizes else "")
        raise CheckpointError(
            f"{what} do not fit this {model_desc}: "
            + "; ".join(problems[:6])
            + (" ..." if len(problems) > 6 else "")
            + ". Build the model with the same sizes (and options) as the one that was saved."
        )


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    A crash (or an exception in ``write``) leaves ``path`` as it was: the old checkpoint or
    none, never a half-written one; the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def save_weights(model: Any, path: str | os.PathLike) -> Path:
    """Write the model's weights to ``path`` atomically: NumPy MLP -> ``.npz`` (no pickle), torch
    module -> ``torch.save`` of its ``state_dict``. Returns the path."""
    path = Path(path)
    meta = {"model": type(model).__name__, "sizes": getattr(model, "sizes", None), "version": 1}
    if _is_torch(model):
        import torch

        payload = {"format": _TORCH_FORMAT, "meta": json.dumps(meta), "state_dict": model.state_dict()}
        _atomic_write(path, lambda f: torch.save(payload, f))
    else:
        meta["format"] = _NUMPY_FORMAT
        arrays = {k: np.asarray(v) for k, v in _numpy_arrays(model).items()}
        if _META in arrays:
            raise ValueError(f"a parameter may not be called {_META!r}")
        _atomic_write(path, lambda f: np.savez(f, **arrays, **{_META: np.array(json.dumps(meta))}))
    return path


def _sniff(path: Path) -> str | None:
    """Which library wrote this zip-based file: 'numpy', 'torch', or None (unknown / not a zip)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if f"{_META}.npy" in names:
        return "numpy"
    if any(n.endswith("/data.pkl") for n in names):
        return "torch"
    return None


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable checkpoint ({type(err).__name__}: {err}). It is damaged, cut "
        "off, or not a checkpoint at all; save the weights again (Checkpoint writes are atomic, "
        "so a crash during save leaves the previous file intact)."
    )


def load_weights(model: Any, path: str | os.PathLike) -> Any:
    """Read weights written by ``save_weights`` into ``model`` (in place) and return the model.

    Raises ``CheckpointNotFoundError`` when there is no file, ``CheckpointError`` when the file is
    damaged, was written by the other backend, or does not fit the model (another ``sizes``).
    Nothing in the model changes unless the whole checkpoint fits.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}: nothing was saved there (yet)")
    want, kind = ("torch", _TORCH_FORMAT) if _is_torch(model) else ("numpy", _NUMPY_FORMAT)
    found = _sniff(path)
    if found is not None and found != want:
        raise CheckpointError(
            f"{path} holds {found} weights but the model is a {want} model: load it into a "
            f"{'torch_impl' if found == 'torch' else 'numpy_impl'} MLP, or convert it "
            "(torch_impl.mlp.MLP.load_numpy_params copies NumPy weights)"
        )
    if want == "torch":
        weights = _read_torch(path, model)
    else:
        weights = _read_numpy(path)
    _check_fits(model, {k: tuple(v.shape) for k, v in weights.items()}, f"the weights in {path}")
    set_weights(model, weights)
    return model


def _read_numpy(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}  # read every member now, inside the try
    except Exception as err:  # BadZipFile, EOFError, ValueError (not an npz), ...: all unreadable
        raise _unreadable(path, err) from err
    meta = arrays.pop(_META, None)
    try:
        fmt = json.loads(str(meta)).get("format") if meta is not None else None
    except json.JSONDecodeError:
        fmt = None
    if fmt != _NUMPY_FORMAT:
        raise CheckpointError(f"{path} is a NumPy file but not a course_lib checkpoint (no {_META} record)")
    return arrays


def _read_torch(path: Path, model: Any) -> dict[str, Any]:
    import torch

    device = next(iter(model.state_dict().values())).device if model.state_dict() else "cpu"
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch.load raises many types on damaged files (KeyError, ...)
        raise _unreadable(path, err) from err
    if not isinstance(payload, dict) or payload.get("format") != _TORCH_FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a course_lib checkpoint (no format record)")
    return payload["state_dict"]
