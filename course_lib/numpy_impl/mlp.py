"""A multilayer perceptron of any depth and activation, in NumPy, with a hand-written backward.

``MLP(sizes)`` stacks dense layers; every hidden layer is followed by the activation and the
last layer outputs logits for ``losses.cross_entropy``. Its backward is checked by central
differences and against the torch MLP (``torch_impl.mlp``) in the tests; book chapter 1
derives it.

Regularization (book chapter 4): ``dropout`` after every hidden activation (one rate, or one per
hidden layer) and ``input_dropout`` on the inputs, applied only when ``loss_and_grads`` is given
the Generator that draws the masks; ``l1``/``l2`` penalties on every weight matrix (not the
biases), added to ``loss`` and to the gradients; ``max_norm``, a constraint that
``apply_constraints()`` enforces after each optimizer step (``training.fit`` calls it).

Batch normalization (book chapter 5): ``batchnorm=True`` (or ``"before"``) normalizes every hidden
layer's pre-activations, dense -> batch norm -> activation, as Ioffe and Szegedy do; the dense
layer then has no bias (the batch norm's beta takes its place). ``batchnorm="after"`` normalizes
the activation's output instead, dense -> activation -> batch norm. The learned scale and shift
are the parameters ``gamma{i}`` and ``beta{i}``; the running averages of the batch statistics are
not parameters and live in ``self.buffers`` (``running_mean{i}``, ``running_var{i}``). A training
step (``loss_and_grads``) normalizes with the batch's statistics and updates the running averages;
``forward``, ``loss`` and ``predict`` evaluate with the running averages unless asked for the
batch's (``train=True``), and never change them.

Other normalizations (the normalization chapter): ``norm="layer"`` (layer norm) or ``norm="rms"``
(RMSNorm) normalize each example's pre-activations over its H_i units, dense -> norm -> activation,
with ``layers.layernorm_forward`` / ``rmsnorm_forward``: the same function in training and
evaluation, no running averages. Layer norm's beta replaces the dense bias, as batch norm's does;
RMSNorm has no beta, so the dense layer keeps its bias. ``norm="batch"`` is ``batchnorm=True``.

Skip connections (book chapter 7): ``residual=True`` adds each hidden layer's input to its output,
h_i = f_i(h_{i-1}) + h_{i-1}, for every hidden layer after the first whose width equals its input's
(f_i is the layer's dense -> [batch norm] -> activation -> [batch norm]; dropout acts on the sum).
``residual.ResidualMLP`` is the pre-activation residual network of the chapter, two dense layers
per block; this flag gives the plain MLP the one-layer form of the same idea.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl import initializers, layers, losses, regularization
from course_lib.numpy_impl.activations import ACTIVATIONS

Array = NDArray[np.floating]

#: The initializer an MLP uses when none is given: He for the ReLU family, Xavier otherwise.
DEFAULT_INIT = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "prelu": "he_normal",
    "elu": "he_normal",
    "gelu": "he_normal",  # ReLU-like: ~ x for x >> 0, ~ 0 for x << 0
    "silu": "he_normal",
    "sigmoid": "xavier_normal",
    "tanh": "xavier_normal",
}


class MLP:
    """sizes = [D, H1, ..., C]: dense -> activation for each hidden layer, then dense -> logits.

    Parameters live in ``self.params``: ``W1 (D, H1)``, ``b1 (H1,)``, ..., and for PReLU one
    learned slope ``alpha1``, ``alpha2``... per hidden layer (initial value 0.25, as
    ``torch.nn.PReLU``). ``init`` is an initializer name from ``initializers.get`` (for example
    ``"xavier_normal"`` or ``"normal:0.01"``); ``rng`` is a Generator or a seed.

    ``dropout`` is the probability of *dropping* a hidden unit (PyTorch's ``p``), a float for
    every hidden layer or a list with one per hidden layer; ``input_dropout`` the same for the
    inputs. ``l1`` and ``l2`` add ``l1 sum|W| + (l2/2) sum W^2`` over the weight matrices to the
    loss. ``max_norm`` is the largest norm allowed for the incoming weight vector of any unit
    (a column of a W), enforced by ``apply_constraints``.

    ``norm`` is None, ``"batch"``, ``"layer"`` or ``"rms"``: the normalization of every hidden
    layer's pre-activations (dense -> norm -> activation), with a learned scale ``gamma{i}`` (H_i,)
    and, for batch and layer norm, a shift ``beta{i}`` (H_i,) that replaces the bias ``b{i}``.
    ``batchnorm``, the older switch, is False, True / ``"before"`` (= ``norm="batch"``) or
    ``"after"`` (dense -> activation -> BN); giving both is allowed only when they agree
    (``norm="batch"`` with any batchnorm but False). ``bn_momentum`` and ``bn_eps`` are PyTorch's
    ``momentum`` (running = (1 - m) running + m batch) and ``eps`` of batch norm; ``norm_eps`` is
    the eps of layer norm and RMSNorm (None: 1e-5 and 1e-6, the layer functions' defaults).
    ``residual`` adds an identity skip around every hidden layer after the first whose input and
    output widths agree (``skips`` lists their numbers).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        init: str | None = None,
        rng: np.random.Generator | int = 0,
        dtype: type = np.float64,
        dropout: float | Sequence[float] = 0.0,
        input_dropout: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
        max_norm: float | None = None,
        batchnorm: bool | str = False,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        residual: bool = False,
        norm: str | None = None,
        norm_eps: float | None = None,
    ) -> None:
        check_options(sizes, input_dropout, l1, l2, max_norm)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        rng = np.random.default_rng(rng)
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.init = init or DEFAULT_INIT[activation]
        self.dtype = dtype
        self.dropout = dropout_rates(dropout, len(self.sizes) - 2)
        self.input_dropout = float(input_dropout)
        self.l1, self.l2, self.max_norm = float(l1), float(l2), max_norm
        self.norm, self.batchnorm, self.norm_eps = norm_options(norm, batchnorm, norm_eps)
        self.bn_momentum, self.bn_eps = float(bn_momentum), float(bn_eps)
        self.residual = bool(residual)
        self.skips = residual_layers(self.sizes) if self.residual else []
        self.params: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}  # batch-norm running averages (not trained by gradients)
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True), start=1):
            hidden = i < self.n_layers
            self.params[f"W{i}"] = initializers.get(self.init, fan_in, fan_out, rng).astype(dtype)
            if not (hidden and norm_replaces_bias(self.norm, self.batchnorm)):  # beta replaces the bias
                self.params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
            if hidden and self.norm:
                self.params[f"gamma{i}"] = np.ones(fan_out, dtype=dtype)
                if self.norm != "rms":  # RMSNorm has no shift
                    self.params[f"beta{i}"] = np.zeros(fan_out, dtype=dtype)
            if hidden and self.norm == "batch":
                running = layers.batchnorm_running(fan_out, dtype)
                self.buffers[f"running_mean{i}"], self.buffers[f"running_var{i}"] = (
                    running["mean"],
                    running["var"],
                )
            if activation == "prelu" and hidden:
                self.params[f"alpha{i}"] = np.array(0.25, dtype=dtype)

    @property
    def n_layers(self) -> int:
        """Number of dense layers (hidden layers + the output layer)."""
        return len(self.sizes) - 1

    @property
    def has_dropout(self) -> bool:
        """True when some layer drops units in training (then ``loss_and_grads`` wants an rng)."""
        return self.input_dropout > 0 or any(p > 0 for p in self.dropout)

    def running(self, i: int) -> dict[str, Array]:
        """Layer i's running statistics as ``batchnorm_forward`` takes them (views of ``buffers``)."""
        return {"mean": self.buffers[f"running_mean{i}"], "var": self.buffers[f"running_var{i}"]}

    def _batchnorm(self, h: Array, i: int, train: bool, update: bool) -> tuple[Array, tuple]:
        running = self.running(i)
        return layers.batchnorm_forward(
            h,
            self.params[f"gamma{i}"],
            self.params[f"beta{i}"],
            running if (update or not train) else None,
            train,
            self.bn_momentum,
            self.bn_eps,
        )

    def _norm(self, h: Array, i: int, train: bool, update: bool) -> tuple[Array, tuple]:
        """Layer i's normalization of h (N, H_i) before the activation: batch, layer or RMS norm."""
        if self.norm == "batch":
            return self._batchnorm(h, i, train, update)
        if self.norm == "layer":
            return layers.layernorm_forward(
                h, self.params[f"gamma{i}"], self.params[f"beta{i}"], self.norm_eps
            )
        return layers.rmsnorm_forward(h, self.params[f"gamma{i}"], self.norm_eps)

    def _norm_backward(self, dh: Array, cache: tuple, i: int, grads: dict[str, Array]) -> Array:
        """dL/dh through layer i's normalization; its gamma (and beta) gradients go into ``grads``."""
        if self.norm == "rms":
            dh, grads[f"gamma{i}"] = layers.rmsnorm_backward(dh, cache)
            return dh
        backward = layers.batchnorm_backward if self.norm == "batch" else layers.layernorm_backward
        dh, grads[f"gamma{i}"], grads[f"beta{i}"] = backward(dh, cache)
        return dh

    def _forward(
        self, x: Array, rng: np.random.Generator | None = None, train: bool = False, update: bool = False
    ) -> tuple[Array, list, list[Array]]:
        """Logits, caches and hidden outputs.

        Dropout masks are drawn from ``rng`` when given; batch norm uses the batch's statistics
        when ``train`` (updating the running averages when ``update``), the running ones otherwise.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"MLP expects inputs of shape (N, {self.sizes[0]}), got {x.shape}")
        drop = rng is not None
        caches, hidden = [], []
        h, drop_cache = layers.dropout_forward(x, self.input_dropout, rng, drop)
        for i in range(1, self.n_layers + 1):
            layer_input = h  # (N, H_{i-1}), after dropout: the skip carries it past the layer
            h, dense_cache = layers.dense_forward(h, self.params[f"W{i}"], self.params.get(f"b{i}", 0.0))
            bn_cache = act_cache = None
            if i < self.n_layers:  # (N, H_i)
                if self.norm and self.batchnorm != "after":  # (N, H_i): batch, layer or RMS norm
                    h, bn_cache = self._norm(h, i, train, update)
                h, act_cache = layers.activation_forward(h, self.activation, self.params.get(f"alpha{i}"))
                if self.batchnorm == "after":
                    h, bn_cache = self._batchnorm(h, i, train, update)
                if i in self.skips:
                    h = h + layer_input
                hidden.append(h)
            caches.append((drop_cache, dense_cache, bn_cache, act_cache))
            if i < self.n_layers:  # the mask of the next layer's input
                h, drop_cache = layers.dropout_forward(h, self.dropout[i - 1], rng, drop)
        return h, caches, hidden

    def forward(self, x: Array, rng: np.random.Generator | None = None, *, train: bool = False) -> Array:
        """Logits, shape (N, C).

        Evaluation mode by default. ``rng`` switches dropout on (masks drawn from it); ``train=True``
        makes batch norm use this batch's statistics instead of the running averages, which stay
        as they are (only ``loss_and_grads`` updates them).
        """
        return self._forward(x, rng, train)[0]

    __call__ = forward

    def hidden_activations(self, x: Array, train: bool = False) -> list[Array]:
        """The output of every hidden layer (after its batch norm, if that comes last), (N, H_i) each.

        ``train=True``: batch norm with the batch's statistics, as in a training step.
        """
        return self._forward(x, train=train)[2]

    def predict(self, x: Array) -> NDArray[np.integer]:
        """Predicted class ids, shape (N,)."""
        return self.forward(x).argmax(axis=1)

    def accuracy(self, x: Array, y: NDArray[np.integer]) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())

    def loss(self, x: Array, y: NDArray[np.integer], *, train: bool = False) -> float:
        """Mean cross-entropy in evaluation mode (no dropout), plus the weight penalty if any.

        ``train=True``: batch norm with the batch's statistics (the loss ``loss_and_grads``
        differentiates), without updating the running averages.
        """
        return losses.cross_entropy(self.forward(x, train=train), y) + self.penalty()

    def penalty(self) -> float:
        """l1 * sum |W| + (l2 / 2) * sum W^2 over the weight matrices W1..WL (0.0 without)."""
        if not (self.l1 or self.l2):
            return 0.0
        return sum(
            regularization.elastic_net_penalty(self.params[f"W{i}"], self.l1, self.l2)
            for i in range(1, self.n_layers + 1)
        )

    def loss_and_grads(
        self,
        x: Array,
        y: NDArray[np.integer],
        rng: np.random.Generator | None = None,
        *,
        update_running: bool = True,
    ) -> tuple[float, dict[str, Array]]:
        """Mean cross-entropy over the batch (+ penalty) and its gradient for every entry of ``params``.

        ``rng`` draws the dropout masks: with it, dropout is on; without it the pass is
        deterministic (gradient checks). Batch norm, if any, is in training mode: it normalizes
        with the batch's statistics, the function this gradient belongs to, and updates the
        running averages (unless ``update_running=False``).
        """
        logits, caches, _ = self._forward(x, rng, train=True, update=update_running)
        loss = losses.cross_entropy(logits, y) + self.penalty()
        dh = losses.softmax_cross_entropy_grad(logits, y)  # (N, C)
        grads: dict[str, Array] = {}
        for i in range(self.n_layers, 0, -1):
            drop_cache, dense_cache, bn_cache, act_cache = caches[i - 1]
            dskip = dh if i in self.skips else None  # the identity path: the gradient passes as is
            if bn_cache is not None and self.batchnorm == "after":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = layers.batchnorm_backward(dh, bn_cache)
            if act_cache is not None:
                dh, dalpha = layers.activation_backward(dh, act_cache)  # (N, H_i)
                if dalpha is not None:
                    grads[f"alpha{i}"] = dalpha
            if bn_cache is not None and self.batchnorm != "after":
                dh = self._norm_backward(dh, bn_cache, i, grads)
            if i > 1:
                dh, grads[f"W{i}"], db = layers.dense_backward(dh, dense_cache)
                if dskip is not None:
                    dh = dh + dskip
                dh = layers.dropout_backward(dh, drop_cache)  # same mask as the forward pass
            else:  # the inputs need no gradient: skip dx = dout W1^T, a quarter of the work
                grads["W1"], db = dense_cache[0].T @ dh, dh.sum(axis=0)
            if f"b{i}" in self.params:
                grads[f"b{i}"] = db
            if self.l1 or self.l2:
                W = self.params[f"W{i}"]
                grads[f"W{i}"] = grads[f"W{i}"] + regularization.elastic_net_grad(W, self.l1, self.l2)
        return loss, grads

    def apply_constraints(self) -> None:
        """Project every W_i in place so that no unit's incoming weights are longer than max_norm."""
        if self.max_norm is None:
            return
        for i in range(1, self.n_layers + 1):
            W = self.params[f"W{i}"]
            W[...] = regularization.max_norm(W, self.max_norm)

    def gradient_norms(self, x: Array, y: NDArray[np.integer]) -> list[float]:
        """||dL/dW_i|| (Frobenius) for i = 1..n_layers: how much signal reaches each layer."""
        _, grads = self.loss_and_grads(x, y, update_running=False)
        return [float(np.linalg.norm(grads[f"W{i}"])) for i in range(1, self.n_layers + 1)]


def check_options(
    sizes: Sequence[int], input_dropout: float, l1: float, l2: float, max_norm: float | None
) -> None:
    """The checks the NumPy and the torch MLP share: a clear ValueError for a bad option."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes must be at least [inputs, outputs] of positive ints, got {sizes}")
    if not 0.0 <= input_dropout < 1.0:
        raise ValueError(f"input_dropout must lie in [0, 1), got {input_dropout}")
    if l1 < 0 or l2 < 0:
        raise ValueError(f"penalties must be >= 0, got l1={l1}, l2={l2}")
    if max_norm is not None and max_norm <= 0:
        raise ValueError(f"max_norm must be positive (or None), got {max_norm}")


def residual_layers(sizes: Sequence[int]) -> list[int]:
    """The hidden layers (numbered from 1) that get a skip: after the first, input width = output width.

    Raises ValueError when there is none (``residual=True`` would then change nothing)."""
    n_layers = len(sizes) - 1
    skips = [i for i in range(2, n_layers) if sizes[i - 1] == sizes[i]]
    if not skips:
        raise ValueError(f"residual=True needs two equal hidden widths in a row, got sizes {list(sizes)}")
    return skips


def dropout_rates(dropout: float | Sequence[float], n_hidden: int) -> list[float]:
    """One drop probability per hidden layer, from a float (the same for all) or a list."""
    rates = [float(dropout)] * n_hidden if np.ndim(dropout) == 0 else [float(p) for p in dropout]
    if len(rates) != n_hidden:
        raise ValueError(f"dropout needs one rate per hidden layer ({n_hidden}), got {len(rates)}: {dropout}")
    if any(not 0.0 <= p < 1.0 for p in rates):
        raise ValueError(f"dropout rates are drop probabilities in [0, 1), got {rates}")
    return rates


#: The normalizations ``MLP(norm=...)`` offers, besides None.
NORMS = ("batch", "layer", "rms")


def norm_options(
    norm: str | None, batchnorm: bool | str, norm_eps: float | None = None
) -> tuple[str | None, str | None, float | None]:
    """(norm, batch-norm position, layer/RMS norm eps) from the MLP's ``norm``, ``batchnorm``, ``norm_eps``.

    ``batchnorm=True`` (or ``"before"``/``"after"``) means ``norm="batch"``; ``norm="batch"`` alone
    puts it before the activation. Both given and disagreeing (``norm="layer", batchnorm=True``) is
    a ValueError, as is ``norm_eps`` with batch norm (its eps is ``bn_eps``). The position is None
    except for batch norm; the eps is None except for layer norm (default 1e-5) and RMSNorm (1e-6).
    """
    position = batchnorm_position(batchnorm)
    if norm is None:
        norm = "batch" if position else None
    elif norm not in NORMS:
        raise ValueError(f"norm is None, 'batch', 'layer' or 'rms', got {norm!r}")
    elif norm != "batch" and position is not None:
        raise ValueError(
            f"norm={norm!r} and batchnorm={batchnorm!r} disagree: batchnorm=True is norm='batch'; "
            "pass only norm"
        )
    if norm in (None, "batch") and norm_eps is not None:
        raise ValueError(
            "norm_eps is the eps of norm='layer' and norm='rms'"
            + ("; batch norm's is bn_eps" if norm == "batch" else ", and no norm is chosen")
        )
    if norm is None:
        return None, None, None
    if norm == "batch":
        return norm, position or "before", None
    if norm_eps is not None and not norm_eps >= 0:
        raise ValueError(f"norm_eps must be >= 0, got {norm_eps}")
    default = 1e-5 if norm == "layer" else 1e-6
    return norm, None, float(default if norm_eps is None else norm_eps)


def norm_replaces_bias(norm: str | None, batchnorm: str | None) -> bool:
    """True when a hidden dense layer has no bias: a batch norm before the activation or a layer norm
    follows it, and their beta shifts instead (RMSNorm has no beta, so its dense layer keeps b)."""
    return batchnorm == "before" or norm == "layer"


def batchnorm_position(batchnorm: bool | str) -> str | None:
    """None (no batch norm), ``"before"`` (True: on the pre-activations) or ``"after"`` the activation."""
    if batchnorm is False or batchnorm is None:
        return None
    if batchnorm is True or batchnorm == "before":
        return "before"
    if batchnorm == "after":
        return "after"
    raise ValueError(f"batchnorm is False, True, 'before' or 'after' (the activation), got {batchnorm!r}")
