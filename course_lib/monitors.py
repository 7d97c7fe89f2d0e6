"""Training monitors: ``fit`` / ``fit_seeds`` callbacks that watch a network train, layer by layer.

- ``UpdateRatio``: r_i = ||W_i(t+1) - W_i(t)||_F / ||W_i(t)||_F, how far one step moves each weight
  matrix relative to its size. The CS231n notes' rule of thumb: about 1e-3; 1e-5 learns too slowly,
  1e-1 too fast.
- ``GradNorm``: ||dL/dW_i||_F of each weight matrix at every step (the gradients the step applied,
  after clipping if ``fit`` clips).
- ``ActivationStats``: on a fixed probe batch, at the start and after every epoch, the fraction of
  saturated sigmoid/tanh activations and the fraction of dead units (``activation_stats``).

Each monitor keeps what it measured on itself (``steps`` or ``epochs``, and ``values(...)``), not in
``History``: a ``History`` stays one row per epoch and the monitors add no fields to it. For a
NumPy ``MLP`` a row is (L,), one value per weight matrix W1..WL (or per hidden layer); for a
``MultiSeedMLP`` trained by ``fit_seeds`` it is (S, L), one row per member; for a torch module the
weight matrices are its 2-D parameters in order (for ``torch_impl.mlp.MLP``, its Linear layers).
The diagnosis chapter (book/diagnosis.md) demonstrates each on a network with the fault and without.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from course_lib.training import Callback, _is_torch


def _weight_names(model: Any) -> list[str]:
    """The names of the weight matrices, input to output: W1..WL, or a torch module's 2-D parameters."""
    if _is_torch(model):
        return [name for name, p in model.named_parameters() if p.ndim == 2]
    return [f"W{i}" for i in range(1, model.n_layers + 1)]


def _weights(model: Any) -> list[np.ndarray]:
    """Copies of the weight matrices as NumPy arrays, (fan_in, fan_out) or (S, fan_in, fan_out)."""
    if _is_torch(model):
        params = dict(model.named_parameters())
        return [params[n].detach().cpu().numpy().copy() for n in _weight_names(model)]
    return [np.array(model.params[n], copy=True) for n in _weight_names(model)]


def _norm(a: Any, per_member: bool) -> np.ndarray | float:
    """||a||_F, or one norm per member (leading axis) of a MultiSeedMLP's stacked array: (S,)."""
    if _is_torch_tensor(a):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=float)
    if per_member:
        return np.sqrt((a * a).reshape(len(a), -1).sum(axis=1))
    return float(np.sqrt((a * a).sum()))


def _is_torch_tensor(a: Any) -> bool:
    return "torch" in sys.modules and isinstance(a, sys.modules["torch"].Tensor)


class _StepMonitor(Callback):
    """Records one row per monitored step: (L,) or, for a MultiSeedMLP, (S, L)."""

    def __init__(self, every: int = 1) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"every is a number of steps >= 1, got {every}")
        self.every = int(every)
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []

    def on_train_begin(self, model: Any) -> None:
        self.steps, self.rows = [], []
        self._per_member = hasattr(model, "n_seeds")

    def _record(self, step: int, per_layer: list) -> None:
        self.steps.append(step)
        self.rows.append(np.stack([np.asarray(v, dtype=float) for v in per_layer], axis=-1))

    def values(self) -> np.ndarray:
        """Everything recorded: (T, L) for one model, (T, S, L) for a MultiSeedMLP."""
        if not self.rows:
            raise ValueError(f"{type(self).__name__} recorded nothing: pass it to fit in callbacks=[...]")
        return np.stack(self.rows)


class UpdateRatio(_StepMonitor):
    """r_i = ||W_i(after) - W_i(before)||_F / ||W_i(before)||_F per weight matrix, every ``every`` steps.

    ``steps`` lists the steps measured (0, every, 2 every, ...); ``values()`` is (T, L) or (T, S, L).
    A ratio near 1e-3 is the CS231n notes' healthy rule of thumb; it is 0 when the learning rate is 0.
    """

    def on_train_begin(self, model: Any) -> None:
        super().on_train_begin(model)
        self._before: list[np.ndarray] | None = None

    def on_batch_begin(self, step: int, model: Any) -> None:
        if step % self.every == 0:
            self._before = _weights(model)

    def on_batch_end(self, step: int, model: Any, grads: dict[str, Any]) -> None:
        if self._before is None:
            return
        pm = self._per_member
        ratios = [
            _norm(after - before, pm) / _norm(before, pm)
            for before, after in zip(self._before, _weights(model), strict=True)
        ]
        self._record(step, ratios)
        self._before = None


class GradNorm(_StepMonitor):
    """||dL/dW_i||_F of every weight matrix, every ``every`` steps: the gradients the step applied.

    ``values()`` is (T, L) or (T, S, L). With ``fit(..., clip_grad_norm=c)`` these are the clipped
    gradients; ``History.grad_norm`` has the global norm before clipping.
    """

    def on_batch_end(self, step: int, model: Any, grads: dict[str, Any]) -> None:
        if step % self.every == 0:
            self._record(step, [_norm(grads[n], self._per_member) for n in _weight_names(model)])


#: The activations whose outputs saturate, and the output rescaled to [-1, 1] that ``threshold`` bounds.
_SATURATING = {"tanh": lambda a: a, "sigmoid": lambda a: 2.0 * a - 1.0}


def hidden_outputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    """The activation function's output a_i = f(z_i) of every hidden layer, in evaluation mode.

    (N, H_i) each for an MLP (NumPy or torch), (S, N, H_i) for a MultiSeedMLP. Taken right after
    the activation: before any skip connection, batch norm placed after it, or dropout.
    """
    if _is_torch(model):
        return _torch_hidden_outputs(model, X)
    _, caches, _ = model._forward(X)
    return [act_cache[3] for *_, act_cache in caches if act_cache is not None]  # (x, name, alpha, out)


def _torch_hidden_outputs(model: Any, X: np.ndarray) -> list[np.ndarray]:
    import torch

    from course_lib.torch_impl.activations import MODULES

    kind = type(MODULES[model.activation]())
    outputs: list[np.ndarray] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().cpu().numpy()))
        for m in model.modules()
        if isinstance(m, kind)
    ]
    p = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return outputs


def activation_stats(model: Any, X: np.ndarray, threshold: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """(saturated, dead) per hidden layer on the probe batch X (N, D): arrays (L_hidden,) or (S, L_hidden).

    saturated_i = mean over examples n and units j of [|u_nj| > threshold], u = a for tanh and
    u = 2a - 1 for the sigmoid (a < 0.005 or a > 0.995 at 0.99): where f' is nearly 0 and the unit
    passes almost no gradient. NaN for activations that do not saturate (ReLU and its family).
    dead_i = fraction of units j whose output a_nj is exactly 0 on every example n of X: a ReLU that
    never fires gets no gradient and cannot recover.
    """
    sat, dead = [], []
    for a in hidden_outputs(model, X):  # (N, H) or (S, N, H)
        to_unit = _SATURATING.get(model.activation)
        sat.append(np.nan if to_unit is None else (np.abs(to_unit(a)) > threshold).mean(axis=(-2, -1)))
        dead.append((a == 0).all(axis=-2).mean(axis=-1))
    S = getattr(model, "n_seeds", None)
    if S is not None:
        sat = [np.full(S, np.nan) if np.ndim(v) == 0 else v for v in sat]
    return np.stack(sat, axis=-1).astype(float), np.stack(dead, axis=-1).astype(float)


class ActivationStats(Callback):
    """``activation_stats`` on the probe batch ``X_probe`` before training and after every epoch.

    ``epochs`` lists 0 (before the first step), 1, 2, ...; ``saturated`` and ``dead`` hold one
    array per entry, (L_hidden,) or (S, L_hidden); ``values("saturated")`` stacks them: (E+1, ...).
    """

    def __init__(self, X_probe: np.ndarray, threshold: float = 0.99) -> None:
        self.X_probe, self.threshold = np.asarray(X_probe), float(threshold)
        self.epochs: list[int] = []
        self.saturated: list[np.ndarray] = []
        self.dead: list[np.ndarray] = []

    def _measure(self, epoch: int, model: Any) -> None:
        sat, dead = activation_stats(model, self.X_probe, self.threshold)
        self.epochs.append(epoch)
        self.saturated.append(sat)
        self.dead.append(dead)

    def on_train_begin(self, model: Any) -> None:
        self.epochs, self.saturated, self.dead = [], [], []
        self._measure(0, model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], model: Any) -> bool:
        self._measure(epoch, model)
        return False

    def values(self, name: str) -> np.ndarray:
        """``"saturated"`` or ``"dead"`` over the measurements: (E+1, L_hidden) or (E+1, S, L_hidden)."""
        if name not in ("saturated", "dead"):
            raise ValueError(f"name is 'saturated' or 'dead', got {name!r}")
        if not self.epochs:
            raise ValueError("ActivationStats recorded nothing: pass it to fit in callbacks=[...]")
        return np.stack(getattr(self, name))
