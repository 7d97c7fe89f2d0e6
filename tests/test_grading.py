"""``course grade`` and ``course check``, with real nbgrader, real kernels and a real sandbox.

The ``slow`` tests grade one class of crafted submissions in ONE ``course grade`` run (a module
fixture): every student status, the sandbox, the repairs of mangled notebooks, timeouts, dead
kernels, memory bombs, huge outputs and hostile code. Each case then has its own small test:
status, total, the score of every graded cell, and the reason or note that explains it. Further
runs check that a zip and an LMS flat folder give the same rows, that running twice gives the
same CSV, and that ``course check`` tells a student the truth. Fast tests cover the pieces
(collecting, reading, repairing, redacting, the CSV) without kernels.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from test_assignments import POINTS  # assignment 01's contract, checked against its metadata there

from course_lib.grading import redact
from course_lib.grading.batch import (
    GRADES_HEADER,
    ClassReport,
    GradeOptions,
    StudentResult,
    grades_csv,
    notes_csv,
)
from course_lib.grading.cli import build_parser
from course_lib.grading.sandbox import kernelspec
from course_lib.grading.submissions import (
    SubmissionError,
    collect,
    foreign_notebook,
    load_notebook,
    normalize,
    safe_unzip,
)

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-activations"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / NOTEBOOK
RELEASE = ROOT / "exercises" / ASSIGNMENT / NOTEBOOK
BIN = Path(sys.executable).parent

TOTAL = sum(POINTS.values())
ORDER = list(POINTS)  # notebook order: the CSV's columns

#: Limits of the graded run: small, so the loop cases cost seconds, not minutes.
TIMEOUT, WALL, MEMORY, GRACE = 15, 45, 1500, 10
#: Files the hostile cases try to write; none may appear.
ESCAPES = [
    ROOT / "course-grading-escape.txt",
    ROOT / "course_lib" / "course-grading-escape.txt",
    Path("/tmp/course-grading-escape.txt"),
]


# --- building notebooks --------------------------------------------------------------------------


@functools.lru_cache
def _read_cached(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def read(path: Path) -> nbformat.NotebookNode:
    return copy.deepcopy(_read_cached(path))


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def index_of(nb, grade_id: str) -> int:
    found = [i for i, c in enumerate(nb.cells) if meta(c).get("grade_id") == grade_id]
    assert len(found) == 1, f"expected one {grade_id!r} cell, found {len(found)}"
    return found[0]


def cell(nb, grade_id: str):
    return nb.cells[index_of(nb, grade_id)]


def solution() -> nbformat.NotebookNode:
    """The student's view of a perfect answer: the release with the solutions filled in (no
    hidden tests, as a real student's notebook)."""
    nb = read(RELEASE)
    sol = read(SOLUTION)
    for c in nb.cells:
        if meta(c).get("solution"):
            src = cell(sol, meta(c)["grade_id"]).source
            c.source = "\n".join(
                line
                for line in src.splitlines()
                if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
            )
    return nb


def with_answer(grade_id: str, code: str, nb=None) -> nbformat.NotebookNode:
    """A solution whose ``grade_id`` answer cell is ``code`` (whole cell)."""
    nb = solution() if nb is None else nb
    cell(nb, grade_id).source = textwrap.dedent(code).strip("\n")
    return nb


def prepend(grade_id: str, code: str, nb=None) -> nbformat.NotebookNode:
    nb = solution() if nb is None else nb
    c = cell(nb, grade_id)
    c.source = textwrap.dedent(code).strip("\n") + "\n" + c.source
    return nb


WRONG_RELU = """
def relu(x):
    x[x < 0] = 0
    return x
"""
WRONG_RELU_GRAD = """
import numpy as np

def relu_grad(x):
    return np.abs(np.sign(x)) + 0.0
"""
LOOP = "while True:\n    pass"
IGNORES_INTERRUPT = """
import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass
"""
MEMORY_BOMB = """
def _bomb():
    hog = []
    while True:
        hog.append(bytearray(100 * 1024 * 1024))
_bomb()
"""
ALWAYS_EQUAL = """
class _AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


def relu(x):
    return _AlwaysEqual()
"""
NOISY = """
import sys
import warnings

warnings.warn("only a warning")
print("defining sigmoid", file=sys.stderr)
"""
READS_SOLUTIONS = f"""
import json
import pathlib

import course_lib

_tried = [
    pathlib.Path(course_lib.__file__).resolve().parents[1] / "solutions" / "{ASSIGNMENT}" / "{NOTEBOOK}",
    pathlib.Path({str(SOLUTION)!r}),
    pathlib.Path("../../../source/{ASSIGNMENT}/{NOTEBOOK}"),
    pathlib.Path("../../../../source/{ASSIGNMENT}/{NOTEBOOK}"),
]
_stolen = None
for _path in _tried:
    try:
        _stolen = json.loads(_path.read_text())
        print("READ", _path)
        break
    except OSError as err:
        print("could not read", _path, type(err).__name__)
if _stolen:  # run the instructor's sigmoid
    for _c in _stolen["cells"]:
        if _c["metadata"].get("nbgrader", {{}}).get("grade_id") == "sigmoid":
            exec("".join(_c["source"]))
else:  # a wrong answer: only the stolen one would score
    def sigmoid(x):
        return np.zeros(np.shape(x))
"""
WRITES_OUTSIDE = f"""
import pathlib

_escaped = []
for _path in {[str(p) for p in ESCAPES]!r} + ["../../../course-grading-escape.txt"]:
    try:
        pathlib.Path(_path).write_text("a student was here")
        if not _path.startswith("/tmp/"):  # the kernel's /tmp is private: writing there is fine
            _escaped.append(_path)
    except OSError as err:
        print("could not write", _path, type(err).__name__)
if _escaped:  # writing outside the workspace must not work: it would cost the marks
    raise RuntimeError(f"wrote {{_escaped}}")
"""
LEAKS_VIA_INSPECT = """
import sys as _sys


def _show_caller():
    frame = _sys._getframe(2)
    import linecache

    print("".join(linecache.getlines(frame.f_code.co_filename)))
"""
LEAKY_SIGMOID = """
def sigmoid(x):
    _show_caller()
    x = np.asarray(x, dtype=np.float64)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
"""
SLOW = "import time\ntime.sleep(14)"
#: Replaces every comparison a test could use, then answers relu wrongly (in place): only a
#: grader that compares in the student's kernel would give the point.
PATCHES_COMPARISONS = """
import math
import numpy
import numpy.testing

numpy.allclose = numpy.array_equal = numpy.isclose = numpy.array_equiv = lambda *a, **k: True
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None
math.isclose = lambda *a, **k: True
try:
    np.ndarray.__eq__ = lambda self, other: np.ones(np.shape(self), dtype=bool)
except TypeError:  # a built-in type: NumPy's own equality cannot be replaced
    pass
"""
#: Changes how IPython runs and reports cells: every later cell that holds an assert is emptied,
#: results are displayed as a number (nbgrader's partial credit), errors are swallowed.
IPYTHON_HOOKS = """
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: [] if any("assert" in l for l in lines) else lines)
ip.events.register("post_run_cell", lambda result: setattr(result, "error_in_exec", None))
ip.display_formatter.formatters["text/plain"].for_type(object, lambda obj, p, cycle: p.text("2.0"))
ip.set_custom_exc((BaseException,), lambda *args, **kwargs: None)
"""
#: Looks for other kernels: TCP ports in /proc/net, unix sockets, other users' folders.
SPIES_ON_OTHERS = """
import glob as _glob
import socket as _socket

_found = []
for _table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        _rows = open(_table).read().splitlines()[1:]
    except OSError:
        continue
    for _row in _rows:
        _local, _state = _row.split()[1], _row.split()[3]
        if _state == "0A":  # LISTEN
            _port = int(_local.split(":")[1], 16)
            _s = _socket.socket()
            _s.settimeout(0.2)
            if _s.connect_ex(("127.0.0.1", _port)) == 0:
                _found.append(f"tcp {_port}")
            _s.close()
for _pattern in ("/dev/shm/*", "/tmp/*", "/course/*"):
    _found += [p for p in _glob.glob(_pattern) if "course-grade" in p or "solutions" in p]
import os as _os
for _cmd in _glob.glob("/proc/[0-9]*/cmdline"):  # other processes: the grader, other kernels
    try:
        _text = open(_cmd, "rb").read()
    except OSError:
        continue
    if _cmd != f"/proc/{_os.getpid()}/cmdline" and (b"worker" in _text or b"nbgrader" in _text):
        _found.append(_text[:80].decode(errors="replace"))
print("spied:", _found)
if _found:
    raise RuntimeError(f"another kernel or the grader is reachable: {_found}")
"""
#: Writes to its standard streams and to every descriptor it holds that leads to a file: a
#: kernel that inherited the grader's log would write into it.
WRITES_DESCRIPTORS = """
import os as _os
import sys as _sys
for _fd in (1, 2):
    _os.write(_fd, b"STUDENT-WROTE-HERE\\n")
_files = []
for _name in _os.listdir("/proc/self/fd"):
    try:
        _target = _os.readlink(f"/proc/self/fd/{_name}")
    except OSError:
        continue
    if _target.startswith("/") and not _target.startswith(("/dev/", "/proc/")) and int(_name) > 2:
        _files.append(_target)
        try:
            _os.write(int(_name), b"STUDENT-WROTE-HERE\\n")
        except OSError:
            pass
print("files held:", _files, file=_sys.stderr)
"""
#: Fills its writable folder with many medium files: the total quota stops it, not the file size.
FILLS_THE_DISK = """
import os as _os
_written = 0
try:
    for _i in range(200):
        with open(f"fill-{_i}.bin", "wb") as _f:
            _f.write(b"x" * (16 * 1024 * 1024))
        _written += 16
except OSError as _err:
    print(f"stopped after {_written} MB: {_err}")
"""
#: Script and event handlers in a markdown cell and in an output.
XSS_MARKDOWN = (
    'A note <script>document.title = "PWNED-SCRIPT"</script> '
    '<img src="x" onerror="document.title=\'PWNED-IMG\'"> <a href="javascript:alert(1)">click</a>'
)
XSS_OUTPUT = """
from IPython.display import HTML, display
display(HTML('<b>hi</b><script>document.title="PWNED-OUTPUT"</script><svg onload="alert(1)"></svg>'))
"""


def _test_edited_to_pass():
    nb = with_answer("relu", WRONG_RELU)
    cell(nb, "test_relu").source = "pass"
    return nb


def _test_deleted():
    nb = with_answer("relu_grad", WRONG_RELU_GRAD)
    del nb.cells[index_of(nb, "test_relu_grad")]
    return nb


def _test_copied_before_answer():
    nb = solution()
    copied = copy.deepcopy(cell(nb, "test_sigmoid"))
    copied["id"] = "my-copy"
    nb.cells.insert(index_of(nb, "sigmoid"), copied)
    return nb


def _grade_id_renamed():
    nb = with_answer("relu", WRONG_RELU)
    c = cell(nb, "test_relu")
    c.metadata["nbgrader"]["grade_id"] = "test_relu_v2"
    c.source = "pass"
    return nb


def _kernelspec_changed():
    nb = solution()
    nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    return nb


def _stored_output():
    nb = solution()
    c = cell(nb, "setup")
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 50_000_000)]
    return nb


def _new_notebook():
    nb = solution()
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
    return nb


def _test_moved():
    nb = solution()
    moved = nb.cells.pop(index_of(nb, "test_sigmoid"))
    nb.cells.insert(index_of(nb, "sigmoid"), moved)
    return nb


def _slow():
    nb = solution()
    for gid in ("sigmoid", "sigmoid_grad", "tanh_grad", "relu"):
        prepend(gid, SLOW, nb)
    return nb


def _leaks_via_inspect():
    nb = prepend("sigmoid", LEAKS_VIA_INSPECT)
    return with_answer("sigmoid", LEAKS_VIA_INSPECT + "\n\n" + LEAKY_SIGMOID, nb)


CAPTURES_THE_CALLER = """
import linecache as _linecache
import sys as _sys

_captured = []


def _spy(frame, event, arg):  # sees every call the kernel makes, the judge's probes included
    name = frame.f_code.co_filename
    if event == "call" and name.startswith("<") and len(_captured) < 2000:  # code run from strings
        _captured.append(name)
        _captured.extend(_linecache.getlines(name)[:200])
        _captured.extend(str(c) for c in frame.f_code.co_consts if isinstance(c, str))


_sys.setprofile(_spy)
"""


def _captures_the_caller():
    """A profile hook records what the judge's probes look like from inside (sigmoid itself stays
    clean, so the static check lets it through); a later cell prints it."""
    nb = prepend("sigmoid", CAPTURES_THE_CALLER)
    return prepend(
        "experiment", "_sys.setprofile(None)\nprint('CAPTURED:', ''.join(map(str, _captured))[:60000])", nb
    )


def _xss():
    nb = prepend("sigmoid", XSS_OUTPUT)
    nb.cells.insert(index_of(nb, "sigmoid"), nbformat.v4.new_markdown_cell(XSS_MARKDOWN))
    return nb


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@dataclass
class Case:
    """One student: the files of their folder, and what grading must conclude."""

    files: object  # callable -> {relative path: NotebookNode | bytes}
    status: str
    total: float | None
    lost: set[str] = field(default_factory=set)  # graded cells with 0 points
    says: tuple[str, ...] = ()  # substrings of the reasons and notes


def nb_case(build, status="graded", lost=(), says=(), total=None):
    lost = set(lost)
    if total is None and status != "ungradable":
        total = TOTAL - sum(POINTS[t] for t in lost)
    return Case(lambda: {NOTEBOOK: build()}, status, total, lost, tuple(says))


#: The class: student id -> Case. Cells run in order: setup, sigmoid, test_sigmoid (2),
#: sigmoid_grad, test (1), tanh_grad, test (1), relu, test (1), relu_grad, test (1), leaky_relu,
#: leaky_relu_grad, test (2), elu_provided, elu_grad, test (1), numerical_gradient, test (2),
#: mlp_provided, mlp_backward, test (3), experiment_provided, experiment, test (2).
AFTER_RELU = set(ORDER[3:])
AFTER_LEAKY = set(ORDER[5:])
CASES: dict[str, Case] = {
    "correct": nb_case(solution),
    "blank": nb_case(lambda: read(RELEASE), lost=ORDER),
    "one-wrong-part": nb_case(lambda: with_answer("relu", WRONG_RELU), lost={"test_relu"}),
    "infinite-loop": nb_case(
        lambda: prepend("tanh_grad", LOOP), "timeout", {"test_tanh_grad"},
        (f"tanh_grad ran past {TIMEOUT} s and was interrupted",),
    ),
    "loop-ignores-interrupt": nb_case(
        lambda: prepend("relu", IGNORES_INTERRUPT), "timeout", AFTER_RELU,
        (f"relu ran past {TIMEOUT} s", "ignored the interrupt"),
    ),
    "os-exit": nb_case(
        lambda: prepend("leaky_relu", "import os\nos._exit(3)"), "crashed", AFTER_LEAKY,
        ("the kernel died in leaky_relu", "cells that ran count"),
    ),
    "memory-bomb": nb_case(
        lambda: prepend("elu_grad", MEMORY_BOMB), lost={"test_elu_grad"},
        says=(f"MemoryError in elu_grad (memory limit {MEMORY} MB)",),
    ),
    "exception-at-import": nb_case(
        lambda: prepend("sigmoid", "import numpy_but_faster"), lost={"test_sigmoid"}
    ),
    "test-edited-to-pass": nb_case(
        _test_edited_to_pass, lost={"test_relu"}, says=("test cell test_relu was edited",)
    ),
    "test-deleted": nb_case(
        _test_deleted, lost={"test_relu_grad"}, says=("test cell test_relu_grad was deleted",)
    ),
    "test-copied": nb_case(
        _test_copied_before_answer, says=("test cell test_sigmoid appears 2 times",)
    ),
    "test-moved": nb_case(_test_moved, says=("test cell test_sigmoid was moved before sigmoid",)),
    "grade-id-renamed": nb_case(
        _grade_id_renamed, lost={"test_relu"},
        says=("unknown grade id 'test_relu_v2'", "test cell test_relu was deleted"),
    ),
    "kernelspec-changed": nb_case(_kernelspec_changed, says=("kernelspec 'ir' instead of 'python3'",)),
    "invalid-json": Case(
        lambda: {NOTEBOOK: nbformat.writes(solution())[:5000].encode()}, "ungradable", None,
        says=("is not valid JSON",),
    ),
    "empty-file": Case(lambda: {NOTEBOOK: b""}, "ungradable", None, says=("empty file",)),
    "png-renamed": Case(lambda: {NOTEBOOK: _png()}, "ungradable", None, says=("a PNG image",)),
    "wrong-name": Case(
        lambda: {f"{ASSIGNMENT} (1).ipynb": solution()}, "ungradable", None,
        says=("wrong file name", f"{ASSIGNMENT} (1).ipynb"),
    ),
    "missing-notebook": Case(
        lambda: {"answers.py": b"print('hi')\n"}, "ungradable", None,
        says=("missing notebook", "answers.py"),
    ),
    "new-notebook": Case(
        lambda: {NOTEBOOK: _new_notebook()}, "ungradable", None,
        says=("none of the assignment's cells",),
    ),
    "eq-always-true": nb_case(lambda: with_answer("relu", ALWAYS_EQUAL), lost={"test_relu"}),
    "stderr-and-warning": nb_case(lambda: prepend("sigmoid", NOISY)),
    "delegates-to-library": nb_case(
        lambda: with_answer(
            "sigmoid",
            "from course_lib.numpy_impl.activations import sigmoid as _s\n\n"
            "def sigmoid(x):\n    return _s(x)",
        ),
        lost={"test_sigmoid"},
    ),
    "reads-solutions": nb_case(lambda: with_answer("sigmoid", READS_SOLUTIONS), lost={"test_sigmoid"}),
    "writes-outside": nb_case(lambda: prepend("sigmoid", WRITES_OUTSIDE)),
    "leaks-via-inspect": nb_case(
        _leaks_via_inspect, lost={"test_sigmoid"}, says=("test_sigmoid: no credit", "_getframe")
    ),
    "doe, jane": nb_case(solution),
    "huge-output": nb_case(
        lambda: prepend("experiment", "print('x' * 50_000_000)"), says=("output of experiment cut",)
    ),
    "huge-stored-output": nb_case(_stored_output, says=("stored outputs (50.0 MB) cleared",)),
    "nbgrader-layout": Case(
        lambda: {f"{ASSIGNMENT}/{NOTEBOOK}": solution()}, "graded", TOTAL
    ),
    "slow-everywhere": Case(
        lambda: {NOTEBOOK: _slow()}, "timeout", None, says=(f"wall limit of {WALL} s",)
    ),
    # --- attacks on the grade (issue 14): none gains a point or reads anything ---
    "patches-comparisons": nb_case(
        lambda: with_answer("relu", WRONG_RELU, prepend("sigmoid", PATCHES_COMPARISONS)), lost={"test_relu"}
    ),
    "ipython-hooks": nb_case(
        lambda: with_answer("relu", WRONG_RELU, prepend("sigmoid", IPYTHON_HOOKS)), lost={"test_relu"}
    ),
    "disables-integrity": nb_case(
        lambda: with_answer(
            "sigmoid",
            "try:\n    import course_lib.grading.integrity as _i\n"
            "    _i.delegation_problems = lambda *a, **k: []\nexcept ImportError:\n    pass\n"
            "import torch as numpy_fast\n\n\ndef sigmoid(x):\n"
            "    return numpy_fast.sigmoid(numpy_fast.as_tensor(x)).numpy()",
        ),
        lost={"test_sigmoid"},
    ),
    "forged-module": nb_case(
        lambda: with_answer(
            "relu_grad",
            "from course_lib.numpy_impl import activations as _A\n\n\ndef relu_grad(x):\n"
            "    return _A.relu_grad(x)\n\n\nrelu_grad.__module__ = '__main__'\nnp.relu_grad = _A.relu_grad",
        ),
        lost={"test_relu_grad"},
    ),
    "spies-on-others": nb_case(lambda: prepend("sigmoid", SPIES_ON_OTHERS)),
    "captures-the-caller": nb_case(_captures_the_caller),
    "writes-descriptors": nb_case(lambda: prepend("sigmoid", WRITES_DESCRIPTORS)),
    "worker-0": nb_case(lambda: prepend("sigmoid", WRITES_DESCRIPTORS)),  # an id like a worker log's
    "fills-the-disk": nb_case(lambda: prepend("sigmoid", FILLS_THE_DISK), says=()),
    "xss": nb_case(_xss),
    "links-to-solutions": Case(
        lambda: {ASSIGNMENT: ("symlink", str(ROOT / "solutions" / ASSIGNMENT))}, "ungradable", None,
        says=("symbolic link", "never followed"),
    ),
    "linked-notebook": Case(
        lambda: {NOTEBOOK: ("symlink", str(SOLUTION)), "notes.txt": b"my notes"}, "ungradable", None,
        says=("symbolic link",),
    ),
    "linked-extra-file": Case(
        lambda: {NOTEBOOK: solution(), "passwd": ("symlink", "/etc/passwd")}, "graded", TOTAL,
        says=("passwd is a symbolic link",),
    ),
}  # fmt: skip


def write_student(folder: Path, student: str, case: Case) -> None:
    for rel, content in case.files().items():
        path = folder / student / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "symlink":
            path.symlink_to(content[1])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, str(path))


def write_class(folder: Path, students) -> Path:
    for student in students:
        write_student(folder, student, CASES[student])
    return folder


def course(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The ``course`` console script, as an instructor runs it."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(BIN / "course"), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def grade(submissions: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return course(
        "grade", ASSIGNMENT, str(submissions), "--out", str(out), "--jobs", "2",
        "--timeout", str(TIMEOUT), "--wall-limit", str(WALL), "--memory", str(MEMORY), "--quiet",
        *extra,
    )  # fmt: skip


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


JUDGE = ROOT / "solutions" / ASSIGNMENT / "judge.py"


def judge_code_lines() -> set[str]:
    """The judge's code, found independently of course_lib.grading.redact: every line of
    judge.py, blanks collapsed, that is long enough to be specific, holds code (not only a
    message string or a comment), and that the released notebook does not show anyway."""
    visible = {" ".join(line.split()) for c in read(RELEASE).cells for line in c.source.splitlines()}
    lines = set()
    for line in JUDGE.read_text().splitlines():
        flat = " ".join(line.split())
        if len(flat) >= 24 and flat not in visible and not flat.startswith(("#", '"', "'", 'f"', "f'")):
            lines.add(flat)
    assert len(lines) > 50, f"the judge should have many specific lines, found {len(lines)}"
    return lines


def visible_text(path: Path) -> str:
    """What a student sees in a feedback file: the HTML's text, or the notebook's strings."""
    raw = path.read_text()
    if path.suffix == ".html":
        raw = redact.html_text(raw)
    else:
        nb = json.loads(raw)
        raw = "\n".join(
            "".join(v) if isinstance(v, list) else str(v)
            for c in nb["cells"]
            for v in [
                c["source"],
                *(o.get(k, "") for o in c.get("outputs", []) for k in ("text", "evalue", "traceback")),
            ]
        )
    return " ".join(raw.split())


# --- the class, graded once (slow) ---------------------------------------------------------------


@dataclass
class Run:
    out: Path
    proc: subprocess.CompletedProcess
    rows: dict[str, dict[str, str]]
    notes: dict[str, dict[str, str]]
    info: dict
    seconds: float


def _run(submissions: Path, out: Path, *extra: str) -> Run:
    start = time.perf_counter()
    proc = grade(submissions, out, *extra)
    seconds = time.perf_counter() - start
    assert proc.returncode in (0, 2), (
        f"course grade failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    )
    return Run(out, proc, read_csv(out / "grades.csv"), read_csv(out / "notes.csv"),
               json.loads((out / "run.json").read_text()), seconds)  # fmt: skip


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Run:
    """Every case of CASES in one `course grade --jobs 2` run."""
    for path in ESCAPES:
        path.unlink(missing_ok=True)
    base = tmp_path_factory.mktemp("class")
    run = _run(write_class(base / "submissions", CASES), base / "out")
    print(f"course grade: {len(CASES)} students in {run.seconds:.0f} s; {run.info['phases']}")
    return run


def _says(run: Run, student: str) -> str:
    row = run.notes[student]
    return f"{row['reasons']} | {row['notes']}"


@pytest.mark.slow
@pytest.mark.parametrize("student", list(CASES))
def test_case_ends_with_its_status_and_score(graded, student):
    case = CASES[student]
    row = graded.rows.get(student)
    assert row is not None, f"{student!r} has no row in grades.csv: {sorted(graded.rows)}"
    said = _says(graded, student)
    assert row["status"] == case.status, (
        f"{student}: status {row['status']!r}, expected {case.status!r} ({said})"
    )
    expected_total = "" if case.total is None else f"{case.total:g}"
    assert row["total"] == expected_total, (
        f"{student}: total {row['total']!r}, expected {expected_total!r} ({said})"
    )
    assert row["max"] == f"{TOTAL:g}", f"{student}: max {row['max']!r}"
    cells = {c: row[c] for c in ORDER}
    if case.total is None:
        expected = dict.fromkeys(ORDER, "")
    else:
        expected = {c: ("0" if c in case.lost else f"{POINTS[c]:g}") for c in ORDER}
    assert cells == expected, f"{student}: per-cell scores {cells}, expected {expected} ({said})"
    for text in case.says:
        assert text in said, f"{student}: {text!r} not in the reasons and notes: {said!r}"


@pytest.mark.slow
def test_the_class_covers_every_status_with_enough_cases(graded):
    assert len(CASES) >= 25
    statuses = {row["status"] for row in graded.rows.values()}
    assert statuses == {"graded", "timeout", "crashed", "ungradable"}, statuses
    assert set(graded.rows) == set(CASES), "one row per student, and no other"
    assert graded.proc.returncode == 2, "exit status 2: some students were not graded"


@pytest.mark.slow
def test_grades_csv_columns_quoting_and_no_silent_zero(graded):
    text = (graded.out / "grades.csv").read_text()
    header = text.splitlines()[0]
    assert header == ",".join([*GRADES_HEADER, *ORDER]), header
    assert '\n"doe, jane",graded,16,16,,,,,2,1,1,1,1,2,1,2,3,2\n' in text, "the comma id must be quoted"
    assert list(graded.rows) == sorted(graded.rows), "rows sorted by student id"
    assert graded.rows["blank"]["total"] == "0", "a real zero is a number"
    assert graded.rows["png-renamed"]["total"] == "", "a failure is not a zero"


@pytest.mark.slow
def test_kernels_ran_sandboxed_and_nothing_escaped(graded):
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (to switch users and mount)")
    assert graded.info["sandbox"] == "chroot", (
        f"kernels ran with sandbox {graded.info['sandbox']!r}: namespaces are not available here"
    )
    for path in ESCAPES:
        assert not path.exists(), f"a student's kernel wrote {path}"
    fb = (graded.out / "feedback" / "reads-solutions" / ASSIGNMENT / NOTEBOOK).read_text()
    assert "could not read" in fb and "FileNotFoundError" in fb, "the solution paths must not exist"


@pytest.mark.slow
def test_feedback_and_returned_notebooks_hold_no_judge_code(graded):
    lines = judge_code_lines()
    files = sorted((graded.out / "feedback").rglob("*.html")) + sorted(
        (graded.out / "feedback").rglob("*.ipynb")
    )
    scored = [s for s, r in graded.rows.items() if r["total"] != ""]
    assert len(files) >= 2 * len(scored), f"an HTML and a notebook per scored student: {len(files)} files"
    for path in files:
        text = visible_text(path)
        assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text, f"marker in {path}"
        student = path.relative_to(graded.out / "feedback").parts[0]
        submitted = graded.out / "submitted" / student / ASSIGNMENT / NOTEBOOK
        own = " ".join(  # an ungradable student's status.html has no notebook behind it
            " ".join(c.source.split()) for c in (read(submitted).cells if submitted.is_file() else [])
        )
        leaked = sorted(line for line in lines if line in text and line not in own)
        assert not leaked, f"{path} shows judge lines: {leaked[:3]}"
    # The check above can fail: the judge's own file holds every one of these lines.
    assert sum(line in " ".join(JUDGE.read_text().split()) for line in lines) == len(lines)


@pytest.mark.slow
def test_a_student_sees_nothing_of_the_judge_from_inside(graded):
    """sigmoid walked the stack and linecache while the judge probed it, and printed what it saw
    in a later cell: the probe's own code, and inputs, but no line of the judge."""
    text = visible_text(graded.out / "feedback" / "captures-the-caller" / ASSIGNMENT / NOTEBOOK)
    assert "CAPTURED:" in text and "<judge probe>" in text, "the capture ran during the probes"
    assert not [line for line in judge_code_lines() if line in text]


@pytest.mark.slow
def test_no_kernel_reaches_another_or_the_grader(graded):
    text = visible_text(graded.out / "feedback" / "spies-on-others" / ASSIGNMENT / NOTEBOOK)
    assert "spied: []" in text, f"the spy found something: {text[text.find('spied') :][:300]}"
    assert graded.rows["spies-on-others"]["total"] == f"{TOTAL:g}"


@pytest.mark.slow
def test_student_output_never_reaches_the_workers_logs(graded):
    logs = sorted((graded.out / "logs" / "workers").glob("*.log"))
    assert logs, "one log per worker"
    for log in logs:
        assert "STUDENT-WROTE-HERE" not in log.read_text(errors="replace"), f"{log} holds a student's output"
    own = (graded.out / "logs" / "students" / "worker-0.log").read_text(errors="replace")
    assert "STUDENT-WROTE-HERE" in own, "a kernel's own stdout goes to that student's log (through a pipe)"


@pytest.mark.slow
def test_the_disk_quota_is_a_total(graded):
    if os.geteuid() != 0:
        pytest.skip("the per-student quota is a tmpfs: it needs root")
    text = visible_text(graded.out / "feedback" / "fills-the-disk" / ASSIGNMENT / NOTEBOOK)
    m = re.search(r"stopped after (\d+) MB: .*No space left", text)
    assert m, f"the filler was not stopped by the quota: {text[:500]}"
    assert int(m.group(1)) <= 512, f"it wrote {m.group(1)} MB, past the 512 MB quota"


class _ActiveParts(HTMLParser):
    """Tags and attributes of a page that could run code: script tags, on* handlers,
    javascript: and data: URLs (text that merely shows such markup is not one)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "form"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            v = (value or "").strip().lower()
            if (
                name.startswith("on")
                or v.startswith("javascript:")
                or (name == "href" and v.startswith("data:"))
            ):
                self.found.append(f"<{tag} {name}={value!r}>")


@pytest.mark.slow
def test_feedback_runs_no_script(graded):
    html_path = graded.out / "feedback" / "xss" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    page = html_path.read_text()
    head, body = page[: page.index("<body")], page[page.index("<body") :]
    assert "Content-Security-Policy" in head and "default-src 'none'" in head and "<script" not in page
    assert "<math" in body, "the math of the markdown cells is MathML: it reads offline"
    parser = _ActiveParts()
    parser.feed(body)
    assert parser.found == [], f"active parts survived in the feedback body: {parser.found}"
    assert "A note" in body and "<b>hi</b>" in body, "the harmless parts stay"
    # the control: the student's markup really was in the notebook the feedback was made from
    graded_nb = (graded.out / "autograded" / "xss" / ASSIGNMENT / NOTEBOOK).read_text()
    assert "onerror" in graded_nb and "<script>" in graded_nb


@pytest.mark.slow
@pytest.mark.browser
def test_feedback_runs_no_script_in_a_browser(graded, browser):
    """The page opened in Chromium: none of the student's scripts ran (they would set the title)."""
    page = browser.new_page()
    page.goto((graded.out / "feedback" / "xss" / ASSIGNMENT / f"{ASSIGNMENT}.html").as_uri())
    page.wait_for_timeout(500)
    assert "PWNED" not in page.title()
    assert page.evaluate("document.querySelectorAll('[onerror], [onload], a[href^=javascript]').length") == 0
    page.close()


@pytest.mark.slow
def test_links_are_not_followed_and_nothing_they_point_to_is_kept(graded):
    solution_text = " ".join(SOLUTION.read_text().split())[:2000]
    for student in ("links-to-solutions", "linked-notebook", "linked-extra-file"):
        for folder in ("received", "feedback", "submitted", "autograded"):
            for path in (
                (graded.out / folder / student).rglob("*") if (graded.out / folder / student).exists() else []
            ):
                assert not path.is_symlink(), f"{path} is a link"
                if path.is_file():
                    text = path.read_text(errors="replace")
                    assert "root:" not in text and "BEGIN SOLUTION" not in text, (
                        f"{path} holds what a link pointed to"
                    )
    assert not (graded.out / "received" / "linked-extra-file" / "passwd").exists()
    assert solution_text


@pytest.mark.slow
def test_huge_outputs_stay_small(graded):
    for student in ("huge-output", "huge-stored-output"):
        for path in (
            graded.out / "autograded" / student / ASSIGNMENT / NOTEBOOK,
            graded.out / "feedback" / student / ASSIGNMENT / NOTEBOOK,
            graded.out / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html",
        ):
            size = path.stat().st_size
            assert size < 1_000_000, f"{path} is {size / 1e6:.1f} MB: the 50 MB output must be cut"


@pytest.mark.slow
def test_reports_gradebook_and_received_files(graded):
    out = graded.out
    summary = (out / "summary.md").read_text()
    assert f"{len(CASES)} students:" in summary and "| test\\_sigmoid | 2 |" in summary, summary[:600]
    assert "slow\\-everywhere" in summary and "wall limit" in summary, "failures are listed with why"
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "received" / "png-renamed" / NOTEBOOK).read_bytes().startswith(b"\x89PNG")
    assert "31 students" in graded.proc.stdout or f"{len(CASES)} students" in graded.proc.stdout
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        assert gb.find_submission(ASSIGNMENT, "correct").score == TOTAL
        assert gb.find_submission(ASSIGNMENT, "os-exit").score == 6
        assert gb.find_submission(ASSIGNMENT, "doe, jane").score == TOTAL
        ids = {s.id for s in gb.students}
        with pytest.raises(MissingEntry):
            gb.find_submission(ASSIGNMENT, "png-renamed")
    assert "png-renamed" in ids, "every student is in the gradebook (nbgrader export lists them all)"
    assert not (out / "feedback" / "png-renamed" / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()
    status_page = out / "feedback" / "png-renamed" / ASSIGNMENT / "status.html"
    assert "could not be graded" in status_page.read_text()


# --- other forms of input, and running again (slow) -----------------------------------------------

SUBSET = ["correct", "blank", "one-wrong-part", "os-exit", "invalid-json", "doe, jane", "infinite-loop"]


@pytest.fixture(scope="module")
def zipped_twice(tmp_path_factory):
    base = tmp_path_factory.mktemp("zipped")
    folder = write_class(base / "class" / "submissions", SUBSET)
    archive = base / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(base / "class"))
    first = _run(archive, base / "out")
    csv_first = (base / "out" / "grades.csv").read_bytes()
    again = grade(archive, base / "out")  # the same command again, into the same folder
    second = _run(archive, base / "out", "--force")  # replacing the earlier run, on purpose
    return first, csv_first, second, again


@pytest.mark.slow
def test_a_zip_gives_the_same_rows_as_the_folder(graded, zipped_twice):
    first, *_ = zipped_twice
    assert set(first.rows) == set(SUBSET)
    for student in SUBSET:
        assert first.rows[student] == graded.rows[student], (
            f"{student}: graded alone {first.rows[student]}, with the class {graded.rows[student]}"
        )


@pytest.mark.slow
def test_running_twice_gives_the_same_csv(zipped_twice):
    _, csv_first, second, _ = zipped_twice
    assert (second.out / "grades.csv").read_bytes() == csv_first


@pytest.mark.slow
def test_an_earlier_run_is_replaced_only_with_force(zipped_twice):
    *_, again = zipped_twice
    assert again.returncode == 1, "grading into an earlier run without --only or --force is refused"
    assert "holds an earlier run (7 students" in again.stderr and "--force" in again.stderr, again.stderr


@pytest.mark.slow
def test_lms_flat_folder(graded, tmp_path):
    flat = tmp_path / "downloads"
    flat.mkdir()
    nbformat.write(solution(), str(flat / f"smith_12345_678_{NOTEBOOK}"))
    nbformat.write(read(RELEASE), str(flat / f"jones-{NOTEBOOK}"))
    nbformat.write(solution(), str(flat / f"brown_{ASSIGNMENT} (1).ipynb"))
    (flat / "README.txt").write_text("exported by the LMS")
    run = _run(flat, tmp_path / "out")
    assert run.rows["smith_12345_678"] == dict(graded.rows["correct"], id="smith_12345_678")
    assert run.rows["jones"] == dict(graded.rows["blank"], id="jones")
    assert run.rows["brown"]["status"] == "ungradable"
    assert "wrong file name" in run.notes["brown"]["reasons"]
    assert "README\\.txt" in (run.out / "summary.md").read_text(), "files of no student are reported"


# --- course check (slow: real kernels) -----------------------------------------------------------


def check(nb_or_bytes, tmp_path: Path, name: str = NOTEBOOK) -> subprocess.CompletedProcess:
    path = tmp_path / name
    if isinstance(nb_or_bytes, bytes):
        path.write_bytes(nb_or_bytes)
    else:
        nbformat.write(nb_or_bytes, str(path))
    return course("check", str(path), "--timeout", "60", timeout=300)


@pytest.mark.slow
def test_check_passes_a_correct_notebook(tmp_path):
    proc = check(solution(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "visible tests: 10/10 parts pass (16/16 points" in proc.stdout, proc.stdout
    assert "FAIL" not in proc.stdout and "WARNING" not in proc.stdout


@pytest.mark.slow
def test_check_fails_the_blank_exercise(tmp_path):
    proc = check(read(RELEASE), tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "visible tests: 0/10 parts pass" in proc.stdout, proc.stdout
    assert "NotImplementedError" in proc.stdout, "unanswered parts are named"


@pytest.mark.slow
def test_check_warns_about_an_edited_test_and_runs_the_original(tmp_path):
    proc = check(_test_edited_to_pass(), tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "WARNING: test cell test_relu was edited" in proc.stdout, proc.stdout
    assert re.search(r"FAIL\s+test_relu\s", proc.stdout), "the original test_relu must run and fail"
    assert "visible tests: 9/10 parts pass" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_check_warns_about_a_deleted_test(tmp_path):
    proc = check(_test_deleted(), tmp_path)
    assert proc.returncode == 1
    assert "WARNING: test cell test_relu_grad was deleted" in proc.stdout, proc.stdout
    assert re.search(r"FAIL\s+test_relu_grad\s", proc.stdout), proc.stdout


def test_check_refuses_what_is_not_a_notebook(tmp_path):
    proc = check(b'{"cells": [', tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not valid JSON" in proc.stderr


# --- the pieces, without kernels (fast) ----------------------------------------------------------


def test_a_student_notebook_needs_no_repair():
    nb, notes = normalize(solution(), read(RELEASE))
    assert notes == [], f"an untouched notebook was 'repaired': {notes}"
    nb, notes = normalize(read(SOLUTION), read(RELEASE))
    assert notes == [], f"the instructor's solution (hidden tests included) was 'repaired': {notes}"


def _ids(nb) -> list[str]:
    return [meta(c).get("grade_id") for c in nb.cells if meta(c).get("grade_id")]


def test_normalize_puts_back_deleted_and_moved_tests_in_place():
    release = read(RELEASE)
    nb, notes = normalize(_test_deleted(), release)
    assert _ids(nb) == _ids(release), "the deleted test comes back where it was"
    assert notes == ["test cell test_relu_grad was deleted: the original is put back"], notes
    nb, notes = normalize(_test_moved(), release)
    assert _ids(nb) == _ids(release)
    assert notes == ["test cell test_sigmoid was moved before sigmoid: put back after it"], notes


def test_normalize_strips_copies_renames_and_resets_metadata():
    release = read(RELEASE)
    nb, notes = normalize(_test_copied_before_answer(), release)
    assert _ids(nb) == _ids(release) and len(nb.cells) == len(release.cells) + 1
    assert any("appears 2 times" in n for n in notes), notes
    nb, notes = normalize(_grade_id_renamed(), release)
    assert _ids(nb) == _ids(release)
    assert any("unknown grade id 'test_relu_v2'" in n for n in notes), notes
    edited = solution()
    cell(edited, "test_sigmoid").metadata["nbgrader"]["points"] = 20
    cell(edited, "test_relu").metadata["nbgrader"]["grade"] = False
    nb, notes = normalize(edited, release)
    assert meta(cell(nb, "test_sigmoid"))["points"] == 2 and meta(cell(nb, "test_relu"))["grade"] is True
    assert len([n for n in notes if "metadata" in n]) == 2, notes


def test_normalize_resets_kernelspec_and_clears_outputs():
    nb, notes = normalize(_kernelspec_changed(), read(RELEASE))
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert notes == ["kernelspec 'ir' instead of 'python3': reset"]
    stored = solution()
    cell(stored, "setup").outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * 2_000_000)]
    nb, notes = normalize(stored, read(RELEASE))
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert notes == ["stored outputs (2.0 MB) cleared before grading"], notes


def test_a_notebook_without_the_assignment_cells_is_foreign():
    assert foreign_notebook(_new_notebook(), read(RELEASE)) is not None
    assert foreign_notebook(solution(), read(RELEASE)) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"  \n", "only white space"),
        (b"\x89PNG\r\n\x1a\n....", "a PNG image"),
        (b"%PDF-1.4 ...", "a PDF document"),
        (b'{"cells": [', "not valid JSON (Expecting value, line 1, column 12)"),
        (b'{"a": 1}', "JSON but not a notebook"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_load_notebook_says_why(tmp_path, content, reason):
    path = tmp_path / NOTEBOOK
    path.write_bytes(content)
    nb, problem, _ = load_notebook(path)
    assert nb is None and problem is not None and reason in problem, problem


def test_load_notebook_reads_a_good_one(tmp_path):
    path = tmp_path / NOTEBOOK
    nbformat.write(solution(), str(path))
    nb, problem, notes = load_notebook(path)
    assert problem is None and notes == [] and len(nb.cells) == len(solution().cells)


def test_collect_folders_layouts_and_flat_files(tmp_path):
    root = tmp_path / "subs"
    names = [
        f"ann/{NOTEBOOK}", f"bob/{ASSIGNMENT}/{NOTEBOOK}", f"cy/{ASSIGNMENT} (1).ipynb", "dee/notes.txt",
        f"eve_1_2_{NOTEBOOK}", f"fay-{ASSIGNMENT} (2).ipynb", "README.md", f".hidden/{NOTEBOOK}",
    ]  # fmt: skip
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    (root / "empty").mkdir()
    subs, warnings = collect(root, [ASSIGNMENT], assignment=ASSIGNMENT)
    by = {s.student: s for s in subs}
    assert sorted(by) == ["ann", "bob", "cy", "dee", "empty", "eve_1_2", "fay"]
    assert by["ann"].gradable and by["bob"].gradable and by["eve_1_2"].gradable
    assert by["bob"].files[ASSIGNMENT] == root / "bob" / ASSIGNMENT / NOTEBOOK
    assert "wrong file name" in by["cy"].problems[0] and "wrong file name" in by["fay"].problems[0]
    assert "missing notebook" in by["dee"].problems[0] and "notes.txt" in by["dee"].problems[0]
    assert "the folder is empty" in by["empty"].problems[0]
    assert warnings == [
        "read as one folder per student (detected)",
        "README.md: no student id or notebook name in the file name: ignored",
    ]


def test_collect_with_an_id_pattern(tmp_path):
    (tmp_path / f"Ann Lee - 123 - {NOTEBOOK}").write_text("{}")
    subs, _ = collect(tmp_path, [ASSIGNMENT], id_pattern=r"(?P<name>.+) - (?P<student>\d+) - .*")
    assert [s.student for s in subs] == ["123"] and subs[0].gradable
    with pytest.raises(SubmissionError, match="student"):
        collect(tmp_path, [ASSIGNMENT], id_pattern=r"(?P<who>.+)")


def test_zip_is_unpacked_safely(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr(f"submissions/ann/{NOTEBOOK}", "{}")
        zf.writestr(f"submissions/bob/{NOTEBOOK}", "{}")
        zf.writestr("__MACOSX/._ann", "junk")
    subs, _ = collect(good, [ASSIGNMENT], unpack_to=tmp_path / "u")
    assert [s.student for s in subs] == ["ann", "bob"]
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.ipynb", "{}")
    with pytest.raises(SubmissionError, match="unsafe path"):
        safe_unzip(evil, tmp_path / "v")
    assert not (tmp_path / "outside.ipynb").exists()


def test_redaction_removes_blocks_tracebacks_and_quotes():
    """A notebook that still carried hidden tests (an old course's, or one written by mistake) is
    handed back without them; the judge's code lines are withheld the same way."""
    sol = read(SOLUTION)
    block = "\n".join(f"x_{i} = np.linspace(-{i}.5, {i}.5, 17) ** 2  # hidden check {i}" for i in range(60))
    cell(sol, "test_sigmoid").source += f"\n### BEGIN HIDDEN TESTS\n{block}\n### END HIDDEN TESTS"
    visible = [c.source for c in read(RELEASE).cells]
    lines = redact.hidden_lines(sol, visible=visible)
    assert lines and len(lines) >= 60
    judge = redact.judge_lines(JUDGE.read_text(), visible)
    assert len(judge) > 50 and not any("must keep the shape" in line for line in judge), (
        "the judge's code counts, its messages (which students read) do not"
    )
    c = cell(sol, "test_sigmoid")
    c.outputs = [
        nbformat.v4.new_output("error", ename="AssertionError", evalue="sigmoid is wrong",
                               traceback=["Traceback", "----> 30 _assert_from_scratch(sigmoid)"]),
    ]  # fmt: skip
    quoted = sorted(lines)[0]
    cell(sol, "sigmoid").outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"ok\n{quoted}\n")]
    out, removed = redact.redact_notebook(sol, lines)
    text = nbformat.writes(out)
    assert redact.find_leaks(text, lines) == [], "nothing hidden is left"
    assert "BEGIN HIDDEN" not in text and redact.REMOVED_SOURCE in cell(out, "test_sigmoid").source
    assert cell(out, "test_sigmoid").outputs[0]["traceback"] == [
        "AssertionError: sigmoid is wrong",
        redact.TRACEBACK_NOTE,
    ]
    assert cell(out, "sigmoid").outputs[0]["text"].startswith(redact.REMOVED_OUTPUT)
    assert removed >= 3  # the block, the traceback, the quoting output
    assert redact.find_leaks(nbformat.writes(sol), lines), "the unredacted notebook is caught"
    html = "<pre><span>" + "</span> <span>".join(quoted.split()) + "</span></pre>"
    assert redact.find_leaks(html, lines, is_html=True) == [quoted], "found through HTML tags"


def _report(results) -> ClassReport:
    return ClassReport(
        ASSIGNMENT, Path("/nowhere"), results, ["test_a", "test_b"], {"test_a": 1.0, "test_b": 2.0},
        3.0, "chroot", "", GradeOptions(), 1.0,
    )  # fmt: skip


def test_grades_csv_format():
    report = _report([
        StudentResult('o"brien, pat', "graded", 3.0, 3.0, {"test_a": (1.0, 1.0), "test_b": (2.0, 2.0)}),
        StudentResult("zed", "crashed", 1.5, 3.0, {"test_a": (1.0, 1.0), "test_b": (0.5, 2.0)}, ["died"]),
        StudentResult("amy", "ungradable", None, 3.0, {}, ["empty file"]),
    ])  # fmt: skip
    report.results[0].submitted_at, report.results[0].hours_late = "2026-03-01T10:00:00+01:00", 26.5
    report.results[0].penalty = 0.5
    report.results[0].total = 2.5
    report.results[1].manual = {"test_b": None}  # graded by hand, not yet: an empty cell
    del report.results[1].cells["test_b"]
    report.results[1].total = 1.0
    assert grades_csv(report) == (
        "id,status,total,max,manual,submitted,hours_late,penalty,test_a,test_b\n"
        '"o""brien, pat",graded,2.5,3,,2026-03-01T10:00:00+01:00,26.50,0.5,1,2\n'
        "zed,crashed,1,3,pending 1,,,,1,\n"
        "amy,ungradable,,3,,,,,,\n"
    )
    assert list(csv.reader(io.StringIO(notes_csv(report))))[2] == ["zed", "crashed", "died", ""]


def test_sandbox_kernelspec_starts_the_launcher_without_site_packages():
    argv = kernelspec()["argv"]
    assert argv[1:3] == ["-I", "-S"] and argv[3].endswith("course_lib/grading/sandbox.py")
    assert argv[-1] == "{connection_file}"
    assert Path(argv[3]).is_file()


def test_cli_grade_and_check_options():
    args = build_parser().parse_args(
        ["grade", ASSIGNMENT, "subs", "--out", "o", "-j", "3", "--memory", "900"]
    )
    assert (args.jobs, args.timeout, args.wall_limit, args.memory, args.sandbox) == (3, 60, 600, 900, "auto")
    assert args.func.__name__ == "_cmd_grade"
    args = build_parser().parse_args(["check", "nb.ipynb"])
    assert args.notebook == Path("nb.ipynb") and args.func.__name__ == "_cmd_check"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grade", ASSIGNMENT, "subs"])  # --out is required


def test_grade_refuses_an_output_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = course("grade", ASSIGNMENT, str(tmp_path), "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 1 and "not empty" in proc.stderr, proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
def test_in_process_alembic_head_matches_nbgrader():
    from nbgrader.api import get_alembic_version

    from course_lib.grading.worker import alembic_head

    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{BIN}{os.pathsep}{env_path}"
    try:
        assert alembic_head() == get_alembic_version()
    finally:
        os.environ["PATH"] = env_path


@pytest.mark.slow
def test_without_sandbox_the_limits_still_apply(tmp_path):
    """--sandbox none: the kernel runs as the instructor, but in its own folder, with the
    launcher's limits and the hardened Execute (a memory bomb still ends in MemoryError)."""
    subs = write_class(tmp_path / "subs", ["correct", "memory-bomb"])
    run = _run(subs, tmp_path / "out", "--sandbox", "none", "--jobs", "1")
    assert run.info["sandbox"] == "none"
    assert run.rows["correct"]["total"] == "16" and run.rows["correct"]["status"] == "graded"
    assert run.rows["memory-bomb"]["total"] == "15"
    assert "MemoryError in elu_grad" in run.notes["memory-bomb"]["notes"]
    assert "no sandbox" in (run.out / "summary.md").read_text()


def test_user_sandbox_works_or_says_why(tmp_path):
    """The `user` level needs an interpreter the sandbox user can run; where it cannot (here,
    Python under /root), choosing it must fail with the reason, never fall back to root."""
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    from course_lib.grading.batch import choose_sandbox
    from course_lib.grading.workspace import GradingError

    try:
        level, users, _ = choose_sandbox("user", 1, tmp_path, 2048)
    except GradingError as err:
        assert "cannot run kernels as an unprivileged user" in str(err) and "user:" in str(err)
    else:
        assert level == "user" and users[0][1] != 0


# --- the zygote: kernels forked from a pre-imported process (slow) -------------------------------

#: What student A leaves behind, and what student B looks for: a module attribute and a
#: monkeypatch of modules the zygote imported (numpy, string), a module of its own in sys.modules,
#: a builtin, an environment variable, files in /tmp and in its home, numpy's global random state.
#: Each prints what it did or found (the autograded notebook keeps the output).
_LEAVE_MARKS = """
import builtins, os, string, sys, types
import numpy as np
np.LEFT_BY_A = 1
np.linalg.norm = lambda *args, **kwargs: -1.0
string.capwords = lambda *args, **kwargs: "patched by A"
sys.modules["left_by_a"] = types.ModuleType("left_by_a")
builtins.LEFT_BY_A = 1
os.environ["LEFT_BY_A"] = "1"
for path in ("/tmp/left-by-a", os.path.expanduser("~/left-by-a")):
    with open(path, "w") as fh:
        fh.write("A")
np.random.seed(12345)
print("MARKS LEFT:", string.capwords("a") == "patched by A" and os.path.exists("/tmp/left-by-a"))
"""

_FIND_MARKS = """
import builtins, os, string, sys
import numpy as np
print("FOUND:", [name for name, found in [
    ("numpy attribute", hasattr(np, "LEFT_BY_A")),
    ("numpy monkeypatch", np.linalg.norm(np.ones(4)) != 2.0),
    ("string monkeypatch", string.capwords("a") != "A"),
    ("sys.modules entry", "left_by_a" in sys.modules),
    ("builtin", hasattr(builtins, "LEFT_BY_A")),
    ("environment variable", "LEFT_BY_A" in os.environ),
    ("file in /tmp", FILES_TOO and os.path.exists("/tmp/left-by-a")),
    ("file in home", os.path.exists(os.path.expanduser("~/left-by-a"))),
    ("numpy random state", np.random.get_state()[1][0] == np.random.RandomState(12345).get_state()[1][0]),
] if found])
"""


def _isolation_class(folder: Path, files_too: bool) -> Path:
    a = prepend("relu", _LEAVE_MARKS)
    b = prepend("relu", f"FILES_TOO = {files_too}\n" + _FIND_MARKS)
    for student, nb in (("a-leaves-marks", a), ("b-finds-none", b), ("c-finds-none", copy.deepcopy(b))):
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, str(folder / student / NOTEBOOK))
    return folder


def _printed(run: Run, student: str, grade_id: str) -> str:
    nb = read(run.out / "autograded" / student / ASSIGNMENT / NOTEBOOK)
    return "".join(o.get("text", "") for o in cell(nb, grade_id).outputs if o.get("output_type") == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_zygote_kernels_share_nothing_between_students(tmp_path, sandbox):
    """One worker grades A, then B and C, each kernel forked from the same zygote: nothing A's
    code changed (module, monkeypatch, builtin, environment, files, random state) reaches them.
    Without the chroot (``none``) /tmp is the machine's own, so only that check is left out."""
    chroot = sandbox == "auto" and os.geteuid() == 0
    subs = _isolation_class(tmp_path / "subs", files_too=chroot)
    run = _run(subs, tmp_path / "out", "--jobs", "1", "--sandbox", sandbox)
    (Path("/tmp") / "left-by-a").unlink(missing_ok=True)
    students = run.info["students"]
    for student in ("a-leaves-marks", "b-finds-none", "c-finds-none"):
        assert students[student]["timing"]["zygote"] == 1, f"{student}'s kernel did not come from the zygote"
        assert run.rows[student]["status"] == "graded", run.rows[student]
        assert run.rows[student]["total"] == "16", f"{student}: {_says(run, student)}"
    assert "MARKS LEFT: True" in _printed(run, "a-leaves-marks", "relu")
    for student in ("b-finds-none", "c-finds-none"):
        assert "FOUND: []" in _printed(run, student, "relu"), _printed(run, student, "relu")
    assert run.info["sandbox"] == ("chroot" if chroot else "none")


@pytest.mark.slow
def test_a_dead_zygote_is_restarted_and_a_kernel_still_starts(tmp_path, monkeypatch):
    """Kill the worker's zygote: the launcher that cannot reach it starts its kernel the usual
    way (the student is still graded), the next student gets a new zygote, and the sandbox level
    reported is the same either way."""
    from jupyter_client import KernelManager

    from course_lib.grading import worker
    from course_lib.grading.kernel_env import build
    from course_lib.grading.sandbox import CONFIG_ENV, SandboxConfig, ensure_sandbox_user

    env = build(tmp_path / "kernel-env")
    os.chmod(tmp_path, 0o711)
    user = ensure_sandbox_user(0) if os.geteuid() == 0 else None
    level = "chroot" if user else "none"
    spec = tmp_path / "jupyter" / "kernels" / "course-sandbox"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(kernelspec()))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    def config(n: int) -> tuple[SandboxConfig, Path]:
        scratch = tmp_path / f"{n:05d}" / "sandbox"
        (scratch / "kernel" / "ipc").mkdir(parents=True)
        os.chmod(scratch, 0o711)
        os.chmod(scratch.parent, 0o711)
        cfg = SandboxConfig(level=level, kernel_dir=str(scratch / "kernel"),
                            report=str(scratch / "report.json"), uid=user[1] if user else None,
                            gid=user[2] if user else None, site_dir=str(env.site),
                            lib_dir=str(env.lib))  # fmt: skip
        if user:
            os.chown(scratch / "kernel" / "ipc", user[1], user[2])
        return cfg, scratch

    def run_kernel(cfg: SandboxConfig, scratch: Path) -> dict:
        cfg.write(scratch / "config.json")
        monkeypatch.setenv(CONFIG_ENV, str(scratch / "config.json"))
        ipc = str(scratch / "kernel" / "ipc" / "k")
        km = KernelManager(kernel_name="course-sandbox", transport="ipc", ip=ipc)
        km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            reply = kc.execute_interactive("import numpy; print(numpy.arange(3).sum())", timeout=60)
            assert reply["content"]["status"] == "ok"
            kc.stop_channels()
        finally:
            km.shutdown_kernel(now=True)
        return json.loads(Path(cfg.report).read_text())

    first, scratch = config(1)
    first.zygote = worker._zygote_for(first, tmp_path)
    assert first.zygote, "the zygote did not start"
    report = run_kernel(first, scratch)
    assert report["zygote"].startswith("forked") and report["level"] == level and not report.get("error")
    dead = worker._ZYGOTE.proc.pid
    worker._ZYGOTE.proc.kill()
    worker._ZYGOTE.proc.wait()

    second, scratch = config(2)
    second.zygote = first.zygote  # what the launcher was told before the zygote died
    report = run_kernel(second, scratch)
    assert report["zygote"].startswith("not used") and report.get("started") and not report.get("error")
    assert report["level"] == level

    third, scratch = config(3)
    third.zygote = worker._zygote_for(third, tmp_path)
    assert third.zygote and worker._ZYGOTE.proc.pid != dead, "the dead zygote was not replaced"
    report = run_kernel(third, scratch)
    assert report["zygote"].startswith("forked") and report["level"] == level
    worker._ZYGOTE.stop()
    worker._ZYGOTE = None
