"""Assignment 01 (activations) end to end, and the release tooling every assignment shares.

``TestAssignment01`` is the shared suite (``assignment_harness.AssignmentSuite``): the notebooks'
and the judge's structure, the visible tests and the judge in process for several students, and
one ``course grade`` run over a class of fake students built from the solution, each with one
deliberately wrong or delegating answer, asserting every per-cell score. The module's own tests
cover the command line, ``score_problems``, ``notebook_differences`` and the workspace guard.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from assignment_harness import AssignmentSuite, cell_by_id, delegating, read, wrong

from course_lib.grading.cli import build_parser, main
from course_lib.grading.release import notebook_differences, score_problems
from course_lib.grading.workspace import GradingError, prepare_workspace

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-activations"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_sigmoid": 2,
    "test_sigmoid_grad": 1,
    "test_tanh_grad": 1,
    "test_relu": 1,
    "test_relu_grad": 1,
    "test_leaky_relu": 2,
    "test_elu_grad": 1,
    "test_numerical_gradient": 2,
    "test_mlp_backward": 3,
    "test_experiment": 2,
}
TOTAL = sum(POINTS.values())


# --- building student notebooks from the solution ------------------------------------------------


#: Plausible wrong answers: (answer cell, code of its solution region, test cells that must fail).
_WRONG = {
    "sigmoid-naive-overflows": ("sigmoid", "return 1.0 / (1.0 + np.exp(-x))", {"test_sigmoid"}),
    "sigmoid_grad-is-sigmoid": ("sigmoid_grad", "return sigmoid(x)", {"test_sigmoid_grad"}),
    "tanh_grad-sech-not-squared": ("tanh_grad", "return 1.0 / np.cosh(x)", {"test_tanh_grad"}),
    "relu-in-place": ("relu", "x[x < 0] = 0\nreturn x", {"test_relu"}),
    "relu_grad-one-for-negative": ("relu_grad", "return np.abs(np.sign(x)) + 0.0", {"test_relu_grad"}),
    "relu_grad-one-at-zero": ("relu_grad", "return (np.asarray(x) >= 0).astype(float)", {"test_relu_grad"}),
    "leaky_relu-constant-slope": (
        "leaky_relu",
        "x = np.asarray(x, dtype=float)\nreturn np.where(x > 0, x, alpha)",
        {"test_leaky_relu"},
    ),
    "leaky_relu_grad-ignores-alpha": (
        "leaky_relu_grad",
        "x = np.asarray(x, dtype=float)\nreturn np.where(x > 0, 1.0, 0.01)",
        {"test_leaky_relu"},
    ),
    "elu_grad-ignores-alpha": (
        "elu_grad",
        "x = np.asarray(x, dtype=float)\nreturn np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))",
        {"test_elu_grad"},
    ),
    "elu_grad-overflows": (
        "elu_grad",
        "x = np.asarray(x, dtype=float)\nreturn np.where(x > 0, 1.0, alpha * np.exp(x))",
        {"test_elu_grad"},
    ),
    "numerical_gradient-forward-difference": (
        "numerical_gradient",
        """
        grad = np.zeros(x.shape)
        f0 = float(f(x))
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            grad[i] = (float(f(x)) - f0) / h
            x[i] = old
        return grad
        """,
        {"test_numerical_gradient"},
    ),
    "mlp_backward-forgets-1-over-N": (
        "mlp_backward",
        """
        X, h1, W2 = cache["X"], cache["h1"], cache["W2"]
        d = softmax(logits)
        d[np.arange(len(y)), y] -= 1.0
        dz1 = (d @ W2.T) * (1.0 - h1**2)
        return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ d, "b2": d.sum(axis=0)}
        """,
        {"test_mlp_backward"},
    ),
    "mlp_backward-uses-tanh-of-h1": (
        "mlp_backward",
        """
        X, h1, W2 = cache["X"], cache["h1"], cache["W2"]
        d = softmax(logits)
        d[np.arange(len(y)), y] -= 1.0
        d /= len(y)
        dz1 = (d @ W2.T) * (1.0 - np.tanh(h1) ** 2)
        return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ d, "b2": d.sum(axis=0)}
        """,
        {"test_mlp_backward"},
    ),
    "experiment-last-over-first": (
        "experiment",
        """
        ratio_sigmoid = norms_sigmoid[-1] / norms_sigmoid[0]
        ratio_relu = norms_relu[-1] / norms_relu[0]
        factor_sigmoid = ratio_sigmoid ** (1 / 10)
        which_vanishes = "relu"
        """,
        {"test_experiment"},
    ),
    "experiment-object-equal-to-everything": (
        "experiment",
        """
        ratio_sigmoid = norms_sigmoid[0] / norms_sigmoid[-1]
        ratio_relu = norms_relu[0] / norms_relu[-1]
        factor_sigmoid = ratio_sigmoid ** (1 / (len(norms_sigmoid) - 1))

        class _Anything:
            def __eq__(self, other):
                return True

            __hash__ = object.__hash__

        which_vanishes = _Anything()
        """,
        {"test_experiment"},
    ),
}

#: Answers that pass every value test but delegate: (answer cell, whole cell, tests that must fail).
_DELEGATING = {
    "sigmoid-calls-course_lib": (
        "sigmoid",
        """
        from course_lib.numpy_impl.activations import sigmoid as _s

        def sigmoid(x):
            return _s(x)
        """,
        {"test_sigmoid"},
    ),
    "sigmoid-calls-torch": (
        "sigmoid",
        """
        def sigmoid(x):
            import torch

            x = np.asarray(x, dtype=np.float64)
            return torch.sigmoid(torch.as_tensor(x)).numpy()
        """,
        {"test_sigmoid"},
    ),
    "sigmoid_grad-calls-scipy": (
        "sigmoid_grad",
        """
        from scipy.special import expit

        def sigmoid_grad(x):
            s = expit(np.asarray(x, dtype=np.float64))
            return s * (1.0 - s)
        """,
        {"test_sigmoid_grad"},
    ),
    "tanh_grad-calls-torch": (
        "tanh_grad",
        """
        import torch

        def tanh_grad(x):
            t = torch.tanh(torch.as_tensor(np.asarray(x, dtype=np.float64)))
            return (1.0 - t * t).numpy()
        """,
        {"test_tanh_grad"},
    ),
    "mlp_backward-helper-calls-course_lib": (
        "mlp_backward",
        """
        from course_lib.numpy_impl import losses as _losses

        def _dlogits(logits, y):
            return _losses.softmax_cross_entropy_grad(logits, y)

        def mlp_backward(logits, y, cache):
            X, h1, W2 = cache["X"], cache["h1"], cache["W2"]
            d = _dlogits(logits, y)
            dz1 = (d @ W2.T) * (1.0 - h1**2)
            return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ d, "b2": d.sum(axis=0)}
        """,
        {"test_mlp_backward"},
    ),
    "relu-calls-torch-under-another-name": (
        "relu",
        """
        import torch.nn.functional as numpy_helpers

        def relu(x):
            import torch as tensor_lib

            t = tensor_lib.as_tensor(np.asarray(x, dtype=np.float64))
            return numpy_helpers.relu(t).numpy()
        """,
        {"test_relu"},
    ),
    "relu_grad-stashes-course_lib-on-numpy": (
        "relu_grad",
        """
        from course_lib.numpy_impl import activations as _A

        np.step = _A.relu_grad  # an attribute stored on an allowed module

        def relu_grad(x):
            return np.step(x)
        """,
        {"test_relu_grad"},
    ),
    "leaky_relu-calls-torch": (
        "leaky_relu",
        """
        import torch

        def leaky_relu(x, alpha=0.01):
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
            return torch.nn.functional.leaky_relu(t, alpha).numpy()
        """,
        {"test_leaky_relu"},
    ),
    "elu_grad-imports-by-name": (
        "elu_grad",
        """
        import importlib

        def elu_grad(x, alpha=1.0):
            return importlib.import_module("course_lib.numpy_impl.activations").elu_grad(x, alpha)
        """,
        {"test_elu_grad"},
    ),
    "numerical_gradient-calls-course_lib": (
        "numerical_gradient",
        """
        import course_lib.gradcheck as _gc

        def numerical_gradient(f, x, h=1e-5):
            return _gc.numerical_gradient(f, x, h)
        """,
        {"test_numerical_gradient"},
    ),
}


#: The cases graded by real nbgrader (each autograded student costs about 3 s): one wrong answer
#: per graded part and the main kinds of delegation. All cases also run in process (fast).
NBGRADER_WRONG = (
    "sigmoid-naive-overflows",
    "sigmoid_grad-is-sigmoid",
    "tanh_grad-sech-not-squared",
    "relu-in-place",
    "relu_grad-one-for-negative",
    "leaky_relu_grad-ignores-alpha",
    "elu_grad-ignores-alpha",
    "numerical_gradient-forward-difference",
    "mlp_backward-forgets-1-over-N",
    "experiment-last-over-first",
)
NBGRADER_DELEGATING = (
    "sigmoid-calls-course_lib",
    "sigmoid-calls-torch",
    "sigmoid_grad-calls-scipy",
    "mlp_backward-helper-calls-course_lib",
)


WRONG = {name: wrong(gid, code, *lost) for name, (gid, code, lost) in _WRONG.items()}
DELEGATING = {name: delegating(gid, code, *lost) for name, (gid, code, lost) in _DELEGATING.items()}


class TestAssignment01(AssignmentSuite):
    ASSIGNMENT = ASSIGNMENT
    MIN_PARTS = 6
    EXTRA_ANSWERS = frozenset({"leaky_relu_grad"})
    ANSWER_OF = {"test_leaky_relu": "leaky_relu"}
    NOT_FROM_SCRATCH = frozenset({"test_experiment"})  # numbers computed from given norms

    def test_the_issue_cases_are_graded(self):
        assert {"sigmoid-calls-course_lib", "sigmoid-calls-torch"} <= set(NBGRADER_DELEGATING)


# --- the command line and the workspace guard (fast) ---------------------------------------------


def test_grading_processes_skip_the_slow_jsonschema_import():
    """course_lib.grading keeps jsonschema from compiling rfc3987_syntax's grammar (~2 s of CPU in
    the orchestrator and every worker); notebooks still read and validate."""
    code = (
        "import sys, course_lib.grading.cli, nbformat\n"
        "nbformat.validate(nbformat.read(sys.argv[1], as_version=4))\n"
        "print(sys.modules.get('rfc3987_syntax', 'absent'))"
    )
    release = Path(__file__).resolve().parents[1] / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    proc = subprocess.run([sys.executable, "-c", code, str(release)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("None", "absent"), proc.stdout


def test_cli_has_release_subcommand():
    args = build_parser().parse_args(["release", ASSIGNMENT, "--no-verify"])
    assert args.command == "release" and args.assignments == [ASSIGNMENT] and args.no_verify


def test_cli_rejects_unknown_assignment(capsys):
    assert main(["release", "99-nope"]) == 1
    assert "unknown assignment" in capsys.readouterr().err


def test_score_problems_name_the_bad_cells():
    full = {"total": 3.0, "max": 3.0, "cells": {"test_a": (1.0, 1.0), "test_b": (2.0, 2.0)}}
    zero = {"total": 0.0, "max": 3.0, "cells": {"test_a": (0.0, 1.0), "test_b": (0.0, 2.0)}}
    assert score_problems(full, zero) == []
    problems = score_problems(
        zero | {"total": 1.0, "cells": {"test_a": (1.0, 1.0), "test_b": (0.0, 2.0)}}, full
    )
    assert len(problems) == 2, problems
    assert "test_b 0/2" in problems[0] and "test_a 1/1" in problems[1], problems
    assert score_problems({"total": 0.0, "max": 0.0, "cells": {}}, zero) != []


def test_notebook_differences_detect_a_stale_release():
    nb = read(RELEASE)
    assert notebook_differences(nb, read(RELEASE)) == []
    edited = copy.deepcopy(nb)
    cell_by_id(edited, "test_relu").source += "\nassert True, 'changed'"
    cell_by_id(edited, "test_sigmoid").metadata["nbgrader"]["points"] = 5
    diffs = notebook_differences(nb, edited)
    assert any("test_relu" in d and "source" in d for d in diffs), diffs
    assert any("test_sigmoid" in d and "nbgrader" in d for d in diffs), diffs
    edited.cells.pop()
    assert any("cells instead of" in d for d in notebook_differences(nb, edited))


def test_workspace_refuses_to_live_in_the_repository():
    with pytest.raises(GradingError, match="inside the repository"):
        prepare_workspace(ROOT / "grading-here", ASSIGNMENT)
    assert not (ROOT / "grading-here").exists()


