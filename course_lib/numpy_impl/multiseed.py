"""S copies of an MLP, one per seed, trained together as one batched model, in NumPy.

``MultiSeedMLP(sizes, seeds)`` holds every parameter of S = len(seeds) networks stacked along a
leading seed axis: ``W1 (S, D, H1)``, ``b1 (S, H1)``, ..., and each layer is one batched matrix
product, (S, N, D) @ (S, D, H) -> (S, N, H), so that Python's overhead per step is paid once for
all the seeds. Member s starts exactly as ``mlp.MLP(sizes, ..., rng=seeds[s])`` would (the same
draws in the same order), takes the same options with the same meaning (activations, dropout,
input dropout, L1/L2, max-norm, batch norm before or after the activation, layer norm, RMSNorm,
residual skips), and
``training.fit_seeds`` trains member s on the batches ``training.fit`` would give it.

The reference it is checked against is S independent ``MLP``s: ``tests/test_multiseed.py``
compares initialisation bit for bit, ``loss_and_grads`` to 1e-12 and whole ``fit_seeds`` runs
to 1e-10 (float64), and checks the batched gradient by central differences. ``member(s)``
returns member s as an ordinary ``MLP``, for every tool that takes one (``gradient_norms``,
``hidden_activations``, checkpoints). Book chapters 1-7 use it for their multi-seed
comparisons (mean +- sd over 3 to 5 seeds); chapter 1 derives the backward pass it batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from course_lib.numpy_impl import layers
from course_lib.numpy_impl.activations import ACTIVATIONS
from course_lib.numpy_impl.mlp import (
    DEFAULT_INIT,
    MLP,
    check_options,
    dropout_rates,
    norm_options,
    residual_layers,
)

Array = NDArray[np.floating]
Labels = NDArray[np.integer]


class MultiSeedMLP:
    """sizes = [D, H1, ..., C], S = len(seeds) members: logits (S, N, C) from inputs (N, D) or (S, N, D).

    ``params`` holds ``W{i} (S, H_{i-1}, H_i)``, ``b{i} (S, H_i)``, ``gamma{i}``/``beta{i} (S, H_i)``
    with batch or layer norm (``gamma{i}`` alone with RMSNorm), ``alpha{i} (S,)`` for PReLU;
    ``buffers`` the batch-norm running averages ``running_mean{i}``/``running_var{i} (S, H_i)``.
    ``params[name][s]`` is member s's
    ``MLP.params[name]``. Every other argument is ``mlp.MLP``'s, with the same meaning; ``seeds``
    is a non-empty sequence of ints or Generators, one per member (``MLP``'s ``rng``).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        seeds: Sequence[int | np.random.Generator],
        activation: str = "relu",
        init: str | None = None,
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
        if isinstance(seeds, (int, np.integer, np.random.Generator, str)) or not hasattr(seeds, "__len__"):
            raise ValueError(f"seeds is a sequence with one seed per member, e.g. range(5); got {seeds!r}")
        if len(seeds) == 0:
            raise ValueError("seeds is empty: a MultiSeedMLP needs at least one member")
        self.sizes = [int(s) for s in sizes]
        self.seeds = list(seeds)
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
        # Each member is drawn by MLP itself, so its initialisation is MLP's by construction.
        members = [MLP(self.sizes, rng=seed, **self._options()) for seed in self.seeds]
        self.params: dict[str, Array] = {
            k: np.stack([m.params[k] for m in members]) for k in members[0].params
        }
        self.buffers: dict[str, Array] = {
            k: np.stack([m.buffers[k] for m in members]) for k in members[0].buffers
        }

    def _options(self) -> dict:
        """The keyword arguments that build one member as an ``MLP`` (all but ``rng``)."""
        return dict(
            activation=self.activation,
            init=self.init,
            dtype=self.dtype,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
            l1=self.l1,
            l2=self.l2,
            max_norm=self.max_norm,
            batchnorm=self.batchnorm or False,
            bn_momentum=self.bn_momentum,
            bn_eps=self.bn_eps,
            residual=self.residual,
            norm=self.norm,
            norm_eps=self.norm_eps,
        )

    @property
    def n_seeds(self) -> int:
        """S, the number of members."""
        return len(self.seeds)

    @property
    def n_layers(self) -> int:
        """Number of dense layers (hidden layers + the output layer)."""
        return len(self.sizes) - 1

    @property
    def has_dropout(self) -> bool:
        """True when some layer drops units in training (then ``loss_and_grads`` wants rngs)."""
        return self.input_dropout > 0 or any(p > 0 for p in self.dropout)

    # ------------------------------------------------------------------------------ members

    def member(self, s: int) -> MLP:
        """Member s as an independent ``MLP``: copies of ``params[name][s]`` and ``buffers[name][s]``.

        Changing it leaves this model as it is (and the other way round).
        """
        if not -self.n_seeds <= s < self.n_seeds:
            raise IndexError(f"member {s} out of range for {self.n_seeds} seeds")
        model = MLP(self.sizes, rng=0, **self._options())
        for k, v in self.params.items():
            model.params[k][...] = v[s]
        for k, v in self.buffers.items():
            model.buffers[k][...] = v[s]
        return model

    # ------------------------------------------------------------------------------ checks

    def _inputs(self, x: Array) -> Array:
        """x as self.dtype, (N, D) shared by the members or (S, N, D) one set per member."""
        x = np.asarray(x, dtype=self.dtype)
        S, D = self.n_seeds, self.sizes[0]
        if not ((x.ndim == 2 and x.shape[1] == D) or (x.ndim == 3 and x.shape[0] == S and x.shape[2] == D)):
            raise ValueError(
                f"MultiSeedMLP expects inputs of shape (N, {D}) (the same for every seed) or "
                f"({S}, N, {D}) (one set per seed), got {x.shape}"
            )
        return x

    def _labels(self, y: Labels, n: int) -> Labels:
        """y as (S, N) integer class ids in [0, C), from (N,) (shared) or (S, N)."""
        y = np.asarray(y)
        S, C = self.n_seeds, self.sizes[-1]
        if y.shape not in ((n,), (S, n)):
            raise ValueError(
                f"labels must be integer class ids of shape ({n},) or ({S}, {n}) for these inputs, "
                f"got {y.shape}; pass y, not one-hot rows"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}; use y.astype(int)")
        if y.size and (y.min() < 0 or y.max() >= C):
            raise ValueError(f"labels must lie in [0, {C}) for {C} classes, got {y.min()} to {y.max()}")
        return np.broadcast_to(y, (S, n))

    def _rngs(self, rngs: Sequence[np.random.Generator] | None) -> list[np.random.Generator] | None:
        if rngs is None:
            return None
        rngs = list(rngs)
        if len(rngs) != self.n_seeds:
            raise ValueError(f"rngs needs one Generator per seed ({self.n_seeds}), got {len(rngs)}")
        if not all(isinstance(r, np.random.Generator) for r in rngs):
            raise TypeError("rngs must be np.random.Generator objects (they draw a new mask every step)")
        return rngs

    # ------------------------------------------------------------------------------ forward

    def _batchnorm(self, h: Array, i: int, train: bool, update: bool) -> tuple[Array, tuple]:
        running = {"mean": self.buffers[f"running_mean{i}"], "var": self.buffers[f"running_var{i}"]}
        return _batchnorm_forward(
            h,
            self.params[f"gamma{i}"],
            self.params[f"beta{i}"],
            running if (update or not train) else None,
            train,
            self.bn_momentum,
            self.bn_eps,
        )

    def _norm(self, h: Array, i: int, train: bool, update: bool) -> tuple[Array, tuple]:
        """Layer i's batch, layer or RMS norm before the activation, per member: h (S, N, H_i)."""
        if self.norm == "batch":
            return self._batchnorm(h, i, train, update)
        beta = self.params.get(f"beta{i}")  # None for RMSNorm
        return _rownorm_forward(h, self.params[f"gamma{i}"], beta, self.norm_eps)

    def _norm_backward(self, dh: Array, cache: tuple, i: int, grads: dict[str, Array]) -> Array:
        if self.norm == "batch":
            dh, grads[f"gamma{i}"], grads[f"beta{i}"] = _batchnorm_backward(dh, cache)
            return dh
        dh, grads[f"gamma{i}"], dbeta = _rownorm_backward(dh, cache)
        if dbeta is not None:
            grads[f"beta{i}"] = dbeta
        return dh

    def _forward(
        self,
        x: Array,
        rngs: Sequence[np.random.Generator] | None = None,
        train: bool = False,
        update: bool = False,
    ) -> tuple[Array, list, list[Array]]:
        """Logits (S, N, C), caches and hidden outputs, layer by layer as ``MLP._forward``."""
        x = self._inputs(x)
        rngs = self._rngs(rngs)
        caches, hidden = [], []
        h, drop_cache = _dropout_forward(x, self.input_dropout, rngs)  # (S, N, D), or (N, D) if no mask
        for i in range(1, self.n_layers + 1):
            layer_input = h
            h, dense_cache = _dense_forward(h, self.params[f"W{i}"], self.params.get(f"b{i}"))  # (S, N, H_i)
            bn_cache = act_cache = None
            if i < self.n_layers:
                if self.norm and self.batchnorm != "after":
                    h, bn_cache = self._norm(h, i, train, update)
                alpha = self.params.get(f"alpha{i}")
                alpha = None if alpha is None else alpha[:, None, None]  # (S, 1, 1): one slope per seed
                h, act_cache = layers.activation_forward(h, self.activation, alpha)
                if self.batchnorm == "after":
                    h, bn_cache = self._batchnorm(h, i, train, update)
                if i in self.skips:
                    h = h + layer_input
                hidden.append(h)
            caches.append((drop_cache, dense_cache, bn_cache, act_cache))
            if i < self.n_layers:
                h, drop_cache = _dropout_forward(h, self.dropout[i - 1], rngs)
        return h, caches, hidden

    def forward(
        self, x: Array, rngs: Sequence[np.random.Generator] | None = None, *, train: bool = False
    ) -> Array:
        """logits[s] = member s's MLP.forward(x[s]): x (N, D) shared or (S, N, D) -> (S, N, C).

        Evaluation mode by default. ``rngs`` (S Generators) switches dropout on, member s drawing
        its masks from rngs[s]; ``train=True`` makes batch norm use the batch's statistics (per
        member), leaving the running averages as they are.
        """
        return self._forward(x, rngs, train)[0]

    __call__ = forward

    def hidden_activations(self, x: Array, train: bool = False) -> list[Array]:
        """h_i for every hidden layer (after its batch norm, if that comes last), (S, N, H_i) each."""
        return self._forward(x, train=train)[2]

    def predict(self, x: Array) -> NDArray[np.integer]:
        """argmax_c logits: x (N, D) or (S, N, D) -> class ids (S, N)."""
        return self.forward(x).argmax(axis=-1)

    def accuracy(self, x: Array, y: Labels) -> NDArray[np.floating]:
        """mean_n [predict(x)[s, n] == y[s, n]] per member: (S,). y (N,) shared or (S, N)."""
        pred = self.predict(x)
        return (pred == self._labels(y, pred.shape[1])).mean(axis=1)

    def evaluate(self, x: Array, y: Labels) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
        """(cross-entropy (S,), accuracy (S,)) in evaluation mode from one forward pass, no penalty.

        What ``training.fit`` records for one MLP (``val_loss``, ``val_acc``), for every member.
        """
        logits = self.forward(x)  # (S, N, C)
        y = self._labels(y, logits.shape[1])
        return _cross_entropy(logits, y), (logits.argmax(axis=-1) == y).mean(axis=1)

    def loss(self, x: Array, y: Labels, *, train: bool = False) -> NDArray[np.floating]:
        """-(1/N) sum_n log softmax(z_sn)_{y_sn} + penalty_s, per member: (S,). No dropout.

        ``train=True``: batch norm with the batch's statistics (the loss ``loss_and_grads``
        differentiates), without updating the running averages.
        """
        logits = self.forward(x, train=train)
        return _cross_entropy(logits, self._labels(y, logits.shape[1])) + self.penalty()

    def penalty(self) -> NDArray[np.floating]:
        """l1 sum |W| + (l2 / 2) sum W^2 over W1..WL, per member: (S,) (zeros without)."""
        total = np.zeros(self.n_seeds)
        if not (self.l1 or self.l2):
            return total
        for i in range(1, self.n_layers + 1):
            W = self.params[f"W{i}"]  # (S, H_{i-1}, H_i)
            total = total + (self.l1 * np.abs(W).sum(axis=(1, 2)) + 0.5 * self.l2 * (W * W).sum(axis=(1, 2)))
        return total

    # ------------------------------------------------------------------------------ backward

    def loss_and_grads(
        self,
        x: Array,
        y: Labels,
        rngs: Sequence[np.random.Generator] | None = None,
        *,
        update_running: bool = True,
    ) -> tuple[NDArray[np.floating], dict[str, Array]]:
        """losses[s] = member s's mean cross-entropy (+ penalty), (S,), and d losses[s] / d params[.][s].

        x (S, B, D) one batch per member, or (B, D) shared; y (S, B) or (B,). ``grads[name]`` has
        the shape of ``params[name]``; since member s's loss depends on its own parameters only,
        this is also the gradient of losses.sum(). ``rngs``: S Generators, member s drawing its
        dropout masks from rngs[s] exactly as ``MLP.loss_and_grads(x[s], y[s], rng=rngs[s])``;
        without them the pass is deterministic. Batch norm is in training mode (per member batch
        statistics) and updates the running averages unless ``update_running=False``.
        """
        logits, caches, _ = self._forward(x, rngs, train=True, update=update_running)  # (S, B, C)
        y = self._labels(y, logits.shape[1])
        log_p = _log_softmax(logits)  # (S, B, C), shared by the loss and its gradient
        losses = _cross_entropy(logits, y, log_p) + self.penalty()
        dh = _cross_entropy_grad(logits, y, log_p)  # (S, B, C)
        grads: dict[str, Array] = {}
        for i in range(self.n_layers, 0, -1):
            drop_cache, dense_cache, bn_cache, act_cache = caches[i - 1]
            dskip = dh if i in self.skips else None
            if bn_cache is not None and self.batchnorm == "after":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = _batchnorm_backward(dh, bn_cache)
            if act_cache is not None:
                dh, dalpha = layers.activation_backward(dh, act_cache)  # (S, B, H_i)
                if dalpha is not None:
                    grads[f"alpha{i}"] = dalpha.reshape(self.n_seeds)  # (S, 1, 1) -> (S,)
            if bn_cache is not None and self.batchnorm != "after":
                dh = self._norm_backward(dh, bn_cache, i, grads)
            if i > 1:
                dh, grads[f"W{i}"], db = _dense_backward(dh, dense_cache)  # dh (S, B, H_{i-1})
                if dskip is not None:
                    dh = dh + dskip
                dh = layers.dropout_backward(dh, drop_cache)
            else:  # the inputs need no gradient
                grads["W1"], db = np.matmul(dense_cache[0].swapaxes(-1, -2), dh), dh.sum(axis=1)
            if f"b{i}" in self.params:
                grads[f"b{i}"] = db
            if self.l1 or self.l2:
                W = self.params[f"W{i}"]
                grads[f"W{i}"] = grads[f"W{i}"] + (self.l1 * np.sign(W) + self.l2 * W)
        return losses, grads

    def apply_constraints(self) -> None:
        """W[s, :, j] *= min(1, max_norm / ||W[s, :, j]||) in place: every unit of every member."""
        if self.max_norm is None:
            return
        for i in range(1, self.n_layers + 1):
            W = self.params[f"W{i}"]
            W[...] = _max_norm(W, self.max_norm)

    def gradient_norms(self, x: Array, y: Labels) -> NDArray[np.floating]:
        """||dL_s/dW_i|| (Frobenius) for every member s and layer i: (S, n_layers)."""
        _, grads = self.loss_and_grads(x, y, update_running=False)
        return np.stack(
            [np.sqrt((grads[f"W{i}"] ** 2).sum(axis=(1, 2))) for i in range(1, self.n_layers + 1)], axis=1
        )


# ---------------------------------------------------------------------- batched layer operations


def _dense_forward(x: Array, W: Array, b: Array | None) -> tuple[Array, tuple[Array, Array]]:
    """out = x @ W + b per member: x (S, N, D) or (N, D), W (S, D, H), b (S, H) -> (S, N, H)."""
    out = np.matmul(x, W)  # (S, N, H)
    if b is not None:
        out += b[:, None, :]
    return out, (x, W)


def _dense_backward(dout: Array, cache: tuple[Array, Array]) -> tuple[Array, Array, Array]:
    """dx = dout @ W^T (S, N, D), dW = x^T @ dout (S, D, H), db = sum_n dout (S, H)."""
    x, W = cache
    return np.matmul(dout, W.swapaxes(1, 2)), np.matmul(x.swapaxes(-1, -2), dout), dout.sum(axis=1)


def _dropout_forward(
    x: Array, p: float, rngs: list[np.random.Generator] | None
) -> tuple[Array, Array | None]:
    """Inverted dropout, out = x * m, m = [u >= p] / (1 - p) with u_s ~ U[0, 1) drawn from rngs[s].

    x (S, N, H), or (N, H) shared by the members -> out (S, N, H). Identity (no draws) without
    rngs or with p = 0, as ``layers.dropout_forward``, whose mask member s reproduces.
    """
    if rngs is None or p == 0.0:
        return x, None
    shape = x.shape[-2:]
    u_dtype = np.float32 if x.dtype == np.float32 else np.float64
    u = np.stack([rng.random(shape, dtype=u_dtype) for rng in rngs])  # (S, N, H): one draw per member
    m = (u >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    return x * m, m


def _batchnorm_forward(
    x: Array,
    gamma: Array,
    beta: Array,
    running: dict[str, Array] | None,
    train: bool,
    momentum: float,
    eps: float,
) -> tuple[Array, tuple]:
    """out = gamma_s * (x - mu_s) / sqrt(var_s + eps) + beta_s per member: x (S, N, H), gamma (S, H).

    ``layers.batchnorm_forward`` for each member: mu and var over that member's N rows in
    training (``running``, (S, H) arrays, updated in place when given), the running ones otherwise.
    """
    if train:
        n = x.shape[1]
        if n < 2:
            raise ValueError("batch normalization in training needs at least 2 rows per batch")
        mu = x.mean(axis=1)  # (S, H)
        centred = x - mu[:, None, :]  # (S, N, H)
        var = (centred * centred).mean(axis=1)  # (S, H), biased
        if running is not None:
            running["mean"] *= 1.0 - momentum
            running["mean"] += momentum * mu
            running["var"] *= 1.0 - momentum
            running["var"] += momentum * var * (n / (n - 1))
    else:
        centred = x - running["mean"][:, None, :]
        var = running["var"]
    inv_std = 1.0 / np.sqrt(var + eps)  # (S, H)
    x_hat = centred * inv_std[:, None, :]  # (S, N, H)
    return gamma[:, None, :] * x_hat + beta[:, None, :], (x_hat, gamma, inv_std, bool(train))


def _batchnorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """dx (S, N, H), dgamma (S, H), dbeta (S, H): ``layers.batchnorm_backward`` per member.

    With g = dout * gamma: dx = (1 / sqrt(var + eps)) (g - mean_n g - x_hat mean_n(g x_hat)).
    """
    x_hat, gamma, inv_std, train = cache
    dgamma = (dout * x_hat).sum(axis=1)
    dbeta = dout.sum(axis=1)
    g = dout * gamma[:, None, :]  # (S, N, H)
    inv_std = inv_std[:, None, :]
    if not train:
        return g * inv_std, dgamma, dbeta
    dx = inv_std * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))
    return dx, dgamma, dbeta


def _rownorm_forward(x: Array, gamma: Array, beta: Array | None, eps: float) -> tuple[Array, tuple]:
    """Layer norm (with ``beta``) or RMSNorm (``beta`` None) of each row, per member.

    x (S, N, H), gamma and beta (S, H): ``layers.layernorm_forward`` / ``rmsnorm_forward`` for each
    member; normalizing over the last axis does not mix members or rows.
    """
    x_hat, inv = layers._normalize_last_axis(x, eps, center=beta is not None)  # (S, N, H), (S, N, 1)
    out = gamma[:, None, :] * x_hat
    if beta is not None:
        out += beta[:, None, :]
    return out, (x_hat, gamma, inv, beta is not None)


def _rownorm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array | None]:
    """dx (S, N, H), dgamma (S, H), dbeta (S, H) (None for RMSNorm): the layers' backward per member."""
    x_hat, gamma, inv, center = cache
    dx = layers._normalize_last_axis_backward(dout * gamma[:, None, :], x_hat, inv, center)
    return dx, (dout * x_hat).sum(axis=1), dout.sum(axis=1) if center else None


def _log_softmax(logits: Array) -> Array:
    """z - max z - log sum exp(z - max z) over the last axis: (S, N, C) -> (S, N, C)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _cross_entropy(logits: Array, y: Labels, log_p: Array | None = None) -> NDArray[np.floating]:
    """L_s = -(1/N) sum_n log softmax(z_sn)_{y_sn}: logits (S, N, C), y (S, N) -> (S,).

    ``log_p``: ``_log_softmax(logits)`` when the caller has it already."""
    log_p = _log_softmax(logits) if log_p is None else log_p
    picked = np.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]  # (S, N)
    return -picked.mean(axis=1)


def _cross_entropy_grad(logits: Array, y: Labels, log_p: Array | None = None) -> Array:
    """dL_s/dz_s = (softmax(z_s) - onehot(y_s)) / N: (S, N, C)."""
    S, N, _ = logits.shape
    p = np.exp(_log_softmax(logits) if log_p is None else log_p)
    p[np.arange(S)[:, None], np.arange(N), y] -= 1.0
    return p / N


def _max_norm(W: Array, c: float) -> Array:
    """W[s, :, j] * min(1, c / ||W[s, :, j]||): ``regularization.max_norm`` per member, W (S, D, H)."""
    norms = np.sqrt(np.sum(W**2, axis=1))  # (S, H)
    long = norms > c
    scale = np.where(long, c / np.where(long, norms, 1.0), 1.0)
    return (W * scale[:, None, :]).astype(W.dtype, copy=False)
