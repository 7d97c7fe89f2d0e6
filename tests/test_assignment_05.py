"""Assignment 05 (optimizers, schedules, batch norm) end to end: the solution scores full marks, the
release zero, and each graded part loses exactly its points for a plausible wrong answer or a
delegating one.

The shared suite (``assignment_harness.AssignmentSuite``) checks the structure, judges every fake
student in process (``solutions/05-optimization/judge.py``, hidden inputs drawn per student) and
grades a class of them with real nbgrader. Nesterov momentum is graded on its own
(``test_nesterov``), as is Adam's first step (``test_adam_first_step``, the bias correction) and
batch norm's evaluation mode (``test_batchnorm_eval``), so that an answer wrong in one of them
loses that part only. The judge follows 20-step trajectories against ``torch.optim`` on fixed
gradients, with a learning rate that changes every step (where PyTorch's momentum form and Keras's
part ways) and with gradients small enough that the place of Adam's epsilon matters.
"""

from __future__ import annotations

import importlib.util
import textwrap

from assignment_harness import ROOT, AssignmentSuite, delegating, judged_verdicts, read, wrong

ASSIGNMENT = "05-optimization"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_momentum": 2,
    "test_nesterov": 1,
    "test_adam_first_step": 1,
    "test_adam": 2,
    "test_exponential_decay": 1,
    "test_cosine_restarts": 2,
    "test_batchnorm_train": 2,
    "test_batchnorm_eval": 1,
    "test_batchnorm_backward": 2,
}

#: Test cell -> the answer cell it grades.
ANSWER_OF = {
    "test_momentum": "momentum_step",
    "test_nesterov": "momentum_step",
    "test_adam_first_step": "adam_step",
    "test_adam": "adam_step",
    "test_exponential_decay": "exponential_decay",
    "test_cosine_restarts": "cosine_decay_restarts",
    "test_batchnorm_train": "batchnorm_forward",
    "test_batchnorm_eval": "batchnorm_forward",
    "test_batchnorm_backward": "batchnorm_backward",
}


def judge_module(assignment: str):
    """The judge file of ``assignment`` as a module (its reference functions, not only ``judge``)."""
    spec = importlib.util.spec_from_file_location(f"judge_{assignment.replace('-', '_')}",
                                                  ROOT / "solutions" / assignment / "judge.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def body(*parts: str) -> str:
    """Pieces of an answer's code, each dedented, joined into one block."""
    return "\n".join(textwrap.dedent(part).strip("\n") for part in parts)


#: The evaluation branch of a correct batchnorm_forward, for wrong answers in training mode only.
_EVAL = """
x = np.asarray(x, dtype=np.float64)
if not train:
    return gamma * (x - running["mean"]) / np.sqrt(running["var"] + eps) + beta
"""

#: The training branch, for wrong answers in evaluation mode only.
_TRAIN = """
x = np.asarray(x, dtype=np.float64)
mu, var = x.mean(axis=0), x.var(axis=0)
if train:
    n = len(x)
    running["mean"] = (1 - momentum) * running["mean"] + momentum * mu
    running["var"] = (1 - momentum) * running["var"] + momentum * var * n / (n - 1)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta
"""

#: The training-mode statistics from the cache, shared by the wrong backward passes.
_BN_CACHE = """
x, gamma, eps = cache
x, dout = np.asarray(x, dtype=np.float64), np.asarray(dout, dtype=np.float64)
inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
x_hat = (x - x.mean(axis=0)) * inv_std
g = dout * gamma
"""


def _bn_backward(dx: str, dgamma: str = "(dout * x_hat).sum(axis=0)", head: str = _BN_CACHE) -> str:
    """A backward pass whose dx (and dgamma) are the given expressions."""
    return body(head, f"return {dx}, {dgamma}, dout.sum(axis=0)")


#: Adam's moments, shared by the wrong Adam answers (which differ in the step).
_MOMENTS = """
b1, b2 = betas
g = np.asarray(g, dtype=np.float64)
t = state["t"] + 1
m = b1 * state["m"] + (1 - b1) * g
v = b2 * state["v"] + (1 - b2) * g * g
"""

#: Plausible wrong answers, each failing exactly the parts in its last arguments.
WRONG = {
    "momentum-keras-form": wrong(  # u = mu u - lr g; w += u: the same path while lr is constant
        "momentum_step",
        """
        g = np.asarray(g, dtype=np.float64)
        u = momentum * np.asarray(velocity, dtype=np.float64) - lr * g
        if nesterov:
            return np.asarray(w, dtype=np.float64) + momentum * u - lr * g, u
        return np.asarray(w, dtype=np.float64) + u, u
        """,
        "test_momentum",
        "test_nesterov",
    ),
    "momentum-dampened": wrong(  # an exponential moving average of g instead of a sum
        "momentum_step",
        """
        g = np.asarray(g, dtype=np.float64)
        v = momentum * np.asarray(velocity, dtype=np.float64) + (1 - momentum) * g
        d = g + momentum * v if nesterov else v
        return np.asarray(w, dtype=np.float64) - lr * d, v
        """,
        "test_momentum",
        "test_nesterov",
    ),
    "nesterov-ignored": wrong(
        "momentum_step",
        """
        v = momentum * np.asarray(velocity, dtype=np.float64) + np.asarray(g, dtype=np.float64)
        return np.asarray(w, dtype=np.float64) - lr * v, v
        """,
        "test_nesterov",
    ),
    "nesterov-old-velocity": wrong(
        "momentum_step",
        """
        g = np.asarray(g, dtype=np.float64)
        old = np.asarray(velocity, dtype=np.float64)
        v = momentum * old + g
        d = g + momentum * old if nesterov else v
        return np.asarray(w, dtype=np.float64) - lr * d, v
        """,
        "test_nesterov",
    ),
    "adam-no-bias-correction": wrong(
        "adam_step",
        body(
            _MOMENTS,
            """
        return np.asarray(w, dtype=np.float64) - lr * m / (np.sqrt(v) + eps), {"t": t, "m": m, "v": v}
        """,
        ),
        "test_adam_first_step",
        "test_adam",
    ),
    "adam-eps-inside-the-root": wrong(  # shows only where gradients are small (1e-3 and 1e-7 here)
        "adam_step",
        body(
            _MOMENTS,
            """
        step = (m / (1 - b1**t)) / np.sqrt(v / (1 - b2**t) + eps)
        return np.asarray(w, dtype=np.float64) - lr * step, {"t": t, "m": m, "v": v}
        """,
        ),
        "test_adam_first_step",
        "test_adam",
    ),
    "adam-corrects-with-the-old-t": wrong(  # t before the increment (floored at 1): wrong from step 2
        "adam_step",
        body(
            _MOMENTS,
            """
        t_old = max(state["t"], 1)
        step = (m / (1 - b1**t_old)) / (np.sqrt(v / (1 - b2**t_old)) + eps)
        return np.asarray(w, dtype=np.float64) - lr * step, {"t": t, "m": m, "v": v}
        """,
        ),
        "test_adam_first_step",  # its hidden part takes a second step
        "test_adam",
    ),
    "adam-state-keeps-corrected-moments": wrong(
        "adam_step",
        body(
            _MOMENTS,
            """
        m, v = m / (1 - b1**t), v / (1 - b2**t)
        return np.asarray(w, dtype=np.float64) - lr * m / (np.sqrt(v) + eps), {"t": t, "m": m, "v": v}
        """,
        ),
        "test_adam_first_step",
        "test_adam",
    ),
    "exponential-is-inverse-time": wrong(
        "exponential_decay",
        """
        p = np.floor(step / decay_steps) if staircase else step / decay_steps
        return float(lr0 / (1 + decay_rate * p))
        """,
        "test_exponential_decay",
    ),
    "exponential-staircase-rounds": wrong(
        "exponential_decay",
        """
        p = np.round(step / decay_steps) if staircase else step / decay_steps
        return float(lr0 * decay_rate**p)
        """,
        "test_exponential_decay",
    ),
    "restarts-equal-cycles": wrong(  # ignores t_mul
        "cosine_decay_restarts",
        """
        i, f = divmod(step / first_decay_steps, 1.0)
        return float(lr0 * (alpha + (1 - alpha) * m_mul**i * 0.5 * (1 + np.cos(np.pi * f))))
        """,
        "test_cosine_restarts",
    ),
    "restarts-m_mul-scales-the-floor": wrong(
        "cosine_decay_restarts",
        """
        i, start, length = 0, 0.0, float(first_decay_steps)
        while step >= start + length:
            start, length, i = start + length, length * t_mul, i + 1
        cos = 0.5 * (1 + np.cos(np.pi * (step - start) / length))
        return float(lr0 * m_mul**i * (alpha + (1 - alpha) * cos))
        """,
        "test_cosine_restarts",
    ),
    "restarts-alpha-is-absolute": wrong(
        "cosine_decay_restarts",
        """
        i, start, length = 0, 0.0, float(first_decay_steps)
        while step >= start + length:
            start, length, i = start + length, length * t_mul, i + 1
        cos = 0.5 * (1 + np.cos(np.pi * (step - start) / length))
        return float(alpha + (lr0 - alpha) * m_mul**i * cos)
        """,
        "test_cosine_restarts",
    ),
    "batchnorm-keras-momentum": wrong(  # running = m running + (1 - m) batch: Keras's meaning of m
        "batchnorm_forward",
        body(
            _EVAL,
            """
        mu, var, n = x.mean(axis=0), x.var(axis=0), len(x)
        running["mean"] = momentum * running["mean"] + (1 - momentum) * mu
        running["var"] = momentum * running["var"] + (1 - momentum) * var * n / (n - 1)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
        """,
        ),
        "test_batchnorm_train",
    ),
    "batchnorm-biased-running-variance": wrong(
        "batchnorm_forward",
        body(
            _EVAL,
            """
        mu, var = x.mean(axis=0), x.var(axis=0)
        running["mean"] = (1 - momentum) * running["mean"] + momentum * mu
        running["var"] = (1 - momentum) * running["var"] + momentum * var
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
        """,
        ),
        "test_batchnorm_train",
    ),
    "batchnorm-over-the-features": wrong(  # statistics of each example instead of each feature
        "batchnorm_forward",
        body(
            _EVAL,
            """
        mu, var, n = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True), len(x)
        running["mean"] = (1 - momentum) * running["mean"] + momentum * x.mean(axis=0)
        running["var"] = (1 - momentum) * running["var"] + momentum * x.var(axis=0) * n / (n - 1)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
        """,
        ),
        "test_batchnorm_train",
    ),
    "batchnorm-eval-uses-the-batch": wrong(  # train ignored: the missing model.eval()
        "batchnorm_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        mu, var, n = x.mean(axis=0), x.var(axis=0), len(x)
        running["mean"] = (1 - momentum) * running["mean"] + momentum * mu
        running["var"] = (1 - momentum) * running["var"] + momentum * var * n / (n - 1)
        return gamma * (x - mu) / np.sqrt(var + eps) + beta
        """,
        "test_batchnorm_eval",
    ),
    "batchnorm-eval-updates-running": wrong(
        "batchnorm_forward",
        body(
            _TRAIN,
            """
        n = len(x)
        running["mean"] = (1 - momentum) * running["mean"] + momentum * mu
        running["var"] = (1 - momentum) * running["var"] + momentum * var * n / (n - 1)
        return gamma * (x - running["mean"]) / np.sqrt(running["var"] + eps) + beta
        """,
        ),
        "test_batchnorm_eval",
    ),
    "bn-backward-forgets-the-mean-term": wrong(  # only the variance's path
        "batchnorm_backward",
        _bn_backward("inv_std * (g - x_hat * (g * x_hat).mean(axis=0))"),
        "test_batchnorm_backward",
    ),
    "bn-backward-forgets-the-variance-term": wrong(  # the x_hat * mean(g * x_hat) term
        "batchnorm_backward",
        _bn_backward("inv_std * (g - g.mean(axis=0))"),
        "test_batchnorm_backward",
    ),
    "bn-backward-statistics-as-constants": wrong(  # the evaluation-mode gradient in training
        "batchnorm_backward",
        _bn_backward("g * inv_std"),
        "test_batchnorm_backward",
    ),
    "bn-backward-means-over-the-features": wrong(  # the two means over axis 1: layer norm's
        "batchnorm_backward",
        _bn_backward(
            "inv_std * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))"
        ),
        "test_batchnorm_backward",
    ),
    "bn-backward-forgets-gamma": wrong(
        "batchnorm_backward",
        _bn_backward("inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))"),
        "test_batchnorm_backward",
    ),
    "bn-backward-dgamma-without-x_hat": wrong(
        "batchnorm_backward",
        _bn_backward("inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))", "dout.sum(axis=0)"),
        "test_batchnorm_backward",
    ),
    "bn-backward-sums-instead-of-means": wrong(  # sum_m where the formula has (1/N) sum_m
        "batchnorm_backward",
        _bn_backward("inv_std * (g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0))"),
        "test_batchnorm_backward",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "momentum-calls-torch-optim": delegating(
        "momentum_step",
        """
        import torch


        def momentum_step(w, g, velocity, lr, momentum=0.9, nesterov=False):
            p = torch.tensor(np.array(w, dtype=np.float64), requires_grad=True)
            opt = torch.optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov)
            opt.state[p]["momentum_buffer"] = torch.tensor(np.array(velocity, dtype=np.float64))
            p.grad = torch.tensor(np.asarray(g, dtype=np.float64))
            opt.step()
            return p.detach().numpy(), opt.state[p]["momentum_buffer"].numpy()
        """,
        "test_momentum",
        "test_nesterov",
    ),
    "adam-calls-course_lib": delegating(
        "adam_step",
        """
        from course_lib.numpy_impl.optimizers import Adam as _Adam


        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            opt = _Adam(lr=lr, betas=betas, eps=eps)
            opt.state["w"] = {k: (np.array(v, dtype=np.float64) if k != "t" else v) for k, v in state.items()}
            params = {"w": np.array(w, dtype=np.float64)}
            opt.step(params, {"w": np.asarray(g, dtype=np.float64)})
            return params["w"], opt.state["w"]
        """,
        "test_adam_first_step",
        "test_adam",
    ),
    "exponential-calls-course_lib": delegating(
        "exponential_decay",
        """
        from course_lib.numpy_impl import schedules as _schedules


        def exponential_decay(step, lr0, decay_rate, decay_steps, staircase=False):
            return _schedules.exponential_decay(step, lr0, decay_rate, decay_steps, staircase)
        """,
        "test_exponential_decay",
    ),
    "restarts-helper-calls-course_lib": delegating(
        "cosine_decay_restarts",
        """
        from course_lib.numpy_impl.schedules import restart_cycle as _cycle


        def _where(step, first, t_mul):
            i, f = _cycle(step, first, t_mul)
            return float(i), float(f)


        def cosine_decay_restarts(step, lr0, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
            i, f = _where(step, first_decay_steps, t_mul)
            return float(lr0 * (alpha + (1 - alpha) * m_mul**i * 0.5 * (1 + np.cos(np.pi * f))))
        """,
        "test_cosine_restarts",
    ),
    "adam-imports-by-name": delegating(  # importlib hides the module from a reader
        "adam_step",
        """
        import importlib


        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            optimizers = importlib.import_module("course_lib.numpy_impl.optimizers")
            opt = optimizers.Adam(lr=lr, betas=betas, eps=eps)
            opt.state["w"] = {k: (np.array(v, dtype=np.float64) if k != "t" else v) for k, v in state.items()}
            params = {"w": np.array(w, dtype=np.float64)}
            opt.step(params, {"w": np.asarray(g, dtype=np.float64)})
            return params["w"], opt.state["w"]
        """,
        "test_adam_first_step",
        "test_adam",
    ),
    "exponential-stashed-on-numpy": delegating(  # an attribute stored on an allowed module
        "exponential_decay",
        """
        from course_lib.numpy_impl import schedules as _schedules

        np.decay = _schedules.exponential_decay


        def exponential_decay(step, lr0, decay_rate, decay_steps, staircase=False):
            return float(np.decay(step, lr0, decay_rate, decay_steps, staircase))
        """,
        "test_exponential_decay",
    ),
    "nesterov-torch-under-another-name": delegating(
        "momentum_step",
        """
        import torch.optim as numpy_optim
        from torch import tensor as asarray


        def momentum_step(w, g, velocity, lr, momentum=0.9, nesterov=False):
            p = asarray(np.array(w, dtype=np.float64), requires_grad=True)
            opt = numpy_optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov)
            opt.state[p]["momentum_buffer"] = asarray(np.array(velocity, dtype=np.float64))
            p.grad = asarray(np.asarray(g, dtype=np.float64))
            opt.step()
            return p.detach().numpy(), opt.state[p]["momentum_buffer"].numpy()
        """,
        "test_momentum",
        "test_nesterov",
    ),
    "batchnorm-calls-torch": delegating(
        "batchnorm_forward",
        """
        import torch
        import torch.nn.functional as F


        def batchnorm_forward(x, gamma, beta, running, train, momentum=0.1, eps=1e-5):
            rm = torch.tensor(np.array(running["mean"], dtype=np.float64))
            rv = torch.tensor(np.array(running["var"], dtype=np.float64))
            out = F.batch_norm(torch.tensor(np.asarray(x, dtype=np.float64)), rm, rv,
                               torch.tensor(np.asarray(gamma, dtype=np.float64)),
                               torch.tensor(np.asarray(beta, dtype=np.float64)), train, momentum, eps)
            if train:
                running["mean"], running["var"] = rm.numpy(), rv.numpy()
            return out.numpy()
        """,
        "test_batchnorm_train",
        "test_batchnorm_eval",
    ),
    "bn-backward-calls-course_lib": delegating(
        "batchnorm_backward",
        """
        from course_lib.numpy_impl.layers import batchnorm_backward as _reference


        def batchnorm_backward(dout, cache):
            x, gamma, eps = cache
            x = np.asarray(x, dtype=np.float64)
            inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
            x_hat = (x - x.mean(axis=0)) * inv_std
            return _reference(np.asarray(dout, dtype=np.float64), (x_hat, gamma, inv_std, True))
        """,
        "test_batchnorm_backward",
    ),
    "bn-backward-torch-autograd": delegating(
        "batchnorm_backward",
        """
        import torch


        def batchnorm_backward(dout, cache):
            x, gamma, eps = cache
            xt = torch.tensor(np.array(x, dtype=np.float64), requires_grad=True)
            gt = torch.tensor(np.array(gamma, dtype=np.float64), requires_grad=True)
            bt = torch.zeros(gt.shape, dtype=torch.float64, requires_grad=True)
            out = torch.nn.functional.batch_norm(xt, None, None, gt, bt, True, 0.1, eps)
            out.backward(torch.tensor(np.asarray(dout, dtype=np.float64)))
            return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()
        """,
        "test_batchnorm_backward",
    ),
}

#: Graded by real nbgrader (a few seconds per student): a wrong answer for each part, and delegation.
NBGRADER_WRONG = (
    "momentum-keras-form",
    "nesterov-old-velocity",
    "adam-no-bias-correction",
    "adam-eps-inside-the-root",
    "exponential-is-inverse-time",
    "restarts-equal-cycles",
    "batchnorm-keras-momentum",
    "batchnorm-eval-uses-the-batch",
    "bn-backward-forgets-the-variance-term",
)
NBGRADER_DELEGATING = (
    "momentum-calls-torch-optim",
    "adam-calls-course_lib",
    "batchnorm-calls-torch",
    "exponential-stashed-on-numpy",
    "bn-backward-calls-course_lib",
)


class TestAssignment05(AssignmentSuite):
    MIN_PARTS = 6
    ANSWER_OF = ANSWER_OF
    ISSUE_WRONG = (
        "momentum-keras-form",
        "adam-no-bias-correction",
        "restarts-equal-cycles",
        "batchnorm-keras-momentum",
        "batchnorm-eval-uses-the-batch",
        "bn-backward-forgets-the-variance-term",
    )

    def test_the_issue_parts_are_graded(self):
        """Momentum SGD, Adam with bias correction, the two schedules, batch norm in both modes."""
        answers = {self.answer_of(t) for t in POINTS}
        assert answers == {
            "momentum_step",
            "adam_step",
            "exponential_decay",
            "cosine_decay_restarts",
            "batchnorm_forward",
            "batchnorm_backward",
        }
        assert {"test_adam_first_step", "test_batchnorm_train", "test_batchnorm_eval"} <= set(POINTS)

    def test_the_batchnorm_backward_reference_is_torch_autograd_and_central_differences(self):
        """The judge's own backward pass (float64, staged through the chain rule) against torch's
        autograd of F.batch_norm and against central differences of the forward pass."""
        import numpy as np
        import torch

        from course_lib.gradcheck import numerical_gradient, rel_error

        reference = judge_module(ASSIGNMENT).reference_bn_backward
        rng = np.random.default_rng(0)
        for n, d, eps, scale in ((6, 4, 1e-5, 1.0), (3, 3, 1e-5, 3.0), (9, 2, 1e-3, 0.01)):
            x = rng.normal(size=(n, d)) * scale + 2.0 * scale
            gamma, dout = rng.uniform(-2, 2, d), rng.normal(size=(n, d))
            dx, dgamma, dbeta = reference(dout, x, gamma, eps)
            xt = torch.tensor(x, requires_grad=True)
            gt = torch.tensor(gamma, requires_grad=True)
            bt = torch.zeros(d, dtype=torch.float64, requires_grad=True)
            out = torch.nn.functional.batch_norm(xt, None, None, gt, bt, True, 0.1, eps)
            out.backward(torch.tensor(dout))
            assert np.allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12 * np.abs(dx).max())
            assert np.allclose(dgamma, gt.grad.numpy(), rtol=1e-10) and np.allclose(dbeta, bt.grad.numpy())

            def loss(x_, g=gamma, e=eps, up=dout):
                out = g * (x_ - x_.mean(axis=0)) / np.sqrt(x_.var(axis=0) + e)
                return float((out * up).sum())

            assert rel_error(numerical_gradient(loss, x.copy(), 1e-5 * scale), dx) < 1e-6

    def test_hidden_tests_compare_whole_trajectories_with_torch(self, monkeypatch):
        """The issue: the judge compares trajectories on fixed gradients (20 steps, against torch):
        it builds torch.optim.SGD (plain and Nesterov) and torch.optim.Adam and steps each 20 times."""
        import torch

        made = []

        def spy(base):
            class Spy(base):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self.steps = 0
                    made.append(self)

                def step(self, *args, **kwargs):
                    self.steps += 1
                    return super().step(*args, **kwargs)

            Spy.__name__ = base.__name__
            return Spy

        for name in ("SGD", "Adam"):
            monkeypatch.setattr(torch.optim, name, spy(getattr(torch.optim, name)))
        verdicts = judged_verdicts(read(self.solution_path()), ASSIGNMENT, student="trajectories")
        assert all(v.passed for v in verdicts.values()), {k: v.message for k, v in verdicts.items()}

        def runs(kind, nesterov=False):
            return [o for o in made if type(o).__name__ == kind and o.steps == 20
                    and bool(o.defaults.get("nesterov", False)) == nesterov]  # fmt: skip

        assert len(runs("SGD")) >= 3, "momentum: 3 trajectories of 20 steps against torch.optim.SGD"
        assert len(runs("SGD", nesterov=True)) >= 2, "Nesterov: 2 trajectories against SGD(nesterov=True)"
        assert len(runs("Adam")) >= 3, "Adam: 3 trajectories of 20 steps against torch.optim.Adam"
