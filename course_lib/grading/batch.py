"""``course grade``: a whole class, in parallel, each student isolated, every outcome explained.

``grade_class(assignment, submissions, out_dir, options)``:

1. makes ``out_dir`` the class's nbgrader course (``prepare_workspace``: configuration,
   ``source/``, ``release/``, the gradebook with every graded cell and its points);
2. collects the submissions (``submissions.collect``: folder per student, zip or LMS flat files);
3. chooses the kernel sandbox (``sandbox.py``): the strongest level the machine allows, checked
   by running Python through it once; as root, kernels never run as root;
4. starts ``jobs`` workers (``worker.py``) and hands each the next student; a worker grades the
   student in the student's own nbgrader course under ``out_dir/.work/`` and reports back. A
   worker that runs past the wall limit is killed (with its kernel) and replaced: that student
   is ``timeout``, the others are not affected;
5. writes ``grades.csv``, ``notes.csv``, ``summary.md``, ``summary.png``, merges the scores into
   ``out_dir/gradebook.db`` (so ``nbgrader export`` and formgrader work on ``out_dir``), and
   keeps the files each student handed in under ``received/``.

Every student ends in exactly one status (``STATUSES``); see the instructors' appendix.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import nbformat

from course_lib.grading import sanitize
from course_lib.grading.judge import JUDGE_FILE, Judge, load_judge
from course_lib.grading.kernel_env import build as build_kernel_env
from course_lib.grading.late import LatePolicy, PolicyError
from course_lib.grading.late import penalty as late_penalty
from course_lib.grading.sandbox import (
    LEVELS,
    SandboxConfig,
    SandboxError,
    ensure_sandbox_user,
    kernelspec,
    run_probe,
)
from course_lib.grading.submissions import Submission, SubmissionError, collect
from course_lib.grading.workspace import (
    GradingError,
    Workspace,
    _check_outside,
    find_repo_root,
    load_repo_config,
    nbgrader_env,
)

STATUSES = ("graded", "timeout", "crashed", "ungradable")
MARKER = ".course-grade"
RESULTS = "results.json"  # every student's result, for --only, course manual and course export
#: Python the kernel must be able to import for the probe to pass.
PROBE_CODE = "import numpy, matplotlib, ipykernel, course_lib.data"


@dataclass
class GradeOptions:
    """How ``course grade`` runs; the command-line flags of the same names."""

    jobs: int = 0  # parallel workers; 0: the number of cores
    timeout: int = 60  # seconds per cell (nbgrader's Execute.timeout), then interrupt
    wall_limit: int = 600  # seconds per notebook, all included: then the worker is killed
    memory_mb: int = 2048  # address-space limit of the kernel
    disk_mb: int = 512  # everything a kernel may write, in all (as root: a tmpfs quota)
    network: bool = False  # let kernels use the network (default: none, in the chroot sandbox)
    sandbox: str = "auto"  # "auto", or one of sandbox.LEVELS
    interrupt_grace: float = 10.0  # seconds an interrupted kernel has to answer again
    max_output_chars: int = 100_000  # per cell
    id_pattern: str | None = None  # for LMS file names (see submissions.collect)
    lms: str = "auto"  # the download's layout (lms.LAYOUTS), or auto: detected
    due: datetime | None = None  # the due date, timezone-aware (--due)
    late_penalty: str | None = None  # late.LatePolicy.parse: none, zero, per-hour:P,cap:C ... (None: none)
    only: tuple[str, ...] = ()  # regrade these students into an earlier run, keeping the others
    force: bool = False  # replace an earlier run in out_dir
    keep_work: bool = False  # keep out_dir/.work (the per-student nbgrader courses)
    scheduler: str | None = None  # a Dask scheduler's address: grade on that cluster (cluster.py), not here
    progress: bool = True  # progress bar on stderr

    def resolved_jobs(self) -> int:
        return self.jobs if self.jobs > 0 else (os.cpu_count() or 1)


@dataclass
class StudentResult:
    student: str
    status: str
    total: float | None = None
    max: float | None = None
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sandbox: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    lms_id: str | None = None  # the LMS's id of the student (for exports)
    submitted_at: str | None = None  # ISO 8601, when the LMS gives it
    hours_late: float | None = None
    penalty: float = 0.0  # points off for lateness (already taken off total)
    manual: dict[str, float | None] = field(default_factory=dict)  # manually graded cells: score or pending

    @property
    def manual_pending(self) -> list[str]:
        return [cell for cell, score in self.manual.items() if score is None]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        r = cls(**{k: v for k, v in data.items() if k in fields})
        r.cells = {k: (float(v[0]), float(v[1])) for k, v in r.cells.items()}
        return r


@dataclass
class ClassReport:
    assignment: str
    out_dir: Path
    results: list[StudentResult]
    columns: list[str]  # graded cells, in notebook order
    points: dict[str, float]
    max_total: float
    sandbox: str
    sandbox_note: str
    options: GradeOptions
    seconds: float
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    layout: str = ""  # how the submissions were read ("read as a canvas download (detected)")
    manual_columns: list[str] = field(default_factory=list)  # graded by hand (written answers)
    regraded: list[str] = field(default_factory=list)  # with --only: the students graded this run

    def by_student(self) -> dict[str, StudentResult]:
        return {r.student: r for r in self.results}

    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)


# --- the sandbox ------------------------------------------------------------------------------


def _readonly_paths() -> list[str]:
    """Folders a kernel may read besides the system, its interpreter and its packages: the data."""
    paths = []
    data = os.environ.get("COURSE_DATA_DIR")
    if data and os.path.isdir(data):
        paths.append(os.path.realpath(data))
    return paths


def choose_sandbox(requested: str, jobs: int, scratch: Path, memory_mb: int, kernel_env=None,
                   slots: list[int] | None = None):  # fmt: skip
    """(level, [(user, uid, gid) or None per worker slot], a sentence for the summary).

    ``slots``: the sandbox users' numbers (default 0 .. jobs - 1; a cluster worker claims its own)."""
    if requested not in ("auto", *LEVELS):
        raise GradingError(f"--sandbox must be auto or one of {LEVELS}, not {requested!r}")
    root = os.geteuid() == 0
    if requested == "none":
        who = "root (UNSAFE: student code can do anything root can)" if root else "you"
        return "none", [None] * jobs, f"no sandbox (--sandbox none): kernels run as {who}"
    if not root:
        if requested != "auto":
            raise GradingError(f"--sandbox {requested} needs root (to switch users and mount)")
        return (
            "none",
            [None] * jobs,
            "not running as root: kernels run as you, with the memory and file limits only",
        )
    try:
        users = [ensure_sandbox_user(slot) for slot in (slots if slots is not None else range(jobs))]
    except SandboxError as err:
        raise GradingError(f"cannot create the unprivileged sandbox users: {err}") from err
    tried = []
    for level in ("chroot", "user") if requested == "auto" else (requested,):
        probe_dir = scratch / f"probe-{level}"
        (probe_dir / "kernel").mkdir(parents=True)
        os.chmod(probe_dir, 0o711)
        name, uid, gid = users[0]
        cfg = SandboxConfig(level=level, kernel_dir=str(probe_dir / "kernel"),
                            report=str(probe_dir / "sandbox.json"), uid=uid, gid=gid, user=name,
                            memory_mb=memory_mb, readonly_paths=_readonly_paths(),
                            site_dir=str(kernel_env.site) if kernel_env else None,
                            lib_dir=str(kernel_env.lib) if kernel_env else None)  # fmt: skip
        ok, output = run_probe(cfg, PROBE_CODE)
        if not ok and run_probe(dataclasses.replace(cfg, memory_mb=1 << 20), PROBE_CODE)[0]:
            raise GradingError(
                f"--memory {memory_mb} MB is too small: Python with numpy cannot start in the "
                f"sandbox ({_last_line(output)}); give the kernels more"
            )
        if ok:
            note = {
                "chroot": "chroot: each kernel runs as an unprivileged user in its own mount, PID, "
                "IPC and network namespaces and sees only the system folders, its interpreter, the "
                "student packages (no torch, scipy or scikit-learn), a grading copy of course_lib and "
                "its own folder (a quota of --disk MB); the judge decides every part from outside",
                "user": "user: kernels run as unprivileged users; the file system is otherwise "
                "as that user sees it (namespaces are not available here)",
            }[level]
            return level, users, note
        tried.append(f"{level}: {_last_line(output)}")
    raise GradingError(
        "cannot run kernels as an unprivileged user here ("
        + "; ".join(tried)
        + "). Fix the cause, or pass --sandbox none to run student code as root (unsafe)."
    )


def _load_judge(repo: Path, assignment: str) -> Judge:
    path = repo / "solutions" / assignment / JUDGE_FILE
    if not path.is_file():
        raise GradingError(
            f"{assignment} has no {path.relative_to(repo)}: the judge decides every graded part, "
            "so an assignment without one cannot be graded (see the instructors' guide)"
        )
    try:
        judge = load_judge(path)
    except Exception as err:
        raise GradingError(f"{path} does not load: {type(err).__name__}: {err}") from err
    if judge.assignment != assignment:
        raise GradingError(f"{path} judges {judge.assignment!r}, not {assignment!r}")
    return judge


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "failed"


# --- workers ----------------------------------------------------------------------------------


class _Worker:
    """One ``course_lib.grading.worker`` process and the pipe its results come back on."""

    def __init__(self, slot: int, env: dict[str, str], log_dir: Path, *, die_with_parent: bool = False):
        self.slot, self.env, self.log_dir = slot, env, log_dir
        self.die_with_parent = die_with_parent  # killed with the thread that started it (PR_SET_PDEATHSIG)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        r, w = os.pipe()
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.slot}.log", "ab")  # noqa: SIM115 - its own folder
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "course_lib.grading.worker", str(w)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            pass_fds=(w,),
            env=self.env,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        log.close()
        os.close(w)
        self.results = os.fdopen(r, "rb")

    def call(self, task: dict[str, Any], limit: float) -> dict[str, Any] | None:
        return self.run(dict(task, scratch=""), limit)

    def run(self, task: dict[str, Any], wall_limit: float) -> dict[str, Any] | None:
        """The worker's result, or None when it ran past ``wall_limit`` or died."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(task) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.results], [], [], wall_limit)
        if ready:
            line = self.results.readline()
            if line:
                return json.loads(line)
        self.kill(Path(task["scratch"]) if task.get("scratch") else None)
        return None

    def kill(self, scratch: Path | None = None) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
            self.results.close()
        if scratch is not None:  # the kernel's launcher (its PID namespace dies with it)
            try:
                pid = json.loads((scratch / "sandbox.json").read_text())["pid"]
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError, KeyError, TypeError):
                pass

    def stop(self) -> None:
        """An idle worker holds nothing worth a clean exit: end it at once."""
        self.kill()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes (a Dask worker killed mid-student
    takes its grading process, and so the kernel, with it)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_env(scratch: Path) -> dict[str, str]:
    """The environment of the grading workers: nbgrader's, and Jupyter's folders in ``scratch``
    with the ``course-sandbox`` kernelspec in them."""
    env = nbgrader_env()
    env["JUPYTER_PATH"] = str(scratch / "jupyter")
    env["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    spec_dir = scratch / "jupyter" / "kernels" / "course-sandbox"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(kernelspec(), indent=1))
    return env


def sandbox_task(level: str, user, options: GradeOptions, kernel_env) -> dict[str, Any]:
    """The sandbox settings of a grade task (worker.grade_task) for a worker slot's ``user``."""
    return {
        "level": level,
        "uid": user[1] if user else None,
        "gid": user[2] if user else None,
        "user": user[0] if user else "student",
        "memory_mb": options.memory_mb,
        "readonly_paths": _readonly_paths(),
        "site_dir": str(kernel_env.site),
        "lib_dir": str(kernel_env.lib),
        "network": options.network,
    }


# --- the class --------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path, repo: Path, *, force: bool = False, regrade: bool = False) -> None:
    _check_outside(out_dir, repo)
    earlier = (out_dir / MARKER).is_file()
    if regrade:
        if not (earlier and (out_dir / RESULTS).is_file()):
            raise GradingError(
                f"--only regrades students of an earlier run, but {out_dir} holds none: grade the class first"
            )
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        if not earlier:
            raise GradingError(
                f"{out_dir} is not empty and was not made by `course grade`: choose another --out"
            )
        if not force:
            n = (
                len(json.loads((out_dir / RESULTS).read_text())["results"])
                if (out_dir / RESULTS).is_file()
                else 0
            )
            raise GradingError(
                f"{out_dir} holds an earlier run ({n} students, manual scores included): "
                "`--only ID [ID ...]` "
                "regrades some students and keeps the others; `--force` replaces the whole run"
            )
        for child in out_dir.iterdir():  # replace the earlier run
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _columns(release_dir: Path, notebooks: list[str]) -> tuple[list[str], dict[str, float], list[str]]:
    """The graded cells in notebook order, their points, and those graded by hand: nbgrader's
    manually graded answers (``grade`` and ``solution``) and tasks (``task``)."""
    columns, points, manual = [], {}, []
    for name in notebooks:
        nb = nbformat.read(str(release_dir / f"{name}.ipynb"), as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if (meta.get("grade") or meta.get("task")) and meta.get("grade_id"):
                key = f"{name}/{meta['grade_id']}" if len(notebooks) > 1 else meta["grade_id"]
                columns.append(key)
                points[key] = float(meta.get("points", 0))
                if meta.get("task") or (meta.get("grade") and meta.get("solution")):
                    manual.append(key)
    return columns, points, manual


def grade_class(
    assignment: str,
    submissions: Path | str,
    out_dir: Path | str,
    options: GradeOptions | None = None,
    *,
    repo_root: Path | str | None = None,
) -> ClassReport:
    """Grade every student of ``submissions`` for ``assignment`` into ``out_dir`` (module doc).

    With ``options.only``, grade just those students into the earlier run in ``out_dir`` and keep
    everyone else (scores, manual scores, feedback) as it was."""
    options = options or GradeOptions()
    started = time.perf_counter()
    repo = Path(repo_root or find_repo_root()).resolve()
    out_dir = Path(out_dir).resolve()
    jobs = options.resolved_jobs()
    try:
        policy = LatePolicy.parse(options.late_penalty)
    except PolicyError as err:
        raise GradingError(str(err)) from None
    regrade = bool(options.only)
    _prepare_out_dir(out_dir, repo, force=options.force, regrade=regrade)
    previous = load_results(out_dir) if regrade else None
    if previous is not None and previous["assignment"] != assignment:
        raise GradingError(f"{out_dir} holds grades of {previous['assignment']}, not {assignment}")
    if previous is not None:
        options, policy = _same_late_rules(options, policy, previous)
    (out_dir / MARKER).write_text(json.dumps({"assignment": assignment}) + "\n")
    os.chmod(out_dir, 0o700)  # grades, solutions and hidden tests: the instructor's only

    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.perf_counter() - started, 3)

    scratch = Path(tempfile.mkdtemp(prefix="course-grade-", dir=_scratch_parent()))
    os.chmod(scratch, 0o711)
    workers: list[_Worker] = []
    client = None
    try:
        if options.scheduler:  # every student on the Dask cluster; one local worker prepares and finishes
            from course_lib.grading import cluster

            if options.keep_work:
                raise GradingError("--keep-work keeps the workspaces of local workers: not with --scheduler")
            client = cluster.connect(options.scheduler)
            jobs = 1
            phase("cluster connected")
        env = worker_env(scratch)
        log_dir = out_dir / "logs" / "workers"  # students' logs: logs/students/<id>.log, never here
        log_dir.mkdir(parents=True, exist_ok=True)
        # Workers import nbgrader (seconds) while the class course is prepared.
        workers = [_Worker(slot, env, log_dir) for slot in range(jobs)]
        for w in workers:
            w.start()
        phase("workers started")
        judge = _load_judge(repo, assignment)
        if client is None:
            kernel_env = build_kernel_env(scratch / "kernel-env", judge.forbidden)
            phase("kernel environment built")
            level, users, sandbox_note = choose_sandbox(options.sandbox, jobs, scratch, options.memory_mb,
                                                        kernel_env)  # fmt: skip
            phase("sandbox chosen")

        staging = out_dir / ".course-staging"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "prepare").mkdir(parents=True)
        done = workers[0].call(
            {"kind": "prepare", "root": str(staging / "prepare"), "assignment": assignment,
             "repo": str(repo), "due": options.due.isoformat() if options.due else None}, 900,
        )  # fmt: skip
        if not done or not done.get("ok"):
            raise GradingError(f"preparing the course failed: {(done or {}).get('error', 'no answer')}")
        base = staging / "prepare"
        if not regrade:  # the class's nbgrader course is out_dir itself
            for item in base.iterdir():
                shutil.move(str(item), out_dir / item.name)
            _point_config_at(out_dir)
            base = out_dir
        phase("course prepared")
        notebooks = Workspace(base, assignment).notebooks
        if not notebooks:
            raise GradingError(f"{assignment} has no notebooks in {base / 'source'}")
        try:
            subs, warnings = collect(
                submissions, notebooks, assignment=assignment, unpack_to=staging / "unzipped",
                id_pattern=options.id_pattern, lms=options.lms,
                tz=options.due.tzinfo if options.due else None,
            )  # fmt: skip
        except SubmissionError as err:
            raise GradingError(str(err)) from err
        layout = warnings.pop(0) if warnings and warnings[0].startswith("read as") else ""
        if regrade:
            wanted = set(options.only)
            found = {sub.student for sub in subs}
            missing = sorted(wanted - found)
            if missing:
                raise GradingError(f"--only {' '.join(missing)}: no such student in {submissions}")
            subs = [sub for sub in subs if sub.student in wanted]
        if not subs:
            raise GradingError(f"no submissions found in {submissions}")
        columns, points, manual_columns = _columns(base / "release" / assignment, notebooks)
        max_total = sum(points.values())

        base_task = {
            "assignment": assignment,
            "base": str(base),
            "timeout": options.timeout,
            "interrupt_grace": options.interrupt_grace,
            "max_output_chars": options.max_output_chars,
            "keep_work": options.keep_work,
            "nbgrader_config": _worker_config(repo),
        }
        results: dict[str, StudentResult] = {}
        queue: Queue = Queue()
        for index, sub in enumerate(subs):
            if regrade:
                _forget(out_dir, sub.student, assignment)
            _keep_received(sub, out_dir)
            if not sub.gradable:
                results[sub.student] = _late(StudentResult(sub.student, "ungradable", None, max_total,
                                                           reasons=sub.problems, notes=sub.notes),
                                             sub, options, policy)  # fmt: skip
            else:
                queue.put((index, sub))
        bar = _progress(len(subs), options.progress)
        bar.update(len(results))
        lock = threading.Lock()

        def record(sub: Submission, raw: dict[str, Any] | None) -> None:
            result = _late(_result(raw, sub, max_total, options, manual_columns), sub, options, policy)
            with lock:
                results[sub.student] = result
                bar.update(1)

        def work(worker: _Worker) -> None:
            user = users[worker.slot]
            while True:
                try:
                    index, sub = queue.get_nowait()
                except Empty:
                    return
                task = dict(base_task, **_student_task(sub, index, out_dir, scratch, assignment))
                task["sandbox"] = sandbox_task(level, user, options, kernel_env)
                task["disk_mb"] = options.disk_mb
                record(sub, worker.run(task, options.wall_limit))

        if client is not None:
            todo = []
            while not queue.empty():
                todo.append(queue.get_nowait())
            level, sandbox_note = cluster.grade_students(client, base, base_task, options, todo, out_dir,
                                                         record)  # fmt: skip
        else:
            threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        bar.close()
        phase("students graded")
        for r in results.values():  # every student gets a feedback file, the ungradable too
            if r.status == "ungradable" or not (out_dir / "feedback" / r.student / assignment).is_dir():
                write_status_feedback(out_dir, assignment, r)
        shutil.rmtree(staging, ignore_errors=True)
        if not options.keep_work:
            shutil.rmtree(out_dir / ".work", ignore_errors=True)
        regraded = sorted(results)
        if previous is not None:
            for old in previous["results"]:
                if old["student"] not in results:
                    results[old["student"]] = StudentResult.from_dict(old)
            warnings = list(previous.get("warnings", []))
            layout = previous.get("layout", layout)
        report = ClassReport(
            assignment, out_dir, [results[k] for k in sorted(results)], columns, points, max_total,
            level, sandbox_note, options, time.perf_counter() - started, warnings, layout=layout,
            manual_columns=manual_columns, regraded=regraded if regrade else [],
        )  # fmt: skip
        done = workers[0].call(finish_data(report, only=regraded), 900)
        if not done or not done.get("ok"):
            raise GradingError(f"finishing the run failed: {(done or {}).get('error', 'no answer')}")
        if done.get("manual"):  # the manual scores already in the gradebook (kept by a regrade)
            for student, scores in done["manual"].items():
                if student in results:
                    results[student].manual.update(
                        {k: v for k, v in scores.items() if v is not None and k in results[student].manual}
                    )
                    recompute_total(results[student], report)
            kept = sorted(s for s, scores in done["manual"].items()
                          if s in regraded and any(v is not None for v in scores.values()))  # fmt: skip
            if kept:  # their feedback, written before the merge, showed the answers as pending
                from course_lib.grading.manual import render_feedback

                render_feedback(out_dir, assignment, kept)
        phase("gradebook merged, figure drawn")
        report.phases = phases
        write_reports(report)
        return report
    finally:
        for w in workers:
            w.stop()
        if client is not None:
            client.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _forget(out_dir: Path, student: str, assignment: str) -> None:
    """Remove what an earlier run wrote for ``student`` (before grading them again)."""
    for folder in ("submitted", "autograded", "feedback", "received"):
        shutil.rmtree(out_dir / folder / student, ignore_errors=True)
    (out_dir / "logs" / "students" / f"{student}.log").unlink(missing_ok=True)


def _late(result: StudentResult, sub: Submission, options: GradeOptions, policy: LatePolicy) -> StudentResult:
    """Record when the student handed in, how late that is and what it costs (late.py)."""
    result.lms_id = sub.lms_id
    result.submitted_at = sub.submitted_at.isoformat() if sub.submitted_at else None
    hours, off, note = late_penalty(policy, options.due, sub.submitted_at, sub.late, result.max or 0.0,
                                    result.total)  # fmt: skip
    result.hours_late = None if hours is None else round(hours, 3)
    if note:
        result.notes.append(note)
    if result.total is not None:
        result.penalty = off
        result.total = max(0.0, round(result.total - off, 6))
    return result


def recompute_total(result: StudentResult, report: ClassReport) -> None:
    """total = every cell's score (manual ones when given) - the late penalty."""
    if result.status == "ungradable" or not result.cells and not result.manual:
        return
    auto = sum(score for cell, (score, _) in result.cells.items() if cell not in report.manual_columns)
    manual = sum(v for v in result.manual.values() if v is not None)
    result.total = max(0.0, round(auto + manual - result.penalty, 6))
    for cell, score in result.manual.items():
        if score is not None:
            result.cells[cell] = (float(score), report.points[cell])


def load_results(out_dir: Path) -> dict[str, Any]:
    """The results.json of an earlier run in ``out_dir``."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        raise GradingError(
            f"{out_dir} holds no results of `course grade` (no {RESULTS}): grade the class first"
        )
    return json.loads(path.read_text())


def grade_notebooks(
    assignment: str,
    notebooks: dict[str, Path | str | nbformat.NotebookNode],
    *,
    repo_root: Path | str | None = None,
    out_dir: Path | str | None = None,
    options: GradeOptions | None = None,
) -> ClassReport:
    """``grade_class`` on {student id: notebook (a path or a notebook)} of an assignment with one
    notebook: each is put in a submissions folder of its own in a temporary folder, graded into
    ``out_dir`` (default: a temporary folder, removed afterwards; the report keeps every number).
    ``course release`` verifies a release this way; the tests grade their fake classes so."""
    options = options or GradeOptions(progress=False)
    repo = Path(repo_root or find_repo_root()).resolve()
    names = sorted(p.stem for p in (repo / "solutions" / assignment).glob("*.ipynb"))
    if len(names) != 1:
        raise GradingError(f"grade_notebooks needs an assignment with one notebook; {assignment} has {names}")
    tmp = Path(tempfile.mkdtemp(prefix=f"course-{assignment}-"))
    try:
        subs = tmp / "submissions"
        for student, nb in notebooks.items():
            folder = subs / student
            folder.mkdir(parents=True)
            target = folder / f"{names[0]}.ipynb"
            if isinstance(nb, (str, Path)):
                shutil.copyfile(nb, target)
            else:
                nbformat.write(nb, str(target))
        return grade_class(
            assignment, subs, Path(out_dir) if out_dir else tmp / "out", options, repo_root=repo
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _scratch_parent() -> str | None:
    """Where the per-student workspaces go: a RAM disk (/dev/shm) when it has room (SQLite's
    commits and nbformat's writes are then cheap), else the system's temporary folder."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 4 * 1024**3:
            return str(shm)
    except OSError:
        pass
    return None


def _point_config_at(out_dir: Path) -> None:
    """prepare_workspace wrote paths of the staging folder: point them at out_dir, and make
    ``nbgrader generate_feedback`` run there (by hand) remove hidden tests too."""
    cfg = out_dir / "nbgrader_config.py"
    text = cfg.read_text()
    # Paths relative to this file, so that the run can be moved or copied (an archive, a backup)
    # and formgrader or nbgrader opened in it still use its own gradebook.
    text = re.sub(r"^c\.CourseDirectory\.root = .*$", "c.CourseDirectory.root = HERE", text, flags=re.M)
    text = re.sub(r"^c\.CourseDirectory\.db_url = .*$",
                  'c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db")', text,
                  flags=re.M)  # fmt: skip
    text = re.sub(r'^""".*?"""\n', "", text, count=1, flags=re.S)
    if str(out_dir / ".course-staging") in text:
        raise GradingError(f"{cfg} still names the staging folder: {text}")
    text = (
        '"""nbgrader settings of this `course grade` run: nbgrader and formgrader opened in this folder use\n'
        'its gradebook."""\n\nimport os\n\nHERE = os.path.dirname(os.path.abspath(__file__))\n' + text
    )
    text += (
        "# course grade: feedback never shows hidden tests (nbgrader 0.9's does, by default)\n"
        "c.GenerateFeedback.preprocessors = [\n"
        '    "nbgrader.preprocessors.GetGrades",\n'
        '    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",\n'
        '    "course_lib.grading.redact.RedactHiddenTests",\n'
        "]\n"
        "# nbgrader export writes here, not over course grade's grades.csv\n"
        'c.ExportPlugin.to = "nbgrader-grades.csv"\n'
    )
    cfg.write_text(text)


def _worker_config(repo: Path) -> dict[str, dict[str, Any]]:
    """The repository's nbgrader settings that matter when autograding (not its paths)."""
    keep = {}
    for section, options in load_repo_config(repo).items():
        if section in ("CourseDirectory", "GenerateAssignment", "SaveCells", "ClearSolutions"):
            continue
        keep[section] = {k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}
    return keep


def _student_task(sub: Submission, index: int, out_dir: Path, scratch: Path, assignment: str):
    return {
        "student": sub.student,
        "files": {name: str(path) for name, path in sub.files.items()},
        "notes": sub.notes,
        "workspace": str(scratch / f"{index:05d}" / "ws"),
        "scratch": str(scratch / f"{index:05d}" / "sandbox"),
        "keep_to": str(out_dir / ".work" / sub.student),
        "out": {
            "submitted": str(out_dir / "submitted" / sub.student / assignment),
            "autograded": str(out_dir / "autograded" / sub.student / assignment),
            "feedback": str(out_dir / "feedback" / sub.student / assignment),
            "log": str(out_dir / "logs" / "students" / f"{sub.student}.log"),
        },
    }


def _keep_received(sub: Submission, out_dir: Path) -> None:
    dest = out_dir / "received" / sub.student
    for path in sub.received:
        target = dest / path.name
        n = 1
        while target.exists():
            n += 1
            target = dest / f"{path.stem}.{n}{path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _result(
    raw: dict | None, sub: Submission, max_total: float, options: GradeOptions, manual: list[str] = ()
) -> StudentResult:
    if raw is None:
        return StudentResult(
            sub.student, "timeout", None, max_total,
            reasons=[f"grading ran past the wall limit of {options.wall_limit} s: stopped, no score"],
            notes=sub.notes,
        )  # fmt: skip
    status = raw.get("status", "crashed")
    if status not in STATUSES:
        status = "crashed"
    cells = {k: (float(v[0]), float(v[1])) for k, v in (raw.get("cells") or {}).items() if k not in manual}
    result = StudentResult(
        sub.student, status, raw.get("total"), raw.get("max") or max_total, cells,
        list(raw.get("reasons", [])), list(raw.get("notes", [])), float(raw.get("seconds", 0.0)),
        raw.get("sandbox"),
    )  # fmt: skip
    result.reasons += raw.get("feedback", [])
    result.timing = dict(raw.get("timing") or {})
    if result.total is not None:
        result.manual = dict.fromkeys(manual)  # pending until `course manual` reads the scores back
        result.total = sum(score for score, _ in cells.values())
        if manual:
            result.notes.append(f"{len(manual)} cell(s) to grade by hand (`course manual`)")
    return result


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="student", desc="grading", file=sys.stderr, dynamic_ncols=True)


# --- the class gradebook ----------------------------------------------------------------------


def merge_gradebook(
    db: Path | str,
    assignment: str,
    scores: dict[str, dict[str, float]],
    *,
    manual: dict[str, list[str]] | None = None,
    timestamps: dict[str, str | None] | None = None,
    penalties: dict[str, float] | None = None,
    due: str | None = None,
    students: list[str] | None = None,
    drop: list[str] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Copy every score ({student: {cell column: score}}) into the class gradebook ``db`` under
    the real student id, so that ``nbgrader export`` and formgrader see the class (statuses stay
    in grades.csv). Columns are grade ids, or ``notebook/grade id`` for several notebooks.
    ``manual`` cells are left to grade by hand (``needs_manual_grade``, a manual score already
    there is kept); ``timestamps`` (ISO), ``penalties`` (points off, on the first notebook) and the
    ``due`` date are nbgrader's own fields, so its late-work columns agree with grades.csv.
    ``students`` are every student of the run, those not graded too: formgrader and ``nbgrader
    export`` list them (with no submission). ``drop``: students regraded with no score now, whose
    earlier submission leaves the gradebook.
    Returns the manual scores the gradebook holds for these students."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    manual, timestamps, penalties = manual or {}, timestamps or {}, penalties or {}
    kept: dict[str, dict[str, float | None]] = {}
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's autoflush notes from nbgrader's API
        if due:
            gb.update_or_create_assignment(assignment, duedate=_utc_naive(due))
        several = len(gb.find_assignment(assignment).notebooks) > 1
        for student in students or ():
            gb.update_or_create_student(student)
        for student in drop or ():
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass
        for student, cells in scores.items():
            gb.update_or_create_student(student)
            submission = gb.update_or_create_submission(assignment, student)
            if timestamps.get(student):
                submission.timestamp = _utc_naive(timestamps[student])
            for i, nb in enumerate(submission.notebooks):
                nb.late_submission_penalty = penalties.get(student, 0.0) if i == 0 else 0.0
                for grade in nb.grades:
                    key = f"{nb.name}/{grade.name}" if several else grade.name
                    if key in manual.get(student, ()):
                        grade.needs_manual_grade = grade.manual_score is None
                        kept.setdefault(student, {})[key] = grade.manual_score
                    elif key in cells:
                        grade.auto_score = cells[key]
                        grade.needs_manual_grade = False
            gb.db.commit()
    return kept


def _utc_naive(iso: str):
    """nbgrader keeps times as naive UTC datetimes."""

    when = datetime.fromisoformat(iso)
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def finish_data(report: ClassReport, only: list[str] | None = None) -> dict[str, Any]:
    """What the worker that finishes the run needs (plain data): the scores to merge into the
    class gradebook (``only`` these students: the others are there already) and the numbers of
    the summary figure."""
    rates = pass_rates(report)
    merged = [r for r in report.results if r.cells and (not only or r.student in only)]
    return {
        "kind": "finish",
        "db": str(report.out_dir / "gradebook.db"),
        "assignment": report.assignment,
        "scores": {r.student: {k: v[0] for k, v in r.cells.items()} for r in merged},
        "manual": {r.student: list(r.manual) for r in merged if r.manual},
        "timestamps": {r.student: r.submitted_at for r in merged},
        "penalties": {r.student: r.penalty for r in merged},
        "due": report.options.due.isoformat() if report.options.due else None,
        "students": [r.student for r in report.results],
        "drop": [r.student for r in report.results if only and r.student in only and not r.cells],
        "png": str(report.out_dir / "summary.png"),
        "max_total": report.max_total,
        "totals": [r.total for r in report.results if r.total is not None and r.status == "graded"],
        "rates": {k: (100 * ok / n if n else 0.0) for k, (ok, n) in rates.items()},
    }


def finish(data: dict[str, Any]) -> dict[str, Any]:
    kept = merge_gradebook(data["db"], data["assignment"], data["scores"], manual=data.get("manual"),
                           timestamps=data.get("timestamps"), penalties=data.get("penalties"),
                           due=data.get("due"), students=data.get("students"),
                           drop=data.get("drop"))  # fmt: skip
    summary_png(data["png"], data["assignment"], data["max_total"], data["totals"], data["rates"])
    return {"manual": kept}


# --- reports ----------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


GRADES_HEADER = ("id", "status", "total", "max", "manual", "submitted", "hours_late", "penalty")


def grades_csv(report: ClassReport) -> str:
    """id, status, total, max, manual (pending N / done), submitted (ISO 8601), hours_late,
    penalty (points off, already taken from total), then one column per graded cell. A student
    who was not graded has an empty total and empty cells (never a silent zero), and so does a
    cell still to be graded by hand."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([*GRADES_HEADER, *report.columns])
    for r in report.results:
        cells = [_fmt(r.cells[c][0]) if c in r.cells else "" for c in report.columns]
        pending = r.manual_pending
        manual = f"pending {len(pending)}" if pending else ("done" if r.manual else "")
        hours = "" if r.hours_late is None else f"{r.hours_late:.2f}"
        penalty = _fmt(r.penalty) if r.penalty else ""
        writer.writerow([sanitize.cell(r.student), r.status, _fmt(r.total), _fmt(r.max), manual,
                         r.submitted_at or "", hours, penalty, *cells])  # fmt: skip
    return buf.getvalue()


def notes_csv(report: ClassReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "status", "reasons", "notes"])
    for r in report.results:  # every string may hold what a student chose (ids, file names, grade ids)
        row = [r.student, r.status, " | ".join(r.reasons), " | ".join(r.notes)]
        writer.writerow([sanitize.cell(v) for v in row])
    return buf.getvalue()


def pass_rates(report: ClassReport) -> dict[str, tuple[int, int]]:
    """Per graded cell: (students with full marks, students with a score for it)."""
    out = {}
    for col in report.columns:
        scored = [r.cells[col] for r in report.results if col in r.cells]
        out[col] = (sum(1 for s, m in scored if s >= m and m > 0), len(scored))
    return out


def _run_lines(report: ClassReport, esc=sanitize.md, out: str = "DIR") -> list[str]:
    """The summary's lines on the layout read, late work, cells to grade by hand, a regrade
    (``esc``: how student-chosen strings are escaped; ``out``: how the output folder is named)."""
    lines = []
    if report.layout:
        lines.append(f"- Submissions {report.layout}.")
    if report.options.due:
        policy = LatePolicy.parse(report.options.late_penalty).describe()
        late = sum(
            1 for r in report.results if r.hours_late is not None or (r.penalty and not r.submitted_at)
        )
        lines.append(f"- Due {report.options.due.isoformat()}: {policy}; {late} late.")
    if report.manual_columns:
        pending = sum(len(r.manual_pending) for r in report.results)
        cells = ", ".join(esc(c) for c in report.manual_columns)
        lines.append(f"- To grade by hand: {pending} answers in {cells} (`course manual {out}`).")
    if report.regraded:
        who = ", ".join(esc(x) for x in report.regraded)
        lines.append(f"- This run regraded {who}; the other students are kept from the earlier run.")
    return lines


def summary_md(report: ClassReport) -> str:
    counts = report.counts()
    o = report.options
    totals = [r.total for r in report.results if r.status == "graded" and r.total is not None]
    lines = [
        f"# Grades of {report.assignment}",
        "",
        f"{len(report.results)} students: "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
        + f". Maximum {report.max_total:g} points.",
        "",
        f"- Graded by `course grade` in {report.seconds:.0f} s with {o.resolved_jobs()} workers; "
        f"{o.timeout} s per cell, {o.wall_limit} s per notebook, {o.memory_mb} MB per kernel.",
        f"- Sandbox: {report.sandbox_note}.",
        *_run_lines(report),
        "- Files: `grades.csv` (scores), `notes.csv` (why and what was repaired), "
        "`feedback/<student>/` (HTML and notebook for the student, with the judge's verdicts), "
        "`autograded/` (instructor copies), `received/` (files as handed in), `logs/students/` "
        "(each kernel's own output).",
        "",
        "## Scores of the graded students",
        "",
    ]
    if totals:
        lines += [
            f"mean {statistics.mean(totals):.2f}, median {statistics.median(totals):g}, "
            f"min {min(totals):g}, max {max(totals):g} (n = {len(totals)})",
            "",
            "![totals and pass rates](summary.png)",
            "",
        ]
    else:
        lines += ["No student was graded.", ""]
    lines += ["## Per question", "", "| cell | points | full marks | of |", "|---|---|---|---|"]
    for col, (ok, n) in pass_rates(report).items():
        rate = f"{ok} ({100 * ok / n:.0f} %)" if n else "-"
        lines.append(f"| {sanitize.md(col)} | {report.points[col]:g} | {rate} | {n} |")
    attention = [r for r in report.results if r.status != "graded"]
    lines += ["", "## Students who need attention", ""]
    if attention:
        lines += ["| student | status | total | why |", "|---|---|---|---|"]
        for r in attention:
            why = sanitize.md("; ".join(r.reasons))
            lines.append(f"| {sanitize.md(r.student)} | {r.status} | {_fmt(r.total) or '-'} | {why} |")
    else:
        lines.append("None: every student was graded.")
    noted = [r for r in report.results if r.notes]
    lines += ["", "## Repairs and warnings", ""]
    if noted:
        for r in noted:
            lines.append(f"- **{sanitize.md(r.student)}**: " + sanitize.md("; ".join(r.notes)))
    else:
        lines.append("None.")
    if report.warnings:
        lines += ["", "## Files that belong to no student", ""]
        lines += [f"- {sanitize.md(w)}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def summary_png(path, assignment: str, max_total: float, totals: list[float], rates: dict) -> None:
    """Histogram of the graded students' totals, and each question's full-marks rate (%)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    top = int(math.ceil(max(max_total, max(totals, default=0.0), 1.0)))
    edges = np.arange(-0.5, top + 1.0, 1.0)  # one bar per whole score 0..top, centred on it
    ax1.hist(totals, bins=edges, color="#0072B2", edgecolor="white")
    ax1.set_xlabel("total points (a bar per whole score; halves go to the nearer one)")
    ax1.set_ylabel("students")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xticks(range(0, top + 1, max(1, top // 16)))
    ax1.set_title(f"{assignment}: totals of {len(totals)} graded students")
    names = list(rates)
    ax2.barh(names[::-1], [rates[n] for n in names][::-1], color="#009E73")
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("students with full marks (%)")
    ax2.set_title("per question")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_json(report: ClassReport) -> str:
    """How the run went (timings vary from run to run; grades.csv does not)."""
    o = report.options
    return json.dumps(
        {
            "assignment": report.assignment,
            "seconds": round(report.seconds, 3),
            "jobs": o.resolved_jobs(),
            "timeout": o.timeout,
            "wall_limit": o.wall_limit,
            "memory_mb": o.memory_mb,
            "sandbox": report.sandbox,
            "counts": dict(report.counts()),
            "phases": report.phases,
            "students": {
                r.student: {"status": r.status, "seconds": r.seconds, "timing": r.timing}
                for r in report.results
            },
        },
        indent=1,
    )


def _same_late_rules(
    options: GradeOptions, policy: LatePolicy, previous: dict
) -> tuple[GradeOptions, LatePolicy]:
    """A regrade (``--only``) applies the earlier run's due date and late policy: given none, they
    are taken over; given different ones, the regrade is refused (one class, one rule)."""
    due = datetime.fromisoformat(previous["due"]) if previous.get("due") else None
    before = LatePolicy.parse(previous.get("late_penalty"))
    if options.due is None and options.late_penalty is None:
        return dataclasses.replace(options, due=due, late_penalty=previous.get("late_penalty")), before
    if options.due != due or policy != before:
        rule = previous.get("late_penalty") or "none"
        was = f"--due {due.isoformat()} --late-penalty {rule}" if due else "no --due"
        raise GradingError(
            f"the earlier run in this folder was graded with {was}: a regrade with --only keeps it "
            "(leave --due and --late-penalty out, or give the same), or grade the whole class again "
            "with --force to change it"
        )
    return options, policy


def results_json(report: ClassReport) -> str:
    """Every student's result and the assignment's columns: what ``--only``, ``course manual`` and
    ``course export`` read back."""
    return json.dumps(
        {
            "assignment": report.assignment,
            "columns": report.columns,
            "points": report.points,
            "manual_columns": report.manual_columns,
            "max_total": report.max_total,
            "layout": report.layout,
            "warnings": report.warnings,
            "due": report.options.due.isoformat() if report.options.due else None,
            "late_penalty": report.options.late_penalty,
            "results": [r.as_dict() for r in report.results],
        },
        indent=1,
    )


def report_from_results(out_dir: Path) -> ClassReport:
    """A ClassReport rebuilt from ``out_dir/results.json`` (for course manual and course export)."""
    data = load_results(out_dir)
    options = GradeOptions(late_penalty=data.get("late_penalty") or "none",
                           due=datetime.fromisoformat(data["due"]) if data.get("due") else None)  # fmt: skip
    run = json.loads((out_dir / "run.json").read_text()) if (out_dir / "run.json").is_file() else {}
    return ClassReport(
        data["assignment"], Path(out_dir), [StudentResult.from_dict(r) for r in data["results"]],
        data["columns"], {k: float(v) for k, v in data["points"].items()}, float(data["max_total"]),
        run.get("sandbox", ""), "", options, float(run.get("seconds", 0.0)), data.get("warnings", []),
        layout=data.get("layout", ""), manual_columns=data.get("manual_columns", []),
    )  # fmt: skip


def write_status_feedback(out_dir: Path, assignment: str, result: StudentResult) -> None:
    """A page for a student with no graded notebook to hand back: their status and why."""
    folder = out_dir / "feedback" / result.student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    why = "".join(f"<li>{html.escape(r)}</li>" for r in result.reasons) or "<li>no reason recorded</li>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(sanitize.CSP, quote=False)}">'
        f"<title>{html.escape(assignment)}</title></head><body>"
        f"<h1>{html.escape(assignment)}: {html.escape(result.status)}</h1>"
        f"<p>Your submission could not be graded, for this reason:</p><ul>{why}</ul>"
        + (f"<p>Notes:</p><ul>{notes}</ul>" if notes else "")
        + "<p>Fix it and hand it in again, or ask your instructor.</p></body></html>"
    )
    (folder / "status.html").write_text(page)


def write_reports(report: ClassReport) -> None:
    """grades.csv, notes.csv, summary.md, run.json and results.json (summary.png and the
    gradebook: ``finish``)."""
    out = report.out_dir
    (out / RESULTS).write_text(results_json(report))
    (out / "grades.csv").write_text(grades_csv(report))
    (out / "notes.csv").write_text(notes_csv(report))
    (out / "summary.md").write_text(summary_md(report))
    (out / "run.json").write_text(run_json(report))


def table(report: ClassReport, limit: int = 20) -> str:
    """The short table ``course grade`` prints at the end."""
    counts = report.counts()
    head = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
    lines = [f"{report.assignment}: {len(report.results)} students ({head}) in {report.seconds:.0f} s"]
    width = max([len(r.student) for r in report.results] + [7])
    lines.append(f"{'student':<{width}}  {'status':<10}  {'total':>7}  notes")
    shown = sorted(report.results, key=lambda r: (r.status == "graded", r.student))[:limit]
    for r in shown:
        total = f"{_fmt(r.total) or '-'}/{_fmt(r.max)}"
        why = "; ".join(r.reasons or r.notes)
        if len(why) > 90:
            why = why[:87] + "..."
        lines.append(f"{r.student:<{width}}  {r.status:<10}  {total:>7}  {why}")
    if len(report.results) > limit:
        lines.append(f"... and {len(report.results) - limit} more: see grades.csv")
    lines += [line[2:].replace("`", "") for line in _run_lines(report, esc=str, out=str(report.out_dir))]
    lines.append(f"sandbox: {report.sandbox}; outputs in {report.out_dir}")
    return "\n".join(lines)
