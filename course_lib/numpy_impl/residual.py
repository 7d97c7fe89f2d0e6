"""Residual (skip) blocks and a residual MLP, in NumPy, with a hand-written backward.

A residual block computes out = x + F(x): the input is carried past F unchanged and F only
learns a correction. Here F is the *pre-activation* block of He et al. (2016, "Identity
mappings in deep residual networks") without batch norm,

    F(x) = act(act(x) W1 + b1) W2 + b2          x (N, H), W1 (H, H), W2 (H, H)

so it is act -> dense -> act -> dense. Two properties follow, and the tests check both:

* with W2 = 0 and b2 = 0 the block is the identity (out = x), whatever W1 and the activation;
* with the skip removed (``skip=False``) a ``ResidualMLP`` is exactly a plain
  ``numpy_impl.mlp.MLP`` of the same depth (dense, then act -> dense repeated), so the two
  networks differ by the additions x + ... alone: the comparison book chapter 7 makes.

Backward: d out / d x = I + d F / d x, so the gradient reaching x is the upstream gradient
*plus* what flows through F; it cannot vanish because F's Jacobian is small. Checked by central
differences and against ``torch_impl.residual`` (float64) in ``tests/test_residual.py``; book
chapter 7 ("Networks like LEGO") explains it. PReLU is not offered (its slopes would be
extra parameters per block); every other activation of ``activations.ACTIVATIONS`` is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl import initializers, layers, losses
from course_lib.numpy_impl.activations import ACTIVATIONS
from course_lib.numpy_impl.mlp import DEFAULT_INIT

Array = NDArray[np.floating]

#: The activations a residual block accepts.
BLOCK_ACTIVATIONS = tuple(sorted(a for a in ACTIVATIONS if a != "prelu"))


def _check_activation(activation: str) -> None:
    if activation not in BLOCK_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {list(BLOCK_ACTIVATIONS)}")


def residual_forward(
    x: Array, params: dict[str, Array], activation: str = "relu", skip: bool = True
) -> tuple[Array, tuple]:
    """out = x + F(x), F(x) = act(act(x) W1 + b1) W2 + b2. x (N, H) -> out (N, H).

    ``params`` holds ``W1 (H, H)``, ``b1 (H,)``, ``W2 (H, H)``, ``b2 (H,)``; W1 may be (H, M) and
    W2 (M, H) for a bottleneck of M units. ``skip=False`` returns F(x) alone (a plain block).
    """
    _check_activation(activation)
    x = np.asarray(x)
    W1, W2 = params["W1"], params["W2"]
    if x.ndim != 2 or W1.shape[0] != x.shape[1] or W2.shape[1] != x.shape[1]:
        raise ValueError(
            f"residual block: x {x.shape}, W1 {W1.shape}, W2 {W2.shape}; need (N, H), (H, M), (M, H)"
        )
    a0, act0 = layers.activation_forward(x, activation)  # (N, H)
    z1, dense1 = layers.dense_forward(a0, W1, params["b1"])  # (N, M)
    a1, act1 = layers.activation_forward(z1, activation)  # (N, M)
    f, dense2 = layers.dense_forward(a1, W2, params["b2"])  # (N, H)
    out = x + f if skip else f
    return out, (act0, dense1, act1, dense2, skip)


def residual_backward(dout: Array, cache: tuple) -> tuple[Array, dict[str, Array]]:
    """dx = dout (the skip, if any) + dout dF/dx; also dW1, db1, dW2, db2 in a dict.

    dout (N, H) -> dx (N, H) and ``{"W1": (H, M), "b1": (M,), "W2": (M, H), "b2": (H,)}``.
    """
    act0, dense1, act1, dense2, skip = cache
    grads: dict[str, Array] = {}
    da1, grads["W2"], grads["b2"] = layers.dense_backward(dout, dense2)  # (N, M)
    dz1, _ = layers.activation_backward(da1, act1)
    da0, grads["W1"], grads["b1"] = layers.dense_backward(dz1, dense1)  # (N, H)
    dx, _ = layers.activation_backward(da0, act0)
    if skip:
        dx = dx + dout  # the identity path: the upstream gradient arrives untouched
    return dx, grads


class ResidualMLP:
    """x -> dense (D, H) -> n_blocks residual blocks of width H -> act -> dense (H, C) -> logits.

    Parameters in ``self.params``: ``W0 (D, H)``, ``b0``; per block k = 1..n_blocks
    ``W{k}_1``, ``b{k}_1``, ``W{k}_2``, ``b{k}_2`` (all (H, H) or (H,)); ``Wout (H, C)``, ``bout``.
    The network has 2 n_blocks + 2 dense layers. With ``skip=False`` it is the plain MLP
    ``MLP([D] + [H] * (2 n_blocks + 1) + [C])`` with the same weights (``to_mlp_params`` renames them).

    ``init`` names the initializer of every dense layer (``initializers.get``; default He for the
    ReLU family, Xavier otherwise). ``zero_last=True`` starts every block's W2 at zero, so each
    block starts as the identity (Goyal et al. 2017 do this with batch norm's gamma). Training
    with ``training.fit``: it calls ``loss_and_grads`` and ``forward``; there is no dropout.
    """

    def __init__(
        self,
        n_inputs: int,
        width: int,
        n_classes: int,
        n_blocks: int,
        activation: str = "relu",
        init: str | None = None,
        rng: np.random.Generator | int = 0,
        skip: bool = True,
        zero_last: bool = False,
        dtype: type = np.float64,
    ) -> None:
        _check_activation(activation)
        if min(n_inputs, width, n_classes) < 1 or n_blocks < 0:
            raise ValueError(
                f"need positive sizes and n_blocks >= 0, got {n_inputs}, {width}, {n_classes}, {n_blocks}"
            )
        rng = np.random.default_rng(rng)
        self.n_inputs, self.width, self.n_classes = int(n_inputs), int(width), int(n_classes)
        self.n_blocks, self.activation, self.skip = int(n_blocks), activation, bool(skip)
        self.init = init or DEFAULT_INIT[activation]
        self.dtype = dtype

        def dense(fan_in: int, fan_out: int) -> Array:
            return initializers.get(self.init, fan_in, fan_out, rng).astype(dtype)

        # drawn in network order, as the plain MLP draws W1, W2, ... (same rng -> same weights)
        self.params: dict[str, Array] = {"W0": dense(n_inputs, width), "b0": np.zeros(width, dtype)}
        for k in range(1, self.n_blocks + 1):
            self.params[f"W{k}_1"], self.params[f"b{k}_1"] = dense(width, width), np.zeros(width, dtype)
            W2 = dense(width, width)
            self.params[f"W{k}_2"] = np.zeros_like(W2) if zero_last else W2
            self.params[f"b{k}_2"] = np.zeros(width, dtype)
        self.params["Wout"], self.params["bout"] = dense(width, n_classes), np.zeros(n_classes, dtype)
        self.buffers: dict[str, Array] = {}  # none; here so checkpoints treat it as the MLP

    has_dropout = False

    def block_params(self, k: int) -> dict[str, Array]:
        """Block k's parameters under the names ``residual_forward`` takes (views, not copies)."""
        p = self.params
        return {"W1": p[f"W{k}_1"], "b1": p[f"b{k}_1"], "W2": p[f"W{k}_2"], "b2": p[f"b{k}_2"]}

    def _forward(self, x: Array) -> tuple[Array, list, list[Array]]:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"ResidualMLP expects inputs of shape (N, {self.n_inputs}), got {x.shape}")
        h, stem = layers.dense_forward(x, self.params["W0"], self.params["b0"])  # (N, H)
        caches, hidden = [stem], [h]
        for k in range(1, self.n_blocks + 1):
            h, cache = residual_forward(h, self.block_params(k), self.activation, self.skip)
            caches.append(cache)
            hidden.append(h)
        a, act = layers.activation_forward(h, self.activation)
        logits, head = layers.dense_forward(a, self.params["Wout"], self.params["bout"])  # (N, C)
        caches += [act, head]
        return logits, caches, hidden

    def forward(self, x: Array, rng: Any = None, *, train: bool = False) -> Array:
        """Logits (N, C) for inputs (N, D). ``rng`` and ``train`` are accepted and ignored (no dropout)."""
        return self._forward(x)[0]

    __call__ = forward

    def hidden_activations(self, x: Array) -> list[Array]:
        """The stream h_0 (after the first dense layer) and the output of every block, (N, H) each."""
        return self._forward(x)[2]

    def predict(self, x: Array) -> NDArray[np.integer]:
        return self.forward(x).argmax(axis=1)

    def accuracy(self, x: Array, y: NDArray[np.integer]) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())

    def loss(self, x: Array, y: NDArray[np.integer], *, train: bool = False) -> float:
        """Mean cross-entropy of the logits."""
        return losses.cross_entropy(self.forward(x), y)

    def loss_and_grads(
        self, x: Array, y: NDArray[np.integer], rng: Any = None, **_: Any
    ) -> tuple[float, dict[str, Array]]:
        """Mean cross-entropy and its gradient for every entry of ``params``."""
        logits, caches, _ = self._forward(x)
        stem, blocks, (act, head) = caches[0], caches[1:-2], caches[-2:]
        grads: dict[str, Array] = {}
        dh = losses.softmax_cross_entropy_grad(logits, y)  # (N, C)
        da, grads["Wout"], grads["bout"] = layers.dense_backward(dh, head)  # (N, H)
        dh, _ = layers.activation_backward(da, act)
        for k in range(self.n_blocks, 0, -1):
            dh, g = residual_backward(dh, blocks[k - 1])
            for name, value in g.items():
                grads[f"W{k}_{name[1]}" if name[0] == "W" else f"b{k}_{name[1]}"] = value
        grads["W0"], grads["b0"] = stem[0].T @ dh, dh.sum(axis=0)  # no dx needed for the inputs
        return losses.cross_entropy(logits, y), grads

    def gradient_norms(self, x: Array, y: NDArray[np.integer]) -> list[float]:
        """||dL/dW|| (Frobenius) of every dense layer in network order: W0, W1_1, W1_2, ..., Wout."""
        _, grads = self.loss_and_grads(x, y)
        return [float(np.linalg.norm(grads[name])) for name in self.weight_names()]

    def weight_names(self) -> list[str]:
        """The weight matrices in network order (layer 1 = next to the input)."""
        names = ["W0"]
        for k in range(1, self.n_blocks + 1):
            names += [f"W{k}_1", f"W{k}_2"]
        return [*names, "Wout"]

    def to_mlp_params(self) -> dict[str, Array]:
        """The parameters renamed W1, b1, ..., W_L, b_L for ``numpy_impl.mlp.MLP`` (copies)."""
        out: dict[str, Array] = {}
        for i, name in enumerate(self.weight_names(), start=1):
            out[f"W{i}"] = self.params[name].copy()
            out[f"b{i}"] = self.params["b" + name[1:]].copy()
        return out
