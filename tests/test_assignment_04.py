"""Assignment 04 (regularization) end to end: the solution scores full marks, the release zero, and
each graded part loses exactly its points for a plausible wrong answer or a delegating one.

The hidden tests live in ``solutions/04-regularization/judge.py``: the judge decides every part
outside the student's kernel, on the visible examples and on hidden inputs drawn per student id.
Fast tests check the notebooks' and the judge's structure and judge every fake student in process;
the ``slow`` ones grade the solution, the release and a class of fake students with ``course
grade`` (real nbgrader, sandboxed kernels, the judge) and compare every per-cell score. Evaluation
mode is graded on its own (``test_dropout_eval``), so an answer that scales by 1 - p at test time
loses that part only; the backward pass is judged on caches the judge builds, so a wrong forward
pass does not cost the backward part too. Dropout is random: the forward part is judged on the
statistics of the mask, so the solution must pass it for many student ids and every wrong dropout
answer fail it for every one.
"""

from __future__ import annotations

from assignment_harness import AssignmentSuite, delegating, judge_of, nbgrader_meta, read, wrong
from threadpoolctl import threadpool_limits

from course_lib.grading.judge import InProcessKernel, judge_part

ASSIGNMENT = "04-regularization"

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
        "test_dropout_forward",
        "test_dropout_eval",
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
        "test_dropout_forward",
        "test_dropout_eval",
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

#: Delegations that hide what they call: an attribute stored on np, importlib, torch renamed.
DELEGATING |= {
    "l2_grads-stashes-course_lib-on-numpy": delegating(
        "l2_grads",
        """
        from course_lib.numpy_impl import regularization as _R

        np.weight_decay = _R.l2_grad  # an attribute stored on an allowed module

        def l2_grads(params, lam):
            return {
                name: np.weight_decay(np.asarray(v, dtype=np.float64), lam) if name.startswith("W")
                else np.zeros_like(np.asarray(v, dtype=np.float64))
                for name, v in params.items()
            }
        """,
        "test_l2",
    ),
    "max_norm-imports-by-name": delegating(
        "max_norm",
        """
        import importlib

        def max_norm(W, c):
            return importlib.import_module("course_lib.numpy_impl.regularization").max_norm(
                np.asarray(W, dtype=np.float64), c
            )
        """,
        "test_max_norm",
    ),
    "ensemble-calls-torch-under-another-name": delegating(
        "ensemble_predict",
        """
        import torch.nn.functional as array_ops

        def ensemble_predict(logits):
            import torch as tensor_lib

            z = tensor_lib.as_tensor(np.asarray(logits, dtype=np.float64))
            return array_ops.softmax(z, dim=2).mean(dim=0).argmax(dim=1).numpy()
        """,
        "test_ensemble_predict",
    ),
    "dropout_backward-helper-calls-torch": delegating(
        "dropout_backward",
        """
        import torch

        def _scale(dout, keep, p):
            t = torch.as_tensor(np.asarray(dout, dtype=np.float64))
            return torch.where(torch.as_tensor(keep), t / (1.0 - p), torch.zeros_like(t)).numpy()

        def dropout_backward(dout, cache):
            if cache is None:
                return dout
            keep, p = cache
            if p >= 1.0:
                return np.zeros_like(dout, dtype=np.float64)
            return _scale(dout, keep, p)
        """,
        "test_dropout_backward",
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
    "l2_grads-stashes-course_lib-on-numpy",
)

#: The wrong answers of the statistical part (dropout's forward pass), and how many student ids
#: each is judged for; the solution must pass it for SOLUTION_IDS ids.
DROPOUT_WRONG = tuple(name for name, case in WRONG.items() if case.fails == {"test_dropout_forward"})
SOLUTION_IDS, WRONG_IDS = 50, 10


def _namespace(nb) -> dict:
    """The namespace a grading kernel has after running ``nb``'s cells (test and not-run cells skipped)."""
    judge, ns = judge_of(ASSIGNMENT), {"__name__": "__main__"}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or meta.get("grade") or meta.get("grade_id") in judge.not_run:
            continue
        exec(compile(cell.source, f"<cell {meta.get('grade_id')}>", "exec"), ns)  # noqa: S102
    return ns


def _dropout_verdicts(nb, students):
    judge = judge_of(ASSIGNMENT)
    kernel = InProcessKernel(_namespace(nb))
    with threadpool_limits(1):
        return [judge_part(judge, "test_dropout_forward", kernel, student=s) for s in students]


class TestAssignment04(AssignmentSuite):
    MIN_PARTS = 6
    ANSWER_OF = ANSWER_OF
    EXTRA_ANSWERS = frozenset({"l2_penalty"})
    ISSUE_WRONG = (
        "dropout-scales-by-p",
        "backward-regenerates-the-mask",
        "l2-gradient-2-lambda-W",
        "max_norm-over-rows",
        "early_stopping-off-by-one",
        "ensemble-averages-argmaxes",
    )

    def test_evaluation_mode_is_its_own_part(self):
        assert "test_dropout_eval" in POINTS, "one part checks that evaluation mode is the identity"

    def test_the_solution_passes_dropout_for_many_students(self):
        """Dropout's forward part is statistical (the fraction dropped within 5 standard errors,
        the independence of the mask): the solution passes it whatever the student's draws."""
        solution = read(self.solution_path())
        verdicts = _dropout_verdicts(solution, [f"student-{i}" for i in range(SOLUTION_IDS)])
        assert [v.message for v in verdicts if not v.passed] == []

    def test_every_wrong_dropout_fails_for_every_student(self):
        assert len(DROPOUT_WRONG) >= 4, DROPOUT_WRONG
        for case in DROPOUT_WRONG:
            nb = WRONG[case].apply(read(self.solution_path()))
            verdicts = _dropout_verdicts(nb, [f"student-{i}" for i in range(WRONG_IDS)])
            passed = [i for i, v in enumerate(verdicts) if v.passed]
            assert passed == [], f"{case} passes test_dropout_forward for student ids {passed}"
