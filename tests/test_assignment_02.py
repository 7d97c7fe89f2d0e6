"""Assignment 02 (weight initialization) end to end: the solution scores full marks, the release zero,
and each graded part loses exactly its points for a plausible wrong answer or a delegating one.

The shared suite (``assignment_harness.AssignmentSuite``) checks the notebooks' and the judge's
structure (``solutions/02-initialization/judge.py`` decides every part), runs every fake student
through the judge in process and grades a class of them with real nbgrader (``slow``). This module
adds what statistical grading needs: the judge's checks are statistical (tolerances of six standard
errors) and every student gets other hidden inputs (generators seeded by the student's id), so the
solution must pass for **50 student ids**, and every wrong answer must fail its part for every one
of **10 student ids**; a control checks that the hidden inputs really differ from student to student.
"""

from __future__ import annotations

import copy

import pytest
from assignment_harness import (
    AssignmentSuite,
    delegating,
    failing,
    judge_of,
    nbgrader_meta,
    read,
    run_in_process,
    wrong,
)
from threadpoolctl import threadpool_limits

from course_lib.grading.judge import InProcessKernel, code_cells, judge_part

ASSIGNMENT = "02-initialization"

#: Graded part (test cell) -> points: the contract of the assignment, checked against metadata.
POINTS = {
    "test_xavier_uniform": 2,
    "test_xavier_normal": 2,
    "test_he_normal": 2,
    "test_kaiming_normal_": 2,
    "test_layer_stds": 2,
}

#: The body of a correct layer_stds up to its loop, for wrong answers that differ in what they record.
_ACTIVATION = """
f = {"linear": lambda z: z, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}[activation]
h = np.asarray(x, dtype=np.float64)
"""

#: Plausible wrong answers, each failing exactly its own part.
WRONG = {
    # 1. Xavier uniform
    "xavier_uniform-limit-is-the-std": wrong(  # sqrt(2 / (in + out)) as the limit: std sqrt(3) too small
        "xavier_uniform",
        "a = np.sqrt(2.0 / (fan_in + fan_out))\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-draws-normal": wrong(  # the right variance, the wrong distribution
        "xavier_uniform",
        "return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-fan-in-only": wrong(  # Caffe's default "xavier" filler: variance 1 / fan_in
        "xavier_uniform",
        "a = np.sqrt(3.0 / fan_in)\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    "xavier_uniform-global-random-state": wrong(
        "xavier_uniform",
        "a = np.sqrt(6.0 / (fan_in + fan_out))\nreturn np.random.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_uniform",
    ),
    # 2. Xavier normal
    "xavier_normal-std-is-the-variance": wrong(
        "xavier_normal",
        "return rng.normal(0.0, 2.0 / (fan_in + fan_out), size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    "xavier_normal-is-lecun": wrong(  # the sqrt(1 / n) rule many notes call "Xavier"
        "xavier_normal",
        "return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    "xavier_normal-draws-uniform": wrong(
        "xavier_normal",
        "a = np.sqrt(6.0 / (fan_in + fan_out))\nreturn rng.uniform(-a, a, size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    "xavier_normal-ignores-rng": wrong(  # its own seeded generator: the visible checks pass, not the hidden
        "xavier_normal",
        "own = np.random.default_rng(0)\n"
        "return own.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))",
        "test_xavier_normal",
    ),
    # 3. He normal
    "he_normal-uses-fan_out": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(2.0 / ((1 + negative_slope**2) * fan_out)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-std-is-the-variance": wrong(
        "he_normal",
        "return rng.normal(0.0, 2.0 / ((1 + negative_slope**2) * fan_in), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-forgets-the-2": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(1.0 / ((1 + negative_slope**2) * fan_in)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    "he_normal-ignores-negative_slope": wrong(
        "he_normal", "return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))", "test_he_normal"
    ),
    "he_normal-slope-not-squared": wrong(
        "he_normal",
        "return rng.normal(0.0, np.sqrt(2.0 / ((1 + negative_slope) * fan_in)), size=(fan_in, fan_out))",
        "test_he_normal",
    ),
    # 4. PyTorch's layout, in place
    "kaiming-fan_in-from-shape0": wrong(  # (out, in) read as (in, out)
        "kaiming_normal_",
        "weight[...] = rng.normal(0.0, np.sqrt(2.0 / weight.shape[0]), size=weight.shape)\nreturn weight",
        "test_kaiming_normal_",
    ),
    "kaiming-returns-a-new-array": wrong(
        "kaiming_normal_",
        "return rng.normal(0.0, np.sqrt(2.0 / weight.shape[1]), size=weight.shape)",
        "test_kaiming_normal_",
    ),
    "kaiming-global-random-state": wrong(  # right scale, in place: only the hidden cases see np.random
        "kaiming_normal_",
        "weight[...] = np.random.normal(0.0, np.sqrt(2.0 / weight.shape[1]), size=weight.shape)\n"
        "return weight",
        "test_kaiming_normal_",
    ),
    # 5. layer_stds
    "layer_stds-of-pre-activations": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for W in weights:
    z = h @ W
    out.append(float(z.std()))
    h = f(z)
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-returns-variances": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for W in weights:
    h = f(h @ W)
    out.append(float(h.var()))
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-includes-the-input": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = [float(h.std())]
for W in weights:
    h = f(h @ W)
    out.append(float(h.std()))
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-tanh-treated-as-linear": wrong(  # the visible tests use relu and linear only
        "layer_stds",
        """
f = {"relu": lambda z: np.maximum(z, 0.0)}.get(activation, lambda z: z)
out, h = [], np.asarray(x, dtype=np.float64)
for W in weights:
    h = f(h @ W)
    out.append(float(h.std()))
return out
""",
        "test_layer_stds",
    ),
    "layer_stds-no-activation-on-the-last-layer": wrong(
        "layer_stds",
        _ACTIVATION
        + """
out = []
for i, W in enumerate(weights):
    h = h @ W
    if i < len(weights) - 1:
        h = f(h)
    out.append(float(h.std()))
return out
""",
        "test_layer_stds",
    ),
}

#: Answers that pass every value test but delegate; only the integrity check removes their credit.
DELEGATING = {
    "xavier_uniform-calls-torch": delegating(
        "xavier_uniform",
        """
        import torch

        def xavier_uniform(fan_in, fan_out, rng):
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            w = torch.empty(fan_out, fan_in, dtype=torch.float64)
            return torch.nn.init.xavier_uniform_(w, generator=g).T.numpy()
        """,
        "test_xavier_uniform",
    ),
    "xavier_normal-calls-course_lib": delegating(
        "xavier_normal",
        """
        from course_lib.numpy_impl import initializers as _I

        def xavier_normal(fan_in, fan_out, rng):
            return _I.xavier_normal(fan_in, fan_out, rng)
        """,
        "test_xavier_normal",
    ),
    "he_normal-calls-course_lib": delegating(
        "he_normal",
        """
        from course_lib.numpy_impl.initializers import get as _get

        def he_normal(fan_in, fan_out, rng, negative_slope=0.0):
            return _get("he_normal", fan_in, fan_out, rng, gain=np.sqrt(1.0 / (1.0 + negative_slope**2)))
        """,
        "test_he_normal",
    ),
    "kaiming_normal_-calls-torch": delegating(
        "kaiming_normal_",
        """
        import torch

        def kaiming_normal_(weight, rng):
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            torch.nn.init.kaiming_normal_(torch.from_numpy(weight), nonlinearity="relu", generator=g)
            return weight
        """,
        "test_kaiming_normal_",
    ),
    "xavier_normal-imports-by-name": delegating(
        "xavier_normal",
        """
        import importlib

        def xavier_normal(fan_in, fan_out, rng):
            module = importlib.import_module("course_lib.numpy_impl.initializers")
            return module.xavier_normal(fan_in, fan_out, rng)
        """,
        "test_xavier_normal",
    ),
    "he_normal-stashes-course_lib-on-numpy": delegating(
        "he_normal",
        """
        from course_lib.numpy_impl import initializers as _I

        np.he = _I.he_normal  # an attribute stored on an allowed module

        def he_normal(fan_in, fan_out, rng, negative_slope=0.0):
            return np.he(fan_in, fan_out, rng, gain=np.sqrt(1.0 / (1.0 + negative_slope**2)))
        """,
        "test_he_normal",
    ),
    "kaiming_normal_-calls-torch-under-another-name": delegating(
        "kaiming_normal_",
        """
        import torch.nn.init as numpy_fill
        from torch import Generator as Seeded, from_numpy as as_view

        def kaiming_normal_(weight, rng):
            g = Seeded().manual_seed(int(rng.integers(2**62)))
            numpy_fill.kaiming_normal_(as_view(weight), nonlinearity="relu", generator=g)
            return weight
        """,
        "test_kaiming_normal_",
    ),
    "layer_stds-helper-imports-torch": delegating(
        "layer_stds",
        """
        def _activate(z, activation):
            import torch as tensors

            t = tensors.as_tensor(z)
            return {"linear": t, "tanh": tensors.tanh(t), "relu": tensors.relu(t)}[activation].numpy()

        def layer_stds(x, weights, activation):
            out, h = [], np.asarray(x, dtype=np.float64)
            for W in weights:
                h = _activate(h @ W, activation)
                out.append(float(h.std()))
            return out
        """,
        "test_layer_stds",
    ),
    "layer_stds-calls-course_lib": delegating(
        "layer_stds",
        """
        from course_lib.numpy_impl import activations as _A

        def layer_stds(x, weights, activation):
            f = {"linear": lambda z: z, "tanh": _A.tanh, "relu": _A.relu}[activation]
            out, h = [], np.asarray(x, dtype=np.float64)
            for W in weights:
                h = f(h @ W)
                out.append(float(h.std()))
            return out
        """,
        "test_layer_stds",
    ),
}

#: Graded by real nbgrader (a few seconds per student): one wrong answer per part, and delegation.
NBGRADER_WRONG = (
    "xavier_uniform-limit-is-the-std",
    "xavier_normal-std-is-the-variance",
    "he_normal-uses-fan_out",
    "kaiming-fan_in-from-shape0",
    "layer_stds-of-pre-activations",
    "kaiming-global-random-state",  # caught by the hidden cases only
)
NBGRADER_DELEGATING = (
    "xavier_uniform-calls-torch",
    "he_normal-calls-course_lib",
    "layer_stds-calls-course_lib",
    "kaiming_normal_-calls-torch-under-another-name",
)


# --- the judge for many students ----------------------------------------------------------------

#: Student ids the solution must pass for, and ids every wrong answer must fail for.
MANY_STUDENTS = [f"student-{i}" for i in range(50)]
WRONG_STUDENTS = [f"wrong-{i}" for i in range(10)]
#: Wrong answers that only the judge's hidden cases catch (the visible examples pass them).
HIDDEN_ONLY = ("xavier_normal-ignores-rng", "he_normal-slope-not-squared", "kaiming-global-random-state",
               "layer_stds-tanh-treated-as-linear")  # fmt: skip


class RecordingKernel(InProcessKernel):
    """An in-process kernel that keeps the inputs of every probe (a control of the hidden inputs)."""

    def __init__(self, namespace: dict) -> None:
        super().__init__(namespace)
        self.inputs: list[str] = []

    def _exchange(self, code, inputs_text, outputs):
        self.inputs.append(inputs_text)
        return super()._exchange(code, inputs_text, outputs)


def prepared(nb, kernel_type=InProcessKernel):
    """The notebook's code cells run as grading runs them (test cells and ``not_run`` cells left
    out), once; the kernel on that namespace and what the static check reads."""
    judge = judge_of(ASSIGNMENT)
    ns: dict = {"__name__": "__main__"}
    with threadpool_limits(1):
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id")
            if cell.cell_type != "code" or meta.get("grade") or gid in judge.not_run:
                continue
            exec(compile(cell.source, f"<cell {gid}>", "exec"), ns)  # noqa: S102 - the notebook
    return judge, kernel_type(ns), code_cells(nb)


def verdicts(nb, students, parts, kernel_type=InProcessKernel):
    """{(student, part): Verdict} for ``students``, judged on one run of the notebook's cells (each
    part's probes work on copies of the namespace, so students do not see each other's)."""
    judge, kernel, (sources, trusted, labels) = prepared(nb, kernel_type)
    with threadpool_limits(1):
        return {
            (student, part): judge_part(
                judge, part, kernel, student=student, sources=sources, trusted=trusted, labels=labels
            )  # fmt: skip
            for student in students
            for part in parts
        }


class TestAssignment02(AssignmentSuite):
    MIN_PARTS = 5
    ISSUE_WRONG = ("he_normal-uses-fan_out", "xavier_normal-std-is-the-variance")

    @pytest.mark.slow
    def test_the_solution_passes_for_50_students(self):
        """No false failures: every part, visible and hidden cases, with 50 students' hidden inputs."""
        found = verdicts(read(self.solution_path()), MANY_STUDENTS, POINTS)
        failures = {key: v.message for key, v in found.items() if not v.passed}
        assert failures == {}, f"{len(failures)} false failures of the solution: {list(failures.items())[:5]}"

    def test_every_wrong_answer_fails_its_part_for_10_students(self):
        """No lucky passes: each wrong answer fails the part it gets wrong for all 10 students (the
        shared suite checks, for 3 students, that it fails no other part)."""
        passes = []
        for case, answer in WRONG.items():
            found = verdicts(answer.apply(read(self.solution_path())), WRONG_STUDENTS, sorted(answer.fails))
            passes += [(case, student, part) for (student, part), v in found.items() if v.passed]
            assert all(not v.delegation for v in found.values()), f"{case} must fail a value check"
        assert passes == [], f"wrong answers that passed for some students: {passes[:10]}"

    def test_some_wrong_answers_pass_the_visible_tests_and_only_the_judge_catches_them(self):
        """Control: the hidden cases matter (these answers fit every visible example)."""
        for case in HIDDEN_ONLY:
            nb = WRONG[case].apply(read(self.solution_path()))
            visible = copy.deepcopy(nb)  # the answers and the visible tests, without the demonstration
            visible.cells = [
                c for c in nb.cells if nbgrader_meta(c).get("grade_id") not in judge_of(ASSIGNMENT).not_run
            ]
            assert failing(run_in_process(visible)) == set(), f"{case} should pass the visible tests"
            failed = {part for (_, part), v in verdicts(nb, ["alice"], POINTS).items() if not v.passed}
            assert failed == WRONG[case].fails, f"{case}: the judge fails {failed}"

    def test_hidden_inputs_differ_from_student_to_student(self):
        """Control: each part's hidden probes get other inputs for another student (and the same
        ones on a regrade), while the visible examples are the same for everyone."""
        nb = read(self.solution_path())
        seen = {}
        for student in ("alice", "bob", "alice"):
            judge, kernel, (sources, trusted, labels) = prepared(nb, RecordingKernel)
            for part in POINTS:
                kernel.inputs.clear()
                with threadpool_limits(1):
                    verdict = judge_part(judge, part, kernel, student=student, sources=sources,
                                         trusted=trusted, labels=labels)  # fmt: skip
                assert verdict.passed, f"{part} ({student}): {verdict.message}"
                seen.setdefault((student, part), []).append(list(kernel.inputs))
        for part in POINTS:
            first, regrade = seen[("alice", part)]
            other = seen[("bob", part)][0]
            assert first == regrade, f"{part}: a regrade must probe with the same inputs"
            assert first != other, f"{part}: two students got the same hidden inputs"
            assert first[0] == other[0], f"{part}: the visible example must be the same for every student"
