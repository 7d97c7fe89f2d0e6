"""Grades an LMS imports as they are (``course export DIR --to canvas|moodle [--roster FILE]``).

Canvas (``--to canvas``)
    ``--roster`` is the class's gradebook as Canvas exports it (*Grades → Export*: the columns
    ``Student, ID, SIS User ID, SIS Login ID, Section`` and a ``Points Possible`` row). The export
    keeps those five columns for every student of the roster and one assignment column with each
    total, and the ``Points Possible`` row with its maximum: the file Canvas's *Grades → Import*
    takes. The assignment column is the roster's own (``06-search (4321)``: Canvas names a column
    by the assignment and its id, and an import updates that assignment) when ``--column`` names
    it or one roster column starts with the assignment's name; otherwise it is named after the
    assignment, and Canvas's import creates a new assignment of that name (the summary says so).
    Students are matched by the Canvas user id of their download (the
    ``ID`` column), else by SIS login or SIS user id, else by name. A student without a score
    (not graded, not handed in) gets an empty cell, never a zero; Canvas's import has no comment
    column, so the statuses and reasons go to ``canvas-comments.csv`` beside it.
Moodle (``--to moodle``)
    ``--roster`` is the assignment's grading worksheet as Moodle downloads it (*View all
    submissions → Download grading worksheet*: ``Identifier`` ("Participant 123456"), ``Full name``,
    ``Email address``, ``Status``, ``Grade``, ``Maximum grade``, ``Grade can be changed``, ``Last
    modified (submission)``, ``Last modified (grade)``, ``Feedback comments``). The export fills in
    ``Grade`` and ``Feedback comments`` (the status and, for a student not graded, why) and keeps
    every other column: the file *Upload grading worksheet* takes. Without a roster it writes a
    worksheet of the graded students with the participant ids of their downloads.

Both say which roster rows had no submission and which graded students were not on the roster.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from course_lib.grading import sanitize
from course_lib.grading.workspace import GradingError

CANVAS_KEYS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = (
    "Identifier", "Full name", "Email address", "Status", "Grade", "Maximum grade", "Grade can be changed",
    "Last modified (submission)", "Last modified (grade)", "Feedback comments",
)  # fmt: skip


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _comment(r) -> str:
    parts = [f"course grade: {r.status}"]
    if r.total is not None and r.max:
        parts.append(f"{r.total:g} / {r.max:g} points")
    if r.manual_pending:
        parts.append(f"{len(r.manual_pending)} answer(s) still to grade by hand")
    if r.penalty:
        parts.append(f"late: {r.penalty:g} points off")
    if r.status != "graded":
        parts += r.reasons
    return "; ".join(parts)


def _read_roster(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _match(rows, results, keys):
    """{roster row index: result}, and the results no row matched."""
    by_lms = {r.lms_id: r for r in results if r.lms_id}
    by_id = {r.student: r for r in results}
    by_name = {_norm(r.student): r for r in results}
    matched, used = {}, set()
    for i, row in enumerate(rows):
        r = None
        for key in keys["lms"]:
            value = (row.get(key) or "").strip()
            value = value.removeprefix("Participant ").strip()
            if value and value in by_lms:
                r = by_lms[value]
                break
        for key in keys["id"]:
            if r is None and (row.get(key) or "").strip() in by_id:
                r = by_id[row[key].strip()]
        for key in keys["name"]:
            if r is None and _norm(row.get(key) or "") in by_name:
                r = by_name[_norm(row[key])]
        if r is not None and r.student not in used:
            matched[i] = r
            used.add(r.student)
    return matched, [r for r in results if r.student not in used]


def _canvas_column(fields: list[str], assignment: str, column: str | None) -> tuple[str, str | None]:
    """The assignment column to write, and a note when Canvas will create a new assignment."""
    others = [f for f in fields if f not in CANVAS_KEYS]
    if column:
        found = [f for f in others if f == column or f.startswith(column + " (")]
        if len(found) != 1:
            raise GradingError(
                f"--column {column!r} is not one column of the roster; its assignment columns: "
                + (", ".join(repr(f) for f in others[:12]) or "none")
            )
        return found[0], None
    found = [f for f in others if _norm(f).startswith(_norm(assignment))]
    if len(found) == 1:
        return found[0], None
    why = "several roster columns match it" if found else "no roster column is named after it"
    return assignment, (
        f"  column {assignment!r} ({why}): Canvas's import will create a new assignment of that name; "
        "pass --column 'NAME (ID)' to update an existing one"
    )


def export_canvas(
    out_dir: Path | str, roster: Path | str, dest: Path | str | None = None, column: str | None = None
) -> tuple[Path, str]:
    from course_lib.grading.batch import report_from_results

    out_dir = Path(out_dir)
    report = report_from_results(out_dir)
    fields, rows = _read_roster(Path(roster))
    missing = [k for k in ("Student", "ID") if k not in fields]
    if missing:
        raise GradingError(
            f"{roster} is not a Canvas gradebook export (no column {', '.join(missing)}): in Canvas, "
            "Grades -> Export -> Export Entire Gradebook"
        )

    def is_student(row) -> bool:
        name = (row.get("Student") or "").strip()
        # Canvas's own rows: "Points Possible" (and "Manual Posting" in newer exports), and the
        # course's test student ("Student, Test")
        return bool(name) and not name.startswith(("Points Possible", "Manual Posting")) and name not in (
            "Test Student", "Student, Test")  # fmt: skip

    students = [row for row in rows if is_student(row)]
    keys_for = {"lms": ["ID"], "id": ["SIS Login ID", "SIS User ID"], "name": ["Student"]}
    matched, unmatched = _match(students, report.results, keys_for)
    column, new_column = _canvas_column(fields, report.assignment, column)
    keys = [k for k in CANVAS_KEYS if k in fields]
    buf, notes = io.StringIO(), io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*keys, column])
    writer.writerow(["Points Possible", *[""] * (len(keys) - 1), f"{report.max_total:g}"])
    comments = csv.writer(notes, lineterminator="\n")
    comments.writerow(["Student", "ID", column, "comment"])
    no_submission = []
    for i, row in enumerate(students):
        r = matched.get(i)
        score = "" if r is None or r.total is None else f"{r.total:g}"
        writer.writerow([*(row.get(k, "") for k in keys), score])
        if r is None:
            no_submission.append(row.get("Student", ""))
            comments.writerow([row.get("Student", ""), row.get("ID", ""), "", "no submission graded"])
        elif r.status != "graded" or r.manual_pending or r.penalty:
            comments.writerow([row.get("Student", ""), row.get("ID", ""), score, sanitize.cell(_comment(r))])
    dest = Path(dest) if dest else out_dir / "exports" / "canvas.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(buf.getvalue())
    dest.with_name(dest.stem + "-comments.csv").write_text(notes.getvalue())
    text = _summary(len(students), len(matched), no_submission, unmatched, dest)
    return dest, text + (f"\n{new_column}" if new_column else "")


def export_moodle(
    out_dir: Path | str, roster: Path | str | None, dest: Path | str | None = None
) -> tuple[Path, str]:
    from course_lib.grading.batch import report_from_results

    out_dir = Path(out_dir)
    report = report_from_results(out_dir)
    if roster:
        fields, rows = _read_roster(Path(roster))
        if "Identifier" not in fields or "Grade" not in fields:
            raise GradingError(
                f"{roster} is not a Moodle grading worksheet (no Identifier and Grade columns): in Moodle, "
                "the assignment -> View all submissions -> Download grading worksheet"
            )
    else:
        fields = list(MOODLE_COLUMNS)
        rows = [{"Identifier": f"Participant {r.lms_id}" if r.lms_id else r.student, "Full name": r.student,
                 "Maximum grade": f"{report.max_total:g}", "Grade can be changed": "Yes"}
                for r in report.results]  # fmt: skip
    matched, unmatched = _match(rows, report.results, {"lms": ["Identifier"], "id": ["Full name"],
                                                       "name": ["Full name"]})  # fmt: skip
    if "Feedback comments" not in fields:
        fields.append("Feedback comments")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    no_submission = []
    for i, row in enumerate(rows):
        row = dict(row)
        r = matched.get(i)
        if r is None:
            no_submission.append(row.get("Full name", ""))
        else:
            row["Grade"] = "" if r.total is None else f"{r.total:g}"
            row["Feedback comments"] = _comment(r)
        writer.writerow({k: sanitize.cell(v) if k == "Feedback comments" else v for k, v in row.items()})
    dest = Path(dest) if dest else out_dir / "exports" / "moodle.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(buf.getvalue())
    return dest, _summary(len(rows), len(matched), no_submission, unmatched, dest)


def _summary(n_rows, n_matched, no_submission, unmatched, dest) -> str:
    lines = [f"wrote {dest}: {n_matched} of {n_rows} roster rows have a result"]
    if no_submission:
        lines.append(
            f"  no submission graded for: {', '.join(no_submission[:20])}"
            + (" ..." if len(no_submission) > 20 else "")
        )
    if unmatched:
        lines.append(
            "  graded but not on the roster (not exported): " + ", ".join(r.student for r in unmatched[:20])
        )
    return "\n".join(lines)
