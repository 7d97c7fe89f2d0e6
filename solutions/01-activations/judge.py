"""Judge of assignment 01 (activations): every graded part, decided outside the student's kernel.

Each part checks the visible examples of its test cell and hidden inputs drawn from ``rng`` (seeded
by the student's id: every student gets other numbers), with fixed edge cases planted in them.
The reference values are computed here; they never reach the kernel. See
``course_lib/grading/judge.py`` for how a part talks to the kernel.
"""

import numpy as np

from course_lib.grading.judge import Judge, StudentError
from course_lib.gradcheck import numerical_gradient, rel_error
from course_lib.numpy_impl.mlp import MLP

judge = Judge(
    "01-activations",
    # What the assignment asks students to write: the grading kernel's course_lib lacks these
    # modules (and the MLP, which needs them: its measurements are computed here instead).
    forbidden=["course_lib.numpy_impl.activations", "course_lib.gradcheck"],
)

STRICT = "with np.errstate(over='raise', invalid='raise', divide='raise'):\n    __out = {f}(*__args)"


def strict(k, name, *args):
    """``name(*args)`` with NumPy's floating-point warnings turned into errors."""
    try:
        return k.run(STRICT.format(f=name), {"__args": args}, ["__out"])["__out"]
    except StudentError as err:
        if err.type == "FloatingPointError":
            raise AssertionError(
                f"{name} overflowed ({err.message}): exponentiate only numbers <= 0, and remember that "
                "np.where evaluates both branches on the whole array"
            ) from None
        raise


def close(out, expected, name, what, rtol, atol):
    assert np.shape(out) == np.shape(expected), (
        f"{name} must keep the shape {np.shape(expected)}, got {np.shape(out)}"
    )
    assert np.asarray(out).dtype.kind == "f", f"{name} must return floats, got dtype {np.asarray(out).dtype}"
    assert np.allclose(out, expected, rtol=rtol, atol=atol), f"{name} is wrong {what}"


def sigmoid_ref(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@judge.part("test_sigmoid", answers=["sigmoid"])
def _(k, rng):
    visible = np.array([-2.0, 0.0, 3.0])
    close(strict(k, "sigmoid", visible), [0.11920292, 0.5, 0.95257413], "sigmoid", f"on {visible}", 1e-7, 0)
    x = rng.normal(scale=8.0, size=(4, 5))
    x[0, :4] = [-745.2, 709.9, -1e5, 1e300]
    close(strict(k, "sigmoid", x), sigmoid_ref(x), "sigmoid", "on random inputs", 1e-9, 1e-300)
    close(strict(k, "sigmoid", np.array([-1000.0, 1000.0])), [0.0, 1.0], "sigmoid", "at +-1000", 0, 1e-12)
    ints = np.array([-3, 0, 3])
    close(k.call("sigmoid", ints), sigmoid_ref(ints), "sigmoid",
          "on integer arrays (convert to float first: 1 / (1 + z) with integer z truncates)", 1e-7, 0)  # fmt: skip
    both = k.run("__p, __m = sigmoid(x), sigmoid(-x)", {"x": x}, ["__p", "__m"])
    assert np.allclose(both["__p"] + both["__m"], 1.0, rtol=0, atol=1e-12), "sigma(x) + sigma(-x) must be 1"


@judge.part("test_sigmoid_grad", answers=["sigmoid_grad"])
def _(k, rng):
    visible = np.array([-2.0, 0.0, 3.0])
    close(k.call("sigmoid_grad", visible), [0.10499359, 0.25, 0.04517666], "sigmoid_grad",
          f"on {visible}: sigma'(x) = sigma(x) (1 - sigma(x)), not sigma(x)", 1e-7, 0)  # fmt: skip
    x = rng.normal(scale=6.0, size=(3, 4, 2))
    s = sigmoid_ref(x)
    out = k.call("sigmoid_grad", x)
    close(out, s * (1 - s), "sigmoid_grad", "on random inputs", 1e-8, 1e-15)
    assert np.all(np.asarray(out) <= 0.25 + 1e-15), "sigma'(x) can never exceed 1/4"
    close(k.call("sigmoid_grad", -x), out, "sigmoid_grad", "for -x: sigma' is even", 1e-8, 1e-15)
    far = k.run("with np.errstate(all='ignore'):\n    __f = sigmoid_grad(np.array([-1000.0, 1000.0]))",
                outputs=["__f"])["__f"]  # fmt: skip
    assert np.all(np.isfinite(far)) and np.allclose(far, 0.0, atol=1e-300), (
        f"sigmoid_grad(+-1000) should be 0, got {far}"
    )


@judge.part("test_tanh_grad", answers=["tanh_grad"])
def _(k, rng):
    visible = np.array([-1.0, 0.0, 2.0])
    close(k.call("tanh_grad", visible), [0.41997434, 1.0, 0.07065082], "tanh_grad",
          f"on {visible}: tanh' = 1 - tanh^2", 1e-7, 0)  # fmt: skip
    x = rng.normal(scale=3.0, size=(2, 3, 4))
    close(k.call("tanh_grad", x), 1.0 / np.cosh(x) ** 2, "tanh_grad", "on random inputs", 1e-8, 1e-15)
    far = k.run("with np.errstate(all='ignore'):\n    __f = tanh_grad(np.array([-50.0, 50.0]))",
                outputs=["__f"])["__f"]  # fmt: skip
    assert np.all(np.isfinite(far)) and np.allclose(far, 0.0, atol=1e-15), f"tanh_grad(+-50) should be 0, got {far}"


UNCHANGED = "__out = {f}(x)"  # x comes back too: the judge compares it with what it sent


@judge.part("test_relu", answers=["relu"])
def _(k, rng):
    hidden = rng.normal(size=(5, 6))
    hidden[0, 0] = 0.0
    for x in (np.array([-2.0, 0.0, 3.5]), hidden):
        got = k.run(UNCHANGED.format(f="relu"), {"x": x}, ["__out", "x"])
        assert np.array_equal(got["x"], x), "relu modified its input: compute a new array instead of assigning into x"
        close(got["__out"], np.where(x > 0, x, 0.0), "relu", "on random inputs", 0, 0)
    close(k.call("relu", np.arange(-3, 4)), [0, 0, 0, 0, 1, 2, 3], "relu", "on integer arrays", 0, 0)


@judge.part("test_relu_grad", answers=["relu_grad"])
def _(k, rng):
    visible = np.array([-2.0, 0.0, 3.5])
    close(k.call("relu_grad", visible), [0.0, 0.0, 1.0], "relu_grad",
          f"on {visible}: the slope is 0 for x <= 0 (0 at x = 0, as PyTorch) and 1 for x > 0", 0, 0)  # fmt: skip
    x = rng.normal(scale=4.0, size=(3, 7))
    x[1, :3] = [0.0, -0.0, 1e-300]
    close(k.call("relu_grad", x), (x > 0).astype(float), "relu_grad",
          "on random inputs (is relu'(0) = 0? is the slope 0, not 1, for x < 0?)", 0, 0)  # fmt: skip


@judge.part("test_leaky_relu", answers=["leaky_relu", "leaky_relu_grad"])
def _(k, rng):
    visible = np.array([-2.0, 0.0, 3.0])
    close(k.call("leaky_relu", visible), [-0.02, 0.0, 3.0], "leaky_relu", "with the default alpha = 0.01", 1e-12, 0)
    close(k.call("leaky_relu_grad", visible), [0.01, 0.01, 1.0], "leaky_relu_grad",
          "with the default alpha: the slope is alpha for x <= 0", 1e-12, 0)  # fmt: skip
    x = rng.normal(scale=3.0, size=(4, 6))
    x[0, 0] = 0.0
    for alpha in (0.1, float(rng.uniform(0.15, 0.35))):
        close(k.call("leaky_relu", x, alpha=alpha), np.where(x > 0, x, alpha * x), "leaky_relu",
              f"with alpha = {alpha:.3f}", 1e-12, 0)  # fmt: skip
        close(k.call("leaky_relu_grad", x, alpha), np.where(x > 0, 1.0, alpha), "leaky_relu_grad",
              f"with alpha = {alpha:.3f} (alpha at x = 0 and for x < 0; use the alpha you are given)", 1e-12, 0)  # fmt: skip
    close(k.call("leaky_relu_grad", np.zeros(3), alpha=0.4), np.full(3, 0.4), "leaky_relu_grad",
          "at x = 0: the slope of leaky ReLU is alpha there (the PyTorch convention)", 1e-12, 0)  # fmt: skip


@judge.part("test_elu_grad", answers=["elu_grad"])
def _(k, rng):
    visible = np.array([-1.0, 0.0, 2.0])
    close(strict(k, "elu_grad", visible), [0.36787944, 1.0, 1.0], "elu_grad", f"on {visible}", 1e-7, 0)
    close(k.call("elu_grad", visible, alpha=0.5), [0.18393972, 0.5, 1.0], "elu_grad",
          "with alpha = 0.5: the slope is alpha * e^x for x <= 0 (alpha at x = 0)", 1e-7, 0)  # fmt: skip
    close(strict(k, "elu_grad", np.array([-1000.0, 1000.0])), [0.0, 1.0], "elu_grad", "at +-1000", 0, 1e-300)
    x = rng.normal(scale=2.0, size=(3, 5))
    x[0, :2] = [0.0, 750.0]
    for alpha in (0.3, float(rng.uniform(1.2, 2.2))):
        expected = np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
        close(strict(k, "elu_grad", x, alpha), expected, "elu_grad", f"with alpha = {alpha:.3f}", 1e-10, 0)
    close(k.call("elu_grad", np.zeros(2), alpha=2.5), [2.5, 2.5], "elu_grad", "at 0: elu'(0) = alpha", 1e-12, 0)


NUMGRAD = """
__g = numerical_gradient(lambda v: float(np.sum(A * v**2) + 3.0 * v.sum()), x, h=1e-2)
__g2 = numerical_gradient(lambda v: float(np.sin(v).sum() * v.sum()), w)
__g3 = numerical_gradient(lambda v: float(np.sum(v**3)), z)
"""


@judge.part("test_numerical_gradient", answers=["numerical_gradient"])
def _(k, rng):
    A, x, w = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2)), rng.normal(size=5)
    z = np.array([[1.0, -2.0], [0.5, 3.0]])
    got = k.run(NUMGRAD, {"A": A, "x": x, "w": w, "z": z}, ["__g", "x", "__g2", "__g3"])
    assert np.array_equal(got["x"], x), "x must hold its original values when numerical_gradient returns"
    assert np.shape(got["__g3"]) == z.shape, f"the gradient must have x's shape {z.shape}"
    assert np.allclose(got["__g3"], 3 * z**2, rtol=0, atol=1e-6), (
        "d/dx sum(x^3) = 3x^2: a central difference has error O(h^2); a forward difference, O(h), is not enough"
    )
    assert np.shape(got["__g"]) == x.shape, f"the gradient must have x's shape {x.shape} (any number of dimensions)"
    assert np.allclose(got["__g"], 2 * A * x + 3.0, rtol=0, atol=1e-9), (
        "central differences are exact for a quadratic (up to rounding), even with h = 1e-2: "
        "use (f(x + h) - f(x - h)) / (2h), with the h you are given"
    )
    expected = np.cos(w) * w.sum() + np.sin(w).sum()
    assert np.allclose(got["__g2"], expected, rtol=0, atol=1e-8), "wrong gradient for a function that couples the entries"


def init_mlp(D, H, C, rng):
    return {"W1": rng.normal(0.0, 1.0 / np.sqrt(D), size=(D, H)), "b1": rng.normal(0.0, 0.1, size=H),
            "W2": rng.normal(0.0, 1.0 / np.sqrt(H), size=(H, C)), "b2": rng.normal(0.0, 0.1, size=C)}  # fmt: skip


def mlp_forward(X, p):
    h1 = np.tanh(X @ p["W1"] + p["b1"])
    return h1 @ p["W2"] + p["b2"], {"X": X, "z1": X @ p["W1"] + p["b1"], "h1": h1, "W1": p["W1"], "W2": p["W2"]}


def mlp_loss(X, y, p):
    z = mlp_forward(X, p)[0]
    z = z - z.max(axis=1, keepdims=True)
    return float(-(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(y)), y].mean())


def mlp_grads(logits, y, cache):
    """The exact gradients (the reference the numerical check of the notebook approximates)."""
    z = logits - logits.max(axis=1, keepdims=True)
    d = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    dz1 = (d @ cache["W2"].T) * (1.0 - cache["h1"] ** 2)
    return {"W1": cache["X"].T @ dz1, "b1": dz1.sum(axis=0), "W2": cache["h1"].T @ d, "b2": d.sum(axis=0)}


BACKWARD = "__g = mlp_backward(logits, y, cache)"  # logits come back too, for the judge to compare


@judge.part("test_mlp_backward", answers=["mlp_backward"])
def _(k, rng):
    cases = [(np.random.default_rng(7), (6, 4, 5, 3), 1.0), (rng, (1, 3, 2, 5), 2.0), (rng, (11, 7, 8, 4), 2.0)]
    for case_rng, (N, D, H, C), scale in cases:
        X, y = case_rng.normal(size=(N, D)), case_rng.integers(0, C, size=N)
        params = init_mlp(D, H, C, case_rng)
        params["W1"] *= scale  # push some tanh units towards saturation
        logits, cache = mlp_forward(X, params)
        got = k.run(BACKWARD, {"logits": logits, "y": y, "cache": cache}, ["__g", "logits"])
        grads = got["__g"]
        assert isinstance(grads, dict) and set(grads) == {"W1", "b1", "W2", "b2"}, (
            f"mlp_backward must return a dict with keys W1, b1, W2, b2, got {type(grads).__name__}"
            + (f" with keys {sorted(map(str, grads))}" if isinstance(grads, dict) else "")
        )
        assert np.array_equal(got["logits"], logits), "mlp_backward must not modify logits in place"
        exact = mlp_grads(logits, y, cache)
        for name in ("W2", "b2", "W1", "b1"):
            assert np.shape(grads[name]) == params[name].shape, (
                f"d{name} must have the shape of {name}, {params[name].shape}, got {np.shape(grads[name])}"
            )
            numeric = numerical_gradient(lambda _: mlp_loss(X, y, params), params[name])
            assert rel_error(exact[name], numeric) < 1e-5, "the judge's own gradient check failed"
            err = rel_error(np.asarray(grads[name], dtype=float), exact[name])
            assert err < 1e-8, (
                f"d{name} differs from the numerical gradient (relative error {err:.1e}) for N={N}, D={D}, "
                f"H={H}, C={C}. Work backwards from dL/ds = (p - Y) / N: did you divide by N, sum the biases "
                "over the batch, use 1 - h1^2?"
            )
        assert abs(float(np.sum(grads["b2"]))) < 1e-12, "the entries of db2 must sum to 0, as every row of p - Y does"
    perm = rng.permutation(N)
    logits_p, cache_p = mlp_forward(X[perm], params)
    permuted = k.call("mlp_backward", logits_p, y[perm], cache_p)
    assert all(np.allclose(permuted[g], grads[g], rtol=1e-10, atol=1e-14) for g in grads), (
        "the gradient of a mean over the batch cannot depend on the order of the examples"
    )


def _norms(activation, seed=0):
    data = np.random.default_rng(seed)
    X, y = data.normal(size=(256, 32)), data.integers(0, 10, size=256)
    return np.array(MLP([32] + [64] * 10 + [10], activation=activation, rng=seed).gradient_norms(X, y))


@judge.provide("experiment_provided")
def _():
    """The cell measures with the course's MLP, which the grading kernel does not have: the
    judge measures (the same seeds, the same numbers) and hands the kernel the results."""
    return {"norms_sigmoid": _norms("sigmoid"), "norms_relu": _norms("relu")}


@judge.part("test_experiment")
def _(k, rng):
    sig, rel = _norms("sigmoid"), _norms("relu")
    values = k.run("__v = {n: GLOBALS.get(n) for n in ('ratio_sigmoid', 'ratio_relu', 'factor_sigmoid', 'which_vanishes')}",
                   outputs=["__v"])["__v"]  # fmt: skip
    for name in ("ratio_sigmoid", "ratio_relu", "factor_sigmoid"):
        value = values[name]
        assert isinstance(value, (float, np.floating)) and np.isfinite(value) and value > 0, (
            f"{name} must be a positive number computed from the norms, got {value!r}"
        )
    assert np.isclose(values["ratio_sigmoid"], sig[0] / sig[-1], rtol=1e-6, atol=0), (
        "ratio_sigmoid must be ||dL/dW_1|| / ||dL/dW_11|| (first over last) of the sigmoid network"
    )
    assert np.isclose(values["ratio_relu"], rel[0] / rel[-1], rtol=1e-6, atol=0), (
        "ratio_relu must be ||dL/dW_1|| / ||dL/dW_11|| (first over last) of the ReLU network"
    )
    assert np.isclose(values["factor_sigmoid"], (sig[0] / sig[-1]) ** 0.1, rtol=1e-6, atol=0), (
        "factor_sigmoid is the geometric mean per layer: ratio_sigmoid ** (1 / 10)"
    )
    assert values["which_vanishes"] == "sigmoid" and isinstance(values["which_vanishes"], str), (
        'which_vanishes must be the string "sigmoid": its first-layer gradient is ~1e-7 of its last'
    )
