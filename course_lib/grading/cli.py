"""The ``course`` command line (``course = course_lib.grading.cli:main`` in pyproject.toml).

    course release [ASSIGNMENT ...]   regenerate exercises/ from solutions/ and verify them

Each subcommand is a ``_cmd_<name>(args) -> int`` function registered in ``build_parser`` with
its own subparser; add ``grade`` or ``check`` the same way. Errors from the grading code
(``GradingError``) print one clear message and exit with status 1.
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
