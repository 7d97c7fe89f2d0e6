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

``JudgedExecute`` (below) is what ``course grade`` uses: the same, except that test cells never
run in the kernel; the judge (``judge.py``) decides them from outside and writes the verdict as
the cell's output.
"""

from __future__ import annotations

import json
import secrets
import time
from queue import Empty
from typing import Any

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import CheckCellMetadata, Execute
from traitlets import Float, Integer, Unicode

from course_lib.grading import probe
from course_lib.grading.judge import Kernel, ProbeFailed, Verdict, code_cells, judge_part, load_judge

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
            # no count: whether the kernel said it started the cell before dying is a race
            cell.execution_count = None
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


# --- the judge's executor -----------------------------------------------------------------------

#: ``ename`` of the output a failed part gets (nbgrader scores a test cell with an error output 0).
PART_FAILED = "PartFailed"
PASSED_TEXT = "Graded by the course's judge: every check of this part passed.\n"
NOT_RUN_TEXT = "(This demonstration is not run when grading: nothing in it is graded.)\n"


class ClientKernel(Kernel):
    """``judge.Kernel`` over a running kernel's client: one probe at a time, each one a silent
    execute request whose answer is the single ``display_data`` of ``probe.MIME`` that carries
    the request's token, read from the iopub channel before ``deadline`` (``time.monotonic``)."""

    def __init__(self, executor: JudgedExecute, deadline: float) -> None:
        self.executor, self.deadline = executor, deadline

    def _exchange(self, code: str, inputs_text: str, outputs: list[str]) -> Any:
        return self.executor._probe(code, inputs_text, outputs, self.deadline)


class JudgedExecute(GuardedExecute):
    """``GuardedExecute`` in which the judge, not the kernel, decides every test cell.

    Answer and locked cells run in the student's kernel as before (a locked cell the judge lists
    in ``not_run``, a demonstration, is skipped). A test cell is never sent to the kernel: its
    part is judged (``judge.judge_part``: the static check of the submitted notebook, then the
    part's probes through ``ClientKernel``) and the verdict becomes the cell's only output, an
    error output ``PART_FAILED`` with the judge's message, or a stream saying the part passed.
    nbgrader's ``SaveAutoGrades`` then scores the cell from that output: 0 or full points. Nothing
    the kernel prints, displays or raises can reach a test cell's output. The verdicts go to the
    events file as well (``"verdicts"``).
    """

    judge_file = Unicode("", help="The assignment's judge.py (empty: no judge, as GuardedExecute).").tag(
        config=True
    )
    student = Unicode("student", help="The student id that seeds the hidden inputs.").tag(config=True)
    max_probe_chars = Integer(256 * 1024 * 1024, help="Largest probe answer read (characters).").tag(
        config=True
    )

    kernel_output_file = Unicode(
        "", help="Where the kernel's stdout and stderr go (read through a pipe); empty: discarded."
    ).tag(config=True)
    max_kernel_output = Integer(64 * 1024, help="Bytes of the kernel's own output kept.").tag(config=True)

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        """Start the kernel with its standard streams on a pipe this process drains (never the
        grader's own stdout, stderr or log files), and stdin closed."""
        import subprocess
        import threading

        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        await super().async_start_new_kernel(**kwargs)
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        pipe = getattr(process, "stdout", None)
        if pipe is not None:
            self._drainer = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
            self._drainer.start()

    # nbclient binds the sync name to its own coroutine: point it at ours
    start_new_kernel = run_sync(async_start_new_kernel)

    def _drain(self, pipe) -> None:
        kept, total = bytearray(), 0
        try:
            while chunk := pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536):
                total += len(chunk)
                if len(kept) < self.max_kernel_output:
                    kept += chunk[: self.max_kernel_output - len(kept)]
        except (OSError, ValueError):
            pass
        finally:
            if self.kernel_output_file:
                note = f"\n[{total - len(kept):,} more bytes not kept]\n" if total > len(kept) else ""
                with open(self.kernel_output_file, "wb") as fh:
                    fh.write(bytes(kept) + note.encode())

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        self._judge = load_judge(self.judge_file) if self.judge_file else None
        self._sources, self._trusted, self._labels = code_cells(nb)
        self._drainer = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._drainer is not None:  # the kernel is gone: its pipe ends
                self._drainer.join(timeout=5)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if self._judge is None or cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if meta.get("grade") and not meta.get("solution"):
            self._events.setdefault("verdicts", {})
            self._judge_cell(cell, index, gid)
            return cell, resources
        if gid and gid in self._judge.not_run and meta.get("locked"):
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=NOT_RUN_TEXT)]
            cell.execution_count = None
            return cell, resources
        if gid and gid in self._judge.provided and meta.get("locked"):
            self._provide(cell, index, gid)
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def _provide(self, cell: NotebookNode, index: int, gid: str) -> None:
        """Put the values the judge computes for the locked cell ``gid`` in the student's namespace."""
        cell.execution_count = None
        if self._stopped:
            self._mark_not_run(cell, index, NOT_RUN, "not run: the kernel stopped earlier")
            return
        values = self._judge.provided[gid]()
        kernel = ClientKernel(self, time.monotonic() + float(self.timeout or 60))
        try:
            kernel.run("GLOBALS.update(__values)", {"__values": values})
            text = f"(When grading, the grader computes this cell's {', '.join(sorted(values))}.)\n"
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)]
        except Exception as err:  # the student's namespace refused the values: later parts fail
            cell.outputs = [_error("ProvidedValuesRefused", f"{type(err).__name__}: {err}")]

    def _judge_cell(self, cell: NotebookNode, index: int, gid: str) -> None:
        cell.execution_count = None
        if self._stopped or (self._suspect and not self._kernel_answers()):
            if not self._stopped:
                self._shutdown_stuck_kernel(index)
            why = "the kernel died earlier" if self._stopped == "crashed" else "an earlier cell ran too long"
            verdict = Verdict(gid, False, f"not judged: {why}")
            self._events.setdefault("not_run", []).append(gid)
        else:
            self._suspect = False
            if self._t_first is None:
                self._t_first = time.perf_counter()
            kernel = ClientKernel(self, time.monotonic() + float(self.timeout or 60))
            verdict = judge_part(self._judge, gid, kernel, student=self.student, sources=self._sources,
                                 trusted=self._trusted, labels=self._labels)  # fmt: skip
            self._t_last = time.perf_counter()
            if verdict.timeout:
                self._events["timeouts"].append({"cell": index, "label": gid, "seconds": self.timeout})
            if verdict.fatal and not self._stopped:
                if verdict.timeout:
                    self._shutdown_stuck_kernel(index + 1)
                else:
                    self._stopped = "crashed"
                    self._events["died"] = {"cell": index, "label": gid}
            elif verdict.timeout:
                self._suspect = True
        self._events["verdicts"][gid] = verdict.as_dict()
        if verdict.passed:
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=PASSED_TEXT)]
        else:
            text = verdict.message[:4000]
            cell.outputs = [NotebookNode(output_type="error", ename=PART_FAILED, evalue=text,
                                         traceback=[f"{PART_FAILED}: {text}"])]  # fmt: skip

    def _probe(self, code: str, inputs_text: str, outputs: list[str], deadline: float) -> Any:
        """Send one probe; its decoded answer. ``ProbeFailed`` on timeout, death or no answer."""
        assert self.kc is not None and self.km is not None
        token = secrets.token_hex(16)
        msg_id = self.kc.execute(probe.kernel_code(token, code, inputs_text, outputs), silent=True,
                                 store_history=False, allow_stdin=False, stop_on_error=False)  # fmt: skip
        answer, idle, chars = None, False, 0
        interrupted_at = None
        while not idle:
            now = time.monotonic()
            if interrupted_at is None and now >= deadline:
                run_sync(self.km.interrupt_kernel)()
                interrupted_at = now
            if interrupted_at is not None and now >= interrupted_at + self.interrupt_grace:
                raise ProbeFailed(
                    f"this part's checks ran past {self.timeout} s and the kernel ignored the interrupt",
                    fatal=True, timeout=True,
                )  # fmt: skip
            try:
                msg = run_sync(self.kc.iopub_channel.get_msg)(timeout=0.5)
            except Empty:
                if not run_sync(self.km.is_alive)():
                    raise ProbeFailed(
                        "the kernel died while the grader checked this part", fatal=True
                    ) from None
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "display_data" and answer is None:
                data = (content.get("data") or {}).get(probe.MIME)
                if (
                    isinstance(data, dict)
                    and data.get("token") == token
                    and isinstance(data.get("payload"), str)
                ):
                    chars += len(data["payload"])
                    if chars > self.max_probe_chars:
                        raise ProbeFailed("the answer to the grader's probe is too large")
                    answer = data["payload"]
        if interrupted_at is not None:
            raise ProbeFailed(
                f"this part's checks ran past {self.timeout} s and were interrupted", timeout=True
            )
        if answer is None:
            raise ProbeFailed("the grader's probe got no answer from the kernel (was its output redirected?)")
        return probe.loads(answer)


# --- nbgrader's metadata check, once per distinct notebook layout --------------------------------


class CachedCheckCellMetadata(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` (run twice per student: when sanitizing and after grading),
    remembering the layouts that passed. What it validates, the nbgrader metadata and type of each
    cell, is the release's for every repaired submission (``submissions.normalize``), so the
    JSON-schema validation (a tenth of a worker's CPU per student) runs once per class; a
    notebook with any other metadata is validated in full."""

    _passed: set[str] = set()

    def preprocess(self, nb: NotebookNode, resources: Any):
        key = json.dumps(
            [(c.get("cell_type"), c.get("metadata", {}).get("nbgrader")) for c in nb.cells], sort_keys=True
        )
        if key in self._passed:
            return nb, resources
        nb, resources = super().preprocess(nb, resources)
        self._passed.add(key)
        return nb, resources
