"""Students' submissions: finding them, reading them safely, and undoing what nbgrader must not see.

Accepted forms of ``SUBMISSIONS`` (see the instructors' appendix of the book):

1. **a folder with one sub-folder per student**, named with the student id, holding the notebook
   (``alice/01-activations.ipynb``), or nbgrader's own layout (``alice/01-activations/
   01-activations.ipynb``);
2. **a zip** of such a folder (a single top folder in the zip is entered; unsafe member names,
   links and archives over 2 GB are refused);
3. **an LMS-style flat folder** of files named ``<student><sep><notebook>.ipynb``: the student id
   is everything before the last occurrence of the notebook's name, without the trailing
   separators (``_``, ``-``, ``.``, space). Canvas's ``name_123_456_01-activations.ipynb`` gives
   the id ``name_123_456``. ``id_pattern`` (a regular expression with a ``student`` group, and an
   optional ``notebook`` group) reads other naming schemes.

Folders and flat files may be mixed. Hidden files, ``__MACOSX`` and ``.ipynb_checkpoints`` are
skipped. A student whose notebook is missing or has another name is *ungradable*, with the reason.
Symbolic links are never followed: a student whose folder, notebook or notebook folder is a link
is *ungradable* (the link could point at the solutions, or another student's work), and a linked
extra file is not kept; nothing a link points to is read or copied. A damaged zip (bad CRC,
truncated, encrypted, an unknown compression) is refused with the archive and member named.

``load_notebook`` turns a file into a notebook or a reason (empty file, an image renamed
``.ipynb``, invalid JSON with its line and column, not a notebook). ``normalize`` compares a
submitted notebook with the released one and repairs what students do to it, reporting each
repair: a changed kernelspec, stored outputs, copied (duplicated) graded cells, renamed grade ids,
deleted or moved test and locked cells, edited cell metadata. Edited test and locked *sources* are
left for nbgrader, which restores them from the gradebook (hidden tests included) by checksum;
``normalize`` only reports them (and ``course check`` restores the visible version itself).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import nbformat

#: A notebook file larger than this is not read (bytes).
MAX_NOTEBOOK_BYTES = 200 * 1024 * 1024
#: A zip whose members add up to more than this is refused (bytes).
MAX_ZIP_BYTES = 2 * 1024**3
#: Stored outputs larger than this are mentioned when they are cleared (characters).
BIG_OUTPUTS = 1024 * 1024

_SKIP = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}
_SEPARATORS = "_-. "
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (or a Word/Excel document)",
    b"\x7fELF": "a program",
}


@dataclass
class Submission:
    """What one student handed in, and whether it can be graded."""

    student: str
    files: dict[str, Path] = field(default_factory=dict)  # notebook name -> file to grade
    received: list[Path] = field(default_factory=list)  # every file of this student
    problems: list[str] = field(default_factory=list)  # non-empty: ungradable, with why
    notes: list[str] = field(default_factory=list)
    submitted_at: datetime | None = None  # when the LMS says it was handed in (timezone-aware)
    late: bool = False  # the LMS marks it late (Canvas's LATE), with no time
    lms_id: str | None = None  # the LMS's own id of the student (user, participant), for exports

    @property
    def gradable(self) -> bool:
        return not self.problems


class SubmissionError(ValueError):
    """SUBMISSIONS is not one of the accepted forms."""


# --- collecting --------------------------------------------------------------------------------


def collect(
    path: Path | str,
    notebooks: Sequence[str],
    *,
    assignment: str | None = None,
    unpack_to: Path | str | None = None,
    id_pattern: str | None = None,
    lms: str = "auto",
    tz: tzinfo | None = None,
) -> tuple[list[Submission], list[str]]:
    """Find every student's files in ``path`` (a folder or a zip; see the module docstring).

    ``notebooks`` are the assignment's notebook names (without ``.ipynb``). A zip is unpacked to
    ``unpack_to``. ``lms``: the download's layout (``lms.LAYOUTS``; ``auto`` detects it, and the
    first warning says which). Returns the submissions sorted by student id, and warnings about
    files that belong to no student.
    """
    from course_lib.grading import lms as _lms

    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            if path.suffix.lower() == ".zip":
                raise SubmissionError(
                    f"{path} is not a readable zip archive (truncated or damaged?): download it again"
                )
            raise SubmissionError(f"{path} is neither a folder nor a zip file")
        if unpack_to is None:
            raise SubmissionError("a zip needs a folder to unpack to")
        path = _descend(safe_unzip(path, Path(unpack_to)), notebooks, assignment)
    elif not path.is_dir():
        raise SubmissionError(f"{path} is neither a folder nor a zip file")
    try:
        pattern = re.compile(id_pattern) if id_pattern else None
    except re.error as err:
        raise SubmissionError(
            f"--id-pattern {id_pattern!r} is not a regular expression ({err}); for example "
            "'(?P<student>[^_]+)_.*' takes everything before the first underscore"
        ) from None
    if pattern is not None and "student" not in pattern.groupindex:
        raise SubmissionError("--id-pattern needs a (?P<student>...) group, e.g. '(?P<student>[^_]+)_.*'")

    if lms not in ("auto", *_lms.LAYOUTS):
        raise SubmissionError(f"--lms must be auto or one of {', '.join(_lms.LAYOUTS)}, not {lms!r}")
    layout = _lms.detect(path) if lms == "auto" else lms
    if layout != "folders" and pattern is None:
        try:
            subs_lms, warnings = _collect_lms(path, layout, notebooks, assignment, tz)
        except _lms.LayoutError as err:
            raise SubmissionError(str(err)) from None
        how = "detected" if lms == "auto" else "as asked (--lms)"
        return subs_lms, [f"read as a {layout} download ({how})", *warnings]

    subs: dict[str, Submission] = {}
    warnings: list[str] = [] if lms != "auto" else ["read as one folder per student (detected)"]
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if _skipped(entry.name):
            continue
        if entry.is_symlink():
            student = entry.name if not entry.name.endswith(".ipynb") else None
            parsed = None if student else _parse_flat(entry.name, notebooks, pattern)
            student = student or (parsed[0] if parsed else None)
            if student is None:
                warnings.append(f"{entry.name}: a symbolic link, not followed: ignored")
                continue
            sub = subs.setdefault(student, Submission(student))
            sub.problems.append(
                f"{entry.name} is a symbolic link (to {os.readlink(entry)!r}): links are never followed; "
                "hand in the files themselves"
            )
            continue
        if entry.is_dir():
            sub = subs.setdefault(entry.name, Submission(entry.name))
            _collect_folder(sub, entry, notebooks, assignment)
        elif entry.is_file() and not entry.is_symlink():
            parsed = _parse_flat(entry.name, notebooks, pattern)
            if parsed is None:
                warnings.append(f"{entry.name}: no student id or notebook name in the file name: ignored")
                continue
            student, name = parsed
            sub = subs.setdefault(student, Submission(student))
            sub.received.append(entry)
            if name is None:
                sub.notes.append(f"{entry.name!r} is not named like a notebook of the assignment")
            elif name in sub.files:
                sub.notes.append(f"{entry.name!r} ignored: {sub.files[name].name!r} is graded")
            else:
                sub.files[name] = entry
        else:
            warnings.append(f"{entry.name}: not a regular file or folder: ignored")
    for sub in subs.values():
        _check_complete(sub, notebooks)
        problem = student_id_problem(sub.student)
        if problem:
            sub.problems.insert(0, problem)
    return [subs[k] for k in sorted(subs)], warnings


def _collect_lms(path: Path, layout: str, notebooks: Sequence[str], assignment: str | None, tz):
    """Submissions from an LMS download: one per student, the newest attempt of each notebook."""
    from course_lib.grading import lms as _lms

    attempts, warnings = _lms.read(path, layout, notebooks, tz)
    subs: dict[str, Submission] = {}
    groups: dict[tuple[str, str | None], list] = {}
    for a in attempts:
        key = (a.student, _strip_notebook(a.name) if a.path.is_file() else None)
        groups.setdefault(key, []).append(a)
    for (student, _), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        items.sort(key=_lms.Attempt.order)
        newest, older = items[-1], items[:-1]
        sub = subs.setdefault(student, Submission(student))
        sub.lms_id = sub.lms_id or newest.lms_id
        if newest.submitted_at and (sub.submitted_at is None or newest.submitted_at > sub.submitted_at):
            sub.submitted_at = newest.submitted_at
        sub.late = sub.late or newest.late
        sub.notes += [n for n in newest.notes if n not in sub.notes]
        for old in older:
            when = (
                old.submitted_at.isoformat(timespec="minutes")
                if old.submitted_at
                else f"attempt {old.attempt}"
            )
            sub.notes.append(f"older submission {old.path.name!r} ({when}) not graded: the newest is")
            sub.received.extend([old.path] if old.path.is_file() else _walk(old.path)[0])
        if newest.path.is_dir():
            _collect_folder(sub, newest.path, notebooks, assignment)
            continue
        sub.received.append(newest.path)
        name = _strip_notebook(newest.name)
        if name in notebooks and name not in sub.files:
            sub.files[name] = newest.path
        else:
            sub.notes.append(f"{newest.path.name!r} is not named like a notebook of the assignment")
    for sub in subs.values():
        _check_complete(sub, notebooks)
        problem = student_id_problem(sub.student)
        if problem:
            sub.problems.insert(0, problem)
    return [subs[k] for k in sorted(subs)], warnings


def _strip_notebook(name: str | None) -> str | None:
    if name is None:
        return None
    from course_lib.grading.lms import _strip_resubmission

    return _strip_resubmission(name)[0]


def student_id_problem(student: str) -> str | None:
    """Why ``student`` cannot be used as an id (a folder name in the outputs), or None."""
    if not student.strip():
        return "empty student id"
    if student.startswith(".") or "/" in student or "\\" in student:
        return f"invalid student id {student!r}"
    if any(ord(ch) < 32 for ch in student):
        return f"invalid student id {student!r} (control characters)"
    return None


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIP


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """(regular files, symbolic links) under ``folder``, links not followed, hidden parts skipped."""
    files, links = [], []
    for root, dirs, names in os.walk(folder, followlinks=False):
        here = Path(root)
        for d in list(dirs):
            if (here / d).is_symlink():
                links.append(here / d)
                dirs.remove(d)
            elif _skipped(d):
                dirs.remove(d)
        for n in names:
            p = here / n
            if _skipped(n):
                continue
            if p.is_symlink():
                links.append(p)
            elif p.is_file():
                files.append(p)
    return sorted(files), sorted(links)


def _collect_folder(sub: Submission, folder: Path, notebooks: Sequence[str], assignment: str | None):
    files, links = _walk(folder)
    sub.received.extend(files)
    wanted = {f"{name}.ipynb" for name in notebooks} | ({assignment} if assignment else set())
    for link in links:
        rel = link.relative_to(folder)
        target = os.readlink(link)
        if link.name in wanted or link.suffix == ".ipynb":
            sub.problems.append(
                f"{rel} is a symbolic link (to {target!r}): links are never followed; "
                "hand in the notebook itself"
            )
        else:
            sub.notes.append(f"{rel} is a symbolic link (to {target!r}): not followed, not kept")
    for name in notebooks:
        candidates = [folder / f"{name}.ipynb"]
        if assignment:
            candidates.append(folder / assignment / f"{name}.ipynb")
        found = [c for c in candidates if c in files]
        if found:
            sub.files.setdefault(name, found[0])
            if len(found) > 1:
                sub.notes.append(f"two copies of {name}.ipynb: {found[0].relative_to(folder)} is graded")


def _skipped_path(path: Path, top: Path) -> bool:
    return any(_skipped(part) for part in path.relative_to(top).parts)


def _check_complete(sub: Submission, notebooks: Sequence[str]) -> None:
    for name in notebooks:
        if name in sub.files:
            continue
        others = sorted({p.name for p in sub.received if p.suffix == ".ipynb"} - {f"{name}.ipynb"})
        if others:
            sub.problems.append(
                f"wrong file name: expected {name}.ipynb, found {', '.join(repr(o) for o in others)} "
                f"(rename it to {name}.ipynb)"
            )
        else:
            held = sorted(p.name for p in sub.received)
            what = f"found only {', '.join(repr(h) for h in held[:5])}" if held else "the folder is empty"
            sub.problems.append(f"missing notebook: no {name}.ipynb ({what})")


def _parse_flat(filename: str, notebooks: Sequence[str], pattern: re.Pattern | None):
    """(student, notebook name or None) of a flat LMS file name, or None if it has no student."""
    if pattern is not None:
        m = pattern.fullmatch(filename)
        if not m or not m.group("student"):
            return None
        name = m.groupdict().get("notebook")
        if name is None:
            name = next((n for n in notebooks if filename.endswith(f"{n}.ipynb")), None)
        elif name.removesuffix(".ipynb") in notebooks:
            name = name.removesuffix(".ipynb")
        else:
            name = None
        return m.group("student"), name
    best = None
    for name in sorted(notebooks, key=len, reverse=True):
        at = filename.rfind(name)
        if at > 0:
            best = (at, name)
            break
    if best is None:
        return None
    at, name = best
    student = filename[:at].rstrip(_SEPARATORS)
    if not student:
        return None
    rest = filename[at + len(name) :]
    return student, (name if rest == ".ipynb" else None)


def safe_unzip(archive: Path | str, dest: Path | str) -> Path:
    """Unpack ``archive`` into ``dest``, refusing absolute or ``..`` names, links and bombs."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise SubmissionError(f"{archive} is not a readable zip archive: {err}") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_BYTES:
            raise SubmissionError(f"{archive} unpacks to {total / 1e9:.1f} GB: refused")
        for info in infos:
            name = info.filename
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise SubmissionError(f"{archive} holds an unsafe path {name!r}: refused")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SubmissionError(f"{archive} holds a symbolic link {name!r}: refused")
            if info.flag_bits & 0x1:
                raise SubmissionError(f"{archive}: {name!r} is encrypted (password-protected zip): refused")
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
                raise SubmissionError(
                    f"{archive} is damaged: {name!r} cannot be unpacked ({type(err).__name__}: {err}); "
                    "download the archive again"
                ) from None
    return dest


def _descend(root: Path, notebooks: Sequence[str], assignment: str | None) -> Path:
    """Enter lone top folders of an unpacked zip (``submissions/alice/...``), but not a lone
    student folder (one that holds the notebook itself)."""
    while True:
        entries = [p for p in root.iterdir() if not _skipped(p.name)]
        if len(entries) != 1 or not entries[0].is_dir():
            return root
        only = entries[0]
        holds = {p.name for p in only.iterdir()}
        if any(f"{n}.ipynb" in holds for n in notebooks) or (assignment and assignment in holds):
            return root
        root = only


# --- reading -----------------------------------------------------------------------------------


def load_notebook(path: Path | str) -> tuple[nbformat.NotebookNode | None, str | None, list[str]]:
    """(notebook, None, notes), or (None, why it is not a gradable notebook, notes)."""
    path = Path(path)
    notes: list[str] = []
    size = path.stat().st_size
    if size == 0:
        return None, f"{path.name} is an empty file (0 bytes)", notes
    if size > MAX_NOTEBOOK_BYTES:
        return (
            None,
            f"{path.name} is too large ({size / 1e6:.0f} MB; limit {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB)",
            notes,
        )
    raw = path.read_bytes()
    for magic, what in _MAGIC.items():
        if raw.startswith(magic):
            return None, f"{path.name} is not a notebook: it is {what} renamed to .ipynb", notes
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, f"{path.name} is not a notebook: not UTF-8 text", notes
    if not text.strip():
        return None, f"{path.name} is empty (only white space)", notes
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return (
            None,
            f"{path.name} is not valid JSON ({err.msg}, line {err.lineno}, column {err.colno}): "
            "re-download it, or restore it from your last checkpoint",
            notes,
        )
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        return None, f"{path.name} is JSON but not a notebook (no 'cells' or 'nbformat')", notes
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises many kinds
        return None, f"{path.name} is not a readable notebook: {_first_line(err)}", notes
    if data.get("nbformat") != 4:
        notes.append(f"converted from nbformat {data.get('nbformat')} to 4")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        try:
            nb = _rebuild(nb)
            nbformat.validate(nb)
            notes.append("the notebook's structure was invalid and was repaired")
        except Exception as err:
            return None, f"{path.name} is not a valid notebook: {_first_line(err)}", notes
    return nb, None, notes


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def _rebuild(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A fresh v4 notebook with the cells' type, source and metadata only."""
    new = nbformat.v4.new_notebook(metadata=dict(nb.get("metadata", {})))
    for cell in nb.get("cells", []):
        kind = cell.get("cell_type")
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        meta = dict(cell.get("metadata", {}))
        if kind == "code":
            new.cells.append(nbformat.v4.new_code_cell(source, metadata=meta))
        elif kind == "markdown":
            new.cells.append(nbformat.v4.new_markdown_cell(source, metadata=meta))
        else:
            new.cells.append(nbformat.v4.new_raw_cell(source, metadata=meta))
    return new


# --- undoing what students do to the notebook -------------------------------------------------


def nbgrader_meta(cell: Any) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def cell_role(cell: Any) -> str | None:
    """ "answer", "test", "locked", or None for an ordinary cell."""
    meta = nbgrader_meta(cell)
    if not meta.get("grade_id"):
        return None
    if meta.get("solution"):
        return "answer"
    if meta.get("grade"):
        return "test"
    if meta.get("locked") or meta.get("task"):
        return "locked"
    return None


def _same_source(a: str, b: str) -> bool:
    """Equal up to trailing blanks, and up to a hidden-tests block (the instructor's copy)."""

    def norm(s: str) -> list[str]:
        lines, hiding = [], False
        for line in s.strip().splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                hiding = True
            elif hiding and "END HIDDEN TESTS" in line:
                hiding = False
            elif not hiding:
                lines.append(line.rstrip())
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(a) == norm(b)


def output_chars(nb: nbformat.NotebookNode) -> int:
    total = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) or []:
            total += len(json.dumps(out))
    return total


def foreign_notebook(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> str | None:
    """Why ``nb`` is not a copy of the assignment notebook at all (no cell of it left), or None."""
    ids = {nbgrader_meta(c).get("grade_id") for c in nb.cells}
    wanted = [nbgrader_meta(c)["grade_id"] for c in release.cells if cell_role(c)]
    if wanted and not ids & set(wanted):
        return (
            "none of the assignment's cells is in this notebook (a new notebook with copied code?): "
            "put the answers in the assignment's own notebook"
        )
    return None


def normalize(
    nb: nbformat.NotebookNode,
    release: nbformat.NotebookNode,
    *,
    restore_sources: bool = False,
) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of ``nb`` repaired against the released notebook, and what was repaired.

    ``restore_sources``: also put back the released source of edited test and locked cells (for
    ``course check``; when grading, nbgrader does it with the hidden tests included).
    """
    nb = copy.deepcopy(nb)
    notes: list[str] = []
    ref = {nbgrader_meta(c)["grade_id"]: c for c in release.cells if cell_role(c)}
    order = list(ref)

    kernel = release.metadata.get("kernelspec")
    got = nb.metadata.get("kernelspec")
    if kernel and (not isinstance(got, dict) or got.get("name") != kernel.get("name")):
        name = got.get("name") if isinstance(got, dict) else None
        notes.append(f"kernelspec {name!r} instead of {kernel.get('name')!r}: reset")
        nb.metadata["kernelspec"] = copy.deepcopy(kernel)

    stored = output_chars(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if stored > BIG_OUTPUTS:
        notes.append(f"stored outputs ({stored / 1e6:.1f} MB) cleared before grading")

    # Unknown and duplicated grade ids: the cell runs as ordinary code.
    positions: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if not gid:
            continue
        if gid not in ref:
            notes.append(f"cell {i + 1} has an unknown grade id {gid!r} (renamed?): graded as ordinary code")
            cell.metadata.pop("nbgrader", None)
            continue
        positions.setdefault(gid, []).append(i)
    for gid, where in positions.items():
        if len(where) > 1:
            notes.append(
                f"{_kind(ref[gid])} {gid} appears {len(where)} times (copied): the last copy is "
                "graded, the others run as ordinary code"
            )
            for i in where[:-1]:
                nb.cells[i].metadata.pop("nbgrader", None)

    # Metadata and cell types of the known cells are the release's; edits are reported.
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if not gid:
            continue
        original = ref[gid]
        if cell.cell_type != original.cell_type:
            notes.append(f"{_kind(original)} {gid} was changed to a {cell.cell_type} cell: changed back")
            _set_type(cell, original.cell_type)
        if _meta_essence(nbgrader_meta(cell)) != _meta_essence(nbgrader_meta(original)):
            notes.append(f"the nbgrader metadata of {_kind(original)} {gid} was edited: restored")
        cell.metadata["nbgrader"] = copy.deepcopy(nbgrader_meta(original))
        for key in ("editable", "deletable"):
            if key in original.metadata:
                cell.metadata[key] = original.metadata[key]
        if cell_role(original) in ("test", "locked") and not _same_source(cell.source, original.source):
            notes.append(f"{_kind(original)} {gid} was edited: the original is restored for grading")
            if restore_sources:
                cell.source = original.source

    # Deleted and moved test/locked cells go back after the cell they follow in the release.
    present = {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}
    for gid in order:
        if gid not in present and cell_role(ref[gid]) == "answer":
            notes.append(f"answer cell {gid} is missing (deleted?): the tests that use it fail")
    for k, gid in enumerate(order):
        original = ref[gid]
        if cell_role(original) == "answer":
            continue
        anchor = next((p for p in reversed(order[:k]) if p in present), None)
        index = _index(nb, gid)
        anchor_index = _index(nb, anchor) if anchor else -1
        if index is None:
            cell = copy.deepcopy(original)
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            nb.cells.insert(anchor_index + 1, cell)
            present.add(gid)
            notes.append(f"{_kind(original)} {gid} was deleted: the original is put back")
        elif index < anchor_index:
            cell = nb.cells.pop(index)
            nb.cells.insert(anchor_index, cell)  # anchor moved up by one
            notes.append(f"{_kind(original)} {gid} was moved before {anchor}: put back after it")
    for i, cell in enumerate(nb.cells):  # fresh, unique cell ids (nbformat 4.5)
        if "id" in cell or nb.nbformat_minor >= 5:
            cell["id"] = f"cell-{i}"
    return nb, notes


def _kind(cell: Any) -> str:
    return {"answer": "answer cell", "test": "test cell", "locked": "locked cell"}.get(
        cell_role(cell) or "", "cell"
    )


def _meta_essence(meta: dict) -> dict:
    return {k: meta.get(k) for k in ("grade", "solution", "locked", "task", "points", "grade_id")}


def _index(nb: nbformat.NotebookNode, gid: str | None) -> int | None:
    for i, cell in enumerate(nb.cells):
        if gid is not None and nbgrader_meta(cell).get("grade_id") == gid:
            return i
    return None


def _set_type(cell: Any, kind: str) -> None:
    cell.cell_type = kind
    if kind == "code":
        cell.outputs, cell.execution_count = [], None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
