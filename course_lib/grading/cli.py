"""The ``course`` command line (``course = course_lib.grading.cli:main`` in pyproject.toml).

    course release [ASSIGNMENT ...]                 regenerate exercises/ and verify them
    course grade ASSIGNMENT SUBMISSIONS --out DIR   autograde a class (instructors)
    course manual DIR [--apply SHEET | --from-gradebook]   the cells graded by hand, read back
    course export DIR --to canvas|moodle            grades an LMS imports
    course check NOTEBOOK                           run the visible tests (students)

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in ``build_parser`` with
its own subparser. Errors from the grading code (``GradingError``) print one clear message and
exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from course_lib.grading.workspace import GradingError, find_repo_root, list_assignments


def _cmd_release(args: argparse.Namespace) -> int:
    from course_lib.grading.release import generate_exercises, verify_release

    root = find_repo_root(args.root)
    known = list_assignments(root)
    assignments = args.assignments or known
    unknown = [a for a in assignments if a not in known]
    if unknown:
        raise GradingError(f"unknown assignment(s) {unknown}; solutions/ has {known}")
    if not assignments:
        raise GradingError(f"no assignments in {root / 'solutions'}")
    failed = []
    for assignment in assignments:
        for path in generate_exercises(assignment, root):
            print(f"{assignment}: wrote {path.relative_to(root)}")
        if args.no_verify:
            continue
        report = verify_release(assignment, root)
        print(report.summary())
        if not report.ok:
            failed.append(assignment)
            for problem in report.problems:
                print(f"  FAILED: {problem}", file=sys.stderr)
    if failed:
        print(
            f"course release: {', '.join(failed)} did not verify: fix the solution notebook or "
            "its tests, then run `course release` again",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from course_lib.grading.batch import GradeOptions, grade_class, table

    root = find_repo_root(args.root)
    known = list_assignments(root)
    if args.assignment not in known:
        raise GradingError(f"unknown assignment {args.assignment!r}; solutions/ has {known}")
    from course_lib.grading.lms import LayoutError, parse_time

    try:
        due = parse_time(args.due) if args.due else None
    except LayoutError as err:
        raise GradingError(str(err)) from None
    options = GradeOptions(
        lms=args.lms,
        due=due,
        late_penalty=args.late_penalty,
        only=tuple(args.only or ()),
        force=args.force,
        jobs=args.jobs,
        timeout=args.timeout,
        wall_limit=args.wall_limit,
        memory_mb=args.memory,
        disk_mb=args.disk,
        sandbox=args.sandbox,
        id_pattern=args.id_pattern,
        keep_work=args.keep_work,
        scheduler=args.scheduler,
        progress=not args.quiet,
    )
    report = grade_class(args.assignment, args.submissions, args.out, options, repo_root=root)
    print(table(report))
    return 0 if all(r.status == "graded" for r in report.results) else 2


def _cmd_manual(args: argparse.Namespace) -> int:
    from course_lib.grading.manual import apply_gradebook, apply_sheet, write_sheet

    if args.apply and args.from_gradebook:
        raise GradingError("give --apply SHEET or --from-gradebook, not both")
    if args.from_gradebook:
        touched = apply_gradebook(args.dir)
        print(f"course manual: the gradebook's scores (formgrader's) of {len(touched)} student(s) read back; "
              "grades.csv and their feedback are updated")  # fmt: skip
        return 0
    if args.apply:
        touched = apply_sheet(args.dir, args.apply)
        print(f"course manual: scores of {len(touched)} student(s) read back; grades.csv, the gradebook "
              f"and their feedback are updated")  # fmt: skip
        return 0
    path = write_sheet(args.dir, force=args.force)
    then = f"course manual {args.dir} --apply {path}"
    print(f"course manual: wrote {path}; fill in score (and comment), then: {then}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from course_lib.grading.export import export_canvas, export_moodle

    if args.to == "canvas":
        if not args.roster:
            raise GradingError("--to canvas needs --roster: the class's gradebook exported from Canvas")
        _, text = export_canvas(args.dir, args.roster, args.output, column=args.column)
    else:
        _, text = export_moodle(args.dir, args.roster, args.output)
    print(text)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from course_lib.grading.check import CheckError, check_notebook

    try:
        report = check_notebook(args.notebook, timeout=args.timeout)
    except CheckError as err:
        print(f"course check: {err}", file=sys.stderr)
        return 2
    print(report.text())
    return report.exit_code


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course", description="Instructor and student tools of 'Training Deep Networks Well'."
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the course repository (default: found from the current folder)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    release = sub.add_parser(
        "release",
        help="regenerate exercises/ from solutions/ and verify the grading",
        description="Regenerate exercises/<assignment>/ from solutions/<assignment>/ with "
        "nbgrader, then grade both in a temporary workspace: the solution must score full "
        "marks and the released notebook zero.",
    )
    release.add_argument(
        "assignments",
        nargs="*",
        metavar="ASSIGNMENT",
        help="assignment folder names (default: every one in solutions/)",
    )
    release.add_argument(
        "--no-verify", action="store_true", help="only regenerate; skip grading the solution and the release"
    )
    release.set_defaults(func=_cmd_release)

    grade = sub.add_parser(
        "grade",
        help="autograde a whole class in parallel (instructors)",
        description="Autograde every student of SUBMISSIONS for ASSIGNMENT with nbgrader, each in "
        "its own workspace and sandboxed kernel, N at a time. SUBMISSIONS is a folder with one "
        "sub-folder per student id, a zip of such a folder, or an LMS-style flat folder of files "
        "named <student>_<notebook>.ipynb. Writes DIR/grades.csv, DIR/notes.csv, DIR/summary.md, "
        "DIR/summary.png and DIR/feedback/<student>/. Exit status: 0 when every student is "
        "graded, 2 when some are not (timeout, crashed, ungradable: see notes.csv), 1 on error.",
    )
    grade.add_argument("assignment", metavar="ASSIGNMENT", help="assignment folder name in solutions/")
    grade.add_argument("submissions", metavar="SUBMISSIONS", type=Path, help="folder or zip")
    grade.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder (new, empty, or from an earlier `course grade`)",
    )
    grade.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=0,
        metavar="N",
        help="parallel workers (default: the number of cores)",
    )
    grade.add_argument(
        "--timeout",
        type=_positive,
        default=60,
        metavar="SECONDS",
        help="per-cell time limit; the cell is interrupted (default 60)",
    )
    grade.add_argument(
        "--wall-limit",
        type=_positive,
        default=600,
        metavar="SECONDS",
        help="per-notebook time limit, everything included (default 600)",
    )
    grade.add_argument(
        "--memory",
        type=_positive,
        default=2048,
        metavar="MB",
        help="memory (address space) limit of each kernel (default 2048)",
    )
    grade.add_argument(
        "--disk",
        type=_positive,
        default=512,
        metavar="MB",
        help="everything one student's kernel may write, in all (default 512; a quota as root)",
    )
    grade.add_argument(
        "--sandbox",
        choices=["auto", "chroot", "user", "none"],
        default="auto",
        help="kernel isolation (default: the strongest available; see the docs)",
    )
    grade.add_argument(
        "--id-pattern",
        metavar="REGEX",
        default=None,
        help="regular expression with a (?P<student>...) group for LMS file names",
    )
    grade.add_argument(
        "--lms",
        choices=[
            "auto",
            "canvas",
            "moodle",
            "blackboard",
            "brightspace",
            "gradescope",
            "exchange",
            "folders",
        ],
        default="auto",
        help="the layout of SUBMISSIONS (default: detected, and the summary says which)",
    )
    grade.add_argument(
        "--due", metavar="DATETIME", default=None,
        help="the due date, ISO 8601 with a time zone (2026-12-01T23:59+01:00)",
    )  # fmt: skip
    grade.add_argument(
        "--late-penalty", metavar="POLICY", default=None,
        help="none (default), zero, per-hour:P[,cap:C][,grace:M] or per-day:... (percent of the points);"
        " with --only, the earlier run's due date and policy are kept",
    )  # fmt: skip
    grade.add_argument(
        "--only", nargs="+", metavar="ID", default=None,
        help="regrade these students into the earlier run in DIR, keeping everyone else",
    )  # fmt: skip
    grade.add_argument("--force", action="store_true", help="replace an earlier run in DIR")
    grade.add_argument(
        "--keep-work", action="store_true", help="keep DIR/.work, the per-student nbgrader workspaces"
    )
    grade.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="grade on the Dask cluster of this scheduler (tcp://HOST:8786; needs course_lib[cluster]) "
        "instead of --jobs local workers: see the instructors' guide",
    )  # fmt: skip
    grade.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    grade.set_defaults(func=_cmd_grade)

    manual = sub.add_parser(
        "manual",
        help="the cells graded by hand: write a sheet, read it back",
        description="Write DIR/manual.csv (student, cell, max_points, score, comment, answer) for the cells "
        "graded by hand; with --apply, read a filled sheet back into the gradebook, grades.csv and the "
        "feedback (nothing changes if a row is wrong).",
    )
    manual.add_argument("dir", metavar="DIR", type=Path, help="the output folder of `course grade`")
    manual.add_argument("--apply", metavar="SHEET", type=Path, default=None, help="the filled-in sheet")
    manual.add_argument("--from-gradebook", action="store_true",
                        help="read back the scores entered in formgrader (run in DIR)")  # fmt: skip
    manual.add_argument("--force", action="store_true", help="overwrite DIR/manual.csv")
    manual.set_defaults(func=_cmd_manual)

    export = sub.add_parser(
        "export",
        help="grades an LMS imports (Canvas, Moodle)",
        description="Write DIR/exports/<lms>.csv from DIR's grades, matched to the LMS's roster.",
    )
    export.add_argument("dir", metavar="DIR", type=Path, help="the output folder of `course grade`")
    export.add_argument("--to", choices=["canvas", "moodle"], required=True)
    export.add_argument("--roster", type=Path, default=None,
                        help="Canvas: the gradebook export; Moodle: the grading worksheet")  # fmt: skip
    export.add_argument("--output", type=Path, default=None, help="where to write (default DIR/exports/)")
    export.add_argument("--column", default=None, metavar="NAME",
                        help="Canvas: the roster's assignment column to fill (default: the one named "
                             "after the assignment)")  # fmt: skip
    export.set_defaults(func=_cmd_export)

    check = sub.add_parser(
        "check",
        help="run a notebook's visible tests before submitting (students)",
        description="Run NOTEBOOK in a fresh kernel with the original test cells, report which "
        "graded parts pass, warn about edited or deleted test cells. Exit status 0: every visible "
        "test passes and nothing is wrong; 1: a test fails or a test cell was changed; 2: the "
        "notebook cannot be read or run.",
    )
    check.add_argument("notebook", metavar="NOTEBOOK", type=Path)
    check.add_argument(
        "--timeout", type=_positive, default=60, metavar="SECONDS", help="per-cell time limit (default 60)"
    )
    check.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GradingError as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
