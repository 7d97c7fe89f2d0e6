"""The DBN (NumPy and torch): greedy stacking on hidden probabilities, transform, to_mlp, fine-tuning.

* ``pretrain`` trains RBM i on the hidden probabilities of RBM i - 1: the same weights as
  training the RBMs one by one by hand, and a spy sees exactly those inputs (not samples);
* ``to_mlp`` copies W_i and b_h of every RBM into a sigmoid MLP (NumPy and torch, which agree),
  whose hidden activations are then ``transform``'s;
* the torch DBN fed NumPy generators pretrains to the NumPy DBN's weights;
* fine-tuned from the DBN, a deep sigmoid MLP learns the digits in a few epochs where the same
  net from N(0, 0.01^2) weights stays at chance (the chapter 3 experiment, small).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from course_lib.data import load_digits, train_test_split
from course_lib.numpy_impl.dbn import DBN
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.rbm import RBM, MultiSeedRBM
from course_lib.torch_impl.dbn import DBN as TorchDBN
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return train_test_split(X.astype(np.float64), y, 0.2, seed=0)


def test_pretrain_equals_training_the_rbms_one_by_one(digits):
    X = digits[0][:300]
    dbn = DBN([64, 20, 12, 8], rng=0)
    dbn.pretrain(X, epochs=[2, 3, 1], lr=[0.1, 0.05, 0.2], batch_size=16, rng=np.random.default_rng(1))
    init, train = np.random.default_rng(0), np.random.default_rng(1)
    rbms = [RBM(64, 20, init), RBM(20, 12, init), RBM(12, 8, init)]  # the DBN draws them in this order
    data = X
    for rbm, epochs, lr in zip(rbms, [2, 3, 1], [0.1, 0.05, 0.2], strict=True):
        rbm.fit(data, epochs=epochs, lr=lr, batch_size=16, rng=train)
        data = rbm.prob_h(data)
    for ours, ref in zip(dbn.rbms, rbms, strict=True):
        for name in ("W", "b_v", "b_h"):
            assert_array_equal(ours.params[name], ref.params[name])
    assert_allclose(dbn.transform(X), data, rtol=0, atol=0)
    assert_allclose(dbn.transform(X, layer=1), rbms[0].prob_h(X), rtol=0, atol=0)


def test_each_rbm_is_trained_on_the_hidden_probabilities_below(digits, monkeypatch):
    seen = []
    original = RBM.fit

    def spy(self, X, **kw):
        seen.append(np.array(X, copy=True))
        return original(self, X, **kw)

    monkeypatch.setattr(RBM, "fit", spy)
    dbn = DBN([64, 16, 10], rng=3)
    X = digits[0][:200]
    calls = []
    hists = dbn.pretrain(X, epochs=2, rng=np.random.default_rng(4), callback=lambda *a: calls.append(a[:2]))
    assert len(seen) == 2 and len(hists) == 2
    assert_array_equal(seen[0], X)
    assert_allclose(seen[1], dbn.rbms[0].prob_h(X), rtol=0, atol=0)
    assert not np.all(np.isin(seen[1], [0.0, 1.0])), "the second RBM must see probabilities, not samples"
    assert calls == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_to_mlp_copies_the_rbm_weights_numpy_and_torch(digits):
    X = digits[0][:50]
    dbn = DBN([64, 24, 16], rng=5)
    dbn.pretrain(X, epochs=1, rng=np.random.default_rng(6), monitor=False)
    mlp = dbn.to_mlp(10, rng=7)
    assert isinstance(mlp, MLP) and mlp.activation == "sigmoid" and mlp.sizes == [64, 24, 16, 10]
    for i, rbm in enumerate(dbn.rbms, start=1):
        assert_array_equal(mlp.params[f"W{i}"], rbm.W)
        assert_array_equal(mlp.params[f"b{i}"], rbm.b_h)
        assert not np.shares_memory(mlp.params[f"W{i}"], rbm.W), "fine-tuning must not change the DBN"
    assert_allclose(mlp.hidden_activations(X)[-1], dbn.transform(X), rtol=1e-12)
    fresh = MLP([64, 24, 16, 10], "sigmoid", init="xavier_normal", rng=7)
    assert_array_equal(mlp.params["W3"], fresh.params["W3"])  # a new output layer
    net = dbn.to_mlp(10, backend="torch", rng=7, dtype=torch.float64)
    assert isinstance(net, TorchMLP)
    assert_allclose(net(torch.as_tensor(X)).detach().numpy(), mlp.forward(X), rtol=1e-12)
    with pytest.raises(ValueError, match="backend"):
        dbn.to_mlp(10, backend="jax")


def test_torch_dbn_matches_numpy_dbn_with_numpy_generators(digits):
    X = digits[0][:120]
    np_dbn = DBN([64, 12, 6], rng=np.random.default_rng(8))
    t_dbn = TorchDBN([64, 12, 6], generator=np.random.default_rng(8), dtype=torch.float64)
    kw = dict(epochs=2, batch_size=10, lr=0.1, persistent=True, momentum=0.5)
    h_np = np_dbn.pretrain(X, rng=np.random.default_rng(9), **kw)
    h_t = t_dbn.pretrain(X, rng=np.random.default_rng(9), **kw)
    for a, b in zip(np_dbn.rbms, t_dbn.rbms, strict=True):
        assert_allclose(b.numpy_params()["W"], a.W, rtol=1e-10, atol=1e-13)
    assert_allclose(h_t[1].pseudo_likelihood, h_np[1].pseudo_likelihood, rtol=1e-10)
    assert_allclose(t_dbn.transform(X).numpy(), np_dbn.transform(X), rtol=1e-10)
    np_mlp, t_mlp = np_dbn.to_mlp(10, rng=1), t_dbn.to_mlp(10, rng=1, dtype=torch.float64)
    assert_allclose(t_mlp(torch.as_tensor(X)).detach().numpy(), np_mlp.forward(X), rtol=1e-9)
    assert_allclose(t_dbn.to_mlp(10, backend="numpy", rng=1).forward(X), np_mlp.forward(X), rtol=1e-9)


def test_torch_dbn_with_a_torch_generator_trains(digits):
    X = torch.as_tensor(digits[0][:300], dtype=torch.float32)
    dbn = TorchDBN([64, 20, 5], generator=1)
    untrained = dbn.rbms[0].reconstruction_error(X)
    hists = dbn.pretrain(X, epochs=2, lr=0.1)
    assert hists[0].recon_error[-1] < 0.5 * untrained, (untrained, hists[0].recon_error)
    assert dbn.transform(X).shape == (300, 5)


def test_constructor_errors():
    with pytest.raises(ValueError, match="sizes"):
        DBN([64])
    with pytest.raises(ValueError, match="entries for 2 RBMs"):
        DBN([4, 3, 2]).pretrain(np.zeros((5, 4)), epochs=[1, 2, 3])
    with pytest.raises(ValueError, match="layer"):
        DBN([4, 3, 2]).transform(np.zeros((5, 4)), layer=3)


def test_pretrained_deep_sigmoid_net_learns_where_small_random_weights_stall(digits):
    Xtr, Xte, ytr, yte = digits
    sizes = [64, 100, 100, 100]
    with threadpool_limits(1):
        dbn = DBN(sizes, rng=0)
        dbn.pretrain(
            Xtr, epochs=10, batch_size=20, lr=0.1, momentum=0.5, rng=np.random.default_rng(1), monitor=False
        )
        small = MLP([*sizes, 10], "sigmoid", init="normal:0.01", rng=0)
        nets = {"dbn": dbn.to_mlp(10, rng=0), "small": small}
        acc = {}
        for name, net in nets.items():
            fit(net, Xtr, ytr, epochs=10, batch_size=20, lr=0.1, rng=0, eval_train=False)
            acc[name] = net.accuracy(Xte, yte)
    assert acc["dbn"] > 0.6, acc
    assert acc["small"] < 0.25, acc  # still at chance: the vanishing gradient of chapter 1


def test_a_stack_of_multiseed_rbms_is_dbn_pretrain_for_every_seed():
    """Book chapter 3 pretrains the DBNs of several seeds as MultiSeedRBMs, one per layer, each
    trained on the (S, N, H) hidden probabilities of the one below: member s is DBN(rng=s).pretrain."""
    X = np.random.default_rng(5).random((53, 12))
    sizes, seeds = [12, 7, 5], [3, 4]
    init = [np.random.default_rng(s) for s in seeds]  # DBN(sizes, rng=s) draws every RBM from one stream
    train = [np.random.default_rng(50 + s) for s in seeds]
    data, layers = X, []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layer = MultiSeedRBM(a, b, init)
        layer.fit(data, rngs=train, epochs=2, batch_size=10, lr=0.1, momentum=0.5)
        data = layer.prob_h(data)
        layers.append(layer)
    for i, s in enumerate(seeds):
        dbn = DBN(sizes, rng=s)
        dbn.pretrain(
            X, epochs=2, batch_size=10, lr=0.1, momentum=0.5, rng=np.random.default_rng(50 + s), monitor=False
        )
        for layer, rbm in zip(layers, dbn.rbms, strict=True):
            assert_array_equal(layer.W[i], rbm.W)
        assert_allclose(data[i], dbn.transform(X), rtol=1e-12)
