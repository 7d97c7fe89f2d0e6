"""Throughput of ``course grade --jobs 2`` against sequential ``nbgrader autograde``.

Builds 40 submissions of assignment 01 (a mix of correct answers and answers with one or two
wrong parts), then grades them twice, on the same machine:

- **nbgrader**: a standard nbgrader course (prepared beforehand, not timed: the gradebook exists
  in a real course), all 40 students in ``submitted/``, one ``nbgrader autograde`` command;
- **course grade**: ``course grade 01-activations SUBMISSIONS --out DIR --jobs 2``, the whole
  command: preparing its course, sandboxing every kernel, feedback HTML, reports.

It prints both wall times and the throughput ratio (target: at least 2.2x on 2 cores), the CPU
per submission of both sides and their ratio (target: at most 0.8x), the per-phase breakdown of
a student and the per-submission overhead beyond the notebook's own run time (a kernel started
and the notebook executed once with nbclient). CPU is measured, as root, in a cgroup v1
``cpuacct`` group per command (kernels and everything else each command starts included, other
jobs on the machine not); otherwise machine-wide from /proc/stat. The load average is printed
before and after: other jobs on the machine slow both sides' wall times.

    python benchmarks/bench_grade.py [--students 40] [--jobs 2] [--no-zygote]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "01-activations"
SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
BIN = Path(sys.executable).parent

#: Wrong answers mixed into the class: (answer cell, whole cell source).
WRONG = {
    "relu": "def relu(x):\n    x[x < 0] = 0\n    return x",
    "tanh_grad": "def tanh_grad(x):\n    return 1.0 / np.cosh(x)",
    "sigmoid_grad": "def sigmoid_grad(x):\n    return sigmoid(x)",
    "experiment": "ratio_sigmoid = ratio_relu = factor_sigmoid = 1.0\nwhich_vanishes = 'relu'",
}


def student_notebook(i: int) -> nbformat.NotebookNode:
    """Student i: the release with the solutions in; every other student has wrong parts."""
    nb = nbformat.read(str(RELEASE), as_version=4)
    sol = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nbformat.read(str(SOLUTION), as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    wrong = list(WRONG)
    bad = {wrong[i % len(wrong)], wrong[(i // 2) % len(wrong)]} if i % 2 else set()
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in sol:
            c.source = (
                WRONG[gid]
                if gid in bad
                else "\n".join(line for line in sol[gid].splitlines() if "### " not in line)
            )
    return nb


def own_run_time(repeats: int = 3) -> float:
    """Median seconds to start a kernel and run the correct notebook once (nbclient)."""
    from nbclient import NotebookClient

    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    os.environ.update(env)
    times = []
    for _ in range(repeats):
        nb = copy.deepcopy(student_notebook(0))
        start = time.perf_counter()
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


CGROUP_ROOT = Path("/sys/fs/cgroup/cpuacct")


def _cgroup_usable() -> bool:
    return os.geteuid() == 0 and (CGROUP_ROOT / "cgroup.procs").is_file()


def _cpu() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat), else of our waited-for children.

    The fallback when no cgroup can be made (not root): machine-wide, because ``course grade``
    kills each kernel outright after its last cell, and the kernel (PID 1 of its namespace, whose
    launcher is gone) is then reaped by init, so its CPU time never reaches RUSAGE_CHILDREN. On a
    busy machine other jobs count too: run it quiet.
    """
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], cwd: Path, env_extra: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command and everything it started, how CPU was measured).

    As root the command runs in a cgroup v1 ``cpuacct`` group of its own: every process it starts
    stays in it (kernels re-parented to init too), so other jobs on the machine do not count.
    Otherwise: ``_cpu``, machine-wide."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env_extra or {}))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    group = None
    if _cgroup_usable():
        group = CGROUP_ROOT / f"bench-grade-{os.getpid()}-{time.monotonic_ns()}"
        group.mkdir()
    procs = str(group / "cgroup.procs") if group else None

    def enter() -> None:  # in the child, before exec: it and all it starts are counted
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))

    cpu = _cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=enter if group else None)  # fmt: skip
    seconds = time.perf_counter() - start
    if group:
        deadline = time.monotonic() + 30
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)  # killed kernels still being reaped
        used = int((group / "cpuacct.usage").read_text()) / 1e9
        try:
            group.rmdir()
        except OSError:
            pass
        how = "cgroup"
    else:
        used, how = _cpu() - cpu, "machine-wide /proc/stat"
    if proc.returncode not in (0, 2):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return seconds, used, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two sides this often")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--no-zygote", action="store_true", help="exec a fresh kernel per student")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from course_lib.grading.workspace import add_submission, prepare_workspace

    n = args.students
    tmp = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        subs = tmp / "submissions"
        for i in range(n):
            (subs / f"s{i:03d}").mkdir(parents=True)
            nbformat.write(student_notebook(i), str(subs / f"s{i:03d}" / f"{ASSIGNMENT}.ipynb"))
        print(f"{n} submissions, {os.cpu_count()} cores, {args.rounds} rounds; "
              f"load average {os.getloadavg()[0]:.2f} before")  # fmt: skip
        own = own_run_time()
        print(f"the notebook's own run time (kernel start + cells + shutdown, nbclient): {own:.2f} s")

        walls: dict[str, list[float]] = {"nbgrader": [], "course": []}
        cpus: dict[str, list[float]] = {"nbgrader": [], "course": []}
        infos = []
        for r in range(args.rounds):
            ws = prepare_workspace(tmp / f"nbgrader-{r}", ASSIGNMENT, repo_root=ROOT)
            for i in range(n):
                add_submission(ws, f"s{i:03d}", subs / f"s{i:03d}" / f"{ASSIGNMENT}.ipynb")
            load = os.getloadavg()[0]
            wall, cpu, how = run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
                                 ws.root)  # fmt: skip
            walls["nbgrader"].append(wall)
            cpus["nbgrader"].append(cpu)
            print(f"round {r + 1}: nbgrader autograde (sequential) {wall:6.1f} s wall, "
                  f"{cpu:6.1f} s CPU (load {load:.1f})")  # fmt: skip
            out = tmp / f"course-grade-{r}"
            load = os.getloadavg()[0]
            wall, cpu, how = run(
                [str(BIN / "course"), "grade", ASSIGNMENT, str(subs), "--out", str(out),
                 "--jobs", str(args.jobs), "--quiet"],
                ROOT, {"COURSE_ZYGOTE": "0" if args.no_zygote else "1"},
            )  # fmt: skip
            walls["course"].append(wall)
            cpus["course"].append(cpu)
            infos.append(json.loads((out / "run.json").read_text()))
            print(f"round {r + 1}: course grade --jobs {args.jobs}      {wall:6.1f} s wall, "
                  f"{cpu:6.1f} s CPU (load {load:.1f}, sandbox {infos[-1]['sandbox']})")  # fmt: skip

        t_nb, t_course = statistics.median(walls["nbgrader"]), statistics.median(walls["course"])
        c_nb, c_course = statistics.median(cpus["nbgrader"]), statistics.median(cpus["course"])
        print(f"\nmedian wall time: nbgrader {t_nb:.1f} s ({n / t_nb * 60:.0f} submissions/min), "
              f"course grade {t_course:.1f} s ({n / t_course * 60:.0f} submissions/min)")  # fmt: skip
        print(f"THROUGHPUT RATIO course grade --jobs {args.jobs} / nbgrader: {t_nb / t_course:.2f}x "
              "(target >= 2.2x)")  # fmt: skip
        print(f"CPU per submission ({how}): nbgrader {c_nb / n:.3f} s, course grade {c_course / n:.3f} s "
              "(the whole command: feedback HTML, sandbox, reports, one-off start-up included)")  # fmt: skip
        print(f"CPU RATIO course grade / nbgrader per submission: {c_course / c_nb:.2f}x (target <= 0.8x); "
              f"with {args.jobs} idle cores the throughput ratio would be at most "
              f"{args.jobs * c_nb / c_course:.2f}x")  # fmt: skip

        info = infos[-1]
        students = list(info["students"].values())
        per = statistics.mean(s["seconds"] for s in students)
        phases: dict[str, list[float]] = {}
        for s in students:
            for k, v in (s["timing"] or {}).items():
                if v is not None:
                    phases.setdefault(k, []).append(v)
        print(f"per-submission overhead beyond the notebook's own run time ({own:.2f} s):")
        print(f"  nbgrader autograde: {t_nb / n - own:+.2f} s wall per submission")
        print(f"  course grade: {per - own:+.2f} s wall per submission and worker "
              f"({per:.2f} s per student; two run at once)")  # fmt: skip
        print(
            "  course grade, mean seconds per student: "
            + ", ".join(f"{k} {statistics.mean(v):.2f}" for k, v in phases.items())
        )
        ph = info["phases"]
        before = ph.get("course prepared", 0.0)
        after = ph.get("gradebook merged, figure drawn", 0.0) - ph.get("students graded", 0.0)
        print(f"  course grade one-off: {before:.1f} s before the first student (workers, sandbox "
              f"probe, the class course), {after:.1f} s after the last (gradebook, figure)")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.2f} after (other jobs on this machine slow both sides)")
        print(f"statuses: {info['counts']}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
