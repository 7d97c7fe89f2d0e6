"""Feedback that does not leak hidden tests.

nbgrader 0.9's ``generate_feedback`` renders the *autograded* notebook, in which ``autograde``
has put back every test cell's full source, hidden tests included; and a failing hidden test
leaves a traceback that quotes the hidden lines. So ``course grade`` hands back nothing without
this module:

- ``redact_notebook`` removes the ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` blocks
  from every cell, replaces the traceback of an error raised in a cell that had hidden tests by
  its last line (``AssertionError: <the test's message>``), and withholds any output (a stream,
  a result, a traceback entry) that quotes a hidden line (student code can read its caller's
  source with ``inspect`` and print it);
- ``RedactHiddenTests`` does that as an nbconvert preprocessor, added to
  ``GenerateFeedback.preprocessors`` (so the HTML is made from the redacted notebook);
- ``find_leaks`` checks a finished HTML or notebook file for the markers and the hidden lines
  (as text: tags stripped, entities decoded); the grader refuses to publish a file with a leak.

A hidden line is a line of a hidden block that is long enough to be specific (``MIN_LINE``
characters without blanks) and is not also a line of the visible notebook.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Iterable
from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

BEGIN = "BEGIN HIDDEN TESTS"
END = "END HIDDEN TESTS"
MIN_LINE = 12
REMOVED_SOURCE = "# (hidden tests run here when grading)"
REMOVED_OUTPUT = "[output removed by the grader: it quotes hidden test code]"
TRACEBACK_NOTE = "(traceback not shown: this cell runs hidden tests)"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TAG = re.compile(r"<[^>]*>")


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def hidden_blocks(source: str, begin: str = BEGIN, end: str = END) -> list[str]:
    """The hidden-test blocks of one cell's source (markers excluded)."""
    blocks, current = [], None
    for line in source.splitlines():
        if begin in line:
            current = []
        elif end in line and current is not None:
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current is not None:  # no END marker: hidden to the end of the cell
        blocks.append("\n".join(current))
    return blocks


def strip_hidden(source: str, begin: str = BEGIN, end: str = END) -> str:
    out, hiding, removed = [], False, False
    for line in source.splitlines():
        if begin in line:
            hiding, removed = True, True
            continue
        if hiding and end in line:
            hiding = False
            out.append(REMOVED_SOURCE)
            continue
        if not hiding:
            out.append(line)
    if hiding:
        out.append(REMOVED_SOURCE)
    text = "\n".join(out)
    return text if removed else source


def _norm(line: str) -> str:
    return re.sub(r"\s+", "", _ANSI.sub("", line))


def normalized_lines(text: str) -> set[str]:
    """The lines of ``text`` as ``hidden_lines`` compares them (blanks and colours removed)."""
    return {_norm(line) for line in text.splitlines()}


def hidden_lines(nb: Any, visible: Iterable[str] = (), begin: str = BEGIN, end: str = END) -> set[str]:
    """Specific lines of the hidden tests of ``nb`` (blanks removed), minus any line of
    ``visible`` text and of the notebook outside hidden blocks."""
    hidden: set[str] = set()
    seen: set[str] = {_norm(line) for text in visible for line in text.splitlines()}
    for cell in nb.get("cells", []):
        src = _source(cell)
        for block in hidden_blocks(src, begin, end):
            hidden.update(_norm(line) for line in block.splitlines())
        seen.update(_norm(line) for line in strip_hidden(src, begin, end).splitlines())
    return {h for h in hidden - seen if len(h) >= MIN_LINE}


def judge_lines(source: str, visible: Iterable[str] = ()) -> set[str]:
    """Specific lines of a judge's code (``judge.py``): what no feedback may quote. Lines that are
    only strings (the messages of its checks, which students read by design) and comments do not
    count, nor any line of ``visible`` text (the visible tests repeat some)."""
    import io
    import tokenize

    code_lines: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.NAME, tokenize.NUMBER) or (
                tok.type == tokenize.OP and tok.string not in "(),[]{}"
            ):
                code_lines.update(range(tok.start[0], tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return set()
    seen = _norm("\n".join(visible))  # a judge line the notebook shows, in any layout, is no secret
    found = set()
    for number, line in enumerate(source.splitlines(), start=1):
        flat = _norm(line)
        if (
            number in code_lines
            and len(flat) >= 2 * MIN_LINE
            and flat not in seen
            and not flat.startswith("#")
        ):
            found.add(flat)
    return found


def _quotes(text: str, lines: set[str]) -> bool:
    flat = _norm(text)
    return bool(flat) and any(h in flat for h in lines)


def _redact_text(text: str, lines: set[str]) -> tuple[str, int]:
    """``text``, or the removal notice when any of its lines quotes a hidden test (the whole text
    goes: the short lines around a quoted one would still show the test's shape)."""
    for line in text.split("\n"):
        if BEGIN in line or END in line or _quotes(line, lines):
            return REMOVED_OUTPUT + ("\n" if text.endswith("\n") else ""), 1
    return text, 0


def redact_notebook(nb: NotebookNode, lines: set[str] | None = None) -> tuple[NotebookNode, int]:
    """A copy of the autograded ``nb`` with no hidden-test source anywhere; and how many things
    were removed. ``lines``: the hidden lines (default: read from ``nb`` itself)."""
    nb = copy.deepcopy(nb)
    if lines is None:
        lines = hidden_lines(nb)
    removed = 0
    for cell in nb.cells:
        src = _source(cell)
        had_hidden = BEGIN in src
        if had_hidden:
            cell.source = strip_hidden(src)
            removed += 1
        for out in cell.get("outputs", []) or []:
            removed += _redact_output(out, lines, had_hidden)
    return nb, removed


def _redact_output(out: Any, lines: set[str], hidden_cell: bool) -> int:
    n = 0
    kind = out.get("output_type")
    if kind == "error":
        if hidden_cell:
            evalue, k = _redact_text(str(out.get("evalue", "")), lines)
            out["evalue"] = evalue
            out["traceback"] = [f"{out.get('ename', 'Error')}: {evalue}", TRACEBACK_NOTE]
            return 1 + k
        new_tb = []
        for entry in out.get("traceback", []):
            text, k = _redact_text(entry, lines)
            new_tb.append(text)
            n += k
        out["traceback"] = new_tb
        out["evalue"], k = _redact_text(str(out.get("evalue", "")), lines)
        return n + k
    if kind == "stream":
        out["text"], k = _redact_text(_source({"source": out.get("text", "")}), lines)
        return k
    data = out.get("data") or {}
    for mime, value in list(data.items()):
        if isinstance(value, list):
            value = "".join(value)
        if isinstance(value, str) and not mime.startswith("image/"):
            data[mime], k = _redact_text(value, lines)
            n += k
    return n


class RedactHiddenTests(Preprocessor):
    """nbconvert preprocessor: ``redact_notebook`` before the feedback HTML is rendered."""

    enabled = Bool(True).tag(config=True)  # nbconvert's default is off

    def preprocess(self, nb: NotebookNode, resources: Any):
        redacted, _ = redact_notebook(nb)
        nb.cells = redacted.cells
        return nb, resources


def html_text(markup: str) -> str:
    """The text a reader sees in an HTML page (tags removed, entities decoded)."""
    return html.unescape(_TAG.sub("", markup))


def find_leaks(text: str, lines: set[str], *, is_html: bool = False) -> list[str]:
    """Hidden lines (and markers) found in ``text``; empty when the file is safe to hand back."""
    if is_html:
        text = html_text(text)
    elif text.lstrip().startswith("{"):
        try:  # a notebook: look at the decoded strings, not at JSON escapes
            text = "\n".join(_strings(json.loads(text)))
        except ValueError:
            pass
    flat = _norm(text)
    leaks = [m for m in (BEGIN, END) if _norm(m) in flat]
    leaks += sorted(h for h in lines if h in flat)
    return leaks


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        yield from _strings_list(obj)


def _strings_list(items: list) -> Iterable[str]:
    if items and all(isinstance(i, str) for i in items):
        yield "".join(items)
        return
    for i in items:
        yield from _strings(i)
