"""Assignments end to end: the solution scores full marks, the release zero, wrong answers lose.

Fast tests check the notebooks' structure, the answer-integrity check and the command line.
The ``slow`` ones grade with real nbgrader: one workspace (outside the repository) and one
``nbgrader autograde`` run for a class of fake students built from the solution, each with one
deliberately wrong or delegating answer, and assert every per-cell score exactly.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from assignment_harness import (
    cell_by_id,
    nbgrader_meta,
    read,
    replace_cell,
    replace_solution,
    run_in_process,
)

from course_lib.grading import integrity
from course_lib.grading.cli import build_parser, main
from course_lib.grading.integrity import (
    FromScratchError,
    assert_from_scratch,
    from_scratch_problems,
)
from course_lib.grading.release import cells_with_outputs, notebook_differences, score_problems
from course_lib.grading.workspace import (
    GradingError,
    add_submission,
    grade_all,
    prepare_workspace,
)

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

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# --- building student notebooks from the solution ------------------------------------------------


#: Plausible wrong answers: (answer cell, code of its solution region, test cells that must fail).
WRONG = {
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
DELEGATING = {
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


def wrong_notebook(case: str) -> nbformat.NotebookNode:
    grade_id, code, _ = WRONG[case]
    return replace_solution(read(SOLUTION), grade_id, code)


def delegating_notebook(case: str) -> nbformat.NotebookNode:
    grade_id, source, _ = DELEGATING[case]
    return replace_cell(read(SOLUTION), grade_id, source)


def expected_cells(lost: set[str]) -> dict[str, tuple[float, float]]:
    return {t: (0.0 if t in lost else float(p), float(p)) for t, p in POINTS.items()}


# --- the notebooks' structure (fast) -------------------------------------------------------------


def test_points_and_grade_ids_match_the_contract():
    nb = read(SOLUTION)
    tests = {
        nbgrader_meta(c)["grade_id"]: nbgrader_meta(c).get("points")
        for c in nb.cells
        if nbgrader_meta(c).get("grade")
    }
    assert tests == POINTS, f"graded cells and points in the notebook: {tests}"
    assert len(tests) >= 6
    answers = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("solution")]
    for grade_id in answers:
        source = cell_by_id(nb, grade_id).source
        assert source.count(BEGIN) == source.count(END) == 1, f"{grade_id}: one solution region"
    for test_id in tests:
        assert test_id.removeprefix("test_") in answers, f"{test_id} has no answer cell"
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"


def test_notebooks_are_clean_and_use_python3():
    for path in (SOLUTION, RELEASE):
        nb = read(path)
        nbformat.validate(nb)
        assert nb.nbformat == 4
        assert nb.metadata["kernelspec"]["name"] == "python3", f"{path}: kernelspec python3"
        assert cells_with_outputs(nb) == [], f"{path} is committed with outputs: clear them"
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if cell.cell_type == "code" and meta:
                assert meta.get("solution") or meta.get("locked"), (
                    f"{path}: code cell {meta.get('grade_id')} must be an answer or locked"
                )


def _last_statement_is_assert_with_message(source: str) -> bool:
    body = ast.parse(source).body
    return bool(body) and isinstance(body[-1], ast.Assert) and body[-1].msg is not None


def _strip_hidden(source: str) -> str:
    return re.sub(rf"{HIDDEN_BEGIN}.*?{HIDDEN_END}\n?", "", source, flags=re.S)


@pytest.mark.parametrize("test_id", sorted(POINTS))
def test_test_cells_end_in_a_teaching_assert_and_hide_other_inputs(test_id):
    source = cell_by_id(read(SOLUTION), test_id).source
    assert source.count(HIDDEN_BEGIN) == source.count(HIDDEN_END) == 1, f"{test_id}: hidden tests"
    visible = _strip_hidden(source)
    assert _last_statement_is_assert_with_message(source), f"{test_id} must end in assert ..., msg"
    assert _last_statement_is_assert_with_message(visible), (
        f"{test_id} without its hidden tests (the student's view) must end in assert ..., msg"
    )
    hidden = source[source.index(HIDDEN_BEGIN) :]
    seeds = set(re.findall(r"default_rng\((\d+)\)", hidden)) & set(
        re.findall(r"default_rng\((\d+)\)", visible)
    )
    assert not seeds, f"{test_id}: hidden tests must use other inputs than the visible ones"
    if test_id != "test_experiment":  # every function part checks the answer is the student's
        assert "_assert_from_scratch(" in hidden, f"{test_id}: hidden tests must check integrity"


def test_solution_passes_every_test_in_process_and_fast():
    start = time.perf_counter()
    results = run_in_process(read(SOLUTION))
    seconds = time.perf_counter() - start
    failed = {k: repr(v) for k, v in results.items() if v is not None}
    assert not failed, f"the solution fails {failed}"
    assert set(results) == set(POINTS)
    assert seconds < 30, f"the solution notebook took {seconds:.1f} s; it must run in < 60 s"


@pytest.mark.parametrize("case", sorted(DELEGATING))
def test_delegating_answers_pass_the_value_tests_without_the_integrity_check(case, monkeypatch):
    """Control experiment: these answers are *right*; only the integrity check removes credit."""
    monkeypatch.setattr(integrity, "assert_from_scratch", lambda *a, **k: None)
    results = run_in_process(delegating_notebook(case))
    failed = {k: repr(v) for k, v in results.items() if v is not None}
    assert not failed, f"{case} should pass every value test, but fails {failed}"


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_answers_fail_in_process(case):
    results = run_in_process(wrong_notebook(case))
    failed = {k for k, v in results.items() if v is not None}
    assert failed == WRONG[case][2], f"{case}: failing tests {failed}"


@pytest.mark.parametrize("case", sorted(DELEGATING))
def test_delegating_answers_fail_in_process(case):
    results = run_in_process(delegating_notebook(case))
    failed = {k: v for k, v in results.items() if v is not None}
    assert set(failed) == DELEGATING[case][2], f"{case}: failing tests {set(failed)}"
    assert all(isinstance(v, FromScratchError) for v in failed.values()), (
        f"{case} must fail the integrity check, not a value test: {failed}"
    )


def test_every_graded_part_has_a_wrong_and_most_a_delegating_answer():
    graded_wrong = {t for case in NBGRADER_WRONG for t in WRONG[case][2]}
    assert graded_wrong == set(POINTS), "nbgrader must see a wrong answer for every part"
    assert {t for *_, lost in WRONG.values() for t in lost} == set(POINTS)
    assert len({t for *_, lost in DELEGATING.values() for t in lost}) >= 5
    assert {"sigmoid-calls-course_lib", "sigmoid-calls-torch"} <= set(NBGRADER_DELEGATING)


# --- the integrity check (fast) ------------------------------------------------------------------

import course_lib.numpy_impl.activations as _A  # noqa: E402  (fixtures for the checks below)
from course_lib.numpy_impl.activations import sigmoid as _ref_sigmoid  # noqa: E402


def _clean_sigmoid(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _clean_helper(x):
    return np.linalg.norm(x) + len(np.shape(x))


def _clean_user(x):
    squares = [v * v for v in np.ravel(x)]
    return _clean_sigmoid(x) + _clean_helper(x) + sum(squares) + (lambda v: np.tanh(v))(x)


def _delegates_via_alias(x):
    return _ref_sigmoid(x)


def _delegates_via_module(x):
    return _A.relu(x)


def _delegates_via_helper(x):
    return _delegates_via_module(x) + 1


def _delegates_in_comprehension(x):
    return [_A.tanh(v) for v in x]


def _imports_torch(x):
    import torch

    return torch.sigmoid(torch.as_tensor(x)).numpy()


def _imports_from_scipy(x):
    from scipy.special import expit

    return expit(x)


def _default_argument(x, f=_ref_sigmoid):
    return f(x)


_partial = functools.partial(_A.leaky_relu, alpha=0.2)


def _via_partial(x):
    return _partial(x)


_TABLE = {"s": _ref_sigmoid}


def _via_container(x):
    return _TABLE["s"](x)


class _Net:
    def forward(self, x):
        return _A.relu(x)


def _via_user_class(x):
    return _Net().forward(x)


def _dynamic_import(x):
    import importlib

    return importlib.import_module("torch").sigmoid(x)


def _eval(x):
    return eval("x")


def _closure():
    f = _ref_sigmoid
    return lambda x: f(x)


def _attribute_named_torch(cfg):
    return cfg.torch + cfg.scipy  # attribute names are not modules


@pytest.mark.parametrize(
    "fn", [_clean_sigmoid, _clean_helper, _clean_user, _attribute_named_torch], ids=lambda f: f.__name__
)
def test_from_scratch_accepts_numpy_code(fn):
    assert from_scratch_problems(fn) == []
    assert_from_scratch(fn)


@pytest.mark.parametrize(
    ("fn", "culprit"),
    [
        (_delegates_via_alias, "course_lib.numpy_impl.activations"),
        (_delegates_via_module, "course_lib.numpy_impl.activations"),
        (_delegates_via_helper, "_delegates_via_module"),
        (_delegates_in_comprehension, "course_lib.numpy_impl.activations"),
        (_imports_torch, "imports torch"),
        (_imports_from_scipy, "imports scipy.special"),
        (_default_argument, "default argument"),
        (_via_partial, "course_lib.numpy_impl.activations"),
        (_via_container, "course_lib.numpy_impl.activations"),
        (_via_user_class, "course_lib.numpy_impl.activations"),
        (_dynamic_import, "torch"),
        (_eval, "eval"),
        (_closure(), "closure"),
        (_ref_sigmoid, "course_lib"),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else None,
)
def test_from_scratch_rejects_delegation(fn, culprit):
    problems = from_scratch_problems(fn)
    assert problems, f"{fn} delegates but passed the check"
    assert any(culprit in p for p in problems), f"{culprit!r} not named in {problems}"
    with pytest.raises(FromScratchError, match="must be your own NumPy code") as info:
        assert_from_scratch(fn)
    assert isinstance(info.value, AssertionError), "a failed check must fail a test cell"


def test_from_scratch_finds_library_objects_by_identity():
    import scipy.special
    import torch

    ns = {
        "__name__": "__main__",
        "np": np,
        "expit": scipy.special.expit,
        "T": torch.tanh,
        "Tensor": torch.Tensor,
    }
    exec(
        "def a(x):\n    return expit(x)\n"
        "def b(x):\n    return T(x)\n"
        "def c(x):\n    return Tensor.sigmoid(x)\n"
        "def ok(x):\n    return np.exp(x) + np.add(x, 1)\n",
        ns,
    )
    assert any("scipy.special" in p for p in from_scratch_problems(ns["a"])), "scipy ufunc"
    assert any("torch" in p for p in from_scratch_problems(ns["b"])), "torch builtin"
    assert any("torch" in p for p in from_scratch_problems(ns["c"])), "torch method descriptor"
    assert from_scratch_problems(ns["ok"]) == [], "numpy's own ufuncs are allowed"


def test_from_scratch_forbidden_list_is_configurable():
    assert from_scratch_problems(_clean_sigmoid, forbidden=("numpy",)) != []
    assert from_scratch_problems(_delegates_via_alias, forbidden=("torch",)) == []


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


# --- real nbgrader (slow) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One workspace, one autograde run: the solution, the release and every fake student."""
    ws = prepare_workspace(tmp_path_factory.mktemp("grading"), ASSIGNMENT)
    add_submission(ws, "solution", SOLUTION)
    add_submission(ws, "release", RELEASE)
    for case in NBGRADER_WRONG:
        add_submission(ws, f"wrong-{case}", wrong_notebook(case))
    for case in NBGRADER_DELEGATING:
        add_submission(ws, f"delegates-{case}", delegating_notebook(case))
    start = time.perf_counter()
    scores = grade_all(ws)
    print(f"autograded {len(scores)} students in {time.perf_counter() - start:.1f} s")
    assert (ROOT / "gradebook.db").exists() is False, "grading must leave no gradebook in the repo"
    return ws, scores


@pytest.mark.slow
def test_solution_scores_full_marks(graded):
    _, scores = graded
    s = scores["solution"]
    assert s["cells"] == expected_cells(set()), f"solution per cell: {s['cells']}"
    assert (s["total"], s["max"]) == (TOTAL, TOTAL)


@pytest.mark.slow
def test_released_notebook_scores_zero(graded):
    _, scores = graded
    r = scores["release"]
    assert r["cells"] == expected_cells(set(POINTS)), f"release per cell: {r['cells']}"
    assert (r["total"], r["max"]) == (0, TOTAL)


@pytest.mark.slow
@pytest.mark.parametrize("case", NBGRADER_WRONG)
def test_a_wrong_answer_loses_exactly_its_part(graded, case):
    _, scores = graded
    lost = WRONG[case][2]
    s = scores[f"wrong-{case}"]
    assert s["cells"] == expected_cells(lost), f"{case}: per-cell scores {s['cells']}"
    assert s["total"] == TOTAL - sum(POINTS[t] for t in lost)


@pytest.mark.slow
@pytest.mark.parametrize("case", NBGRADER_DELEGATING)
def test_a_delegating_answer_gets_no_credit(graded, case):
    _, scores = graded
    lost = DELEGATING[case][2]
    s = scores[f"delegates-{case}"]
    assert s["cells"] == expected_cells(lost), (
        f"{case} calls a library instead of NumPy and must lose {sorted(lost)}: {s['cells']}"
    )


@pytest.mark.slow
def test_exercises_are_not_stale(graded):
    ws, _ = graded
    regenerated = ws.release_dir / f"{ASSIGNMENT}.ipynb"
    diffs = notebook_differences(regenerated, RELEASE)
    assert not diffs, (
        f"{RELEASE.relative_to(ROOT)} is stale (differs from what solutions/ generates: "
        f"{diffs[:5]}): run `course release {ASSIGNMENT}` and commit exercises/"
    )
