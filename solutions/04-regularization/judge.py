"""Judge of assignment 04 (regularization): every graded part, decided outside the student's kernel.

Each part checks the visible examples of its test cell and hidden inputs drawn from ``rng`` (seeded
by the student's id: every student gets other numbers), with the fixed edge cases of the old hidden
tests planted among them. Reference values are computed here (the early-stopping rule by
``course_lib.training.EarlyStopping``, as the old hidden test did); they never reach the kernel.
Dropout is random: its forward part checks the statistics of the mask (fraction dropped within
5 standard errors, independence of the entries) and that the mask comes from the ``rng`` it is
given, never a particular draw. See ``course_lib/grading/judge.py`` for how a part talks to the
kernel.
"""

import numpy as np

from course_lib.grading.judge import Judge, StudentError
from course_lib.training import EarlyStopping

judge = Judge(
    "04-regularization",
    # What the assignment asks students to write: dropout (layers), the L2 penalty and max-norm
    # (regularization), the early-stopping rule (training), the ensemble's average of softmax
    # probabilities (ensembles, and the stable softmax of activations and losses). The MLP and
    # fit go with them, so the demonstration that trains with them is not run when grading.
    forbidden=[
        "course_lib.numpy_impl.layers",
        "course_lib.numpy_impl.regularization",
        "course_lib.training",
        "course_lib.numpy_impl.ensembles",
        "course_lib.numpy_impl.activations",
        "course_lib.numpy_impl.losses",
    ],
    not_run=["demo"],
)


def run(k, where, code, inputs, outputs, hint=None):
    """``k.run`` of probe code that calls the student's ``where``: what it raises names ``where``;
    with ``hint``, a floating-point error (the code runs under ``np.errstate(... = 'raise')``)
    fails the part with that hint."""
    try:
        return k.run(code, inputs, outputs)
    except StudentError as err:
        if hint and err.type == "FloatingPointError":
            raise AssertionError(f"{where} raised a floating-point error ({err.message}): {hint}") from None
        err.where = err.where or where
        raise


# --- 1. inverted dropout, forward (training mode) --------------------------------------------------

FORWARD = "__out, __cache = dropout_forward(x, p, g, train=True)"  # x comes back too, to be compared
ALL_DROPPED = """
with np.errstate(all="raise", under="ignore"):
    __out, __cache = dropout_forward(x, 1.0, g)
"""
SAME_STATE = """
__a = dropout_forward(x, 0.5, g1)[0]
np.random.seed(123)  # the global state must not matter
__b = dropout_forward(x, 0.5, g2)[0]
"""
TWO_CALLS = """
__first = dropout_forward(x, 0.5, g)[0]
__second = dropout_forward(x, 0.5, g)[0]
"""


def forward(k, x, p, g):
    got = run(k, "dropout_forward(...)", FORWARD, {"x": x, "p": p, "g": g}, ["__out", "__cache", "x"])
    assert np.array_equal(got["x"], x), "dropout_forward modified x in place: compute a new array"
    out, cache = got["__out"], got["__cache"]
    assert np.shape(out) == x.shape, f"out must have the shape of x, {x.shape}, got {np.shape(out)}"
    assert isinstance(cache, tuple) and len(cache) == 2, "the training cache is the pair (keep, p)"
    keep, p_cached = cache
    assert isinstance(keep, np.ndarray) and keep.shape == x.shape and keep.dtype == bool, (
        f"keep is a boolean array shaped like x, {x.shape} (any number of dimensions)"
    )
    assert np.ndim(p_cached) == 0 and bool(p_cached == p), f"the cache must hold p = {p}, got {p_cached!r}"
    return np.asarray(out, dtype=float), keep


@judge.part("test_dropout_forward", answers=["dropout_forward"])
def _(k, rng):
    # the visible examples
    x = np.full((1000, 200), 3.0)
    out, keep = forward(k, x, 0.25, np.random.default_rng(40))
    assert np.array_equal(keep, out != 0), "keep must be True exactly where the output was kept (non-zero here)"
    dropped = float(np.mean(out == 0))
    assert abs(dropped - 0.25) < 0.005, (
        f"{dropped:.3f} of the entries were dropped, but p = 0.25 is the probability of *dropping*; "
        "did you keep with probability p?"
    )
    assert np.allclose(out[out != 0], 4.0, rtol=1e-12, atol=0), (
        f"kept entries of 3.0 must become 3 / (1 - 0.25) = 4.0, got {np.unique(out[out != 0])[:5]}: "
        "inverted dropout divides the kept units by 1 - p"
    )
    assert abs(out.mean() - 3.0) < 0.02, f"the mean output must stay 3 (E[out] = x), got {out.mean():.4f}"
    hint = "with p = 1 return zeros without dividing by 1 - p = 0"
    got = run(k, "dropout_forward(x, 1.0, rng)", ALL_DROPPED, {"x": np.ones((3, 4)), "g": np.random.default_rng(40)},
                ["__out"], hint)  # fmt: skip
    assert np.array_equal(got["__out"], np.zeros((3, 4))), "p = 1 drops every entry: the output is all zeros"
    for seed in (7, int(rng.integers(1, 2**31))):
        twins = {"g1": np.random.default_rng(seed), "g2": np.random.default_rng(seed)}
        got = run(k, "dropout_forward(...)", SAME_STATE, {"x": x[:50, :40], **twins}, ["__a", "__b"])
        assert np.array_equal(got["__a"], got["__b"]), (
            "two Generators in the same state must give the same mask: draw it from rng, not from np.random"
        )
    # hidden: 3-D inputs without zeros, small, middle and large p
    for p in (rng.uniform(0.05, 0.15), rng.uniform(0.55, 0.65), rng.uniform(0.85, 0.95)):
        p = float(p)
        x = rng.normal(size=(20, 30, 40)) + 5.0  # 3-D, no zeros
        out, keep = forward(k, x, p, np.random.default_rng(int(rng.integers(2**31))))
        assert np.array_equal(keep, out != 0), "keep must mark exactly the kept entries"
        assert abs(np.mean(~keep) - p) < 5 * np.sqrt(p * (1 - p) / x.size), (
            f"wrong fraction dropped for p = {p:.3f}: {np.mean(~keep):.4f} (p is the probability of dropping)"
        )
        assert np.allclose(out[keep], x[keep] / (1 - p), rtol=1e-12, atol=0), (
            f"kept entries must be x / (1 - p), p = {p:.3f}"
        )
        assert np.all(out[~keep] == 0), "dropped entries must be exactly 0"
    # independent per entry: with p = 0.5 and 50 units, a whole row is almost never kept
    _, keep = forward(k, np.ones((2000, 50)), 0.5, np.random.default_rng(int(rng.integers(2**31))))
    assert np.mean(keep.all(axis=1)) < 0.01 and np.mean(~keep.any(axis=1)) < 0.01, (
        "draw one independent mask entry per element, not one per row or per column"
    )
    i, j = rng.choice(50, size=2, replace=False)
    assert abs(np.mean(keep[:, i] & keep[:, j]) - 0.25) < 0.05, "mask entries must be independent"
    # p = 0 and p = 1
    x = rng.normal(size=(6, 7))
    out0, keep0 = forward(k, x, 0.0, np.random.default_rng(int(rng.integers(2**31))))
    assert np.array_equal(out0, x) and keep0.all(), "p = 0 keeps everything and scales by 1"
    got = run(k, "dropout_forward(x, 1.0, rng)", ALL_DROPPED,
              {"x": x, "g": np.random.default_rng(int(rng.integers(2**31)))}, ["__out", "__cache"], hint)  # fmt: skip
    cache = got["__cache"]
    assert np.array_equal(got["__out"], np.zeros_like(x)), "p = 1 drops everything: the output is all zeros"
    assert isinstance(cache, tuple) and len(cache) == 2 and not np.asarray(cache[0]).any(), (
        "p = 1 drops everything, and keep is all False"
    )
    got = run(k, "dropout_forward(...)", TWO_CALLS,
              {"x": np.ones((20, 20)), "g": np.random.default_rng(int(rng.integers(2**31)))}, ["__first", "__second"])  # fmt: skip
    assert not np.array_equal(got["__first"], got["__second"]), "each call draws a new mask from rng"


# --- 2. inverted dropout, backward -------------------------------------------------------------------

BACKWARD = """
__dx = dropout_backward(dout, (keep, p))
__again = dropout_backward(dout, (keep, p))
"""  # dout comes back too, for the judge to compare
BACKWARD_ALL_DROPPED = """
with np.errstate(all="raise", under="ignore"):
    __dx = dropout_backward(dout, (keep, 1.0))
"""


@judge.part("test_dropout_backward", answers=["dropout_backward"])
def _(k, rng):
    keep = np.array([[True, False, True], [False, True, True]])
    dout = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    dx = k.call("dropout_backward", dout, (keep, 0.4))
    expected = np.array([[1.0, 0.0, 3.0], [0.0, 5.0, 6.0]]) / 0.6
    assert np.shape(dx) == dout.shape, f"dx must have the shape of dout, {dout.shape}, got {np.shape(dx)}"
    assert np.allclose(dx, expected, rtol=1e-12, atol=0), (
        f"dx should be {expected.round(4)}, got {np.round(dx, 4)}: multiply by the forward mask and "
        "divide by 1 - p, exactly as the forward pass did"
    )
    assert np.array_equal(k.call("dropout_backward", dout, None), dout), (
        "after an evaluation pass (cache None) the gradient passes through unchanged"
    )
    for p in (0.1, 0.5, 0.75, float(rng.uniform(0.2, 0.9))):
        shape = tuple(int(n) for n in rng.integers(2, 8, size=3))
        keep, dout = rng.random(shape) >= p, rng.normal(size=shape)
        got = run(k, "dropout_backward(...)", BACKWARD, {"dout": dout, "keep": keep, "p": p}, ["__dx", "dout", "__again"])
        assert np.array_equal(got["dout"], dout), "dropout_backward must not modify dout"
        dx = got["__dx"]
        assert np.shape(dx) == shape, f"dx must have the shape of dout, {shape}, got {np.shape(dx)}"
        assert np.allclose(dx, dout * keep / (1 - p), rtol=1e-12, atol=0), (
            f"wrong gradient for p = {p:.3f}: use the mask from the cache, not a new one"
        )
        assert np.array_equal(got["__again"], dx), (
            "the same cache must always give the same gradient: the mask comes from the forward pass"
        )
    got = run(k, "dropout_backward(dout, (keep, 1.0))", BACKWARD_ALL_DROPPED,
              {"dout": rng.normal(size=(3, 3)), "keep": np.zeros((3, 3), dtype=bool)}, ["__dx"],
              "with p = 1 nothing was kept: return zeros")  # fmt: skip
    assert np.array_equal(got["__dx"], np.zeros((3, 3))), "with p = 1 nothing was kept: the gradient is all zeros"


# --- 3. evaluation mode ------------------------------------------------------------------------------

EVAL = "__out, __cache = dropout_forward(x, p, g, train=False)"


def evaluate(k, x, p, seed):
    """dropout_forward(x, p, Generator(seed) or None, train=False); True when no number was drawn."""
    g = None if seed is None else np.random.default_rng(seed)
    got = run(k, "dropout_forward(..., train=False)", EVAL + "\n__g = g", {"x": x, "p": p, "g": g}, ["__out", "__cache", "__g"])
    untouched = seed is None or (
        isinstance(got["__g"], np.random.Generator)
        and got["__g"].bit_generator.state == np.random.default_rng(seed).bit_generator.state
    )
    return got["__out"], got["__cache"], untouched


@judge.part("test_dropout_eval", answers=["dropout_forward"])
def _(k, rng):
    x = np.array([[1.5, -2.0, 0.25], [3.0, 0.0, -1.0]])
    out, cache, untouched = evaluate(k, x, 0.5, 60)
    assert cache is None, f"evaluation mode returns no cache (None), got {type(cache).__name__}"
    assert untouched, "evaluation mode must not draw random numbers: there is no mask"
    assert np.array_equal(out, x), (
        f"evaluation mode must return x unchanged, got {out}. No mask, and no scaling by 1 - p: inverted "
        "dropout already divided by 1 - p during training"
    )
    x = rng.normal(size=(4, 5, 6))
    for p in (0.0, 0.2, float(rng.uniform(0.3, 0.8)), 0.9, 1.0):
        out, cache, untouched = evaluate(k, x, p, int(rng.integers(2**31)))
        assert cache is None and np.array_equal(out, x) and np.shape(out) == x.shape, (
            f"evaluation with p = {p:.3f} must return (x, None): no mask, and no scaling by 1 - p"
        )
        assert untouched, "evaluation draws no random numbers"
    out, cache, _ = evaluate(k, x, 0.5, None)
    assert cache is None and np.array_equal(out, x), "evaluation mode must work with rng=None"


# --- 4. L2 penalty and gradient ----------------------------------------------------------------------

L2 = """
__penalty = l2_penalty(params, lam)
__grads = l2_grads(params, lam)
"""  # params come back too, for the judge to compare
L2_NUMERIC = """
__plus, __minus = {}, {}
for __key, __value in params.items():  # central differences of the student's own l2_penalty
    __p, __m = np.zeros(__value.shape), np.zeros(__value.shape)
    for __i in np.ndindex(__value.shape):
        __old = __value[__i]
        __value[__i] = __old + h
        __p[__i] = float(l2_penalty(params, lam))
        __value[__i] = __old - h
        __m[__i] = float(l2_penalty(params, lam))
        __value[__i] = __old
    __plus[__key], __minus[__key] = __p, __m
__zero_penalty = l2_penalty(params, 0.0)
__zero_grads = l2_grads(params, 0.0)
"""


def l2_reference(params, lam):
    return 0.5 * lam * sum(float(np.sum(v**2)) for key, v in params.items() if key.startswith("W"))


@judge.part("test_l2", answers=["l2_penalty", "l2_grads"])
def _(k, rng):
    params = {"W1": np.array([[1.0, -2.0], [0.5, 0.0]]), "b1": np.array([3.0, 4.0]), "W2": np.array([[2.0], [-1.0]])}
    penalty = k.call("l2_penalty", params, 0.1)
    assert isinstance(penalty, float), f"l2_penalty must return a Python float, got {type(penalty).__name__}"
    assert np.isclose(penalty, 0.05 * (5.25 + 5.0), rtol=1e-12, atol=0), (
        f"l2_penalty should be (0.1 / 2) * (1 + 4 + 0.25 + 0 + 4 + 1) = 0.5125, got {penalty}: remember "
        "the 1/2, and leave the bias b1 out"
    )
    grads = k.call("l2_grads", params, 0.1)
    assert isinstance(grads, dict) and set(grads) == set(params), "l2_grads returns a dict with the keys of params"
    assert np.allclose(grads["W1"], 0.1 * params["W1"], rtol=1e-12, atol=0), (
        f"dW1 should be lam * W1 = {0.1 * params['W1']}, got {grads['W1']}: the derivative of (lam/2) w^2 is lam w"
    )
    assert np.allclose(grads["W2"], 0.1 * params["W2"], rtol=1e-12, atol=0), "dW2 should be lam * W2"
    assert np.shape(grads["b1"]) == (2,) and np.all(grads["b1"] == 0), "biases are not penalized: their gradient is 0"
    # hidden: a 3-layer network of random sizes
    sizes = [int(n) for n in rng.integers(2, 7, size=4)]
    params = {}
    for layer in range(1, 4):
        params[f"W{layer}"] = rng.normal(size=(sizes[layer - 1], sizes[layer]))
        params[f"b{layer}"] = rng.normal(size=sizes[layer])
    lam, h = float(rng.uniform(0.01, 0.1)), 1e-5
    got = run(k, "l2_penalty or l2_grads", L2, {"params": params, "lam": lam}, ["__penalty", "__grads", "params"])
    penalty, grads, after = got["__penalty"], got["__grads"], got["params"]
    assert isinstance(penalty, float), f"l2_penalty must return a Python float, got {type(penalty).__name__}"
    assert np.isclose(penalty, l2_reference(params, lam), rtol=1e-12, atol=0), (
        "l2_penalty is wrong on a 3-layer net: (lam / 2) times the sum of the squares of W1, W2 and W3 (no biases)"
    )
    assert isinstance(after, dict) and set(after) == set(params) and all(
        np.array_equal(after[key], params[key]) for key in params
    ), "l2_penalty and l2_grads must not modify params"
    got = run(k, "l2_penalty or l2_grads", L2_NUMERIC, {"params": params, "lam": lam, "h": h},
              ["__plus", "__minus", "__zero_penalty", "__zero_grads"])  # fmt: skip
    assert isinstance(grads, dict) and set(grads) == set(params), "l2_grads returns a dict with the keys of params"
    for key, value in params.items():
        assert np.shape(grads[key]) == value.shape, (
            f"d penalty / d {key} must have the shape of {key}, {value.shape}, got {np.shape(grads[key])}"
        )
        numeric = (got["__plus"][key] - got["__minus"][key]) / (2 * h)
        assert np.allclose(grads[key], numeric, rtol=1e-6, atol=1e-9), (
            f"d penalty / d {key} disagrees with central differences of your l2_penalty"
        )
        expected = lam * value if key.startswith("W") else np.zeros_like(value)
        assert np.allclose(grads[key], expected, rtol=1e-12, atol=0), (
            f"d penalty / d {key} should be {'lam * ' + key if key.startswith('W') else 'zeros (a bias)'}"
        )
    zero_grads = got["__zero_grads"]
    assert got["__zero_penalty"] == 0.0 and isinstance(zero_grads, dict) and all(
        np.all(np.asarray(g) == 0) for g in zero_grads.values()
    ), "lam = 0 means no penalty"


# --- 5. max-norm -------------------------------------------------------------------------------------

MAX_NORM = "__out = max_norm(W, c)"  # W comes back too, for the judge to compare


def max_norm_of(k, W, c):
    got = run(k, "max_norm(...)", MAX_NORM, {"W": W, "c": c}, ["__out", "W"])
    assert np.array_equal(got["W"], W), "max_norm modified W in place: return a new array"
    out = got["__out"]
    assert np.shape(out) == W.shape, f"max_norm must keep the shape {W.shape}, got {np.shape(out)}"
    return np.asarray(out, dtype=float)


@judge.part("test_max_norm", answers=["max_norm"])
def _(k, rng):
    W = np.array([[3.0, 0.1, 6.0], [4.0, 0.2, 8.0]])  # column norms 5, 0.224, 10
    out = max_norm_of(k, W, 5.0)
    assert np.array_equal(out[:, :2], W[:, :2]), "columns whose norm is at most c = 5 must stay exactly as they are"
    assert np.allclose(out[:, 2], [3.0, 4.0], rtol=1e-12, atol=0), (
        f"the column (6, 8), norm 10, must be scaled to norm 5: (3, 4); got {out[:, 2]}. "
        "The constraint is per column (a unit's incoming weights), not per row"
    )
    # hidden: some columns short, some long, one zero
    scale = rng.uniform(0.05, 0.6, size=12)
    scale[:2] = [0.05, 0.6]  # one column surely short, one surely long
    W = rng.normal(size=(30, 12)) * scale
    W[:, int(rng.integers(2, 12))] = 0.0
    W = W[:, rng.permutation(12)]
    c = float(rng.uniform(1.2, 1.8))
    norms = np.linalg.norm(W, axis=0)
    assert (norms > c).any() and (norms <= c).any(), "the judge's own inputs need short and long columns"
    out = max_norm_of(k, W, c)
    new_norms = np.linalg.norm(out, axis=0)
    assert np.all(np.isfinite(out)), "a zero column must stay zero (no division by zero)"
    assert np.all(new_norms <= c * (1 + 1e-12)), "every column of the result must have norm <= c"
    assert np.array_equal(out[:, norms <= c], W[:, norms <= c]), "short columns must be left exactly as they are"
    assert np.allclose(out[:, norms > c], W[:, norms > c] * (c / norms[norms > c]), rtol=1e-12, atol=0), (
        "long columns must keep their direction and get norm exactly c"
    )
    wide = np.full((1, 50), 0.5)  # one row of norm 3.5; every column has norm 0.5
    assert np.array_equal(max_norm_of(k, wide, 1.0), wide), "bound the columns (units), not the rows or the whole matrix"


# --- 6. early stopping -------------------------------------------------------------------------------

EARLY = "__results = [early_stopping(curve, patience, min_delta) for curve, patience, min_delta in cases]"


def reference_rule(curve, patience, min_delta):
    """The course's EarlyStopping callback replayed on a validation curve: (best_epoch, stop_epoch)."""
    cb = EarlyStopping("val_loss", patience=patience, min_delta=min_delta, restore_best=False)
    cb.on_train_begin(None)
    for epoch, loss in enumerate(curve, start=1):
        if cb.on_epoch_end(epoch, {"val_loss": loss}, None):
            return cb.best_epoch, epoch
    return cb.best_epoch, None


@judge.part("test_early_stopping", answers=["early_stopping"])
def _(k, rng):
    curve = [1.0, 0.8, 0.7, 0.72, 0.69, 0.71, 0.73, 0.74, 0.75, 0.6]
    result = k.call("early_stopping", curve, patience=3)
    assert isinstance(result, tuple) and len(result) == 2, "return the pair (best_epoch, stop_epoch)"
    assert result == (5, 8), (
        f"with patience 3 the best epoch is 5 (loss 0.69) and epochs 6, 7, 8 do not improve on it, so "
        f"training stops at the end of epoch 8; got {result}. Epochs are numbered from 1"
    )
    assert k.call("early_stopping", curve, patience=5) == (10, None), (
        "with patience 5 the rule never fires (epoch 10 improves): best epoch 10, stop_epoch None"
    )
    assert k.call("early_stopping", curve, patience=3, min_delta=0.02) == (3, 6), (
        "with min_delta = 0.02, 0.69 is not an improvement on 0.70 (it is only 0.01 better): best 3, stop 6"
    )
    planted = [
        (([0.5, 0.5, 0.5, 0.4], 2, 0.0), "an equal loss is not an improvement"),
        (([0.9, 0.8, 0.7], 1, 0.0), "a run that always improves never stops"),
        (([0.9, float("nan"), 0.95, 0.5], 2, 0.0), "nan never improves"),
        (([0.3, 0.4], 1, 0.0), "patience 1 stops at the first epoch without improvement"),
        (([0.9, 0.8, 0.81, 0.82], 2, 0.05), "min_delta: an epoch improves only when it beats the best loss by more than min_delta"),
    ]  # fmt: skip
    cases, messages = [case for case, _ in planted], [message for _, message in planted]
    for _ in range(200):
        n = int(rng.integers(1, 30))
        curve = [float(v) for v in np.round(1.0 / np.arange(1, n + 1) + rng.normal(0, 0.08, n), 2)]
        patience, min_delta = int(rng.integers(1, 6)), float(rng.choice([0.0, 0.005, 0.025]))  # no borderline
        cases.append((curve, patience, min_delta))
        messages.append(None)
    results = run(k, "early_stopping(...)", EARLY, {"cases": cases}, ["__results"])["__results"]
    assert isinstance(results, list) and len(results) == len(cases), "early_stopping must return a value"
    for (curve, patience, min_delta), message, got in zip(cases, messages, results, strict=True):
        expected = reference_rule(curve, patience, min_delta)
        assert isinstance(got, tuple) and len(got) == 2, f"return the pair (best_epoch, stop_epoch), got {got!r}"
        detail = f"early_stopping({curve}, patience={patience}, min_delta={min_delta}) should be {expected}, got {got}"
        assert got == expected, f"{message}: {detail}" if message else detail


# --- 7. the ensemble's prediction --------------------------------------------------------------------

ENSEMBLE_STRICT = """
with np.errstate(over="raise", invalid="raise"):
    __pred = ensemble_predict(z)
"""


def softmax_average(z):
    z = z - z.max(axis=2, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=2, keepdims=True)).mean(axis=0).argmax(axis=1)


def predictions(k, z, what):
    pred = k.call("ensemble_predict", z)
    assert np.shape(pred) == z.shape[1:2], f"one class id per example: shape (N,) = ({z.shape[1]},), got {np.shape(pred)}"
    assert np.issubdtype(np.asarray(pred).dtype, np.integer), "return integer class ids (argmax), not probabilities"
    assert np.array_equal(pred, softmax_average(z)), what
    return pred


@judge.part("test_ensemble_predict", answers=["ensemble_predict"])
def _(k, rng):
    logits = np.log(np.array([
        [[0.40, 0.35, 0.25], [0.9993, 0.00035, 0.00035]],
        [[0.40, 0.35, 0.25], [0.0474, 0.9052, 0.0474]],
        [[0.01, 0.94, 0.05], [0.0474, 0.9052, 0.0474]],
    ]))  # fmt: skip
    logits[0, 1] = [8.0, 0.0, 0.0]
    pred = k.call("ensemble_predict", logits)
    assert np.shape(pred) == (2,), f"one class id per example: shape (N,) = (2,), got {np.shape(pred)}"
    assert np.issubdtype(np.asarray(pred).dtype, np.integer), "return integer class ids (argmax), not probabilities"
    assert pred[0] == 1, (
        "example 0: the average probability of class 1 is (0.35 + 0.35 + 0.94) / 3 = 0.55 > 0.27 for class 0, "
        "even though two of three networks vote for class 0: average probabilities, do not count votes"
    )
    assert pred[1] == 1, (
        "example 1: averaging probabilities gives class 1; averaging logits would let the first network's "
        "logit of 8 decide (class 0): take the softmax of each network first"
    )
    K, C = int(rng.integers(4, 7)), int(rng.integers(6, 11))
    z = rng.normal(0, 2.0, size=(K, 200, C))
    votes = z.argmax(axis=2)
    assert not np.array_equal(softmax_average(z), np.array([np.bincount(v, minlength=C).argmax() for v in votes.T])), (
        "the judge's own inputs must tell averaging from voting"
    )
    predictions(k, z, f"wrong predictions for {K} random networks: average the softmax probabilities, then argmax")
    z1 = rng.normal(size=(1, 7, 4))
    predictions(k, z1, "an ensemble of one network is that network")
    big = rng.normal(0, 1.0, size=(3, 50, 6)) * 400.0  # logits in the hundreds: exp overflows without the shift
    got = run(k, "ensemble_predict on logits in the hundreds", ENSEMBLE_STRICT, {"z": big}, ["__pred"],
              "the softmax overflowed: subtract each row's maximum first")  # fmt: skip
    assert np.shape(got["__pred"]) == (50,) and np.array_equal(got["__pred"], softmax_average(big)), (
        "wrong predictions for large logits"
    )
