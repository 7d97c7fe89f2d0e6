"""Mini-batch training for the NumPy and the torch MLPs, with a ``History`` of every epoch.

``fit`` shuffles with a seeded NumPy Generator, so the NumPy and torch models see the same
batches. Batches follow ``torch.utils.data.DataLoader(shuffle=True)``: ``batch_size`` rows each,
the last one smaller when ``batch_size`` does not divide N (``drop_last=False``); an epoch's
``train_loss`` weights each batch's mean loss by its size, so it is the mean per-example loss.

Its progress bar (tqdm) shows in a terminal and stays quiet in tests, page builds and notebooks
unless asked for (``progress=True``) or forced with ``COURSE_PROGRESS=1``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
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

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_frame(self):
        """A pandas DataFrame, one row per epoch (columns without values are dropped)."""
        import pandas as pd

        cols = {k: v for k, v in self.__dict__.items() if v}
        return pd.DataFrame(cols).set_index("epoch")


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
) -> History:
    """Train ``model`` with mini-batches for ``epochs`` epochs; returns its ``History``.

    ``model`` is a ``numpy_impl.mlp.MLP`` (``optimizer`` defaults to ``numpy_impl.optimizers.SGD(lr)``)
    or a ``torch.nn.Module`` returning logits (``optimizer`` defaults to ``torch.optim.SGD``).
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    rng = np.random.default_rng(rng)
    step, evaluate = (_torch_fns if _is_torch(model) else _numpy_fns)(model, lr, optimizer)
    hist = History()
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        order = rng.permutation(len(X))
        batches = [order[i : i + batch_size] for i in range(0, len(X), batch_size)]
        t0 = time.perf_counter()
        batch_losses = [step(X[idx], y[idx]) for idx in batches]
        hist.seconds.append(time.perf_counter() - t0)
        hist.epoch.append(epoch)
        hist.train_loss.append(float(np.average(batch_losses, weights=[len(b) for b in batches])))
        if eval_train:
            hist.train_acc.append(evaluate(X, y)[1])
        if X_val is not None:
            vl, va = evaluate(X_val, y_val)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
        val_acc = f"{hist.val_acc[-1]:.3f}" if hist.val_acc else "-"
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", val_acc=val_acc)
    return hist


def _numpy_fns(model, lr, optimizer):
    from course_lib.numpy_impl.optimizers import SGD

    opt = optimizer or SGD(lr=lr)

    def step(xb, yb):
        loss, grads = model.loss_and_grads(xb, yb)
        opt.step(model.params, grads)
        return loss

    def evaluate(Xe, ye):
        logits = model.forward(Xe)
        from course_lib.numpy_impl.losses import cross_entropy

        return cross_entropy(logits, ye), float((logits.argmax(1) == ye).mean())

    return step, evaluate


def _torch_fns(model, lr, optimizer):
    import torch
    import torch.nn.functional as F

    p = next(model.parameters())
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=lr)

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
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(Xe, ye):
        model.eval()
        xe, ye = tensors(Xe, ye)
        logits = model(xe)
        # accuracy as count / N, exactly as the NumPy side (a float32 mean is off by ~1e-8)
        return F.cross_entropy(logits, ye).item(), (logits.argmax(1) == ye).sum().item() / len(ye)

    return step, evaluate
