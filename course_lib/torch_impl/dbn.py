"""The DBN of ``numpy_impl.dbn`` built from torch RBMs (CPU or CUDA), with the same names.

Greedy layer-wise ``pretrain`` (each RBM on the hidden probabilities of the one below),
``transform``, and ``to_mlp`` returning a sigmoid ``torch_impl.mlp.MLP`` (or, with
``backend="numpy"``, a ``numpy_impl.mlp.MLP``) whose hidden layers start from the RBMs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from course_lib.numpy_impl.dbn import _per_layer
from course_lib.numpy_impl.rbm import RBMHistory
from course_lib.torch_impl.rbm import RBM, Rng


class DBN:
    """sizes = [D, H1, H2, ...]: torch RBMs D-H1, H1-H2, ...; ``generator`` initialises them."""

    def __init__(
        self,
        sizes: Sequence[int],
        generator: Rng | int | None = 0,
        *,
        std: float = 0.01,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be at least [visible, hidden] of positive ints, got {sizes}")
        device = torch.device(device)
        if generator is None or isinstance(generator, int):
            generator = torch.Generator(device=device).manual_seed(0 if generator is None else generator)
        self.generator = generator
        self.sizes = [int(s) for s in sizes]
        self.dtype, self.device = dtype, device
        self.rbms = [
            RBM(a, b, generator, std=std, dtype=dtype, device=device)
            for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        ]

    def pretrain(
        self,
        X,
        *,
        epochs: int | Sequence[int] = 10,
        batch_size: int = 10,
        lr: float | Sequence[float] = 0.1,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        rng: Rng | None = None,
        monitor: bool = True,
        callback=None,
        progress: bool | None = None,
    ) -> list[RBMHistory]:
        """Greedy layer-wise training, bottom-up; one ``RBMHistory`` per RBM."""
        rng = self.generator if rng is None else rng
        epochs_ = _per_layer(epochs, len(self.rbms), "epochs")
        lrs = _per_layer(lr, len(self.rbms), "lr")
        data = torch.as_tensor(X, dtype=self.dtype, device=self.device)
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
            data = rbm.transform(data)  # (N, H_i): the input of the next RBM
        return histories

    @torch.no_grad()
    def transform(self, X, layer: int | None = None) -> Tensor:
        """Hidden probabilities of the top RBM (or RBM ``layer``, 1-based), passed up mean-field."""
        top = len(self.rbms) if layer is None else int(layer)
        if not 1 <= top <= len(self.rbms):
            raise ValueError(f"layer must be in 1..{len(self.rbms)}, got {layer}")
        h = torch.as_tensor(X, dtype=self.dtype, device=self.device)
        for rbm in self.rbms[:top]:
            h = rbm.prob_h(h)
        return h

    def to_mlp(
        self,
        n_classes: int,
        backend: str = "torch",
        rng: np.random.Generator | int = 0,
        output_init: str = "xavier_normal",
        dtype=None,
    ):
        """A sigmoid MLP [D, H1, ..., n_classes] with W_i = RBM_i.W, b_i = RBM_i.b_h and a new
        output layer (drawn with ``output_init`` from the NumPy ``rng``). ``backend="torch"``
        (default here) gives a ``torch_impl.mlp.MLP`` on the DBN's device, ``"numpy"`` a
        ``numpy_impl.mlp.MLP`` (``dtype`` default float64)."""
        from course_lib.numpy_impl.mlp import MLP

        if backend not in ("numpy", "torch"):
            raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
        np_dtype = (dtype or np.float64) if backend == "numpy" else np.float64
        sizes = [*self.sizes, int(n_classes)]
        mlp = MLP(sizes, activation="sigmoid", init=output_init, rng=rng, dtype=np_dtype)
        for i, rbm in enumerate(self.rbms, start=1):
            mlp.params[f"W{i}"] = rbm.W.detach().cpu().numpy().astype(np_dtype)
            mlp.params[f"b{i}"] = rbm.b_h.detach().cpu().numpy().astype(np_dtype)
        if backend == "numpy":
            return mlp
        from course_lib.torch_impl.mlp import MLP as TorchMLP

        net = TorchMLP(mlp.sizes, activation="sigmoid", dtype=dtype or self.dtype, device=self.device)
        return net.load_numpy_params(mlp.params)
