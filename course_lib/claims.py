"""Claims: the findings a page states, recorded with their evidence and checked as the page runs.

A page states a finding in plain prose and records it with ``claim(...)``::

    gap = difference(acc_dropout, acc_none)            # paired over 5 seeds
    claim("04-regularization", "dropout-beats-none",
          "Dropout raises test accuracy on 1,000 training images.",
          gap.mean, gap.se, holds=gap.exceeds(2), n_seeds=gap.n, data=ds.name, unit="points")

``claim`` displays, in a notebook, and returns a ``Claim``: a small box under the prose (the statement, the
number with its standard error and seeds, the data it was measured on) and carries its record as
plain JSON in the output (MIME type ``MIME``). When ``holds`` is false it raises ``ClaimError``:
the cell fails, and so does the strict book build. The book's extension
``book/_ext/claims.py`` collects the records of every page into ``_build/claims/<page>.json`` and
the appendix *What this course claims, and the evidence*.

Rules the function enforces (``../shared/DESIGN.md``, "Claims and experiments"):

- a claim with a standard error rests on at least ``MIN_SEEDS`` seeds;
- a claim measured only on some data set says so (``requires="MNIST-10k"``); on another data set
  (the 8x8 digits the build falls back to) it is recorded as *not measured* (``holds: null``) and
  displayed with the numbers of this build, never as a false sentence.

``summarize`` (mean and sample sd) and ``difference`` (a paired or Welch difference of means and
its standard error) are the statistics the pages use; ``Difference.exceeds(k)`` is "larger than k
standard errors". Book chapters 1-7 and the capstone use them.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The MIME type of a claim's record in a cell's output.
MIME = "application/vnd.course.claim+json"
#: The fewest seeds a claim with a standard error may rest on.
MIN_SEEDS = 3

_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ClaimError(AssertionError):
    """A page claims something its own numbers contradict; the message says what and by how much."""


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """mean ± sd of one quantity over n seeds (sample standard deviation, ddof = 1)."""

    mean: float
    sd: float
    n: int

    def format(self, fmt: str = "{:.3g}") -> str:
        return f"{fmt.format(self.mean)} ± {fmt.format(self.sd)}" if self.n > 1 else fmt.format(self.mean)

    def __str__(self) -> str:
        return self.format()


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """mean and sample sd (ddof = 1; 0 for a single value) of ``values`` (n,)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("summarize needs at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"summarize got non-finite values {v}: a run diverged; say so instead")
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return Summary(float(v.mean()), sd, int(v.size))


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) and its standard error; ``paired``: from the per-seed differences a_i - b_i."""

    mean: float
    se: float
    n: int
    paired: bool
    a: Summary
    b: Summary

    def exceeds(self, k: float = 2.0) -> bool:
        """True when the difference is positive and larger than ``k`` standard errors."""
        return bool(self.mean > k * self.se)

    @property
    def z(self) -> float:
        """mean / se (inf when se is 0 and the mean is not)."""
        if self.se == 0:
            return math.inf if self.mean > 0 else (-math.inf if self.mean < 0 else 0.0)
        return self.mean / self.se

    def format(self, fmt: str = "{:.3g}") -> str:
        return f"{fmt.format(self.mean)} ± {fmt.format(self.se)}"


def difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, paired: bool = True
) -> Difference:
    """mean(a) - mean(b) with its standard error.

    paired (a_i and b_i share seed i: data order, initialization): se = sd(a - b) / sqrt(n);
    unpaired: Welch's se = sqrt(sd_a^2 / n_a + sd_b^2 / n_b).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    sa, sb = summarize(a), summarize(b)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"a paired difference needs as many a as b values, got {a.size} and {b.size}")
        d = summarize(a - b)
        se = d.sd / math.sqrt(d.n) if d.n > 1 else math.inf
        return Difference(d.mean, se, d.n, True, sa, sb)
    if sa.n < 2 or sb.n < 2:
        raise ValueError("an unpaired difference needs at least 2 values on each side")
    se = math.sqrt(sa.sd**2 / sa.n + sb.sd**2 / sb.n)
    return Difference(sa.mean - sb.mean, se, min(sa.n, sb.n), False, sa, sb)


# --- claims -----------------------------------------------------------------------------------


@dataclass
class Claim:
    """One recorded finding of a page. ``holds`` is True, or None when it was not measured here."""

    page: str
    key: str
    statement: str
    value: float | None
    se: float | None
    n_seeds: int | None
    holds: bool | None
    data: str | None = None  # what this build measured it on ("MNIST-10k", "digits", "XOR", ...)
    requires: str | None = None  # the data set the claim is about, when only one
    unit: str = ""  # printed after the numbers: "points", "%", "x", ...
    fmt: str = "{:.3g}"  # how value and se are printed
    details: dict[str, Any] = field(default_factory=dict)  # more numbers, for the appendix

    @property
    def anchor(self) -> str:
        """The HTML id of the claim's box on its page (the appendix links to it)."""
        return f"claim-{self.key}"

    def record(self) -> dict[str, Any]:
        """Plain JSON: what ``_build/claims/<page>.json`` lists for this claim."""
        return {
            "page": self.page,
            "key": self.key,
            "statement": self.statement,
            "value": _json_number(self.value),
            "se": _json_number(self.se),
            "n_seeds": self.n_seeds,
            "holds": self.holds,
            "data": self.data,
            "requires": self.requires,
            "unit": self.unit,
            "text": self.evidence(),
            "details": {k: _json_value(v) for k, v in self.details.items()},
        }

    def evidence(self) -> str:
        """'8.1 ± 0.6 points (standard error, 5 seeds, MNIST-10k)'-style text of the numbers."""
        unit = f" {self.unit}" if self.unit and self.unit != "%" else self.unit
        if self.value is None:
            number = "no number"
        elif self.se is None:
            number = self.fmt.format(self.value) + unit
        else:
            number = f"{self.fmt.format(self.value)} ± {self.fmt.format(self.se)}{unit}"
        where = []
        if self.se is not None:
            where.append("± one standard error")
        if self.n_seeds:
            where.append(f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}")
        if self.data:
            where.append(self.data)
        return number + (f" ({', '.join(where)})" if where else "")

    def _verdict(self) -> str:
        if self.holds is None:
            return (
                f"Not measured in this build: the claim is about {self.requires}, and this build ran on "
                f"{self.data}. The numbers above are this build's."
            )
        return "Checked when this page was built."

    def _repr_html_(self) -> str:
        status = "not-measured" if self.holds is None else "holds"
        return (
            f'<div class="course-claim course-claim-{status}" id="{html.escape(self.anchor)}">'
            f'<p class="course-claim-title">Claim</p>'
            f"<p>{html.escape(self.statement)}</p>"
            f'<p class="course-claim-evidence">Measured: {html.escape(self.evidence())}. '
            f"{html.escape(self._verdict())}</p></div>"
        )

    def _repr_markdown_(self) -> str:
        return f"**Claim.** {self.statement} Measured: {self.evidence()}. {self._verdict()}"

    def __repr__(self) -> str:
        return f"Claim {self.page}/{self.key}: {self.statement} [{self.evidence()}; holds={self.holds}]"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        return {
            MIME: self.record(),
            "text/html": self._repr_html_(),
            "text/markdown": self._repr_markdown_(),
            "text/plain": repr(self),
        }

    def _ipython_display_(self) -> None:
        """Show the box (and so record the claim) once, whether or not the cell ends with it."""
        if getattr(self, "_shown", False):
            return
        from IPython.display import publish_display_data

        self._shown = True
        publish_display_data(self._repr_mimebundle_())


def claim(
    page: str,
    key: str,
    statement: str,
    value: float | None,
    se: float | None = None,
    *,
    holds: bool,
    n_seeds: int | None = None,
    data: str | None = None,
    requires: str | None = None,
    unit: str = "",
    fmt: str = "{:.3g}",
    details: Mapping[str, Any] | None = None,
) -> Claim:
    """Record the finding ``statement`` of ``page``, measured as ``value`` (± ``se``); raise
    ``ClaimError`` when ``holds`` is false.

    ``key`` is unique on its page (lower case, digits, dashes: the anchor of the claim's box).
    ``n_seeds``: how many seeds the numbers rest on (required, and at least ``MIN_SEEDS``, when
    ``se`` is given). ``data``: the data this build measured on; ``requires``: the data set the
    claim is about, when it is about one only. Then, on other data, the claim is recorded as not
    measured (``holds`` None) instead of being checked.
    """
    if not isinstance(page, str) or not page:
        raise ValueError("claim needs the page's name, e.g. '04-regularization'")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"claim key {key!r}: use lower-case letters, digits and dashes")
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"claim {key}: the statement is empty")
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(
            f"claim {key}: holds must be True or False (the test of the statement), got {holds!r}"
        )
    value = None if value is None else float(value)
    se = None if se is None else float(se)
    if se is not None:
        if not (math.isfinite(se) and se >= 0):
            raise ValueError(f"claim {key}: the standard error must be finite and >= 0, got {se}")
        if n_seeds is None or n_seeds < MIN_SEEDS:
            raise ValueError(
                f"claim {key}: a comparison with a standard error rests on at least {MIN_SEEDS} seeds, "
                f"got n_seeds={n_seeds}"
            )
    measured = requires is None or data == requires
    result = Claim(
        page, key, statement.strip(), value, se, None if n_seeds is None else int(n_seeds),
        bool(holds) if measured else None, data, requires, unit, fmt, dict(details or {}),
    )  # fmt: skip
    if not (measured and not holds):
        _show_in_notebook(result)
    if measured and not holds:
        raise ClaimError(
            f"the claim {page}/{key} does not hold: {statement.strip()!r}; measured {result.evidence()}. "
            "Change the experiment so that it shows its effect, or change the statement to what the "
            "numbers say."
        )
    return result


def _show_in_notebook(result: Claim) -> None:
    """In a kernel, display the claim at once: a claim that is not a cell's last expression is
    recorded too (displaying it again, or ending the cell with it, shows it only once)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        result._ipython_display_()


def records_from_notebook(nb: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every claim record in the outputs of an executed notebook (nbformat dict), in order."""
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if MIME in data:
                value = data[MIME]
                found.append(json.loads(value) if isinstance(value, str) else dict(value))
    return found


def _json_number(x: float | None) -> float | str | None:
    if x is None:
        return None
    return x if math.isfinite(x) else str(x)


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float):
        return _json_number(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


__all__ = [
    "MIME",
    "MIN_SEEDS",
    "Claim",
    "ClaimError",
    "Difference",
    "Summary",
    "claim",
    "difference",
    "records_from_notebook",
    "summarize",
]
