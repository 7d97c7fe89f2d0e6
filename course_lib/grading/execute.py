"""nbgrader's Execute preprocessor, hardened for notebooks that misbehave.

``GuardedExecute`` replaces ``Execute`` in ``Autograde.autograde_preprocessors`` (nbgrader's own
extension point); everything else about autograding is nbgrader's. What it adds:

- **a kernel that dies** (``os._exit``, a segfault, the memory limit) no longer aborts the
  notebook: the cell that was running and every later code cell get an error output
  (``KernelDied`` / ``NotRun``), so nbgrader's ``SaveAutoGrades`` records the cells that ran and
  gives 0 to the rest, instead of failing the whole submission;
- **a cell that runs past the timeout** is interrupted (nbgrader's default) and, when the kernel
  answers again within ``interrupt_grace`` seconds, grading goes on with the next cell; a kernel
  that ignores the interrupt is shut down and the remaining cells are marked ``NotRun``;
- **huge outputs** are cut to ``max_output_chars`` per cell while they arrive (the grader's
  memory and the feedback stay small);
- what happened is written to ``events_file`` (JSON) for the grader's per-student status.

Unexecuted code cells always get an error output: nbgrader gives full marks to a test cell
without an error, so a cell that never ran must never look like one that passed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer, Unicode

#: ``ename`` of the error outputs this module writes; the grader looks for them.
KERNEL_DIED = "KernelDied"
NOT_RUN = "NotRun"
TIMEOUT = "CellTimeoutError"  # nbgrader's error_on_timeout name


def _label(cell: NotebookNode, index: int) -> str:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return str(grade_id) if grade_id else f"cell {index + 1}"


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` that survives dead and stuck kernels and floods of output."""

    max_output_chars = Integer(
        100_000, help="Largest output (characters of text) kept per cell; the rest is cut."
    ).tag(config=True)
    interrupt_grace = Float(
        10.0, help="Seconds an interrupted kernel has to answer again before it is shut down."
    ).tag(config=True)
    events_file = Unicode("", help="Where to write what happened (JSON); empty: nowhere.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        self._events: dict[str, Any] = {"timeouts": [], "truncated": [], "executed": 0}
        self._stopped: str | None = None  # "crashed" or "timeout": later cells are not run
        self._suspect = False  # the last cell timed out: check the kernel answers
        self._chars: dict[int, int] = {}
        self._t0 = started = time.perf_counter()
        self._t_first: float | None = None
        self._t_last: float | None = None
        try:
            return super().preprocess(nb, resources, km)
        except (DeadKernelError, RuntimeError) as err:  # died outside a cell: at start-up
            if self._t_first is not None:
                raise
            self._events["died"] = {"cell": None, "detail": f"{type(err).__name__}: {err}"}
            for index, cell in enumerate(nb.cells):
                self._mark_not_run(cell, index, KERNEL_DIED, "the kernel died before this cell ran")
            return nb, resources
        finally:
            end = time.perf_counter()
            self._events["seconds"] = round(end - started, 3)
            if self._t_first is not None and self._t_last is not None:
                self._events["phases"] = {
                    "kernel_start": round(self._t_first - started, 3),
                    "cells": round(self._t_last - self._t_first, 3),
                    "kernel_stop": round(end - self._t_last, 3),
                }
            for item in self._events["truncated"]:
                item["chars"] = self._chars.get(item["cell"], 0)
            if self.events_file:
                with open(self.events_file, "w") as fh:
                    json.dump(self._events, fh, indent=1)

    # --- per cell --------------------------------------------------------------------------

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._t_first is None:
            self._t_first = time.perf_counter()
        try:
            return self._preprocess_code_cell(cell, resources, index)
        finally:
            self._t_last = time.perf_counter()

    def _preprocess_code_cell(self, cell: NotebookNode, resources: Any, index: int):
        if self._stopped:
            why = (
                "the kernel died in an earlier cell"
                if self._stopped == "crashed"
                else "an earlier cell ran past the time limit and ignored the interrupt"
            )
            self._mark_not_run(cell, index, NOT_RUN, f"not run: {why}")
            return cell, resources
        if self._suspect and not self._kernel_answers():
            self._shutdown_stuck_kernel(index)
            self._mark_not_run(cell, index, NOT_RUN, "not run: an earlier cell ignored the interrupt")
            return cell, resources
        self._suspect = False
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stopped = "crashed"
            self._events["died"] = {"cell": index, "label": _label(cell, index)}
            cell.outputs = list(cell.get("outputs", [])) + [
                _error(KERNEL_DIED, "the kernel died while running this cell")
            ]
            return cell, resources
        except CellTimeoutError:  # interrupted, but the kernel never went idle: it is stuck
            self._events["timeouts"].append(
                {"cell": index, "label": _label(cell, index), "seconds": self.timeout}
            )
            self._shutdown_stuck_kernel(index + 1)
            cell.outputs = list(cell.get("outputs", [])) + [
                _error(TIMEOUT, f"the cell ran past {self.timeout} s and ignored the interrupt")
            ]
            return cell, resources
        self._events["executed"] += 1
        if any(o.get("output_type") == "error" and o.get("ename") == TIMEOUT for o in cell.outputs):
            self._events["timeouts"].append(
                {"cell": index, "label": _label(cell, index), "seconds": self.timeout}
            )
            self._suspect = True
        return cell, resources

    def _mark_not_run(self, cell: NotebookNode, index: int, ename: str, evalue: str) -> None:
        if cell.cell_type != "code":
            return
        cell.outputs = [_error(ename, evalue)]
        cell.execution_count = None
        self._events.setdefault("not_run", []).append(_label(cell, index))

    # --- a kernel that does not answer -------------------------------------------------------

    def _kernel_answers(self) -> bool:
        """Ask for kernel_info on the shell channel: a kernel whose main thread is still stuck
        in the interrupted cell does not answer within ``interrupt_grace`` seconds."""
        assert self.kc is not None
        try:
            msg_id = self.kc.kernel_info()
            deadline = time.monotonic() + self.interrupt_grace
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = run_sync(self.kc.shell_channel.get_msg)(timeout=left)
                except Exception:  # queue.Empty: no message in time
                    return False
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    return True
            return False
        except DeadKernelError:
            return False

    def _shutdown_stuck_kernel(self, index: int) -> None:
        self._stopped = "timeout"
        self._events["stuck"] = {"before_cell": index}
        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as err:  # already gone: fine
            self.log.warning("shutting down the stuck kernel: %s", err)

    # --- outputs -----------------------------------------------------------------------------

    def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
        size = _text_size(msg.get("content", {}))
        used = self._chars.get(cell_index, 0)
        limit = self.max_output_chars
        self._chars[cell_index] = used + size
        if msg.get("msg_type") == "error":  # errors decide the grade: always kept, but short
            content = msg.get("content", {})
            content["evalue"] = _cut(str(content.get("evalue", "")), 10_000)
            content["traceback"] = [_cut(str(t), 10_000) for t in content.get("traceback", [])[:200]]
            return super().output(outs, msg, display_id, cell_index)
        if used + size <= limit:
            return super().output(outs, msg, display_id, cell_index)
        if used <= limit:  # the first output over the limit: say so, once
            cell = self.nb.cells[cell_index]
            self._events["truncated"].append({"cell": cell_index, "label": _label(cell, cell_index)})
            note = NotebookNode(
                output_type="stream",
                name="stderr",
                text=f"\n[output cut by the grader: more than {limit:,} characters]\n",
            )
            outs.append(note)
        return None


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"... [{len(text) - n:,} characters cut]"


def _text_size(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    data = content.get("data") or {}
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values()) + sum(
        len(line) for line in content.get("traceback", [])
    )
