"""Losses and layers in NumPy: against torch (float64), central differences, and their errors.

``cross_entropy``/``softmax_cross_entropy_grad`` against ``F.cross_entropy`` and autograd;
``mse``/``mse_grad`` against ``F.mse_loss``; ``dense_*`` and ``activation_*`` against
``course_lib.gradcheck`` central differences and autograd; shape errors are ValueErrors whose
message says what to do.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from course_lib.numpy_impl import activations as A
from course_lib.numpy_impl import layers, losses
from course_lib.torch_impl import layers as TL
from course_lib.torch_impl import losses as TLoss

SETTINGS = settings(max_examples=40, deadline=None)


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


@st.composite
def logits_and_labels(draw, big: bool = True):
    """(N, C) float64 logits, with |z| up to 1000 when ``big``, and (N,) labels in [0, C)."""
    N, C = draw(st.integers(1, 6)), draw(st.integers(2, 6))
    lim = 1000.0 if big else 20.0
    elems = st.one_of(st.sampled_from([0.0, lim, -lim]), st.floats(-lim, lim))
    z = draw(hnp.arrays(np.float64, (N, C), elements=elems))
    y = draw(hnp.arrays(np.int64, (N,), elements=st.integers(0, C - 1)))
    return z, y


# ------------------------------------------------------------------------------- cross-entropy


@SETTINGS
@given(zy=logits_and_labels())
def test_cross_entropy_matches_torch(zy):
    z, y = zy
    expected = F.cross_entropy(t64(z), torch.tensor(y)).item()
    got = losses.cross_entropy(z, y)
    assert isinstance(got, float)
    assert np.isfinite(got)
    assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert_allclose(TLoss.cross_entropy(t64(z), torch.tensor(y)).item(), expected, rtol=1e-12)


@SETTINGS
@given(zy=logits_and_labels())
def test_softmax_cross_entropy_grad_matches_autograd(zy):
    z, y = zy
    zt = t64(z).requires_grad_(True)
    F.cross_entropy(zt, torch.tensor(y)).backward()
    g = losses.softmax_cross_entropy_grad(z, y)
    assert g.shape == z.shape
    assert_allclose(g, zt.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert_allclose(
        TLoss.softmax_cross_entropy_grad(t64(z), torch.tensor(y)).numpy(),
        zt.grad.numpy(),
        rtol=1e-10,
        atol=1e-14,
    )
    # each row of (p - onehot) / N sums to 0
    assert_allclose(g.sum(axis=1), 0.0, atol=1e-14)


@SETTINGS
@given(zy=logits_and_labels(big=False))
def test_softmax_cross_entropy_grad_by_central_differences(zy):
    z, y = zy
    z = z.copy()
    num = numerical_gradient(lambda zz: losses.cross_entropy(zz, y), z)
    assert_allclose(losses.softmax_cross_entropy_grad(z, y), num, rtol=1e-6, atol=1e-9)


def test_cross_entropy_of_uniform_logits_is_log_c():
    for C in (2, 10):
        assert_allclose(
            losses.cross_entropy(np.zeros((3, C)), np.array([0, 1, C - 1])), np.log(C), rtol=1e-14
        )


def test_cross_entropy_input_not_modified():
    z = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
    y = np.array([2, 0])
    z0, y0 = z.copy(), y.copy()
    losses.cross_entropy(z, y)
    losses.softmax_cross_entropy_grad(z, y)
    assert_array_equal(z, z0)
    assert_array_equal(y, y0)


# ------------------------------------------------------------------------------------------ mse


@SETTINGS
@given(data=st.data())
def test_mse_and_grad_match_torch(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    pred = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-100, 100)))
    target = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-100, 100)))
    pt = t64(pred).requires_grad_(True)
    loss = F.mse_loss(pt, t64(target))
    loss.backward()
    assert_allclose(losses.mse(pred, target), loss.item(), rtol=1e-12, atol=1e-12)
    assert_allclose(TLoss.mse(t64(pred), t64(target)).item(), loss.item(), rtol=1e-12, atol=1e-12)
    assert_allclose(losses.mse_grad(pred, target), pt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_mse_grad_by_central_differences():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    num = numerical_gradient(lambda p: losses.mse(p, target), pred)
    assert_allclose(losses.mse_grad(pred, target), num, rtol=1e-7, atol=1e-10)


# ------------------------------------------------------------------------------- shape errors


@pytest.mark.parametrize(
    "z, y, match",
    [
        (np.zeros(3), np.array([0]), r"logits must be \(N, C\)"),
        (np.zeros((1, 2, 3)), np.array([0]), r"logits must be \(N, C\)"),
        (np.zeros((4, 3)), np.eye(3)[[0, 1, 2, 0]].astype(int), r"not one-hot"),
        (np.zeros((4, 3)), np.array([0, 1]), r"shape \(4,\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), r"integer class ids"),
        (np.zeros((2, 3)), np.array([0, 3]), r"\[0, 3\)"),
        (np.zeros((2, 3)), np.array([-1, 0]), r"\[0, 3\)"),
    ],
)
def test_cross_entropy_bad_inputs_raise_helpful_valueerror(z, y, match):
    with pytest.raises(ValueError, match=match):
        losses.cross_entropy(z, y)
    with pytest.raises(ValueError, match=match):
        losses.softmax_cross_entropy_grad(z, y)


@pytest.mark.parametrize("fn", [losses.mse, losses.mse_grad])
def test_mse_shape_mismatch_raises(fn):
    """(N, 1) against (N,) would broadcast to (N, N): refuse it."""
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\).*same shape"):
        fn(np.zeros((3, 1)), np.zeros(3))


def test_dense_forward_shape_errors():
    with pytest.raises(ValueError, match=r"x \(2, 3\) @ W \(4, 5\)"):
        layers.dense_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"needs x \(N, D\)"):
        layers.dense_forward(np.zeros(3), np.zeros((3, 5)), np.zeros(5))


def test_unknown_activation_name():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*relu"):
        layers.activation_forward(np.zeros((2, 2)), "swish")


# ---------------------------------------------------------------------------------- dense layer


@st.composite
def dense_problem(draw):
    N, D, H = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    el = st.floats(-10, 10)
    x = draw(hnp.arrays(np.float64, (N, D), elements=el))
    W = draw(hnp.arrays(np.float64, (D, H), elements=el))
    b = draw(hnp.arrays(np.float64, (H,), elements=el))
    dout = draw(hnp.arrays(np.float64, (N, H), elements=el))
    return x, W, b, dout


@SETTINGS
@given(p=dense_problem())
def test_dense_backward_matches_central_differences(p):
    x, W, b, dout = (a.copy() for a in p)
    out, cache = layers.dense_forward(x, W, b)
    assert out.shape == (x.shape[0], W.shape[1])
    dx, dW, db = layers.dense_backward(dout, cache)
    assert (dx.shape, dW.shape, db.shape) == (x.shape, W.shape, b.shape)
    # sum(out * dout) is linear in each argument: central differences are exact but for rounding
    tol = dict(rtol=1e-6, atol=1e-6)
    assert_allclose(dx, numerical_gradient_array(lambda v: layers.dense_forward(v, W, b)[0], x, dout), **tol)
    assert_allclose(dW, numerical_gradient_array(lambda v: layers.dense_forward(x, v, b)[0], W, dout), **tol)
    assert_allclose(db, numerical_gradient_array(lambda v: layers.dense_forward(x, W, v)[0], b, dout), **tol)


@SETTINGS
@given(p=dense_problem())
def test_dense_matches_autograd_and_torch_impl(p):
    x, W, b, dout = p
    xt, Wt, bt = (t64(a).requires_grad_(True) for a in (x, W, b))
    out_t = xt @ Wt + bt
    (out_t * t64(dout)).sum().backward()
    out, cache = layers.dense_forward(x, W, b)
    assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    for got, ref in zip(layers.dense_backward(dout, cache), (xt.grad, Wt.grad, bt.grad), strict=True):
        assert_allclose(got, ref.numpy(), rtol=1e-12, atol=1e-12)
    # torch_impl.layers: the same functions on tensors
    out2, cache2 = TL.dense_forward(t64(x), t64(W), t64(b))
    assert_allclose(out2.numpy(), out, rtol=1e-12, atol=1e-12)
    for got, ref in zip(TL.dense_backward(t64(dout), cache2), (xt.grad, Wt.grad, bt.grad), strict=True):
        assert_allclose(got.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- activation layer

ACT_NAMES = sorted(A.ACTIVATIONS)


def away_from_kinks(rng: np.random.Generator, shape, h: float = 1e-5) -> np.ndarray:
    """Standard normal values with none within 1e-3 of 0, so x +- h never crosses a kink."""
    x = rng.normal(size=shape)
    x[np.abs(x) < 1e-3] += 1e-2
    assert np.all(np.abs(x) > 100 * h)
    return x


@pytest.mark.parametrize("name", ACT_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_activation_backward_by_gradient_check(name, seed):
    rng = np.random.default_rng(seed)
    x, dout = away_from_kinks(rng, (4, 5)), rng.normal(size=(4, 5))
    alpha = np.array(0.25) if name == "prelu" else None
    out, cache = layers.activation_forward(x, name, alpha)
    dx, dalpha = layers.activation_backward(dout, cache)
    num = numerical_gradient_array(lambda v: layers.activation_forward(v, name, alpha)[0], x, dout)
    assert rel_error(dx, num) < 1e-7
    assert_allclose(dx, num, rtol=1e-6, atol=1e-9)
    if name == "prelu":
        num_a = numerical_gradient(lambda a: np.sum(layers.activation_forward(x, name, a)[0] * dout), alpha)
        assert np.shape(dalpha) == ()
        assert_allclose(dalpha, num_a, rtol=1e-6, atol=1e-9)
    else:
        assert dalpha is None


def test_prelu_backward_per_unit_alpha_by_gradient_check():
    rng = np.random.default_rng(3)
    x, dout = away_from_kinks(rng, (6, 4)), rng.normal(size=(6, 4))
    alpha = np.array([0.1, 0.25, -0.2, 1.5])
    _, cache = layers.activation_forward(x, "prelu", alpha)
    dx, dalpha = layers.activation_backward(dout, cache)
    assert dalpha.shape == (4,)
    num_a = numerical_gradient(lambda a: np.sum(layers.activation_forward(x, "prelu", a)[0] * dout), alpha)
    num_x = numerical_gradient_array(lambda v: layers.activation_forward(v, "prelu", alpha)[0], x, dout)
    assert_allclose(dalpha, num_a, rtol=1e-6, atol=1e-9)
    assert_allclose(dx, num_x, rtol=1e-6, atol=1e-9)


TORCH_ACT = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    "elu": F.elu,
    "gelu": lambda t: F.gelu(t, approximate="none"),
    "silu": F.silu,
}


@pytest.mark.parametrize("name", ACT_NAMES)
@SETTINGS
@given(
    x=hnp.arrays(np.float64, (3, 4), elements=st.one_of(st.just(0.0), st.floats(-50, 50))),
    dout=hnp.arrays(np.float64, (3, 4), elements=st.floats(-5, 5)),
)
def test_activation_layer_matches_autograd_and_f_grad(name, x, dout):
    """Forward = f(x); backward = dout * f'(x), exactly the library's own f_grad, and autograd's."""
    alpha = np.array(0.25) if name == "prelu" else None
    out, cache = layers.activation_forward(x, name, alpha)
    dx, _ = layers.activation_backward(dout, cache)
    f, f_grad = A.ACTIVATIONS[name]
    args = (alpha,) if name == "prelu" else ()
    assert_array_equal(out, f(x, *args))
    assert_allclose(dx, dout * f_grad(x, *args), rtol=1e-12, atol=1e-15)
    xt = t64(x).requires_grad_(True)
    ref = (lambda t: F.prelu(t, t64([0.25]))) if name == "prelu" else TORCH_ACT[name]
    (ref(xt) * t64(dout)).sum().backward()
    assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
