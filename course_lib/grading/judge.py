"""The judge: every graded part's verdict, decided in a process the student's code never runs in.

An assignment's hidden tests are not in its notebook. They live next to the instructor's source
notebook, in ``solutions/<assignment>/judge.py`` (never released: nbgrader ignores the file, and
the grader never copies it where a kernel can see it)::

    import numpy as np
    from course_lib.grading.judge import Judge

    judge = Judge("01-activations", forbidden=["course_lib.numpy_impl.activations"])

    @judge.part("test_sigmoid", answers=["sigmoid"])
    def _(k, rng):
        x = rng.normal(scale=8.0, size=(4, 5))
        out = k.call("sigmoid", x)
        assert np.shape(out) == x.shape, f"sigmoid must keep the shape {x.shape}"
        assert np.allclose(out, 1 / (1 + np.exp(-x))), "sigmoid is wrong on random inputs"

A part gets ``k``, the student's kernel seen through the probe (``probe.py``): ``k.call(name,
*args)`` calls the student's function on plain data (arrays, numbers, strings, containers, NumPy
Generators) and returns plain data; ``k.run(code, inputs, outputs)`` runs a piece of the
instructor's code in a copy of the student's namespace and returns the named variables;
``k.value(name)`` fetches a variable. What the student's code raises comes back as
``StudentError`` (its type and message). ``rng`` is a Generator seeded by (assignment, part,
student id), so hidden inputs differ from student to student and a hard-coded output fails.
Comparisons, tolerances and expected values never leave this process. A part passes when its
function returns; it fails with the message of the ``AssertionError`` it raises (the student reads
it in the feedback, never the judge's code).

Before a part's probes, ``judge_part`` runs the static check of ``integrity.py`` on the
notebook as submitted for the part's ``answers``: an answer that delegates to ``course_lib``,
torch, scipy or scikit-learn gets no credit, whatever it computes.

``Judge(..., forbidden=[...])`` lists the ``course_lib`` modules that hold what the assignment
asks students to write: the kernel's grading copy of the library leaves them out
(``kernel_env.py``), as it leaves out torch, scipy and scikit-learn entirely. ``not_run`` lists
locked cells (demonstrations) that are not run when grading. ``provided`` maps a locked cell that
needs the library's versions of those modules (an experiment's measurements) to a function that
computes, on the trusted side, the variables the cell defines: when grading, the judge puts them in
the student's namespace instead of running the cell. ``InProcessKernel`` runs the same
probes in a dictionary namespace: the tests use it to judge hundreds of fake students quickly;
grading uses ``execute.JudgedExecute``'s kernel client.
"""

from __future__ import annotations

import hashlib
import importlib.util
import keyword
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from course_lib.grading import integrity, probe

#: The file name of an assignment's judge, next to its source notebook in solutions/.
JUDGE_FILE = "judge.py"


class StudentError(Exception):
    """The student's code raised ``type``: ``message`` while the judge probed it."""

    def __init__(self, type_name: str, message: str, where: str = "") -> None:
        self.type, self.message, self.where = str(type_name), str(message), where
        super().__init__(f"{self.type}: {self.message}")

    def __str__(self) -> str:
        head = f"{self.where} raised " if self.where else "raised "
        if self.type == "NotImplementedError" and not self.message.strip():
            return (
                f"{head}NotImplementedError: the answer is still the template's `raise NotImplementedError()`"
            )
        return f"{head}{self.type}: {self.message}".strip()


class ProbeFailed(Exception):
    """The probe got no answer: the kernel ran past the time limit, died, or sent garbage.

    ``fatal`` is True when the kernel is gone or stuck: no later part can be judged."""

    def __init__(self, message: str, *, fatal: bool = False, timeout: bool = False) -> None:
        super().__init__(message)
        self.fatal, self.timeout = fatal, timeout


class Kernel:
    """The student's kernel as the judge sees it: plain data in, plain data out."""

    def run(self, code: str, inputs: Mapping[str, Any] | None = None, outputs: Sequence[str] = ()) -> dict:
        """Run ``code`` with ``inputs`` bound in a copy of the student's namespace; return the
        ``outputs`` it defines, as plain data. Raises ``StudentError`` when the code raises."""
        text = probe.dumps(dict(inputs or {}))
        payload = self._exchange(code, text, list(outputs))
        if not isinstance(payload, dict) or "ok" not in payload:
            raise ProbeFailed("the kernel's answer to the probe is not a probe result")
        if payload["ok"] is not True:
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            raise StudentError(str(error.get("type", "Error")), str(error.get("message", "")))
        values = payload.get("outputs")
        if not isinstance(values, dict) or set(values) != set(outputs):
            raise ProbeFailed("the kernel's answer does not hold the outputs the probe asked for")
        return values

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``name(*args, **kwargs)`` in the student's namespace; its return value as plain data."""
        _check_name(name)
        try:
            out = self.run(f"__result = {name}(*__args, **__kwargs)", {"__args": args, "__kwargs": kwargs},
                           ["__result"])  # fmt: skip
        except StudentError as err:
            err.where = f"{name}(...)"
            raise
        return out["__result"]

    def value(self, name: str) -> Any:
        """The student's variable ``name`` as plain data (``StudentError`` NameError if missing)."""
        _check_name(name)
        return self.run(f"__value = {name}", outputs=["__value"])["__value"]

    def defines(self, name: str) -> bool:
        """True when the student's namespace has ``name``."""
        _check_name(name)
        return bool(self.run(f"__has = {name!r} in GLOBALS", outputs=["__has"])["__has"])

    def _exchange(self, code: str, inputs_text: str, outputs: list[str]) -> Any:  # pragma: no cover
        raise NotImplementedError


def _check_name(name: str) -> None:
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
        raise ValueError(f"not a Python name: {name!r}")


class InProcessKernel(Kernel):
    """A dictionary namespace standing in for a kernel (tests): the same probe and codec."""

    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace

    def _exchange(self, code: str, inputs_text: str, outputs: list[str]) -> Any:
        result = probe.run(code, inputs_text, outputs, self.namespace)
        return probe.loads(probe.dumps(result))  # what would cross the wire


@dataclass
class Part:
    """One graded cell: its grade id, the answers it checks, and the check."""

    grade_id: str
    check: Callable[[Kernel, np.random.Generator], None]
    answers: tuple[str, ...] = ()
    stand_ins: tuple[str, ...] = ()  # the student's functions the check replaces by its own


@dataclass
class Judge:
    """The hidden tests of one assignment (see the module docstring)."""

    assignment: str
    forbidden: Sequence[str] = ()  # course_lib modules absent from the grading kernel
    not_run: Sequence[str] = ()  # grade ids of locked cells not run when grading
    provided: Mapping[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)  # see above
    parts: dict[str, Part] = field(default_factory=dict)

    def provide(self, grade_id: str):
        """Decorator: ``values() -> {name: plain data}`` replaces the locked cell ``grade_id``."""

        def register(values: Callable[[], dict[str, Any]]):
            self.provided = {**self.provided, grade_id: values}
            return values

        return register

    def part(self, grade_id: str, *, answers: Iterable[str] = (), stand_ins: Iterable[str] = ()):
        """Decorator: register ``check(k, rng)`` as the judge of the test cell ``grade_id``.

        ``answers``: the functions whose source must be the student's own (the static check).
        ``stand_ins``: functions of the student's that the check swaps for the judge's while it
        runs (a part graded on its own): the static check does not follow them from ``answers``."""

        def register(check: Callable[[Kernel, np.random.Generator], None]):
            if grade_id in self.parts:
                raise ValueError(f"{self.assignment}: two judges for {grade_id}")
            self.parts[grade_id] = Part(grade_id, check, tuple(answers), tuple(stand_ins))
            return check

        return register


@dataclass
class Verdict:
    """What the judge decided for one part."""

    grade_id: str
    passed: bool
    message: str = ""  # why it failed, for the student (no judge code in it)
    seconds: float = 0.0
    delegation: list[str] = field(default_factory=list)  # what the static check found
    fatal: bool = False  # the kernel is gone or stuck: later parts cannot be judged
    timeout: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"grade_id": self.grade_id, "passed": self.passed, "message": self.message,
                "seconds": round(self.seconds, 4), "delegation": self.delegation,
                "fatal": self.fatal, "timeout": self.timeout}  # fmt: skip


def seed_for(assignment: str, grade_id: str, student: str) -> int:
    """The seed of a student's hidden inputs for one part: the same on every regrade."""
    digest = hashlib.sha256(f"{assignment}\0{grade_id}\0{student}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def judge_part(
    judge: Judge,
    grade_id: str,
    kernel: Kernel,
    *,
    student: str,
    sources: Sequence[str] | None = None,
    trusted: Iterable[int] = (),
    labels: Sequence[str] = (),
) -> Verdict:
    """The verdict of part ``grade_id``: the static check of ``sources`` (the submitted
    notebook's code cells, in order; ``trusted``: the indices of its locked cells), then the
    part's probes of ``kernel``."""
    start = time.perf_counter()
    part = judge.parts.get(grade_id)
    if part is None:
        return Verdict(grade_id, False, f"no judge for {grade_id}: tell your instructor")
    if sources is not None and part.answers:
        found = integrity.delegation_problems(
            sources, part.answers, trusted=trusted, labels=labels, ignore=part.stand_ins
        )
        if found:
            lines = "; ".join(found[:5])
            return Verdict(
                grade_id, False,
                f"{', '.join(part.answers)} must be your own NumPy code, but it delegates ({lines}): "
                f"answers that call {', '.join(integrity.FORBIDDEN)} get no credit for this part",
                time.perf_counter() - start, found,
            )  # fmt: skip
    rng = np.random.default_rng(seed_for(judge.assignment, grade_id, student))
    try:
        part.check(kernel, rng)
    except AssertionError as err:
        return Verdict(
            grade_id, False, str(err) or "a check of this part failed", time.perf_counter() - start
        )
    except StudentError as err:
        return Verdict(grade_id, False, f"your code {err}", time.perf_counter() - start)
    except ProbeFailed as err:
        return Verdict(grade_id, False, str(err), time.perf_counter() - start, fatal=err.fatal,
                       timeout=err.timeout)  # fmt: skip
    except probe.CodecError as err:
        return Verdict(grade_id, False, f"your code returned something that is not plain data: {err}",
                       time.perf_counter() - start)  # fmt: skip
    except Exception as err:  # the check could not use what came back (a list for an array, ...)
        return Verdict(
            grade_id, False,
            f"what your code returned could not be checked ({type(err).__name__}: {str(err)[:300]})",
            time.perf_counter() - start,
        )  # fmt: skip
    return Verdict(grade_id, True, "", time.perf_counter() - start)


def code_cells(nb: Any) -> tuple[list[str], list[int], list[str]]:
    """What the static check reads of a notebook: the sources of its code cells but the test
    cells, the indices of the locked (instructor's) ones among them, and a label for each."""
    from course_lib.grading.submissions import cell_role, nbgrader_meta

    sources, trusted, labels = [], [], []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or cell_role(cell) == "test":
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        if cell_role(cell) == "locked":
            trusted.append(len(sources))
        labels.append(f"cell {gid}" if gid and cell_role(cell) else f"cell {number}")
        sources.append(cell.source)
    return sources, trusted, labels


def judge_in_process(
    nb: Any, judge: Judge, *, student: str = "student", static: bool = True
) -> dict[str, Verdict]:
    """Grade ``nb`` (an nbformat notebook) as ``course grade`` does, but in this process: the code
    cells run in one dictionary namespace, in order, except test cells (judged, with an
    ``InProcessKernel`` on that namespace) and the judge's ``not_run`` cells; ``provided`` cells
    put the judge's values in the namespace instead of running. No sandbox: for the tests and for
    checking a judge while writing it. ``static=False`` skips the static delegation check."""
    from course_lib.grading.submissions import cell_role, nbgrader_meta

    sources, trusted, labels = code_cells(nb)
    ns: dict[str, Any] = {"__name__": "__main__"}
    kernel = InProcessKernel(ns)
    verdicts: dict[str, Verdict] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        role = cell_role(cell)
        if role == "test":
            checked = sources if static else None
            verdicts[gid] = judge_part(judge, gid, kernel, student=student, sources=checked,
                                       trusted=trusted, labels=labels)  # fmt: skip
        elif role == "locked" and gid in judge.not_run:
            continue
        elif role == "locked" and gid in judge.provided:
            ns.update(probe.loads(probe.dumps(judge.provided[gid]())))
        else:
            try:
                exec(compile(cell.source, f"<cell {gid or ''}>", "exec"), ns)  # noqa: S102 - the notebook
            except Exception:  # a failing cell: the parts that need it fail
                pass
    return verdicts


_LOADED: dict[tuple[str, float], Judge] = {}


def load_judge(path: Path | str) -> Judge:
    """The ``judge`` object of the judge file at ``path`` (imported once per version)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: every assignment needs a {JUDGE_FILE}")
    key = (str(path), path.stat().st_mtime)
    if key not in _LOADED:
        name = f"course_judge_{hashlib.sha256(key[0].encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        judge = getattr(module, "judge", None)
        if not isinstance(judge, Judge):
            raise TypeError(f"{path} must define `judge = Judge(...)`")
        _LOADED[key] = judge
    return _LOADED[key]


def judge_path(source_dir: Path | str) -> Path:
    """Where the judge of the assignment whose source notebooks are in ``source_dir`` lives."""
    return Path(source_dir) / JUDGE_FILE


# --- checks the judges share (they run on the trusted side, on what a probe brought back) -------


def floats(value: Any, shape: Sequence[int], what: str) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or an AssertionError that teaches what is wrong."""
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} must be a NumPy array of floats, got {type(value).__name__}") from None
    assert out.shape == tuple(shape), f"{what} must have the shape {tuple(shape)}, got {out.shape}"
    return out


def close(
    value: Any, expected: Any, rtol: float, atol: float, message: str, what: str = "the result"
) -> np.ndarray:
    """``floats(value)`` of ``expected``'s shape, asserted allclose to it (``message`` when not)."""
    expected = np.asarray(expected, dtype=np.float64)
    out = floats(value, expected.shape, what)
    assert np.allclose(out, expected, rtol=rtol, atol=atol), message
    return out


def unchanged(value: Any, original: Any) -> bool:
    """True when ``value`` (an argument as it came back from the kernel) still equals ``original``."""
    try:
        a, b = np.asarray(value, dtype=np.float64), np.asarray(original, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.array_equal(a, b))


__all__ = [
    "JUDGE_FILE",
    "InProcessKernel",
    "Judge",
    "Kernel",
    "Part",
    "ProbeFailed",
    "StudentError",
    "Verdict",
    "close",
    "floats",
    "judge_in_process",
    "judge_part",
    "judge_path",
    "load_judge",
    "seed_for",
    "unchanged",
]
