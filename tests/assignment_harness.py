"""Helpers for the end-to-end tests of any assignment (``tests/test_assignment_NN.py``).

An assignment test declares its contract (graded cells and points), plausible wrong answers and
delegating answers, then uses these helpers to

* read notebooks and find cells by nbgrader ``grade_id``;
* build fake students from the solution: ``replace_solution`` swaps the code of one answer's
  ``### BEGIN SOLUTION`` region, ``replace_cell`` a whole answer cell;
* run a notebook's visible tests in process (a kernel-like namespace): what a student sees;
* judge a notebook in process with the assignment's judge (``solutions/<NN>/judge.py``, through
  ``course_lib.grading.judge.judge_in_process``): what the grade is, for many student ids, fast;
* check the notebooks' structure: points match the contract, one solution region per answer,
  every test cell ends in ``assert ..., message``, no hidden test is left in a notebook, the
  judge judges exactly the graded cells and checks the answers' integrity, notebooks are clean;
* grade a whole class with ``course grade`` (real nbgrader, real sandboxed kernels, the judge) and
  compare per-cell scores with ``expected_cells``.

``AssignmentSuite`` at the end bundles the tests every assignment gets.
"""

from __future__ import annotations

import ast
import collections
import copy
import functools
import sys
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
#: Student ids the in-process judge runs for (each gets other hidden inputs).
STUDENTS = ("alice", "bob", "carol")


# --- reading notebooks ---------------------------------------------------------------------------


def read(path: Path) -> nbformat.NotebookNode:
    """A private copy of the notebook at ``path`` (parsed once per test session)."""
    return copy.deepcopy(_read_cached(Path(path)))


@functools.lru_cache
def _read_cached(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def cell_by_id(nb: nbformat.NotebookNode, grade_id: str):
    found = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id]
    assert len(found) == 1, f"expected one cell with grade_id {grade_id!r}, found {len(found)}"
    return found[0]


def graded_points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """{grade_id: points} of every graded cell (tests and answers graded by hand), in order."""
    graded = [
        nbgrader_meta(c) for c in nb.cells if nbgrader_meta(c).get("grade") or nbgrader_meta(c).get("task")
    ]
    return {meta["grade_id"]: meta.get("points") for meta in graded}


def manual_ids(nb: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the cells graded by hand: nbgrader's manually graded answers (grade and
    solution) and tasks."""
    metas = [nbgrader_meta(c) for c in nb.cells]
    return [m["grade_id"] for m in metas if m.get("task") or (m.get("grade") and m.get("solution"))]


def answer_ids(nb: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the answer (solution) cells, in notebook order."""
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("solution")]


# --- fake students -------------------------------------------------------------------------------


def replace_solution(nb: nbformat.NotebookNode, grade_id: str, code: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose ``grade_id`` cell has ``code`` instead of its solution region.

    ``code`` is re-indented to the ``### BEGIN SOLUTION`` line; the markers go, as in a student's
    notebook. The lines around the region (``def ...:`` and the docstring) are kept.
    """
    nb = copy.deepcopy(nb)
    cell = cell_by_id(nb, grade_id)
    lines = cell.source.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    assert len(starts) == len(ends) == 1, f"{grade_id} must have one solution region"
    indent = lines[starts[0]][: len(lines[starts[0]]) - len(lines[starts[0]].lstrip())]
    body = [indent + line if line else line for line in textwrap.dedent(code).strip("\n").splitlines()]
    cell.source = "\n".join(lines[: starts[0]] + body + lines[ends[0] + 1 :])
    return nb


def replace_cell(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose ``grade_id`` cell is ``source`` (module-level imports included)."""
    nb = copy.deepcopy(nb)
    cell_by_id(nb, grade_id).source = textwrap.dedent(source).strip("\n")
    return nb


@dataclass(frozen=True)
class FakeAnswer:
    """One fake student's deviation from the solution, and the test cells it must fail.

    ``kind="solution"`` replaces the solution region of ``grade_id`` with ``code``;
    ``kind="cell"`` replaces the whole cell (for answers that import or define helpers).
    """

    grade_id: str
    code: str
    fails: frozenset[str]
    kind: str = "solution"

    def apply(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        if self.kind == "solution":
            return replace_solution(nb, self.grade_id, self.code)
        if self.kind == "cell":
            return replace_cell(nb, self.grade_id, self.code)
        raise ValueError(f"unknown kind {self.kind!r}")


def wrong(grade_id: str, code: str, *fails: str) -> FakeAnswer:
    """A plausible wrong answer: the solution region of ``grade_id`` becomes ``code``."""
    return FakeAnswer(grade_id, code, frozenset(fails), "solution")


def delegating(grade_id: str, source: str, *fails: str) -> FakeAnswer:
    """A right answer that calls a library: the whole ``grade_id`` cell becomes ``source``."""
    return FakeAnswer(grade_id, source, frozenset(fails), "cell")


def build_class(
    solution: nbformat.NotebookNode, cases: Mapping[str, FakeAnswer], prefix: str = ""
) -> dict[str, nbformat.NotebookNode]:
    """{student id: notebook}: one fake student per case, built from ``solution``."""
    return {f"{prefix}{name}": case.apply(solution) for name, case in cases.items()}


# --- running in process --------------------------------------------------------------------------


def run_in_process(nb: nbformat.NotebookNode) -> dict[str, BaseException | None]:
    """Execute the code cells in one ``__main__``-like namespace, as a kernel would, and
    return {test cell id: the exception it raised, or None}. Errors do not stop the run."""
    ns: dict = {"__name__": "__main__"}
    results: dict[str, BaseException | None] = {}
    with threadpool_limits(1):  # small matrices: BLAS threads only contend (as in grading)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            error = None
            try:
                exec(compile(cell.source, f"<cell {cell.get('id')}>", "exec"), ns)  # noqa: S102
            except Exception as err:  # a failing cell, as nbgrader records it
                error = err
            meta = nbgrader_meta(cell)
            if meta.get("grade"):
                results[meta["grade_id"]] = error
    return results


def timed_run(nb: nbformat.NotebookNode) -> tuple[dict[str, BaseException | None], float]:
    start = time.perf_counter()
    results = run_in_process(nb)
    return results, time.perf_counter() - start


def failing(results: Mapping[str, BaseException | None]) -> set[str]:
    return {k for k, v in results.items() if v is not None}


def expected_cells(
    points: Mapping[str, float], lost: set[str] | frozenset[str]
) -> dict[str, tuple[float, float]]:
    """The per-cell (score, max) nbgrader should report when exactly the ``lost`` cells fail."""
    return {t: (0.0 if t in lost else float(p), float(p)) for t, p in points.items()}


# --- structure checks ----------------------------------------------------------------------------


def last_statement_is_assert_with_message(source: str) -> bool:
    body = ast.parse(source).body
    return bool(body) and isinstance(body[-1], ast.Assert) and body[-1].msg is not None


def check_test_cell(source: str, test_id: str) -> list[str]:
    """Why a test cell breaks the assignment rules (empty: it follows them)."""
    problems = []
    if HIDDEN_BEGIN in source or HIDDEN_END in source:
        problems.append(
            f"{test_id}: hidden tests live in the judge (solutions/<NN>/judge.py), not the notebook"
        )
    if not last_statement_is_assert_with_message(source):
        problems.append(f"{test_id} must end in `assert ..., message`")
    return problems


def notebook_problems(nb: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """nbformat 4, python3 kernel, no outputs, every code cell with nbgrader metadata an answer or locked."""
    from course_lib.grading.release import cells_with_outputs

    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"{name}: invalid notebook ({err})")
    if nb.nbformat != 4:
        problems.append(f"{name}: nbformat {nb.nbformat}, not 4")
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{name}: kernelspec must be python3")
    if cells_with_outputs(nb):
        problems.append(f"{name}: committed with outputs in {cells_with_outputs(nb)}: clear them")
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta and not (meta.get("solution") or meta.get("locked")):
            problems.append(f"{name}: code cell {meta.get('grade_id')} must be an answer or locked")
    return problems


def contract_problems(
    nb: nbformat.NotebookNode, points: Mapping[str, float], manual: Mapping[str, float] | None = None
) -> list[str]:
    """Graded cells and points as declared (``manual``: the cells graded by hand); one solution
    region per code answer; unique grade ids."""
    problems = []
    manual = dict(manual or {})
    actual = graded_points(nb)
    if actual != {**points, **manual}:
        problems.append(
            f"graded cells and points {actual} differ from the contract {dict(points)} + {manual}"
        )
    if set(manual_ids(nb)) != set(manual):
        problems.append(f"cells graded by hand {manual_ids(nb)} differ from the contract {sorted(manual)}")
    for grade_id in answer_ids(nb):
        cell = cell_by_id(nb, grade_id)
        if cell.cell_type == "markdown":  # a written answer: nbgrader replaces the whole cell
            if BEGIN in cell.source or not cell.source.strip():
                problems.append(f"{grade_id}: a written answer holds a model answer and no solution markers")
            continue
        source = cell.source
        if not source.count(BEGIN) == source.count(END) == 1:
            problems.append(f"{grade_id}: needs exactly one solution region")
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c)]
    if len(ids) != len(set(ids)):
        problems.append("grade ids must be unique")
    return problems


def leaked_lines(solution: nbformat.NotebookNode, student_text: str, min_len: int = 25) -> list[str]:
    """Distinctive lines of the solution regions that appear in ``student_text`` (a line that the
    notebook also shows outside a solution region, in a provided cell, is not distinctive)."""
    lines, shown = set(), set()
    for cell in solution.cells:
        inside = False
        for line in cell.source.splitlines():
            s = line.strip()
            if s.startswith("### BEGIN"):
                inside = True
            elif s.startswith("### END"):
                inside = False
            elif inside and len(s) >= min_len and not s.startswith("#"):
                lines.add(s)
            elif not inside:
                shown.add(s)
    return sorted(s for s in lines - shown if s in student_text)


def notebook_code(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells)


# --- grading a class with real nbgrader ----------------------------------------------------------


COMPARISONS = {"allclose", "array_equal", "array_equiv", "isclose", "assert_allclose", "assert_array_equal",
               "assert_equal", "assert_almost_equal", "testing"}  # fmt: skip


def probe_comparisons(judge_file: Path) -> list[str]:
    """String constants of a judge that are Python code comparing values (probe code must not)."""
    found = []
    for node in ast.walk(ast.parse(judge_file.read_text())):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value + "\n"):
            continue
        try:
            code = ast.parse(textwrap.dedent(node.value).format_map(collections.defaultdict(str)))
        except (SyntaxError, ValueError, KeyError, IndexError):
            continue
        for sub in ast.walk(code):
            name = getattr(sub, "attr", None) or getattr(sub, "id", None)
            if isinstance(sub, ast.Assert) or (
                isinstance(sub, (ast.Attribute, ast.Name)) and name in COMPARISONS
            ):
                found.append(f"line {node.lineno}: {node.value.strip()[:80]!r}")
                break
    return found


def judge_of(assignment: str):
    from course_lib.grading.judge import load_judge

    return load_judge(ROOT / "solutions" / assignment / "judge.py")


def judged(
    nb: nbformat.NotebookNode, assignment: str, student: str = "alice", static: bool = True
) -> set[str]:
    """The graded parts the judge fails for ``student`` (in process: no sandbox, fast)."""
    from course_lib.grading.judge import judge_in_process

    with threadpool_limits(1):
        verdicts = judge_in_process(nb, judge_of(assignment), student=student, static=static)
    return {k for k, v in verdicts.items() if not v.passed}


def judged_verdicts(nb: nbformat.NotebookNode, assignment: str, student: str = "alice", static: bool = True):
    from course_lib.grading.judge import judge_in_process

    with threadpool_limits(1):
        return judge_in_process(nb, judge_of(assignment), student=student, static=static)


@dataclass
class GradedClass:
    """The report of one ``course grade`` run over a whole fake class, and its output folder."""

    report: object
    out: Path
    scores: dict[str, dict]
    seconds: float
    students: list[str] = field(default_factory=list)


def grade_class(
    root: Path, assignment: str, students: Mapping[str, Path | nbformat.NotebookNode]
) -> GradedClass:
    """``course grade`` (real nbgrader, sandboxed kernels, the judge) over ``students``, into
    ``root/out`` (outside the repository); scores as {student: {total, max, cells, status}}."""
    from course_lib.grading.batch import GradeOptions, grade_notebooks

    start = time.perf_counter()
    report = grade_notebooks(assignment, dict(students), out_dir=root / "out",
                             options=GradeOptions(jobs=2, progress=False))  # fmt: skip
    scores = {r.student: {"total": r.total, "max": r.max, "cells": dict(r.cells), "status": r.status,
                          "reasons": r.reasons, "manual": dict(r.manual)}
              for r in report.results}  # fmt: skip
    return GradedClass(report, root / "out", scores, time.perf_counter() - start, list(students))


# --- the shared end-to-end suite -----------------------------------------------------------------


class AssignmentSuite:
    """The end-to-end tests every assignment gets: subclass it as ``TestAssignmentNN`` in a module
    that declares (or in the class body)

    ``ASSIGNMENT`` (folder name), ``POINTS`` (test cell -> points), ``WRONG`` and ``DELEGATING``
    (name -> ``FakeAnswer``), and the cases graded by ``course grade`` (``NBGRADER_WRONG``,
    ``NBGRADER_DELEGATING``); the module's names are read when the class body does not set them.
    Optional, in the class body: ``MIN_PARTS`` (what the issue asks for), ``ANSWER_OF``
    (test cell -> answer cell, default the test id without ``test_``), ``MANUAL`` (the cells
    graded by hand, written answers -> points: no judge part, pending after ``course grade``),
    ``EXTRA_ANSWERS`` (answer cells no test is named after), ``NOT_FROM_SCRATCH`` (test cells
    whose judge part checks no answer's integrity, such as an experiment's numbers),
    ``ISSUE_WRONG`` (wrong answers the issue names: each must be graded).

    Fast tests check the notebooks' and the judge's structure, the visible tests in process, and
    the judge in process for several student ids (each student gets other hidden inputs); the
    ``slow`` ones grade the solution, the release and a class of fake students with ``course
    grade`` and compare every per-cell score.
    """

    ASSIGNMENT: str
    POINTS: dict[str, float]
    WRONG: dict[str, FakeAnswer]
    DELEGATING: dict[str, FakeAnswer]
    NBGRADER_WRONG: tuple[str, ...]
    NBGRADER_DELEGATING: tuple[str, ...]
    MIN_PARTS = 5
    MANUAL: dict[str, float] = {}  # cells graded by hand (written answers) -> points
    ANSWER_OF: dict[str, str] = {}
    EXTRA_ANSWERS: frozenset[str] = frozenset()
    NOT_FROM_SCRATCH: frozenset[str] = frozenset()
    ISSUE_WRONG: tuple[str, ...] = ()
    MAX_SECONDS = 30  # in process; the rule is < 60 s on 2 cores under a real kernel
    SOLUTION_STUDENTS = 20  # student ids the solution must pass for (other hidden inputs each)

    #: Read from the subclass's module when the class body does not set them.
    CONTRACT = (
        "ASSIGNMENT",
        "POINTS",
        "MANUAL",
        "WRONG",
        "DELEGATING",
        "NBGRADER_WRONG",
        "NBGRADER_DELEGATING",
    )

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        module = sys.modules[cls.__module__]
        for name in cls.CONTRACT:
            if name not in cls.__dict__ and hasattr(module, name):
                setattr(cls, name, getattr(module, name))

    # pytest parametrizes the tests of each subclass from its declarations
    _PARAMETERS = {
        "test_id": lambda cls: sorted(cls.POINTS),
        "notebook": lambda cls: ["solution", "release"],
        "wrong_case": lambda cls: sorted(cls.WRONG),
        "delegating_case": lambda cls: sorted(cls.DELEGATING),
        "graded_wrong_case": lambda cls: list(cls.NBGRADER_WRONG),
        "graded_delegating_case": lambda cls: list(cls.NBGRADER_DELEGATING),
    }

    def pytest_generate_tests(self, metafunc) -> None:
        for name, values in self._PARAMETERS.items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, values(type(self)))

    @classmethod
    def solution_path(cls) -> Path:
        return ROOT / "solutions" / cls.ASSIGNMENT / f"{cls.ASSIGNMENT}.ipynb"

    @classmethod
    def release_path(cls) -> Path:
        return ROOT / "exercises" / cls.ASSIGNMENT / f"{cls.ASSIGNMENT}.ipynb"

    @classmethod
    def answer_of(cls, test_id: str) -> str:
        return cls.ANSWER_OF.get(test_id, test_id.removeprefix("test_"))

    @classmethod
    def total(cls) -> float:
        """The points the judge gives (the cells graded by hand are pending after course grade)."""
        return sum(cls.POINTS.values())

    @classmethod
    def by_hand(cls) -> float:
        return sum(cls.MANUAL.values())

    # --- structure (fast) ------------------------------------------------------------------------

    def test_points_and_grade_ids_match_the_contract(self):
        nb = read(self.solution_path())
        assert contract_problems(nb, self.POINTS, self.MANUAL) == []
        assert len(self.POINTS) >= self.MIN_PARTS, f"the issue asks for >= {self.MIN_PARTS} graded parts"
        answers = {self.answer_of(t) for t in self.POINTS} | set(self.EXTRA_ANSWERS)
        assert answers <= set(answer_ids(nb)), f"answer cells missing: {answers - set(answer_ids(nb))}"

    def test_notebooks_are_clean_and_use_python3(self, notebook):
        path = self.solution_path() if notebook == "solution" else self.release_path()
        assert notebook_problems(read(path), path.name) == []

    def test_test_cells_end_in_a_teaching_assert_and_hold_no_hidden_test(self, test_id):
        source = cell_by_id(read(self.solution_path()), test_id).source
        assert check_test_cell(source, test_id) == []

    def test_the_judge_judges_every_graded_cell_and_checks_the_answers(self):
        judge = judge_of(self.ASSIGNMENT)
        assert judge.assignment == self.ASSIGNMENT
        assert set(judge.parts) == set(self.POINTS), (
            "one judge part per automatically graded cell, and none for the cells graded by hand"
        )
        for test_id, part in judge.parts.items():
            if test_id in self.NOT_FROM_SCRATCH:
                continue
            assert self.answer_of(test_id) in part.answers, (
                f"{test_id}: the judge must check that {self.answer_of(test_id)} is the student's own code"
            )
        nb = read(self.solution_path())
        locked = {nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("locked")}
        assert set(judge.not_run) | set(judge.provided) <= locked, "only locked cells are skipped or provided"
        assert not (ROOT / "exercises" / self.ASSIGNMENT / "judge.py").exists(), "the judge is never released"

    def test_probes_compare_nothing_in_the_kernel(self):
        """Every comparison happens in the judge: a probe (instructor code sent to the kernel as a
        string) may call the student's functions, never NumPy's comparisons or an assert, which
        the student's code could have replaced (np.allclose = lambda *a: True)."""
        assert probe_comparisons(ROOT / "solutions" / self.ASSIGNMENT / "judge.py") == []

    def test_release_leaks_no_solution_line(self):
        release = notebook_code(read(self.release_path()))
        assert leaked_lines(read(self.solution_path()), release) == []

    def test_solution_passes_its_visible_tests_in_process_and_fast(self):
        results, seconds = timed_run(read(self.solution_path()))
        assert {k: repr(v) for k, v in results.items() if v is not None} == {}
        assert set(results) == set(self.POINTS)
        assert seconds < self.MAX_SECONDS, (
            f"the solution notebook took {seconds:.1f} s; it must run in < 60 s on 2 cores"
        )

    def test_release_fails_every_visible_test_in_process(self):
        assert failing(run_in_process(read(self.release_path()))) == set(self.POINTS)

    def test_the_judge_passes_the_solution_for_every_student(self):
        solution = read(self.solution_path())
        for i in range(self.SOLUTION_STUDENTS):
            verdicts = judged_verdicts(solution, self.ASSIGNMENT, student=f"student-{i}")
            failed = {k: v.message for k, v in verdicts.items() if not v.passed}
            assert failed == {}, f"student-{i}'s hidden inputs fail the solution: {failed}"

    def test_the_judge_gives_the_release_nothing(self):
        assert judged(read(self.release_path()), self.ASSIGNMENT) == set(self.POINTS)

    def test_wrong_answers_fail_exactly_their_part_for_every_student(self, wrong_case):
        nb = self.WRONG[wrong_case].apply(read(self.solution_path()))
        for student in STUDENTS:
            failed = judged(nb, self.ASSIGNMENT, student)
            assert failed == self.WRONG[wrong_case].fails, f"{wrong_case} ({student}): failing parts {failed}"

    def test_delegating_answers_pass_every_value_check_without_the_static_check(self, delegating_case):
        """Control experiment: these answers are *right*; only the static check removes credit."""
        nb = self.DELEGATING[delegating_case].apply(read(self.solution_path()))
        assert judged(nb, self.ASSIGNMENT, static=False) == set(), delegating_case

    def test_delegating_answers_fail_the_static_check(self, delegating_case):
        nb = self.DELEGATING[delegating_case].apply(read(self.solution_path()))
        verdicts = judged_verdicts(nb, self.ASSIGNMENT)
        failed = {k: v for k, v in verdicts.items() if not v.passed}
        assert set(failed) == self.DELEGATING[delegating_case].fails, f"{delegating_case}: {set(failed)}"
        assert all(v.delegation for v in failed.values()), (
            f"{delegating_case} must fail the static check, not a value check: "
            f"{ {k: v.message for k, v in failed.items()} }"
        )

    def test_every_graded_part_has_a_wrong_and_a_delegating_answer(self):
        parts = set(self.POINTS)
        assert {t for case in self.NBGRADER_WRONG for t in self.WRONG[case].fails} == parts
        assert {t for case in self.WRONG.values() for t in case.fails} == parts
        from_scratch = parts - set(self.NOT_FROM_SCRATCH)
        assert {t for case in self.DELEGATING.values() for t in case.fails} == from_scratch
        assert set(self.ISSUE_WRONG) <= set(self.NBGRADER_WRONG), (
            "the wrong answers the issue names are graded"
        )

    # --- course grade (slow) ---------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def graded(cls, tmp_path_factory) -> GradedClass:
        """One ``course grade`` run: the solution, the release and every graded fake student."""
        solution = read(cls.solution_path())
        students = {"solution": cls.solution_path(), "release": cls.release_path()}
        students |= build_class(solution, {c: cls.WRONG[c] for c in cls.NBGRADER_WRONG}, prefix="wrong-")
        students |= build_class(
            solution, {c: cls.DELEGATING[c] for c in cls.NBGRADER_DELEGATING}, prefix="delegates-"
        )
        result = grade_class(tmp_path_factory.mktemp("grading"), cls.ASSIGNMENT, students)
        print(f"course grade: {len(students)} students in {result.seconds:.1f} s")
        assert not (ROOT / "gradebook.db").exists(), "grading must leave no gradebook in the repository"
        return result

    @pytest.mark.slow
    def test_solution_scores_full_marks(self, graded):
        s = graded.scores["solution"]
        assert s["cells"] == expected_cells(self.POINTS, set()), (
            f"solution per cell: {s['cells']} {s['reasons']}"
        )
        assert (s["status"], s["total"], s["max"]) == ("graded", self.total(), self.total() + self.by_hand())
        assert s["manual"] == dict.fromkeys(self.MANUAL), "written answers wait for the instructor"

    @pytest.mark.slow
    def test_released_notebook_scores_zero(self, graded):
        r = graded.scores["release"]
        assert r["cells"] == expected_cells(self.POINTS, set(self.POINTS)), f"release per cell: {r['cells']}"
        assert (r["total"], r["max"]) == (0, self.total() + self.by_hand())

    @pytest.mark.slow
    def test_a_wrong_answer_loses_exactly_its_part(self, graded, graded_wrong_case):
        lost = self.WRONG[graded_wrong_case].fails
        s = graded.scores[f"wrong-{graded_wrong_case}"]
        assert s["cells"] == expected_cells(self.POINTS, lost), f"{graded_wrong_case}: per-cell {s['cells']}"
        assert s["total"] == self.total() - sum(self.POINTS[t] for t in lost)

    @pytest.mark.slow
    def test_a_delegating_answer_gets_no_credit(self, graded, graded_delegating_case):
        lost = self.DELEGATING[graded_delegating_case].fails
        s = graded.scores[f"delegates-{graded_delegating_case}"]
        assert s["cells"] == expected_cells(self.POINTS, lost), (
            f"{graded_delegating_case} delegates instead of using NumPy and must lose {sorted(lost)}: "
            f"{s['cells']}"
        )

    @pytest.mark.slow
    def test_feedback_shows_no_judge_code(self, graded):
        """The judge's code never reaches a kernel, so no feedback can quote it: only the messages
        of its checks (and the visible tests, which the release shows anyway)."""
        release = notebook_code(read(self.release_path())) + notebook_code(read(self.solution_path()))
        judge_file = ROOT / "solutions" / self.ASSIGNMENT / "judge.py"
        secret = {
            line.strip() for line in judge_file.read_text().splitlines()
            if len(line.strip()) >= 30 and line.strip() not in release
            and not line.strip().startswith(("#", "import", "from", '"""', "assert", "f\"", '"'))
        }  # fmt: skip
        files = sorted((graded.out / "feedback").rglob("*.html")) + sorted(
            (graded.out / "feedback").rglob("*.ipynb")
        )
        assert files, "course grade wrote no feedback"
        for path in files:
            text = path.read_text()
            student = path.relative_to(graded.out / "feedback").parts[0]
            own = notebook_code(
                read(graded.out / "submitted" / student / self.ASSIGNMENT / f"{self.ASSIGNMENT}.ipynb")
            )
            quoted = sorted(line for line in secret if line in text and line not in own)
            assert quoted == [], f"{path.relative_to(graded.out)} quotes the judge: {quoted[:3]}"

    @pytest.mark.slow
    def test_exercises_are_not_stale(self, graded):
        from course_lib.grading.release import notebook_differences

        release = self.release_path()
        diffs = notebook_differences(
            graded.out / "release" / self.ASSIGNMENT / f"{self.ASSIGNMENT}.ipynb", release
        )
        assert not diffs, (
            f"{release.relative_to(ROOT)} is stale (differs from what solutions/ generates: "
            f"{diffs[:5]}): run `course release {self.ASSIGNMENT}` and commit exercises/"
        )
