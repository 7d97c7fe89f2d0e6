"""Releasing an assignment: exercises/ generated from solutions/, and proof that it grades right.

``generate_exercises(assignment)`` runs ``nbgrader generate_assignment`` in the repository (its
``nbgrader_config.py`` sets ``no_database``, so no gradebook is written there, and ignores the
judge, ``judge.py``) and checks that the student notebooks carry no outputs and no judge.
Before it, ``ensure_setup_cell`` puts (or refreshes) the locked first code cell every released
notebook starts with: nothing when ``course_lib`` imports; otherwise one line with the install
command for the student's environment, and on Google Colab the install itself. The install
command is built from ``repository`` in ``_config.yml`` (``install_spec``), the one place it is
written. After it, ``package_release`` copies the released notebooks into
``course_lib/_exercises/`` (package data), so that ``course check`` compares a notebook with its
release outside a clone too.

``verify_release(assignment)`` grades, with ``course grade`` (the judge, the sandbox) in a
temporary folder outside the repository, the solution (it must score full marks) and the
released notebook (it must score zero). ``notebook_differences`` compares two versions of a released
notebook by what matters (cell types, sources, nbgrader metadata), not by timestamps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_lib.grading.workspace import GradingError, StudentScores, find_repo_root, run_nbgrader

#: Student ids used by ``verify_release`` for the two reference submissions.
SOLUTION_STUDENT = "solution"
RELEASE_STUDENT = "release"


class ReleaseError(GradingError):
    """The released assignment is wrong (stale, with outputs, or grading it gives bad scores)."""


@dataclass
class VerifyReport:
    """Scores of the solution and of the released notebook, and how long grading took."""

    assignment: str
    solution: StudentScores
    release: StudentScores
    seconds: float
    problems: list[str] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)  # cells graded by hand: not verified

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        s, r = self.solution, self.release
        return (
            f"{self.assignment}: solution {s['total']:g}/{s['max']:g}, "
            f"released notebook {r['total']:g}/{r['max']:g} (graded in {self.seconds:.1f} s)"
            + (f"; graded by hand, not verified: {', '.join(self.manual)}" if self.manual else "")
        )


def notebook_names(assignment: str, repo_root: Path | str | None = None) -> list[str]:
    """Names (without .ipynb) of the assignment's source notebooks in solutions/."""
    root = Path(repo_root or find_repo_root())
    return sorted(p.stem for p in (root / "solutions" / assignment).glob("*.ipynb"))


SETUP_ID = "course_setup"

#: The first code cell of every assignment notebook; ``{spec}`` is ``install_spec()``.
SETUP_SOURCE = """\
# Set-up (leave this cell as it is): it does nothing when the course's library is installed;
# otherwise it says how to install it here, and on Google Colab it installs it.
try:
    import course_lib  # noqa: F401
except ModuleNotFoundError:
    import os
    import sys

    SPEC = "{spec}"
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        import subprocess

        print("Installing course_lib (about a minute, once per Colab session)...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", SPEC], check=True)
        import course_lib  # noqa: F401
    else:
        places = {{
            "JUPYTERHUB_USER": "on this JupyterHub",
            "BINDER_SERVICE_HOST": "on this Binder",
            "KAGGLE_KERNEL_RUN_TYPE": "on this Kaggle notebook",
            "VSCODE_PID": "in this VS Code environment",
            "CONDA_PREFIX": "in this conda environment",
        }}
        where = next((text for var, text in places.items() if var in os.environ), "in this Python")
        raise ModuleNotFoundError(
            f'course_lib is not installed {{where}}: run  %pip install "{{SPEC}}"  in a new cell, '
            "then restart the kernel and run this notebook again"
        ) from None
"""
#: The environments the set-up cell tells apart (besides a plain Python), in its order.
SETUP_ENVIRONMENTS = ("Google Colab", "JupyterHub", "Binder", "Kaggle", "VS Code", "conda")


def install_spec(repo_root: Path | str | None = None) -> str:
    """``course_lib[student] @ git+<repository url>@<branch>``, from ``_config.yml``."""
    import re

    root = Path(repo_root or find_repo_root())
    text = (root / "_config.yml").read_text()
    block = re.search(r"^repository:\s*\n((?:[ \t]+.*\n?)+)", text, flags=re.M)
    if block is None:
        raise ReleaseError(f"{root / '_config.yml'} has no repository: url, branch")
    fields = dict(re.findall(r"^[ \t]+(url|branch):\s*([^\s#]+)", block.group(1), flags=re.M))
    if "url" not in fields:
        raise ReleaseError(f"{root / '_config.yml'}: repository has no url")
    return f"course_lib[student] @ git+{fields['url']}@{fields.get('branch', 'main')}"


def ensure_setup_cell(nb: nbformat.NotebookNode, spec: str) -> bool:
    """Put the locked set-up cell first among the code cells of ``nb`` (or refresh its source);
    True when ``nb`` changed."""
    source = SETUP_SOURCE.format(spec=spec).rstrip("\n")
    meta = {"grade": False, "grade_id": SETUP_ID, "locked": True, "schema_version": 3, "solution": False}
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == SETUP_ID:
            if cell.source == source and cell.metadata.get("nbgrader") == meta:
                return False
            cell.source, cell.metadata["nbgrader"] = source, meta
            return True
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    cell = nbformat.v4.new_code_cell(
        source, metadata={"nbgrader": meta, "editable": False, "deletable": False}
    )
    cell.pop("id", None)
    nb.cells.insert(first_code, cell)
    for i, c in enumerate(nb.cells):  # unique, stable cell ids (nbformat 4.5)
        if nb.nbformat_minor >= 5 or "id" in c:
            c["id"] = c.get("id") or f"cell-{i}"
    return True


def package_release(assignment: str, repo_root: Path | str | None = None) -> list[Path]:
    """Copy exercises/<assignment>/*.ipynb to course_lib/_exercises/ (shipped with the package)."""
    import shutil

    root = Path(repo_root or find_repo_root()).resolve()
    dest = root / "course_lib" / "_exercises"
    dest.mkdir(exist_ok=True)
    out = []
    for path in sorted((root / "exercises" / assignment).glob("*.ipynb")):
        shutil.copyfile(path, dest / path.name)
        out.append(dest / path.name)
    return out


def generate_exercises(assignment: str, repo_root: Path | str | None = None) -> list[Path]:
    """Regenerate exercises/<assignment>/ from solutions/<assignment>/ with nbgrader.

    Fails if a gradebook appears in the repository or a released notebook has outputs.
    Returns the released notebooks.
    """
    root = Path(repo_root or find_repo_root()).resolve()
    if not notebook_names(assignment, root):
        raise ReleaseError(f"no notebook in {root / 'solutions' / assignment}")
    spec = install_spec(root)
    for name in notebook_names(assignment, root):
        source = root / "solutions" / assignment / f"{name}.ipynb"
        nb = nbformat.read(str(source), as_version=4)
        if ensure_setup_cell(nb, spec):
            nbformat.write(nb, str(source))
    db = root / "gradebook.db"
    had_db = db.exists()
    run_nbgrader(["generate_assignment", assignment, "--force"], cwd=root, timeout=300)
    if db.exists() and not had_db:
        db.unlink()
        raise ReleaseError(
            f"nbgrader wrote {db}: the repository's nbgrader_config.py must set "
            "c.GenerateAssignment.no_database = True (grading happens in temporary workspaces)"
        )
    released = sorted((root / "exercises" / assignment).glob("*.ipynb"))
    leaked = [p for p in (root / "exercises" / assignment).rglob("*") if p.name == "judge.py"]
    if leaked:
        for path in leaked:
            path.unlink()
        raise ReleaseError(
            f"nbgrader released the judge ({leaked[0]}): add 'judge.py' to c.CourseDirectory.ignore in "
            "nbgrader_config.py (removed it from exercises/)"
        )
    for path in released:
        dirty = cells_with_outputs(nbformat.read(str(path), as_version=4))
        if dirty:
            raise ReleaseError(f"{path} has outputs in cells {dirty}: enable ClearOutput")
    package_release(assignment, root)
    return released


def cells_with_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Ids (or indices) of code cells that carry outputs or an execution count."""
    return [
        str(cell.get("id", i))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


def _essence(cell: Any) -> dict[str, Any]:
    return {
        "cell_type": cell.cell_type,
        "source": cell.source,
        "nbgrader": dict(cell.get("metadata", {}).get("nbgrader", {})),
    }


def notebook_differences(
    expected: nbformat.NotebookNode | Path | str, actual: nbformat.NotebookNode | Path | str
) -> list[str]:
    """How ``actual`` differs from ``expected`` in cell types, sources and nbgrader metadata."""
    a = nbformat.read(str(expected), as_version=4) if isinstance(expected, (str, Path)) else expected
    b = nbformat.read(str(actual), as_version=4) if isinstance(actual, (str, Path)) else actual
    diffs = []
    if len(a.cells) != len(b.cells):
        diffs.append(f"{len(b.cells)} cells instead of {len(a.cells)}")
    for i, (ca, cb) in enumerate(zip(a.cells, b.cells, strict=False)):
        ea, eb = _essence(ca), _essence(cb)
        for key in ea:
            if ea[key] != eb[key]:
                label = ea["nbgrader"].get("grade_id") or ca.get("id") or i
                diffs.append(f"cell {i} ({label}): {key} differs")
    kernel_a = a.metadata.get("kernelspec", {}).get("name")
    kernel_b = b.metadata.get("kernelspec", {}).get("name")
    if kernel_a != kernel_b:
        diffs.append(f"kernelspec {kernel_b!r} instead of {kernel_a!r}")
    return diffs


def verify_release(assignment: str, repo_root: Path | str | None = None) -> VerifyReport:
    """Grade the solution and the committed exercises notebook as ``course grade`` would.

    The solution must score full marks (and more than 0 points must exist); the released
    notebook must score 0. Problems are listed in the report (``report.ok``); an assignment that
    cannot be graded at all raises GradingError.
    """
    from course_lib.grading.batch import grade_notebooks

    root = Path(repo_root or find_repo_root()).resolve()
    names = notebook_names(assignment, root)
    if len(names) != 1:
        raise ReleaseError(f"{assignment} has {len(names)} notebooks; course release verifies one")
    released = root / "exercises" / assignment / f"{names[0]}.ipynb"
    if not released.is_file():
        raise ReleaseError(f"{released} is missing: run `course release {assignment}`")
    start = time.perf_counter()
    report = grade_notebooks(
        assignment,
        {SOLUTION_STUDENT: root / "solutions" / assignment / f"{names[0]}.ipynb", RELEASE_STUDENT: released},
        repo_root=root,
    )
    seconds = time.perf_counter() - start
    scores = {}
    for r in report.results:
        if r.status != "graded" or r.total is None:
            raise ReleaseError(
                f"{assignment}: the {r.student} notebook was not graded ({r.status}): {r.reasons}"
            )
        # Cells graded by hand are pending for both: the totals compared are the automatic parts.
        by_hand = sum(report.points[c] for c in report.manual_columns)
        scores[r.student] = {"total": r.total, "max": r.max - by_hand, "cells": dict(r.cells)}
    verify = VerifyReport(assignment, scores[SOLUTION_STUDENT], scores[RELEASE_STUDENT], seconds,
                          manual=list(report.manual_columns))  # fmt: skip
    verify.problems = score_problems(verify.solution, verify.release)
    return verify


def score_problems(solution: StudentScores, release: StudentScores) -> list[str]:
    """Why these scores are wrong for a release: the solution below full marks (or nothing to
    score), or the released notebook above zero. Empty when all is well."""
    problems = []
    if solution["max"] <= 0 or not solution["cells"]:
        problems.append("the assignment has no graded cells with points")
    lost = {k: v for k, v in solution["cells"].items() if v[0] != v[1]}
    if solution["total"] != solution["max"] or lost:
        problems.append(
            f"the solution scores {solution['total']:g}/{solution['max']:g}, not full marks; "
            f"cells below full marks: {_cells(lost)}"
        )
    earned = {k: v for k, v in release["cells"].items() if v[0] != 0}
    if release["total"] != 0 or earned:
        problems.append(
            f"the released notebook scores {release['total']:g}/{release['max']:g}, not 0; "
            f"cells that give points to an empty answer: {_cells(earned)}"
        )
    return problems


def _cells(cells: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {s:g}/{m:g}" for k, (s, m) in cells.items()) or "none"
