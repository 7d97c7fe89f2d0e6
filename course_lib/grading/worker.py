"""One grading worker: a long-lived process that grades students one at a time, in-process.

``course grade`` starts ``--jobs`` of these (``python -m course_lib.grading.worker FD``);
importing nbgrader costs seconds, so a worker imports it once and then takes one task (a JSON
line on stdin) after another, answering each with a JSON line on the file descriptor FD. For
each student, ``grade_task``:

1. reads the notebook (``load_notebook``) and repairs it against the release (``normalize``);
2. builds the student's own small nbgrader course: a copy of the class gradebook (assignment,
   cells, points, hidden tests), ``source/`` without notebooks, and the notebook in
   ``submitted/``. No other student, and no solution notebook, is in it;
3. runs nbgrader's ``Autograde`` converter in-process, with ``JudgedExecute`` instead of
   ``Execute`` (the judge of ``judge.py`` decides every test cell from outside the kernel) and
   the ``course-sandbox`` kernelspec (``sandbox.py``) for the kernel, which talks to this process
   over IPC sockets in its own folder and whose standard streams come here through a pipe; as
   root the folder is a tmpfs of ``disk_mb`` (a quota on everything the student writes), in a
   mount namespace private to this worker, so that it vanishes if the worker is killed;
4. reads the scores back and decides the status from what ``JudgedExecute`` and the sandbox
   reported;
5. hands back a redacted notebook (``redact``) and its feedback HTML, rendered with nbgrader's
   feedback template and ``GetGrades`` from that redacted notebook, after checking both for
   hidden-test source.

Other tasks: ``prepare`` (the class course, ``generate_assignment`` in-process) and ``finish``
(merge the class gradebook, draw the summary figure). A task that runs past the wall limit is
the orchestrator's business: it kills this process (and so, through PR_SET_PDEATHSIG, the
kernel's whole PID namespace) and starts a fresh worker.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import nbformat

from course_lib.grading import redact, sanitize
from course_lib.grading.judge import JUDGE_FILE
from course_lib.grading.sandbox import CONFIG_ENV, SandboxConfig, private_mounts, quota_mount, unmount
from course_lib.grading.submissions import foreign_notebook, load_notebook, normalize

#: The student id every per-student workspace uses inside nbgrader (the real id may hold
#: characters that nbgrader's globs and paths do not like; it never reaches nbgrader).
INTERNAL_ID = "student"
KERNEL_NAME = "course-sandbox"

_AUTOGRADE_PREPROCESSORS = [
    "course_lib.grading.execute.JudgedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "course_lib.grading.execute.CachedCheckCellMetadata",
]
#: nbgrader's own sanitizing stage, with the same cached metadata check.
_SANITIZE_PREPROCESSORS = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "course_lib.grading.execute.CachedCheckCellMetadata",
]


def _config(task: dict[str, Any], ws: Path, events: Path, ipc: Path):
    from traitlets.config import Config

    c = Config()
    for section, options in task.get("nbgrader_config", {}).items():
        for option, value in options.items():
            c[section][option] = value
    c.CourseDirectory.root = str(ws)
    c.CourseDirectory.db_url = f"sqlite:///{ws / 'gradebook.db'}"
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.release_directory = "release"
    c.CourseDirectory.submitted_directory = "submitted"
    c.CourseDirectory.autograded_directory = "autograded"
    c.CourseDirectory.feedback_directory = "feedback"
    c.Autograde.autograde_preprocessors = _AUTOGRADE_PREPROCESSORS
    c.Autograde.sanitize_preprocessors = _SANITIZE_PREPROCESSORS
    for section in ("ExecutePreprocessor", "Execute", "GuardedExecute", "JudgedExecute"):
        c[section]["timeout"] = int(task["timeout"])
    c.JudgedExecute.kernel_name = KERNEL_NAME
    # Kill the kernel after the last cell instead of asking it to shut down and polling until it
    # has (0.2-0.4 s per student in which a worker's core sits idle): nothing it would still do
    # (history, atexit handlers of student code) counts towards the grade.
    c.JudgedExecute.shutdown_kernel = "immediate"
    c.JudgedExecute.events_file = str(events)
    c.JudgedExecute.interrupt_grace = float(task.get("interrupt_grace", 10.0))
    c.JudgedExecute.max_output_chars = int(task.get("max_output_chars", 100_000))
    c.JudgedExecute.judge_file = str(Path(task["base"]) / "source" / task["assignment"] / JUDGE_FILE)
    c.JudgedExecute.student = str(task["student"])
    c.JudgedExecute.kernel_output_file = str(ws / "kernel-output.txt")
    # IPC sockets in the student's own kernel folder: no TCP port another kernel could reach
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(ipc / "k")
    return c


def _autograde(config, assignment: str) -> dict[str, Any]:
    """nbgrader's Autograde converter, in this process (as ``NbGraderAPI.autograde`` runs it)."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = INTERNAL_ID
    app = Autograde(coursedir=coursedir, config=config)
    app.create_student = True
    app.force = True
    return capture_log(app)


def _scores(ws: Path, assignment: str, notebooks: list[str]) -> dict[str, Any] | None:
    from nbgrader.api import Gradebook, MissingEntry

    several = len(notebooks) > 1
    with Gradebook(f"sqlite:///{ws / 'gradebook.db'}") as gb:
        try:
            sub = gb.find_submission(assignment, INTERNAL_ID)
        except MissingEntry:
            return None
        cells = {}
        for nb in sub.notebooks:
            for grade in nb.grades:
                key = f"{nb.name}/{grade.name}" if several else grade.name
                cells[key] = [float(grade.score), float(grade.max_score)]
        return {"total": float(sub.score), "max": float(sub.max_score), "cells": cells}


def _cell_labels(nb: nbformat.NotebookNode) -> dict[int, str]:
    out = {}
    for i, cell in enumerate(nb.cells):
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        out[i] = gid or f"cell {i + 1}"
    return out


def _errors(nb: nbformat.NotebookNode, ename: str) -> list[str]:
    labels = _cell_labels(nb)
    return [
        labels[i]
        for i, cell in enumerate(nb.cells)
        if any(o.get("output_type") == "error" and o.get("ename") == ename for o in cell.get("outputs", []))
    ]


def _share_font_cache(kernel_dir: Path, sandbox: SandboxConfig) -> None:
    """Give the kernel a copy of matplotlib's font list: with an empty cache folder, the first
    ``import matplotlib.pyplot`` of every student would rebuild it (seconds each)."""
    caches = [os.environ.get("MPLCONFIGDIR"), os.environ.get("XDG_CACHE_HOME"), "~/.cache"]
    found = []
    for base in filter(None, caches):
        folder = Path(base).expanduser()
        folder = folder if base == os.environ.get("MPLCONFIGDIR") else folder / "matplotlib"
        found = sorted(folder.glob("fontlist-v*.json")) if folder.is_dir() else []
        if found:
            break
    if not found:
        return
    dest = kernel_dir / "home" / ".matplotlib"
    dest.mkdir(parents=True, exist_ok=True)
    for path in found:
        shutil.copyfile(path, dest / path.name)
    if sandbox.uid is not None:
        for path in (kernel_dir / "home", dest, *dest.iterdir()):
            os.chown(path, sandbox.uid, sandbox.gid if sandbox.gid is not None else sandbox.uid)


def grade_task(task: dict[str, Any]) -> dict[str, Any]:
    """Grade one student (see the module docstring); return the result as plain data."""
    start, cpu_start = time.perf_counter(), time.process_time()
    student, assignment = task["student"], task["assignment"]
    base, ws, scratch = Path(task["base"]), Path(task["workspace"]), Path(task["scratch"])
    out = {k: Path(v) for k, v in task["out"].items()}
    result: dict[str, Any] = {"student": student, "status": "ungradable", "total": None, "max": None,
                              "cells": {}, "reasons": [], "notes": list(task.get("notes", []))}  # fmt: skip

    # 1. read and repair
    normalized: dict[str, nbformat.NotebookNode] = {}
    for name, path in task["files"].items():
        nb, problem, notes = load_notebook(path)
        result["notes"] += notes
        if problem:
            result["reasons"].append(problem)
            continue
        release = nbformat.read(str(base / "release" / assignment / f"{name}.ipynb"), as_version=4)
        problem = foreign_notebook(nb, release)
        if problem:
            result["reasons"].append(f"{name}.ipynb: {problem}")
            continue
        nb, notes = normalize(nb, release)
        result["notes"] += notes
        normalized[name] = nb
    if result["reasons"]:
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result

    # 2. the student's own nbgrader course
    if ws.exists():
        shutil.rmtree(ws)
    (ws / "source" / assignment).mkdir(parents=True)
    os.chmod(ws, 0o700)
    os.chmod(ws.parent, 0o711)
    shutil.copyfile(base / "gradebook.db", ws / "gradebook.db")
    for item in (base / "source" / assignment).iterdir():  # data files; never notebooks or the judge
        if item.suffix == ".ipynb" or item.name.startswith(".") or item.name in (JUDGE_FILE, "__pycache__"):
            continue
        dest = ws / "source" / assignment / item.name
        shutil.copytree(item, dest) if item.is_dir() else shutil.copyfile(item, dest)
    submitted = ws / "submitted" / INTERNAL_ID / assignment
    submitted.mkdir(parents=True)
    out["submitted"].mkdir(parents=True, exist_ok=True)
    for name, nb in normalized.items():
        nbformat.write(nb, str(submitted / f"{name}.ipynb"))
        shutil.copyfile(submitted / f"{name}.ipynb", out["submitted"] / f"{name}.ipynb")

    # 3. autograde, the kernel in the sandbox
    if scratch.exists():
        unmount(scratch / "kernel")
        shutil.rmtree(scratch)
    (scratch / "kernel").mkdir(parents=True)
    os.chmod(scratch, 0o711)
    sandbox = SandboxConfig(**task["sandbox"], kernel_dir=str(scratch / "kernel"),
                            report=str(scratch / "sandbox.json"))  # fmt: skip
    if sandbox.uid is not None and task.get("disk_mb") and private_mounts():
        quota_mount(scratch / "kernel", int(task["disk_mb"]))
    ipc = scratch / "kernel" / "ipc"
    ipc.mkdir(mode=0o700)
    if sandbox.uid is not None:
        os.chown(ipc, sandbox.uid, sandbox.gid if sandbox.gid is not None else sandbox.uid)
    wanted = os.environ.get("COURSE_ZYGOTE", "1") != "0"  # 0: exec a fresh kernel (to compare)
    sandbox.zygote = _zygote_for(sandbox, Path(task["scratch"]).parents[1], wanted)
    sandbox.write(scratch / "sandbox-config.json")
    _share_font_cache(scratch / "kernel", sandbox)
    os.environ[CONFIG_ENV] = str(scratch / "sandbox-config.json")
    events_path = ws / "events.json"
    config = _config(task, ws, events_path, ipc)
    t_auto = time.perf_counter()
    auto = _autograde(config, assignment)
    result["timing"] = {
        "prepare": round(t_auto - start, 3),
        "autograde": round(time.perf_counter() - t_auto, 3),
    }
    log = auto.get("log", "") + auto.get("error", "")
    kernel_output = ws / "kernel-output.txt"
    if kernel_output.exists():
        text = kernel_output.read_bytes().decode("utf-8", "replace")
        log += "\n--- the kernel's own stdout and stderr ---\n" + text
    out["log"].parent.mkdir(parents=True, exist_ok=True)
    out["log"].write_text(log)
    unmount(scratch / "kernel")

    events = json.loads(events_path.read_text()) if events_path.exists() else {}
    try:
        report = json.loads((scratch / "sandbox.json").read_text())
    except (OSError, ValueError):
        report = {}
    result["sandbox"] = report.get("level")
    # 1 when the kernel was forked from the worker's zygote, 0 when the launcher exec'd one
    result["timing"]["zygote"] = int(str(report.get("zygote", "")).startswith("forked"))
    scores = _scores(ws, assignment, sorted(normalized))
    autograded = {name: ws / "autograded" / INTERNAL_ID / assignment / f"{name}.ipynb" for name in normalized}
    if not auto["success"] or scores is None or not all(p.exists() for p in autograded.values()):
        last = (auto.get("error") or log).strip().splitlines()[-1:] or ["no log"]
        if report.get("error"):
            result["status"] = "crashed"
            result["reasons"].append(f"the sandbox could not start the kernel: {report['error']}")
        else:
            result["reasons"].append(f"nbgrader could not grade this notebook: {last[0][:300]}")
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result
    if report.get("error") or (task["sandbox"]["level"] != "none" and not report):
        result["status"] = "crashed"
        result["reasons"].append(
            "the kernel did not start in the sandbox"
            + (f": {report['error']}" if report.get("error") else "")
        )
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result

    # 4. status, notes, feedback
    result.update(scores)
    graded_nbs = {name: nbformat.read(str(p), as_version=4) for name, p in autograded.items()}
    ran = events.get("executed", 0)
    for timeout in events.get("timeouts", []):
        result["reasons"].append(f"{timeout['label']} ran past {timeout['seconds']} s and was interrupted")
    if events.get("stuck"):
        not_run = len(events.get("not_run", []))
        result["reasons"].append(
            f"the kernel ignored the interrupt and was stopped: {not_run} later cell(s) not run"
        )
    if events.get("died"):
        died = events["died"]
        where = died.get("label") or "before the first cell"
        not_run = len(events.get("not_run", []))
        result["reasons"].append(
            f"the kernel died in {where}: the cells that ran count, {not_run} later cell(s) not run"
        )
    if events.get("timeouts") or events.get("stuck"):
        result["status"] = "timeout"
    elif events.get("died"):
        result["status"] = "crashed"
    else:
        result["status"] = "graded"
    if ran == 0 and result["status"] != "graded":
        result["total"] = None
        result["cells"] = {}
    for nb in graded_nbs.values():
        for label in _errors(nb, "MemoryError"):
            result["notes"].append(f"MemoryError in {label} (memory limit {task['sandbox']['memory_mb']} MB)")
    for gid, verdict in (events.get("verdicts") or {}).items():  # the static check's findings
        if verdict.get("delegation"):
            found = "; ".join(verdict["delegation"][:3])
            result["notes"].append(f"{gid}: no credit, the answer delegates ({found})")
    for item in events.get("truncated", []):
        result["notes"].append(f"output of {item['label']} cut ({item['chars'] / 1e6:.1f} MB)")

    out["autograded"].mkdir(parents=True, exist_ok=True)
    for name, p in autograded.items():
        shutil.copyfile(p, out["autograded"] / f"{name}.ipynb")
    t_fb = time.perf_counter()
    result["feedback"] = _feedback(task, graded_nbs, normalized, ws, base, out)
    result["timing"]["feedback"] = round(time.perf_counter() - t_fb, 3)
    result["timing"]["notebook"] = events.get("seconds")
    result["timing"].update(events.get("phases", {}))
    result["timing"]["worker_cpu"] = round(time.process_time() - cpu_start, 3)  # this process only
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


_ZYGOTE = None


def _zygote_for(sandbox: SandboxConfig, class_scratch: Path, wanted: bool = True) -> str | None:
    """The socket of this worker's zygote (``zygote.py``) for the kernel environment of
    ``sandbox``: started on the first student, restarted when it has died or the environment
    changed; None (the launcher then exec's a kernel) when it cannot start."""
    global _ZYGOTE
    from course_lib.grading.zygote import Zygote, key

    if _ZYGOTE is not None and (_ZYGOTE.key != key(sandbox) or not _ZYGOTE.alive()):
        _ZYGOTE.stop()
        _ZYGOTE = None
    if not wanted or not sandbox.site_dir:
        return None
    if _ZYGOTE is None:
        if sandbox.uid is not None:
            private_mounts()  # before the fork: the zygote must see each student's quota mount
        zygote = Zygote(class_scratch / f"zygote-{os.getpid()}", sandbox)
        if not zygote.start():
            return None
        _ZYGOTE = zygote
    return _ZYGOTE.socket


_EXPORTER = None
_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)")
_HIDDEN: dict[tuple[str, str], set[str]] = {}


def _hidden_lines(source: Path, release: Path, student_text: str) -> set[str]:
    """The assignment's hidden lines (computed once per worker), minus any line the student
    wrote too (their own code may be handed back)."""
    key = (str(source), str(release))
    if key not in _HIDDEN:
        src = nbformat.read(str(source), as_version=4)
        rel = nbformat.read(str(release), as_version=4)
        visible = [c.source for c in rel.cells] + [c.source for c in src.cells]
        _HIDDEN[key] = redact.hidden_lines(src, visible=visible[: len(rel.cells)])
        judge = source.parent / JUDGE_FILE
        if judge.is_file():  # the judge's code never reaches a kernel; never hand it back either
            _HIDDEN[key] |= redact.judge_lines(judge.read_text(), visible)
    own = redact._norm(student_text)  # a line the student wrote (in any layout) is theirs to see
    return {line for line in _HIDDEN[key] if line not in own}


def _fast_exporter_class():
    """nbconvert's HTMLExporter, made cheaper for rendering one notebook after another: the
    Markdown and the code highlighting of cells seen before (the instructions, the test cells)
    come from a cache, and the final BeautifulSoup pass, which only adds ``alt`` text to images
    (half the rendering time), is a regular expression."""
    from functools import lru_cache

    from jinja2 import pass_context
    from nbconvert.exporters import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter

    class FastHTMLExporter(HTMLExporter):
        def __init__(self, **kw):
            super().__init__(**kw)
            self._markdown = lru_cache(maxsize=4096)(self._markdown_uncached)
            self._highlight = None

        def _markdown_uncached(self, source: str, path: str) -> str:
            context = {"cell": {}, "resources": {"metadata": {"path": path}}}
            return HTMLExporter.markdown2html(self, context, source)

        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            if cell.get("attachments"):
                return HTMLExporter.markdown2html(self, context, source)
            path = context.get("resources", {}).get("metadata", {}).get("path", "")
            return self._markdown(source, path)

        def default_filters(self):
            for name, f in super().default_filters():
                yield (name, self.markdown2html if name == "markdown2html" else f)

        def from_notebook_node(self, nb, resources=None, **kw):
            if self._highlight is None:
                from nbconvert.filters.highlight import Highlight2HTML

                langinfo = nb.metadata.get("language_info", {})
                lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
                plain = Highlight2HTML(pygments_lexer=lexer, parent=self)
                cached = lru_cache(maxsize=4096)(lambda source, language: plain(source, language))
                self._highlight = lambda source, language=None, metadata=None: cached(source, language)
                self.register_filter("highlight_code", self._highlight)
            from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

            resources = self._init_resources(resources)
            self.register_filter(
                "filter_data_type",
                WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources),
            )
            html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            alt = '<img alt="No description has been provided for this image"'
            return _IMG_WITHOUT_ALT.sub(alt, html), resources

    return FastHTMLExporter


def feedback_exporter():
    """nbgrader's feedback HTML exporter (its template, ``GetGrades`` and the CSS header), made
    once per worker: building it compiles the templates, which costs more than rendering."""
    global _EXPORTER
    if _EXPORTER is None:
        import nbgrader
        from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
        from nbgrader.preprocessors import GetGrades
        from traitlets.config import Config

        here = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
        c = Config()
        c.HTMLExporter.template_name = "feedback"  # as nbgrader's GenerateFeedback
        c.HTMLExporter.extra_template_basedirs = [str(here / "templates")]
        c.HTMLExporter.extra_template_paths = [
            str(here / "static" / "node_modules" / "bootstrap" / "dist" / "css")
        ]
        exporter = _fast_exporter_class()(config=c)
        exporter.register_preprocessor(GetGrades, enabled=True)
        exporter.register_preprocessor(CSSHTMLHeaderPreprocessor, enabled=True)
        _EXPORTER = exporter
    return _EXPORTER


@functools.lru_cache(maxsize=4096)
def _mathml(markdown: str) -> str:
    """``sanitize.math_to_mathml``, once per distinct markdown cell (the instructions are the same
    for every student)."""
    return sanitize.math_to_mathml(markdown)


def _feedback(task, graded_nbs, submitted_nbs, ws: Path, base: Path, out) -> list[str]:
    """The graded notebook handed back (hidden tests removed by ``redact``) and its feedback HTML
    (nbgrader's feedback template and scores, rendered from that redacted notebook); neither is
    written if a hidden line is still found in it."""
    assignment = task["assignment"]
    problems = []
    out["feedback"].mkdir(parents=True, exist_ok=True)
    for name, nb in graded_nbs.items():
        student_text = "\n".join(c.source for c in submitted_nbs[name].cells)
        lines = _hidden_lines(base / "source" / assignment / f"{name}.ipynb",
                              base / "release" / assignment / f"{name}.ipynb", student_text)  # fmt: skip
        returned, _ = redact.redact_notebook(nb, lines)
        text = nbformat.writes(returned)
        resources = {
            "unique_key": name,
            "output_files_dir": f"{name}_files",
            "nbgrader": {
                "student": INTERNAL_ID,
                "assignment": assignment,
                "notebook": name,
                "db_url": f"sqlite:///{ws / 'gradebook.db'}",
            },
        }
        # The HTML's math is MathML: it needs no script, no network. A shallow copy is enough: the
        # exporter deep-copies the notebook it renders, and only markdown sources change here.
        shown = copy.copy(returned)
        shown.cells = [
            nbformat.NotebookNode(dict(c, source=_mathml(c.source))) if c.cell_type == "markdown" else c
            for c in returned.cells
        ]
        try:
            html, _ = feedback_exporter().from_notebook_node(shown, resources=resources)
            html = sanitize.feedback_html(html)  # no script, handler or javascript: of the student's
        except Exception as err:  # the notebook is still handed back
            html = None
            problems.append(f"no feedback HTML for {name}: {type(err).__name__}: {err}")
        leaks = redact.find_leaks(text, lines) + (
            redact.find_leaks(html, lines, is_html=True) if html is not None else []
        )
        if leaks:  # never hand back hidden tests: publish nothing for this notebook
            problems.append(f"feedback for {name} withheld: it would show hidden-test lines {leaks[:3]}")
            continue
        (out["feedback"] / f"{name}.ipynb").write_text(text)
        if html is not None:
            (out["feedback"] / f"{name}.html").write_text(html)
    return problems


def handle(task: dict[str, Any]) -> dict[str, Any]:
    """One task: ``grade`` (default) a student, ``prepare`` the class course, or ``finish`` the
    run (merge the class gradebook, draw the summary figure)."""
    kind = task.get("kind", "grade")
    if kind == "grade":
        return grade_task(task)
    try:
        if kind == "prepare":
            from course_lib.grading.workspace import prepare_workspace

            prepare_workspace(task["root"], task["assignment"], repo_root=task["repo"], in_process=True)
        elif kind == "finish":
            from course_lib.grading.batch import finish

            return {"ok": True, **finish(task)}
        else:
            raise ValueError(f"unknown task {kind!r}")
    except Exception as err:  # reported to the orchestrator, which stops with this message
        return {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    return {"ok": True}


def alembic_head() -> str:
    """nbgrader's schema version (alembic's head revision), asked of alembic in this process.

    ``nbgrader.api.get_alembic_version`` runs the ``alembic heads`` command for every new
    gradebook: a fresh Python that imports alembic, seconds on a busy machine. The answer is a
    constant of the installed nbgrader; ``use_in_process_alembic`` makes nbgrader ask this."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        return ScriptDirectory.from_config(AlembicConfig(ini)).get_current_head()


def use_in_process_alembic() -> None:
    import functools

    import nbgrader.api

    original = nbgrader.api.get_alembic_version

    @functools.cache
    def head() -> str:
        try:
            return alembic_head()
        except Exception:  # any surprise: nbgrader's own way
            return original()

    nbgrader.api.get_alembic_version = head


def main() -> None:
    """The worker loop: tasks (JSON lines) on stdin, results on the fd given as argv[1]."""
    result_fd = int(sys.argv[1])
    use_in_process_alembic()
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            result = handle(task)
        except BaseException as err:  # noqa: BLE001 - one student's failure never stops the batch
            if isinstance(err, KeyboardInterrupt):
                raise
            result = {
                "student": task.get("student"),
                "status": "crashed",
                "total": None,
                "max": None,
                "cells": {},
                "reasons": [f"grader error: {type(err).__name__}: {err}"],
                "notes": [],
                "traceback": traceback.format_exc(),
            }
        finally:
            if task.get("keep_work") and Path(task.get("workspace", "")).is_dir():
                shutil.copytree(task["workspace"], task["keep_to"], dirs_exist_ok=True)
            if task.get("scratch"):
                unmount(Path(task["scratch"]) / "kernel")
            for key in ("workspace", "scratch"):
                if task.get(key):
                    shutil.rmtree(task[key], ignore_errors=True)
        os.write(result_fd, (json.dumps(result) + "\n").encode())


if __name__ == "__main__":
    main()
