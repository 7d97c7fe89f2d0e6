"""The ``course`` command line (``course = course_lib.grading.cli:main`` in pyproject.toml).

    course release [ASSIGNMENT ...]                 regenerate exercises/ and verify them
    course grade ASSIGNMENT SUBMISSIONS --out DIR   autograde a class (instructors)
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
    options = GradeOptions(
        jobs=args.jobs,
        timeout=args.timeout,
        wall_limit=args.wall_limit,
        memory_mb=args.memory,
        disk_mb=args.disk,
        sandbox=args.sandbox,
        id_pattern=args.id_pattern,
        keep_work=args.keep_work,
        progress=not args.quiet,
    )
    report = grade_class(args.assignment, args.submissions, args.out, options, repo_root=root)
    print(table(report))
    return 0 if all(r.status == "graded" for r in report.results) else 2


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
        "--keep-work", action="store_true", help="keep DIR/.work, the per-student nbgrader workspaces"
    )
    grade.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    grade.set_defaults(func=_cmd_grade)

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
