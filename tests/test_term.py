"""An instructor's term, end to end (slow): LMS downloads with resubmissions and late work, a
written answer graded by hand (a sheet, and formgrader through a real Jupyter server), a regrade
of one student, and the files Canvas and Moodle import.

Assignment 06 has a written answer (``explain_results``, 2 points, graded by hand) besides its
11 points of tests, so each run here exercises real nbgrader, sandboxed kernels, the judge and
the class gradebook. The fast tests at the end check the late-work policy and the exports' and
sheets' error handling on a results.json written by hand.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.late import LatePolicy, PolicyError, penalty

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSIGNMENT = "06-search"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / NOTEBOOK
RELEASE = ROOT / "exercises" / ASSIGNMENT / NOTEBOOK
AUTO, BY_HAND = 11.0, 2.0  # the judge's points, and the written answer's
MAX = AUTO + BY_HAND
DUE = "2026-10-05T23:59+02:00"  # 21:59 UTC
POLICY = "per-hour:10,cap:30,grace:15"
WRITTEN = "The best trial is within noise of the others; I would rerun the top three with more seeds."


def meta(c) -> dict:
    return c.get("metadata", {}).get("nbgrader", {})


def student(written: str | None = WRITTEN, *, answers: bool = True) -> nbformat.NotebookNode:
    """A student's notebook: the release with the solution's code in (``answers``) and a written
    answer (or the stub left as it is)."""
    nb = nbformat.read(str(RELEASE), as_version=4)
    sol = {meta(c).get("grade_id"): c for c in nbformat.read(str(SOLUTION), as_version=4).cells}
    for c in nb.cells:
        m = meta(c)
        if not m.get("solution"):
            continue
        if c.cell_type == "markdown":
            if written is not None:
                c.source = written
        elif answers:
            lines = sol[m["grade_id"]].source.splitlines()
            c.source = "\n".join(x for x in lines if "BEGIN SOLUTION" not in x and "END SOLUTION" not in x)
    return nb


def write(path: Path, nb: nbformat.NotebookNode | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nb if isinstance(nb, bytes) else nbformat.writes(nb).encode())
    return path


def course(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / "course"), *args], capture_output=True, text=True, timeout=900,
                          env=env, cwd=cwd)  # fmt: skip


def grade(submissions: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = course("grade", ASSIGNMENT, str(submissions), "--out", str(out), "--jobs", "2", "--quiet", *extra)
    assert proc.returncode in (0, 2), f"course grade failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def notes(out: Path) -> dict[str, str]:
    with open(out / "notes.csv", newline="") as fh:
        return {r["id"]: f"{r['reasons']} | {r['notes']}" for r in csv.DictReader(fh)}


def nbgrader_export(out: Path) -> dict[str, dict[str, str]]:
    """``nbgrader export`` run in the output folder, as an instructor would."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "nbgrader"), "export", "--to", str(out / "nbgrader.csv")],
                          capture_output=True, text=True, cwd=out, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "nbgrader.csv", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh) if r["assignment"] == ASSIGNMENT}


# --- a Canvas zip: a resubmission, LATE markers, an empty file ------------------------------------


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    base = tmp_path_factory.mktemp("canvas")
    flat = base / "download"
    write(flat / f"smithalice_11111_9000101_{NOTEBOOK}", student(None, answers=False))  # the first try
    write(flat / f"smithalice_LATE_11111_9000202_{ASSIGNMENT}-1.ipynb", student())  # resubmitted, late
    write(flat / f"jonesbob_22222_9000300_{NOTEBOOK}", student("I do not know."))
    write(flat / f"leecarol_33333_9000400_{NOTEBOOK}", b"")
    archive = base / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(flat.iterdir()):
            zf.write(path, path.name)
    out = base / "out"
    proc = grade(archive, out, "--due", DUE, "--late-penalty", POLICY)
    return out, proc


@pytest.mark.slow
def test_canvas_one_row_per_student_the_newest_attempt_graded(canvas):
    out, proc = canvas
    assert "canvas download (detected)" in (out / "summary.md").read_text()
    got = rows(out)
    assert sorted(got) == ["jonesbob", "leecarol", "smithalice"], "Canvas ids without ids or LATE"
    alice, bob, carol = got["smithalice"], got["jonesbob"], got["leecarol"]
    # Canvas gives no time, only LATE: how late is unknown, so the policy's cap (30 %) is taken off.
    off = round(0.30 * MAX, 6)
    assert (alice["status"], float(alice["total"]), float(alice["penalty"])) == ("graded", AUTO - off, off)
    assert alice["explain_results"] == "" and alice["manual"] == "pending 1", "the written answer waits"
    assert "older submission" in notes(out)["smithalice"] and "9000101" in notes(out)["smithalice"]
    assert "how late is unknown" in notes(out)["smithalice"]
    assert (bob["total"], bob["penalty"], bob["hours_late"]) == ("11", "", "")
    assert (carol["status"], carol["total"], carol["test_sample_config"]) == ("ungradable", "", "")
    assert proc.returncode == 2, "exit status 2: someone was not graded"


@pytest.mark.slow
def test_every_student_gets_feedback_and_the_ungradable_are_told_why(canvas):
    out, _ = canvas
    page = (out / "feedback" / "leecarol" / ASSIGNMENT / "status.html").read_text()
    assert "ungradable" in page and "empty" in page and "<script" not in page
    assert (out / "feedback" / "smithalice" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()


@pytest.mark.slow
def test_the_gradebook_and_nbgrader_export_agree_with_grades_csv(canvas):
    out, _ = canvas
    exported = nbgrader_export(out)
    assert "leecarol" in exported, "nbgrader export lists every student, the ungradable too"
    for sid, row in rows(out).items():
        if row["total"]:
            assert float(exported[sid]["score"]) == pytest.approx(float(row["total"])), sid
            assert float(exported[sid]["late_submission_penalty"] or 0) == pytest.approx(
                float(row["penalty"] or 0)
            )
    assert exported["smithalice"]["duedate"].startswith("2026-10-05 21:59"), "the due date, in UTC"


@pytest.fixture(scope="module")
def canvas_roster(canvas, tmp_path_factory):
    path = tmp_path_factory.mktemp("roster") / "canvas-gradebook.csv"
    path.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,06-search (4321),05-optimization (4320),Current Score\n"
        "    Points Possible,,,,,13.00,10.00,(read only)\n"
        '"Smith, Alice",11111,S1,asmith,Section A,,8.00,80\n'
        '"Jones, Bob",22222,S2,bjones,Section A,,9.00,90\n'
        '"Lee, Carol",33333,S3,clee,Section B,,7.00,70\n'
        '"Diaz, Erin",55555,S5,ediaz,Section B,,10.00,100\n'
        '"Student, Test",99999,,,Section A,,,\n'
    )
    return path


def read_table(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
def test_canvas_export_is_canvas_s_import_layout(canvas, canvas_roster):
    out, _ = canvas
    proc = course("export", str(out), "--to", "canvas", "--roster", str(canvas_roster))
    assert proc.returncode == 0, proc.stderr
    assert "no submission graded for: Diaz, Erin" in proc.stdout
    table = read_table(out / "exports" / "canvas.csv")
    # Canvas's import: the five identity columns first, then the assignment's own column (name and
    # id, so the import updates it), a Points Possible row, one row per student of the roster.
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "06-search (4321)"]
    assert table[1] == ["Points Possible", "", "", "", "", "13"]
    scores = {r[0]: r[5] for r in table[2:]}
    assert scores == {"Smith, Alice": f"{AUTO - 0.3 * MAX:g}", "Jones, Bob": "11", "Lee, Carol": "",
                      "Diaz, Erin": ""}, "no silent zero; the test student left out"  # fmt: skip
    comments = {r[0]: r[3] for r in read_table(out / "exports" / "canvas-comments.csv")[1:]}
    assert "ungradable" in comments["Lee, Carol"] and "empty" in comments["Lee, Carol"]
    assert comments["Diaz, Erin"] == "no submission graded"
    assert "late" in comments["Smith, Alice"] and "by hand" in comments["Smith, Alice"]


@pytest.mark.slow
def test_a_canvas_column_can_be_named_and_a_wrong_one_is_refused(canvas, canvas_roster, tmp_path):
    out, _ = canvas
    dest = tmp_path / "c.csv"
    proc = course("export", str(out), "--to", "canvas", "--roster", str(canvas_roster),
                  "--column", "05-optimization", "--output", str(dest))  # fmt: skip
    assert proc.returncode == 0 and read_table(dest)[0][-1] == "05-optimization (4320)"
    proc = course("export", str(out), "--to", "canvas", "--roster", str(canvas_roster), "--column", "Quiz 9")
    assert proc.returncode == 1 and "not one column of the roster" in proc.stderr, proc.stderr


# --- the written answer: a sheet, then formgrader, read back ---------------------------------------


@pytest.fixture(scope="module")
def marked(canvas):
    """The Canvas run with the written answers graded through a sheet (a copy of the run)."""
    out = canvas[0].parent / "marked"
    shutil.copytree(canvas[0], out, symlinks=True)
    proc = course("manual", str(out))
    assert proc.returncode == 0, proc.stderr
    sheet = out / "manual.csv"
    return out, sheet, read_table(sheet)


@pytest.mark.slow
def test_the_sheet_lists_each_written_answer_with_its_text(marked):
    out, sheet, table = marked
    assert table[0] == ["student", "cell", "max_points", "score", "comment", "answer"]
    body = {(r[0], r[1]): r for r in table[1:]}
    assert set(body) == {("smithalice", "explain_results"), ("jonesbob", "explain_results")}
    assert (
        body[("smithalice", "explain_results")][2] == "2" and body[("smithalice", "explain_results")][3] == ""
    )
    assert body[("jonesbob", "explain_results")][5] == "I do not know."
    again = course("manual", str(out))
    assert again.returncode == 1 and "--force" in again.stderr, "a filled-in sheet is never overwritten"


def fill(sheet: Path, scores: dict[str, tuple[str, str]]) -> Path:
    table = read_table(sheet)
    for r in table[1:]:
        if r[0] in scores:
            r[3], r[4] = scores[r[0]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    sheet.write_text(buf.getvalue())
    return sheet


@pytest.mark.slow
@pytest.mark.parametrize("scores, message", [
    ({"smithalice": ("3", "")}, "outside 0..2"),
    ({"smithalice": ("two", "")}, "is not a number"),
    ({"smithalice": ("-1", "")}, "outside 0..2"),
])  # fmt: skip
def test_a_wrong_sheet_changes_nothing(marked, tmp_path, scores, message):
    out, sheet, _ = marked
    before = {p: p.read_bytes() for p in (out / "grades.csv", out / "gradebook.db", out / RESULTS_FILE)}
    bad = fill(shutil.copy(sheet, tmp_path / "bad.csv") and tmp_path / "bad.csv", scores)
    proc = course("manual", str(out), "--apply", str(bad))
    assert proc.returncode == 1 and message in proc.stderr and "nothing was changed" in proc.stderr
    assert {p: p.read_bytes() for p in before} == before


RESULTS_FILE = "results.json"


@pytest.mark.slow
def test_a_sheet_read_back_updates_totals_gradebook_and_feedback(marked, tmp_path):
    out, sheet, _ = marked
    stranger = tmp_path / "stranger.csv"
    stranger.write_text("student,cell,max_points,score,comment\nmallory,explain_results,2,2,\n")
    proc = course("manual", str(out), "--apply", str(stranger))
    assert proc.returncode == 1 and "no such student" in proc.stderr

    fill(sheet, {"smithalice": ("2", "Clear and right: the winner's curse."), "jonesbob": ("0", "")})
    proc = course("manual", str(out), "--apply", str(sheet))
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    off = 0.3 * MAX
    assert (
        float(got["smithalice"]["total"]) == pytest.approx(MAX - off)
        and got["smithalice"]["manual"] == "done"
    )
    assert got["smithalice"]["explain_results"] == "2" and got["jonesbob"]["total"] == "11"
    exported = nbgrader_export(out)
    assert float(exported["smithalice"]["score"]) == pytest.approx(MAX - off), "the gradebook agrees"
    page = (out / "feedback" / "smithalice" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "winner&#39;s curse" in page or "winner's curse" in page, "the comment reaches the student"
    assert "<script" not in page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def formgrader(canvas):
    """``jupyter server`` with nbgrader's formgrader, started in a copy of the Canvas run."""
    out = canvas[0].parent / "formgrader"
    shutil.copytree(canvas[0], out, symlinks=True)
    port, token = free_port(), "course-term-test"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_CONFIG_DIR=str(out / ".jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(out / ".jupyter-runtime"))  # fmt: skip
    log = open(out / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={out}", "--allow-root"],
        cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def api(path: str, method: str = "GET", body: dict | None = None):
        req = urllib.request.Request(f"{url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {token}"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    deadline = time.monotonic() + 90
    while True:
        try:
            api("/formgrader/api/status")
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"formgrader did not start:\n{(out / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield out, api
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_formgrader_lists_the_written_answers_and_its_scores_flow_back(formgrader):
    out, api = formgrader
    submitted = {
        s["student"]: s for s in api(f"/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}")
    }
    assert set(submitted) == {"smithalice", "jonesbob"}
    assert all(s["needs_manual_grade"] for s in submitted.values()), "formgrader shows them as to grade"
    grades = api(f"/formgrader/api/grades?submission_id={submitted['jonesbob']['id']}")
    manual = [g for g in grades if g["needs_manual_grade"]]
    assert [g["name"] for g in manual] == ["explain_results"] and manual[0]["max_score"] == BY_HAND
    auto = {g["name"]: g["auto_score"] for g in grades if not g["needs_manual_grade"]}
    assert auto["test_sample_config"] == 2, "the judge's scores are in the class gradebook"
    # The instructor types 1.5 into formgrader (its own API call)...
    api(f"/formgrader/api/grade/{manual[0]['id']}", "PUT", {"manual_score": 1.5})
    # ... and reads it back into grades.csv and the feedback.
    proc = course("manual", str(out), "--from-gradebook")
    assert proc.returncode == 0, proc.stderr
    bob = rows(out)["jonesbob"]
    assert (bob["explain_results"], bob["total"], bob["manual"]) == ("1.5", "12.5", "done")
    assert rows(out)["smithalice"]["manual"] == "pending 1", "only what formgrader scored changes"


# --- a regrade of one student keeps the others ----------------------------------------------------


@pytest.mark.slow
def test_regrading_one_student_keeps_everyone_else_byte_for_byte(marked, tmp_path):
    out = marked[0]
    (out / "manual.csv").unlink(missing_ok=True)
    before = rows(out)
    alice_files = {
        p: p.read_bytes() for p in sorted((out / "feedback" / "smithalice").rglob("*")) if p.is_file()
    }
    line = {r.split(",", 1)[0]: r for r in (out / "grades.csv").read_text().splitlines()}
    fixed = tmp_path / "fixed"
    write(fixed / f"leecarol_33333_9000401_{NOTEBOOK}", student("My answer."))  # carol fixes her file
    write(fixed / f"jonesbob_22222_9000300_{NOTEBOOK}", student("I do not know."))
    proc = course("grade", ASSIGNMENT, str(fixed), "--out", str(out), "--only", "nobody", "--quiet")
    assert proc.returncode == 1 and "--only nobody: no such student" in proc.stderr

    proc = course("grade", ASSIGNMENT, str(fixed), "--out", str(out), "--only", "leecarol",
                  "--due", "2026-10-12T23:59+02:00", "--quiet")  # fmt: skip
    assert proc.returncode == 1 and "graded with --due 2026-10-05T23:59:00+02:00" in proc.stderr, (
        "one class, one late rule"
    )
    grade(fixed, out, "--only", "leecarol")  # the earlier run's due date and late policy are kept
    assert json.loads((out / "results.json").read_text())["late_penalty"] == POLICY
    after = rows(out)
    assert sorted(after) == sorted(before), "every student is still there"
    assert after["leecarol"]["status"] == "graded" and after["leecarol"]["total"] == "11"
    assert after["leecarol"]["manual"] == "pending 1"
    new_line = {r.split(",", 1)[0]: r for r in (out / "grades.csv").read_text().splitlines()}
    for sid in ("smithalice", "jonesbob"):
        assert new_line[sid] == line[sid], f"{sid}'s row changed"
    assert {p: p.read_bytes() for p in alice_files} == alice_files, "alice's feedback is untouched"
    exported = nbgrader_export(out)
    assert float(exported["smithalice"]["score"]) == pytest.approx(MAX - 0.3 * MAX), "her manual score stays"
    assert float(exported["leecarol"]["score"]) == 11
    assert not (out / "feedback" / "leecarol" / ASSIGNMENT / "status.html").exists(), (
        "the old status page goes"
    )


# --- a Moodle folder download ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moodle(tmp_path_factory):
    base = tmp_path_factory.mktemp("moodle")
    folder = base / "download"
    write(folder / "Alice Smith_100001_assignsubmission_file_" / NOTEBOOK, student())
    write(folder / "Bob Jones_100002_assignsubmission_file_" / NOTEBOOK, student(None, answers=False))
    out = base / "out"
    grade(folder, out)
    return out


MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum grade",
                 "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                 "Feedback comments"]  # fmt: skip


@pytest.mark.slow
def test_moodle_ids_and_its_grading_worksheet(moodle, tmp_path):
    got = rows(moodle)
    assert sorted(got) == ["Alice Smith", "Bob Jones"], "names, without Moodle's folder suffix"
    assert (got["Alice Smith"]["total"], got["Bob Jones"]["total"]) == ("11", "0")
    worksheet = tmp_path / "worksheet.csv"
    with open(worksheet, "w", newline="", encoding="utf-8-sig") as fh:  # Moodle writes a BOM
        w = csv.writer(fh)
        w.writerow(MOODLE_HEADER)
        w.writerow(["Participant 100001", "Alice Smith", "a@uni.test", "Submitted for grading", "", "13.00",
                    "Yes", "Monday, 5 October 2026, 9:00 PM", "-", ""])  # fmt: skip
        w.writerow(["Participant 100002", "Bob Jones", "b@uni.test", "Submitted for grading", "", "13.00",
                    "Yes", "Monday, 5 October 2026, 9:10 PM", "-", ""])  # fmt: skip
        w.writerow(["Participant 100003", "Carl Park", "c@uni.test", "No submission", "", "13.00", "Yes",
                    "-", "-", ""])  # fmt: skip
    proc = course("export", str(moodle), "--to", "moodle", "--roster", str(worksheet))
    assert proc.returncode == 0, proc.stderr
    table = read_table(moodle / "exports" / "moodle.csv")
    assert table[0] == MOODLE_HEADER, "the worksheet's own columns, in its order"
    by = {r[0]: dict(zip(MOODLE_HEADER, r, strict=True)) for r in table[1:]}
    assert by["Participant 100001"]["Grade"] == "11" and by["Participant 100002"]["Grade"] == "0"
    assert by["Participant 100003"]["Grade"] == "", "no submission: no grade, never a zero"
    assert "by hand" in by["Participant 100001"]["Feedback comments"]
    assert by["Participant 100001"]["Email address"] == "a@uni.test", "other columns kept as they were"


# --- nbgrader's exchange: timestamps, late work, nbgrader export ---------------------------------


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    base = tmp_path_factory.mktemp("exchange")
    inbound = base / "exchange" / "course101" / "inbound"

    def hand_in(who: str, when: str, nb, tag: str) -> None:
        folder = inbound / f"{who}+{ASSIGNMENT}+{when} UTC+{tag}"
        write(folder / NOTEBOOK, nb)
        (folder / "timestamp.txt").write_text(f"{when} UTC")

    hand_in("alice", "2026-10-05 20:00:00.000000", student(None, answers=False), "a1")
    hand_in("alice", "2026-10-06 02:30:00.000000", student(), "a2")  # 4.5 h late: the cap
    hand_in("bob", "2026-10-05 22:30:00.000000", student(), "b1")  # 31 min late: one hour after grace
    hand_in("carol", "2026-10-05 21:00:00.000000", student(), "c1")  # on time
    out = base / "out"
    grade(inbound.parent, out, "--due", DUE, "--late-penalty", POLICY)
    return out


@pytest.mark.slow
def test_the_exchange_keeps_times_and_late_penalties_reach_nbgrader_export(exchange):
    got = rows(exchange)
    assert sorted(got) == ["alice", "bob", "carol"]
    assert got["bob"]["submitted"].startswith("2026-10-05T22:30:00")
    assert got["bob"]["hours_late"] == "0.52" and float(got["bob"]["penalty"]) == pytest.approx(0.1 * MAX)
    assert float(got["alice"]["penalty"]) == pytest.approx(0.3 * MAX), "five started hours, capped at 30 %"
    assert (got["carol"]["penalty"], got["carol"]["total"]) == ("", "11")
    assert "older submission" in notes(exchange)["alice"]
    exported = nbgrader_export(exchange)
    for sid in ("alice", "bob", "carol"):
        assert float(exported[sid]["score"]) == pytest.approx(float(got[sid]["total"])), sid
    assert exported["bob"]["timestamp"].startswith("2026-10-05 22:30:00"), "the gradebook has the time"
    assert float(exported["bob"]["late_submission_penalty"]) == pytest.approx(0.1 * MAX)
    with sqlite3.connect(exchange / "gradebook.db") as db:
        (due,) = db.execute("select duedate from assignment where name = ?", (ASSIGNMENT,)).fetchone()
    assert due.startswith("2026-10-05 21:59")


# --- fast: the policy, the sheet and the exports on a results.json written by hand -----------------


def test_late_policies():
    due = datetime(2026, 10, 5, 21, 59, tzinfo=UTC)
    per_hour = LatePolicy.parse(POLICY)
    assert penalty(per_hour, due, due + timedelta(minutes=10), False, 13, 11) == (None, 0.0, None), "grace"
    hours, off, note = penalty(per_hour, due, due + timedelta(minutes=31), False, 13, 11)
    assert (round(hours, 2), off) == (0.52, 1.3) and "0.5 hours late" in note
    assert penalty(per_hour, due, due + timedelta(hours=30), False, 13, 11)[1] == 3.9, "capped at 30 %"
    assert penalty(per_hour, due, due + timedelta(hours=30), False, 13, 2)[1] == 2, "never below zero"
    per_day = LatePolicy.parse("per-day:5")
    assert penalty(per_day, due, due + timedelta(hours=25), False, 10, 10)[1] == 1.0, "two started days"
    zero = LatePolicy.parse("zero")
    assert penalty(zero, due, due + timedelta(seconds=1), False, 13, 11)[1] == 11
    assert penalty(zero, due, None, True, 13, 11)[1] == 11, "marked late with no time"
    assert penalty(LatePolicy.parse("none"), due, due + timedelta(days=3), False, 13, 11)[1] == 0
    assert (
        penalty(per_hour, None, None, True, 13, 11)[2] == "the LMS marks it late, but no --due date was given"
    )
    for bad in ("per-week:3", "per-hour:150", "per-hour:1,cap:x", "10%"):
        with pytest.raises(PolicyError, match="--late-penalty"):
            LatePolicy.parse(bad)


def test_cli_refuses_a_due_date_without_a_time_zone(tmp_path):
    (tmp_path / "subs").mkdir()
    proc = course("grade", ASSIGNMENT, str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                  "--due", "2026-10-05 23:59")  # fmt: skip
    assert proc.returncode == 1 and "time zone" in proc.stderr, proc.stderr
    proc = course("grade", ASSIGNMENT, str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                  "--late-penalty", "lots")  # fmt: skip
    assert proc.returncode == 1 and "--late-penalty 'lots'" in proc.stderr, proc.stderr


def fake_run(out: Path) -> Path:
    """A results.json and marker as `course grade` writes them, for the exports' error handling."""
    out.mkdir()
    (out / ".course-grade").write_text(json.dumps({"assignment": ASSIGNMENT}))
    result = {"student": "alice", "status": "graded", "total": 5.0, "max": 13.0,
              "cells": {"test_a": [5.0, 11.0]}, "lms_id": "11111",
              "manual": {"explain_results": None}}  # fmt: skip
    (out / "results.json").write_text(json.dumps({
        "assignment": ASSIGNMENT, "columns": ["test_a", "explain_results"],
        "points": {"test_a": 11, "explain_results": 2}, "manual_columns": ["explain_results"],
        "max_total": 13, "results": [result, {"student": "=HYPERLINK(\"x\")", "status": "ungradable",
                                              "reasons": ["empty file"]}],
    }))  # fmt: skip
    return out


def test_exports_refuse_a_roster_of_the_wrong_kind(tmp_path):
    out = fake_run(tmp_path / "out")
    moodle = tmp_path / "worksheet.csv"
    moodle.write_text(",".join(MOODLE_HEADER) + "\n")
    proc = course("export", str(out), "--to", "canvas", "--roster", str(moodle))
    assert proc.returncode == 1 and "not a Canvas gradebook export" in proc.stderr, proc.stderr
    canvas = tmp_path / "canvas.csv"
    canvas.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n")
    proc = course("export", str(out), "--to", "moodle", "--roster", str(canvas))
    assert proc.returncode == 1 and "not a Moodle grading worksheet" in proc.stderr
    proc = course("export", str(out), "--to", "canvas")
    assert proc.returncode == 1 and "needs --roster" in proc.stderr
    proc = course("export", str(tmp_path), "--to", "moodle")
    assert proc.returncode == 1 and "grade the class first" in proc.stderr


def test_an_export_cannot_smuggle_a_formula_into_a_spreadsheet(tmp_path):
    out = fake_run(tmp_path / "out")
    proc = course("export", str(out), "--to", "moodle")
    assert proc.returncode == 0, proc.stderr
    text = (out / "exports" / "moodle.csv").read_text()
    assert not re.search(r"(^|,)=HYPERLINK", text), "a cell starting with = is neutralised"
    table = read_table(out / "exports" / "moodle.csv")
    assert table[0] == MOODLE_HEADER
    assert table[1][0] == "Participant 11111" and table[1][4] == "5"
