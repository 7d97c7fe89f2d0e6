"""``course grade --scheduler``: grading on a real Dask ``distributed.LocalCluster`` (worker
processes with nannies, on localhost only), against the same class graded by local workers.

- the same class gives byte-identical ``grades.csv`` and ``notes.csv`` and the same files per
  student (submitted, autograded and feedback notebooks, the log) on the cluster as locally;
- a Dask worker killed while grading a student loses no student: that student is graded on
  another worker; one whose worker dies twice is ``crashed`` with the reason, never missing;
- a scheduler that cannot be reached, one with no workers, or workers running another
  course_lib stop the run before anything is graded, with a sentence saying what to do.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_grading import (
    ASSIGNMENT,
    MEMORY,
    TIMEOUT,
    WALL,
    nb_case,
    prepend,
    read_csv,
    write_class,
    write_student,
)  # fmt: skip

from course_lib.grading import cluster
from course_lib.grading.batch import GradeOptions, grade_class
from course_lib.grading.workspace import GradingError

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

#: A class with every status: graded, a wrong part, a timeout, a dead kernel, ungradable files.
STUDENTS = ["correct", "one-wrong-part", "blank", "infinite-loop", "os-exit", "empty-file", "wrong-name",
            "doe, jane", "xss"]  # fmt: skip
#: Students of the worker-death run: each sleeps in its first answer, so that it is caught mid-grading.
NAPPER = "import time\ntime.sleep({})"


def options(**kw) -> GradeOptions:
    return GradeOptions(progress=False, timeout=TIMEOUT, wall_limit=WALL, memory_mb=MEMORY, **kw)


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as lc:  # fmt: skip
        yield lc


def files_of(out: Path) -> dict[str, bytes]:
    """Every file a student's grading wrote, by path in the output folder."""
    found = {}
    for folder in ("submitted", "autograded", "feedback", "logs/students"):
        for path in sorted((out / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(out))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def both(tmp_path_factory, local_cluster):
    tmp = tmp_path_factory.mktemp("cluster")
    subs = write_class(tmp / "submissions", STUDENTS)
    local = grade_class(ASSIGNMENT, subs, tmp / "local", options(jobs=2))
    address = local_cluster.scheduler_address
    remote = grade_class(ASSIGNMENT, subs, tmp / "cluster", options(scheduler=address))
    return local, remote


def test_the_cluster_grades_byte_for_byte_as_local_workers(both):
    local, remote = both
    for name in ("grades.csv", "notes.csv"):
        assert (remote.out_dir / name).read_bytes() == (local.out_dir / name).read_bytes(), name
    statuses = {r.status for r in remote.results}
    assert statuses == {"graded", "timeout", "crashed", "ungradable"}, statuses
    assert len(remote.results) == len(STUDENTS)


def test_each_student_gets_the_same_files_back(both):
    local, remote = both
    here, there = files_of(local.out_dir), files_of(remote.out_dir)
    assert sorted(here) == sorted(there)
    feedback = [k for k in there if k.startswith("feedback/") and k.endswith(".html")]
    assert len(feedback) == len(STUDENTS)  # every student, the ungradable too
    for key in there:  # the same notebooks but for when cells ran (the logs hold times and paths)
        if key.endswith(".ipynb"):
            assert untimed(there[key]) == untimed(here[key]), key


def untimed(data: bytes) -> dict:
    """A notebook without the times its cells ran at (``metadata.execution``)."""
    nb = json.loads(data)
    for c in nb["cells"]:
        c.get("metadata", {}).pop("execution", None)
    return nb


def test_the_cluster_run_says_where_it_ran(both):
    _, remote = both
    assert remote.sandbox == both[0].sandbox
    assert remote.sandbox_note.startswith(f"on the Dask cluster at {remote.options.scheduler}")
    summary = (remote.out_dir / "summary.md").read_text()
    assert "Dask cluster" in summary
    assert "gradebook.db" in {p.name for p in remote.out_dir.iterdir()}


def _pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def _killer(client, victims: dict[str, int], stop: threading.Event, killed: list[str]):
    """Kill the Dask worker grading each victim student (key suffix), as often as asked."""
    while not stop.is_set():
        for addr, keys in client.processing().items():
            for key in keys:
                student = next((s for s in victims if str(key).endswith(f"-{s}")), None)
                if student and victims[student] > 0:
                    time.sleep(2.0)  # well inside the student's sleep: the kernel is running
                    try:
                        pid = _pids(client)[addr]
                    except Exception:  # noqa: BLE001 - a worker restarting: look again
                        continue
                    os.kill(pid, signal.SIGKILL)
                    victims[student] -= 1
                    killed.append(student)
                    time.sleep(1.0)
        time.sleep(0.2)


def test_a_killed_worker_loses_no_student(tmp_path, local_cluster):
    nap = nb_case(lambda: prepend("sigmoid", NAPPER.format(8)))
    nappers = {"naps-once": nap, "naps-killed-twice": nap}
    subs = write_class(tmp_path / "submissions", ["correct", "one-wrong-part", "blank"])
    for student, case in nappers.items():
        write_student(subs, student, case)
    class_ = ["correct", "one-wrong-part", "blank", *nappers]
    with distributed.Client(local_cluster.scheduler_address, set_as_default=False) as client:
        stop, killed = threading.Event(), []
        victims = {"naps-once": 1, "naps-killed-twice": 2}
        watcher = threading.Thread(target=_killer, args=(client, victims, stop, killed), daemon=True)
        watcher.start()
        try:
            report = grade_class(ASSIGNMENT, subs, tmp_path / "out",
                                 options(scheduler=local_cluster.scheduler_address))  # fmt: skip
        finally:
            stop.set()
            watcher.join()
        client.wait_for_workers(2, timeout=60)  # the nannies have restarted the killed workers
    assert sorted(killed) == ["naps-killed-twice", "naps-killed-twice", "naps-once"]
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert sorted(rows) == sorted(class_)  # nobody lost
    assert rows["naps-once"]["status"] == "graded" and rows["naps-once"]["total"] == rows["correct"]["total"]
    assert rows["naps-killed-twice"]["status"] == "crashed" and rows["naps-killed-twice"]["total"] == ""
    result = report.by_student()["naps-killed-twice"]
    assert any("died twice" in reason for reason in result.reasons), result.reasons
    assert rows["one-wrong-part"]["status"] == "graded" and rows["blank"]["total"] == "0"


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    subs = write_class(tmp_path / "submissions", ["correct"])
    with pytest.raises(GradingError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        grade_class(ASSIGNMENT, subs, tmp_path / "out", options(scheduler="tcp://127.0.0.1:9"))


def test_workers_with_another_course_lib_are_refused(tmp_path, local_cluster, monkeypatch):
    subs = write_class(tmp_path / "submissions", ["correct"])
    monkeypatch.setattr(cluster, "fingerprint", lambda: "another-commit")  # this side only
    with pytest.raises(GradingError, match="2 of 2 Dask worker.*same commit"):
        grade_class(ASSIGNMENT, subs, tmp_path / "out", options(scheduler=local_cluster.scheduler_address))


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path):
    subs = write_class(tmp_path / "submissions", ["correct"])
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0", host="127.0.0.1") as lc:
        with pytest.raises(GradingError, match="has no workers: start `dask worker"):
            grade_class(ASSIGNMENT, subs, tmp_path / "out", options(scheduler=lc.scheduler_address))


def test_keep_work_needs_local_workers(tmp_path, local_cluster):
    subs = write_class(tmp_path / "submissions", ["correct"])
    with pytest.raises(GradingError, match="--keep-work"):
        grade_class(ASSIGNMENT, subs, tmp_path / "out",
                    options(scheduler=local_cluster.scheduler_address, keep_work=True))  # fmt: skip


@pytest.mark.parametrize("rel", ["../escape.txt", "feedback/../../x", "received/a.ipynb", "feedback/.hidden",
                                 "feedback/a/b.html"])  # fmt: skip
def test_a_result_writes_only_its_own_files(tmp_path, rel):
    with pytest.raises(GradingError, match="unexpected file"):
        cluster._write_files(tmp_path, "s1", ASSIGNMENT, {rel: b"x"})
    assert not any(tmp_path.rglob("*"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_commands_of_the_instructors_guide(tmp_path):
    """`dask scheduler`, `dask worker ... --nthreads 1 --nworkers N` and `course grade --scheduler`,
    as the instructors' guide gives them, each its own process."""
    import subprocess

    from test_grading import BIN, course

    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    logs = tmp_path / "dask.log"
    with open(logs, "wb") as log:
        procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port,
                                   "--no-dashboard"], stdout=log, stderr=log)]  # fmt: skip
        try:
            worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "2",
                      "--no-dashboard"]  # fmt: skip
            procs.append(subprocess.Popen(worker, stdout=log, stderr=log))
            with distributed.Client(address, timeout=60, set_as_default=False) as client:
                client.wait_for_workers(2, timeout=90)
            subs = write_class(tmp_path / "submissions", ["correct", "one-wrong-part", "empty-file"])
            done = course("grade", ASSIGNMENT, str(subs), "--out", str(tmp_path / "out"), "--quiet",
                          "--scheduler", address)  # fmt: skip
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]  # 2: not everyone graded (the empty file)
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert {k: (v["status"], v["total"]) for k, v in rows.items()} == {
        "correct": ("graded", "16"), "one-wrong-part": ("graded", "15"), "empty-file": ("ungradable", "")
    }, logs.read_text()[-3000:]  # fmt: skip
    assert "on the Dask cluster at " + address in (tmp_path / "out" / "summary.md").read_text()
