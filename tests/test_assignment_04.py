"""Assignment 04 (regularization) end to end: the solution scores full marks, the release zero, and
each graded part loses exactly its points for a plausible wrong answer or a delegating one.

Fast tests check the notebooks' structure and run every fake student in process; the ``slow``
ones grade the solution, the release and a class of fake students with real nbgrader, in one
workspace (outside the repository) and one ``nbgrader autograde`` run, and compare every per-cell
score. Evaluation mode is graded on its own (``test_dropout_eval``), so an answer that scales by
1 - p at test time loses that part only; the backward pass is tested on caches the test builds, so
a wrong forward pass does not cost the backward part too.
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

ASSIGNMENT = "04-regularization"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_dropout_forward": 2,
    "test_dropout_backward": 2,
    "test_dropout_eval": 1,
    "test_l2": 2,
    "test_max_norm": 2,
    "test_early_stopping": 2,
    "test_ensemble_predict": 2,
}
TOTAL = sum(POINTS.values())

#: Test cell -> the answer cell it grades (the evaluation-mode part is written in dropout_forward).
ANSWER_OF = {t: t.removeprefix("test_") for t in POINTS}
ANSWER_OF |= {"test_dropout_eval": "dropout_forward", "test_l2": "l2_grads"}

#: The training branch of a correct dropout_forward, for wrong answers that differ only in evaluation.
_TRAINING = """
x = np.asarray(x, dtype=np.float64)
keep = rng.random(x.shape) >= p
if p >= 1.0:
    return np.zeros_like(x), (keep, p)
return np.where(keep, x / (1.0 - p), 0.0), (keep, p)
"""

#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    "dropout-scales-by-p": wrong(
        "dropout_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        if not train:
            return x, None
        keep = rng.random(x.shape) >= p
        return np.where(keep, x * p, 0.0), (keep, p)
        """,
        "test_dropout_forward",
    ),
    "dropout-keeps-with-probability-p": wrong(  # TF1's keep_prob read as the drop rate
        "dropout_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        if not train:
            return x, None
        keep = rng.random(x.shape) < p
        if p <= 0.0:
            return np.zeros_like(x), (keep, p)
        return np.where(keep, x / p, 0.0), (keep, p)
        """,
        "test_dropout_forward",
    ),
    "dropout-global-random-state": wrong(
        "dropout_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        if not train:
            return x, None
        keep = np.random.random(x.shape) >= p
        if p >= 1.0:
            return np.zeros_like(x), (keep, p)
        return np.where(keep, x / (1.0 - p), 0.0), (keep, p)
        """,
        "test_dropout_forward",
    ),
    "dropout-one-mask-per-row": wrong(
        "dropout_forward",
        """
        x = np.asarray(x, dtype=np.float64)
        if not train:
            return x, None
        keep = np.broadcast_to(rng.random(x.shape[:-1] + (1,)) >= p, x.shape)
        if p >= 1.0:
            return np.zeros_like(x), (keep, p)
        return np.where(keep, x / (1.0 - p), 0.0), (keep, p)
        """,
        "test_dropout_forward",
    ),
    "backward-regenerates-the-mask": wrong(
        "dropout_backward",
        """
        if cache is None:
            return dout
        _, p = cache
        if p >= 1.0:
            return np.zeros_like(dout)
        fresh = np.random.default_rng().random(np.shape(dout)) >= p
        return np.where(fresh, dout / (1.0 - p), 0.0)
        """,
        "test_dropout_backward",
    ),
    "backward-forgets-the-scaling": wrong(
        "dropout_backward",
        """
        if cache is None:
            return dout
        keep, p = cache
        return np.where(keep, dout, 0.0)
        """,
        "test_dropout_backward",
    ),
    "eval-scales-by-1-minus-p": wrong(  # old (non-inverted) dropout's test-time rule, on top of inverted
        "dropout_forward",
        "if not train:\n    return np.asarray(x, dtype=np.float64) * (1.0 - p), None\n" + _TRAINING,
        "test_dropout_eval",
    ),
    "eval-still-drops": wrong("dropout_forward", _TRAINING, "test_dropout_eval"),  # ignores train
    "l2-gradient-2-lambda-W": wrong(  # Keras's l2(k) convention, k sum W^2, mixed with ours
        "l2_grads",
        'return {k: 2 * lam * v if k.startswith("W") else np.zeros_like(v) for k, v in params.items()}',
        "test_l2",
    ),
    "l2-penalty-without-the-half": wrong(
        "l2_penalty",
        'return float(lam * sum(np.sum(v**2) for k, v in params.items() if k.startswith("W")))',
        "test_l2",
    ),
    "l2-penalizes-biases": wrong(
        "l2_penalty", "return float(0.5 * lam * sum(np.sum(v**2) for v in params.values()))", "test_l2"
    ),
    "max_norm-over-rows": wrong(
        "max_norm",
        """
        W = np.asarray(W, dtype=np.float64)
        norms = np.linalg.norm(W, axis=1, keepdims=True)
        return W * np.minimum(1.0, c / np.maximum(norms, 1e-300))
        """,
        "test_max_norm",
    ),
    "max_norm-normalises-every-column": wrong(
        "max_norm",
        """
        W = np.asarray(W, dtype=np.float64)
        return W * (c / np.maximum(np.linalg.norm(W, axis=0), 1e-300))
        """,
        "test_max_norm",
    ),
    "max_norm-in-place": wrong(
        "max_norm",
        """
        norms = np.linalg.norm(W, axis=0)
        over = norms > c
        W[:, over] *= c / norms[over]
        return W
        """,
        "test_max_norm",
    ),
    "early_stopping-off-by-one": wrong(
        "early_stopping",
        """
        best_epoch, best, wait = None, np.inf, 0
        for epoch, loss in enumerate(val_losses, start=1):
            if loss < best - min_delta:
                best_epoch, best, wait = epoch, loss, 0
            else:
                wait += 1
                if wait > patience:
                    return best_epoch, epoch
        return best_epoch, None
        """,
        "test_early_stopping",
    ),
    "early_stopping-ties-improve": wrong(
        "early_stopping",
        """
        best_epoch, best, wait = None, np.inf, 0
        for epoch, loss in enumerate(val_losses, start=1):
            if loss <= best - min_delta:
                best_epoch, best, wait = epoch, loss, 0
            else:
                wait += 1
                if wait >= patience:
                    return best_epoch, epoch
        return best_epoch, None
        """,
        "test_early_stopping",
    ),
    "early_stopping-epochs-from-0": wrong(
        "early_stopping",
        """
        best_epoch, best, wait = None, np.inf, 0
        for epoch, loss in enumerate(val_losses):
            if loss < best - min_delta:
                best_epoch, best, wait = epoch, loss, 0
            else:
                wait += 1
                if wait >= patience:
                    return best_epoch, epoch
        return best_epoch, None
        """,
        "test_early_stopping",
    ),
    "ensemble-averages-argmaxes": wrong(
        "ensemble_predict",
        "return np.rint(np.asarray(logits).argmax(axis=2).mean(axis=0)).astype(int)",
        "test_ensemble_predict",
    ),
    "ensemble-majority-vote": wrong(
        "ensemble_predict",
        """
        votes = np.asarray(logits).argmax(axis=2)  # (K, N)
        return np.array([np.bincount(v, minlength=np.shape(logits)[2]).argmax() for v in votes.T])
        """,
        "test_ensemble_predict",
    ),
    "ensemble-averages-logits": wrong(
        "ensemble_predict", "return np.asarray(logits).mean(axis=0).argmax(axis=1)", "test_ensemble_predict"
    ),
    "ensemble-softmax-overflows": wrong(
        "ensemble_predict",
        """
        e = np.exp(np.asarray(logits, dtype=np.float64))
        return (e / e.sum(axis=2, keepdims=True)).mean(axis=0).argmax(axis=1)
        """,
        "test_ensemble_predict",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "dropout_forward-calls-course_lib": delegating(
        "dropout_forward",
        """
        from course_lib.numpy_impl import layers as _layers

        def dropout_forward(x, p, rng, train=True):
            x = np.asarray(x, dtype=np.float64)
            out, m = _layers.dropout_forward(x, p, rng, train)
            if not train:
                return out, None
            return out, (np.ones(x.shape, dtype=bool) if m is None else m != 0, p)
        """,
        "test_dropout_forward", "test_dropout_eval",
    ),
    "dropout_forward-calls-torch": delegating(
        "dropout_forward",
        """
        import torch

        def dropout_forward(x, p, rng, train=True):
            x = np.asarray(x, dtype=np.float64)
            if not train:
                return x, None
            keep = rng.random(x.shape) >= p
            if p >= 1.0:
                return np.zeros_like(x), (keep, p)
            t = torch.nn.functional.dropout(torch.ones(x.shape, dtype=torch.float64), p=0.0)
            return np.where(keep, t.numpy() * x / (1.0 - p), 0.0), (keep, p)
        """,
        "test_dropout_forward", "test_dropout_eval",
    ),
    "dropout_backward-calls-course_lib": delegating(
        "dropout_backward",
        """
        from course_lib.numpy_impl.layers import dropout_backward as _backward

        def dropout_backward(dout, cache):
            if cache is None:
                return dout
            keep, p = cache
            if p >= 1.0:
                return np.zeros_like(dout)
            return _backward(dout, keep / (1.0 - p))
        """,
        "test_dropout_backward",
    ),
    "l2-calls-course_lib": delegating(
        "l2_penalty",
        """
        from course_lib.numpy_impl import regularization as _R

        def l2_penalty(params, lam):
            return float(sum(_R.l2_penalty(v, lam) for k, v in params.items() if k.startswith("W")))
        """,
        "test_l2",
    ),
    "max_norm-calls-torch-renorm": delegating(
        "max_norm",
        """
        import torch

        def max_norm(W, c):
            t = torch.as_tensor(np.asarray(W, dtype=np.float64).T.copy())
            norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
            return torch.where(norms > c, t * c / norms, t).T.numpy()
        """,
        "test_max_norm",
    ),
    "early_stopping-helper-calls-course_lib": delegating(
        "early_stopping",
        """
        from course_lib.training import EarlyStopping as _ES

        def _run(curve, patience, min_delta):
            cb = _ES(patience=patience, min_delta=min_delta, restore_best=False)
            cb.on_train_begin(None)
            for epoch, loss in enumerate(curve, start=1):
                if cb.on_epoch_end(epoch, {"val_loss": loss}, None):
                    return cb.best_epoch, epoch
            return cb.best_epoch, None

        def early_stopping(val_losses, patience, min_delta=0.0):
            return _run(val_losses, patience, min_delta)
        """,
        "test_early_stopping",
    ),
    "ensemble-calls-scipy-softmax": delegating(
        "ensemble_predict",
        """
        from scipy.special import softmax as _softmax

        def ensemble_predict(logits):
            return _softmax(np.asarray(logits, dtype=np.float64), axis=2).mean(axis=0).argmax(axis=1)
        """,
        "test_ensemble_predict",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "dropout-scales-by-p",
    "backward-regenerates-the-mask",
    "eval-scales-by-1-minus-p",
    "l2-gradient-2-lambda-W",
    "max_norm-over-rows",
    "early_stopping-off-by-one",
    "ensemble-averages-argmaxes",
)
NBGRADER_DELEGATING = (
    "dropout_forward-calls-course_lib",
    "dropout_forward-calls-torch",
    "l2-calls-course_lib",
    "ensemble-calls-scipy-softmax",
)


# --- structure (fast) ----------------------------------------------------------------------------


def test_points_and_grade_ids_match_the_contract():
    nb = read(SOLUTION)
    assert contract_problems(nb, POINTS) == []
    assert len(POINTS) >= 6, "the issue asks for at least 6 graded parts"
    assert set(ANSWER_OF.values()) | {"l2_penalty"} <= set(answer_ids(nb)), "every part has an answer cell"
    assert "test_dropout_eval" in POINTS, "one part checks that evaluation mode is the identity"


@pytest.mark.parametrize("path", [SOLUTION, RELEASE], ids=["solution", "release"])
def test_notebooks_are_clean_and_use_python3(path):
    assert notebook_problems(read(path), path.name) == []


@pytest.mark.parametrize("test_id", sorted(POINTS))
def test_test_cells_end_in_a_teaching_assert_and_hide_other_inputs(test_id):
    assert check_test_cell(cell_by_id(read(SOLUTION), test_id).source, test_id) == []


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
    assert {t for case in DELEGATING.values() for t in case.fails} == set(POINTS)
    # the wrong answers named in the issue are all here
    for case in ("dropout-scales-by-p", "backward-regenerates-the-mask", "l2-gradient-2-lambda-W",
                 "max_norm-over-rows", "early_stopping-off-by-one", "ensemble-averages-argmaxes"):
        assert case in NBGRADER_WRONG


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
