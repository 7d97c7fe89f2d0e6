"""``course grade --scheduler ADDRESS``: each student graded on a Dask distributed cluster.

``grade_class`` (batch.py) prepares the class course, collects the submissions and writes the
reports as it always does; only the grading itself moves. ``grade_students`` hands each student
to the Dask scheduler at ADDRESS as one task, ``grade_remote``, which runs on a Dask worker the
same code a local worker slot runs:

- the first task of a class on a Dask worker unpacks the class bundle (the class gradebook, the
  release, and the source folder with the judge: ``class_bundle``; the scheduler holds it, as a
  ``distributed.Variable``) into a private folder of that machine, builds the kernel environment
  (``kernel_env.build``), chooses the sandbox with the same probe (``batch.choose_sandbox``, as
  a sandbox user of its own: ``_claim_slot``) and starts a ``course_lib.grading.worker`` process;
- every task then grades one student in that process (the student's own nbgrader course, the
  kernel in the sandbox, the wall limit) and returns the result with the files it wrote: the
  submitted, autograded and feedback notebooks and the log, as bytes. ``grade_students`` writes
  them into the output folder where a local worker would have, so the run is the same.

A Dask worker that dies while grading a student (killed, out of memory, its machine lost) takes
its grading process and kernel with it; the scheduler then runs that student on another worker,
once; if that worker dies too the scheduler gives up (``KilledWorker``) and the student is
``crashed`` with that reason: never lost. For that ``connect`` sets two of the scheduler's
settings: ``allowed-failures`` 1, and ``worker-saturation`` 1.0 (a worker is sent only the
students it can grade at once, so that its death counts against those students only).
Scheduling, retries and transport are Dask's: nothing here queues or retries on its own.

Every machine needs the course environment at the same commit (``fingerprint`` is checked on
every worker before the first student) and, for the strong sandbox, root; see the instructors'
guide, "Grading on several machines".
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hashlib
import io
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from course_lib.grading.workspace import GradingError

#: Sandbox users of cluster workers are course-grader-<slot> for slot in this range (local runs
#: use 0 .. jobs - 1), each held by one grading process at a time through a lock file.
SLOTS = range(100, 356)
#: Tasks in flight per Dask worker thread: enough to keep every worker busy, few enough that a
#: class of 10,000 is not all in the scheduler's memory at once.
IN_FLIGHT_PER_THREAD = 2
#: The options of ``course grade`` a remote worker applies (as a local one would).
REMOTE_OPTIONS = ("sandbox", "memory_mb", "disk_mb", "network", "wall_limit")
#: What a result brings back, relative to the output folder's per-student folders.
OUT_FOLDERS = ("submitted", "autograded", "feedback")


@functools.cache
def fingerprint() -> str:
    """A digest of course_lib's Python sources and the nbgrader version: the same on every machine
    that grades the same way (read once per process, as its code was imported once)."""
    import nbgrader

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"nbgrader {nbgrader.__version__}\n".encode())
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def describe() -> dict[str, Any]:
    """What a Dask worker says of itself before grading (``connect``)."""
    return {
        "host": socket.gethostname(),
        "fingerprint": fingerprint(),
        "root": os.geteuid() == 0,
        "python": sys.version.split()[0],
    }


# --- the orchestrator's side -----------------------------------------------------------------


def connect(address: str, timeout: float = 30):
    """A ``distributed.Client`` of the scheduler at ``address`` whose workers all grade as this
    machine would; a clear error otherwise."""
    try:
        from distributed import Client
    except ImportError:
        raise GradingError(
            "--scheduler needs the distributed package: pip install -c constraints.txt -e '.[cluster]'"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise GradingError(
            f"cannot reach the Dask scheduler at {address} ({type(err).__name__}: {err}); start one with "
            "`dask scheduler` and give its tcp:// address (see the instructors' guide)"
        ) from None
    try:
        if not client.scheduler_info()["workers"]:
            raise GradingError(
                f"the Dask scheduler at {address} has no workers: start `dask worker {address} "
                "--nthreads 1` on each grading machine (see the instructors' guide)"
            )
        mine = fingerprint()
        theirs = client.run(describe)
        wrong = sorted(f"{addr} on {d['host']}" for addr, d in theirs.items() if d["fingerprint"] != mine)
        if wrong:
            raise GradingError(
                f"{len(wrong)} of {len(theirs)} Dask worker(s) run another course_lib than this machine "
                f"({', '.join(wrong[:5])}): every grading machine needs the course checkout at the same "
                "commit, installed as here"
            )

        def one_at_a_time(dask_scheduler):  # a closure: pickled by value, the scheduler needs no course_lib
            dask_scheduler.allowed_failures = 1  # a student whose worker dies is run once more, then crashed
            dask_scheduler.WORKER_SATURATION = 1.0  # a worker holds only the students it is grading

        client.run_on_scheduler(one_at_a_time)
    except BaseException:
        client.close()
        raise
    return client


def class_bundle(base: Path, assignment: str) -> bytes:
    """The class course a worker grades against (a tar): the gradebook, the release and the
    source folder (the judge, the data files, the source notebooks the feedback is checked
    against for hidden tests). Never anything of a student."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("gradebook.db", f"release/{assignment}", f"source/{assignment}"):
            tar.add(base / name, arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)
    return buf.getvalue()


def grade_students(
    client,
    base: Path,
    base_task: dict[str, Any],
    options,
    todo: list[tuple[int, Any]],
    out_dir: Path,
    record: Callable[[Any, dict[str, Any] | None], None],
) -> tuple[str, str]:
    """Grade ``todo`` ([(index, Submission)]) on the cluster of ``client``; ``record(sub, raw)``
    each result (raw: the worker's answer, or None past the wall limit) once its files are in
    ``out_dir``. Returns the sandbox level and the summary's sentence about where kernels ran."""
    from distributed import Variable, as_completed
    from distributed.scheduler import KilledWorker

    assignment = base_task["assignment"]
    bundle = class_bundle(base, assignment)
    token = hashlib.sha256(bundle).hexdigest()[:16]
    name = f"course-grade-{token}-{uuid.uuid4().hex[:8]}"
    shared = Variable(name, client=client)
    shared.set(bundle)
    settings = {
        "token": token,
        "bundle": name,
        "fingerprint": fingerprint(),
        "task": {k: v for k, v in base_task.items() if k not in ("base", "keep_work")},
        "options": {k: getattr(options, k) for k in REMOTE_OPTIONS},
    }
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    pending = list(reversed(todo))
    futures: dict[Any, tuple[int, Any]] = {}
    hosts: Counter = Counter()
    levels: Counter = Counter()
    notes: dict[str, str] = {}

    def submit(queue) -> None:
        index, sub = pending.pop()
        task = {
            "index": index,
            "student": sub.student,
            "notes": sub.notes,
            "files": {nb: Path(path).read_bytes() for nb, path in sub.files.items()},
        }
        future = client.submit(grade_remote, settings, task, key=f"{name}-{index:05d}-{sub.student}",
                               pure=False)  # fmt: skip
        futures[future] = (index, sub)
        queue.add(future)

    queue = as_completed(loop=client.loop)
    try:
        for _ in range(min(len(pending), IN_FLIGHT_PER_THREAD * threads)):
            submit(queue)
        for future in queue:
            index, sub = futures.pop(future)
            try:
                answer = future.result()
            except KilledWorker as err:
                answer = {"raw": _crashed(sub, "the Dask worker grading this student died twice (it was "
                                          f"retried once on another): {err}")}  # fmt: skip
            except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
                answer = {"raw": _crashed(sub, f"grading on the cluster failed: {type(err).__name__}: {err}")}
            future.release()
            if pending:
                submit(queue)
            _write_files(out_dir, sub.student, assignment, answer.get("files") or {})
            if answer.get("host"):
                hosts[answer["host"]] += 1
                levels[answer["level"]] += 1
                notes[answer["level"]] = answer["note"]
            record(sub, answer["raw"])
    finally:
        for future in futures:
            future.cancel()
        try:
            shared.delete()
        except Exception:  # noqa: BLE001 - the scheduler may be gone; the variable goes with it
            pass
    if not levels:
        return "none", f"on the Dask cluster at {options.scheduler}: no student reached a worker"
    level = levels.most_common(1)[0][0] if len(levels) == 1 else "mixed"
    where = ", ".join(f"{h} ({n})" for h, n in sorted(hosts.items()))
    mixed = "; ".join(f"{lv}: {notes[lv]}" for lv in sorted(levels)) if len(levels) > 1 else notes[level]
    return level, f"on the Dask cluster at {options.scheduler}, students graded per machine: {where}. {mixed}"


def _crashed(sub, reason: str) -> dict[str, Any]:
    return {"student": sub.student, "status": "crashed", "total": None, "max": None, "cells": {},
            "reasons": [reason], "notes": list(sub.notes)}  # fmt: skip


def _write_files(out_dir: Path, student: str, assignment: str, files: dict[str, bytes]) -> None:
    """Put what a remote worker wrote where a local worker writes it (batch._student_task)."""
    for rel, data in files.items():
        folder, _, name = rel.partition("/")
        if folder == "log":
            target = out_dir / "logs" / "students" / f"{student}.log"
        elif folder in OUT_FOLDERS and name and "/" not in name and not name.startswith("."):
            target = out_dir / folder / student / assignment / name
        else:  # a result names only the files it may: anything else is a bug, never written
            raise GradingError(f"a grading worker returned an unexpected file {rel!r} for {student}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# --- the Dask worker's side ------------------------------------------------------------------


class _Host:
    """A class's grading set-up on one Dask worker thread: the unpacked class course, the kernel
    environment, the sandbox and one ``course_lib.grading.worker`` process."""

    def __init__(self, settings: dict[str, Any], bundle: bytes):
        from course_lib.grading.batch import GradeOptions, _scratch_parent, choose_sandbox, worker_env
        from course_lib.grading.judge import JUDGE_FILE, load_judge
        from course_lib.grading.kernel_env import build

        _remove_stale()
        self.token = settings["token"]
        self.root = Path(tempfile.mkdtemp(prefix="course-grade-dask-", dir=_scratch_parent()))
        (self.root / "owner").write_text(str(os.getpid()))
        os.chmod(self.root, 0o711)
        self.slot, self._lock = _claim_slot()
        try:
            base = self.root / "class"
            with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
                tar.extractall(base, filter="data")
            assignment = settings["task"]["assignment"]
            judge = load_judge(base / "source" / assignment / JUDGE_FILE)
            self.kernel_env = build(self.root / "kernel-env", judge.forbidden)
            self.options = GradeOptions(**settings["options"])
            self.level, users, self.note = choose_sandbox(self.options.sandbox, 1, self.root,
                                                          self.options.memory_mb, self.kernel_env,
                                                          slots=[self.slot])  # fmt: skip
            self.user = users[0]
            self.base = base
            from course_lib.grading.batch import _Worker

            self.worker = _Worker(self.slot, worker_env(self.root), self.root, die_with_parent=True)
            self.worker.start()
        except BaseException:
            self.close()
            raise

    def grade(self, settings: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
        from course_lib.grading.batch import sandbox_task

        work = self.root / "students" / f"{task['index']:05d}-{uuid.uuid4().hex[:6]}"
        received = work / "received"
        received.mkdir(parents=True)
        files = {}
        for nb, data in task["files"].items():
            (received / f"{nb}.ipynb").write_bytes(data)
            files[nb] = str(received / f"{nb}.ipynb")
        out = {folder: work / "out" / folder for folder in OUT_FOLDERS}
        full = dict(
            settings["task"],
            base=str(self.base),
            keep_work=False,
            student=task["student"],
            files=files,
            notes=task["notes"],
            workspace=str(work / "ws"),
            scratch=str(work / "sandbox"),
            keep_to="",
            out={**{k: str(v) for k, v in out.items()}, "log": str(work / "out" / "student.log")},
            sandbox=sandbox_task(self.level, self.user, self.options, self.kernel_env),
            disk_mb=self.options.disk_mb,
        )
        try:
            raw = self.worker.run(full, self.options.wall_limit)
            back = {}
            for folder, path in out.items():
                for item in sorted(path.glob("*")) if path.is_dir() else []:
                    if item.is_file() and not item.is_symlink():
                        back[f"{folder}/{item.name}"] = item.read_bytes()
            log = work / "out" / "student.log"
            if log.is_file():
                back["log/student.log"] = log.read_bytes()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return {"raw": raw, "files": back, "host": socket.gethostname(), "level": self.level,
                "note": self.note}  # fmt: skip

    def close(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self._lock.close()


_HOSTS: dict[int, _Host] = {}  # per thread of this Dask worker: the class it is set up for
_HOSTS_LOCK = threading.Lock()


def grade_remote(settings: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """One student, on a Dask worker (the task ``grade_students`` submits)."""
    if settings["fingerprint"] != fingerprint():
        raise GradingError(
            f"this Dask worker ({socket.gethostname()}) runs another course_lib than the machine that "
            "started the run: install the course checkout at the same commit on every grading machine"
        )
    me = threading.get_ident()
    with _HOSTS_LOCK:
        host = _HOSTS.get(me)
    if host is None or host.token != settings["token"]:
        if host is not None:
            host.close()
        from distributed import Variable, get_client

        bundle = Variable(settings["bundle"], client=get_client()).get(timeout=60)
        host = _Host(settings, bundle)
        with _HOSTS_LOCK:
            _HOSTS[me] = host
    return host.grade(settings, task)


@atexit.register
def _close_hosts() -> None:
    with _HOSTS_LOCK:
        for host in _HOSTS.values():
            host.close()
        _HOSTS.clear()


def _claim_slot():
    """(slot, its open lock file): a sandbox user no other grading process on this machine holds."""
    folder = Path(tempfile.gettempdir()) / "course-grade-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    for slot in SLOTS:
        lock = open(folder / f"{slot}.lock", "w")  # noqa: SIM115 - held for the host's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return slot, lock
    raise GradingError(f"all {len(SLOTS)} sandbox slots of {socket.gethostname()} are taken")


def _remove_stale() -> None:
    """Folders of Dask workers of this machine that died without cleaning up (killed)."""
    from course_lib.grading.batch import _scratch_parent

    for root in Path(_scratch_parent() or tempfile.gettempdir()).glob("course-grade-dask-*"):
        try:
            pid = int((root / "owner").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(root, ignore_errors=True)
        except (OSError, ValueError):
            pass
