"""Assignment 07 (diagnosing a network that will not train) end to end: the solution scores full
marks, the release zero, and each graded part loses exactly its points for a plausible wrong answer
or a delegating one.

The shared suite (``assignment_harness.AssignmentSuite``) checks the structure, judges every fake
student in process (``solutions/07-diagnosis/judge.py``, hidden inputs drawn per student) and grades
a class of them with real nbgrader. ``layernorm_backward`` is judged on caches the judge builds, so
a wrong ``layernorm_forward`` does not cost that part too; the range test is judged with a model
the probe defines in the kernel, against the judge's own reference (not ``course_lib.training``);
the diagnosis on logs the judge simulates per student. The module's own tests check those
references against torch, the library and the notebook.
"""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from assignment_harness import ROOT, AssignmentSuite, cell_by_id, delegating, read, wrong

ASSIGNMENT = "07-diagnosis"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_layernorm_forward": 2,
    "test_layernorm_backward": 3,
    "test_clip_grad_norm": 2,
    "test_lr_range_test": 3,
    "test_diagnose": 2,
}


def body(*parts: str) -> str:
    """Pieces of an answer's code, each dedented, joined into one block."""
    return "\n".join(textwrap.dedent(part).strip("\n") for part in parts)


#: Layer norm's statistics from the cache, shared by the wrong backward passes.
_LN_CACHE = """
x, gamma, eps = cache
x, dout = np.asarray(x, dtype=np.float64), np.asarray(dout, dtype=np.float64)
centred = x - x.mean(axis=1, keepdims=True)
inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=1, keepdims=True) + eps)
x_hat = centred * inv_std
g = dout * gamma
"""


def _ln_backward(dx: str, dgamma: str = "(dout * x_hat).sum(axis=0)") -> str:
    return body(_LN_CACHE, f"return {dx}, {dgamma}, dout.sum(axis=0)")


_MEAN_G = "g.mean(axis=1, keepdims=True)"
_MEAN_GX = "(g * x_hat).mean(axis=1, keepdims=True)"

#: A correct range test with one line replaced (the wrong answers below).
_RANGE = """
params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
avg, best, lrs, losses = 0.0, np.inf, [], []
for t in range(steps):
    lr = LR
    X, y = batches[t % len(batches)]
    loss, grads = loss_and_grads(params, X, y)
    avg = smooth * avg + (1 - smooth) * loss
    smoothed = SMOOTHED
    lrs.append(lr)
    losses.append(smoothed)
    if not np.isfinite(smoothed) or smoothed > stop_factor * best:
        break
    best = min(best, smoothed)
    for name in params:
        params[name] = params[name] - lr * grads[name]
return np.array(lrs), np.array(losses)
"""


def _range(lr: str = "lr_min * (lr_max / lr_min) ** (t / (steps - 1))",
           smoothed: str = "avg / (1 - smooth ** (t + 1))", **lines: str) -> str:  # fmt: skip
    code = _RANGE.replace("LR", lr).replace("SMOOTHED", smoothed)
    for old, new in lines.items():
        old = {"copy": "params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}",
               "stop": "if not np.isfinite(smoothed) or smoothed > stop_factor * best:",
               "best": "best = min(best, smoothed)"}[old]  # fmt: skip
        assert old in code
        code = code.replace(old, new)
    return code


#: A correct diagnosis with one rule replaced.
_DIAGNOSE = """
grad_norm = np.asarray(log["grad_norm"], dtype=np.float64)
ratio = float(np.median(log["update_ratio"]))
dead = np.asarray(log["dead_fraction"], dtype=np.float64)
if SPIKE:
    return "exploding_gradients"
if ratio > 1e-2:
    return HIGH
if ratio < 1e-4:
    return LOW
if DEAD:
    return "dead_relus"
return "healthy"
"""


def _diagnose(spike: str = "grad_norm.max() > 100 * np.median(grad_norm)", high: str = '"lr_too_high"',
              low: str = '"lr_too_low"', dead: str = "dead[-1] > 0.5") -> str:  # fmt: skip
    return _DIAGNOSE.replace("SPIKE", spike).replace("HIGH", high).replace("LOW", low).replace("DEAD", dead)


#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    "layernorm-over-the-batch": wrong(  # batch norm's axis
        "layernorm_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        out = gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta
        return out, (x, gamma, eps)
        """,
        "test_layernorm_forward",
    ),
    "layernorm-unbiased-variance": wrong(
        "layernorm_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, ddof=1, keepdims=True)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta, (x, gamma, eps)
        """,
        "test_layernorm_forward",
    ),
    "layernorm-eps-outside-the-root": wrong(  # shows on rows of small scale
        "layernorm_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        return gamma * (x - mu) / (np.sqrt(var) + eps) + beta, (x, gamma, eps)
        """,
        "test_layernorm_forward",
    ),
    "ln-backward-forgets-the-mean-term": wrong(
        "layernorm_backward", _ln_backward(f"inv_std * (g - x_hat * {_MEAN_GX})"), "test_layernorm_backward"
    ),
    "ln-backward-forgets-the-variance-term": wrong(
        "layernorm_backward", _ln_backward(f"inv_std * (g - {_MEAN_G})"), "test_layernorm_backward"
    ),
    "ln-backward-means-over-the-batch": wrong(  # batch norm's backward on layer norm's statistics
        "layernorm_backward",
        _ln_backward("inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))"),
        "test_layernorm_backward",
    ),
    "ln-backward-forgets-gamma": wrong(
        "layernorm_backward",
        _ln_backward(
            "inv_std * (dout - dout.mean(axis=1, keepdims=True)"
            " - x_hat * (dout * x_hat).mean(axis=1, keepdims=True))"
        ),
        "test_layernorm_backward",
    ),
    "ln-backward-dgamma-over-the-features": wrong(  # summed over axis 1: shape (N,)
        "layernorm_backward",
        _ln_backward(f"inv_std * (g - {_MEAN_G} - x_hat * {_MEAN_GX})", "(dout * x_hat).sum(axis=1)"),
        "test_layernorm_backward",
    ),
    "clip-each-array-on-its-own": wrong(
        "clip_grad_norm",
        """
        total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        for g in grads.values():
            g *= min(1.0, max_norm / (float(np.sqrt(np.sum(g * g))) + 1e-6))
        return total
        """,
        "test_clip_grad_norm",
    ),
    "clip-returns-the-clipped-norm": wrong(
        "clip_grad_norm",
        """
        total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        factor = min(1.0, max_norm / (total + 1e-6))
        for g in grads.values():
            g *= factor
        return total * factor
        """,
        "test_clip_grad_norm",
    ),
    "clip-not-in-place": wrong(  # new arrays in the dict: the optimizer's arrays stay unclipped
        "clip_grad_norm",
        """
        total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        factor = min(1.0, max_norm / (total + 1e-6))
        for name in grads:
            grads[name] = grads[name] * factor
        return total
        """,
        "test_clip_grad_norm",
    ),
    "clip-also-scales-up": wrong(  # the factor is not capped at 1
        "clip_grad_norm",
        """
        total = float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))
        for g in grads.values():
            g *= max_norm / (total + 1e-6)
        return total
        """,
        "test_clip_grad_norm",
    ),
    "clip-sums-the-norms": wrong(  # the sum of the per-array norms instead of the global norm
        "clip_grad_norm",
        """
        total = float(sum(float(np.sqrt(np.sum(g * g))) for g in grads.values()))
        factor = min(1.0, max_norm / (total + 1e-6))
        for g in grads.values():
            g *= factor
        return total
        """,
        "test_clip_grad_norm",
    ),
    "range-linear-schedule": wrong(
        "lr_range_test", _range(lr="lr_min + (lr_max - lr_min) * t / (steps - 1)"), "test_lr_range_test"
    ),
    "range-exponent-off-by-one": wrong(  # t / steps: lr_max is never reached
        "lr_range_test", _range(lr="lr_min * (lr_max / lr_min) ** (t / steps)"), "test_lr_range_test"
    ),
    "range-no-bias-correction": wrong("lr_range_test", _range(smoothed="avg"), "test_lr_range_test"),
    "range-never-stops": wrong(
        "lr_range_test", _range(stop="if False and smoothed > stop_factor * best:"), "test_lr_range_test"
    ),
    "range-stops-against-the-first-loss": wrong(  # the loss at the start, not the best so far
        "lr_range_test", _range(best="best = min(best, losses[0])"), "test_lr_range_test"
    ),
    "range-trains-the-callers-params": wrong("lr_range_test", _range(copy="pass"), "test_lr_range_test"),
    "diagnose-ratio-thresholds-swapped": wrong(
        "diagnose", _diagnose(high='"lr_too_low"', low='"lr_too_high"'), "test_diagnose"
    ),
    "diagnose-dead-fraction-at-the-start": wrong(
        "diagnose", _diagnose(dead="dead[0] > 0.5"), "test_diagnose"
    ),
    "diagnose-ignores-dead-units": wrong("diagnose", _diagnose(dead="False"), "test_diagnose"),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "layernorm-calls-course_lib": delegating(
        "layernorm_forward",
        """
        from course_lib.numpy_impl.layers import layernorm_forward as _reference


        def layernorm_forward(x, gamma, beta, eps=1e-5):
            x = np.asarray(x, dtype=np.float64)
            return _reference(x, gamma, beta, eps)[0], (x, gamma, eps)
        """,
        "test_layernorm_forward",
    ),
    "ln-backward-torch-autograd": delegating(
        "layernorm_backward",
        """
        import torch


        def layernorm_backward(dout, cache):
            x, gamma, eps = cache
            xt = torch.tensor(np.array(x, dtype=np.float64), requires_grad=True)
            gt = torch.tensor(np.array(gamma, dtype=np.float64), requires_grad=True)
            bt = torch.zeros(gt.shape, dtype=torch.float64, requires_grad=True)
            out = torch.nn.functional.layer_norm(xt, (xt.shape[1],), gt, bt, eps)
            out.backward(torch.tensor(np.asarray(dout, dtype=np.float64)))
            return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()
        """,
        "test_layernorm_backward",
    ),
    "ln-backward-calls-course_lib": delegating(
        "layernorm_backward",
        """
        from course_lib.numpy_impl import layers as _layers


        def layernorm_backward(dout, cache):
            x, gamma, eps = cache
            _, full = _layers.layernorm_forward(np.asarray(x, dtype=np.float64), gamma, 0 * gamma, eps)
            return _layers.layernorm_backward(np.asarray(dout, dtype=np.float64), full)
        """,
        "test_layernorm_backward",
    ),
    "clip-calls-course_lib": delegating(
        "clip_grad_norm",
        """
        from course_lib.numpy_impl.optimizers import clip_grad_norm as _clip


        def clip_grad_norm(grads, max_norm):
            return float(_clip(grads, max_norm))
        """,
        "test_clip_grad_norm",
    ),
    "clip-calls-torch": delegating(
        "clip_grad_norm",
        """
        import torch


        def clip_grad_norm(grads, max_norm):
            params = []
            for g in grads.values():
                p = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
                p.grad = torch.from_numpy(g)  # shares memory: torch scales g in place
                params.append(p)
            return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        """,
        "test_clip_grad_norm",
    ),
    "range-helper-imports-by-name": delegating(  # importlib hides the module from a reader
        "lr_range_test",
        """
        import importlib


        def _schedule(lr_min, lr_max, steps):
            return importlib.import_module("course_lib.numpy_impl.schedules").__name__ and (
                lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1)))


        def lr_range_test(loss_and_grads, params, batches, lr_min, lr_max, steps,
                          stop_factor=4.0, smooth=0.98):
            params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
            avg, best, lrs, losses = 0.0, np.inf, [], []
            for t, lr in enumerate(_schedule(lr_min, lr_max, steps)):
                X, y = batches[t % len(batches)]
                loss, grads = loss_and_grads(params, X, y)
                avg = smooth * avg + (1 - smooth) * loss
                smoothed = avg / (1 - smooth ** (t + 1))
                lrs.append(float(lr))
                losses.append(smoothed)
                if not np.isfinite(smoothed) or smoothed > stop_factor * best:
                    break
                best = min(best, smoothed)
                params = {name: value - lr * grads[name] for name, value in params.items()}
            return np.array(lrs), np.array(losses)
        """,
        "test_lr_range_test",
    ),
    "diagnose-median-from-torch": delegating(
        "diagnose",
        """
        import torch


        def diagnose(log):
            grad_norm = torch.tensor(np.asarray(log["grad_norm"], dtype=np.float64))
            ratio = float(torch.tensor(np.asarray(log["update_ratio"], dtype=np.float64)).quantile(0.5))
            if float(grad_norm.max()) > 100 * float(grad_norm.quantile(0.5)):
                return "exploding_gradients"
            if ratio > 1e-2:
                return "lr_too_high"
            if ratio < 1e-4:
                return "lr_too_low"
            return "dead_relus" if float(log["dead_fraction"][-1]) > 0.5 else "healthy"
        """,
        "test_diagnose",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "layernorm-over-the-batch",
    "ln-backward-forgets-the-mean-term",
    "clip-each-array-on-its-own",
    "range-no-bias-correction",
    "diagnose-ratio-thresholds-swapped",
)
NBGRADER_DELEGATING = (
    "layernorm-calls-course_lib",
    "ln-backward-torch-autograd",
    "clip-calls-course_lib",
    "range-helper-imports-by-name",
)


def judge_module():
    """The judge file as a module: its references and its simulator, not only ``judge``."""
    path = ROOT / "solutions" / ASSIGNMENT / "judge.py"
    spec = importlib.util.spec_from_file_location("judge_07_diagnosis", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestAssignment07(AssignmentSuite):
    MIN_PARTS = 5
    ISSUE_WRONG = NBGRADER_WRONG

    def test_the_issue_parts_are_graded(self):
        """Layer norm forward and backward, clipping, the range test, a diagnosis from a log."""
        assert {self.answer_of(t) for t in POINTS} == {
            "layernorm_forward", "layernorm_backward", "clip_grad_norm", "lr_range_test", "diagnose"
        }  # fmt: skip
        assert 10 <= self.total() <= 14

    def test_the_notebook_shows_the_judges_simulator(self):
        """The logs the grader draws come from the simulator the notebook shows (other draws)."""
        source = cell_by_id(read(self.solution_path()), "logs").source
        judge_source = (ROOT / "solutions" / ASSIGNMENT / "judge.py").read_text()
        start = judge_source.index("DIAGNOSES = (")
        end = judge_source.index('@judge.part("test_diagnose"')
        assert judge_source[start:end].strip() in source


def test_the_layernorm_reference_matches_the_library():
    """The judge's reference (torch's autograd) agrees with course_lib's layer norm."""
    from course_lib.numpy_impl.layers import layernorm_backward, layernorm_forward

    module = judge_module()
    rng = np.random.default_rng(1)
    for n, d, eps in ((5, 4, 1e-5), (1, 6, 1e-3), (7, 2, 1e-5)):
        x, gamma, beta = module.rows(rng, n, d), rng.uniform(-2, 2, d), rng.normal(size=d)
        dout = rng.normal(size=(n, d))
        out, cache = layernorm_forward(x, gamma, beta, eps)
        assert np.allclose(module.torch_layernorm(x, gamma, beta, eps), out, rtol=1e-12, atol=1e-12)
        refs = module.torch_layernorm(x, gamma, beta, eps, dout)
        for ref, lib in zip(refs, layernorm_backward(dout, cache), strict=True):
            assert np.allclose(ref, lib, rtol=1e-9, atol=1e-12)


def test_the_clipping_reference_is_torchs():
    import torch

    module = judge_module()
    rng = np.random.default_rng(2)
    for max_norm in (0.1, 1.0, 100.0):
        grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
        params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
        for p, g in zip(params, grads.values(), strict=True):
            p.grad = torch.tensor(g)
        total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        ref_total, (scaled, _) = module.reference_clip(grads, max_norm)
        assert np.isclose(ref_total, total, rtol=1e-12)
        for p, name in zip(params, grads, strict=True):
            assert np.allclose(scaled[name], p.grad.numpy(), rtol=1e-12, atol=0)


def test_the_range_test_reference_matches_the_library_on_a_batched_run():
    """The judge's own range test and course_lib.training.lr_range_test (another implementation,
    written apart) give the same rates and smoothed losses on the same batches, when the library
    has it."""
    training = pytest.importorskip("course_lib.training")
    if not hasattr(training, "lr_range_test"):
        pytest.skip("course_lib.training.lr_range_test is not there yet")
    from course_lib.numpy_impl.mlp import MLP

    module = judge_module()
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)
    net = MLP([5, 8, 3], rng=0)
    # the library's batches, as fit draws them with rng=0 and batch_size=64: one batch of everything
    lrs, losses = training.lr_range_test(net, X, y, 1e-3, 1e3, 80, batch_size=64, rng=0)
    perm = np.random.default_rng(0).permutation(64)
    Xb, yb = X[perm], y[perm]
    params = {k: v.copy() for k, v in net.params.items()}

    def loss_and_grads(p, X_, y_):
        saved = {k: v.copy() for k, v in net.params.items()}
        for k in p:
            net.params[k][...] = p[k]
        loss, grads = net.loss_and_grads(X_, y_)
        for k in saved:
            net.params[k][...] = saved[k]
        return float(loss), {k: np.array(g) for k, g in grads.items()}

    ref_lrs, ref_losses = module.reference_range_test(loss_and_grads, params, [(Xb, yb)], 1e-3, 1e3, 80)
    assert len(ref_lrs) == len(lrs) and np.allclose(ref_lrs, lrs, rtol=1e-12)
    assert np.allclose(ref_losses, losses, rtol=1e-9)


def test_the_simulated_logs_separate_the_diagnoses_by_wide_margins():
    """Every signature of the table holds with a margin of 3 or more on 1,000 draws per kind, so a
    diagnosis that follows the table is right whatever its thresholds within the gaps."""
    module = judge_module()
    rng = np.random.default_rng(4)
    spike, ratio, dead = ({k: [] for k in module.DIAGNOSES} for _ in range(3))
    for _ in range(1000):
        for kind in module.DIAGNOSES:
            log = module.simulate_log(kind, rng, int(rng.integers(120, 301)))
            assert set(log) == {"loss", "grad_norm", "update_ratio", "dead_fraction"}
            assert all(np.all(np.isfinite(v)) and v.shape == log["loss"].shape for v in log.values())
            spike[kind].append(log["grad_norm"].max() / np.median(log["grad_norm"]))
            ratio[kind].append(np.median(log["update_ratio"]))
            dead[kind].append(log["dead_fraction"][-1])
    others = [k for k in module.DIAGNOSES if k != "exploding_gradients"]
    assert min(spike["exploding_gradients"]) > 3 * 100 / 3 and max(max(spike[k]) for k in others) < 100 / 3
    calm = [k for k in module.DIAGNOSES if k not in ("lr_too_high", "lr_too_low")]
    assert min(ratio["lr_too_high"]) > 2.5e-2 and max(max(ratio[k]) for k in calm) < 3e-3
    assert max(ratio["lr_too_low"]) < 1e-4 / 3 and min(min(ratio[k]) for k in calm) > 3e-4
    alive = [k for k in module.DIAGNOSES if k != "dead_relus"]
    assert min(dead["dead_relus"]) > 0.55 and max(max(dead[k]) for k in alive) < 0.17
