"""Activations and their derivatives: NumPy and torch_impl against PyTorch autograd (float64).

Three kinds of test (DESIGN.md, "Style"): every ``f_grad`` against ``torch.autograd`` on
Hypothesis-generated arrays that include 0 exactly (the kinks) and |x| = 1000; every forward
against ``torch.nn.functional``; properties (ranges, bounds on derivatives, softmax rows, the
input never modified); and numerical stability at |x| = 1000 and 1e4. GELU's erfc, written out
because NumPy has none, is checked against ``math.erfc`` and against mpmath at 40 digits, and GELU
against mpmath too (where torch's 1 + erf(x / sqrt 2) cancels, for x << 0, ours does not).
"""

from __future__ import annotations

import math
import warnings

import hypothesis.extra.numpy as hnp
import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from course_lib.numpy_impl import activations as A
from course_lib.torch_impl import activations as TA

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a test must always be able to meet: the kink at 0 (both signs), tiny, and huge.
SPECIAL = [0.0, -0.0, 1e-12, -1e-12, 1.0, -1.0, 30.0, -30.0, 1000.0, -1000.0]
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def _elements(width: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(SPECIAL),
        st.floats(-1000, 1000, allow_nan=False, allow_infinity=False, width=width),
    )


ARR64 = hnp.arrays(np.float64, SHAPES, elements=_elements(64))
ARR32 = hnp.arrays(np.float32, SHAPES, elements=_elements(32))
MATRIX64 = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5), elements=_elements(64)
)

# name -> (numpy f, numpy f', torch reference forward), each taking (x, **kwargs).
ELEMENTWISE = {
    "sigmoid": (A.sigmoid, A.sigmoid_grad, lambda t: torch.sigmoid(t)),
    "tanh": (A.tanh, A.tanh_grad, lambda t: torch.tanh(t)),
    "relu": (A.relu, A.relu_grad, lambda t: F.relu(t)),
    "gelu": (A.gelu, A.gelu_grad, lambda t: F.gelu(t, approximate="none")),
    "silu": (A.silu, A.silu_grad, lambda t: F.silu(t)),
}
LEAKY_ALPHAS = [0.0, 0.01, 0.1, 0.3]
ELU_ALPHAS = [0.1, 0.5, 1.0, 2.0]

# float64: only the last bits may differ (torch and NumPy round differently);
# atol covers 1 - s when s rounds to 1 within an ulp.
TOL64 = dict(rtol=1e-10, atol=1e-15)
# float32 inputs: the NumPy result is float32, the reference float64.
TOL32 = dict(rtol=2e-6, atol=1e-6)


def autograd_elementwise(f, x: np.ndarray, **kw) -> np.ndarray:
    """f'(x) elementwise by autograd: the gradient of sum f(x) in float64."""
    t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    f(t, **kw).sum().backward()
    return t.grad.numpy()


def torch64(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(x, dtype=np.float64))


# --------------------------------------------------------------------------- f_grad vs autograd


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@SETTINGS
@given(x=ARR64)
def test_grad_matches_autograd_float64(name, x):
    _, f_grad, ref = ELEMENTWISE[name]
    assert_allclose(f_grad(x), autograd_elementwise(ref, x), **TOL64)


@pytest.mark.parametrize("alpha", LEAKY_ALPHAS)
@SETTINGS
@given(x=ARR64)
def test_leaky_relu_grad_matches_autograd(alpha, x):
    expected = autograd_elementwise(lambda t: F.leaky_relu(t, negative_slope=alpha), x)
    assert_allclose(A.leaky_relu_grad(x, alpha), expected, **TOL64)


@pytest.mark.parametrize("alpha", ELU_ALPHAS)
@SETTINGS
@given(x=ARR64)
def test_elu_grad_matches_autograd(alpha, x):
    expected = autograd_elementwise(lambda t: F.elu(t, alpha=alpha), x)
    assert_allclose(A.elu_grad(x, alpha), expected, **TOL64)


@SETTINGS
@given(x=MATRIX64, alpha=st.floats(-0.5, 1.5, allow_nan=False))
def test_prelu_grads_scalar_alpha_match_autograd(x, alpha):
    """One slope shared by every position: its gradient sums over all of them."""
    xt = torch64(x).requires_grad_(True)
    w = torch.tensor([alpha], dtype=torch.float64, requires_grad=True)
    dout = np.random.default_rng(0).normal(size=x.shape)
    (F.prelu(xt, w) * torch64(dout)).sum().backward()
    assert_allclose(A.prelu_grad(x, alpha) * dout, xt.grad.numpy(), **TOL64)
    ga = A.prelu_grad_alpha(x, alpha, dout)
    assert np.shape(ga) == ()
    assert_allclose(ga, w.grad.numpy().reshape(()), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(x=MATRIX64, data=st.data())
def test_prelu_grads_per_unit_alpha_match_autograd(x, data):
    """alpha of shape (D,) for an (N, D) input, like torch.nn.PReLU(num_parameters=D)."""
    D = x.shape[1]
    alpha = data.draw(hnp.arrays(np.float64, (D,), elements=st.floats(-0.5, 1.5)), label="alpha")
    xt = torch64(x).requires_grad_(True)
    w = torch64(alpha).requires_grad_(True)
    dout = np.random.default_rng(1).normal(size=x.shape)
    (F.prelu(xt, w) * torch64(dout)).sum().backward()
    assert_allclose(A.prelu_grad(x, alpha) * dout, xt.grad.numpy(), **TOL64)
    ga = A.prelu_grad_alpha(x, alpha, dout)
    assert ga.shape == (D,)
    assert_allclose(ga, w.grad.numpy(), rtol=1e-10, atol=1e-10)
    # dout omitted = ones: d sum(prelu(x)) / d alpha
    w.grad = None
    F.prelu(torch64(x), w).sum().backward()
    assert_allclose(A.prelu_grad_alpha(x, alpha), w.grad.numpy(), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(x=ARR64, alpha=st.floats(-0.5, 1.5, allow_nan=False))
def test_prelu_grad_wrt_x_any_shape(x, alpha):
    expected = autograd_elementwise(lambda t: F.prelu(t.reshape(-1), torch.tensor([alpha], dtype=t.dtype)), x)
    assert_allclose(A.prelu_grad(x, alpha), expected, **TOL64)


@SETTINGS
@given(x=MATRIX64)
def test_softmax_grad_is_the_jacobian(x):
    """softmax_grad(x)[n] = d softmax(x_n) / d x_n, a (C, C) block per row."""
    J = torch.autograd.functional.jacobian(lambda t: F.softmax(t, dim=-1), torch64(x)).numpy()
    N = x.shape[0]
    blocks = np.stack([J[n, :, n, :] for n in range(N)])  # (N, C, C)
    assert A.softmax_grad(x).shape == blocks.shape
    assert_allclose(A.softmax_grad(x), blocks, rtol=1e-10, atol=1e-14)
    # rows are independent: every cross-row block of the full Jacobian is zero
    for n in range(N):
        for m in range(N):
            if m != n:
                assert_array_equal(J[n, :, m, :], 0.0)


@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 6), elements=_elements(64)))
def test_softmax_grad_one_vector(x):
    J = torch.autograd.functional.jacobian(lambda t: F.softmax(t, dim=-1), torch64(x)).numpy()
    assert_allclose(A.softmax_grad(x), J, rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- float32 inputs


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@SETTINGS
@given(x=ARR32)
def test_float32_in_float32_out(name, x):
    f, f_grad, ref = ELEMENTWISE[name]
    assert f(x).dtype == np.float32 and f_grad(x).dtype == np.float32
    assert_allclose(f(x), ref(torch64(x)).numpy(), **TOL32)
    assert_allclose(f_grad(x), autograd_elementwise(ref, x), **TOL32)


@SETTINGS
@given(x=ARR32)
def test_float32_parametrised(x):
    for alpha in (0.01, 0.3):
        out, g = A.leaky_relu(x, alpha), A.leaky_relu_grad(x, alpha)
        assert out.dtype == g.dtype == np.float32
        assert_allclose(out, F.leaky_relu(torch64(x), alpha).numpy(), **TOL32)
        assert_allclose(g, autograd_elementwise(lambda t, a=alpha: F.leaky_relu(t, a), x), **TOL32)
    for alpha in (0.5, 1.0, 2.0):
        out, g = A.elu(x, alpha), A.elu_grad(x, alpha)
        assert out.dtype == g.dtype == np.float32
        assert_allclose(out, F.elu(torch64(x), alpha).numpy(), **TOL32)
        assert_allclose(g, autograd_elementwise(lambda t, a=alpha: F.elu(t, alpha=a), x), **TOL32)
    out, g = A.prelu(x, 0.25), A.prelu_grad(x, 0.25)
    assert out.dtype == g.dtype == np.float32
    sm = A.softmax(x)
    assert sm.dtype == np.float32
    assert_allclose(sm, F.softmax(torch64(x), dim=-1).numpy(), **TOL32)


def test_integer_input_becomes_float64():
    x = np.array([-2, 0, 3])
    for f in (A.sigmoid, A.tanh, A.relu, A.elu, A.sigmoid_grad, A.relu_grad, A.elu_grad):
        assert f(x).dtype == np.float64, f.__name__


# ---------------------------------------------------------------------------- forward vs torch


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@SETTINGS
@given(x=ARR64)
def test_forward_matches_torch(name, x):
    f, _, ref = ELEMENTWISE[name]
    assert_allclose(f(x), ref(torch64(x)).numpy(), **TOL64)


@SETTINGS
@given(x=MATRIX64, data=st.data())
def test_parametrised_forwards_match_torch(x, data):
    alpha = data.draw(st.sampled_from(LEAKY_ALPHAS))
    assert_allclose(A.leaky_relu(x, alpha), F.leaky_relu(torch64(x), alpha).numpy(), **TOL64)
    alpha = data.draw(st.sampled_from(ELU_ALPHAS))
    assert_allclose(A.elu(x, alpha), F.elu(torch64(x), alpha=alpha).numpy(), **TOL64)
    a = data.draw(hnp.arrays(np.float64, (x.shape[1],), elements=st.floats(-0.5, 1.5)))
    assert_allclose(A.prelu(x, a), F.prelu(torch64(x), torch64(a)).numpy(), **TOL64)
    assert_allclose(A.prelu(x, 0.25), F.prelu(torch64(x), torch64([0.25])).numpy(), **TOL64)
    assert_allclose(A.softmax(x), F.softmax(torch64(x), dim=-1).numpy(), rtol=1e-10, atol=1e-15)
    assert_allclose(A.softmax(x, axis=0), F.softmax(torch64(x), dim=0).numpy(), rtol=1e-10, atol=1e-15)


def test_derivatives_at_the_kinks_follow_autograd():
    """The documented convention: relu'(0) = 0, leaky'(0) = prelu'(0) = elu'(0) = alpha."""
    z = np.array([0.0, -0.0])
    assert_array_equal(A.relu_grad(z), [0.0, 0.0])
    assert_array_equal(A.leaky_relu_grad(z, 0.2), [0.2, 0.2])
    assert_array_equal(A.prelu_grad(z, 0.3), [0.3, 0.3])
    assert_array_equal(A.elu_grad(z, 1.7), [1.7, 1.7])
    assert_array_equal(A.sigmoid_grad(z), [0.25, 0.25])
    assert_array_equal(A.tanh_grad(z), [1.0, 1.0])


# ---------------------------------------------------------------------- torch_impl vs autograd


TORCH_GRADS = {
    "sigmoid": (TA.sigmoid_grad, torch.sigmoid, {}),
    "tanh": (TA.tanh_grad, torch.tanh, {}),
    "relu": (TA.relu_grad, F.relu, {}),
    "leaky_relu": (TA.leaky_relu_grad, lambda t, alpha: F.leaky_relu(t, alpha), {"alpha": 0.1}),
    "elu": (TA.elu_grad, lambda t, alpha: F.elu(t, alpha=alpha), {"alpha": 0.7}),
    "gelu": (TA.gelu_grad, lambda t: F.gelu(t, approximate="none"), {}),
    "silu": (TA.silu_grad, F.silu, {}),
}


@pytest.mark.parametrize("name", sorted(TORCH_GRADS))
@SETTINGS
@given(x=ARR64)
def test_torch_impl_grads_match_autograd(name, x):
    f_grad, ref, kw = TORCH_GRADS[name]
    got = f_grad(torch64(x), **kw)
    assert got.dtype == torch.float64
    assert_allclose(got.numpy(), autograd_elementwise(ref, x, **kw), **TOL64)
    # and the torch_impl forwards are torch's own
    f = getattr(TA, name)
    assert_allclose(f(torch64(x), **kw).numpy(), ref(torch64(x), **kw).numpy(), **TOL64)


@SETTINGS
@given(x=MATRIX64, data=st.data())
def test_torch_impl_prelu_grads_match_autograd(x, data):
    D = x.shape[1]
    dout = torch64(np.random.default_rng(2).normal(size=x.shape))
    for alpha in (
        torch64([0.25]).reshape(()),
        torch64(data.draw(hnp.arrays(np.float64, (D,), elements=st.floats(-0.5, 1.5)))),
    ):
        xt = torch64(x).requires_grad_(True)
        w = alpha.clone().requires_grad_(True)
        (F.prelu(xt, w.reshape(-1)) * dout).sum().backward()
        assert_allclose((TA.prelu_grad(torch64(x), alpha) * dout).numpy(), xt.grad.numpy(), **TOL64)
        ga = TA.prelu_grad_alpha(torch64(x), alpha, dout)
        assert ga.shape == alpha.shape
        assert_allclose(ga.numpy(), w.grad.numpy(), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(x=MATRIX64)
def test_torch_impl_softmax_grad_is_the_jacobian(x):
    J = torch.autograd.functional.jacobian(lambda t: F.softmax(t, dim=-1), torch64(x)).numpy()
    blocks = np.stack([J[n, :, n, :] for n in range(x.shape[0])])
    assert_allclose(TA.softmax_grad(torch64(x)).numpy(), blocks, rtol=1e-10, atol=1e-14)


@SETTINGS
@given(x=ARR64)
def test_numpy_and_torch_impl_agree(x):
    for name in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"):
        assert_allclose(
            getattr(A, name + "_grad")(x), getattr(TA, name + "_grad")(torch64(x)).numpy(), **TOL64
        )


# ------------------------------------------------------------------------ numerical stability


@pytest.mark.parametrize("big", [1000.0, 1e4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_overflow_and_finite_at_large_inputs(big, dtype):
    """No overflow, no 0/0, no warning, finite values for |x| = 1000 and 1e4.

    Underflow is allowed: exp(-1000) rounding to 0 is the correctly rounded answer (NumPy
    ignores underflow by default); what must never happen is exp(+1000) = inf, or inf/inf.
    """
    x = np.array([[-big, 0.0, big], [big, big, -big], [-big, -big, -big]], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        results = {
            "sigmoid": A.sigmoid(x),
            "sigmoid_grad": A.sigmoid_grad(x),
            "softmax": A.softmax(x),
            "softmax_grad": A.softmax_grad(x),
            "elu": A.elu(x),
            "elu_grad": A.elu_grad(x),
            "elu_a2": A.elu(x, 2.0),
            "tanh": A.tanh(x),
            "tanh_grad": A.tanh_grad(x),
            "gelu": A.gelu(x),
            "gelu_grad": A.gelu_grad(x),
            "silu": A.silu(x),
            "silu_grad": A.silu_grad(x),
        }
    for name, r in results.items():
        assert np.all(np.isfinite(r)), name
        assert r.dtype == dtype, name
    assert_array_equal(results["sigmoid"][0], [0.0, 0.5, 1.0])
    assert_allclose(results["softmax"], [[0, 0, 1], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert_allclose(results["elu"][0], [-1.0, 0.0, big])
    for name in ("gelu", "silu"):  # ~ relu far from 0, and their derivatives ~ relu's
        assert_array_equal(results[name][0], [0.0, 0.0, big])
        assert_array_equal(results[name + "_grad"][0], [0.0, 0.5, 1.0])
    # and they agree with torch there
    t = torch64(x)
    assert_allclose(results["sigmoid"], torch.sigmoid(t).numpy(), rtol=1e-6, atol=0)
    assert_allclose(results["softmax"], torch.softmax(t, -1).numpy(), rtol=1e-6, atol=1e-30)


# ----------------------------------------------------------------------------------- properties


FULL_RANGE64 = hnp.arrays(np.float64, SHAPES, elements=st.floats(allow_nan=False, allow_infinity=False))
FULL_RANGE32 = hnp.arrays(
    np.float32, SHAPES, elements=st.floats(allow_nan=False, allow_infinity=False, width=32)
)


@SETTINGS
@given(x=st.one_of(FULL_RANGE64, FULL_RANGE32, ARR64))
def test_sigmoid_range_and_derivative_bound(x):
    s, ds = A.sigmoid(x), A.sigmoid_grad(x)
    assert np.all((s >= 0) & (s <= 1))
    assert np.all((ds >= 0) & (ds <= 0.25)), ds.max()


@SETTINGS
@given(x=st.one_of(FULL_RANGE64, FULL_RANGE32, ARR64))
def test_tanh_range_and_derivative_bound(x):
    t, dt = A.tanh(x), A.tanh_grad(x)
    assert np.all((t >= -1) & (t <= 1))
    assert np.all((dt >= 0) & (dt <= 1))


@SETTINGS
@given(x=MATRIX64, c=st.floats(-1000, 1000))
def test_softmax_rows_sum_to_one_and_shift_invariance(x, c):
    s = A.softmax(x)
    assert np.all(s >= 0)
    assert_allclose(s.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(A.softmax(x + c), s, rtol=1e-9, atol=1e-12)
    assert_allclose(A.softmax(x, axis=0).sum(axis=0), 1.0, rtol=0, atol=1e-12)
    # Jacobian rows sum to 0: the outputs always sum to 1
    assert_allclose(A.softmax_grad(x).sum(axis=-2), 0.0, atol=1e-12)


@SETTINGS
@given(x=ARR64)
def test_relu_family_properties(x):
    assert_array_equal(A.relu(x), np.maximum(x, 0.0))
    assert set(np.unique(A.relu_grad(x))) <= {0.0, 1.0}
    assert_array_equal(A.leaky_relu(x, 0.0), A.relu(x))
    assert_array_equal(A.prelu(x, 0.1), A.leaky_relu(x, 0.1))
    assert_array_equal(A.prelu_grad(x, 0.1), A.leaky_relu_grad(x, 0.1))
    assert np.all(A.elu(x) >= -1.0) and np.all(A.elu(x, 2.0) >= -2.0)


CALLS = {
    "sigmoid": lambda x: A.sigmoid(x),
    "sigmoid_grad": lambda x: A.sigmoid_grad(x),
    "tanh": lambda x: A.tanh(x),
    "tanh_grad": lambda x: A.tanh_grad(x),
    "relu": lambda x: A.relu(x),
    "relu_grad": lambda x: A.relu_grad(x),
    "leaky_relu": lambda x: A.leaky_relu(x, 0.1),
    "leaky_relu_grad": lambda x: A.leaky_relu_grad(x, 0.1),
    "prelu": lambda x: A.prelu(x, 0.25),
    "prelu_grad": lambda x: A.prelu_grad(x, 0.25),
    "prelu_grad_alpha": lambda x: A.prelu_grad_alpha(x, 0.25, np.ones_like(x)),
    "elu": lambda x: A.elu(x, 0.5),
    "elu_grad": lambda x: A.elu_grad(x, 0.5),
    "gelu": lambda x: A.gelu(x),
    "gelu_grad": lambda x: A.gelu_grad(x),
    "silu": lambda x: A.silu(x),
    "silu_grad": lambda x: A.silu_grad(x),
    "softmax": lambda x: A.softmax(x),
    "softmax_grad": lambda x: A.softmax_grad(x),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@settings(max_examples=15, deadline=None)
@given(x=st.one_of(ARR64, ARR32))
def test_input_is_never_modified(name, x):
    before = x.copy()
    out = CALLS[name](x)
    assert_array_equal(x, before)
    assert not np.shares_memory(out, x), "the result must not be a view that aliases the input"


def test_activation_table_is_complete():
    assert set(A.ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "prelu", "gelu", "silu"}
    for name, (f, g) in A.ACTIVATIONS.items():
        assert f is getattr(A, name) and g is getattr(A, name + "_grad")
    assert set(TA.MODULES) == set(A.ACTIVATIONS)


# ----------------------------------------------------------------------------- GELU and SiLU


def test_erfc_matches_math_erfc_to_a_few_ulps():
    """The vectorised erfc behind gelu, on all three of Cody's intervals and their edges."""
    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-300, 0.46875, np.nextafter(0.46875, 1), 4.0, np.nextafter(4.0, 5), 26.5, 27.0]
    x = np.concatenate([rng.normal(size=5000) * 3, rng.uniform(-30, 30, 5000), edges, np.negative(edges)])
    ours = A._erfc(x)
    ref = np.array([math.erfc(v) for v in x])
    tiny = ref < 1e-300  # denormals: compare absolutely
    assert_allclose(ours[~tiny], ref[~tiny], rtol=2e-15, atol=0)
    assert_allclose(ours[tiny], ref[tiny], rtol=0, atol=1e-310)
    assert_array_equal(A._erfc(np.array([np.inf, -np.inf, 1e300, -1e300])), [0.0, 2.0, 0.0, 2.0])
    assert np.isnan(A._erfc(np.array([np.nan]))[0])


def test_gelu_and_its_derivative_match_mpmath():
    """40-digit references: gelu = x Phi(x), gelu' = Phi(x) + x phi(x), over [-12, 8] in steps of 1/8."""
    x = np.linspace(-12.0, 8.0, 161)
    with mpmath.workdps(40):
        ref = np.array([float(mpmath.mpf(v) * mpmath.ncdf(v)) for v in x])
        ref_grad = np.array([float(mpmath.ncdf(v) + mpmath.mpf(v) * mpmath.npdf(v)) for v in x])
    # x / sqrt 2 is rounded before erfc: a relative error of 2 (x^2 / 2) * 1e-16, up to 1.6e-14 at x = -12
    assert_allclose(A.gelu(x), ref, rtol=3e-14, atol=0)
    assert_allclose(A.gelu_grad(x), ref_grad, rtol=0, atol=1e-15)
    # torch's 0.5 x (1 + erf(x / sqrt 2)) has lost every digit by x = -9; ours has not
    torch_gelu = F.gelu(torch64(x)).numpy()
    far = x < -9
    assert np.all(np.abs(torch_gelu[far] - ref[far]) > 0.5 * np.abs(ref[far]))
    assert_allclose(torch_gelu, ref, rtol=0, atol=2e-15)  # but is right in absolute terms


@SETTINGS
@given(x=ARR64)
def test_gelu_matches_torch_to_1e_12(x):
    """Against F.gelu(approximate="none"): relative 1e-12, and 1e-14 absolute where torch cancels."""
    assert_allclose(A.gelu(x), F.gelu(torch64(x), approximate="none").numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(TA.gelu(torch64(x)).numpy(), A.gelu(x), rtol=1e-12, atol=1e-14)


@SETTINGS
@given(x=ARR64)
def test_gelu_and_silu_properties(x):
    """f(x) - f(-x) = x (both are x g(x) with g(x) + g(-x) = 1: Phi, sigma), so f'(x) + f'(-x) = 1
    (its derivative); f lies between its minimum and max(x, 0), and f' within its documented range."""
    for f, f_grad, low, (g_lo, g_hi) in (
        (A.gelu, A.gelu_grad, -0.17, (-0.129, 1.129)),
        (A.silu, A.silu_grad, -0.279, (-0.0999, 1.0999)),
    ):
        fx, fm = f(x), f(-x)
        assert_allclose(fx - fm, x, rtol=1e-12, atol=1e-15)
        # x (1 - sigma(x)) rounds at |x| * ulp(1) ~ 4e-15 for x ~ 36 (before 1 - sigma(x) rounds to 0)
        assert_allclose(f_grad(x) + f_grad(-x), 1.0, rtol=0, atol=1e-14)
        assert np.all(fx >= low) and np.all(fx <= np.maximum(x, 0.0))
        g = f_grad(x)
        assert np.all((g >= g_lo) & (g <= g_hi)), (g.min(), g.max())


def test_gelu_and_silu_are_named_and_initialised_as_relu():
    from course_lib.numpy_impl.mlp import DEFAULT_INIT

    assert DEFAULT_INIT["gelu"] == DEFAULT_INIT["silu"] == "he_normal"
    assert isinstance(TA.MODULES["gelu"](), torch.nn.GELU) and TA.MODULES["gelu"]().approximate == "none"
    assert isinstance(TA.MODULES["silu"](), torch.nn.SiLU)
