"""A multilayer perceptron of any depth and activation, in NumPy, with a hand-written backward.

``MLP(sizes)`` stacks dense layers; every hidden layer is followed by the activation and the
last layer outputs logits for ``losses.cross_entropy``. Its backward is checked by central
differences and against the torch MLP (``torch_impl.mlp``) in the tests; book chapter 1
derives it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl import initializers, layers, losses
from course_lib.numpy_impl.activations import ACTIVATIONS

Array = NDArray[np.floating]

#: The initializer an MLP uses when none is given: He for the ReLU family, Xavier otherwise.
DEFAULT_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "prelu": "he_normal",
                "elu": "he_normal", "sigmoid": "xavier_normal", "tanh": "xavier_normal"}


class MLP:
    """sizes = [D, H1, ..., C]: dense -> activation for each hidden layer, then dense -> logits.

    Parameters live in ``self.params``: ``W1 (D, H1)``, ``b1 (H1,)``, ..., and for PReLU one
    learned slope ``alpha1``, ``alpha2``... per hidden layer (initial value 0.25, as
    ``torch.nn.PReLU``). ``init`` is an initializer name from ``initializers.get`` (for example
    ``"xavier_normal"`` or ``"normal:0.01"``); ``rng`` is a Generator or a seed.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        init: str | None = None,
        rng: np.random.Generator | int = 0,
        dtype: type = np.float64,
    ) -> None:
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be at least [inputs, outputs] of positive ints, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        rng = np.random.default_rng(rng)
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.init = init or DEFAULT_INIT[activation]
        self.dtype = dtype
        self.params: dict[str, Array] = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True), start=1):
            self.params[f"W{i}"] = initializers.get(self.init, fan_in, fan_out, rng).astype(dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
            if activation == "prelu" and i < self.n_layers:
                self.params[f"alpha{i}"] = np.array(0.25, dtype=dtype)

    @property
    def n_layers(self) -> int:
        """Number of dense layers (hidden layers + the output layer)."""
        return len(self.sizes) - 1

    def _forward(self, x: Array) -> tuple[Array, list, list[Array]]:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"MLP expects inputs of shape (N, {self.sizes[0]}), got {x.shape}")
        caches, hidden = [], []
        h = x
        for i in range(1, self.n_layers + 1):
            h, dense_cache = layers.dense_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            act_cache = None
            if i < self.n_layers:  # (N, H_i)
                h, act_cache = layers.activation_forward(h, self.activation, self.params.get(f"alpha{i}"))
                hidden.append(h)
            caches.append((dense_cache, act_cache))
        return h, caches, hidden

    def forward(self, x: Array) -> Array:
        """Logits, shape (N, C)."""
        return self._forward(x)[0]

    __call__ = forward

    def hidden_activations(self, x: Array) -> list[Array]:
        """The output of every hidden layer's activation, a list of (N, H_i) arrays."""
        return self._forward(x)[2]

    def predict(self, x: Array) -> NDArray[np.integer]:
        """Predicted class ids, shape (N,)."""
        return self.forward(x).argmax(axis=1)

    def accuracy(self, x: Array, y: NDArray[np.integer]) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())

    def loss(self, x: Array, y: NDArray[np.integer]) -> float:
        return losses.cross_entropy(self.forward(x), y)

    def loss_and_grads(self, x: Array, y: NDArray[np.integer]) -> tuple[float, dict[str, Array]]:
        """Mean cross-entropy over the batch and its gradient for every entry of ``params``."""
        logits, caches, _ = self._forward(x)
        loss = losses.cross_entropy(logits, y)
        dh = losses.softmax_cross_entropy_grad(logits, y)  # (N, C)
        grads: dict[str, Array] = {}
        for i in range(self.n_layers, 0, -1):
            dense_cache, act_cache = caches[i - 1]
            if act_cache is not None:
                dh, dalpha = layers.activation_backward(dh, act_cache)  # (N, H_i)
                if dalpha is not None:
                    grads[f"alpha{i}"] = dalpha
            dh, grads[f"W{i}"], grads[f"b{i}"] = layers.dense_backward(dh, dense_cache)
        return loss, grads

    def gradient_norms(self, x: Array, y: NDArray[np.integer]) -> list[float]:
        """||dL/dW_i|| (Frobenius) for i = 1..n_layers: how much signal reaches each layer."""
        _, grads = self.loss_and_grads(x, y)
        return [float(np.linalg.norm(grads[f"W{i}"])) for i in range(1, self.n_layers + 1)]
