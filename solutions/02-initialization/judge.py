"""Judge of assignment 02 (weight initialization): every graded part, decided outside the kernel.

Each part checks the visible examples of its test cell (the same seeds, the same numbers) and
hidden cases: the shapes the old hidden tests planted (a 2 x 30000 matrix, fans far apart, PyTorch's
layout both ways, float32) plus one shape drawn for the student, each drawn from a generator whose
seed comes from ``rng`` (seeded by the student's id: every student's weights are other numbers).
The statistical checks allow six standard errors of the statistic they test, computed from the
size of the matrix, so a correct answer passes them for any student (a false failure has a
probability of about 1e-8 per student), while every wrong scale or distribution the tests know
misses them by far more. The reference values are computed here; they never reach the kernel.
See ``course_lib/grading/judge.py`` for how a part talks to the kernel.
"""

import numpy as np

from course_lib.grading.judge import Judge, StudentError

judge = Judge(
    "02-initialization",
    # What the assignment asks students to write: the initializers, and the activations that
    # layer_stds applies. The grading kernel's course_lib lacks them (and the MLP, which needs them).
    forbidden=["course_lib.numpy_impl.initializers", "course_lib.numpy_impl.activations"],
    # The closing demonstration trains the course's MLP, which the grading kernel does not have;
    # no graded part needs what it computes.
    not_run=["demo"],
)

#: Two-sided tolerance, in standard errors, of every statistical check.
Z = 6.0
#: P(|z| > 2) for a standard normal: the share of normal weights beyond two standard deviations.
TAIL = 0.0455


def seed(rng):
    """A fresh seed for one of the student's hidden draws."""
    return int(rng.integers(0, 2**63))


def call(k, name, code, inputs, outputs):
    """Run ``code`` (which calls the student's ``name``) in the kernel; errors name the function."""
    try:
        return k.run(code, inputs, outputs)
    except StudentError as err:
        err.where = err.where or f"{name}(...)"
        raise


DRAW = "__W = {f}(*__args, __rng, **__kwargs)"


def draw(k, name, args, seed_value, **kwargs):
    """``name(*args, rng, **kwargs)`` with ``rng = default_rng(seed_value)``: (W, whether the
    call drew from rng). The generator comes back with the state the student's code left it in."""
    rng = np.random.default_rng(seed_value)
    before = rng.bit_generator.state
    got = call(k, name, DRAW.format(f=name), {"__args": tuple(args), "__rng": rng, "__kwargs": kwargs},
               ["__W", "__rng"])  # fmt: skip
    after = got["__rng"]
    moved = isinstance(after, np.random.Generator) and after.bit_generator.state != before
    return got["__W"], moved


def floats(W, name, shape):
    """W as a float64 array, after checking that it is an array of floats of ``shape``."""
    assert np.shape(W) == tuple(shape), (
        f"{name} must return an array of shape {tuple(shape)}, got {np.shape(W)}"
    )
    kind = np.asarray(W).dtype.kind if isinstance(W, np.ndarray) else None
    assert kind == "f", f"{name} must return a NumPy array of floats, got {type(W).__name__}" + (
        f" of dtype {W.dtype}" if isinstance(W, np.ndarray) else ""
    )
    return np.asarray(W, dtype=np.float64)


def check_uniform(W, a, what):
    """W ~ U(-a, a): bounded by a, reaching it, mean 0, std a / sqrt(3), flat on four quarters."""
    n = W.size
    assert np.abs(W).max() <= a, f"{what}: a weight exceeds the limit a = {a:.5f}"
    assert np.abs(W).max() > a * (1 - 20 / n), f"{what}: the weights never come near the limit a = {a:.5f}"
    std = a / np.sqrt(3)
    assert abs(W.mean()) < Z * std / np.sqrt(n), f"{what}: the mean of W must be 0, got {W.mean():.5f}"
    assert abs(W.std() / std - 1) < Z * 0.45 / np.sqrt(n), (
        f"{what}: the std of W is {W.std():.5f}, but U(-a, a) has std a / sqrt(3) = {std:.5f}"
    )
    shares = np.histogram(W, bins=4, range=(-a, a))[0] / n
    assert np.all(np.abs(shares - 0.25) < Z * np.sqrt(0.1875 / n)), (
        f"{what}: not uniform on [-a, a] (the shares of the four quarters are {np.round(shares, 4)})"
    )


def check_normal(W, std, what):
    """W ~ N(0, std^2): mean 0, the right std, and the normal share of weights beyond 2 std."""
    n = W.size
    assert abs(W.mean()) < Z * std / np.sqrt(n), f"{what}: the mean of W must be 0, got {W.mean():.5f}"
    assert abs(W.std() / std - 1) < Z * 0.71 / np.sqrt(n), (
        f"{what}: the std of W must be {std:.5f}, got {W.std():.5f}"
    )
    tail = np.mean(np.abs(W) > 2 * std)
    assert abs(tail - TAIL) < Z * np.sqrt(TAIL * (1 - TAIL) / n), (
        f"{what}: {tail:.2%} of the weights lie beyond 2 std, a normal distribution has 4.55 %: "
        "draw from a normal distribution"
    )


GLOBAL_STATE = """
np.random.seed(1)
__first = {f}(40, 30, np.random.default_rng(__seed))
np.random.seed(2)
__second = {f}(40, 30, np.random.default_rng(__seed))
__g = np.random.default_rng(__seed + 1)
__third = {f}(40, 30, __g)
__fourth = {f}(40, 30, __g)
"""


def check_rng_use(k, name, seed_value):
    """The global np.random state must not matter; two calls on one generator draw new weights."""
    got = call(k, name, GLOBAL_STATE.format(f=name), {"__seed": seed_value % 2**62},
               ["__first", "__second", "__third", "__fourth"])  # fmt: skip
    first, second = np.asarray(got["__first"]), np.asarray(got["__second"])
    assert first.shape == second.shape and np.array_equal(first, second), (
        f"{name}: the global np.random state must not matter: draw from rng"
    )
    assert not np.array_equal(np.asarray(got["__third"]), np.asarray(got["__fourth"])), (
        f"{name}: each call draws new weights from rng (two calls on the same generator gave the same ones)"
    )


def hidden_shape(rng, low=30, high=600):
    """A shape drawn for the student, with at least 2,000 weights (a few standard errors matter)."""
    while True:
        shape = (int(rng.integers(low, high)), int(rng.integers(low, high)))
        if shape[0] * shape[1] >= 2000:
            return shape


# --- 1. Xavier uniform ---------------------------------------------------------------------------


@judge.part("test_xavier_uniform", answers=["xavier_uniform"])
def _(k, rng):
    W, _ = draw(k, "xavier_uniform", (300, 100), 21)
    a = np.sqrt(6 / 400)  # 0.1225
    W = floats(W, "xavier_uniform", (300, 100))
    assert np.abs(W).max() <= a, (
        f"every weight must lie in [-a, a] with a = sqrt(6 / (fan_in + fan_out)) = {a:.4f}; "
        f"the largest |W| is {np.abs(W).max():.4f}: is W uniform, and is the limit right?"
    )
    assert np.abs(W).max() > 0.99 * a, (
        f"the largest |W| is only {np.abs(W).max():.4f}: the limit should be a = {a:.4f}, not the std "
        "sqrt(2 / (fan_in + fan_out)) (a uniform U(-a, a) has std a / sqrt(3))"
    )
    assert abs(W.std() - a / np.sqrt(3)) < 0.02 * a / np.sqrt(3), (
        f"the std of W should be a / sqrt(3) = {a / np.sqrt(3):.4f}"
    )
    quarters = np.histogram(W, bins=4, range=(-a, a))[0] / W.size
    assert np.allclose(quarters, 0.25, atol=0.015), (
        f"a uniform W puts a quarter of its values in each quarter of [-a, a], got {quarters}"
    )
    same, _ = draw(k, "xavier_uniform", (300, 100), 21)
    assert np.array_equal(W, np.asarray(same, dtype=np.float64)), (
        "the same seed must give the same weights: draw them from rng"
    )
    for fan_in, fan_out in [(100, 400), (1000, 60), (2, 30000), (256, 256), hidden_shape(rng)]:
        W, moved = draw(k, "xavier_uniform", (fan_in, fan_out), seed(rng))
        W = floats(W, "xavier_uniform", (fan_in, fan_out))
        assert moved, "the weights must be drawn from rng"
        check_uniform(W, np.sqrt(6 / (fan_in + fan_out)), f"xavier_uniform{(fan_in, fan_out)}")
    check_rng_use(k, "xavier_uniform", seed(rng))


# --- 2. Xavier normal ----------------------------------------------------------------------------


@judge.part("test_xavier_normal", answers=["xavier_normal"])
def _(k, rng):
    W, _ = draw(k, "xavier_normal", (300, 100), 22)
    std = np.sqrt(2 / 400)  # 0.0707
    W = floats(W, "xavier_normal", (300, 100))
    assert abs(W.mean()) < 0.0025, f"the mean of W should be 0, got {W.mean():.4f}"
    assert abs(W.std() / std - 1) < 0.03, (
        f"the std of W is {W.std():.4f}, but Xavier needs sqrt(2 / (fan_in + fan_out)) = {std:.4f}. "
        f"(sqrt(1 / fan_in) = {np.sqrt(1 / 300):.4f} is LeCun's rule; "
        f"2 / (fan_in + fan_out) = {2 / 400:.4f} is the variance, not the std)"
    )
    beyond = np.mean(np.abs(W) > 2 * std)
    assert abs(beyond - TAIL) < 0.01, (
        f"{beyond:.2%} of the weights lie beyond 2 std; a normal distribution has 4.55 % there "
        "(a uniform one with the same std has none): draw from a normal distribution"
    )
    same, _ = draw(k, "xavier_normal", (300, 100), 22)
    assert np.array_equal(W, np.asarray(same, dtype=np.float64)), "the same seed must give the same weights"
    for fan_in, fan_out in [(100, 400), (1000, 60), (2, 30000), (256, 256), hidden_shape(rng)]:
        W, moved = draw(k, "xavier_normal", (fan_in, fan_out), seed(rng))
        W = floats(W, "xavier_normal", (fan_in, fan_out))
        assert moved, "the weights must be drawn from rng"
        check_normal(W, np.sqrt(2 / (fan_in + fan_out)), f"xavier_normal{(fan_in, fan_out)}")
    check_rng_use(k, "xavier_normal", seed(rng))


# --- 3. He normal --------------------------------------------------------------------------------


@judge.part("test_he_normal", answers=["he_normal"])
def _(k, rng):
    W, _ = draw(k, "he_normal", (400, 100), 23)
    std = np.sqrt(2 / 400)  # 0.0707
    W = floats(W, "he_normal", (400, 100))
    assert abs(W.mean()) < 0.0025, f"the mean of W should be 0, got {W.mean():.4f}"
    assert abs(W.std() / std - 1) < 0.03, (
        f"the std of W is {W.std():.4f}, but He needs sqrt(2 / fan_in) = {std:.4f}. "
        f"(sqrt(2 / fan_out) = {np.sqrt(2 / 100):.4f} uses the wrong fan; 2 / fan_in = {2 / 400:.4f} is the "
        f"variance, not the std; sqrt(1 / fan_in) = {np.sqrt(1 / 400):.4f} forgets the factor 2)"
    )
    beyond = np.mean(np.abs(W) > 2 * std)
    assert abs(beyond - TAIL) < 0.01, (
        f"{beyond:.2%} of the weights lie beyond 2 std, a normal distribution has 4.55 %"
    )
    linear, _ = draw(k, "he_normal", (400, 100), 24, negative_slope=1.0)
    linear = floats(linear, "he_normal", (400, 100))
    assert abs(linear.std() / np.sqrt(1 / 400) - 1) < 0.03, (
        "with negative_slope = 1 the unit is linear and v = 2 / (2 fan_in) = 1 / fan_in: "
        f"std {np.sqrt(1 / 400):.4f}, got {linear.std():.4f}"
    )
    same, _ = draw(k, "he_normal", (400, 100), 23)
    assert np.array_equal(W, np.asarray(same, dtype=np.float64)), "the same seed must give the same weights"
    cases = [((100, 400), 0.0), ((1000, 60), 0.0), ((3, 30000), 0.0), ((200, 300), 0.5), ((500, 120), 0.3),
             ((150, 400), 1.0), ((int(rng.integers(100, 400)), int(rng.integers(100, 400))),
                                 round(float(rng.uniform(0.15, 0.7)), 3))]  # fmt: skip
    for (fan_in, fan_out), slope in cases:
        kwargs = {} if slope == 0.0 else {"negative_slope": slope}  # the default is negative_slope = 0
        W, moved = draw(k, "he_normal", (fan_in, fan_out), seed(rng), **kwargs)
        W = floats(W, "he_normal", (fan_in, fan_out))
        assert moved, "the weights must be drawn from rng"
        check_normal(W, np.sqrt(2 / ((1 + slope**2) * fan_in)),
                     f"he_normal{(fan_in, fan_out)}, negative_slope={slope}")  # fmt: skip
    check_rng_use(k, "he_normal", seed(rng))


# --- 4. PyTorch's layout, in place ---------------------------------------------------------------

FILL = """
__weight = np.full(__shape, np.nan, dtype=__dtype) if __nan else np.empty(__shape, dtype=__dtype)
__out = kaiming_normal_(__weight, __rng)
__same = __out is __weight
"""


def fill(k, shape, dtype, seed_value, nan=True):
    """kaiming_normal_ on a fresh (out, in) array: (the array afterwards, whether the call returned
    that very array, whether it drew from rng)."""
    rng = np.random.default_rng(seed_value)
    before = rng.bit_generator.state
    got = call(k, "kaiming_normal_", FILL,
               {"__shape": tuple(shape), "__dtype": dtype, "__nan": nan, "__rng": rng},
               ["__weight", "__same", "__rng"])  # fmt: skip
    after = got["__rng"]
    moved = isinstance(after, np.random.Generator) and after.bit_generator.state != before
    return got["__weight"], bool(got["__same"] is True), moved


GLOBAL_FILL = """
np.random.seed(1)
__first = kaiming_normal_(np.zeros((30, 40)), np.random.default_rng(__seed))
np.random.seed(2)
__second = kaiming_normal_(np.zeros((30, 40)), np.random.default_rng(__seed))
"""


@judge.part("test_kaiming_normal_", answers=["kaiming_normal_"])
def _(k, rng):
    weight, same, _ = fill(k, (100, 400), "float64", 25, nan=False)  # nn.Linear(400, 100)
    assert same, "return the array you were given, filled in place (like torch.nn.init.kaiming_normal_)"
    assert np.shape(weight) == (100, 400), "the shape must not change"
    std = np.sqrt(2 / 400)
    assert abs(weight.std() / std - 1) < 0.03, (
        f"the std is {weight.std():.4f}, but the fan-in of a (out, in) = (100, 400) weight is 400: "
        f"std sqrt(2 / 400) = {std:.4f} (reading the fan-in from shape[0] gives {np.sqrt(2 / 100):.4f})"
    )
    assert abs(weight.mean()) < 0.0025, "the mean must be 0"
    cases = [((60, 1000), "float64"), ((1000, 60), "float64"), ((300, 200), "float32"),
             (hidden_shape(rng, 40, 500), str(rng.choice(["float64", "float32"])))]  # fmt: skip
    for (n_out, n_in), dtype in cases:
        weight, same, moved = fill(k, (n_out, n_in), dtype, seed(rng))
        assert same and weight.dtype == np.dtype(dtype) and weight.shape == (n_out, n_in), (
            f"fill weight in place: return the array you were given, with its shape and dtype ({dtype})"
        )
        assert np.all(np.isfinite(weight)), "every entry must be overwritten"
        assert moved, "the weights must be drawn from rng"
        W = weight.astype(np.float64)
        std, n = np.sqrt(2 / n_in), W.size
        assert abs(W.mean()) < Z * std / np.sqrt(n), "the mean must be 0"
        assert abs(W.std() / std - 1) < Z * 0.71 / np.sqrt(n), (
            f"(out, in) = {(n_out, n_in)}: the fan-in is in_features = {n_in}, "
            f"the std sqrt(2 / {n_in}) = {std:.5f}, got {W.std():.5f}"
        )
        assert abs(np.mean(np.abs(W) > 2 * std) - TAIL) < Z * np.sqrt(TAIL * (1 - TAIL) / n), (
            "draw from a normal distribution"
        )
    got = call(k, "kaiming_normal_", GLOBAL_FILL, {"__seed": seed(rng) % 2**62}, ["__first", "__second"])
    first, second = np.asarray(got["__first"]), np.asarray(got["__second"])
    assert first.shape == second.shape and np.array_equal(first, second), (
        "the global np.random state must not matter: draw from rng"
    )


# --- 5. layer_stds -------------------------------------------------------------------------------


def expected_stds(x, ws, activation):
    h, res = x, []
    for W in ws:
        z = h @ W
        h = {"linear": z, "tanh": np.tanh(z), "relu": z * (z > 0)}[activation]
        res.append(float(h.std()))
    return res


STDS = "__got = [layer_stds(x, ws, a) for a in __activations]"


def stds(k, x, ws, activations):
    """layer_stds(x, ws, a) for each activation a, and x and ws as the calls left them."""
    got = call(k, "layer_stds", STDS, {"x": x, "ws": list(ws), "__activations": list(activations)},
               ["__got", "x", "ws"])  # fmt: skip
    return got["__got"], got["x"], got["ws"]


def is_list_of_floats(got, length):
    return isinstance(got, list) and len(got) == length and all(isinstance(s, float) for s in got)


@judge.part("test_layer_stds", answers=["layer_stds"])
def _(k, rng):
    x = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]])  # (N, D) = (3, 2)
    W1 = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -2.0]])  # (2, 3)
    W2 = np.array([[1.0], [-1.0], [2.0]])  # (3, 1)
    h1 = np.maximum(x @ W1, 0)
    h2 = np.maximum(h1 @ W2, 0)
    (got,), _, _ = stds(k, x, [W1, W2], ["relu"])
    assert isinstance(got, list) and len(got) == 2, (
        f"one std per weight matrix: a list of 2 floats, got {got!r}"
    )
    assert np.allclose(np.asarray(got, dtype=np.float64), [h1.std(), h2.std()], rtol=1e-6, atol=0), (
        f"expected [{h1.std():.4f}, {h2.std():.4f}] (the std of every entry of relu(h @ W), layer by layer), "
        f"got {got}. "
        f"The pre-activations would give [{(x @ W1).std():.4f}, ...]; the variances [{h1.var():.4f}, ...]"
    )
    visible = np.random.default_rng(26)
    x = visible.normal(size=(200, 100))
    ws = [visible.normal(0, np.sqrt(1 / 100), size=(100, 100)) for _ in range(5)]
    (lin,), _, _ = stds(k, x, ws, ["linear"])
    assert isinstance(lin, list) and len(lin) == 5 and all(0.7 < float(s) < 1.4 for s in lin), (
        "a linear stack with std sqrt(1 / fan_in) keeps the std near 1: "
        f"got {np.round(np.asarray(lin, dtype=float), 3)}"
    )
    # hidden: three layers of other widths and scales, for each activation; x and ws left as they were
    sizes = [
        int(rng.integers(30, 70)),
        int(rng.integers(60, 100)),
        int(rng.integers(20, 40)),
        int(rng.integers(5, 15)),
    ]
    x = rng.uniform(-1, 1, size=(int(rng.integers(40, 80)), sizes[0]))
    ws = [
        rng.normal(0, scale, size=(m, n))
        for m, n, scale in zip(sizes[:-1], sizes[1:], (0.3, 0.2, 0.4), strict=True)
    ]
    activations = ["linear", "tanh", "relu"]
    got, x_after, ws_after = stds(k, x, ws, activations)
    for activation, out in zip(activations, got, strict=True):
        assert is_list_of_floats(out, 3), (
            f"a list of Python floats, one per layer ({activation}), got {out!r}"
        )
        assert np.allclose(out, expected_stds(x, ws, activation), rtol=1e-6, atol=0), (
            f"wrong stds for {activation}: h_l = f(h_(l-1) @ W_l) with f = {activation} after every layer, "
            "and the std of all the entries of each h_l"
        )
    assert (
        isinstance(x_after, np.ndarray)
        and np.array_equal(x_after, x)
        and isinstance(ws_after, list)
        and len(ws_after) == len(ws)
        and all(isinstance(a, np.ndarray) and np.array_equal(a, b) for a, b in zip(ws_after, ws, strict=True))
    ), "layer_stds must not modify x or the weights"
    # hidden: weights far too large for tanh, which saturates (std near 1)
    x = rng.normal(size=(20, 30))
    ws = [rng.normal(0, 5.0, size=(30, 30)) for _ in range(4)]
    (got,), _, _ = stds(k, x, ws, ["tanh"])
    assert is_list_of_floats(got, 4) and np.allclose(got, expected_stds(x, ws, "tanh"), rtol=1e-6, atol=0), (
        "wrong stds for tanh with large weights"
    )
    assert got[-1] > 0.9, "saturated tanh: std near 1"
    (empty,), _, _ = stds(k, x, [], ["relu"])
    assert empty == [] and isinstance(empty, list), "no layers, no stds: layer_stds(x, [], ...) is []"
