"""Layer normalization and RMSNorm, NumPy and torch layers: against ``torch.nn.functional``,
autograd, central differences and properties.

* ``layernorm_forward`` equals ``F.layer_norm`` and ``rmsnorm_forward`` equals ``F.rms_norm``
  (and ``nn.LayerNorm`` / ``nn.RMSNorm``) in float64, for several eps;
* their backward passes equal torch autograd and central differences (float64), and a backward
  that treats a row's mean and variance as constants is caught;
* the torch-tensor pairs in ``torch_impl.layers`` equal ``F.layer_norm`` / ``F.rms_norm`` and
  autograd too;
* Hypothesis properties: every row of layer norm's x_hat has mean 0 and variance var / (var + eps);
  layer norm is invariant to a per-row affine change of its input and RMSNorm to a per-row
  positive scale; a row's output does not depend on the other rows (so on the batch size); dx is
  orthogonal, row by row, to the constant vector and x_hat (layer norm) or to x (RMSNorm);
* bad shapes are refused with a message.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from course_lib.gradcheck import numerical_gradient, numerical_gradient_array
from course_lib.numpy_impl import layers
from course_lib.torch_impl import layers as TL

TOL = dict(rtol=1e-12, atol=1e-13)  # forward against torch, float64
GRAD_TOL = dict(rtol=1e-10, atol=1e-12)  # backward against autograd


def problem(N: int = 6, D: int = 5, seed: int = 0):
    """Rows with offsets and scales far from (0, 1), and non-trivial gamma and beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) * rng.uniform(0.5, 3.0, (N, 1)) + rng.uniform(-2, 2, (N, 1))
    return x, rng.uniform(0.5, 2.0, D), rng.normal(size=D)


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


# ------------------------------------------------------------------------------- against torch


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.3])
def test_layernorm_forward_matches_torch(eps):
    x, gamma, beta = problem()
    out, _ = layers.layernorm_forward(x, gamma, beta, eps)
    assert_allclose(out, F.layer_norm(t64(x), (5,), t64(gamma), t64(beta), eps).numpy(), **TOL)
    module = torch.nn.LayerNorm(5, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(t64(gamma))
        module.bias.copy_(t64(beta))
        assert_allclose(out, module(t64(x)).numpy(), **TOL)


@pytest.mark.parametrize("eps", [1e-6, 1e-3, 0.3])
def test_rmsnorm_forward_matches_torch(eps):
    x, gamma, _ = problem(seed=1)
    out, _ = layers.rmsnorm_forward(x, gamma, eps)
    assert_allclose(out, F.rms_norm(t64(x), (5,), t64(gamma), eps).numpy(), **TOL)
    module = torch.nn.RMSNorm(5, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(t64(gamma))
        assert_allclose(out, module(t64(x)).numpy(), **TOL)


def test_default_eps_are_torch_modules_and_the_contracts():
    """layernorm's eps defaults to 1e-5 (nn.LayerNorm's), rmsnorm's to 1e-6 (the contract's)."""
    x, gamma, beta = problem(N=4, D=3, seed=2)
    x = x * 1e-3  # small rows, where eps matters
    assert_allclose(
        layers.layernorm_forward(x, gamma, beta)[0],
        F.layer_norm(t64(x), (3,), t64(gamma), t64(beta), 1e-5).numpy(),
        **TOL,
    )
    assert_allclose(
        layers.rmsnorm_forward(x, gamma)[0], F.rms_norm(t64(x), (3,), t64(gamma), 1e-6).numpy(), **TOL
    )


def test_layernorm_backward_matches_autograd():
    x, gamma, beta = problem(N=9, D=7, seed=3)
    xt, gt, bt = (t64(v).requires_grad_(True) for v in (x, gamma, beta))
    dout = np.random.default_rng(4).normal(size=x.shape)
    F.layer_norm(xt, (7,), gt, bt, 1e-5).backward(t64(dout))
    dx, dgamma, dbeta = layers.layernorm_backward(dout, layers.layernorm_forward(x, gamma, beta)[1])
    assert_allclose(dx, xt.grad.numpy(), **GRAD_TOL)
    assert_allclose(dgamma, gt.grad.numpy(), **GRAD_TOL)
    assert_allclose(dbeta, bt.grad.numpy(), **GRAD_TOL)


def test_rmsnorm_backward_matches_autograd():
    x, gamma, _ = problem(N=9, D=7, seed=5)
    xt, gt = t64(x).requires_grad_(True), t64(gamma).requires_grad_(True)
    dout = np.random.default_rng(6).normal(size=x.shape)
    F.rms_norm(xt, (7,), gt, 1e-6).backward(t64(dout))
    dx, dgamma = layers.rmsnorm_backward(dout, layers.rmsnorm_forward(x, gamma)[1])
    assert_allclose(dx, xt.grad.numpy(), **GRAD_TOL)
    assert_allclose(dgamma, gt.grad.numpy(), **GRAD_TOL)


def test_torch_layer_pairs_match_functional_and_autograd():
    x, gamma, beta = problem(N=8, D=6, seed=7)
    dout = t64(np.random.default_rng(8).normal(size=x.shape))
    # layer norm
    xt, gt, bt = (t64(v).requires_grad_(True) for v in (x, gamma, beta))
    ref = F.layer_norm(xt, (6,), gt, bt, 1e-5)
    ref.backward(dout)
    out, cache = TL.layernorm_forward(t64(x), t64(gamma), t64(beta))
    assert_allclose(out.numpy(), ref.detach().numpy(), **TOL)
    for got, want in zip(TL.layernorm_backward(dout, cache), (xt.grad, gt.grad, bt.grad), strict=True):
        assert_allclose(got.numpy(), want.numpy(), **GRAD_TOL)
    # RMSNorm
    xt, gt = t64(x).requires_grad_(True), t64(gamma).requires_grad_(True)
    ref = F.rms_norm(xt, (6,), gt, 1e-6)
    ref.backward(dout)
    out, cache = TL.rmsnorm_forward(t64(x), t64(gamma))
    assert_allclose(out.numpy(), ref.detach().numpy(), **TOL)
    for got, want in zip(TL.rmsnorm_backward(dout, cache), (xt.grad, gt.grad), strict=True):
        assert_allclose(got.numpy(), want.numpy(), **GRAD_TOL)


def test_numpy_and_torch_pairs_agree_in_float32():
    x, gamma, beta = (v.astype(np.float32) for v in problem(seed=9))
    out, cache = layers.layernorm_forward(x, gamma, beta)
    t_out, t_cache = TL.layernorm_forward(torch.tensor(x), torch.tensor(gamma), torch.tensor(beta))
    assert out.dtype == np.float32
    assert_allclose(out, t_out.numpy(), rtol=1e-5, atol=1e-6)
    dout = np.ones_like(x)
    assert_allclose(
        layers.layernorm_backward(dout, cache)[0],
        TL.layernorm_backward(torch.tensor(dout), t_cache)[0].numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    out, _ = layers.rmsnorm_forward(x, gamma)
    assert out.dtype == np.float32
    assert_allclose(out, TL.rmsnorm_forward(torch.tensor(x), torch.tensor(gamma))[0].numpy(), rtol=1e-5)


# ------------------------------------------------------------------------- central differences


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layernorm_backward_matches_central_differences(seed):
    x, gamma, beta = problem(N=5, D=4, seed=10 + seed)
    dout = np.random.default_rng(seed).normal(size=x.shape)
    dx, dgamma, dbeta = layers.layernorm_backward(dout, layers.layernorm_forward(x, gamma, beta)[1])
    assert_allclose(
        dx,
        numerical_gradient_array(lambda v: layers.layernorm_forward(v, gamma, beta)[0], x.copy(), dout),
        rtol=1e-7,
        atol=1e-9,
    )
    assert_allclose(
        dgamma,
        numerical_gradient_array(lambda v: layers.layernorm_forward(x, v, beta)[0], gamma.copy(), dout),
        rtol=1e-7,
        atol=1e-9,
    )
    assert_allclose(
        dbeta,
        numerical_gradient_array(lambda v: layers.layernorm_forward(x, gamma, v)[0], beta.copy(), dout),
        rtol=1e-7,
        atol=1e-9,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rmsnorm_backward_matches_central_differences(seed):
    x, gamma, _ = problem(N=5, D=4, seed=20 + seed)
    dout = np.random.default_rng(seed).normal(size=x.shape)
    dx, dgamma = layers.rmsnorm_backward(dout, layers.rmsnorm_forward(x, gamma)[1])
    num_dx = numerical_gradient_array(lambda v: layers.rmsnorm_forward(v, gamma)[0], x.copy(), dout)
    num_dg = numerical_gradient_array(lambda v: layers.rmsnorm_forward(x, v)[0], gamma.copy(), dout)
    assert_allclose(dx, num_dx, rtol=1e-7, atol=1e-9)
    assert_allclose(dgamma, num_dg, rtol=1e-7, atol=1e-9)


def test_a_backward_that_ignores_the_row_statistics_is_caught():
    """The checks can fail: with a row's mean and rms treated as constants, dx is wrong."""
    x, gamma, beta = problem(seed=30)
    dout = np.random.default_rng(31).normal(size=x.shape)
    _, (_, g, inv_std) = layers.layernorm_forward(x, gamma, beta)
    num = numerical_gradient(lambda v: np.sum(layers.layernorm_forward(v, gamma, beta)[0] * dout), x.copy())
    assert np.max(np.abs(dout * g * inv_std - num)) > 0.1
    _, (_, g, inv_rms) = layers.rmsnorm_forward(x, gamma)
    num = numerical_gradient(lambda v: np.sum(layers.rmsnorm_forward(v, gamma)[0] * dout), x.copy())
    assert np.max(np.abs(dout * g * inv_rms - num)) > 0.1


# ---------------------------------------------------------------------------------- properties

rows = st.integers(1, 8).flatmap(
    lambda n: st.integers(2, 6).flatmap(
        lambda d: arrays(np.float64, (n, d), elements=st.floats(-50, 50, allow_nan=False, width=64))
    )
)


@settings(max_examples=60, deadline=None)
@given(x=rows, seed=st.integers(0, 2**16))
def test_layernorm_rows_have_mean_beta_and_scale_gamma(x, seed):
    D = x.shape[1]
    rng = np.random.default_rng(seed)
    g, b = rng.uniform(0.1, 4.0), rng.uniform(-3, 3)
    out, (x_hat, _, _) = layers.layernorm_forward(x, np.full(D, g), np.full(D, b))
    var = x.var(axis=1)
    assert_allclose(x_hat.mean(axis=1), 0.0, atol=1e-9)
    assert_allclose(x_hat.var(axis=1), var / (var + 1e-5), rtol=1e-7, atol=1e-9)
    assert_allclose(out.mean(axis=1), b, rtol=1e-9, atol=1e-9 * (1 + g))


@settings(max_examples=60, deadline=None)
@given(x=rows, data=st.data())
def test_invariances_per_row(x, data):
    """Layer norm: invariant to x_n -> s_n x_n + c_n (s_n > 0); RMSNorm: to x_n -> s_n x_n."""
    N, D = x.shape
    x = x + np.random.default_rng(0).normal(size=x.shape)  # no constant row: var >> eps
    scale = np.array(data.draw(st.lists(st.floats(0.5, 20.0), min_size=N, max_size=N)))[:, None]
    shift = np.array(data.draw(st.lists(st.floats(-100, 100), min_size=N, max_size=N)))[:, None]
    gamma, beta = np.linspace(0.5, 1.5, D), np.linspace(-1, 1, D)
    out, _ = layers.layernorm_forward(x, gamma, beta, eps=0.0)
    assert_allclose(
        layers.layernorm_forward(x * scale + shift, gamma, beta, eps=0.0)[0], out, rtol=1e-6, atol=1e-6
    )
    out, _ = layers.rmsnorm_forward(x, gamma, eps=0.0)
    assert_allclose(layers.rmsnorm_forward(x * scale, gamma, eps=0.0)[0], out, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(x=rows)
def test_a_rows_output_does_not_depend_on_the_other_rows(x):
    """No batch statistics: each row alone gives the same output as in the batch (any batch size)."""
    D = x.shape[1]
    gamma, beta = np.linspace(0.5, 2.0, D), np.linspace(-1.0, 1.0, D)
    full = layers.layernorm_forward(x, gamma, beta)[0]
    full_rms = layers.rmsnorm_forward(x, gamma)[0]
    for n in range(len(x)):
        assert_allclose(layers.layernorm_forward(x[n : n + 1], gamma, beta)[0], full[n : n + 1], rtol=1e-14)
        assert_allclose(layers.rmsnorm_forward(x[n : n + 1], gamma)[0], full_rms[n : n + 1], rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(x=rows, seed=st.integers(0, 2**16))
def test_dx_is_orthogonal_to_what_the_norm_removes(x, seed):
    """With eps = 0, layer norm's output is unchanged along 1 and x_hat (a shift, a scale of the row),
    so dx is orthogonal to both, row by row; RMSNorm's is unchanged along x, so dx . x = 0."""
    rng = np.random.default_rng(seed)
    x = x + rng.normal(size=x.shape)
    assume(np.all(x.var(axis=1) > 1e-6))
    D = x.shape[1]
    gamma, dout = rng.uniform(0.5, 2, D), rng.normal(size=x.shape)
    _, cache = layers.layernorm_forward(x, gamma, rng.normal(size=D), eps=0.0)
    dx, _, _ = layers.layernorm_backward(dout, cache)
    scale = (np.abs(dx).max() + np.abs(dout).max()) * D
    assert_allclose(dx.sum(axis=1), 0.0, atol=1e-9 * scale)
    assert_allclose((dx * cache[0]).sum(axis=1), 0.0, atol=1e-9 * scale)
    _, cache = layers.rmsnorm_forward(x, gamma, eps=0.0)
    dx, _ = layers.rmsnorm_backward(dout, cache)
    assert_allclose((dx * x).sum(axis=1), 0.0, atol=1e-9 * scale * np.abs(x).max())


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: layers.layernorm_forward(np.ones(3), np.ones(3), np.zeros(3)), "needs x"),
        (lambda: layers.layernorm_forward(np.ones((2, 3)), np.ones(2), np.zeros(3)), "gamma"),
        (lambda: layers.layernorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(4)), "beta"),
        (lambda: layers.rmsnorm_forward(np.ones((2, 3, 4)), np.ones(4)), "needs x"),
        (lambda: layers.rmsnorm_forward(np.ones((2, 3)), np.ones(4)), "gamma"),
    ],
)
def test_bad_shapes_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
