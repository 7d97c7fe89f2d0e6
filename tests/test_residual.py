"""Residual blocks and the residual MLP (``numpy_impl.residual``, ``torch_impl.residual``).

* ``residual_backward`` and ``ResidualMLP.loss_and_grads`` against central differences, float64,
  for several activations, with and without the skip;
* parity: the torch block and network loaded with the same weights give the same outputs and
  gradients (float64), and ``skip=False`` is the plain ``MLP`` of the same depth;
* Hypothesis: output shapes for any batch/width/bottleneck, and identity when W2 = b2 = 0;
* the skip's gradient: dx = dout + (what flows through F), so dx = dout when F's weights vanish;
* ``SplitMerge`` shapes and merges; ``training.fit`` trains a ResidualMLP.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from course_lib.data import make_xor
from course_lib.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.residual import ResidualMLP, residual_backward, residual_forward
from course_lib.torch_impl.residual import ResidualBlock, SplitMerge
from course_lib.torch_impl.residual import ResidualMLP as TorchResidualMLP
from course_lib.training import fit

ACTS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu"]
H = 1e-5  # central-difference step; smooth activations and inputs away from ReLU's kink


def block_params(rng: np.random.Generator, H_: int, M: int, scale: float = 0.5) -> dict[str, np.ndarray]:
    return {
        "W1": rng.normal(0, scale, (H_, M)),
        "b1": rng.normal(0, 0.3, M),
        "W2": rng.normal(0, scale, (M, H_)),
        "b2": rng.normal(0, 0.3, H_),
    }


def with_biases(model: ResidualMLP, rng: np.random.Generator) -> ResidualMLP:
    for k, p in model.params.items():
        if k.startswith("b"):
            p[...] = rng.normal(0, 0.3, p.shape)
    return model


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("skip", [True, False])
def test_block_backward_matches_central_differences(activation: str, skip: bool) -> None:
    rng = np.random.default_rng(1)
    x, p = rng.normal(size=(6, 4)), block_params(rng, 4, 3)
    dout = rng.normal(size=(6, 4))
    _, cache = residual_forward(x, p, activation, skip)
    dx, grads = residual_backward(dout, cache)
    num_dx = numerical_gradient_array(
        lambda z: residual_forward(z, p, activation, skip)[0], x.copy(), dout, H
    )
    assert rel_error(dx, num_dx) < 1e-7
    for name in p:
        arr = p[name]
        num = numerical_gradient_array(lambda _: residual_forward(x, p, activation, skip)[0], arr, dout, H)
        assert rel_error(grads[name], num) < 1e-7, name


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("skip", [True, False])
def test_residual_mlp_gradients(activation: str, skip: bool) -> None:
    """Every parameter's gradient against central differences (h = 1e-4, float64).

    Entries as small as 1e-10 occur (a deep plain sigmoid stack, saturated softmax columns):
    their relative error is rounding, so the check is rtol 1e-5 plus an absolute 1e-9.
    """
    rng = np.random.default_rng(2)
    model = ResidualMLP(5, 4, 3, n_blocks=3, activation=activation, init="xavier_normal", rng=3, skip=skip)
    model = with_biases(model, rng)
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    _, grads = model.loss_and_grads(x, y)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        num = numerical_gradient(lambda _: model.loss(x, y), p, 1e-4)
        assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("activation", ACTS)
def test_torch_block_parity_float64(activation: str) -> None:
    rng = np.random.default_rng(4)
    x, p = rng.normal(size=(8, 5)), block_params(rng, 5, 6)
    dout = rng.normal(size=(8, 5))
    out, cache = residual_forward(x, p, activation)
    dx, grads = residual_backward(dout, cache)
    block = ResidualBlock(5, activation, hidden=6, dtype=torch.float64)
    with torch.no_grad():
        block.linear1.weight.copy_(torch.as_tensor(p["W1"].T))
        block.linear1.bias.copy_(torch.as_tensor(p["b1"]))
        block.linear2.weight.copy_(torch.as_tensor(p["W2"].T))
        block.linear2.bias.copy_(torch.as_tensor(p["b2"]))
    xt = torch.tensor(x, requires_grad=True)
    outt = block(xt)
    outt.backward(torch.as_tensor(dout))
    assert_allclose(outt.detach().numpy(), out, rtol=1e-12, atol=1e-12)
    assert_allclose(xt.grad.numpy(), dx, rtol=1e-10, atol=1e-12)
    assert_allclose(block.linear1.weight.grad.numpy().T, grads["W1"], rtol=1e-10, atol=1e-12)
    assert_allclose(block.linear2.weight.grad.numpy().T, grads["W2"], rtol=1e-10, atol=1e-12)
    assert_allclose(block.linear1.bias.grad.numpy(), grads["b1"], rtol=1e-10, atol=1e-12)
    assert_allclose(block.linear2.bias.grad.numpy(), grads["b2"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("skip", [True, False])
def test_torch_network_parity_float64(skip: bool) -> None:
    rng = np.random.default_rng(5)
    model = with_biases(ResidualMLP(6, 5, 4, n_blocks=4, activation="tanh", rng=0, skip=skip), rng)
    x, y = rng.normal(size=(9, 6)), rng.integers(0, 4, 9)
    loss, grads = model.loss_and_grads(x, y)
    tmodel = TorchResidualMLP(6, 5, 4, 4, "tanh", skip=skip, dtype=torch.float64).load_numpy_params(
        model.params
    )
    logits = tmodel(torch.as_tensor(x))
    tloss = F.cross_entropy(logits, torch.as_tensor(y))
    tloss.backward()
    assert_allclose(logits.detach().numpy(), model.forward(x), rtol=1e-12, atol=1e-12)
    assert_allclose(tloss.item(), loss, rtol=1e-12)
    tgrads = tmodel.numpy_grads()
    assert set(tgrads) == set(grads)
    for name, g in grads.items():
        assert_allclose(tgrads[name], g, rtol=1e-9, atol=1e-12, err_msg=name)


def test_plain_version_is_the_mlp_of_the_same_depth() -> None:
    """skip=False: the same function, loss and gradients as MLP([D] + [H] * (2K + 1) + [C])."""
    rng = np.random.default_rng(6)
    res = with_biases(ResidualMLP(6, 5, 3, n_blocks=3, activation="relu", rng=7, skip=False), rng)
    mlp = MLP([6] + [5] * 7 + [3], "relu", rng=7)
    # the same initializer and rng draw the same weights in the same order
    for name, value in res.to_mlp_params().items():
        if name.startswith("W"):
            assert_allclose(mlp.params[name], value, rtol=0, atol=0)
    mlp.params.update(res.to_mlp_params())
    x, y = rng.normal(size=(10, 6)), rng.integers(0, 3, 10)
    assert_allclose(mlp.forward(x), res.forward(x), rtol=1e-12)
    _, g_mlp = mlp.loss_and_grads(x, y)
    _, g_res = res.loss_and_grads(x, y)
    assert_allclose(np.array(mlp.gradient_norms(x, y)), np.array(res.gradient_norms(x, y)), rtol=1e-12)
    for i, name in enumerate(res.weight_names(), start=1):
        assert_allclose(g_mlp[f"W{i}"], g_res[name], rtol=1e-12, atol=1e-14)


def test_skip_adds_the_upstream_gradient() -> None:
    """dx(skip) - dx(no skip) = dout exactly, and dx = dout when the branch's weights are 0."""
    rng = np.random.default_rng(8)
    x, p, dout = rng.normal(size=(5, 4)), block_params(rng, 4, 4), rng.normal(size=(5, 4))
    dx_skip, _ = residual_backward(dout, residual_forward(x, p, "tanh", True)[1])
    dx_plain, _ = residual_backward(dout, residual_forward(x, p, "tanh", False)[1])
    assert_allclose(dx_skip - dx_plain, dout, rtol=1e-12, atol=1e-12)
    zero = {k: np.zeros_like(v) for k, v in p.items()}
    dx_zero, _ = residual_backward(dout, residual_forward(x, zero, "tanh")[1])
    assert_allclose(dx_zero, dout, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 6),
    width=st.integers(1, 7),
    hidden=st.integers(1, 7),
    activation=st.sampled_from(ACTS),
    seed=st.integers(0, 2**16),
)
def test_block_shapes_and_identity_at_zero_weights(n, width, hidden, activation, seed) -> None:
    rng = np.random.default_rng(seed)
    x, p = rng.normal(size=(n, width)), block_params(rng, width, hidden)
    out, cache = residual_forward(x, p, activation)
    dx, grads = residual_backward(np.ones_like(out), cache)
    assert out.shape == dx.shape == x.shape
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in p.items()}
    p["W2"][...] = 0.0
    p["b2"][...] = 0.0
    assert_allclose(residual_forward(x, p, activation)[0], x, rtol=0, atol=0)
    tblock = ResidualBlock(width, activation, hidden=hidden, zero_last=True, dtype=torch.float64)
    with torch.no_grad():
        tblock.linear2.bias.zero_()  # init_linear zeroes biases already; explicit for the reader
        assert_allclose(tblock(torch.as_tensor(x)).numpy(), x, rtol=0, atol=0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    d=st.integers(1, 6),
    width=st.integers(1, 6),
    c=st.integers(2, 5),
    blocks=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_residual_mlp_shapes_and_zero_last_identity(n, d, width, c, blocks, seed) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    model = ResidualMLP(d, width, c, blocks, "relu", rng=seed, zero_last=True)
    assert model.forward(x).shape == (n, c)
    hidden = model.hidden_activations(x)
    assert len(hidden) == blocks + 1
    for h in hidden[1:]:  # every block starts as the identity
        assert_allclose(h, hidden[0], rtol=0, atol=0)
    assert len(model.gradient_norms(x, rng.integers(0, c, n))) == 2 * blocks + 2


def test_split_merge() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 5)
    x = torch.randn(6, 4, generator=gen)
    cat = SplitMerge([a, b], "concat")
    assert cat(x).shape == (6, 8)
    assert torch.equal(cat(x), torch.cat([a(x), b(x)], dim=1))
    c = torch.nn.Linear(4, 3)
    summed = SplitMerge([a, c], "sum")
    assert torch.allclose(summed(x), a(x) + c(x), rtol=1e-6, atol=1e-7)
    # a residual block is the sum of an identity branch and F
    block = ResidualBlock(4, "relu", generator=1)
    as_sum = SplitMerge(
        [torch.nn.Identity(), torch.nn.Sequential(*[block.act, block.linear1, block.act, block.linear2])],
        "sum",
    )
    assert torch.allclose(as_sum(x), block(x), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="one shape"):
        SplitMerge([a, b], "sum")(x)
    with pytest.raises(ValueError, match="concat"):
        SplitMerge([a], "max")


def test_errors() -> None:
    with pytest.raises(ValueError, match="activation"):
        ResidualMLP(2, 3, 2, 1, activation="prelu")
    with pytest.raises(ValueError, match="inputs of shape"):
        ResidualMLP(2, 3, 2, 1).forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="residual block"):
        residual_forward(np.zeros((2, 3)), block_params(np.random.default_rng(0), 4, 4))


def test_fit_trains_a_deep_residual_mlp_on_xor() -> None:
    """training.fit drives a ResidualMLP (its loss_and_grads and forward) to fit XOR."""
    X, y = make_xor(200, noise=0.1, rng=np.random.default_rng(0))
    model = ResidualMLP(2, 16, 2, n_blocks=6, activation="relu", rng=0)
    hist = fit(model, X, y, epochs=60, batch_size=20, lr=0.05, rng=0)
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    assert model.accuracy(X, y) > 0.9
    model.params["W0"][...] = 0.0  # a broken model must not pass: it predicts one class
    assert model.accuracy(X, y) < 0.75
