"""A deep belief network as a stack of RBMs: greedy layer-wise pretraining, then an MLP.

``DBN(sizes)`` holds one ``RBM(sizes[i], sizes[i + 1])`` per pair of layers. ``pretrain``
trains them bottom-up (Hinton, Osindero & Teh 2006): RBM 1 on the data, then each RBM on the
hidden *probabilities* p(h = 1 | x) that the trained RBM below gives its input (a mean-field
pass, which is less noisy than binary samples and what ``transform`` computes). ``to_mlp``
turns the stack into a sigmoid ``MLP`` whose hidden layers start from the RBM weights and
hidden biases, with a fresh output layer, ready for supervised fine-tuning with
``course_lib.training.fit``. Book chapter 3, "Greedy layer-wise pretraining".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from course_lib.numpy_impl.rbm import RBM, RBMHistory

Array = NDArray[np.floating]


def _per_layer(value, n: int, name: str) -> list:
    """A value for every RBM: a scalar is repeated, a sequence must have one entry per RBM."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} RBMs")
        return list(value)
    return [value] * n


class DBN:
    """sizes = [D, H1, H2, ...]: RBMs D-H1, H1-H2, ...; ``rng`` (Generator or seed) initialises
    them and is the default randomness of ``pretrain``."""

    def __init__(
        self,
        sizes: Sequence[int],
        rng: np.random.Generator | int | None = 0,
        *,
        std: float = 0.01,
        dtype: type = np.float64,
    ) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be at least [visible, hidden] of positive ints, got {sizes}")
        self.rng = np.random.default_rng(rng)
        self.sizes = [int(s) for s in sizes]
        self.dtype = dtype
        pairs = zip(self.sizes[:-1], self.sizes[1:], strict=True)
        self.rbms = [RBM(a, b, self.rng, std=std, dtype=dtype) for a, b in pairs]

    def pretrain(
        self,
        X: ArrayLike,
        *,
        epochs: int | Sequence[int] = 10,
        batch_size: int = 10,
        lr: float | Sequence[float] = 0.1,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        rng: np.random.Generator | None = None,
        monitor: bool = True,
        callback=None,
        progress: bool | None = None,
    ) -> list[RBMHistory]:
        """Greedy layer-wise training, bottom-up; one ``RBMHistory`` per RBM.

        RBM i is trained with ``RBM.fit`` on the hidden probabilities of RBM i - 1 (the data for
        i = 1), which stays fixed from then on. ``epochs`` and ``lr`` may be one value per RBM;
        ``callback(layer, epoch, rbm)`` (layer 1-based) runs after every epoch of every RBM.
        """
        rng = self.rng if rng is None else rng
        epochs_ = _per_layer(epochs, len(self.rbms), "epochs")
        lrs = _per_layer(lr, len(self.rbms), "lr")
        data = np.asarray(X, dtype=self.dtype)
        histories = []
        for layer, (rbm, n_epochs, rate) in enumerate(zip(self.rbms, epochs_, lrs, strict=True), start=1):
            each_epoch = None if callback is None else functools.partial(callback, layer)
            histories.append(
                rbm.fit(
                    data,
                    epochs=n_epochs,
                    batch_size=batch_size,
                    lr=rate,
                    k=k,
                    persistent=persistent,
                    momentum=momentum,
                    weight_decay=weight_decay,
                    rng=rng,
                    monitor=monitor,
                    callback=each_epoch,
                    progress=progress,
                )
            )
            data = rbm.prob_h(data)  # (N, H_i): the input of the next RBM
        return histories

    def transform(self, X: ArrayLike, layer: int | None = None) -> Array:
        """Hidden probabilities of the top RBM (or of RBM ``layer``, 1-based), passed up mean-field."""
        top = len(self.rbms) if layer is None else int(layer)
        if not 1 <= top <= len(self.rbms):
            raise ValueError(f"layer must be in 1..{len(self.rbms)}, got {layer}")
        h = np.asarray(X, dtype=self.dtype)
        for rbm in self.rbms[:top]:
            h = rbm.prob_h(h)
        return h

    def to_mlp(
        self,
        n_classes: int,
        backend: str = "numpy",
        rng: np.random.Generator | int = 0,
        output_init: str = "xavier_normal",
        dtype=None,
        device: str = "cpu",
    ):
        """A sigmoid MLP [D, H1, ..., n_classes]: W_i = RBM_i.W, b_i = RBM_i.b_h, a new output layer.

        ``backend="numpy"`` gives a ``numpy_impl.mlp.MLP`` (``dtype`` default: the DBN's);
        ``"torch"`` a ``torch_impl.mlp.MLP`` with the same weights (``dtype`` default float32).
        The output layer is drawn with ``output_init`` from ``rng``; the visible biases, which
        only the generative model needs, are dropped.
        """
        from course_lib.numpy_impl.mlp import MLP

        np_dtype = self.dtype if dtype is None or backend == "torch" else dtype
        sizes = [*self.sizes, int(n_classes)]
        mlp = MLP(sizes, activation="sigmoid", init=output_init, rng=rng, dtype=np_dtype)
        for i, rbm in enumerate(self.rbms, start=1):
            mlp.params[f"W{i}"] = rbm.W.astype(np_dtype, copy=True)
            mlp.params[f"b{i}"] = rbm.b_h.astype(np_dtype, copy=True)
        if backend == "numpy":
            return mlp
        if backend != "torch":
            raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
        import torch

        from course_lib.torch_impl.mlp import MLP as TorchMLP

        net = TorchMLP(mlp.sizes, activation="sigmoid", dtype=dtype or torch.float32, device=device)
        return net.load_numpy_params(mlp.params)
