"""Weight initializers: seeded statistical tests of their scale, shape and reproducibility.

NumPy initializers return W of shape (fan_in, fan_out); the torch ones (``init_linear`` and the
in-place ``xavier_normal(layer)``, ``he_uniform(layer)``, ...) fill an ``nn.Linear`` weight of
shape (out, in) and must then match ``torch.nn.init``'s statistics (``xavier_normal_``,
``kaiming_normal_(nonlinearity="relu")``, ...). Tolerances are 6 standard errors of the estimate
(a seeded test: they fail only on a wrong scale). Three kinds of test:

* empirical mean, std, limits and shape of the distribution, for several shapes (fan_in < fan_out,
  fan_in > fan_out, a fan of 1), NumPy and torch;
* against ``torch.nn.init`` (the reference): the same statistics, and a two-sample
  Kolmogorov-Smirnov test of our draws against torch's;
* Hypothesis properties: for any shape, seed and gain, W is exactly the generator's standard draws
  times the scale of the rule (the formula, not a statistic), and the torch layer is the transpose;
* what the rules are for (book chapter 2): the variance of the activations through a deep linear,
  tanh or ReLU stack stays within a factor of 2 of the input's with the matching initializer, and
  collapses or explodes without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from threadpoolctl import threadpool_limits

from course_lib.numpy_impl import initializers as I
from course_lib.torch_impl import initializers as TI

SHAPES = [(300, 200), (784, 50), (50, 784), (1, 4000), (4000, 1)]  # non-square both ways, fans of 1

#: name -> (distribution, scale(fan_in, fan_out)): the std, or the uniform limit (DESIGN.md).
RULES = {
    "xavier_normal": ("normal", lambda i, o: math.sqrt(2 / (i + o))),
    "xavier_uniform": ("uniform", lambda i, o: math.sqrt(6 / (i + o))),
    "he_normal": ("normal", lambda i, o: math.sqrt(2 / i)),
    "he_uniform": ("uniform", lambda i, o: math.sqrt(6 / i)),
    "lecun_normal": ("normal", lambda i, o: math.sqrt(1 / i)),
}


def assert_distribution(W: np.ndarray, dist: str, scale: float) -> None:
    """W's mean is 0 and its std / range is that of N(0, scale^2) or U(-scale, scale)."""
    W = np.asarray(W, dtype=np.float64)
    n = W.size
    std = scale if dist == "normal" else scale / math.sqrt(3)
    # standard error of the sample std: std/sqrt(2n) (normal), 0.45 std/sqrt(n) (uniform)
    assert_allclose(W.std(), std, rtol=6 * 0.71 / math.sqrt(n))
    assert abs(W.mean()) < 6 * std / math.sqrt(n)
    if dist == "uniform":
        assert np.abs(W).max() <= scale
        assert np.abs(W).max() > scale * (1 - 20 / n)  # the limit is reached, not a smaller one
        # flat: each quarter of [-a, a] holds about a quarter of the values
        counts = np.histogram(W, bins=4, range=(-scale, scale))[0] / n
        assert_allclose(counts, 0.25, atol=6 * math.sqrt(0.25 * 0.75 / n))
    else:
        # normal, not uniform: about 4.55 % of the values lie beyond 2 std
        assert_allclose(np.mean(np.abs(W) > 2 * std), 0.0455, atol=6 * math.sqrt(0.0455 / n))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(RULES))
def test_numpy_initializer_scale(name, shape):
    dist, scale = RULES[name]
    W = getattr(I, name)(*shape, np.random.default_rng(0))
    assert W.shape == shape  # (fan_in, fan_out), for x @ W
    assert W.dtype == np.float64
    assert_distribution(W, dist, scale(*shape))
    assert_array_equal(I.get(name, *shape, np.random.default_rng(0)), W)


@pytest.mark.parametrize("name", sorted(RULES))
def test_gain_multiplies_the_scale(name):
    rng = np.random.default_rng(1)
    dist, scale = RULES[name]
    W = getattr(I, name)(400, 300, rng, gain=math.sqrt(2))
    assert_distribution(W, dist, math.sqrt(2) * scale(400, 300))


def test_xavier_is_symmetric_he_and_lecun_use_fan_in():
    rng = np.random.default_rng(2)
    a, b = I.xavier_normal(600, 100, rng).std(), I.xavier_normal(100, 600, rng).std()
    assert_allclose(a, b, rtol=0.05)
    assert_allclose(
        I.he_normal(600, 100, rng).std() / I.he_normal(100, 600, rng).std(), math.sqrt(100 / 600), rtol=0.05
    )
    assert_allclose(
        I.he_normal(500, 200, rng).std() / I.lecun_normal(500, 200, rng).std(), math.sqrt(2), rtol=0.05
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_other_initializers(shape):
    rng = np.random.default_rng(3)
    assert_array_equal(I.zeros(*shape), np.zeros(shape))
    assert_array_equal(I.get("zeros", *shape, rng), np.zeros(shape))
    assert_distribution(I.normal(*shape, 0.01, rng), "normal", 0.01)
    assert_distribution(I.get("normal:0.05", *shape, rng), "normal", 0.05)
    assert_distribution(I.uniform(*shape, 0.3, rng), "uniform", 0.3)
    assert_distribution(I.get("uniform:0.2", *shape, rng), "uniform", 0.2)
    for W in (I.normal(*shape, 1.0, rng), I.get("uniform:1", *shape, rng)):
        assert W.shape == shape and W.dtype == np.float64


def test_bad_arguments():
    with pytest.raises(ValueError, match="fan_in and fan_out must be positive"):
        I.he_normal(0, 3, np.random.default_rng(0))
    for name in RULES:
        with pytest.raises(ValueError, match="fan_in and fan_out must be positive"):
            getattr(I, name)(3, 0, np.random.default_rng(0))
        with pytest.raises(ValueError, match="fan_in and fan_out must be positive"):
            TI.get(name, 0, 3)
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot'; choose from"):
        I.get("glorot", 3, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown initializer 'glorot'"):
        TI.get("glorot", 3, 3)
    with pytest.raises(ValueError, match="std must be >= 0"):
        I.normal(3, 3, -0.01, np.random.default_rng(0))
    with pytest.raises(ValueError, match="limit must be >= 0"):
        I.uniform(3, 3, -0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="std must be >= 0"):
        TI.normal(torch.nn.Linear(3, 3), -0.01)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        TI.get("uniform:-1", 3, 3)
    with pytest.raises(ValueError, match="expected an nn.Linear or a 2-D"):
        TI.he_normal(torch.zeros(3, 4, 5))


def test_same_seed_same_weights():
    for name in RULES:
        a = getattr(I, name)(20, 30, np.random.default_rng(42))
        b = getattr(I, name)(20, 30, np.random.default_rng(42))
        c = getattr(I, name)(20, 30, np.random.default_rng(43))
        assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        ta = TI.get(name, 20, 30, torch.Generator().manual_seed(42))
        tb = TI.get(name, 20, 30, torch.Generator().manual_seed(42))
        assert torch.equal(ta, tb)


# --------------------------------------------------------------------- variance propagation

ACT = {"linear": lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}


def mean_square_per_layer(act, init, seed, depth=10, width=128, nets=64, n=64, pre=False):
    """E[h_l^2] / E[x^2] for l = 1..depth: ``nets`` independent stacks h_l = act(h_{l-1} W_l) of
    square layers, all fed the same kind of input x ~ U(-1, 1) (the range of a tanh layer's output).

    E[h^2] is the variance for zero-mean activations (linear, tanh) and, for ReLU, the second
    moment that He et al.'s derivation keeps constant. Averaging over independent networks removes
    most of the finite-width fluctuation (a standard deviation of about 0.36 in the log of the last
    layer's ratio for one ReLU network of width 128, about 0.06 for the average of 64; measured over
    40 seeds). ``pre=True`` measures the pre-activations z_l instead.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(nets, n, width))  # (K, N, H): K networks
    h, ratios = x, []
    with threadpool_limits(1):  # small matrices: BLAS threads would only contend
        for _ in range(depth):
            W = np.stack([init(width, width, rng) for _ in range(nets)])  # (K, H, H)
            z = h @ W
            h = ACT[act](z)
            ratios.append(np.mean((z if pre else h) ** 2) / np.mean(x**2))
    return np.array(ratios)


#: activation -> the initializer that keeps its signal's scale (book chapter 2).
MATCHING = {
    "linear": lambda i, o, rng: I.lecun_normal(i, o, rng),  # = Xavier for square layers
    "tanh": lambda i, o, rng: I.xavier_normal(i, o, rng, gain=5 / 3),  # torch.nn.init.calculate_gain("tanh")
    "relu": lambda i, o, rng: I.he_normal(i, o, rng),
}


@pytest.mark.parametrize("act", sorted(MATCHING))
def test_matching_initializer_keeps_the_activation_variance(act):
    ratios = mean_square_per_layer(act, MATCHING[act], seed=10)
    assert np.all((ratios > 0.5) & (ratios < 2.0)), f"{act}: E[h^2] / E[x^2] per layer {ratios.round(3)}"


def test_he_uniform_and_xavier_uniform_keep_it_too():
    """Only the variance matters: the uniform rules behave like the normal ones."""
    relu = mean_square_per_layer("relu", lambda i, o, rng: I.he_uniform(i, o, rng), seed=11)
    linear = mean_square_per_layer("linear", lambda i, o, rng: I.xavier_uniform(i, o, rng), seed=12)
    for ratios in (relu, linear):
        assert np.all((ratios > 0.5) & (ratios < 2.0)), ratios.round(3)


@pytest.mark.parametrize("act", sorted(ACT))
def test_small_random_weights_collapse_the_signal(act):
    """N(0, 0.01^2): each square layer of 128 multiplies the variance by about 128 * 1e-4."""
    ratios = mean_square_per_layer(act, lambda i, o, rng: I.normal(i, o, 0.01, rng), seed=13, nets=4)
    assert ratios[0] < 0.05 and ratios[-1] < 1e-15, ratios
    assert np.all(np.diff(np.log(ratios)) < np.log(0.05)), "it shrinks at every layer"


@pytest.mark.parametrize("act", sorted(ACT))
def test_unit_normal_weights_explode_the_signal(act):
    """N(0, 1): each layer multiplies the variance by about 128 (64 for ReLU); tanh saturates."""
    pre = mean_square_per_layer(act, lambda i, o, rng: I.normal(i, o, 1.0, rng), seed=14, nets=4, pre=True)
    assert np.all(pre > 20.0), pre
    if act == "tanh":  # bounded outputs: the pre-activations explode, the outputs pile up at +-1
        rng = np.random.default_rng(15)
        h = rng.uniform(-1, 1, size=(64, 128))
        for _ in range(3):
            h = np.tanh(h @ I.normal(128, 128, 1.0, rng))
        assert np.mean(np.abs(h) > 0.99) > 0.7, "most units of the third layer are saturated"
        post = mean_square_per_layer(act, lambda i, o, rng: I.normal(i, o, 1.0, rng), seed=14, nets=4)
        assert np.all(post > 2.5), "saturated tanh outputs have E[h^2] near 1, three times E[x^2] = 1/3"
    else:
        assert pre[-1] > 1e15 and np.all(np.diff(np.log(pre)) > np.log(20.0)), pre


def test_without_the_matching_gain_the_signal_decays():
    """Xavier without the factor 2 halves a ReLU signal per layer; without tanh's 5/3 the tanh
    signal decays too, more slowly (like 1/l, not exponentially: tanh'(0) = 1)."""
    relu = mean_square_per_layer("relu", lambda i, o, rng: I.xavier_normal(i, o, rng), seed=16, nets=16)
    assert_allclose(relu, 0.5 ** np.arange(1, 11), rtol=0.4)
    tanh = mean_square_per_layer("tanh", lambda i, o, rng: I.xavier_normal(i, o, rng), seed=17, nets=16)
    assert tanh[-1] < 0.25 and tanh[-1] > 0.05 and np.all(np.diff(tanh) < 0), tanh.round(3)


# ------------------------------------------------------------------------------- torch_impl


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(RULES))
def test_torch_get_scale(name, shape):
    dist, scale = RULES[name]
    W = TI.get(name, *shape, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert W.shape == shape and W.dtype == torch.float64
    assert_distribution(W.numpy(), dist, scale(*shape))
    assert TI.get(name, *shape).dtype == torch.float32


@pytest.mark.parametrize("fan_in, fan_out", [(400, 100), (100, 400)])
@pytest.mark.parametrize(
    "name, torch_init",
    [
        ("xavier_normal", lambda w: torch.nn.init.xavier_normal_(w)),
        ("xavier_uniform", lambda w: torch.nn.init.xavier_uniform_(w)),
        ("he_normal", lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu")),
        ("he_uniform", lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="relu")),
    ],
)
def test_init_linear_matches_torch_nn_init(name, torch_init, fan_in, fan_out):
    """init_linear fills the (out, in) weight with torch.nn.init's statistics, bias zero."""
    torch.manual_seed(0)  # torch.nn.init draws from the global generator
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    TI.init_linear(layer, name, torch.Generator().manual_seed(1))
    assert layer.weight.shape == (fan_out, fan_in)
    assert_array_equal(layer.bias.detach().numpy(), 0.0)
    ref = torch_init(torch.empty(fan_out, fan_in, dtype=torch.float64)).numpy()
    W = layer.weight.detach().numpy()
    n = W.size
    assert_allclose(W.std(), ref.std(), rtol=2 * 6 * 0.71 / math.sqrt(n))
    dist, scale = RULES[name]
    assert_distribution(W, dist, scale(fan_in, fan_out))
    assert_distribution(ref, dist, scale(fan_in, fan_out))  # our rule is torch's rule


def test_init_linear_is_the_transpose_of_get():
    layer = torch.nn.Linear(30, 20)
    TI.init_linear(layer, "he_normal", torch.Generator().manual_seed(5))
    W = TI.get("he_normal", 30, 20, torch.Generator().manual_seed(5))
    assert torch.equal(layer.weight.detach(), W.T)


def _kaiming(fill, nonlinearity):
    """torch.nn.init's Kaiming fill with fan-in mode, times an extra gain g."""
    return lambda w, g, gen: fill(w, nonlinearity=nonlinearity, generator=gen).mul_(g)


#: Our in-place torch initializer -> the torch.nn.init call with the same distribution (gain g).
TORCH_REFERENCE = {
    "xavier_normal": lambda w, g, gen: torch.nn.init.xavier_normal_(w, gain=g, generator=gen),
    "xavier_uniform": lambda w, g, gen: torch.nn.init.xavier_uniform_(w, gain=g, generator=gen),
    "he_normal": _kaiming(torch.nn.init.kaiming_normal_, "relu"),
    "he_uniform": _kaiming(torch.nn.init.kaiming_uniform_, "relu"),
    "lecun_normal": _kaiming(torch.nn.init.kaiming_normal_, "linear"),
}


@pytest.mark.parametrize("fan_in, fan_out", [(600, 150), (150, 600), (1, 5000)])
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
@pytest.mark.parametrize("name", sorted(TORCH_REFERENCE))
def test_torch_inplace_initializers_match_torch_nn_init(name, gain, fan_in, fan_out):
    """xavier_normal(layer), he_uniform(layer), ...: torch's (out, in) layout, fan_in = in_features,
    the statistics of torch.nn.init, and the same distribution (two-sample KS test)."""
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    out = getattr(TI, name)(layer, torch.Generator().manual_seed(2), gain=gain)
    assert out is layer and layer.weight.shape == (fan_out, fan_in)
    assert_array_equal(layer.bias.detach().numpy(), 0.0)
    W = layer.weight.detach().numpy()
    ref = TORCH_REFERENCE[name](
        torch.empty(fan_out, fan_in, dtype=torch.float64), gain, torch.Generator().manual_seed(3)
    ).numpy()
    dist, scale = RULES[name]
    assert_distribution(W, dist, gain * scale(fan_in, fan_out))
    assert_distribution(ref, dist, gain * scale(fan_in, fan_out))  # our rule is torch's rule
    assert stats.ks_2samp(W.ravel(), ref.ravel()).pvalue > 1e-4, "not the distribution torch.nn.init draws"


@pytest.mark.parametrize("name", sorted(TORCH_REFERENCE))
def test_ks_test_tells_the_layouts_apart(name):
    """Control: the KS test of the previous test rejects a rule that reads the fans the wrong way
    round, the bug that mixing (fan_in, fan_out) and (out, in) layouts produces."""
    fan_in, fan_out = 600, 150
    layer = torch.nn.Linear(fan_out, fan_in, dtype=torch.float64)  # the transposed layer
    W = getattr(TI, name)(layer, torch.Generator().manual_seed(2)).weight.detach().numpy().T
    ref = TORCH_REFERENCE[name](
        torch.empty(fan_out, fan_in, dtype=torch.float64), 1.0, torch.Generator().manual_seed(3)
    ).numpy()
    assert W.shape == ref.shape
    if name.startswith("xavier"):  # symmetric in the fans: the transpose has the same distribution
        assert stats.ks_2samp(W.ravel(), ref.ravel()).pvalue > 1e-4
    else:
        assert stats.ks_2samp(W.ravel(), ref.ravel()).pvalue < 1e-10


@pytest.mark.parametrize("name", sorted(TORCH_REFERENCE))
def test_torch_inplace_on_a_weight_tensor_and_float32(name):
    """On a bare (out, in) tensor, like torch.nn.init: filled in place, dtype and layout kept."""
    w = torch.empty(200, 500)  # float32, (out, in): fan_in = 500
    assert getattr(TI, name)(w, torch.Generator().manual_seed(4)) is w
    assert w.dtype == torch.float32
    dist, scale = RULES[name]
    assert_distribution(w.numpy(), dist, scale(500, 200))


@pytest.mark.parametrize("shape", SHAPES)
def test_torch_zeros_normal_uniform(shape):
    fan_in, fan_out = shape
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    assert torch.count_nonzero(TI.zeros(layer).weight) == 0 and torch.count_nonzero(layer.bias) == 0
    g = torch.Generator().manual_seed(5)
    assert_distribution(TI.normal(layer, 0.01, g).weight.detach().numpy(), "normal", 0.01)
    assert_distribution(TI.uniform(layer, 0.3, g).weight.detach().numpy(), "uniform", 0.3)
    assert_distribution(TI.get("uniform:0.3", *shape, g, torch.float64).numpy(), "uniform", 0.3)
    assert torch.count_nonzero(TI.get("zeros", *shape)) == 0


def test_torch_default_linear_init_is_the_old_heuristic():
    """nn.Linear's own default is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1/(3 fan_in): the
    'standard' heuristic Glorot and Bengio compare Xavier with (chapter 2 says so)."""
    torch.manual_seed(6)
    W = torch.nn.Linear(400, 300, dtype=torch.float64).weight.detach().numpy()
    assert_distribution(W, "uniform", 1 / math.sqrt(400))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_initializers_on_cuda():
    layer = torch.nn.Linear(300, 200, device="cuda")
    TI.he_normal(layer, torch.Generator(device="cuda").manual_seed(0))
    TI.xavier_uniform(layer)  # the weight's device, global CUDA generator
    assert layer.weight.device.type == "cuda"
    assert_distribution(layer.weight.detach().cpu().numpy(), "uniform", math.sqrt(6 / 500))
    assert TI.get("he_normal", 30, 20, torch.Generator(device="cuda")).device.type == "cuda"


# ------------------------------------------------------------------- exact formulas (Hypothesis)

FANS = st.integers(1, 60)
GAINS = st.floats(0.1, 3.0, allow_nan=False)
SEEDS = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(RULES)), fan_in=FANS, fan_out=FANS, gain=GAINS, seed=SEEDS)
def test_numpy_rule_is_the_scaled_standard_draw(name, fan_in, fan_out, gain, seed):
    """For any shape, seed and gain, W is the generator's N(0, 1) (or U(-1, 1)) draws times the
    scale of the rule: the formula itself, beyond what a statistical test can see."""
    dist, scale = RULES[name]
    rng = np.random.default_rng(seed)
    W = getattr(I, name)(fan_in, fan_out, rng, gain=gain)
    ref = np.random.default_rng(seed)
    a = gain * scale(fan_in, fan_out)
    expected = (
        ref.normal(0.0, a, (fan_in, fan_out)) if dist == "normal" else ref.uniform(-a, a, (fan_in, fan_out))
    )
    assert W.shape == (fan_in, fan_out)
    assert_allclose(W, expected, rtol=1e-12, atol=0)
    assert rng.bit_generator.state == ref.bit_generator.state, "draws exactly fan_in * fan_out numbers"
    assert_array_equal(I.get(name, fan_in, fan_out, np.random.default_rng(seed), gain=gain), W)
    if dist == "uniform":
        assert np.all(np.abs(W) <= a)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(RULES)), fan_in=FANS, fan_out=FANS, gain=GAINS, seed=st.integers(0, 2**62))
def test_torch_rule_is_the_scaled_standard_draw_and_layer_is_its_transpose(name, fan_in, fan_out, gain, seed):
    dist, scale = RULES[name]
    a = gain * scale(fan_in, fan_out)
    W = TI.get(name, fan_in, fan_out, torch.Generator().manual_seed(seed), torch.float64, gain=gain)
    g = torch.Generator().manual_seed(seed)
    std = (
        torch.randn((fan_in, fan_out), generator=g, dtype=torch.float64)
        if dist == "normal"
        else (torch.rand((fan_in, fan_out), generator=g, dtype=torch.float64) * 2 - 1)
    )
    assert_allclose(W.numpy(), a * std.numpy(), rtol=1e-12, atol=0)
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    getattr(TI, name)(layer, torch.Generator().manual_seed(seed), gain=gain)
    assert torch.equal(layer.weight.detach(), W.T)
    assert torch.count_nonzero(layer.bias) == 0
