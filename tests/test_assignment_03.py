"""Assignment 03 (RBMs) end to end: the solution scores full marks, the release zero, and each
graded part loses exactly its points for a plausible wrong answer or a delegating one.

Fast tests check the notebooks' structure and run every fake student in process; the ``slow``
ones grade the solution, the release and a class of fake students with real nbgrader, in one
workspace (outside the repository) and one ``nbgrader autograde`` run, and compare every per-cell
score. Parts 4 and 5 are graded on their own: their tests run the student's function with the
course's samplers, so a wrong ``sample_h`` costs part 1 only.
"""

from __future__ import annotations

import time

import pytest
from assignment_harness import (
    ROOT,
    answer_ids,
    build_class,
    cell_by_id,
    check_test_cell,
    contract_problems,
    delegating,
    expected_cells,
    failing,
    grade_class,
    leaked_lines,
    notebook_code,
    notebook_problems,
    read,
    run_in_process,
    timed_run,
    wrong,
)

from course_lib.grading import integrity
from course_lib.grading.integrity import FromScratchError
from course_lib.grading.release import notebook_differences

ASSIGNMENT = "03-rbm"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_sample_h": 2,
    "test_sample_v": 1,
    "test_free_energy": 2,
    "test_cd1_update": 3,
    "test_greedy_pretrain": 2,
    "test_experiment": 2,
}
TOTAL = sum(POINTS.values())

#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    "sample_h-wrong-comparison": wrong(
        "sample_h",
        """
        p_h = sigmoid(v @ W + b_h)
        return p_h, (rng.random(p_h.shape) > p_h).astype(float)
        """,
        "test_sample_h",
    ),
    "sample_h-probabilities-as-sample": wrong(
        "sample_h", "p_h = sigmoid(v @ W + b_h)\nreturn p_h, p_h", "test_sample_h"
    ),
    "sample_v-global-random": wrong(
        "sample_v",
        """
        p_v = sigmoid(h @ W.T + b_v)
        return p_v, (np.random.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "sample_v-forgets-bias": wrong(
        "sample_v",
        """
        p_v = sigmoid(h @ W.T)
        return p_v, (rng.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "free_energy-sign-of-visible-term": wrong(
        "free_energy",
        "return (v @ b_v) - np.logaddexp(0.0, v @ W + b_h).sum(axis=1)",
        "test_free_energy",
    ),
    "free_energy-overflows": wrong(
        "free_energy",
        "return -(v @ b_v) - np.log(1.0 + np.exp(v @ W + b_h)).sum(axis=1)",
        "test_free_energy",
    ),
    "cd1-v-and-h-swapped": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1 = sigmoid(v1 @ W + b_h)
        dW = (p_h0.T @ v0 - p_h1.T @ v1) / v0.shape[0]
        return W + lr * dW, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (p_h0 - p_h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "cd1-binary-hidden-statistics": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1, h1 = sample_h(v1, W, b_h, rng)
        dW = (v0.T @ h0 - v1.T @ h1) / v0.shape[0]
        return W + lr * dW, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (h0 - h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "cd1-modifies-W-in-place": wrong(
        "cd1_update",
        """
        p_h0, h0 = sample_h(v0, W, b_h, rng)
        _, v1 = sample_v(h0, W, b_v, rng)
        p_h1 = sigmoid(v1 @ W + b_h)
        W += lr * (v0.T @ p_h0 - v1.T @ p_h1) / v0.shape[0]
        return W, b_v + lr * (v0 - v1).mean(axis=0), b_h + lr * (p_h0 - p_h1).mean(axis=0)
        """,
        "test_cd1_update",
    ),
    "greedy-stacks-on-samples": wrong(
        "greedy_pretrain",
        """
        layers, data = [], X
        for n_hidden in hidden_sizes:
            W, b_v, b_h = train_rbm(data, n_hidden, rng)
            layers.append((W, b_v, b_h))
            data = sample_h(data, W, b_h, rng)[1]
        return layers
        """,
        "test_greedy_pretrain",
    ),
    "greedy-trains-every-rbm-on-X": wrong(
        "greedy_pretrain",
        "return [train_rbm(X, n_hidden, rng) for n_hidden in hidden_sizes]",
        "test_greedy_pretrain",
    ),
    "experiment-divides-by-cd-norm": wrong(
        "experiment",
        """
        rel_errors = {k: float(np.linalg.norm(g - exact) / np.linalg.norm(g)) for k, g in cd.items()}
        cosine_cd1 = float(np.sum(cd[1] * exact) / (np.linalg.norm(cd[1]) * np.linalg.norm(exact)))
        smallest_k = min(k for k, e in rel_errors.items() if e < 0.01)
        """,
        "test_experiment",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "sample_h-calls-course_lib": delegating(
        "sample_h",
        """
        from course_lib.numpy_impl.rbm import sample_hidden as _sample_hidden

        def sample_h(v, W, b_h, rng):
            return _sample_hidden(v, W, b_h, rng)
        """,
        "test_sample_h",
    ),
    "sample_v-calls-scipy": delegating(
        "sample_v",
        """
        from scipy.special import expit

        def sample_v(h, W, b_v, rng):
            p_v = expit(h @ W.T + b_v)
            return p_v, (rng.random(p_v.shape) < p_v).astype(float)
        """,
        "test_sample_v",
    ),
    "free_energy-calls-torch": delegating(
        "free_energy",
        """
        import torch

        def free_energy(v, W, b_v, b_h):
            a = torch.as_tensor(v @ W + b_h)
            return -(v @ b_v) - torch.logaddexp(torch.zeros_like(a), a).sum(dim=1).numpy()
        """,
        "test_free_energy",
    ),
    "cd1-calls-course_lib-RBM": delegating(
        "cd1_update",
        """
        from course_lib.numpy_impl.rbm import RBM as _RBM

        def cd1_update(v0, W, b_v, b_h, lr, rng):
            model = _RBM(W.shape[0], W.shape[1])
            model.W, model.b_v, model.b_h = W.copy(), b_v.copy(), b_h.copy()
            g = model.cd_gradient(v0, k=1, rng=rng)
            return W + lr * g["W"], b_v + lr * g["b_v"], b_h + lr * g["b_h"]
        """,
        "test_cd1_update",
    ),
    "greedy-helper-calls-course_lib": delegating(
        "greedy_pretrain",
        """
        from course_lib.numpy_impl.activations import sigmoid as _library_sigmoid

        def _up(data, W, b_h):
            return _library_sigmoid(data @ W + b_h)

        def greedy_pretrain(X, hidden_sizes, train_rbm, rng):
            layers, data = [], X
            for n_hidden in hidden_sizes:
                W, b_v, b_h = train_rbm(data, n_hidden, rng)
                layers.append((W, b_v, b_h))
                data = _up(data, W, b_h)
            return layers
        """,
        "test_greedy_pretrain",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "sample_h-wrong-comparison",
    "sample_v-global-random",
    "free_energy-sign-of-visible-term",
    "cd1-v-and-h-swapped",
    "greedy-stacks-on-samples",
    "experiment-divides-by-cd-norm",
)
NBGRADER_DELEGATING = (
    "sample_h-calls-course_lib",
    "cd1-calls-course_lib-RBM",
    "greedy-helper-calls-course_lib",
)


# --- structure (fast) ----------------------------------------------------------------------------


def test_points_and_grade_ids_match_the_contract():
    nb = read(SOLUTION)
    assert contract_problems(nb, POINTS) == []
    assert len(POINTS) >= 5, "the issue asks for at least 5 graded parts"
    assert {t.removeprefix("test_") for t in POINTS} <= set(answer_ids(nb)), "every part has an answer cell"


@pytest.mark.parametrize("path", [SOLUTION, RELEASE], ids=["solution", "release"])
def test_notebooks_are_clean_and_use_python3(path):
    assert notebook_problems(read(path), path.name) == []


@pytest.mark.parametrize("test_id", sorted(POINTS))
def test_test_cells_end_in_a_teaching_assert_and_hide_other_inputs(test_id):
    source = cell_by_id(read(SOLUTION), test_id).source
    assert check_test_cell(source, test_id, require_integrity=test_id != "test_experiment") == []


def test_release_leaks_no_solution_or_hidden_test_line():
    assert leaked_lines(read(SOLUTION), notebook_code(read(RELEASE))) == []


def test_solution_passes_every_test_in_process_and_fast():
    results, seconds = timed_run(read(SOLUTION))
    assert {k: repr(v) for k, v in results.items() if v is not None} == {}
    assert set(results) == set(POINTS)
    assert seconds < 30, f"the solution notebook took {seconds:.1f} s; it must run in < 60 s on 2 cores"


def test_release_fails_every_test_in_process():
    assert failing(run_in_process(read(RELEASE))) == set(POINTS)


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_answers_fail_exactly_their_part_in_process(case):
    failed = failing(run_in_process(WRONG[case].apply(read(SOLUTION))))
    assert failed == WRONG[case].fails, f"{case}: failing tests {failed}"


@pytest.mark.parametrize("case", sorted(DELEGATING))
def test_delegating_answers_pass_the_value_tests_without_the_integrity_check(case, monkeypatch):
    """Control experiment: these answers are *right*; only the integrity check removes credit."""
    monkeypatch.setattr(integrity, "assert_from_scratch", lambda *a, **k: None)
    results = run_in_process(DELEGATING[case].apply(read(SOLUTION)))
    assert {k: repr(v) for k, v in results.items() if v is not None} == {}, case


@pytest.mark.parametrize("case", sorted(DELEGATING))
def test_delegating_answers_fail_the_integrity_check_in_process(case):
    results = run_in_process(DELEGATING[case].apply(read(SOLUTION)))
    failed = {k: v for k, v in results.items() if v is not None}
    assert set(failed) == DELEGATING[case].fails, f"{case}: failing tests {set(failed)}"
    assert all(isinstance(v, FromScratchError) for v in failed.values()), (
        f"{case} must fail the integrity check, not a value test: {failed}"
    )


def test_every_graded_part_has_a_wrong_answer_graded_by_nbgrader():
    assert {t for case in NBGRADER_WRONG for t in WRONG[case].fails} == set(POINTS)
    assert {t for case in WRONG.values() for t in case.fails} == set(POINTS)
    assert {t for case in DELEGATING.values() for t in case.fails} == set(POINTS) - {"test_experiment"}


# --- real nbgrader (slow) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One workspace, one autograde run: the solution, the release and every fake student."""
    solution = read(SOLUTION)
    students = {"solution": SOLUTION, "release": RELEASE}
    students |= build_class(solution, {c: WRONG[c] for c in NBGRADER_WRONG}, prefix="wrong-")
    students |= build_class(solution, {c: DELEGATING[c] for c in NBGRADER_DELEGATING}, prefix="delegates-")
    start = time.perf_counter()
    result = grade_class(tmp_path_factory.mktemp("grading"), ASSIGNMENT, students)
    total = time.perf_counter() - start
    print(f"autograded {len(students)} students in {result.seconds:.1f} s ({total:.1f} s with the set-up)")
    assert not (ROOT / "gradebook.db").exists(), "grading must leave no gradebook in the repository"
    return result


@pytest.mark.slow
def test_solution_scores_full_marks(graded):
    s = graded.scores["solution"]
    assert s["cells"] == expected_cells(POINTS, set()), f"solution per cell: {s['cells']}"
    assert (s["total"], s["max"]) == (TOTAL, TOTAL)


@pytest.mark.slow
def test_released_notebook_scores_zero(graded):
    r = graded.scores["release"]
    assert r["cells"] == expected_cells(POINTS, set(POINTS)), f"release per cell: {r['cells']}"
    assert (r["total"], r["max"]) == (0, TOTAL)


@pytest.mark.slow
@pytest.mark.parametrize("case", NBGRADER_WRONG)
def test_a_wrong_answer_loses_exactly_its_part(graded, case):
    lost = WRONG[case].fails
    s = graded.scores[f"wrong-{case}"]
    assert s["cells"] == expected_cells(POINTS, lost), f"{case}: per-cell scores {s['cells']}"
    assert s["total"] == TOTAL - sum(POINTS[t] for t in lost)


@pytest.mark.slow
@pytest.mark.parametrize("case", NBGRADER_DELEGATING)
def test_a_delegating_answer_gets_no_credit(graded, case):
    lost = DELEGATING[case].fails
    s = graded.scores[f"delegates-{case}"]
    assert s["cells"] == expected_cells(POINTS, lost), (
        f"{case} calls a library instead of NumPy and must lose {sorted(lost)}: {s['cells']}"
    )


@pytest.mark.slow
def test_exercises_are_not_stale(graded):
    regenerated = graded.workspace.release_dir / f"{ASSIGNMENT}.ipynb"
    diffs = notebook_differences(regenerated, RELEASE)
    assert not diffs, (
        f"{RELEASE.relative_to(ROOT)} is stale (differs from what solutions/ generates: "
        f"{diffs[:5]}): run `course release {ASSIGNMENT}` and commit exercises/"
    )
