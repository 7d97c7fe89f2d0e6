"""Late work: how late a submission is, and what it costs (``course grade --due ... --late-penalty``).

``LatePolicy.parse(text)`` reads the ``--late-penalty`` value:

``none``
    lateness is recorded, nothing is taken off (the default);
``zero``
    a late submission scores 0 (nbgrader's ``ZeroPlugin`` rule);
``per-hour:P[,cap:C][,grace:M]`` / ``per-day:P[,cap:C][,grace:M]``
    P percent of the maximum points off per started hour (day) late, at most C percent, with the
    first M minutes forgiven.

``penalty(policy, due, submitted_at, late_flag, max_points)`` gives (hours late or None, points
off, a note). A submission with a time is late when that time is after the due date. When the LMS
gives no time but marks the submission late (Canvas's ``LATE``), how late is unknown: the policy's
cap is taken off (the whole score for ``zero``), and the note says so, so that an instructor can
grade it again with the real time. The points off go into the gradebook as nbgrader's
``late_submission_penalty``, with the submission's timestamp and the assignment's due date, so
``nbgrader export`` gives the same totals as ``grades.csv``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime


class PolicyError(ValueError):
    """A ``--late-penalty`` that cannot be read; the message shows the accepted forms."""


FORMS = (
    "none, zero, per-hour:P[,cap:C][,grace:M] or per-day:P[,cap:C][,grace:M] (P and C in percent, M minutes)"
)


@dataclass(frozen=True)
class LatePolicy:
    kind: str = "none"  # "none", "zero", "per-hour", "per-day"
    rate: float = 0.0  # percent of the maximum per started unit late
    cap: float = 100.0  # percent of the maximum, at most
    grace_minutes: float = 0.0

    @classmethod
    def parse(cls, text: str) -> LatePolicy:
        text = (text or "none").strip().lower()
        if text in ("none", "zero"):
            return cls(text)
        m = re.fullmatch(r"(per-hour|per-day):([0-9.]+)((?:,(?:cap|grace):[0-9.]+)*)", text)
        if not m:
            raise PolicyError(f"--late-penalty {text!r}: write one of {FORMS}")
        extras = dict(re.findall(r",(cap|grace):([0-9.]+)", m.group(3)))
        try:
            rate, cap, grace = float(m.group(2)), float(extras.get("cap", 100)), float(extras.get("grace", 0))
        except ValueError:
            raise PolicyError(
                f"--late-penalty {text!r}: the numbers cannot be read; write one of {FORMS}"
            ) from None
        if not (0 <= rate <= 100 and 0 <= cap <= 100 and grace >= 0):
            raise PolicyError(f"--late-penalty {text!r}: percentages lie in [0, 100] and the grace is >= 0")
        return cls(m.group(1), rate, cap, grace)

    def describe(self) -> str:
        if self.kind == "none":
            return "late work is recorded, with no penalty"
        if self.kind == "zero":
            return "late work scores 0"
        unit = "hour" if self.kind == "per-hour" else "day"
        grace = f", after {self.grace_minutes:g} minutes of grace" if self.grace_minutes else ""
        return f"{self.rate:g} % of the points off per started {unit} late, at most {self.cap:g} %{grace}"


def penalty(
    policy: LatePolicy,
    due: datetime | None,
    submitted_at: datetime | None,
    late_flag: bool,
    max_points: float,
    score: float | None,
) -> tuple[float | None, float, str | None]:
    """(hours late, or None when unknown or on time; points off; a note or None)."""
    if due is None:
        return None, 0.0, ("the LMS marks it late, but no --due date was given" if late_flag else None)
    if submitted_at is None:
        if not late_flag:
            return None, 0.0, None
        off = _points(policy, None, max_points, score)
        why = f": {off:g} points off (the policy's most)" if off else ""
        return None, off, f"marked late by the LMS, with no time: how late is unknown{why}"
    seconds = (submitted_at - due).total_seconds()
    if seconds <= policy.grace_minutes * 60:
        return None, 0.0, None
    hours = seconds / 3600
    off = _points(policy, hours, max_points, score)
    note = f"{hours:.1f} hours late" + (f": {off:g} points off ({policy.describe()})" if off else "")
    return hours, off, note


def _points(policy: LatePolicy, hours: float | None, max_points: float, score: float | None) -> float:
    if policy.kind == "none":
        return 0.0
    if policy.kind == "zero":
        return float(score or 0.0)
    if hours is None:
        fraction = policy.cap / 100
    else:
        hours -= policy.grace_minutes / 60
        units = math.ceil(hours if policy.kind == "per-hour" else hours / 24)
        fraction = min(policy.cap, policy.rate * units) / 100
    off = round(fraction * max_points, 6)
    return min(off, float(score)) if score is not None else off
