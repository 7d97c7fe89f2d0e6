"""Judge of assignment 07 (diagnosing a network that will not train): every graded part, decided
outside the student's kernel.

Each part checks the visible examples of its test cell, then hidden inputs drawn from ``rng``
(seeded by the student's id: every student gets other numbers). The references: PyTorch's
``F.layer_norm`` and its autograd in float64 for layer norm; the judge's own code for gradient
clipping (PyTorch's formula, ``torch.nn.utils.clip_grad_norm_``) and for the learning-rate range
test (the reference below, written here, independent of ``course_lib.training``); and, for the
diagnosis, training logs simulated here per student with ``simulate_log`` (the same simulator
the notebook shows, other draws). The range test takes a model, a callable, which cannot cross
the probe: the model is written in the probe code (a least-squares regression, defined inside
the kernel), and the judge runs the same source on its side for the reference. Probes only call
the student's functions and send back what they returned (and the inputs, to see whether they
were modified): every comparison happens here. See ``course_lib/grading/judge.py``.
"""

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.grading.judge import Judge, close, floats, unchanged

judge = Judge(
    "07-diagnosis",
    # What the assignment asks students to write: the grading kernel's course_lib lacks them
    # (layer norm, gradient clipping, the range test; and whatever needs them).
    forbidden=[
        "course_lib.numpy_impl.layers",
        "course_lib.numpy_impl.optimizers",
        "course_lib.training",
    ],
    # The figure of the example logs and the range test on the digits: nothing graded uses them.
    not_run=["plot_logs", "demo"],
)

#: Every probe snapshots what the student's function returned at once (deep copies).
SNAP = "from copy import deepcopy as __snap\n"


def tuple_of(value, n, what):
    assert isinstance(value, (tuple, list)) and len(value) == n, (
        f"{what} must return a tuple of {n}, got {type(value).__name__}"
        + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "")
    )
    return value


def rows(rng, n, d, scale=1.0):
    """x (n, d) whose rows have their own offsets and spreads (what layer norm takes out)."""
    return (rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, (n, 1)) + rng.uniform(-3.0, 3.0, (n, 1))) * scale


# --- 1-2. Layer normalization --------------------------------------------------------------------

FORWARD = SNAP + """
__result = __snap(layernorm_forward(x, gamma, beta, eps=eps))
"""

BACKWARD = SNAP + """
__grads = __snap(layernorm_backward(dout, (x, gamma, eps)))
"""

VISIBLE_X = np.array([[1.0, 2.0, 3.0, 6.0], [-2.0, 0.0, 2.0, 0.0]])
VISIBLE_GAMMA, VISIBLE_BETA = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 1.0, 0.0, 0.5])
VISIBLE_DOUT = np.array([[1.0, -1.0, 0.5, 2.0], [0.0, 1.0, -2.0, 1.0]])


def torch_layernorm(x, gamma, beta, eps, dout=None):
    """out, and with ``dout`` the gradients (dx, dgamma, dbeta), of F.layer_norm in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    out = F.layer_norm(xt, (x.shape[1],), gt, bt, eps)
    if dout is None:
        return out.detach().numpy()
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


@judge.part("test_layernorm_forward", answers=["layernorm_forward"])
def _(k, rng):
    got = k.run(FORWARD, {"x": VISIBLE_X, "gamma": VISIBLE_GAMMA, "beta": VISIBLE_BETA, "eps": 1e-5},
                ["__result", "x"])  # fmt: skip
    out, cache = tuple_of(got["__result"], 2, "layernorm_forward (out, cache)")
    close(out, torch_layernorm(VISIBLE_X, VISIBLE_GAMMA, VISIBLE_BETA, 1e-5), 1e-9, 1e-12,
          "on the visible example out differs from gamma * (x - mean) / sqrt(var + eps) + beta with each ROW's "
          "own mean and biased variance (over its D features, axis 1)", "out")  # fmt: skip
    cache = tuple_of(cache, 3, "the cache")
    assert unchanged(cache[0], VISIBLE_X) and unchanged(cache[1], VISIBLE_GAMMA) and np.isclose(float(cache[2]), 1e-5), (
        "the cache is (x, gamma, eps): what layernorm_backward needs"
    )
    assert unchanged(got["x"], VISIBLE_X), "layernorm_forward must not modify x"

    cases = [(5, 8, 1e-5, 1.0), (1, 6, 1e-5, 1.0), (7, 3, 1e-3, 10.0), (4, 5, 1e-5, 1e-3),
             (int(rng.integers(2, 30)), int(rng.integers(2, 12)), 1e-5, float(rng.uniform(0.1, 10.0)))]  # fmt: skip
    for n, d, eps, scale in cases:
        x = rows(rng, n, d, scale)
        gamma, beta = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d), rng.normal(size=d)
        got = k.run(FORWARD, {"x": x, "gamma": gamma, "beta": beta, "eps": eps}, ["__result", "x"])
        assert unchanged(got["x"], x), "layernorm_forward must not modify x"
        out, _ = tuple_of(got["__result"], 2, "layernorm_forward (out, cache)")
        close(out, torch_layernorm(x, gamma, beta, eps), 1e-8, 1e-10,
              f"out differs from torch.nn.functional.layer_norm for x of shape {(n, d)} (eps {eps}, rows of scale "
              f"about {scale:.3g}): the mean and the biased variance of each row, eps inside the square root",
              "out")  # fmt: skip
    x = rows(rng, 6, 5)
    one = k.run(SNAP + "__one = __snap(layernorm_forward(x[2:3], np.ones(5), np.zeros(5))[0])\n"
                "__all = __snap(layernorm_forward(x, np.ones(5), np.zeros(5))[0])",
                {"x": x}, ["__one", "__all"])  # fmt: skip
    close(one["__one"], floats(one["__all"], (6, 5), "out")[2:3], 1e-12, 1e-12,
          "a row's output must not depend on the other rows of the batch", "out")  # fmt: skip


@judge.part("test_layernorm_backward", answers=["layernorm_backward"])
def _(k, rng):
    got = k.run(BACKWARD, {"dout": VISIBLE_DOUT, "x": VISIBLE_X, "gamma": VISIBLE_GAMMA, "eps": 1e-5}, ["__grads"])
    dx, dgamma, dbeta = tuple_of(got["__grads"], 3, "layernorm_backward (dx, dgamma, dbeta)")
    ref_dx, ref_dgamma, ref_dbeta = torch_layernorm(VISIBLE_X, VISIBLE_GAMMA, VISIBLE_BETA, 1e-5, VISIBLE_DOUT)
    close(dbeta, ref_dbeta, 1e-12, 0, "dbeta = dout summed over the rows (axis 0), shape (D,)", "dbeta")
    close(dgamma, ref_dgamma, 1e-9, 1e-12, "dgamma = sum over the rows of dout * x_hat, shape (D,)", "dgamma")
    close(dx, ref_dx, 1e-9, 1e-12,
          "dx is wrong on the visible example: inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), with "
          "g = dout * gamma and the means over the features of each row (axis 1)", "dx")  # fmt: skip

    cases = [(6, 4, 1e-5, 1.0), (1, 7, 1e-5, 1.0), (9, 2, 1e-5, 1.0), (5, 6, 1e-3, 1e-2), (3, 10, 1e-5, 100.0),
             (int(rng.integers(2, 30)), int(rng.integers(2, 12)), 1e-5, float(rng.uniform(0.1, 10.0)))]  # fmt: skip
    for n, d, eps, scale in cases:
        x = rows(rng, n, d, scale)
        gamma = rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d)
        dout = rng.normal(size=(n, d))
        got = k.run(BACKWARD, {"dout": dout, "x": x, "gamma": gamma, "eps": eps}, ["__grads", "dout", "x"])
        assert unchanged(got["dout"], dout) and unchanged(got["x"], x), (
            "layernorm_backward must not modify dout or the cache's x"
        )
        dx, dgamma, dbeta = tuple_of(got["__grads"], 3, f"layernorm_backward for x of shape {(n, d)}")
        ref_dx, ref_dgamma, ref_dbeta = torch_layernorm(x, gamma, np.zeros(d), eps, dout)
        where = f"for x of shape {(n, d)} (eps {eps}, rows of scale about {scale:.3g})"
        close(dbeta, ref_dbeta, 1e-10, 1e-12, f"dbeta is wrong {where}: the sum of dout over the rows", "dbeta")
        close(dgamma, ref_dgamma, 1e-8, 1e-10, f"dgamma is wrong {where}: sum over the rows of dout * x_hat",
              "dgamma")  # fmt: skip
        close(dx, ref_dx, 1e-7, 1e-9 * float(np.abs(ref_dx).max()),
              f"dx differs from torch's autograd {where}: each row's two extra terms come from that row's mean "
              "and variance, means over its D features", "dx")  # fmt: skip


# --- 3. Gradient clipping ------------------------------------------------------------------------

#: ``__arrays`` keeps the very arrays the dict held: an answer that puts new arrays in the dict
#: instead of scaling the old ones in place leaves them unclipped.
CLIP = SNAP + """
__arrays = dict(grads)
__total = __snap(clip_grad_norm(grads, max_norm))
__arrays = __snap(__arrays)
"""


def reference_clip(grads, max_norm):
    """PyTorch's rule (clip_grad_norm_): the total norm, and every array times min(1, max/(total + 1e-6)),
    or times min(1, max/total): both scalings are accepted."""
    total = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))
    scales = [min(1.0, max_norm / (total + 1e-6)), min(1.0, max_norm / total) if total > 0 else 1.0]
    return total, [{k: g * s for k, g in grads.items()} for s in scales]


def check_clip(k, grads, max_norm, where):
    got = k.run(CLIP, {"grads": {k_: v.copy() for k_, v in grads.items()}, "max_norm": max_norm},
                ["__total", "__arrays"])  # fmt: skip
    total, options = reference_clip(grads, max_norm)
    value = got["__total"]
    assert isinstance(value, float), f"clip_grad_norm must return the total norm as a float, got {type(value).__name__}"
    assert np.isclose(value, total, rtol=1e-10, atol=1e-300), (
        f"{where}: clip_grad_norm must return the global norm of all the gradients BEFORE clipping, "
        f"sqrt(sum of every squared entry of every array) = {total:.6g}; got {value:.6g}"
    )
    arrays = got["__arrays"]
    assert isinstance(arrays, dict) and set(arrays) == set(grads), "clip_grad_norm must keep the dict's arrays"
    for name in grads:
        floats(arrays[name], grads[name].shape, f"grads[{name!r}]")
    fits = [all(np.allclose(np.asarray(arrays[n], dtype=np.float64), ref[n], rtol=1e-9, atol=1e-300) for n in grads)
            for ref in options]  # fmt: skip
    if total <= max_norm:
        assert any(fits), f"{where}: the total norm {total:.4g} is within max_norm = {max_norm:g}: leave the gradients as they are"
    else:
        assert any(fits), (
            f"{where}: every array must be scaled IN PLACE by the same factor max_norm / (total + 1e-6), so that "
            f"the global norm becomes max_norm = {max_norm:g} (the arrays the dict held must change)"
        )


@judge.part("test_clip_grad_norm", answers=["clip_grad_norm"])
def _(k, rng):
    visible = {"W": np.array([[3.0, 0.0], [0.0, 4.0]]), "b": np.array([0.0, 12.0])}  # norm 13
    check_clip(k, visible, 6.5, "on the visible example")
    check_clip(k, {"W": np.array([[0.3, 0.0], [0.0, 0.4]]), "b": np.array([0.0, 1.2])}, 6.5, "below max_norm")
    check_clip(k, {"W": np.zeros((3, 2)), "b": np.zeros(2)}, 1.0, "with gradients that are all zero")
    for _ in range(4):
        shapes = [tuple(int(s) for s in rng.integers(1, 6, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(2, 5)))]
        grads = {f"p{i}": rng.normal(size=s) * 10 ** rng.uniform(-2, 2) for i, s in enumerate(shapes)}
        total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        for max_norm in (total * rng.uniform(0.05, 0.9), total * rng.uniform(1.1, 3.0)):
            check_clip(k, grads, float(max_norm), f"with arrays of shapes {shapes} and max_norm {max_norm:.4g}")
    # the norm of all the gradients together, not of each array: one big array, one small
    grads = {"big": rng.normal(size=(4, 4)) * 10.0, "small": rng.normal(size=3) * 0.01}
    check_clip(k, grads, 1.0, "with a large and a small array")


# --- 4. The learning-rate range test -------------------------------------------------------------

#: The model of the hidden range tests, defined in the kernel by the probe and here for the
#: reference: a least-squares linear regression, which diverges once lr > 2 / (largest
#: eigenvalue of X^T X / N), so the test stops.
MODEL = """
def __least_squares(params, X, y):
    r = X @ params["w"] + params["b"] - y
    return 0.5 * float(np.mean(r * r)), {"w": X.T @ r / len(y), "b": np.array([np.mean(r)])}
"""

RANGE_TEST = SNAP + MODEL + """
__result = __snap(lr_range_test(__least_squares, params, batches, lr_min, lr_max, steps,
                                stop_factor=stop_factor, smooth=smooth))
"""


def least_squares():
    space = {"np": np}
    exec(MODEL, space)  # noqa: S102 - the judge's own model
    return space["__least_squares"]


def reference_range_test(loss_and_grads, params, batches, lr_min, lr_max, steps, stop_factor=4.0, smooth=0.98):
    """The judge's range test: lr_t = lr_min (lr_max / lr_min)^(t / (steps - 1)), one plain SGD
    step on batch t % len(batches) at each, the loss before the step smoothed with bias correction;
    stop after the first step whose smoothed loss is not finite or exceeds stop_factor times the
    smallest one before it. The caller's params are not touched."""
    params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    avg, best, lrs, losses = 0.0, np.inf, [], []
    for t in range(steps):
        lr = lr_min * (lr_max / lr_min) ** (t / (steps - 1))
        X, y = batches[t % len(batches)]
        loss, grads = loss_and_grads(params, X, y)
        avg = smooth * avg + (1.0 - smooth) * loss
        smoothed = avg / (1.0 - smooth ** (t + 1))
        lrs.append(lr)
        losses.append(smoothed)
        if not np.isfinite(smoothed) or smoothed > stop_factor * best:
            break
        best = min(best, smoothed)
        params = {name: value - lr * grads[name] for name, value in params.items()}
    return np.array(lrs), np.array(losses)


def regression(rng, n_batches, batch, d, noise=0.1):
    X = [rng.normal(size=(batch, d)) * rng.uniform(0.5, 2.0, d) for _ in range(n_batches)]
    w = rng.normal(size=d)
    batches = [(x, x @ w + 0.5 + noise * rng.normal(size=batch)) for x in X]
    return batches, {"w": np.zeros(d), "b": np.zeros(1)}


def check_range(k, batches, params, lr_min, lr_max, steps, stop_factor, smooth, where):
    inputs = {"params": {n: v.copy() for n, v in params.items()}, "batches": batches, "lr_min": lr_min,
              "lr_max": lr_max, "steps": steps, "stop_factor": stop_factor, "smooth": smooth}  # fmt: skip
    got = k.run(RANGE_TEST, inputs, ["__result", "params"])
    lrs, losses = tuple_of(got["__result"], 2, "lr_range_test (lrs, losses)")
    ref_lrs, ref_losses = reference_range_test(least_squares(), params, batches, lr_min, lr_max, steps,
                                               stop_factor, smooth)  # fmt: skip
    assert all(unchanged(got["params"][n], v) for n, v in params.items()), (
        "lr_range_test must not modify the params it is given: train a copy"
    )
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    assert lrs.ndim == 1 and losses.shape == lrs.shape, "lrs and losses are 1-d arrays of one length"
    n = min(len(lrs), len(ref_lrs))
    assert np.allclose(lrs[:n], ref_lrs[:n], rtol=1e-9, atol=0), (
        f"{where}: the learning rates differ from lr_min * (lr_max / lr_min) ** (t / (steps - 1)), t = 0, 1, ...; "
        f"expected {ref_lrs[:4]}..., got {lrs[:4]}..."
    )
    assert np.allclose(losses[:n], ref_losses[:n], rtol=1e-7, atol=1e-12), (
        f"{where}: the smoothed losses differ from the reference (first differing step "
        f"{int(np.argmax(~np.isclose(losses[:n], ref_losses[:n], rtol=1e-7, atol=1e-12)))}): the loss of batch "
        "t % len(batches) before the step, avg = smooth * avg + (1 - smooth) * loss, divided by "
        "1 - smooth ** (t + 1); then one plain SGD step"
    )
    stopped = "stops" if len(ref_lrs) < steps else "runs all the steps"
    assert len(lrs) == len(ref_lrs), (
        f"{where}: the reference {stopped} after {len(ref_lrs)} of {steps} steps, yours after {len(lrs)}: "
        "record the step, then stop if its smoothed loss is not finite or exceeds stop_factor times the "
        "smallest smoothed loss before it"
    )


@judge.part("test_lr_range_test", answers=["lr_range_test"])
def _(k, rng):
    batches, params = regression(np.random.default_rng(7), 4, 16, 3)  # the visible test's problem
    check_range(k, batches, params, 1e-3, 10.0, 60, 4.0, 0.98, "on the visible example")
    check_range(k, batches, params, 1e-3, 0.05, 25, 4.0, 0.0, "on the visible example without smoothing")
    # the loss falls a long way before it diverges: "4 x the smallest loss so far" and "4 x the
    # first loss" stop at different steps here
    batches, params = regression(np.random.default_rng(11), 3, 32, 4)
    check_range(k, batches, params, 1e-2, 10.0, 200, 4.0, 0.9, "on a least-squares problem whose loss falls far")
    for _ in range(2):
        d, n_batches = int(rng.integers(2, 8)), int(rng.integers(1, 6))
        batches, params = regression(rng, n_batches, int(rng.integers(8, 40)), d)
        steps, lr_min = int(rng.integers(40, 120)), float(10 ** rng.uniform(-5, -3))
        check_range(k, batches, params, lr_min, float(rng.uniform(5.0, 50.0)), steps,
                    float(rng.uniform(2.0, 6.0)), float(rng.uniform(0.8, 0.99)),
                    f"on a least-squares problem (d = {d}, {n_batches} batches) that diverges")  # fmt: skip
        check_range(k, batches, params, lr_min, float(rng.uniform(0.01, 0.1)), steps, 4.0, 0.98,
                    f"on a least-squares problem (d = {d}, {n_batches} batches) whose rates stay small")  # fmt: skip


# --- 5. Diagnosis --------------------------------------------------------------------------------

DIAGNOSES = ("healthy", "lr_too_high", "lr_too_low", "dead_relus", "exploding_gradients")


def simulate_log(kind, rng, steps=200):
    """The training log of a small ReLU network whose trouble is ``kind`` (one of DIAGNOSES).

    One value per step: "loss", "grad_norm" (the global gradient norm), "update_ratio"
    (||lr * step|| / ||W||, the median over the layers) and "dead_fraction" (the fraction of
    hidden ReLU units that output 0 for every example of the batch).
    """
    t = np.linspace(0.0, 1.0, steps)

    def noise(scale):
        return np.exp(rng.normal(0.0, scale, steps))

    loss0, grad0, dead0 = rng.uniform(1.5, 2.5), rng.uniform(0.5, 2.0), rng.uniform(0.02, 0.1)
    loss = loss0 * (0.15 + 0.85 * np.exp(-rng.uniform(3.0, 6.0) * t)) * noise(0.03)
    grad_norm = grad0 * (0.6 + 0.4 * np.exp(-3.0 * t)) * noise(0.1)
    update_ratio = 10 ** rng.uniform(-3.3, -2.7) * noise(0.1)
    dead = dead0 + 0.02 * t + np.abs(rng.normal(0.0, 0.005, steps))
    if kind == "lr_too_high":  # steps far too long: the loss jumps around and does not fall
        update_ratio = 10 ** rng.uniform(-1.5, -0.5) * noise(0.2)
        loss = loss0 * rng.uniform(0.9, 1.4) ** t * noise(0.15)
        grad_norm = grad0 * rng.uniform(2.0, 5.0) * noise(0.3)
    elif kind == "lr_too_low":  # steps far too short: the loss creeps down
        update_ratio = 10 ** rng.uniform(-6.0, -4.5) * noise(0.1)
        loss = loss0 * (1.0 - rng.uniform(0.01, 0.08) * t) * noise(0.01)
    elif kind == "dead_relus":  # units die early; the survivors cannot fit the data
        final = rng.uniform(0.6, 0.95)
        dead = dead0 + (final - dead0) * (1.0 - np.exp(-rng.uniform(5.0, 15.0) * t))
        loss = loss0 * (0.75 + 0.25 * np.exp(-5.0 * t)) * noise(0.02)
        grad_norm = grad0 * (1.0 - dead) * noise(0.1)
    elif kind == "exploding_gradients":  # a few steps with enormous gradients, and the loss jumps
        spikes = rng.choice(np.arange(steps // 4, steps - 1), size=int(rng.integers(2, 6)), replace=False)
        factor = 10 ** rng.uniform(2.7, 3.5, len(spikes))
        grad_norm[spikes] *= factor
        update_ratio[spikes] *= factor
        loss[spikes + 1] *= rng.uniform(3.0, 10.0, len(spikes))
    elif kind != "healthy":
        raise ValueError(f"kind must be one of {DIAGNOSES}, got {kind!r}")
    return {"loss": loss, "grad_norm": grad_norm, "update_ratio": update_ratio,
            "dead_fraction": np.clip(dead, 0.0, 1.0)}


@judge.part("test_diagnose", answers=["diagnose"])
def _(k, rng):
    logs, kinds = [], []
    for kind in DIAGNOSES:
        for _ in range(3):
            logs.append(simulate_log(kind, rng, int(rng.integers(120, 301))))
            kinds.append(kind)
    order = rng.permutation(len(logs))
    logs, kinds = [logs[i] for i in order], [kinds[i] for i in order]
    said = k.run("__said = [diagnose(__log) for __log in logs]", {"logs": logs}, ["__said"])["__said"]
    assert isinstance(said, list) and len(said) == len(logs), "diagnose returns one answer per log"
    for i, (got, kind) in enumerate(zip(said, kinds)):
        assert isinstance(got, str) and got in DIAGNOSES, (
            f"diagnose must return one of {DIAGNOSES}, got {got!r}"
        )
        assert got == kind, (
            f"hidden log {i + 1} of {len(logs)} shows {kind!r}, you said {got!r}: read the table of signatures "
            "again (the gradient norm's largest value against its median, the median update/weight ratio, "
            "the dead fraction at the end)"
        )
