"""Written answers: the cells graded by hand, through a sheet or formgrader (``course manual DIR``).

An assignment may hold cells that no test can grade: nbgrader's manually graded answers (a
written explanation, a plot to judge) and tasks. ``course grade`` scores the rest and leaves these
pending: ``grades.csv`` says ``pending N`` in its ``manual`` column, their cells are empty, and
the gradebook marks them ``needs_manual_grade``, so formgrader (``nbgrader formgrader`` in DIR)
lists them too.

``write_sheet(DIR)`` writes ``DIR/manual.csv``: one row per student and cell, with the maximum,
the score and comment so far, and the start of the student's answer. Fill in ``score`` (and
``comment``) in a spreadsheet; ``apply_sheet(DIR, sheet)`` checks every row first (known student
and cell, a number between 0 and the maximum) and changes nothing if one is wrong, then writes the
scores and comments into the gradebook (as formgrader would), the totals into ``grades.csv``,
``results.json`` and ``summary.md``, and renders the students' feedback again. Scores entered in
formgrader (``nbgrader formgrader`` in DIR) go into the gradebook; ``apply_gradebook(DIR)``
(``course manual DIR --from-gradebook``) reads them back the same way, and a sheet written after a
formgrader session starts from them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import nbformat

from course_lib.grading import sanitize
from course_lib.grading.workspace import GradingError

SHEET = "manual.csv"
COLUMNS = ("student", "cell", "max_points", "score", "comment", "answer")


def _gradebook_manual(out_dir: Path, assignment: str) -> dict[tuple[str, str], tuple[float | None, str]]:
    """{(student, cell): (manual score, comment)} from the class gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{out_dir / 'gradebook.db'}") as gb:
        several = len(gb.find_assignment(assignment).notebooks) > 1
        for submission in gb.find_assignment(assignment).submissions:
            for nb in submission.notebooks:
                comments = {c.name: c.manual_comment or "" for c in nb.comments}
                for grade in nb.grades:
                    key = f"{nb.name}/{grade.name}" if several else grade.name
                    found[(submission.student.id, key)] = (grade.manual_score, comments.get(grade.name, ""))
    return found


def _answer(out_dir: Path, assignment: str, student: str, cell: str, limit: int = 300) -> str:
    name, _, gid = cell.rpartition("/")
    folder = out_dir / "autograded" / student / assignment
    paths = [folder / f"{name}.ipynb"] if name else sorted(folder.glob("*.ipynb"))
    for path in paths:
        if not path.is_file():
            continue
        for c in nbformat.read(str(path), as_version=4).cells:
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == (gid or cell):
                text = " ".join(c.source.split())
                return text if len(text) <= limit else text[: limit - 3] + "..."
    return ""


def write_sheet(out_dir: Path | str, *, force: bool = False) -> Path:
    """``DIR/manual.csv`` for every pending or graded manual cell (see the module docstring)."""
    from course_lib.grading.batch import report_from_results

    out_dir = Path(out_dir)
    report = report_from_results(out_dir)
    if not report.manual_columns:
        raise GradingError(f"{report.assignment} has no cell graded by hand: nothing to write")
    path = out_dir / SHEET
    if path.exists() and not force:
        raise GradingError(
            f"{path} exists (perhaps filled in): read it back with `course manual {out_dir} --apply {path}`, "
            "or pass --force to write a fresh one"
        )
    known = _gradebook_manual(out_dir, report.assignment)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in report.results:
        for cell in r.manual:
            score, comment = known.get((r.student, cell), (r.manual[cell], ""))
            answer = _answer(out_dir, report.assignment, r.student, cell)
            row = [
                r.student,
                cell,
                f"{report.points[cell]:g}",
                "" if score is None else f"{score:g}",
                comment,
                answer,
            ]
            writer.writerow([sanitize.cell(v) for v in row])
    path.write_text(buf.getvalue())
    return path


def _read_sheet(sheet: Path, report) -> tuple[dict[tuple[str, str], tuple[float, str]], list[str]]:
    rows, errors = {}, []
    by = report.by_student()
    with open(sheet, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("student", "cell", "score") if c not in (reader.fieldnames or [])]
        if missing:
            return {}, [
                f"{sheet} has no column {', '.join(missing)}: write it with `course manual DIR` first"
            ]
        for line, row in enumerate(reader, start=2):
            student = (row.get("student") or "").lstrip("'")
            cell = row.get("cell") or ""
            raw = (row.get("score") or "").strip()
            if not raw:
                continue  # not graded yet
            where = f"{sheet.name}, line {line} ({student}, {cell})"
            r = by.get(student)
            if r is None:
                errors.append(f"{where}: no such student in this run")
                continue
            if cell not in r.manual:
                errors.append(f"{where}: not a cell graded by hand for this student")
                continue
            try:
                score = float(raw)
            except ValueError:
                errors.append(f"{where}: the score {raw!r} is not a number")
                continue
            top = report.points[cell]
            if not 0 <= score <= top:
                errors.append(f"{where}: the score {score:g} is outside 0..{top:g}")
                continue
            if (student, cell) in rows:
                errors.append(f"{where}: this cell is graded twice in the sheet")
                continue
            rows[(student, cell)] = (score, row.get("comment") or "")
    return rows, errors


def apply_sheet(out_dir: Path | str, sheet: Path | str) -> list[str]:
    """Read a filled sheet back (see the module docstring); returns the students updated."""
    from course_lib.grading.batch import report_from_results

    out_dir, sheet = Path(out_dir), Path(sheet)
    report = report_from_results(out_dir)
    rows, errors = _read_sheet(sheet, report)
    if errors:
        raise GradingError("nothing was changed; fix the sheet first:\n  " + "\n  ".join(errors))
    _write_gradebook(out_dir, report, rows)
    return _update(out_dir, report, rows)


def apply_gradebook(out_dir: Path | str) -> list[str]:
    """The scores and comments entered in formgrader (the gradebook) into grades.csv, results.json,
    summary.md and the feedback; returns the students updated."""
    from course_lib.grading.batch import report_from_results

    out_dir = Path(out_dir)
    report = report_from_results(out_dir)
    known = _gradebook_manual(out_dir, report.assignment)
    rows = {}
    for r in report.results:
        for cell in r.manual:
            score, comment = known.get((r.student, cell), (None, ""))
            if score is not None:
                rows[(r.student, cell)] = (float(score), comment)
    return _update(out_dir, report, rows)


def _write_gradebook(out_dir: Path, report, rows) -> None:
    """The scores and comments of ``rows`` into the class gradebook, as formgrader writes them."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out_dir / 'gradebook.db'}") as gb:
        several = len(gb.find_assignment(report.assignment).notebooks) > 1
        for (student, cell), (score, comment) in rows.items():
            name, _, gid = cell.rpartition("/")
            submission = gb.find_submission(report.assignment, student)
            for nb in submission.notebooks:
                if several and nb.name != name:
                    continue
                for grade in nb.grades:
                    if grade.name == (gid if several else cell):
                        grade.manual_score = score
                        grade.needs_manual_grade = False
                for c in nb.comments:
                    if c.name == (gid if several else cell):
                        c.manual_comment = comment
        gb.db.commit()


def _update(out_dir: Path, report, rows) -> list[str]:
    """The scores of ``rows`` into the report's totals, its files and the students' feedback."""
    from course_lib.grading.batch import pass_rates, recompute_total, summary_png, write_reports

    by = report.by_student()
    touched = sorted({student for student, _ in rows})
    for (student, cell), (score, _) in rows.items():
        by[student].manual[cell] = score
    for student in touched:
        recompute_total(by[student], report)
    write_reports(report)
    totals = [r.total for r in report.results if r.total is not None and r.status == "graded"]
    rates = {k: (100 * ok / n if n else 0.0) for k, (ok, n) in pass_rates(report).items()}
    summary_png(out_dir / "summary.png", report.assignment, report.max_total, totals, rates)
    render_feedback(out_dir, report.assignment, touched)
    return touched


def render_feedback(out_dir: Path, assignment: str, students: list[str]) -> None:
    """The feedback HTML of ``students`` again, from their returned notebook and the gradebook."""
    from course_lib.grading.worker import feedback_exporter

    for student in students:
        folder = out_dir / "feedback" / student / assignment
        for path in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(str(path), as_version=4)
            shown = nbformat.from_dict(nbformat.v4.upgrade(nb)) if nb.nbformat != 4 else nb
            for cell in shown.cells:
                if cell.cell_type == "markdown":
                    cell.source = sanitize.math_to_mathml(cell.source)
            resources = {
                "unique_key": path.stem,
                "output_files_dir": f"{path.stem}_files",
                "nbgrader": {"student": student, "assignment": assignment, "notebook": path.stem,
                             "db_url": f"sqlite:///{out_dir / 'gradebook.db'}"},
            }  # fmt: skip
            page, _ = feedback_exporter().from_notebook_node(shown, resources=resources)
            path.with_suffix(".html").write_text(sanitize.feedback_html(page))
