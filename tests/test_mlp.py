"""The NumPy MLP: gradient checks, parity with the torch MLP, SGD against torch.optim.SGD.

* ``loss_and_grads`` against central differences (``check_model_gradients``) for every
  activation and 1 to 4 hidden layers, float64;
* the torch MLP loaded with the same weights gives the same loss, logits and gradients;
* ``numpy_impl.optimizers.SGD`` (momentum, Nesterov, weight decay) takes the same steps as
  ``torch.optim.SGD``;
* construction and input errors; ``gradient_norms``; XOR is learned;
* batch normalization (before or after the activation): gradient checks in training mode,
  the same loss, gradients, running averages and evaluation outputs as the torch MLP with
  ``nn.BatchNorm1d``, which passes change the running averages and which do not, and the
  gradient that reaches the first layer of a deep sigmoid network;
* layer norm and RMSNorm (``norm="layer"``, ``"rms"``): parameter layout (layer norm's beta
  replaces the dense bias, RMSNorm keeps it), gradient checks, the same loss, gradients and
  trajectory as the torch MLP with ``nn.LayerNorm`` / ``nn.RMSNorm``, with skips too; a row's
  output independent of the batch; ``norm=`` and the older ``batchnorm=`` refused when they
  disagree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.data import make_xor
from course_lib.gradcheck import check_model_gradients, numerical_gradient
from course_lib.numpy_impl import activations as A
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.optimizers import SGD
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

ACTIVATIONS = sorted(A.ACTIVATIONS)  # elu gelu leaky_relu prelu relu sigmoid silu tanh
# The step of the central differences. Its error is rounding, about eps * |L| / h, plus
# truncation, about h^2 |L'''|. With h = 1e-6 (check_model_gradients' default) the rounding
# part is ~1e-10 in absolute terms, which is a relative error above 1e-6 on the smallest
# gradient entries of the deep nets here (|g| ~ 2e-6: sigmoid's vanishing gradient, units
# in leaky_relu's 0.01 slope). With h = 1e-4 rounding is ~1e-12 and truncation ~1e-8
# relative: every relative error below is < 5e-7 while the bound stays 1e-6.
H = 1e-4


def sizes_for(depth: int, D: int = 4, width: int = 5, C: int = 3) -> list[int]:
    return [D] + [width] * depth + [C]


def randomize(model: MLP, rng: np.random.Generator) -> MLP:
    """Non-zero biases and a different PReLU slope per layer, so a mix-up of layers shows."""
    for k, p in model.params.items():
        if k.startswith("b"):
            p[...] = rng.normal(0, 0.5, size=p.shape)
        elif k.startswith("alpha"):
            p[...] = rng.uniform(0.05, 0.5)
    return model


def pre_activations(model: MLP, x: np.ndarray) -> list[np.ndarray]:
    """z_i = h_{i-1} @ W_i + b_i of every hidden layer."""
    out, h = [], x
    f = A.ACTIVATIONS[model.activation][0]
    for i in range(1, model.n_layers):
        z = h @ model.params[f"W{i}"] + model.params[f"b{i}"]
        out.append(z)
        h = f(z, model.params[f"alpha{i}"]) if model.activation == "prelu" else f(z)
    return out


def problem_away_from_kinks(activation: str, depth: int, N: int = 6):
    """A model and a batch whose hidden pre-activations all lie at least 1e-2 from 0.

    Central differences straddle the kink of relu, leaky_relu, prelu (and elu's second
    derivative) when a pre-activation is within about h * |input| of 0; then the numerical
    gradient is an average of the two one-sided slopes and no backward can match it. So the
    seeds are chosen (deterministically, the first that works) so that no pre-activation is
    that close: a parameter step of h = 1e-4 moves a pre-activation by under 1e-3 here.
    """
    for seed in range(100):
        rng = np.random.default_rng(seed)
        model = randomize(MLP(sizes_for(depth), activation, rng=seed), rng)
        x = rng.normal(size=(N, model.sizes[0]))
        y = rng.integers(0, model.sizes[-1], size=N)
        if all(np.abs(z).min() > 1e-2 for z in pre_activations(model, x)):
            return model, x, y
    raise AssertionError("no seed gives pre-activations away from 0")  # pragma: no cover


# ------------------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_grads_pass_gradient_check(activation, depth):
    model, x, y = problem_away_from_kinks(activation, depth)
    errors = check_model_gradients(model, x, y, h=H)
    expected = {f"{k}{i}" for i in range(1, depth + 2) for k in "Wb"}
    if activation == "prelu":
        expected |= {f"alpha{i}" for i in range(1, depth + 1)}
    assert set(errors) == expected
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: rel error {errors[worst]:.2e}"


def test_gradient_check_catches_a_wrong_backward():
    """The check itself can fail: halve one gradient and the error is large."""
    model, x, y = problem_away_from_kinks("tanh", 2)
    real = model.loss_and_grads

    def broken(xb, yb):
        loss, grads = real(xb, yb)
        grads["W2"] = grads["W2"] * 0.5
        return loss, grads

    model.loss_and_grads = broken
    errors = check_model_gradients(model, x, y, h=H)
    assert errors["W2"] > 0.1
    assert errors["W1"] < 1e-6


# -------------------------------------------------------------------------- NumPy == torch MLP


def torch_twin(model: MLP) -> TorchMLP:
    return TorchMLP(model.sizes, model.activation, dtype=torch.float64).load_numpy_params(model.params)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_torch_mlp_gives_same_loss_and_grads(activation, depth):
    rng = np.random.default_rng(depth)
    model = randomize(MLP(sizes_for(depth, D=7, width=6, C=4), activation, rng=1), rng)
    x, y = rng.normal(size=(9, 7)), rng.integers(0, 4, size=9)
    loss, grads = model.loss_and_grads(x, y)

    tm = torch_twin(model)
    logits = tm(torch.tensor(x))
    assert_allclose(logits.detach().numpy(), model.forward(x), rtol=1e-12, atol=1e-13)
    tloss = F.cross_entropy(logits, torch.tensor(y))
    tloss.backward()
    assert_allclose(loss, tloss.item(), rtol=1e-12, atol=1e-14)
    tgrads = tm.numpy_grads()
    assert set(tgrads) == set(grads)
    for k in grads:
        assert tgrads[k].shape == np.shape(grads[k]), k
        assert_allclose(grads[k], tgrads[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_load_numpy_params_layout():
    model = randomize(MLP([3, 4, 2], "prelu", rng=0), np.random.default_rng(0))
    tm = torch_twin(model)
    lin1, lin2 = tm.linears
    assert lin1.weight.shape == (4, 3)  # torch: (out, in)
    assert_array_equal(lin1.weight.detach().numpy(), model.params["W1"].T)
    assert_array_equal(lin2.bias.detach().numpy(), model.params["b2"])
    prelu = [m for m in tm.net if isinstance(m, torch.nn.PReLU)][0]
    assert_allclose(prelu.weight.item(), float(model.params["alpha1"]), rtol=0)


# ------------------------------------------------------------------------------------------ SGD


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.1, weight_decay=0.01),
        dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.05),
    ],
)
def test_sgd_matches_torch_optim_sgd(kw):
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4), "alpha1": np.array(0.25)}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt, topt = SGD(**kw), torch.optim.SGD(list(tparams.values()), **kw)
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
        for k in params:
            assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=k)
    assert {k: id(v) for k, v in params.items()} == ids, "SGD must update the arrays in place"


def test_sgd_does_not_modify_grads():
    params, grads = {"w": np.ones(3)}, {"w": np.full(3, 2.0)}
    SGD(lr=0.1, momentum=0.9, weight_decay=0.1).step(params, grads)
    assert_array_equal(grads["w"], 2.0)
    assert_allclose(params["w"], 1 - 0.1 * (2.0 + 0.1))


def test_training_steps_match_torch_mlp():
    """Three SGD-with-momentum steps of the whole NumPy MLP = the torch MLP's."""
    rng = np.random.default_rng(5)
    model = randomize(MLP([5, 6, 6, 3], "prelu", rng=2), rng)
    tm = torch_twin(model)
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for _ in range(3):
        x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
        loss, grads = model.loss_and_grads(x, y)
        opt.step(model.params, grads)
        topt.zero_grad()
        tloss = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert_allclose(loss, tloss.item(), rtol=1e-12)
    ref = torch_twin(model)  # the NumPy weights after 3 steps, in torch layout
    for a, b in zip(tm.parameters(), ref.parameters(), strict=True):
        assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("sizes", [[4], [], [4, 0, 2], [4, -3, 2]])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must be at least"):
        MLP(sizes)
    with pytest.raises(ValueError, match="sizes must be at least"):
        TorchMLP(sizes)


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; choose from \['elu'"):
        MLP([2, 3, 2], "swish")
    with pytest.raises(ValueError, match=r"unknown activation 'swish'"):
        TorchMLP([2, 3, 2], "swish")


def test_unknown_initializer():
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot'.*xavier_normal"):
        MLP([2, 3, 2], "relu", init="glorot")


@pytest.mark.parametrize("shape", [(5, 3), (4,), (2, 4, 1)])
def test_wrong_input_shape(shape):
    model = MLP([4, 3, 2])
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 4\), got"):
        model.forward(np.zeros(shape))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(N, 4\)"):
        model.loss_and_grads(np.zeros(shape), np.zeros(len(shape), dtype=int))


# ---------------------------------------------------------------------------- the rest of MLP


def test_parameters_shapes_and_dtype():
    m = MLP([4, 5, 6, 3], "prelu", dtype=np.float32)
    assert {k: np.shape(v) for k, v in m.params.items()} == {
        "W1": (4, 5),
        "b1": (5,),
        "alpha1": (),
        "W2": (5, 6),
        "b2": (6,),
        "alpha2": (),
        "W3": (6, 3),
        "b3": (3,),
    }
    assert all(v.dtype == np.float32 for v in m.params.values())
    assert_array_equal(m.params["alpha1"], 0.25)
    assert m.n_layers == 3
    x, y = np.random.default_rng(0).normal(size=(7, 4)), np.arange(7) % 3
    loss, grads = m.loss_and_grads(x, y)  # float64 x is cast to the model's float32
    assert m.forward(x).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values()), {k: g.dtype for k, g in grads.items()}
    assert [h.shape for h in m.hidden_activations(x)] == [(7, 5), (7, 6)]
    assert m.predict(x).shape == (7,)
    assert 0.0 <= m.accuracy(x, y) <= 1.0
    assert_allclose(m.loss(x, y), loss, rtol=1e-6)


def test_same_seed_same_model():
    a, b, c = MLP([4, 5, 3], rng=3), MLP([4, 5, 3], rng=3), MLP([4, 5, 3], rng=4)
    for k in a.params:
        assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W1"], c.params["W1"])


@pytest.mark.parametrize("depth", [1, 4])
def test_gradient_norms_one_per_layer(depth):
    model, x, y = problem_away_from_kinks("sigmoid", depth)
    norms = model.gradient_norms(x, y)
    assert len(norms) == model.n_layers == depth + 1
    _, grads = model.loss_and_grads(x, y)
    assert_allclose(norms, [np.linalg.norm(grads[f"W{i}"]) for i in range(1, depth + 2)], rtol=1e-12)
    assert all(isinstance(n, float) and n > 0 for n in norms)


def test_xor_is_learned():
    X, y = make_xor(n_per_corner=50, noise=0.15, rng=0)
    model = MLP([2, 16, 16, 2], "relu", rng=0)
    hist = fit(
        model, X, y, epochs=100, batch_size=20, optimizer=SGD(lr=0.1, momentum=0.9), rng=0, progress=False
    )
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert model.accuracy(X, y) > 0.95
    # and a linear model cannot: no straight line separates XOR
    linear = MLP([2, 2], "relu", rng=0)
    fit(linear, X, y, epochs=100, batch_size=20, optimizer=SGD(lr=0.1, momentum=0.9), rng=0, progress=False)
    assert linear.accuracy(X, y) < 0.8


# ----------------------------------------------------------------------------- batch norm


def bn_problem(activation: str, position: str, depth: int = 2, seed: int = 0):
    """A batch-norm MLP with non-trivial gamma, beta and biases, and a batch far from (0, 1)."""
    rng = np.random.default_rng(seed)
    model = MLP(sizes_for(depth, D=4, width=5, C=3), activation, rng=seed, batchnorm=position)
    for k, v in model.params.items():
        if k.startswith(("gamma", "beta", "b")):
            v[...] = (
                rng.uniform(0.5, 1.5, size=v.shape) if k.startswith("gamma") else rng.normal(0, 0.5, v.shape)
            )
    x = rng.normal(size=(8, 4)) * 2.0 + 1.0
    return model, x, rng.integers(0, 3, size=8)


BN_CASES = [
    ("tanh", "before"),
    ("sigmoid", "before"),
    ("elu", "after"),
    ("tanh", "after"),
    ("sigmoid", "after"),
]


@pytest.mark.parametrize("activation, position", BN_CASES)
def test_batchnorm_mlp_passes_gradient_check_in_training_mode(activation, position):
    model, x, y = bn_problem(activation, position, depth=3)
    before = {k: v.copy() for k, v in model.buffers.items()}
    _, grads = model.loss_and_grads(x, y, update_running=False)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        num = numerical_gradient(lambda _: model.loss(x, y, train=True), p, H)
        assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)
    for k, v in before.items():  # neither pass touched the running averages
        assert_array_equal(model.buffers[k], v)


def test_batchnorm_before_the_activation_replaces_the_bias():
    m = MLP([4, 5, 6, 3], "relu", batchnorm=True)
    assert list(m.params) == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert list(m.buffers) == ["running_mean1", "running_var1", "running_mean2", "running_var2"]
    after = MLP([4, 5, 3], "relu", batchnorm="after")
    assert list(after.params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2"]
    assert [type(mod).__name__ for mod in TorchMLP([4, 5, 3], "relu", batchnorm=True).net] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert [type(mod).__name__ for mod in TorchMLP([4, 5, 3], "relu", batchnorm="after").net] == [
        "Linear",
        "ReLU",
        "BatchNorm1d",
        "Linear",
    ]
    assert TorchMLP([4, 5, 3], batchnorm=True).linears[0].bias is None
    with pytest.raises(ValueError, match="batchnorm is False, True"):
        MLP([4, 5, 3], batchnorm="middle")


@pytest.mark.parametrize("activation, position", [("prelu", "before"), ("relu", "after"), ("tanh", "before")])
def test_batchnorm_mlp_matches_torch_in_training_and_evaluation(activation, position):
    model, x, y = bn_problem(activation, position, depth=2, seed=3)
    tm = TorchMLP(model.sizes, activation, dtype=torch.float64, batchnorm=position)
    tm.load_numpy_params(model.params, model.buffers)
    rng = np.random.default_rng(4)
    opt = SGD(lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):  # three training steps on different batches
        xb, yb = rng.normal(size=(10, 4)) * 2.0 + 1.0, rng.integers(0, 3, size=10)
        loss, grads = model.loss_and_grads(xb, yb)
        tm.train()
        topt.zero_grad()
        tloss = F.cross_entropy(tm(torch.tensor(xb)), torch.tensor(yb))
        tloss.backward()
        tgrads = tm.numpy_grads()
        assert_allclose(loss, tloss.item(), rtol=1e-12)
        assert set(tgrads) == set(grads)
        for k in grads:
            assert_allclose(grads[k], tgrads[k], rtol=1e-8, atol=1e-12, err_msg=k)
        opt.step(model.params, grads)
        topt.step()
    for k, v in tm.numpy_buffers().items():
        assert_allclose(model.buffers[k], v, rtol=1e-12, err_msg=k)
    tm.eval()
    assert_allclose(model.forward(x), tm(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    tm.train()
    with torch.no_grad():
        assert_allclose(model.forward(x, train=True), tm(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-12)


def test_only_a_training_step_moves_the_running_averages():
    model, x, y = bn_problem("relu", "before")
    start = {k: v.copy() for k, v in model.buffers.items()}
    model.forward(x)
    model.forward(x, train=True)
    model.loss(x, y, train=True)
    model.hidden_activations(x, train=True)
    model.gradient_norms(x, y)
    for k, v in start.items():
        assert_array_equal(model.buffers[k], v)
    model.loss_and_grads(x, y)
    # from 0, one step with momentum 0.1 moves the running mean to 0.1 * the batch mean of z = x W1
    assert_allclose(model.buffers["running_mean1"], 0.1 * (x @ model.params["W1"]).mean(0), rtol=1e-12)
    # in evaluation one example's output does not depend on the others; in training it does
    assert_allclose(model.forward(x[:3]), model.forward(x)[:3], rtol=1e-12)
    assert not np.allclose(model.forward(x[:3], train=True), model.forward(x, train=True)[:3])


def test_batchnorm_lets_the_gradient_reach_the_first_layer_of_a_deep_sigmoid_network():
    """Chapter 1's vanishing gradient, and what batch norm does to it (10 sigmoid layers)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 20)), rng.integers(0, 4, size=64)
    ratios = {}
    for bn in (False, True):
        model = MLP([20] + [30] * 10 + [4], "sigmoid", init="normal:0.1", rng=1, batchnorm=bn)
        norms = model.gradient_norms(x, y)
        ratios[bn] = norms[0] / norms[-1]
    assert ratios[False] < 1e-6, ratios
    assert ratios[True] > 1e-2, ratios


# ------------------------------------------------------------------------ residual=True (skips)


RESIDUAL_CASES = [("tanh", False), ("sigmoid", False), ("elu", "before"), ("tanh", "after")]


def residual_problem(activation: str, batchnorm, seed: int = 0):
    rng = np.random.default_rng(seed)
    model = MLP([5, 6, 6, 6, 3], activation, rng=seed, residual=True, batchnorm=batchnorm)
    randomize(model, rng)
    return model, rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)


def test_residual_skips_every_equal_width_hidden_layer_after_the_first():
    assert MLP([5, 6, 6, 6, 3], residual=True).skips == [2, 3]
    assert MLP([6, 6, 6, 4, 4, 2], residual=True).skips == [2, 4]  # not layer 1: the input is no hidden layer
    assert MLP([5, 6, 6, 3]).skips == []
    assert [type(m).__name__ for m in TorchMLP([5, 6, 6, 3], residual=True).net] == [
        "Linear", "ReLU", "Skip", "Linear",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="two equal hidden widths"):
        MLP([5, 6, 7, 3], residual=True)
    with pytest.raises(ValueError, match="two equal hidden widths"):
        TorchMLP([5, 6, 7, 3], residual=True)


def test_residual_layer_adds_its_input():
    """h2 = f(h1) + h1: with W2 = 0 and b2 = 0 (tanh(0) = 0) the skipped layer is the identity."""
    model, x, _ = residual_problem("tanh", False)
    model.params["W2"][...] = 0.0
    model.params["b2"][...] = 0.0
    h1, h2, _ = model.hidden_activations(x)
    assert_allclose(h2, h1, rtol=0, atol=0)


@pytest.mark.parametrize("activation, batchnorm", RESIDUAL_CASES)
def test_residual_mlp_passes_gradient_check(activation, batchnorm):
    model, x, y = residual_problem(activation, batchnorm)
    _, grads = model.loss_and_grads(x, y, update_running=False)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        num = numerical_gradient(lambda _: model.loss(x, y, train=True), p, H)
        assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)


def test_residual_gradient_check_catches_a_missing_skip_in_the_backward():
    """Control: drop the skip's gradient and the first layer's gradient no longer checks."""
    model, x, y = residual_problem("tanh", False)
    skips, model.skips = model.skips, []
    _, wrong = model.loss_and_grads(x, y)  # backward (and forward) without the skips...
    model.skips = skips
    num = numerical_gradient(lambda _: model.loss(x, y), model.params["W1"], H)  # ...loss with them
    assert not np.allclose(wrong["W1"], num, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("activation, batchnorm", RESIDUAL_CASES)
def test_residual_mlp_matches_torch(activation, batchnorm):
    model, x, y = residual_problem(activation, batchnorm, seed=2)
    tm = TorchMLP(model.sizes, activation, dtype=torch.float64, batchnorm=batchnorm, residual=True)
    tm.load_numpy_params(model.params, model.buffers)
    loss, grads = model.loss_and_grads(x, y)
    tm.train()
    tloss = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
    tloss.backward()
    assert_allclose(loss, tloss.item(), rtol=1e-12)
    tgrads = tm.numpy_grads()
    assert set(tgrads) == set(grads)
    for k in grads:
        assert_allclose(grads[k], tgrads[k], rtol=1e-8, atol=1e-12, err_msg=k)
    tm.eval()
    assert_allclose(model.forward(x), tm(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------- layer norm and RMSNorm


def norm_problem(activation: str, norm: str, depth: int = 2, seed: int = 0, residual: bool = False):
    """An MLP with layer or RMS norm, gamma, beta and biases moved from their start, and a batch."""
    rng = np.random.default_rng(seed)
    sizes = [4] + [6] * depth + [3]
    model = MLP(sizes, activation, rng=seed, norm=norm, residual=residual)
    for k, v in model.params.items():
        if k.startswith("gamma"):
            v[...] = rng.uniform(0.5, 1.5, size=v.shape)
        elif k.startswith(("beta", "b")):
            v[...] = rng.normal(0, 0.5, size=v.shape)
        elif k.startswith("alpha"):
            v[...] = rng.uniform(0.05, 0.5)
    x = rng.normal(size=(8, 4)) * 2.0 + 1.0
    return model, x, rng.integers(0, 3, size=8)


def test_norm_layouts_layer_norm_replaces_the_bias_rmsnorm_keeps_it():
    layer = MLP([4, 5, 6, 3], "relu", norm="layer")
    assert list(layer.params) == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    rms = MLP([4, 5, 6, 3], "relu", norm="rms")
    assert list(rms.params) == ["W1", "b1", "gamma1", "W2", "b2", "gamma2", "W3", "b3"]
    assert layer.buffers == {} and rms.buffers == {}  # no running statistics
    assert (layer.norm_eps, rms.norm_eps) == (1e-5, 1e-6)
    names = {n: [type(m).__name__ for m in TorchMLP([4, 5, 3], "gelu", norm=n).net] for n in ("layer", "rms")}
    assert names == {
        "layer": ["Linear", "LayerNorm", "GELU", "Linear"],
        "rms": ["Linear", "RMSNorm", "GELU", "Linear"],
    }
    assert TorchMLP([4, 5, 3], norm="layer").linears[0].bias is None
    assert TorchMLP([4, 5, 3], norm="rms").linears[0].bias is not None
    assert TorchMLP([4, 5, 3], norm="rms", norm_eps=1e-3).norms[0].eps == 1e-3
    # norm="batch" is batchnorm=True, the same parameters and modules
    assert list(MLP([4, 5, 3], norm="batch").params) == list(MLP([4, 5, 3], batchnorm=True).params)
    assert MLP([4, 5, 3], norm="batch", batchnorm="after").batchnorm == "after"
    assert MLP([4, 5, 3], batchnorm=True).norm == "batch" and MLP([4, 5, 3]).norm is None
    assert [type(m).__name__ for m in TorchMLP([4, 5, 3], norm="batch").net][1] == "BatchNorm1d"


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(norm="layer", batchnorm=True), "disagree"),
        (dict(norm="rms", batchnorm="after"), "disagree"),
        (dict(norm="group"), "norm is None, 'batch', 'layer' or 'rms'"),
        (dict(norm="batch", norm_eps=1e-3), "bn_eps"),
        (dict(norm_eps=1e-3), "no norm is chosen"),
        (dict(norm="layer", norm_eps=-1.0), "norm_eps must be >= 0"),
    ],
)
def test_inconsistent_norm_options_are_refused(kw, match):
    for cls in (MLP, TorchMLP):
        with pytest.raises(ValueError, match=match):
            cls([4, 5, 3], **kw)


NORM_CASES = [
    ("tanh", "layer"),
    ("gelu", "layer"),
    ("silu", "layer"),
    ("sigmoid", "rms"),
    ("gelu", "rms"),
    ("elu", "rms"),
]


@pytest.mark.parametrize("activation, norm", NORM_CASES)
def test_norm_mlp_passes_gradient_check(activation, norm):
    model, x, y = norm_problem(activation, norm, depth=3)
    _, grads = model.loss_and_grads(x, y)
    assert set(grads) == set(model.params)
    for name, p in model.params.items():
        num = numerical_gradient(lambda _: model.loss(x, y), p, H)
        assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    "activation, norm", [("gelu", "layer"), ("prelu", "layer"), ("silu", "rms"), ("tanh", "rms")]
)
def test_norm_mlp_matches_torch_over_training_steps(activation, norm):
    model, x, y = norm_problem(activation, norm, seed=3)
    tm = TorchMLP(model.sizes, activation, dtype=torch.float64, norm=norm).load_numpy_params(model.params)
    rng = np.random.default_rng(4)
    opt = SGD(lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        xb, yb = rng.normal(size=(10, 4)) * 2.0 + 1.0, rng.integers(0, 3, size=10)
        loss, grads = model.loss_and_grads(xb, yb)
        topt.zero_grad()
        tloss = F.cross_entropy(tm(torch.tensor(xb)), torch.tensor(yb))
        tloss.backward()
        tgrads = tm.numpy_grads()
        assert_allclose(loss, tloss.item(), rtol=1e-12)
        assert set(tgrads) == set(grads)
        for k in grads:
            assert_allclose(grads[k], tgrads[k], rtol=1e-9, atol=1e-12, err_msg=k)
        opt.step(model.params, grads)
        topt.step()
    tm.eval()  # the same function in evaluation: no running statistics
    with torch.no_grad():
        assert_allclose(model.forward(x), tm(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_residual_norm_mlp_checks_and_matches_torch(norm):
    model, x, y = norm_problem("tanh", norm, depth=3, seed=5, residual=True)
    assert model.skips == [2, 3]
    loss, grads = model.loss_and_grads(x, y)
    for name, p in model.params.items():
        num = numerical_gradient(lambda _: model.loss(x, y), p, H)
        assert_allclose(grads[name], num, rtol=1e-5, atol=1e-9, err_msg=name)
    tm = TorchMLP(model.sizes, "tanh", dtype=torch.float64, norm=norm, residual=True)
    tm.load_numpy_params(model.params)
    tloss = F.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
    tloss.backward()
    assert_allclose(loss, tloss.item(), rtol=1e-12)
    for k, v in tm.numpy_grads().items():
        assert_allclose(grads[k], v, rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_a_rows_output_does_not_depend_on_its_batch(norm):
    """Unlike batch norm (test_only_a_training_step_moves_the_running_averages), in training too."""
    model, x, y = norm_problem("relu", norm)
    full = model.forward(x, train=True)
    assert_allclose(model.forward(x[:3], train=True), full[:3], rtol=1e-13)
    assert_allclose(model.forward(x[:1]), full[:1], rtol=1e-13)
    _, grads = model.loss_and_grads(x[:1], y[:1])  # a batch of one is fine (batch norm refuses it)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
