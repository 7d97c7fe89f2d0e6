"""Submissions as learning-management systems download them: who handed in what, and when.

``course grade --lms NAME`` (default ``auto``: ``detect`` says which it found) reads these layouts;
each becomes a list of ``Attempt``s, and ``choose`` keeps one per student, the newest (by its time,
else its attempt number), listing the others in the student's notes:

``canvas``
    Flat files ``<name>_[LATE_]<user id>_<submission id>_<file>``; a resubmission's file name
    gets ``-1``, ``-2``... before ``.ipynb``. The student is ``<name>`` (with the user id when two
    students share a name); ``LATE`` is all Canvas says about time.
``moodle``
    One folder per participant, ``<Full Name>_<participant id>_assignsubmission_file_``. The
    student is the full name; the participant id is kept for the export.
``blackboard``
    Flat files ``<assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>`` (and a ``.txt``
    receipt per attempt). The time is the LMS's local time (``tz``).
``brightspace``
    Folders or files ``<n>-<m> - <Full Name> - <Mon D, YYYY HMM AM>[ - <file>]`` (and an
    ``index.html``). Local time (``tz``).
``gradescope``
    Folders ``submission_<id>/`` and ``submission_metadata.yml`` (submitters' names, student
    ids, ``created_at``).
``exchange``
    nbgrader's exchange: ``inbound/<student>+<assignment>+<timestamp>+<random>/`` folders, or a
    ``submitted/<student>/<assignment>/`` tree; each with nbgrader's ``timestamp.txt``.
``folders``
    One folder per student (or LMS-style flat files named ``<student>_<notebook>.ipynb``, read
    with ``--id-pattern``): ``submissions.collect``'s own rules. No times.

Times are timezone-aware (``datetime`` with ``tzinfo``); a naive time of the LMS is read in
``tz`` (default: this machine's zone), and the notes say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

LAYOUTS = ("canvas", "moodle", "blackboard", "brightspace", "gradescope", "exchange", "folders")

CANVAS = re.compile(r"^(?P<name>[^_]+)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<sub>\d+)_(?P<file>.+)$", re.I)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?:file|onlinetext)_?$")
BLACKBOARD = re.compile(
    r"^(?P<assignment>.+?)_(?P<user>[^_]+)_attempt_(?P<time>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:_(?P<file>.+))?$"
)
BRIGHTSPACE = re.compile(
    r"^(?P<sub>\d+-\d+) - (?P<name>.+?) ?- "
    r"(?P<time>[A-Z][a-z]{2} \d{1,2}, \d{4} \d{3,4} [AP]M)(?: - (?P<file>.+))?$"
)
EXCHANGE_INBOUND = re.compile(r"^(?P<student>[^+]+)\+(?P<assignment>[^+]+)\+(?P<time>[^+]+)(?:\+.*)?$")
RESUBMITTED = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)$")


class LayoutError(ValueError):
    """The download is not in the layout asked for, or in none that is known; the message says why."""


@dataclass
class Attempt:
    """One hand-in of one student, as the LMS names it."""

    student: str
    path: Path  # a notebook file, or a folder holding the student's files
    submitted_at: datetime | None = None
    late: bool = False  # what the LMS says, when it says nothing more (Canvas's LATE)
    attempt: int = 0  # resubmission number when there is no time
    lms_id: str | None = None  # user / participant id, for exports
    name: str | None = None  # the notebook's name as handed in (flat files), without LMS prefixes
    notes: list[str] = field(default_factory=list)

    def order(self) -> tuple:
        ts = self.submitted_at.timestamp() if self.submitted_at else float("-inf")
        return (ts, self.attempt, str(self.path))


def _names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def detect(path: Path) -> str:
    """The layout of the download folder ``path`` (see the module docstring)."""
    names = _names(path)
    if (
        (path / "submitted").is_dir()
        or (path / "inbound").is_dir()
        or (names and all(EXCHANGE_INBOUND.match(n) for n in names) and any("+" in n for n in names))
    ):
        return "exchange"
    if "submission_metadata.yml" in names:
        return "gradescope"
    scores = {
        "moodle": sum(bool(MOODLE.match(n)) and (path / n).is_dir() for n in names),
        "canvas": sum(bool(CANVAS.match(n)) and (path / n).is_file() for n in names),
        "blackboard": sum(bool(BLACKBOARD.match(n)) for n in names),
        "brightspace": sum(bool(BRIGHTSPACE.match(n)) for n in names),
    }
    best = max(scores, key=scores.get)
    relevant = [n for n in names if n not in ("index.html", "README.txt")]
    if scores[best] and scores[best] >= len(relevant) / 2:
        return best
    return "folders"


def _local(naive: datetime, tz: tzinfo | None) -> datetime:
    return naive.replace(tzinfo=tz) if tz else naive.astimezone()


def _strip_resubmission(filename: str) -> tuple[str, int]:
    """``01-activations-2.ipynb`` -> (``01-activations``, 2); ``01-activations.ipynb`` -> (..., 0)."""
    stem = filename[:-6] if filename.endswith(".ipynb") else filename
    m = RESUBMITTED.match(stem)
    if m:
        return m.group("stem"), int(m.group("n"))
    return stem, 0


def read(
    path: Path, layout: str, notebooks: Sequence[str], tz: tzinfo | None = None
) -> tuple[list[Attempt], list[str]]:
    """Every attempt in the download ``path`` of ``layout`` (not ``folders``), and warnings about
    files that belong to nobody."""
    reader = {
        "canvas": _canvas, "moodle": _moodle, "blackboard": _blackboard, "brightspace": _brightspace,
        "gradescope": _gradescope, "exchange": _exchange,
    }.get(layout)  # fmt: skip
    if reader is None:
        raise LayoutError(f"unknown LMS layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    return reader(path, notebooks, tz)


def _canvas(path, notebooks, tz):
    attempts, warnings = [], []
    for n in _names(path):
        m = CANVAS.match(n)
        p = path / n
        if not m or not p.is_file():
            warnings.append(
                f"{n}: not named as Canvas names submissions (name_[LATE_]user_submission_file): ignored"
            )
            continue
        stem, again = _strip_resubmission(m.group("file"))
        if stem not in notebooks and stem.rsplit("-", 1)[0] in notebooks:
            stem = stem.rsplit("-", 1)[0]
        late = bool(m.group("late"))
        attempts.append(Attempt(m.group("name"), p, None, late, again, m.group("user"), f"{stem}.ipynb",
                                [f"Canvas marks {n} late"] if late else []))  # fmt: skip
    return _unique_names(attempts), warnings


def _unique_names(attempts: list[Attempt]) -> list[Attempt]:
    """Two people with one name (different LMS ids) become name-id and name-id."""
    ids: dict[str, set[str]] = {}
    for a in attempts:
        ids.setdefault(a.student, set()).add(a.lms_id or "")
    for a in attempts:
        if len(ids[a.student]) > 1:
            a.notes.append(f"two students are named {a.student!r}: told apart by their LMS id")
            a.student = f"{a.student}-{a.lms_id}"
    return attempts


def _moodle(path, notebooks, tz):
    attempts, warnings = [], []
    for n in _names(path):
        m = MOODLE.match(n)
        if not m or not (path / n).is_dir():
            warnings.append(f"{n}: not a Moodle submission folder (Name_ID_assignsubmission_file_): ignored")
            continue
        attempts.append(Attempt(m.group("name").strip(), path / n, lms_id=m.group("id")))
    return _unique_names(attempts), warnings


def _blackboard(path, notebooks, tz):
    attempts, warnings = [], []
    for n in _names(path):
        m = BLACKBOARD.match(n)
        if not m:
            warnings.append(f"{n}: not named as Blackboard names attempts: ignored")
            continue
        if n.endswith(".txt") and not m.group("file"):
            continue  # the receipt of the attempt
        if m.group("file") is None or not n.endswith(".ipynb"):
            if not n.endswith(".txt"):
                warnings.append(f"{n}: a Blackboard file that is not a notebook: ignored")
            continue
        when = _local(datetime.strptime(m.group("time"), "%Y-%m-%d-%H-%M-%S"), tz)
        note = [] if tz else ["Blackboard's time read in this machine's time zone"]
        attempts.append(Attempt(m.group("user"), path / n, when, lms_id=m.group("user"), name=m.group("file"),
                                notes=note))  # fmt: skip
    return attempts, warnings


def _brightspace(path, notebooks, tz):
    attempts, warnings = [], []
    for n in _names(path):
        if n == "index.html":
            continue
        m = BRIGHTSPACE.match(n)
        if not m:
            warnings.append(f"{n}: not named as Brightspace names submissions: ignored")
            continue
        when = _local(datetime.strptime(m.group("time"), "%b %d, %Y %I%M %p"), tz)
        p = path / n
        attempts.append(Attempt(m.group("name").strip(), p, when, lms_id=m.group("sub").split("-")[0],
                                name=m.group("file") if p.is_file() else None))  # fmt: skip
    return _unique_names(attempts), warnings


def _gradescope(path, notebooks, tz):
    import yaml

    meta = yaml.safe_load((path / "submission_metadata.yml").read_text()) or {}
    attempts, warnings = [], []
    for key, info in meta.items():
        folder = path / str(key)
        if not folder.is_dir():
            warnings.append(f"{key}: in submission_metadata.yml but not in the download")
            continue
        submitters = (info or {}).get(":submitters") or (info or {}).get("submitters") or [{}]
        who = submitters[0]
        student = str(who.get(":name") or who.get("name") or key)
        created = (info or {}).get(":created_at") or (info or {}).get("created_at")
        when = (
            created
            if isinstance(created, datetime)
            else (datetime.fromisoformat(str(created)) if created else None)
        )
        if when is not None and when.tzinfo is None:
            when = _local(when, tz)
        sid = who.get(":sid") or who.get("sid") or who.get(":email") or who.get("email")
        attempts.append(Attempt(student, folder, when, lms_id=str(sid) if sid else None))
    return _unique_names(attempts), warnings


def _timestamp(folder: Path, tz) -> datetime | None:
    """nbgrader's timestamp.txt (``%Y-%m-%d %H:%M:%S.%f %Z``, UTC by default)."""
    file = folder / "timestamp.txt"
    if not file.is_file():
        return None
    text = file.read_text().strip()
    try:
        from dateutil import parser

        when = parser.parse(text)
    except (ValueError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _exchange(path, notebooks, tz):
    attempts, warnings = [], []
    root = path / "inbound" if (path / "inbound").is_dir() else path
    if (path / "submitted").is_dir():
        root = path / "submitted"
        for student_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            folders = [d for d in student_dir.iterdir() if d.is_dir()]
            for d in folders or [student_dir]:
                attempts.append(Attempt(student_dir.name, d, _timestamp(d, tz)))
        return attempts, warnings
    for n in _names(root):
        m = EXCHANGE_INBOUND.match(n)
        if not m or not (root / n).is_dir():
            warnings.append(f"{n}: not an nbgrader exchange submission (student+assignment+time): ignored")
            continue
        when = _timestamp(root / n, tz)
        if when is None:
            try:
                from dateutil import parser

                when = parser.parse(m.group("time").replace(" UTC", ""))
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
            except (ValueError, OverflowError):
                when = None
        attempts.append(Attempt(m.group("student"), root / n, when))
    return attempts, warnings


def choose(attempts: list[Attempt]) -> dict[str, tuple[Attempt, list[Attempt]]]:
    """{student: (the newest attempt, the older ones)}."""
    by_student: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_student.setdefault(a.student, []).append(a)
    out = {}
    for student, items in by_student.items():
        items.sort(key=Attempt.order)
        out[student] = (items[-1], items[:-1])
    return out


def parse_time(text: str, what: str = "--due") -> datetime:
    """A timezone-aware time from ``2026-12-01T23:59+01:00`` (ISO 8601); a clear error otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise LayoutError(
            f"{what} {text!r} is not a date and time: write it as ISO 8601 with its time zone, "
            "e.g. 2026-12-01T23:59+01:00 (or ...Z for UTC)"
        ) from None
    if when.tzinfo is None:
        raise LayoutError(f"{what} {text!r} has no time zone: add it, e.g. {text}+01:00 or {text}Z")
    return when
