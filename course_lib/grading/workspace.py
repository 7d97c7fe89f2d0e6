"""nbgrader courses for grading, always outside the repository.

``prepare_workspace(root, assignment)`` makes a fresh nbgrader course in ``root``: an
``nbgrader_config.py`` (the repository's settings, with this folder's own paths and gradebook),
``source/<assignment>/`` copied from ``solutions/`` (the judge included: the grader reads it from
there, and never copies it where a kernel can see it), and ``nbgrader generate_assignment`` run
once, which records the assignment, its notebooks and its graded cells (with points) in
``root/gradebook.db``. ``course grade`` (``batch.py``) makes the class's course this way and
grades every student in a copy of it. ``add_submission`` puts a notebook where nbgrader's own
``autograde`` looks for it (the benchmark compares with plain nbgrader so); plain nbgrader
does not run the judge, so its scores are not the course's grades.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

#: The repository this package lives in (an editable install), used when no root is given.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

#: Scores of one student: total, maximum, and (score, max) per graded cell id.
StudentScores = dict[str, Any]


class GradingError(RuntimeError):
    """nbgrader failed, or a workspace is not what grading needs; the message says why."""


# --- the repository ---------------------------------------------------------------------------


def find_repo_root(start: Path | str | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) with nbgrader_config.py and
    solutions/; else the repository this package was installed from."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    if (PACKAGE_ROOT / "nbgrader_config.py").is_file():
        return PACKAGE_ROOT
    raise GradingError(f"no course repository (nbgrader_config.py and solutions/) at or above {here}")


def list_assignments(repo_root: Path | str | None = None) -> list[str]:
    """Assignment names: the folders of solutions/ that hold a notebook, sorted."""
    solutions = Path(repo_root or find_repo_root()) / "solutions"
    return sorted(p.name for p in solutions.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def load_repo_config(repo_root: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The repository's nbgrader_config.py as {section: {option: value}} (traitlets loader)."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(repo_root or find_repo_root())
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return {section: dict(options) for section, options in config.items()}


# --- running nbgrader -------------------------------------------------------------------------


def nbgrader_env() -> dict[str, str]:
    """This environment's variables with its ``bin`` folder first on PATH (and 1 BLAS thread)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("JUPYTER_CONFIG_DIR", None)  # no stray user configuration in a grading run
    # One BLAS thread per kernel: the notebooks' matrices are small, and with threads on a
    # loaded 2-core machine OpenBLAS spins and makes a matmul 10-50x slower.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def run_nbgrader(
    args: Sequence[str], cwd: Path | str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader *args`` in ``cwd``; raise GradingError with its log when it fails."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=nbgrader_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        raise GradingError(f"`nbgrader {' '.join(args)}` ran past {timeout} s in {cwd}") from err
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr)[-4000:]
        raise GradingError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}) in {cwd}:\n{log}")
    return proc


# --- the workspace ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """An nbgrader course folder prepared for one assignment."""

    root: Path
    assignment: str

    @property
    def db_path(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def source_dir(self) -> Path:
        return self.root / "source" / self.assignment

    @property
    def release_dir(self) -> Path:
        """Where generate_assignment wrote the student version inside the workspace."""
        return self.root / "release" / self.assignment

    def submission_dir(self, student: str) -> Path:
        return self.root / "submitted" / student / self.assignment

    def autograded_dir(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment

    @property
    def notebooks(self) -> list[str]:
        """Names (without .ipynb) of the assignment's notebooks."""
        return sorted(p.stem for p in self.source_dir.glob("*.ipynb"))

    @property
    def students(self) -> list[str]:
        """Students with a submission in submitted/."""
        submitted = self.root / "submitted"
        if not submitted.is_dir():
            return []
        return sorted(p.parent.name for p in submitted.glob(f"*/{self.assignment}") if p.is_dir())


#: Repository settings that keep nbgrader away from a gradebook; a workspace needs one.
_DATABASE_OPTIONS = {("GenerateAssignment", "no_database"), ("SaveCells", "enabled")}


def _config_text(ws_root: Path, repo_config: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        '"""Written by course_lib.grading.workspace: a grading workspace, deleted after use."""',
        "c = get_config()  # noqa: F821",
    ]
    for section, options in sorted(repo_config.items()):
        for option, value in sorted(options.items()):
            if section == "CourseDirectory" and option not in ("course_id", "ignore"):
                continue  # paths and the database are this workspace's own
            if (section, option) in _DATABASE_OPTIONS:
                continue  # here the gradebook is wanted: set below
            lines.append(f"c.{section}.{option} = {value!r}")
    lines += [
        "c.GenerateAssignment.no_database = False",
        "c.SaveCells.enabled = True  # records the graded cells and their points in the gradebook",
        f"c.CourseDirectory.root = {str(ws_root)!r}",
        'c.CourseDirectory.source_directory = "source"',
        'c.CourseDirectory.release_directory = "release"',
        'c.CourseDirectory.submitted_directory = "submitted"',
        'c.CourseDirectory.autograded_directory = "autograded"',
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(ws_root / 'gradebook.db')!r}",
    ]
    return "\n".join(lines) + "\n"


def _check_outside(path: Path, repo_root: Path) -> None:
    if path == repo_root or repo_root in path.parents:
        raise GradingError(
            f"grading workspace {path} is inside the repository {repo_root}: grading files "
            "(gradebook.db, submitted/, autograded/) never live there; use a temporary folder"
        )


def prepare_workspace(
    root: Path | str,
    assignment: str,
    *,
    repo_root: Path | str | None = None,
    timeout: float | None = 300,
    in_process: bool = False,
) -> Workspace:
    """Make ``root`` (empty or new, outside the repository) an nbgrader course for ``assignment``.

    Copies ``solutions/<assignment>/`` to ``source/``, writes the configuration and runs
    ``nbgrader generate_assignment`` so that the gradebook knows every graded cell: as a
    subprocess, or ``in_process`` (nbgrader's converter in this Python, which has imported
    nbgrader already: a grading worker).
    """
    repo = Path(repo_root or find_repo_root()).resolve()
    root = Path(root).resolve()
    _check_outside(root, repo)
    source = repo / "solutions" / assignment
    if not any(source.glob("*.ipynb")):
        known = ", ".join(list_assignments(repo)) or "none"
        raise GradingError(f"no assignment {assignment!r} in {repo / 'solutions'} (known: {known})")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise GradingError(f"workspace folder {root} is not empty")
    (root / "nbgrader_config.py").write_text(_config_text(root, load_repo_config(repo)))
    shutil.copytree(
        source,
        root / "source" / assignment,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"),
    )
    ws = Workspace(root, assignment)
    if in_process:
        _generate_in_process(ws)
    else:
        run_nbgrader(["generate_assignment", assignment, "--force"], cwd=root, timeout=timeout)
    return ws


def _generate_in_process(ws: Workspace) -> None:
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ws.root)).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = ws.assignment
    app = GenerateAssignment(coursedir=coursedir, config=config)
    app.force = True
    result = capture_log(app)
    if not result["success"]:
        log = (result.get("log", "") + result.get("error", ""))[-4000:]
        raise GradingError(f"nbgrader generate_assignment failed in {ws.root}:\n{log}")


def add_submission(
    ws: Workspace,
    student: str,
    notebook: Path | str | nbformat.NotebookNode,
    name: str | None = None,
) -> Path:
    """Put a student's notebook (a path or an nbformat notebook) where autograde looks for it.

    ``name`` is the assignment notebook it answers (default: the assignment's only notebook).
    """
    if not student or any(ch in student for ch in "/\\*?[] ") or student.startswith("."):
        raise GradingError(f"invalid student id {student!r}: use letters, digits, '-' and '_'")
    if name is None:
        if len(ws.notebooks) != 1:
            raise GradingError(f"{ws.assignment} has notebooks {ws.notebooks}: pass name=")
        name = ws.notebooks[0]
    dest = ws.submission_dir(student) / f"{name}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, (str, Path)):
        shutil.copyfile(notebook, dest)
    else:
        nbformat.write(notebook, str(dest))
    return dest
