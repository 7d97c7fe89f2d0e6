"""``course check NOTEBOOK``: the student's self-check, before submitting.

It runs the notebook from top to bottom in a fresh kernel, the way the grader will, but with the
*released* version of every test and locked cell (a test cell edited to ``pass`` is checked with
the original; a deleted one is put back) and reports, part by part, which visible tests pass.
The released version comes from the course repository when the notebook is in a clone, else from
the copies installed with the package (``course_lib/_exercises/``, written by ``course release``),
so the check is the same on a laptop, Colab or a JupyterHub. The grader's hidden checks are not
run (they are the instructor's): passing here is necessary, not sufficient. Warnings name edited,
deleted, copied or moved test cells, renamed grade ids, a renamed file, a changed kernelspec and
answers that call ``course_lib``, torch or scipy (the grader gives those no credit). The kernel
talks to this process over IPC sockets in a private folder, never TCP.

Exit status: 0 when every visible test passes and there is no warning; 1 when a test fails or
there is a warning; 2 when the notebook cannot be read or run. (``nbgrader validate`` always
exits 0.)
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_lib.grading.submissions import (
    cell_role,
    foreign_notebook,
    load_notebook,
    nbgrader_meta,
    normalize,
)
from course_lib.grading.workspace import PACKAGE_ROOT, find_repo_root, nbgrader_env

#: The released notebooks installed with the package (``course release`` writes them).
PACKAGED = Path(__file__).resolve().parents[1] / "_exercises"


@dataclass
class PartResult:
    grade_id: str
    points: float
    passed: bool
    error: str = ""  # "AssertionError: ..." (first line), empty when passed


@dataclass
class CheckReport:
    notebook: Path
    release: Path | None
    parts: list[PartResult] = field(default_factory=list)
    answer_errors: list[tuple[str, str]] = field(default_factory=list)  # (answer cell, error)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.parts) and all(p.passed for p in self.parts) and not self.warnings

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def text(self) -> str:
        lines = [f"course check {self.notebook.name}"]
        if self.release is None:
            lines.append("  (no released notebook of this name is known: the notebook's own tests are run)")
        width = max([len(p.grade_id) for p in self.parts] + [4])
        for p in self.parts:
            mark = "PASS" if p.passed else "FAIL"
            line = f"  {mark}  {p.grade_id:<{width}}  {p.points:g} pt"
            if p.error:
                line += f"   {p.error}"
            lines.append(line)
        for gid, err in self.answer_errors:
            lines.append(f"  answer {gid}: {err}")
        for w in self.warnings:
            lines.append(f"  WARNING: {w}")
        passed = [p for p in self.parts if p.passed]
        got = sum(p.points for p in passed)
        total = sum(p.points for p in self.parts)
        lines.append(
            f"visible tests: {len(passed)}/{len(self.parts)} parts pass ({got:g}/{total:g} points"
            " if the grader's hidden checks agree)."
        )
        if self.ok:
            lines.append(
                "All visible tests pass. When grading, the judge checks every part again on hidden inputs."
            )
        elif self.warnings:
            lines.append(
                "Fix the warnings before you submit: edited test cells change nothing (the grader "
                "checks every part itself), a renamed file is not graded at all."
            )
        return "\n".join(lines)


class CheckError(RuntimeError):
    """The notebook cannot be checked (unreadable, no graded cells, the kernel fails)."""


def find_release(notebook: Path, nb: nbformat.NotebookNode) -> Path | None:
    """exercises/<name>/<name>.ipynb of the course repository that matches ``notebook``: by file
    name, else by the set of grade ids (a renamed download such as ``01-activations (1)``)."""
    roots = []
    try:
        roots.append(find_repo_root(notebook.parent))
    except Exception:
        pass
    roots.append(PACKAGE_ROOT)
    ids = {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}
    folders = [(root / "exercises", "*/*.ipynb") for root in roots] + [(PACKAGED, "*.ipynb")]
    for exercises, pattern in folders:
        if not exercises.is_dir():
            continue
        for direct in (
            exercises / notebook.stem / f"{notebook.stem}.ipynb",
            exercises / f"{notebook.stem}.ipynb",
        ):
            if direct.is_file():
                return direct
        for candidate in sorted(exercises.glob(pattern)):
            ref = nbformat.read(str(candidate), as_version=4)
            ref_ids = {nbgrader_meta(c).get("grade_id") for c in ref.cells} - {None}
            if ref_ids and len(ids & ref_ids) >= len(ref_ids) / 2:
                return candidate
    return None


def check_notebook(path: Path | str, *, timeout: int = 60, kernel_name: str = "python3") -> CheckReport:
    """Run ``path``'s visible tests as the grader would and report each graded part."""
    from nbclient import NotebookClient

    path = Path(path)
    if not path.is_file():
        raise CheckError(f"{path} does not exist")
    nb, problem, _ = load_notebook(path)
    if problem:
        raise CheckError(problem)
    release_path = find_release(path, nb)
    report = CheckReport(path, release_path)
    if release_path is not None:
        release = nbformat.read(str(release_path), as_version=4)
        foreign = foreign_notebook(nb, release)
        if foreign:
            raise CheckError(foreign)
        nb, notes = normalize(nb, release, restore_sources=True)
        report.warnings += [n for n in notes if not n.startswith("stored outputs")]
        if path.name != release_path.name:
            report.warnings.append(
                f"this file is named {path.name}: submit it as {release_path.name}, or the grader cannot "
                "find it (a notebook with another name is not graded)"
            )
        if nb.metadata.get("kernelspec", {}).get("name") != release.metadata.get("kernelspec", {}).get(
            "name"
        ):
            pass  # normalize reported it
        report.warnings += _delegation_warnings(nb)
    else:
        report.warnings.append(
            "no released version of this notebook is known here, so edited or deleted test cells cannot "
            "be detected: install the course package (see the notebook's first cell) or run this in a clone"
        )
    tests = [c for c in nb.cells if cell_role(c) == "test"]
    if not tests:
        raise CheckError(f"{path.name} has no graded test cells: is it an assignment notebook?")

    workdir = Path(tempfile.mkdtemp(prefix="course-check-"))
    try:
        for item in path.parent.iterdir():  # data files next to the notebook, not the notebook
            if item.is_file() and item.suffix != ".ipynb" and item.stat().st_size < 100e6:
                shutil.copy(item, workdir / item.name)
        from jupyter_client.manager import AsyncKernelManager

        (workdir / ".ipc").mkdir(mode=0o700)
        km = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(workdir / ".ipc" / "k"))
        client = NotebookClient(
            nb, km=km, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
            interrupt_on_timeout=True, resources={"metadata": {"path": str(workdir)}},
        )  # fmt: skip
        import os

        saved = dict(os.environ)
        os.environ.update({k: v for k, v in nbgrader_env().items() if k.endswith("_NUM_THREADS")})
        try:
            client.execute()
        except Exception as err:  # the kernel died or could not start
            raise CheckError(f"the notebook could not be run: {type(err).__name__}: {err}") from err
        finally:
            os.environ.clear()
            os.environ.update(saved)
            from jupyter_core.utils import run_sync

            if km.has_kernel:  # our kernel manager: nbclient leaves the kernel to us
                run_sync(km.shutdown_kernel)(now=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for cell in nb.cells:
        role = cell_role(cell)
        if role not in ("test", "answer") or cell.cell_type != "code":
            continue
        error = _first_error(cell)
        meta = nbgrader_meta(cell)
        if role == "test":
            report.parts.append(PartResult(meta["grade_id"], float(meta.get("points", 0)), not error, error))
        elif error:
            report.answer_errors.append((meta["grade_id"], error))
    return report


def _delegation_warnings(nb: nbformat.NotebookNode) -> list[str]:
    """The static check the grader runs, on every function an answer cell defines."""
    import ast

    from course_lib.grading.integrity import delegation_problems
    from course_lib.grading.judge import code_cells

    sources, trusted, labels = code_cells(nb)
    names = []
    for cell in nb.cells:
        if cell_role(cell) != "answer" or cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        names += [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    warnings = []
    for name in names:
        found = delegation_problems(sources, [name], trusted=trusted, labels=labels)
        if found:
            warnings.append(
                f"{name} delegates ({'; '.join(found[:2])}): answers that call course_lib, torch, scipy or "
                "scikit-learn get no credit when graded"
            )
    return warnings


def _first_error(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip().splitlines()
            text = f"{out.get('ename', 'Error')}: {value[0] if value else ''}".strip().rstrip(":")
            return text if len(text) <= 160 else text[:157] + "..."
    return ""
