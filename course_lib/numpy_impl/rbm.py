"""A Bernoulli-Bernoulli restricted Boltzmann machine, trained by CD-k or PCD, in NumPy.

Energy E(v, h) = -v.b_v - h.b_h - v W h for binary visible v (D,) and hidden h (H,), with
W (D, H). The conditionals factorise, p(h_j = 1 | v) = sigma(b_h + v W)_j and
p(v_i = 1 | h) = sigma(b_v + W h)_i, and the free energy F(v) = -log sum_h exp(-E(v, h)) is
-v.b_v - sum_j softplus(b_h + v W)_j. Book chapter 3 derives all of it.

Conventions (those of scikit-learn's ``BernoulliRBM``, the reference the tests compare with):

* sampling draws uniforms ``u = rng.random(p.shape)`` and sets a unit to 1 where ``u < p``;
  ``cd_step`` draws them in a fixed order (the hidden sample of the data, then, per Gibbs step,
  visible and hidden), so the torch RBM fed the same uniforms makes the same update;
* the gradient statistics use the hidden *probabilities* and the sampled visible states;
* ``pseudo_likelihood(v, rng)`` flips one random visible unit per example and returns
  D * log sigma(F(v~) - F(v)), as ``BernoulliRBM.score_samples``; ``exact=True`` sums over
  all D flips instead (deterministic);
* momentum is PyTorch's v = mu v + g; W += lr v (an ascent: g is the log-likelihood gradient),
  and weight decay lambda subtracts lambda W from the gradient of W only (not the biases).

Module-level functions (``hidden_probs``, ``sample_hidden``, ...) take the parameters
explicitly; the ``RBM`` methods call them. Checked against brute-force enumeration and the exact
log-likelihood gradient in ``tests/test_rbm.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.floating]

# --- pure functions of the parameters ----------------------------------------------------------


def expit(p: Array, out: Array | None = None) -> Array:
    """sigma(p) = (1 + tanh(p / 2)) / 2 elementwise, never overflowing; in place when ``out is p``.

    The same function as ``scipy.special.expit`` (to a few ulp), in NumPy alone: a student's
    install of the course has no SciPy."""
    out = np.multiply(p, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def hidden_probs(v: Array, W: Array, b_h: Array) -> Array:
    """p(h = 1 | v) = sigma(v W + b_h). v (N, D), W (D, H), b_h (H,) -> (N, H)."""
    p = v @ W
    p += b_h
    return expit(p, out=p)


def visible_probs(h: Array, W: Array, b_v: Array) -> Array:
    """p(v = 1 | h) = sigma(h W^T + b_v). h (N, H), W (D, H), b_v (D,) -> (N, D)."""
    p = h @ W.T
    p += b_v
    return expit(p, out=p)


def bernoulli(p: Array, rng: np.random.Generator) -> Array:
    """1 where u < p for u ~ U[0, 1) drawn as ``rng.random(p.shape)``, else 0 (p's dtype)."""
    return (rng.random(p.shape) < p).astype(p.dtype)


def sample_hidden(v: Array, W: Array, b_h: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """(p(h = 1 | v), a binary sample of h), both (N, H)."""
    p = hidden_probs(v, W, b_h)
    return p, bernoulli(p, rng)


def sample_visible(h: Array, W: Array, b_v: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """(p(v = 1 | h), a binary sample of v), both (N, D)."""
    p = visible_probs(h, W, b_v)
    return p, bernoulli(p, rng)


def energy(v: Array, h: Array, W: Array, b_v: Array, b_h: Array) -> Array:
    """E(v, h) = -v.b_v - h.b_h - v W h, one value per row: v (N, D), h (N, H) -> (N,)."""
    return -(v @ b_v) - (h @ b_h) - np.einsum("nd,dh,nh->n", v, W, h)


def free_energy(v: Array, W: Array, b_v: Array, b_h: Array) -> Array:
    """F(v) = -v.b_v - sum_j log(1 + exp(b_h + v W)_j) = -log sum_h exp(-E(v, h)). (N, D) -> (N,).

    ``np.logaddexp(0, x)`` is softplus without overflow for any x.
    """
    return -(v @ b_v) - np.logaddexp(0.0, v @ W + b_h).sum(axis=1)


def log_sigmoid(x: Array) -> Array:
    """log sigma(x) = -log(1 + exp(-x)), finite for every finite x."""
    return -np.logaddexp(0.0, -x)


# --- the model ----------------------------------------------------------------------------------


@dataclass
class RBMHistory:
    """Per-epoch monitoring of ``RBM.fit``; ``seconds`` is training time only (no monitoring)."""

    epoch: list[int] = field(default_factory=list)
    recon_error: list[float] = field(default_factory=list)  # mean squared error per visible unit
    pseudo_likelihood: list[float] = field(default_factory=list)  # mean over the rows, nats
    val_recon_error: list[float] = field(default_factory=list)
    val_pseudo_likelihood: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_frame(self):
        """A pandas DataFrame, one row per epoch (columns without values are dropped)."""
        import pandas as pd

        return pd.DataFrame({k: v for k, v in self.__dict__.items() if v}).set_index("epoch")


class RBM:
    """Bernoulli-Bernoulli RBM: ``W`` (D, H) ~ N(0, std^2), ``b_v`` (D,) and ``b_h`` (H,) zeros.

    ``rng`` (a Generator or a seed) is the default source of randomness of every method that
    samples; each of them also takes its own ``rng``. Inputs are never modified.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        rng: np.random.Generator | int | None = 0,
        *,
        std: float = 0.01,
        dtype: type = np.float64,
    ) -> None:
        if int(n_visible) < 1 or int(n_hidden) < 1:
            raise ValueError(f"n_visible and n_hidden must be positive, got {n_visible}, {n_hidden}")
        self.rng = np.random.default_rng(rng)
        self.n_visible, self.n_hidden, self.dtype = int(n_visible), int(n_hidden), dtype
        self.W = self.rng.normal(0.0, std, size=(self.n_visible, self.n_hidden)).astype(dtype)
        self.b_v = np.zeros(self.n_visible, dtype=dtype)
        self.b_h = np.zeros(self.n_hidden, dtype=dtype)
        self.chain: Array | None = None  # PCD: the hidden states of the persistent chains (C, H)
        self.velocity: dict[str, Array] = {}  # momentum buffers, one per parameter

    # parameters ---------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Array]:
        """The parameter arrays themselves (not copies): ``W``, ``b_v``, ``b_h``."""
        return {"W": self.W, "b_v": self.b_v, "b_h": self.b_h}

    def _input(self, v: ArrayLike, n: int, name: str = "v") -> Array:
        """``v`` as a 2-D array of this model's dtype (a new array when a cast is needed)."""
        v = np.asarray(v, dtype=self.dtype)
        if v.ndim != 2 or v.shape[1] != n:
            raise ValueError(f"{name} must have shape (N, {n}), got {v.shape}")
        return v

    def _rng(self, rng: np.random.Generator | None) -> np.random.Generator:
        return self.rng if rng is None else rng

    # conditionals, energies ---------------------------------------------------------------------

    def prob_h(self, v: ArrayLike) -> Array:
        """p(h = 1 | v) = sigma(v W + b_h): (N, D) -> (N, H)."""
        return hidden_probs(self._input(v, self.n_visible), self.W, self.b_h)

    def prob_v(self, h: ArrayLike) -> Array:
        """p(v = 1 | h) = sigma(h W^T + b_v): (N, H) -> (N, D)."""
        return visible_probs(self._input(h, self.n_hidden, "h"), self.W, self.b_v)

    def sample_h(self, v: ArrayLike, rng: np.random.Generator | None = None) -> tuple[Array, Array]:
        """(p(h = 1 | v), h sampled from it): (N, D) -> two (N, H) arrays; h = (u < p)."""
        return sample_hidden(self._input(v, self.n_visible), self.W, self.b_h, self._rng(rng))

    def sample_v(self, h: ArrayLike, rng: np.random.Generator | None = None) -> tuple[Array, Array]:
        """(p(v = 1 | h), v sampled from it): (N, H) -> two (N, D) arrays; v = (u < p)."""
        return sample_visible(self._input(h, self.n_hidden, "h"), self.W, self.b_v, self._rng(rng))

    def energy(self, v: ArrayLike, h: ArrayLike) -> Array:
        """E(v, h) = -v.b_v - h.b_h - v W h per row: (N, D), (N, H) -> (N,)."""
        v, h = self._input(v, self.n_visible), self._input(h, self.n_hidden, "h")
        return energy(v, h, self.W, self.b_v, self.b_h)

    def free_energy(self, v: ArrayLike) -> Array:
        """F(v) = -v.b_v - sum_j softplus(b_h + v W)_j, so that p(v) = exp(-F(v)) / Z. (N,)."""
        return free_energy(self._input(v, self.n_visible), self.W, self.b_v, self.b_h)

    def gibbs(self, v: ArrayLike, steps: int = 1, rng: np.random.Generator | None = None) -> Array:
        """``steps`` rounds of block Gibbs sampling v -> h -> v; returns the last visible sample."""
        rng = self._rng(rng)
        v = self._input(v, self.n_visible)
        for _ in range(steps):
            h = bernoulli(hidden_probs(v, self.W, self.b_h), rng)
            v = bernoulli(visible_probs(h, self.W, self.b_v), rng)
        return v

    # learning -----------------------------------------------------------------------------------

    def cd_gradient(
        self,
        v: ArrayLike,
        k: int = 1,
        persistent: bool = False,
        rng: np.random.Generator | None = None,
    ) -> dict[str, Array]:
        """The CD-k (or PCD-k) estimate of d mean log p(v) / d theta for a batch v (N, D).

        dW = v0^T p(h|v0) / N - vk^T p(h|vk) / M, db_v = mean(v0) - mean(vk),
        db_h = mean p(h|v0) - mean p(h|vk). CD-k starts the negative chain at the data:
        h0 ~ p(h|v0), then k steps v ~ p(v|h), h ~ p(h|v). PCD (``persistent=True``) continues
        the chains of the previous call instead (``self.chain``; they start from the data's h0
        on the first call or after ``reset_chain``), and keeps their last hidden sample.
        Uniforms drawn, in order: h0 (N, H) unless the chains exist; per step: v (M, D), and
        h (M, H) except after the last step of CD-k.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        rng = self._rng(rng)
        v0 = self._input(v, self.n_visible)
        W, b_v, b_h = self.W, self.b_v, self.b_h
        ph0 = hidden_probs(v0, W, b_h)  # (N, H)
        if persistent and self.chain is not None:
            h = self.chain  # (M, H)
        else:
            h = bernoulli(ph0, rng)  # (N, H)
        for step in range(k):
            vk = bernoulli(visible_probs(h, W, b_v), rng)  # (M, D)
            phk = hidden_probs(vk, W, b_h)  # (M, H)
            if persistent or step < k - 1:
                h = bernoulli(phk, rng)
        if persistent:
            self.chain = h
        n, m = len(v0), len(vk)
        dW = v0.T @ ph0
        dW /= n
        dW -= (vk.T @ phk) / m  # (D, H)
        # means as sums / count: np.mean's overhead is a quarter of a small batch's time
        db_v = v0.sum(axis=0) / n - vk.sum(axis=0) / m  # (D,)
        db_h = ph0.sum(axis=0) / n - phk.sum(axis=0) / m  # (H,)
        return {"W": dW, "b_v": db_v, "b_h": db_h}

    def cd_step(
        self,
        v: ArrayLike,
        k: int = 1,
        lr: float = 0.1,
        persistent: bool = False,
        rng: np.random.Generator | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> dict[str, Array]:
        """One gradient-ascent step theta += lr * g on a batch; returns the CD estimate g.

        g is ``cd_gradient(v, k, persistent, rng)``; ``weight_decay`` adds -lambda W to g of W
        (an L2 penalty (lambda/2)||W||^2); ``momentum`` mu keeps a velocity per parameter,
        vel = mu vel + g, theta += lr vel (PyTorch's form).
        """
        grads = self.cd_gradient(v, k, persistent, rng)
        for name, p in self.params.items():
            g = grads[name]
            if weight_decay and name == "W":
                g = g - weight_decay * p
            if momentum:
                vel = self.velocity.get(name)
                g = self.velocity[name] = g.copy() if vel is None else momentum * vel + g
            p += lr * g
        return grads

    def reset_chain(self) -> None:
        """Forget the persistent chains: the next PCD step restarts them from its batch."""
        self.chain = None

    # evaluation ---------------------------------------------------------------------------------

    def transform(self, v: ArrayLike) -> Array:
        """The features an RBM gives a classifier or the next RBM: p(h = 1 | v), (N, H)."""
        return self.prob_h(v)

    def reconstruct(self, v: ArrayLike) -> Array:
        """Mean-field reconstruction p(v = 1 | h = p(h = 1 | v)): (N, D) -> (N, D), no sampling."""
        return self.prob_v(self.prob_h(v))

    def reconstruction_error(self, v: ArrayLike) -> float:
        """Mean over rows and visible units of (v - reconstruct(v))^2: a rough progress monitor."""
        v = self._input(v, self.n_visible)
        return float(np.mean((v - self.reconstruct(v)) ** 2))

    def pseudo_likelihood(
        self, v: ArrayLike, rng: np.random.Generator | None = None, exact: bool = False
    ) -> Array:
        """Per row, the log pseudo-likelihood sum_i log p(v_i | v_-i) = sum_i log sigma(F(v~_i) - F(v)).

        v~_i is v with unit i flipped. Default: the stochastic estimate of scikit-learn's
        ``BernoulliRBM.score_samples``, one uniformly random i per row (``rng.integers(0, D, N)``),
        D * log sigma(F(v~_i) - F(v)). ``exact=True``: the full sum over i (no randomness).
        Meaningful for binary v. Returns (N,).
        """
        v = self._input(v, self.n_visible)
        n, d = v.shape
        fe = free_energy(v, self.W, self.b_v, self.b_h)
        if not exact:
            i = self._rng(rng).integers(0, d, n)
            flipped = v.copy()
            rows = np.arange(n)
            flipped[rows, i] = 1.0 - flipped[rows, i]
            return d * log_sigmoid(free_energy(flipped, self.W, self.b_v, self.b_h) - fe)
        # Flipping unit i moves v.b_v by s_i b_v_i and the hidden input by s_i W_i, s_i = 1 - 2 v_i.
        out = np.empty(n, dtype=self.dtype)
        pre = v @ self.W + self.b_h  # (N, H)
        chunk = max(1, 2**22 // (d * self.n_hidden))  # rows per block: about 32 MB of float64
        for s in range(0, n, chunk):
            sign = 1.0 - 2.0 * v[s : s + chunk]  # (B, D)
            pre_flip = pre[s : s + chunk, None, :] + sign[:, :, None] * self.W  # (B, D, H)
            fe_flip = -(v[s : s + chunk] @ self.b_v)[:, None] - sign * self.b_v  # (B, D)
            fe_flip -= np.logaddexp(0.0, pre_flip).sum(axis=2)
            out[s : s + chunk] = log_sigmoid(fe_flip - fe[s : s + chunk, None]).sum(axis=1)
        return out

    # training -----------------------------------------------------------------------------------

    def fit(
        self,
        X: ArrayLike,
        *,
        epochs: int = 10,
        batch_size: int = 10,
        lr: float = 0.1,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        shuffle: bool = True,
        rng: np.random.Generator | None = None,
        X_val: ArrayLike | None = None,
        monitor: bool = True,
        monitor_rows: int | None = None,
        callback=None,
        progress: bool | None = None,
    ) -> RBMHistory:
        """Train on the rows of X (N, D) in mini-batches for ``epochs`` epochs; returns the history.

        Defaults are scikit-learn's ``BernoulliRBM`` (batches of 10, lr 0.1); pass
        ``persistent=True`` for its PCD. Batches follow ``training.fit``: a new permutation per
        epoch (``shuffle``), ``batch_size`` rows each, the last one smaller. After each epoch,
        unless ``monitor=False``, the reconstruction error and the mean stochastic
        pseudo-likelihood of X (of its first ``monitor_rows`` rows if given: cheaper) and of
        ``X_val`` are recorded, drawing the flipped units from a generator spawned from ``rng``
        (so monitoring does not change training); ``callback(epoch, rbm)`` runs then too. The
        progress bar follows ``training.progress_enabled``.
        """
        from tqdm.auto import tqdm

        from course_lib.training import progress_enabled

        X = self._input(X, self.n_visible, "X")
        X_val = None if X_val is None else self._input(X_val, self.n_visible, "X_val")
        if epochs < 1 or batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        rng = self._rng(rng)
        monitor_rng = rng.spawn(1)[0]  # its own stream: monitoring does not change the training draws
        hist = RBMHistory()
        bar = tqdm(range(1, epochs + 1), desc="RBM", disable=not progress_enabled(progress), leave=False)
        n = len(X)
        for epoch in bar:
            t0 = time.perf_counter()
            data = X[rng.permutation(n)] if shuffle else X
            for s in range(0, n, batch_size):
                self.cd_step(data[s : s + batch_size], k, lr, persistent, rng, momentum, weight_decay)
            hist.seconds.append(time.perf_counter() - t0)
            hist.epoch.append(epoch)
            if monitor:
                for data_, recon, pl in (
                    (X[:monitor_rows], hist.recon_error, hist.pseudo_likelihood),
                    (X_val, hist.val_recon_error, hist.val_pseudo_likelihood),
                ):
                    if data_ is not None:
                        recon.append(self.reconstruction_error(data_))
                        pl.append(float(self.pseudo_likelihood(data_, monitor_rng).mean()))
                bar.set_postfix(recon=f"{hist.recon_error[-1]:.4f}", pl=f"{hist.pseudo_likelihood[-1]:.1f}")
            if callback is not None:
                callback(epoch, self)
        return hist


# --- several seeds at once ----------------------------------------------------------------------


class MultiSeedRBM:
    """S RBMs of one size, one per seed, trained together: ``W`` (S, D, H), ``b_v`` (S, D), ``b_h`` (S, H).

    Member s starts as ``RBM(n_visible, n_hidden, rng=seeds[s], std=std, dtype=dtype)`` and
    ``fit(X, rngs=...)`` makes exactly the updates ``RBM.fit(X, rng=rngs[s], monitor=False)``
    would make for it alone: the same permutation per epoch and the same uniforms in the same
    order, from ``rngs[s]``. Every Gibbs half-step is one batched product (S, N, D) @ (S, D, H),
    so Python's overhead per update is paid once for all the seeds, which is what makes several
    seeds of a small RBM cost little more than one (book chapter 3). ``member(s)`` is member s as
    an ``RBM`` (a copy), for ``log_likelihood`` and every other function that takes one. Inputs
    are (N, D), shared by the members, or (S, N, D), one batch per member.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        seeds,
        *,
        std: float = 0.01,
        dtype: type = np.float64,
    ) -> None:
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds is empty: a MultiSeedRBM needs at least one member")
        members = [RBM(n_visible, n_hidden, rng=s, std=std, dtype=dtype) for s in seeds]
        self.n_visible, self.n_hidden, self.dtype = members[0].n_visible, members[0].n_hidden, dtype
        self.seeds = seeds
        self.W = np.stack([m.W for m in members])  # (S, D, H)
        self.b_v = np.zeros((len(seeds), self.n_visible), dtype=dtype)
        self.b_h = np.zeros((len(seeds), self.n_hidden), dtype=dtype)
        self.chain: Array | None = None  # PCD: (S, M, H)
        self.velocity: dict[str, Array] = {}

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def params(self) -> dict[str, Array]:
        """The stacked parameter arrays themselves: ``W`` (S, D, H), ``b_v`` (S, D), ``b_h`` (S, H)."""
        return {"W": self.W, "b_v": self.b_v, "b_h": self.b_h}

    def member(self, s: int) -> RBM:
        """Member s as an independent ``RBM`` (copies of its parameters; no chain, no velocity)."""
        if not -self.n_seeds <= s < self.n_seeds:
            raise IndexError(f"member {s} out of range for {self.n_seeds} seeds")
        rbm = RBM(self.n_visible, self.n_hidden, rng=0, dtype=self.dtype)
        rbm.W, rbm.b_v, rbm.b_h = self.W[s].copy(), self.b_v[s].copy(), self.b_h[s].copy()
        return rbm

    def _input(self, v: ArrayLike, n: int, name: str = "v") -> Array:
        v = np.asarray(v, dtype=self.dtype)
        shared, stacked = v.ndim == 2, v.ndim == 3 and v.shape[0] == self.n_seeds
        if not ((shared or stacked) and v.shape[-1] == n):
            raise ValueError(f"{name} must have shape (N, {n}) or ({self.n_seeds}, N, {n}), got {v.shape}")
        return v

    def _bernoulli(self, p: Array, rngs) -> Array:
        """1 where u < p, u drawn per member as ``rngs[s].random(p[s].shape)`` (``bernoulli``'s rule)."""
        u = np.stack([r.random(p.shape[1:]) for r in rngs])  # (S, N, K)
        return (u < p).astype(p.dtype)

    def _rngs(self, rngs) -> list[np.random.Generator]:
        rngs = [np.random.default_rng(r) for r in rngs] if rngs is not None else None
        if rngs is None or len(rngs) != self.n_seeds:
            raise ValueError(f"rngs needs one Generator (or seed) per member ({self.n_seeds})")
        return rngs

    def prob_h(self, v: ArrayLike) -> Array:
        """p(h = 1 | v) = sigma(v W_s + b_h,s) per member: (N, D) or (S, N, D) -> (S, N, H)."""
        p = np.matmul(self._input(v, self.n_visible), self.W)
        p += self.b_h[:, None, :]
        return expit(p, out=p)

    def prob_v(self, h: ArrayLike) -> Array:
        """p(v = 1 | h) = sigma(h W_s^T + b_v,s) per member: (S, N, H) -> (S, N, D)."""
        p = np.matmul(self._input(h, self.n_hidden, "h"), self.W.swapaxes(1, 2))
        p += self.b_v[:, None, :]
        return expit(p, out=p)

    def sample_h(self, v: ArrayLike, rngs) -> tuple[Array, Array]:
        """(p(h = 1 | v), h sampled from it) per member, member s drawing from rngs[s]: two (S, N, H)."""
        p = self.prob_h(v)
        return p, self._bernoulli(p, self._rngs(rngs))

    def sample_v(self, h: ArrayLike, rngs) -> tuple[Array, Array]:
        """(p(v = 1 | h), v sampled from it) per member, member s drawing from rngs[s]: two (S, N, D)."""
        p = self.prob_v(h)
        return p, self._bernoulli(p, self._rngs(rngs))

    def free_energy(self, v: ArrayLike) -> Array:
        """F_s(v) per member and row: (N, D) or (S, N, D) -> (S, N)."""
        v = self._input(v, self.n_visible)
        pre = np.matmul(v, self.W) + self.b_h[:, None, :]  # (S, N, H)
        return -(v * self.b_v[:, None, :]).sum(axis=-1) - np.logaddexp(0.0, pre).sum(axis=-1)

    def reconstruction_error(self, v: ArrayLike) -> Array:
        """Mean squared (v - p(v | h = p(h | v))) per member: (S,)."""
        v = self._input(v, self.n_visible)
        return np.mean((v - self.prob_v(self.prob_h(v))) ** 2, axis=(-2, -1))

    def gibbs(self, v: ArrayLike, steps: int, rngs) -> Array:
        """``steps`` rounds v -> h -> v per member, member s drawing from rngs[s]: -> (S, N, D)."""
        rngs = self._rngs(rngs)
        v = np.broadcast_to(self._input(v, self.n_visible), (self.n_seeds, *np.shape(v)[-2:]))
        for _ in range(steps):
            h = self._bernoulli(self.prob_h(v), rngs)
            v = self._bernoulli(self.prob_v(h), rngs)
        return v

    def cd_gradient(self, v: ArrayLike, k: int, persistent: bool, rngs) -> dict[str, Array]:
        """``RBM.cd_gradient`` of every member on its batch v[s] (or the shared batch v)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        v0 = self._input(v, self.n_visible)
        v0 = np.broadcast_to(v0, (self.n_seeds, *v0.shape[-2:]))
        ph0 = self.prob_h(v0)  # (S, N, H)
        h = self.chain if persistent and self.chain is not None else self._bernoulli(ph0, rngs)
        for step in range(k):
            vk = self._bernoulli(self.prob_v(h), rngs)  # (S, M, D)
            phk = self.prob_h(vk)
            if persistent or step < k - 1:
                h = self._bernoulli(phk, rngs)
        if persistent:
            self.chain = h
        n, m = v0.shape[1], vk.shape[1]
        dW = np.matmul(v0.swapaxes(1, 2), ph0)
        dW /= n
        neg = np.matmul(vk.swapaxes(1, 2), phk)
        neg /= m
        dW -= neg  # (S, D, H)
        db_v = v0.sum(axis=1) / n - vk.sum(axis=1) / m
        db_h = ph0.sum(axis=1) / n - phk.sum(axis=1) / m
        return {"W": dW, "b_v": db_v, "b_h": db_h}

    def cd_step(self, v, k, lr, persistent, rngs, momentum=0.0, weight_decay=0.0) -> None:
        """One ``RBM.cd_step`` per member (same momentum and weight-decay rules)."""
        grads = self.cd_gradient(v, k, persistent, rngs)
        # In place where RBM.cd_step allocates: the same operations in the same order, so the
        # same numbers, with fewer passes over the (S, D, H) arrays.
        for name, p in self.params.items():
            g = grads[name]  # a fresh array: updating it in place is safe
            if weight_decay and name == "W":
                g -= weight_decay * p
            if momentum:
                vel = self.velocity.get(name)
                if vel is None:
                    vel = self.velocity[name] = g.copy()
                else:
                    vel *= momentum
                    vel += g
                g = vel
            p += lr * g

    def fit(
        self,
        X: ArrayLike,
        *,
        rngs,
        epochs: int = 10,
        batch_size: int = 10,
        lr: float = 0.1,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        shuffle: bool = True,
        callback=None,
    ) -> RBMHistory:
        """``RBM.fit(X[s], rng=rngs[s], monitor=False, ...)`` for every member s at once.

        X is (N, D), shared by the members, or (S, N, D), one training set per member (the
        hidden probabilities of the members of the RBM below, in a stack). ``rngs``: one
        Generator or seed per member; Generators are used, and advanced, in place.
        ``callback(epoch, model)`` runs after every epoch (monitoring goes there). Returns an
        ``RBMHistory`` with the epochs and the training seconds of all the members together.
        """
        X = self._input(X, self.n_visible, "X")
        if epochs < 1 or batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        rngs = self._rngs(rngs)
        n, hist = X.shape[-2], RBMHistory()
        members = np.arange(self.n_seeds)[:, None]  # (S, 1): with (S, B) row indices, member s's rows
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            order = np.stack([r.permutation(n) if shuffle else np.arange(n) for r in rngs])  # (S, N)
            for s in range(0, n, batch_size):
                rows = order[:, s : s + batch_size]  # (S, B)
                batch = X[rows] if X.ndim == 2 else X[members, rows]  # (S, B, D)
                self.cd_step(batch, k, lr, persistent, rngs, momentum, weight_decay)
            hist.seconds.append(time.perf_counter() - t0)
            hist.epoch.append(epoch)
            if callback is not None:
                callback(epoch, self)
        return hist


# --- exact computations for tiny RBMs (enumeration of all 2^D visible states) --------------------

#: Enumeration refuses models with more visible (or hidden) units than this: 2^16 states.
MAX_ENUMERATE = 16


def all_states(n: int) -> Array:
    """Every binary vector of length n, one per row, in counting order: (2^n, n) float64."""
    if not 0 < n <= MAX_ENUMERATE:
        raise ValueError(f"enumerating 2^{n} states is only done for 1 <= n <= {MAX_ENUMERATE}")
    return ((np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)


def log_partition(rbm: RBM) -> float:
    """log Z = log sum_v exp(-F(v)), summing over all 2^D visible states (stable log-sum-exp)."""
    neg_f = -free_energy(all_states(rbm.n_visible), rbm.W, rbm.b_v, rbm.b_h)
    m = neg_f.max()
    return float(m + np.log(np.exp(neg_f - m).sum()))


def model_distribution(rbm: RBM) -> Array:
    """p(v) = exp(-F(v)) / Z for every state of ``all_states(D)``: (2^D,), sums to 1."""
    neg_f = -free_energy(all_states(rbm.n_visible), rbm.W, rbm.b_v, rbm.b_h)
    p = np.exp(neg_f - neg_f.max())
    return p / p.sum()


def log_likelihood(rbm: RBM, X: ArrayLike) -> float:
    """Mean over the rows of X of log p(v) = -F(v) - log Z (exact; tiny models only)."""
    X = np.asarray(X, dtype=np.float64)
    return float(np.mean(-free_energy(X, rbm.W, rbm.b_v, rbm.b_h)) - log_partition(rbm))


def _statistics(v: Array, weights: Array, rbm: RBM) -> dict[str, Array]:
    """sum_n w_n [v_n^T p(h|v_n), v_n, p(h|v_n)]: the sufficient statistics under weights w."""
    ph = hidden_probs(v, rbm.W, rbm.b_h)  # (N, H)
    return {"W": (v * weights[:, None]).T @ ph, "b_v": weights @ v, "b_h": weights @ ph}


def exact_gradient(rbm: RBM, X: ArrayLike) -> dict[str, Array]:
    """d mean log p(X) / d theta = <v p(h|v)^T>_data - <v p(h|v)^T>_model (and likewise for the
    biases), the model term summed over all 2^D states. Tiny models only."""
    X = np.asarray(X, dtype=np.float64)
    data = _statistics(X, np.full(len(X), 1.0 / len(X)), rbm)
    model = _statistics(all_states(rbm.n_visible), model_distribution(rbm), rbm)
    return {k: data[k] - model[k] for k in data}


def gibbs_transition_matrix(rbm: RBM) -> Array:
    """T[a, b] = P(v' = state b | v = state a) for one Gibbs round v -> h -> v'. (2^D, 2^D)."""
    V, Hs = all_states(rbm.n_visible), all_states(rbm.n_hidden)
    ph = hidden_probs(V, rbm.W, rbm.b_h)  # (2^D, H)
    p_h_given_v = np.prod(np.where(Hs[None], ph[:, None, :], 1.0 - ph[:, None, :]), axis=2)  # (2^D, 2^H)
    pv = visible_probs(Hs, rbm.W, rbm.b_v)  # (2^H, D)
    p_v_given_h = np.prod(np.where(V[None], pv[:, None, :], 1.0 - pv[:, None, :]), axis=2)  # (2^H, 2^D)
    return p_h_given_v @ p_v_given_h


def expected_cd_gradient(rbm: RBM, X: ArrayLike, k: int) -> dict[str, Array]:
    """The expectation, over the sampling, of ``RBM.cd_gradient(X, k)``: exact, by propagating
    each data row's distribution through k Gibbs rounds. Tends to ``exact_gradient`` as k grows.
    X must be binary."""
    X = np.asarray(X, dtype=np.float64)
    index = (X @ (2 ** np.arange(rbm.n_visible - 1, -1, -1))).astype(int)  # row of each v in all_states
    dist = np.linalg.matrix_power(gibbs_transition_matrix(rbm), k)[index].mean(axis=0)  # law of v_k
    data = _statistics(X, np.full(len(X), 1.0 / len(X)), rbm)
    model = _statistics(all_states(rbm.n_visible), dist, rbm)
    return {key: data[key] - model[key] for key in data}
