"""Assignment 03 (RBMs) end to end: the solution scores full marks, the release zero, and each
graded part loses exactly its points for a plausible wrong answer or a delegating one.

Fast tests check the notebooks' structure and run every fake student in process; the ``slow``
ones grade the solution, the release and a class of fake students with real nbgrader, in one
workspace (outside the repository) and one ``nbgrader autograde`` run, and compare every per-cell
score. Every part is decided by the judge (``solutions/03-rbm/judge.py``), outside the student's
kernel. Parts 4 and 5 are graded on their own: the judge runs the student's function with the
course's samplers, so a wrong ``sample_h`` costs part 1 only. The static delegation check, though,
reads everything an answer calls: a ``sample_h`` that delegates also costs ``cd1_update``, which
calls it (the judge API has no way to leave names it swaps out of that walk).
"""

from __future__ import annotations

import pytest
from assignment_harness import ROOT, AssignmentSuite, delegating, judge_of, read, wrong
from threadpoolctl import threadpool_limits

ASSIGNMENT = "03-rbm"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_sample_h": 2,
    "test_sample_v": 1,
    "test_free_energy": 2,
    "test_cd1_update": 3,
    "test_greedy_pretrain": 2,
    "test_experiment": 2,
}

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
#: A delegating sampler loses its own part only: parts 4-5 are graded with the course's samplers
#: swapped in, and the judge's static check does not follow those (``stand_ins``).
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
    # Delegation that hides: torch under another name, imported inside a helper.
    "free_energy-helper-imports-torch-as-backend": delegating(
        "free_energy",
        """
        def _softplus_sum(a):
            import torch as backend

            t = backend.as_tensor(a)
            return backend.logaddexp(backend.zeros_like(t), t).sum(dim=1).numpy()

        def free_energy(v, W, b_v, b_h):
            return -(v @ b_v) - _softplus_sum(v @ W + b_h)
        """,
        "test_free_energy",
    ),
    # An attribute stored on an allowed module (np), holding the course's RBM.
    "cd1-stashes-course_lib-on-numpy": delegating(
        "cd1_update",
        """
        from course_lib.numpy_impl import rbm as _rbm

        np.contrastive = _rbm.RBM

        def cd1_update(v0, W, b_v, b_h, lr, rng):
            model = np.contrastive(W.shape[0], W.shape[1])
            model.W, model.b_v, model.b_h = W.copy(), b_v.copy(), b_h.copy()
            g = model.cd_gradient(v0, k=1, rng=rng)
            return W + lr * g["W"], b_v + lr * g["b_v"], b_h + lr * g["b_h"]
        """,
        "test_cd1_update",
    ),
    # The module imported by name, at run time.
    "greedy-imports-by-name": delegating(
        "greedy_pretrain",
        """
        import importlib

        def greedy_pretrain(X, hidden_sizes, train_rbm, rng):
            up = importlib.import_module("course_lib.numpy_impl.activations").sigmoid
            layers, data = [], X
            for n_hidden in hidden_sizes:
                W, b_v, b_h = train_rbm(data, n_hidden, rng)
                layers.append((W, b_v, b_h))
                data = up(data @ W + b_h)
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
    "cd1-stashes-course_lib-on-numpy",
)


class TestAssignment03(AssignmentSuite):
    MIN_PARTS = 5
    NOT_FROM_SCRATCH = frozenset({"test_experiment"})  # numbers computed from the given gradients


# --- many students, one execution of each notebook (fast) ----------------------------------------


def executed(nb):
    """Run ``nb``'s code cells as ``judge_in_process`` does (test cells skipped, the judge's
    ``not_run`` and ``provided`` cells honoured) and return (namespace, the static check's view
    of the notebook), so that one execution can be judged for many student ids."""
    from course_lib.grading import probe
    from course_lib.grading.judge import code_cells
    from course_lib.grading.submissions import cell_role, nbgrader_meta

    judge = judge_of(ASSIGNMENT)
    ns: dict = {"__name__": "__main__"}
    with threadpool_limits(1):
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            gid, role = nbgrader_meta(cell).get("grade_id"), cell_role(cell)
            if role == "test" or (role == "locked" and gid in judge.not_run):
                continue
            if role == "locked" and gid in judge.provided:
                ns.update(probe.loads(probe.dumps(judge.provided[gid]())))
                continue
            try:
                exec(compile(cell.source, f"<cell {gid or ''}>", "exec"), ns)  # noqa: S102
            except Exception:
                pass
    return ns, code_cells(nb)


def verdict(ns, cells, grade_id, student):
    from course_lib.grading.judge import InProcessKernel, judge_part

    sources, trusted, labels = cells
    with threadpool_limits(1):
        return judge_part(judge_of(ASSIGNMENT), grade_id, InProcessKernel(ns), student=student,
                          sources=sources, trusted=trusted, labels=labels)  # fmt: skip


SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def test_the_solution_passes_every_part_for_50_students():
    """Hidden inputs and random streams differ per student, and two parts are statistical (unit
    frequencies over 20000 samples; an update averaged over 24000 rows; the judge vets each
    student's stream against its own replay): no student id may fail the solution."""
    ns, cells = executed(read(SOLUTION))
    failed = {}
    for i in range(50):
        for grade_id in POINTS:
            v = verdict(ns, cells, grade_id, f"id-{i}")
            if not v.passed:
                failed[(grade_id, f"id-{i}")] = v.message
    assert failed == {}


#: The parts with a statistical check (its random stream differs per student).
STATISTICAL = frozenset({"test_sample_h", "test_cd1_update"})


@pytest.mark.parametrize("case", sorted(c for c, a in WRONG.items() if a.fails & STATISTICAL))
def test_every_wrong_answer_of_a_statistical_part_fails_it_for_10_students(case):
    ns, cells = executed(WRONG[case].apply(read(SOLUTION)))
    for i in range(10):
        for grade_id in POINTS:
            v = verdict(ns, cells, grade_id, f"id-{i}")
            assert v.passed == (grade_id not in WRONG[case].fails), (case, grade_id, f"id-{i}", v.message)


def test_the_judge_replaces_the_samplers_and_restores_them():
    """Parts 4 and 5 run with the course's samplers whatever the student's do, and put the
    student's back: a sampler that raises costs parts 1 and 2 only, and after judging, the
    namespace holds the student's own functions again."""
    nb = WRONG["sample_h-wrong-comparison"].apply(read(SOLUTION))
    ns, cells = executed(nb)
    ns["sample_v"] = ns["sample_h"] = lambda *args: (_ for _ in ()).throw(RuntimeError("broken sampler"))
    mine = (ns["sample_h"], ns["sample_v"])
    for grade_id in ("test_cd1_update", "test_greedy_pretrain"):
        assert verdict(ns, cells, grade_id, "alice").passed, grade_id
    assert (ns["sample_h"], ns["sample_v"]) == mine
    assert not verdict(ns, cells, "test_sample_h", "alice").passed
