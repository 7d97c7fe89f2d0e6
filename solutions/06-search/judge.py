"""Judge of assignment 06 (hyperparameter search, residual blocks): every graded part, decided
outside the student's kernel.

Each part checks the visible examples of its test cell, then hidden inputs drawn from ``rng``
(seeded by the student's id: every student gets other numbers) plus the fixed edge cases the old
hidden tests planted. The references are computed here (SciPy's normal distribution for the
expected improvement, the course's ``residual_forward`` / ``residual_backward``). ``random_search``
takes callables, which cannot cross the probe: the stand-in samplers and objectives are written in
the probe code and defined inside the kernel, and what the search returns comes back as plain data
(configurations are dicts of numbers), so "the best is that trial" is an equality the judge checks.
Probes only call the student's functions and send back what they returned (and the inputs, to see
whether they were modified): every comparison happens here. See ``course_lib/grading/judge.py``.
"""

import math

import numpy as np
from scipy.special import ndtr

from course_lib.grading.judge import Judge, StudentError, floats
from course_lib.grading.judge import unchanged as same
from course_lib.numpy_impl.residual import residual_backward as reference_backward
from course_lib.numpy_impl.residual import residual_forward as reference_forward

judge = Judge(
    "06-search",
    # What the assignment asks students to write: the grading kernel's course_lib lacks them
    # (course_lib.search needs scipy and pandas anyway).
    forbidden=["course_lib.search", "course_lib.numpy_impl.residual"],
    # The demonstration tunes a network with the student's search (seconds per student) after every
    # graded part; nothing graded depends on it.
    not_run=["demo"],
)


# --- 1. sample_config ----------------------------------------------------------------------------

#: Draws come back as they are, except NumPy strings (``rng.choice(values)`` gives ``np.str_``,
#: which the codec cannot carry): they come back as the ``str`` they equal.
PLAIN = """
def __plain(d):
    if not isinstance(d, dict):
        return d
    return {__k: (str(__v) if isinstance(__v, np.str_) else __v) for __k, __v in d.items()}
"""

DRAWS = PLAIN + "__draws = [__plain(sample_config(space, rng)) for __i in range(n)]\n"

REPRODUCIBLE = PLAIN + """
np.random.seed(seed_a)
__a = __plain(sample_config(space, np.random.default_rng(7)))
np.random.seed(123)  # the global state must not matter
__b = __plain(sample_config(space, np.random.default_rng(7)))
"""

EDGES = PLAIN + """
__single = __plain(sample_config({"k": ("int", 5, 5)}, np.random.default_rng(6102)))
try:
    sample_config({"bad": ("gaussian", 0, 1)}, np.random.default_rng(6103))
    __raised = None
except ValueError as __err:
    __raised = type(__err).__name__
"""

VISIBLE_SPACE = {
    "lr": ("log", 1e-4, 1e-1),
    "dropout": ("uniform", 0.0, 0.5),
    "layers": ("int", 1, 3),
    "activation": ("choice", ["relu", "tanh", "elu"]),
}


def draws_of(k, space, rng, n):
    draws = k.run(DRAWS, {"space": space, "rng": rng, "n": n}, ["__draws"])["__draws"]
    assert isinstance(draws, list) and len(draws) == n
    assert all(isinstance(d, dict) and set(d) == set(space) for d in draws), (
        "every configuration is a dict with one value per dimension"
    )
    return draws


def column(draws, name, what):
    values = [d[name] for d in draws]
    assert all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values), (
        f"{what} must be numbers"
    )
    return np.array(values, dtype=np.float64)


@judge.part("test_sample_config", answers=["sample_config"])
def _(k, rng):
    draws = draws_of(k, VISIBLE_SPACE, np.random.default_rng(60), 3000)
    lr = column(draws, "lr", "a 'log' dimension's values")
    assert np.all((lr >= 1e-4) & (lr <= 1e-1)), "the learning rate must stay in [1e-4, 1e-1]"
    per_decade = [np.mean((lr >= 10.0**e) & (lr < 10.0 ** (e + 1))) for e in (-4, -3, -2)]
    assert np.allclose(per_decade, 1 / 3, atol=0.04), (
        f"a log-uniform draw puts a third of the values in each decade, got {np.round(per_decade, 3)}: "
        "draw the logarithm uniformly, then exponentiate"
    )
    drop = column(draws, "dropout", "a 'uniform' dimension's values")
    assert np.all((drop >= 0.0) & (drop <= 0.5)) and abs(drop.mean() - 0.25) < 0.01, "dropout is uniform on [0, 0.5]"
    layers = [d["layers"] for d in draws]
    assert all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in layers), (
        "an 'int' dimension gives integers"
    )
    assert set(layers) == {1, 2, 3}, f"('int', 1, 3) includes both ends: 1, 2 and 3; got {sorted(set(layers))}"
    acts = [d["activation"] for d in draws]
    assert all(isinstance(a, str) for a in acts) and set(acts) == {"relu", "tanh", "elu"}, (
        f"a 'choice' dimension gives one of its values; got {sorted(set(map(repr, acts)))[:5]}"
    )
    assert min(acts.count(a) for a in set(acts)) > 900, (
        "each of the three activations should come up about 1000 times in 3000 draws"
    )
    got = k.run(REPRODUCIBLE, {"space": VISIBLE_SPACE, "seed_a": int(rng.integers(2**31))}, ["__a", "__b"])
    assert got["__a"] == got["__b"], "two Generators in the same state give the same configuration: draw from rng only"

    # hidden: another space, 10,000 draws from the student's own Generator (each check has a
    # margin of over 5 standard deviations for a correct sampler)
    low = int(rng.integers(5, 8))  # wd spans 10^-low .. 10^-(low - 4): four decades
    w0 = int(rng.integers(1, 50))
    a = float(rng.uniform(0.0, 0.5))
    b = a + float(rng.uniform(0.2, 0.5))
    space = {"wd": ("log", 10.0**-low, 10.0 ** -(low - 4)), "width": ("int", w0, w0 + 4),
             "opt": ("choice", ("sgd", "adam")), "m": ("uniform", a, b)}  # fmt: skip
    n = 10_000
    draws = draws_of(k, space, np.random.default_rng(rng.integers(2**63)), n)
    wd = np.log10(column(draws, "wd", "a 'log' dimension's values"))
    assert np.all((wd >= -low - 1e-12) & (wd <= -low + 4 + 1e-12)), "log dimension out of bounds"
    assert abs(np.median(wd) - (-low + 2)) < 0.15, (
        f"the median of log10(wd) should be {-low + 2}, got {np.median(wd):.3f}: a log dimension is uniform "
        "in the logarithm"
    )
    assert abs(np.mean(wd < -low + 1) - 0.25) < 0.03, "a log-uniform draw over 4 decades puts a quarter in the first"
    width = [d["width"] for d in draws]
    assert all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in width), (
        "an 'int' dimension gives integers"
    )
    width = np.array(width, dtype=np.int64)
    counts = np.bincount(width - w0, minlength=5) if width.min() >= w0 else np.zeros(5)
    assert set(width.tolist()) == set(range(w0, w0 + 5)) and counts.min() > 1700, (
        f"width counts {counts}: uniform on {w0}..{w0 + 4}, both ends included"
    )
    opts = [d["opt"] for d in draws]
    assert set(opts) == {"sgd", "adam"} and abs(opts.count("adam") / n - 0.5) < 0.03, "choices equally likely"
    m = column(draws, "m", "a 'uniform' dimension's values")
    assert np.all((m >= a) & (m <= b)) and abs(m.mean() - (a + b) / 2) < 0.01, "uniform dimension wrong"
    edges = k.run(EDGES, outputs=["__single", "__raised"])
    assert edges["__single"] == {"k": 5}, "('int', 5, 5) can only give 5"
    assert edges["__raised"] == "ValueError", "an unknown kind must raise ValueError"


# --- 2. random_search ----------------------------------------------------------------------------

STANDINS = """
def counter_sampler(space, rng):
    counter_sampler.calls += 1
    return {"i": counter_sampler.calls, "u": float(rng.random())}


def objective(config):
    if config["i"] == 3:
        raise FloatingPointError("the loss diverged")
    return -((config["i"] - 5) ** 2)  # best at trial 5


counter_sampler.calls = 0
"""

#: The visible cell's searches, one probe each (in its order, so the first failure explains).
VISIBLE_SEARCHES = {
    "first": STANDINS + """
__result = random_search(objective, {}, 8, np.random.default_rng(61), sampler=counter_sampler)
__calls = counter_sampler.calls
""",
    "again": STANDINS + """
__u1 = random_search(objective, {}, 4, np.random.default_rng(62), counter_sampler)
counter_sampler.calls = 0
__u2 = random_search(objective, {}, 4, np.random.default_rng(62), counter_sampler)
""",
    "allfail": STANDINS + "__result = random_search(lambda c: 1 / 0, {}, 3, np.random.default_rng(63), counter_sampler)\n",
    "none": STANDINS + "__result = random_search(objective, {}, 0, None, sampler=counter_sampler)\n",
}


def search(k, code, outputs):
    try:
        return k.run(code, outputs=outputs)
    except StudentError as err:
        if err.type == "NotImplementedError":
            raise
        raise AssertionError(
            f"your random_search raised {err.type}: {err.message}. A trial whose objective raises is recorded "
            "with the score nan and the search goes on; with no successful trial (or none at all) the result "
            "is (None, nan, trials)"
        ) from None


HIDDEN_SEARCH = """
import math as __math


def __sampler(space, rng):
    return {"x": float(rng.uniform(-2.0, 2.0))}


def __objective(c):
    if c["x"] > 1.5:
        raise RuntimeError("out of memory")
    if c["x"] < -1.5:
        return float("nan")
    return -abs(c["x"] - target)


__space = {"x": ("uniform", -2.0, 2.0)}
__main = random_search(__objective, __space, 50, rngs[0], sampler=__sampler)
__again = random_search(__objective, __space, 50, rngs[1], sampler=__sampler)
__allfail = random_search(lambda c: 1.0 / 0.0, __space, 3, rngs[2], __sampler)
__ties = random_search(lambda c: 1.0, __space, 4, rngs[3], __sampler)
__nan_first = random_search(lambda c: __math.nan if c["x"] < 0 else -c["x"], __space, 30, rngs[4], __sampler)
__other = random_search(lambda c: -c["x"] ** 2, __space, 40, rngs[5], __sampler)
"""


def result(value, what):
    """(best, score, trials) as the search returned them, with trials a list of (config, score)."""
    assert isinstance(value, (tuple, list)) and len(value) == 3, (
        f"random_search must return (best_config, best_score, trials), got {type(value).__name__} {what}"
    )
    best, score, trials = value
    assert isinstance(trials, (list, tuple)) and all(isinstance(t, (tuple, list)) and len(t) == 2 for t in trials), (
        f"trials must be a list of (config, score) pairs {what}"
    )
    assert all(isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool) for _, s in trials), (
        f"every trial's score must be a float (nan for a failed trial) {what}"
    )
    return best, score, [(c, float(s)) for c, s in trials]


def is_nan(value):
    return isinstance(value, (float, np.floating)) and math.isnan(value)


@judge.part("test_random_search", answers=["random_search"])
def _(k, rng):
    got = search(k, VISIBLE_SEARCHES["first"], ["__result", "__calls"])
    best, score, trials = result(got["__result"], "(8 trials)")
    assert got["__calls"] == 8 and len(trials) == 8, "one sampled configuration and one trial per n_trials"
    assert [c.get("i") if isinstance(c, dict) else c for c, _ in trials] == list(range(1, 9)), (
        "trials are listed in the order they ran"
    )
    assert math.isnan(trials[2][1]), "trial 3 raised: it is recorded with the score nan, and the search goes on"
    assert isinstance(best, dict) and best.get("i") == 5 and score == 0.0, (
        f"the best trial is number 5 (score 0, the largest): got {best}, {score}. Higher scores are better"
    )
    got = search(k, VISIBLE_SEARCHES["again"], ["__u1", "__u2"])
    u1 = [c["u"] for c, _ in result(got["__u1"], "(4 trials)")[2]]
    u2 = [c["u"] for c, _ in result(got["__u2"], "(4 trials)")[2]]
    assert u1 == u2, "the same rng state must give the same trials: pass rng to the sampler"
    allfail = result(search(k, VISIBLE_SEARCHES["allfail"], ["__result"])["__result"], "(every trial failing)")
    assert allfail[0] is None and is_nan(allfail[1]), "when every trial fails the result is (None, nan, trials)"
    none = result(search(k, VISIBLE_SEARCHES["none"], ["__result"])["__result"], "(n_trials = 0)")
    assert none[0] is None, "with no trial (n_trials = 0) there is no best configuration: return (None, nan, [])"

    target = float(rng.uniform(-1.0, 1.0))
    seeds = [int(s) for s in rng.integers(2**63, size=5)]
    rngs = [np.random.default_rng(s) for s in (seeds[0], seeds[0], *seeds[1:])]  # 0 and 1: the same state
    try:
        got = k.run(HIDDEN_SEARCH, {"target": target, "rngs": rngs},
                    ["__main", "__again", "__allfail", "__ties", "__nan_first", "__other"])  # fmt: skip
    except StudentError as err:
        raise AssertionError(
            f"your random_search raised {err.type}: {err.message} on other objectives (some trials raise, "
            "some return nan, some tie)"
        ) from None
    best, score, trials = result(got["__main"], "(50 trials)")
    assert len(trials) == 50 and all(isinstance(c, dict) and "x" in c for c, _ in trials), "one trial per n_trials"
    xs = np.array([c["x"] for c, _ in trials], dtype=np.float64)
    scores = np.array([s for _, s in trials])
    failed = (xs > 1.5) | (xs < -1.5)
    assert np.array_equal(np.isnan(scores), failed), (
        "a trial whose objective raises, or returns nan, is recorded with the score nan; the others with "
        "the objective's value"
    )
    assert np.array_equal(scores[~failed], -np.abs(xs[~failed] - target)), "each trial's score is the objective's value"
    i = int(np.nanargmax(scores))
    assert score == scores[i] and best == trials[i][0], "wrong best trial"
    again = result(got["__again"], "(50 trials)")
    assert [c for c, _ in again[2]] == [c for c, _ in trials], "not reproducible from the rng"
    allfail = result(got["__allfail"], "(every trial failing)")
    assert allfail[0] is None, "when every trial fails there is no best configuration: (None, nan, trials)"
    ties = result(got["__ties"], "(equal scores)")
    assert len(ties[2]) == 4 and ties[0] == ties[2][0][0], "with equal scores the earliest trial is the best"
    nan_first = result(got["__nan_first"], "(some scores nan)")
    finite = [s for _, s in nan_first[2] if not math.isnan(s)]
    assert finite and nan_first[1] == max(finite), "nan scores are never the best"
    other = result(got["__other"], "(40 trials)")
    assert isinstance(other[0], dict) and "x" in other[0], "wrong best trial"
    assert other[1] == max(s for _, s in other[2]) and other[0]["x"] ** 2 == -other[1], "wrong best trial"


# --- 3. expected_improvement ---------------------------------------------------------------------

VISIBLE_EI = """
__e1 = expected_improvement(np.array([0.5]), np.array([1.0]), best=0.5)
with np.errstate(all="raise", under="ignore"):
    __e2 = expected_improvement(np.array([0.2, 0.5, 0.8, 0.5]), np.array([0.0, 0.0, 0.0, 2.0]), best=0.5)
__lower = expected_improvement(np.array([0.1, 0.3]), np.array([0.5, 0.5]), best=0.5)
__m1 = expected_improvement(np.array([0.3]), np.array([0.4]), best=0.5, xi=0.1)
__m2 = expected_improvement(np.array([0.4]), np.array([0.4]), best=0.5)
"""

HIDDEN_EI = """
with np.errstate(divide="raise", invalid="raise", over="raise"):
    __got = [expected_improvement(mu, sd, __best, __xi) for __best, __xi in cases]
__scalar = expected_improvement(0.4, 0.3, 0.5)
__far = expected_improvement(np.array([40.0]), np.array([1.0]), best=0.0)
"""


def ei_reference(mu, sd, best, xi):
    g = best - xi - mu
    safe = np.where(sd > 0, sd, 1.0)
    z = g / safe
    return np.where(sd > 0, g * ndtr(z) + safe * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi), np.maximum(g, 0))


def strict_run(k, code, inputs, outputs):
    try:
        return k.run(code, inputs, outputs)
    except StudentError as err:
        if err.type == "FloatingPointError":
            raise AssertionError(
                f"expected_improvement raised a floating-point warning ({err.message}): where std = 0 the "
                "result is max(best - xi - mean, 0), computed without dividing by 0 (np.where evaluates "
                "both branches: divide by a safe std)"
            ) from None
        raise


@judge.part("test_expected_improvement", answers=["expected_improvement"])
def _(k, rng):
    got = strict_run(k, VISIBLE_EI, {}, ["__e1", "__e2", "__lower", "__m1", "__m2"])
    ei = floats(got["__e1"], (1,), "EI")
    assert np.allclose(ei, 1 / math.sqrt(2 * math.pi), rtol=1e-12, atol=0), (
        f"with mean = best and std = 1, g = 0 and EI = phi(0) = 0.3989; got {ei}"
    )
    ei = floats(got["__e2"], (4,), "EI")
    assert np.allclose(ei[:3], [0.3, 0.0, 0.0], rtol=1e-12, atol=1e-15), (
        f"where std = 0 the loss is known: EI = max(best - mean, 0) = [0.3, 0, 0]; got {ei[:3]}"
    )
    assert ei[3] > ei[1] and np.allclose(ei[3], 2 / math.sqrt(2 * math.pi)), "more uncertainty, more expected improvement"
    assert np.all(ei >= 0), "an expectation of max(., 0) is never negative"
    lower = floats(got["__lower"], (2,), "EI")
    assert lower[0] > lower[1] > 0, "the loss is minimized: a lower predicted mean gives a larger EI"
    assert np.allclose(floats(got["__m1"], (1,), "EI"), floats(got["__m2"], (1,), "EI")), (
        "xi is subtracted from best: EI(mean 0.3, xi 0.1) = EI(mean 0.4, xi 0)"
    )

    mu, sd = rng.normal(0, 1, (6, 7)), rng.uniform(0, 2, (6, 7))
    sd[0, :3] = 0.0
    cases = [(0.0, 0.0), (-0.7, 0.05), (1.3, 0.5), (float(rng.normal(0, 1)), float(rng.uniform(0, 0.3)))]
    got = strict_run(k, HIDDEN_EI, {"mu": mu, "sd": sd, "cases": cases}, ["__got", "__scalar", "__far"])
    assert isinstance(got["__got"], list) and len(got["__got"]) == len(cases)
    for (best, xi), out in zip(cases, got["__got"]):
        out = floats(out, mu.shape, "EI")
        assert np.allclose(out, ei_reference(mu, sd, best, xi), rtol=1e-9, atol=1e-12), (
            f"wrong EI (best {best:.3f}, xi {xi:.3f})"
        )
    f = rng.normal(0.4, 0.3, 400_000)
    mc = float(np.mean(np.maximum(0.5 - f, 0.0)))
    scalar = np.asarray(got["__scalar"], dtype=np.float64)
    assert scalar.size == 1 and abs(float(np.squeeze(scalar)) - mc) < 2e-3, "EI is E[max(best - f, 0)]"
    far = floats(got["__far"], (1,), "EI")
    assert np.all(far >= 0) and far[0] < 1e-300, "EI is never negative"


# --- 4-5. residual block -------------------------------------------------------------------------

FORWARD = "__out, __cache = residual_forward(x, W1, b1, W2, b2)"

VISIBLE_FORWARD = """
__out, __cache = residual_forward(x, W1, b1, W2, b2)
__identity = residual_forward(rx, rW1, rb1, np.zeros((4, 3)), np.zeros(3))[0]
__doubled = residual_forward(np.ones((2, 3)), np.eye(3), np.zeros(3), np.eye(3), np.zeros(3))[0]
"""


def block(rng, n, h, m):
    x = rng.normal(size=(n, h))
    p = {"W1": rng.normal(size=(h, m)), "b1": rng.normal(size=m), "W2": rng.normal(size=(m, h)),
         "b2": rng.normal(size=h)}  # fmt: skip
    return x, p


@judge.part("test_residual_forward", answers=["residual_forward"])
def _(k, rng):
    visible = {"x": np.array([[1.0, -2.0]]), "W1": np.array([[1.0, 0.5], [-1.0, 2.0]]), "b1": np.array([0.0, -1.0]),
               "W2": np.array([[0.5, 0.0], [1.0, -1.0]]), "b2": np.array([0.25, 0.25])}  # fmt: skip
    seeded = np.random.default_rng(64)
    rx = seeded.normal(size=(5, 3))
    rW1, rb1 = seeded.normal(size=(3, 4)), seeded.normal(size=4)
    got = k.run(VISIBLE_FORWARD, {**visible, "rx": rx, "rW1": rW1, "rb1": rb1}, ["__out", "__cache", "__identity",
                                                                                "__doubled"])  # fmt: skip
    out = floats(got["__out"], (1, 2), "out")
    cache = got["__cache"]
    assert isinstance(cache, tuple) and len(cache) == 4, "the cache is (x, z, W1, W2)"
    assert np.allclose(floats(cache[1], (1, 2), "z"), [[1.0, -0.5]], rtol=1e-12, atol=0), (
        f"z = relu(x) @ W1 + b1 = [1, 0] @ W1 + b1 = [[1, -0.5]]; got {cache[1]}: apply relu to x first"
    )
    assert np.allclose(out, [[1.75, -1.75]], rtol=1e-12, atol=0), (
        f"F(x) = relu(z) @ W2 + b2 = [0.75, 0.25] and out = x + F(x) = [[1.75, -1.75]]; got {out}. "
        "Add x itself (the skip), and apply nothing after the sum"
    )
    identity = floats(got["__identity"], rx.shape, "out")
    assert np.allclose(identity, rx, rtol=0, atol=0), "with W2 = 0 and b2 = 0 the block is the identity"
    assert np.allclose(floats(got["__doubled"], (2, 3), "out"), 2.0, rtol=0, atol=0), (
        "with x = 1 and identity weights, F(x) = 1 and out = x + F(x) = 2"
    )

    for n, h, m in ((7, 5, 3), (1, 4, 9), (10, 6, 6), (int(rng.integers(2, 12)), int(rng.integers(2, 8)),
                                                        int(rng.integers(2, 8)))):  # fmt: skip
        x, p = block(rng, n, h, m)
        ref, ref_cache = reference_forward(x, p, "relu")
        got = k.run(FORWARD, {"x": x, **p}, ["__out", "__cache", "x"])
        assert same(got["x"], x), "residual_forward must not modify x"
        out = floats(got["__out"], (n, h), f"out for shapes {(n, h, m)}")
        assert np.allclose(out, ref, rtol=1e-12, atol=1e-12), f"wrong output for {(n, h, m)}"
        cache = got["__cache"]
        assert isinstance(cache, tuple) and len(cache) == 4, "the cache is (x, z, W1, W2)"
        z = floats(cache[1], (n, m), "z in the cache")
        assert np.allclose(z, ref_cache[2][0], rtol=1e-12, atol=1e-12), "wrong z in the cache"
        assert same(cache[2], p["W1"]), "the cache holds W1"
        assert same(cache[0], x) and same(cache[3], p["W2"]), "the cache holds x and W2"


BACKWARD = "__grads = residual_backward(dout, (x, z, W1, W2))"

VISIBLE_BACKWARD = """
__grads = residual_backward(dout, (x, z, W1, W2))
__zero = residual_backward(dout, (x, np.array([[-1.0, -1.0]]), W1, W2))
__shapes = residual_backward(np.ones((3, 2)), (np.ones((3, 2)), np.ones((3, 4)), np.ones((2, 4)), np.ones((4, 2))))
"""


def five(value, what):
    assert isinstance(value, tuple) and len(value) == 5, f"return the tuple (dx, dW1, db1, dW2, db2) {what}"
    return value


@judge.part("test_residual_backward", answers=["residual_backward"])
def _(k, rng):
    visible = {"x": np.array([[1.0, -2.0]]), "W1": np.array([[1.0, 0.5], [-1.0, 2.0]]),
               "W2": np.array([[0.5, 0.0], [1.0, -1.0]]), "z": np.array([[1.0, -0.5]]),
               "dout": np.array([[1.0, 2.0]])}  # fmt: skip
    got = k.run(VISIBLE_BACKWARD, visible, ["__grads", "__zero", "__shapes"])
    shapes = [(1, 2), (2, 2), (2,), (2, 2), (2,)]
    dx, dW1, db1, dW2, db2 = (floats(g, s, n) for g, s, n in zip(five(got["__grads"], ""), shapes,
                                                                  ("dx", "dW1", "db1", "dW2", "db2")))  # fmt: skip
    assert np.allclose(dW2, [[1.0, 2.0], [0.0, 0.0]]) and np.allclose(db2, [1.0, 2.0]), (
        f"dW2 = relu(z)^T dout = [[1, 2], [0, 0]] and db2 = [1, 2]; got {dW2}, {db2}"
    )
    assert np.allclose(dW1, [[0.5, 0.0], [0.0, 0.0]]) and np.allclose(db1, [0.5, 0.0]), (
        f"dz = (dout W2^T) * [z > 0] = [0.5, 0]; dW1 = relu(x)^T dz = [[0.5, 0], [0, 0]], db1 = [0.5, 0]; "
        f"got {dW1}, {db1}"
    )
    assert np.allclose(dx, [[1.5, 2.0]], rtol=1e-12, atol=0), (
        f"dx = dout + (dz W1^T) * [x > 0] = [1, 2] + [0.5, 0] = [[1.5, 2]]; got {dx}. "
        "Did you forget the skip's gradient, dout itself?"
    )
    zero = floats(five(got["__zero"], "")[0], (1, 2), "dx")
    assert np.allclose(zero, visible["dout"]), (
        "when F is switched off (z <= 0) the gradient passes through the skip unchanged"
    )
    got_shapes = [np.shape(g) for g in five(got["__shapes"], "")]
    assert got_shapes == [(3, 2), (2, 4), (4,), (4, 2), (2,)], (
        f"every gradient has the shape of its variable, got {got_shapes}"
    )

    for n, h, m in ((6, 4, 3), (1, 5, 7), (9, 3, 3), (int(rng.integers(2, 12)), int(rng.integers(2, 8)),
                                                      int(rng.integers(2, 8)))):  # fmt: skip
        x, p = block(rng, n, h, m)
        dout = rng.normal(size=(n, h))
        _, ref_cache = reference_forward(x, p, "relu")
        ref_dx, ref = reference_backward(dout, ref_cache)
        z = ref_cache[2][0]
        got = k.run(BACKWARD, {"dout": dout, "x": x, "z": z, "W1": p["W1"], "W2": p["W2"]}, ["__grads", "dout"])
        assert same(got["dout"], dout), "residual_backward must not modify dout"
        grads = five(got["__grads"], f"for shapes {(n, h, m)}")
        for name, g, r in zip(["dx", "dW1", "db1", "dW2", "db2"], grads,
                              [ref_dx, ref["W1"], ref["b1"], ref["W2"], ref["b2"]]):  # fmt: skip
            g = floats(g, np.shape(r), name)
            assert np.allclose(g, r, rtol=1e-10, atol=1e-12), f"wrong {name} for shapes {(n, h, m)}"
