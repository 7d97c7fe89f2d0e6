"""Inverted dropout, NumPy and torch: statistics, evaluation mode, the backward's mask, the MLP.

* ``dropout_forward`` in training keeps each unit with probability 1 - p and scales it by
  1/(1 - p), so E[out] = x (seeded statistical tests, tolerances of 5 standard errors); in
  evaluation it is exactly the identity and draws no random number; p = 0 and p = 1 are exact;
* ``dropout_backward`` multiplies by the *forward's* mask: central differences with the mask
  held fixed, and torch autograd through the same mask;
* the torch ``Dropout`` has ``nn.Dropout``'s statistics, and draws from its generator;
* the MLPs: dropout per hidden layer, gradient checks with fixed masks, evaluation = the
  unregularized network, E[train logits] = eval logits for one hidden layer, and ``fit``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.gradcheck import (
    check_model_gradients,
    numerical_gradient,
    numerical_gradient_array,
    rel_error,
)
from course_lib.numpy_impl import layers
from course_lib.numpy_impl.mlp import MLP
from course_lib.torch_impl import layers as TL
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

PS = [0.1, 0.5, 0.8]


def within(value: float, expected: float, se: float, k: float = 5.0) -> bool:
    return abs(value - expected) <= k * se


# ----------------------------------------------------------------------------- the NumPy layer


@pytest.mark.parametrize("p", PS)
def test_training_keeps_1_minus_p_and_preserves_the_mean(p):
    n = 400_000
    x = np.full((n // 100, 100), 2.0)
    out, mask = layers.dropout_forward(x, p, np.random.default_rng(0), train=True)
    dropped = float(np.mean(out == 0))
    assert within(dropped, p, np.sqrt(p * (1 - p) / n)), dropped
    kept = out[out != 0]
    assert_allclose(kept, 2.0 / (1 - p), rtol=1e-15)  # inverted: kept units scaled by 1/(1 - p)
    # E[out] = x; the standard deviation of one output is x sqrt(p / (1 - p))
    assert within(float(out.mean()), 2.0, 2.0 * np.sqrt(p / (1 - p) / n)), out.mean()
    assert_array_equal(out, x * mask)


def test_masks_are_independent_across_units_and_examples():
    out, _ = layers.dropout_forward(np.ones((20_000, 2)), 0.5, np.random.default_rng(1))
    kept = out != 0
    both = float(np.mean(kept[:, 0] & kept[:, 1]))
    assert within(both, 0.25, np.sqrt(0.25 * 0.75 / 20_000)), both


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9, 1.0])
def test_evaluation_is_exactly_the_identity_and_draws_nothing(p):
    x = np.random.default_rng(2).normal(size=(7, 5))
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    out, cache = layers.dropout_forward(x, p, rng, train=False)
    assert_array_equal(out, x)  # no scaling by 1 - p: that is old-style (non-inverted) dropout
    assert cache is None
    assert rng.bit_generator.state == state, "evaluation must not consume random numbers"
    dout = np.arange(35.0).reshape(7, 5)
    assert_array_equal(layers.dropout_backward(dout, cache), dout)
    out, _ = layers.dropout_forward(x, p, None, train=False)  # no rng needed either
    assert_array_equal(out, x)


def test_p_zero_and_p_one_edge_cases():
    x = np.random.default_rng(4).normal(size=(6, 4))
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    out, cache = layers.dropout_forward(x, 0.0, rng, train=True)
    assert_array_equal(out, x)
    assert rng.bit_generator.state == state, "p = 0 drops nothing and draws nothing"
    out, cache = layers.dropout_forward(x, 1.0, rng, train=True)
    assert_array_equal(out, 0.0)
    assert np.all(np.isfinite(out)), "p = 1 must not compute 0 * inf"
    assert_array_equal(layers.dropout_backward(np.ones_like(x), cache), 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_p(p):
    with pytest.raises(ValueError, match="probability of dropping"):
        layers.dropout_forward(np.ones(3), p, np.random.default_rng(0))
    with pytest.raises(ValueError, match="probability of dropping"):
        TL.dropout_forward(torch.ones(3), p)


def test_training_needs_an_rng():
    with pytest.raises(ValueError, match="needs rng"):
        layers.dropout_forward(np.ones((2, 2)), 0.5, None, train=True)


@pytest.mark.parametrize("p", PS)
def test_backward_uses_the_forward_mask(p):
    x = np.random.default_rng(6).normal(size=(5, 8))
    dout = np.random.default_rng(7).normal(size=(5, 8))
    out, cache = layers.dropout_forward(x, p, np.random.default_rng(8))
    dx = layers.dropout_backward(dout, cache)
    assert_array_equal(dx == 0, out == 0)
    assert_allclose(dx[out != 0], dout[out != 0] / (1 - p), rtol=1e-15)
    # central differences with the mask held fixed: the same seed draws the same mask
    numeric = numerical_gradient_array(
        lambda z: layers.dropout_forward(z, p, np.random.default_rng(8))[0], x.copy(), dout
    )
    assert rel_error(dx, numeric) < 1e-7  # rounding of the differences: ~1e-8 on small entries
    # a *new* mask in the backward pass gives another gradient
    _, other = layers.dropout_forward(x, p, np.random.default_rng(9))
    assert not np.array_equal(layers.dropout_backward(dout, other), dx)


def test_integer_inputs_are_promoted():
    out, _ = layers.dropout_forward(np.ones((100, 100), dtype=int), 0.5, np.random.default_rng(0))
    assert out.dtype == np.float64 and set(np.unique(out)) == {0.0, 2.0}


def test_float32_stays_float32():
    out, m = layers.dropout_forward(np.ones((10, 10), np.float32), 0.25, np.random.default_rng(0))
    assert out.dtype == m.dtype == np.float32


# ----------------------------------------------------------------------------- the torch layer


@pytest.mark.parametrize("p", PS)
def test_torch_dropout_has_the_statistics_of_nn_dropout(p):
    n = 400_000
    x = torch.full((n // 100, 100), 3.0, dtype=torch.float64)
    ours = TL.Dropout(p, torch.Generator().manual_seed(0)).train()(x)
    torch.manual_seed(0)  # nn.Dropout draws from the global generator
    theirs = torch.nn.Dropout(p).train()(x)
    se = np.sqrt(p * (1 - p) / n)
    for out in (ours, theirs):
        assert within(float((out == 0).double().mean()), p, se)
        assert_allclose(out[out != 0].numpy(), 3.0 / (1 - p), rtol=1e-12)
        assert within(float(out.mean()), 3.0, 3.0 * np.sqrt(p / (1 - p) / n))
    assert abs(float((ours == 0).double().mean() - (theirs == 0).double().mean())) < 7 * se
    # evaluation: both return the input itself
    assert TL.Dropout(p).eval()(x) is x and torch.nn.Dropout(p).eval()(x) is x


def test_torch_dropout_is_reproducible_with_a_generator_and_its_grad_is_the_mask():
    x = torch.randn(50, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = TL.Dropout(0.4, torch.Generator().manual_seed(3))(x)
    b = TL.Dropout(0.4, torch.Generator().manual_seed(3))(x)
    assert torch.equal(a, b)
    xr = x.clone().requires_grad_(True)
    out, m = TL.dropout_forward(xr, 0.4, torch.Generator().manual_seed(5))
    dout = torch.randn_like(x)
    out.backward(dout)
    assert torch.equal(xr.grad, TL.dropout_backward(dout, m))
    # and the NumPy backward with the torch mask agrees
    assert_allclose(layers.dropout_backward(dout.numpy(), m.numpy()), xr.grad.numpy(), rtol=0)
    assert torch.equal(TL.dropout_forward(x, 1.0)[0], torch.zeros_like(x))
    assert TL.dropout_forward(x, 0.3, train=False)[0] is x


# --------------------------------------------------------------------------------------- MLPs


def test_mlp_dropout_gradient_check_with_fixed_masks():
    rng = np.random.default_rng(0)
    model = MLP([6, 7, 7, 3], "tanh", rng=1, dropout=[0.3, 0.5], input_dropout=0.2, l2=0.01)
    x, y = rng.normal(size=(5, 6)), rng.integers(0, 3, size=5)
    loss, grads = model.loss_and_grads(x, y, rng=np.random.default_rng(42))
    for name, p in model.params.items():
        numeric = numerical_gradient(
            lambda _: model.loss_and_grads(x, y, rng=np.random.default_rng(42))[0], p, h=1e-5
        )
        assert rel_error(grads[name], numeric) < 1e-7, name
    assert loss != pytest.approx(model.loss(x, y)), "with an rng, dropout is on"
    # without an rng loss_and_grads is deterministic, and the gradient check passes as usual
    assert max(check_model_gradients(model, x, y, h=1e-5).values()) < 1e-6


def test_mlp_dropout_per_layer_draws_masks_only_where_asked():
    rng = np.random.default_rng(1)
    model = MLP([4, 6, 6, 3], "relu", rng=0, dropout=[0.5, 0.0])
    x = rng.normal(size=(10, 4))
    got = model.forward(x, rng=np.random.default_rng(7))
    # by hand: one mask after the first hidden layer, none after the second
    P, mask_rng = model.params, np.random.default_rng(7)
    h1 = np.maximum(x @ P["W1"] + P["b1"], 0)
    h1 = h1 * (mask_rng.random(h1.shape) >= 0.5) / 0.5
    h2 = np.maximum(h1 @ P["W2"] + P["b2"], 0)
    assert_allclose(got, h2 @ P["W3"] + P["b3"], rtol=1e-12)
    assert model.dropout == [0.5, 0.0] and model.has_dropout
    assert MLP([4, 6, 3], dropout=0.3).dropout == [0.3] and not MLP([4, 6, 3]).has_dropout


def test_mlp_evaluation_ignores_dropout_and_expectation_matches():
    rng = np.random.default_rng(2)
    plain = MLP([5, 40, 3], "relu", rng=3)
    drop = MLP([5, 40, 3], "relu", rng=3, dropout=0.5)
    x = rng.normal(size=(4, 5))
    assert_array_equal(drop.forward(x), plain.forward(x))  # evaluation mode: identity
    assert_array_equal(drop.predict(x), plain.predict(x))
    # logits are linear in the dropped hidden layer: E[train logits] = eval logits
    mask_rng = np.random.default_rng(4)
    samples = np.stack([drop.forward(x, rng=mask_rng) for _ in range(4000)])  # (S, N, C)
    se = samples.std(axis=0) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - plain.forward(x)) <= 5 * se + 1e-12)


def test_numpy_and_torch_mlps_agree_in_evaluation_and_torch_layout():
    model = MLP([5, 6, 6, 3], "tanh", rng=0, dropout=[0.2, 0.4], input_dropout=0.1)
    tm = TorchMLP(model.sizes, "tanh", dtype=torch.float64, dropout=[0.2, 0.4], input_dropout=0.1)
    tm.load_numpy_params(model.params)
    kinds = [type(m).__name__ for m in tm.net]
    assert kinds == ["Dropout", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert [m.p for m in tm.net if isinstance(m, TL.Dropout)] == [0.1, 0.2, 0.4]
    x = np.random.default_rng(1).normal(size=(8, 5))
    tm.eval()
    assert_allclose(tm(torch.tensor(x)).detach().numpy(), model.forward(x), rtol=1e-12)
    tm.train()
    a, b = tm(torch.tensor(x)), tm(torch.tensor(x))
    assert not torch.equal(a, b), "training mode draws new masks each call"
    # same generator seed -> same masks; the weights do not depend on dropout
    t1, t2 = (TorchMLP([5, 6, 3], dropout=0.5, generator=9) for _ in range(2))
    xt = torch.tensor(x, dtype=torch.float32)
    assert torch.equal(t1(xt), t2(xt))
    assert torch.equal(TorchMLP([5, 6, 3], generator=9).linears[0].weight, t1.linears[0].weight)
    assert TorchMLP([5, 6, 3]).net[2].__class__.__name__ == "Linear", "no Dropout module when p = 0"


def test_fit_with_dropout_is_reproducible_and_keeps_the_batches():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(90, 4)), rng.integers(0, 3, size=90)
    runs = [fit(MLP([4, 16, 3], rng=0, dropout=0.5), X, y, epochs=3, batch_size=10, lr=0.1, rng=5)
            for _ in range(2)]
    assert runs[0].train_loss == runs[1].train_loss
    other = fit(MLP([4, 16, 3], rng=0, dropout=0.5), X, y, epochs=3, batch_size=10, lr=0.1, rng=6)
    assert other.train_loss != runs[0].train_loss

    seen = {}
    for p in (0.0, 0.5):
        model = MLP([4, 16, 3], rng=0, dropout=p)
        real, batches = model.loss_and_grads, []

        def spy(xb, yb, rng=None, real=real, batches=batches):
            batches.append(np.asarray(xb)[:, 0].copy())
            return real(xb, yb, rng=rng) if rng is not None else real(xb, yb)

        model.loss_and_grads = spy
        fit(model, X, y, epochs=2, batch_size=10, lr=0.1, rng=5)
        seen[p] = np.concatenate(batches)
    assert_array_equal(seen[0.0], seen[0.5]), "dropout must not change the batch order"


def test_torch_fit_with_dropout_trains_and_evaluates_without_it():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, size=60)
    model = TorchMLP([4, 16, 3], dropout=0.5, generator=0)
    hist = fit(model, X, y, epochs=2, batch_size=10, lr=0.1, X_val=X, y_val=y)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(X))
    assert hist.val_loss[-1] == pytest.approx(F.cross_entropy(logits, torch.tensor(y)).item(), rel=1e-6)
