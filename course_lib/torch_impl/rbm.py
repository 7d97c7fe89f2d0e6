"""The RBM of ``numpy_impl.rbm`` on PyTorch tensors (CPU or CUDA), with the same names.

The parameters are ``nn.Parameter``s, ``W`` (D, H), ``b_v`` (D,), ``b_h`` (H,), updated in place
by contrastive divergence under ``torch.no_grad()``; the free energy stays differentiable, so
``autograd`` of F(v_data) - F(v_model) gives the same update (a check in ``tests/test_rbm.py``).

Every sampling method takes ``rng``: a ``torch.Generator`` (on the model's device; the fast
path), or a NumPy ``Generator``, from which the uniforms are drawn with ``rng.random(shape)``
in the NumPy RBM's order. Given the same NumPy generator state and parameters, the two RBMs
therefore make the same updates, which is how the tests hold them to each other.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.numpy_impl.rbm import RBMHistory

Rng = torch.Generator | np.random.Generator


class RBM(nn.Module):
    """Bernoulli-Bernoulli RBM: ``W`` (D, H) ~ N(0, std^2), ``b_v`` and ``b_h`` zeros.

    ``generator`` (a ``torch.Generator``, a NumPy ``Generator`` or a seed) is the default
    source of randomness; every sampling method also takes its own ``rng``.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        generator: Rng | int | None = 0,
        *,
        std: float = 0.01,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if int(n_visible) < 1 or int(n_hidden) < 1:
            raise ValueError(f"n_visible and n_hidden must be positive, got {n_visible}, {n_hidden}")
        device = torch.device(device)
        if generator is None or isinstance(generator, int):
            seed = 0 if generator is None else generator
            generator = torch.Generator(device=device).manual_seed(seed)
        self.generator = generator
        self.n_visible, self.n_hidden = int(n_visible), int(n_hidden)
        shape = (self.n_visible, self.n_hidden)
        if isinstance(generator, np.random.Generator):  # the NumPy RBM's draw: same W for the same state
            w = torch.as_tensor(generator.normal(0.0, std, shape), dtype=dtype, device=device)
        else:
            w = torch.randn(shape, generator=generator, dtype=dtype, device=device) * std
        self.W = nn.Parameter(w, requires_grad=False)
        self.b_v = nn.Parameter(torch.zeros(self.n_visible, dtype=dtype, device=device), requires_grad=False)
        self.b_h = nn.Parameter(torch.zeros(self.n_hidden, dtype=dtype, device=device), requires_grad=False)
        self.chain: Tensor | None = None  # PCD: hidden states of the persistent chains (C, H)
        self.velocity: dict[str, Tensor] = {}

    # helpers ------------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Tensor]:
        return {"W": self.W, "b_v": self.b_v, "b_h": self.b_h}

    def _tensor(self, x, n: int, name: str = "v") -> Tensor:
        x = torch.as_tensor(x, dtype=self.W.dtype, device=self.W.device)
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"{name} must have shape (N, {n}), got {tuple(x.shape)}")
        return x

    def _rng(self, rng: Rng | None) -> Rng:
        return self.generator if rng is None else rng

    def _uniform(self, shape: tuple[int, ...], rng: Rng) -> Tensor:
        """U[0, 1) of ``shape``: ``torch.rand`` with a torch generator, else ``rng.random``."""
        if isinstance(rng, np.random.Generator):
            return torch.as_tensor(rng.random(shape), dtype=self.W.dtype, device=self.W.device)
        return torch.rand(shape, generator=rng, dtype=self.W.dtype, device=self.W.device)

    def _bernoulli(self, p: Tensor, rng: Rng) -> Tensor:
        return (self._uniform(tuple(p.shape), rng) < p).to(p.dtype)

    @torch.no_grad()
    def load_numpy_params(self, rbm_or_params) -> RBM:
        """Copy W, b_v, b_h from a ``numpy_impl.rbm.RBM`` (or its ``params`` dict)."""
        params = getattr(rbm_or_params, "params", rbm_or_params)
        for name, p in self.params.items():
            p.copy_(torch.as_tensor(np.asarray(params[name])))
        return self

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.params.items()}

    # conditionals, energies ---------------------------------------------------------------------

    def prob_h(self, v) -> Tensor:
        """p(h = 1 | v) = sigma(v W + b_h): (N, D) -> (N, H)."""
        return torch.sigmoid(self._tensor(v, self.n_visible) @ self.W + self.b_h)

    def prob_v(self, h) -> Tensor:
        """p(v = 1 | h) = sigma(h W^T + b_v): (N, H) -> (N, D)."""
        return torch.sigmoid(self._tensor(h, self.n_hidden, "h") @ self.W.T + self.b_v)

    def sample_h(self, v, rng: Rng | None = None) -> tuple[Tensor, Tensor]:
        """(p(h = 1 | v), h = (u < p)), both (N, H)."""
        p = self.prob_h(v)
        return p, self._bernoulli(p, self._rng(rng))

    def sample_v(self, h, rng: Rng | None = None) -> tuple[Tensor, Tensor]:
        """(p(v = 1 | h), v = (u < p)), both (N, D)."""
        p = self.prob_v(h)
        return p, self._bernoulli(p, self._rng(rng))

    def energy(self, v, h) -> Tensor:
        """E(v, h) = -v.b_v - h.b_h - v W h per row: (N,)."""
        v, h = self._tensor(v, self.n_visible), self._tensor(h, self.n_hidden, "h")
        return -(v @ self.b_v) - (h @ self.b_h) - ((v @ self.W) * h).sum(dim=1)

    def free_energy(self, v) -> Tensor:
        """F(v) = -v.b_v - sum_j softplus(b_h + v W)_j: (N, D) -> (N,). Differentiable."""
        v = self._tensor(v, self.n_visible)
        return -(v @ self.b_v) - F.softplus(v @ self.W + self.b_h).sum(dim=1)

    @torch.no_grad()
    def gibbs(self, v, steps: int = 1, rng: Rng | None = None) -> Tensor:
        """``steps`` rounds of v -> h -> v; the last visible sample."""
        rng = self._rng(rng)
        v = self._tensor(v, self.n_visible)
        for _ in range(steps):
            v = self.sample_v(self.sample_h(v, rng)[1], rng)[1]
        return v

    # learning -----------------------------------------------------------------------------------

    @torch.no_grad()
    def cd_gradient(
        self, v, k: int = 1, persistent: bool = False, rng: Rng | None = None
    ) -> dict[str, Tensor]:
        """The CD-k / PCD-k estimate of d mean log p(v) / d theta; see ``numpy_impl.rbm``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        rng = self._rng(rng)
        v0 = self._tensor(v, self.n_visible)
        ph0 = self.prob_h(v0)  # (N, H)
        h = self.chain if persistent and self.chain is not None else self._bernoulli(ph0, rng)
        for step in range(k):
            vk = self._bernoulli(self.prob_v(h), rng)  # (M, D)
            phk = self.prob_h(vk)  # (M, H)
            if persistent or step < k - 1:
                h = self._bernoulli(phk, rng)
        if persistent:
            self.chain = h
        return {
            "W": v0.T @ ph0 / len(v0) - vk.T @ phk / len(vk),
            "b_v": v0.mean(0) - vk.mean(0),
            "b_h": ph0.mean(0) - phk.mean(0),
        }

    @torch.no_grad()
    def cd_step(
        self,
        v,
        k: int = 1,
        lr: float = 0.1,
        persistent: bool = False,
        rng: Rng | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> dict[str, Tensor]:
        """theta += lr * g (with optional momentum and weight decay on W); returns g."""
        grads = self.cd_gradient(v, k, persistent, rng)
        for name, p in self.params.items():
            g = grads[name]
            if weight_decay and name == "W":
                g = g - weight_decay * p
            if momentum:
                vel = self.velocity.get(name)
                g = self.velocity[name] = g.clone() if vel is None else momentum * vel + g
            p.add_(g, alpha=lr)
        return grads

    def reset_chain(self) -> None:
        self.chain = None

    # evaluation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def transform(self, v) -> Tensor:
        """p(h = 1 | v), (N, H)."""
        return self.prob_h(v)

    @torch.no_grad()
    def reconstruct(self, v) -> Tensor:
        """p(v = 1 | h = p(h = 1 | v)), (N, D)."""
        return self.prob_v(self.prob_h(v))

    @torch.no_grad()
    def reconstruction_error(self, v) -> float:
        """Mean of (v - reconstruct(v))^2 over rows and visible units."""
        v = self._tensor(v, self.n_visible)
        return float(((v - self.reconstruct(v)) ** 2).mean())

    @torch.no_grad()
    def pseudo_likelihood(self, v, rng: Rng | None = None, exact: bool = False) -> Tensor:
        """Per row: D * log sigma(F(v~_i) - F(v)) for one random i, or the sum over all i (exact)."""
        v = self._tensor(v, self.n_visible)
        n, d = v.shape
        fe = self.free_energy(v)
        if not exact:
            rng = self._rng(rng)
            if isinstance(rng, np.random.Generator):
                i = torch.as_tensor(rng.integers(0, d, n), device=v.device)
            else:
                i = torch.randint(0, d, (n,), generator=rng, device=v.device)
            flipped = v.clone()
            rows = torch.arange(n, device=v.device)
            flipped[rows, i] = 1 - flipped[rows, i]
            return d * F.logsigmoid(self.free_energy(flipped) - fe)
        out = torch.empty(n, dtype=v.dtype, device=v.device)
        pre = v @ self.W + self.b_h
        chunk = max(1, 2**22 // (d * self.n_hidden))
        for s in range(0, n, chunk):
            sign = 1 - 2 * v[s : s + chunk]  # (B, D)
            pre_flip = pre[s : s + chunk, None, :] + sign[:, :, None] * self.W  # (B, D, H)
            fe_flip = -(v[s : s + chunk] @ self.b_v)[:, None] - sign * self.b_v
            fe_flip = fe_flip - F.softplus(pre_flip).sum(dim=2)
            out[s : s + chunk] = F.logsigmoid(fe_flip - fe[s : s + chunk, None]).sum(dim=1)
        return out

    # training -----------------------------------------------------------------------------------

    def fit(
        self,
        X,
        *,
        epochs: int = 10,
        batch_size: int = 10,
        lr: float = 0.1,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        shuffle: bool = True,
        rng: Rng | None = None,
        X_val=None,
        monitor: bool = True,
        monitor_rows: int | None = None,
        callback=None,
        progress: bool | None = None,
    ) -> RBMHistory:
        """Mini-batch CD-k / PCD training, as ``numpy_impl.rbm.RBM.fit``; returns the history.

        Shuffling uses ``rng`` too: ``torch.randperm`` with a torch generator, ``rng.permutation``
        with a NumPy one (then the batches are the NumPy RBM's).
        """
        from tqdm.auto import tqdm

        from course_lib.training import progress_enabled

        X = self._tensor(X, self.n_visible, "X")
        X_val = None if X_val is None else self._tensor(X_val, self.n_visible, "X_val")
        if epochs < 1 or batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        rng = self._rng(rng)
        if isinstance(rng, np.random.Generator):
            monitor_rng: Rng = rng.spawn(1)[0]
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device).item())
            monitor_rng = torch.Generator(device=rng.device).manual_seed(seed)
        hist = RBMHistory()
        bar = tqdm(range(1, epochs + 1), desc="RBM", disable=not progress_enabled(progress), leave=False)
        n = len(X)
        for epoch in bar:
            if X.is_cuda:
                torch.cuda.synchronize(X.device)
            t0 = time.perf_counter()
            if shuffle:
                if isinstance(rng, np.random.Generator):
                    order = torch.as_tensor(rng.permutation(n), device=X.device)
                else:
                    order = torch.randperm(n, generator=rng, device=rng.device).to(X.device)
                data = X[order]
            else:
                data = X
            for s in range(0, n, batch_size):
                self.cd_step(data[s : s + batch_size], k, lr, persistent, rng, momentum, weight_decay)
            if X.is_cuda:
                torch.cuda.synchronize(X.device)
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
