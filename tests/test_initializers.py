"""Weight initializers: seeded statistical tests of their scale, shape and reproducibility.

NumPy initializers return W of shape (fan_in, fan_out); ``torch_impl.initializers.init_linear``
fills an ``nn.Linear`` weight of shape (out, in) and must then match ``torch.nn.init``'s
statistics (``xavier_normal_``, ``kaiming_normal_(nonlinearity="relu")``). Tolerances are
6 standard errors of the estimate (a seeded test: they fail only on a wrong scale).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.numpy_impl import initializers as I
from course_lib.torch_impl import initializers as TI

SHAPES = [(300, 200), (784, 50), (50, 784)]  # non-square both ways: fan_in and fan_out differ

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


def test_other_initializers():
    rng = np.random.default_rng(3)
    assert_array_equal(I.zeros(3, 4), np.zeros((3, 4)))
    assert_distribution(I.normal(300, 200, 0.01, rng), "normal", 0.01)
    assert_distribution(I.get("normal:0.05", 300, 200, rng), "normal", 0.05)
    assert_distribution(I.uniform(300, 200, 0.3, rng), "uniform", 0.3)
    assert I.get("zeros", 2, 5, rng).shape == (2, 5)


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


def test_he_keeps_relu_signal_variance():
    """Why He init: through 10 ReLU layers the mean square activation stays put with He,
    and collapses with LeCun's 1/n (it halves per layer)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 400))

    def last_mean_square(init):
        h = x
        for _ in range(10):
            h = np.maximum(h @ init(h.shape[1], 400, rng), 0)
        return np.mean(h**2)

    ms_in = np.mean(x**2)
    assert 0.5 < last_mean_square(I.he_normal) / ms_in < 2.0
    assert last_mean_square(I.lecun_normal) / ms_in < 0.5**10 * 3


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
