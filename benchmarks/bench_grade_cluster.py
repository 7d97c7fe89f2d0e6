"""Throughput of ``course grade --scheduler`` on a Dask LocalCluster against local ``--jobs``.

Builds N submissions of assignment 01 (those of ``bench_grade.py``: correct answers and answers
with one or two wrong parts), starts a ``distributed.LocalCluster`` of W worker processes with one
thread each on this machine, and grades the class twice, the whole command each time:

- **local**: ``course grade 01-activations SUBS --out DIR --jobs W``;
- **cluster**: ``course grade 01-activations SUBS --out DIR --scheduler tcp://...``.

It prints both wall times, submissions per minute, the ratio, and whether the two grades.csv are
byte-identical. On one machine the cluster can only match local workers (same cores, plus the
transfer of every notebook and result through the scheduler): what it measures is that cost.
More machines add their cores: each ``dask worker`` on another machine adds its throughput.

    python benchmarks/bench_grade_cluster.py [--students 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grade import ASSIGNMENT, BIN, student_notebook  # noqa: E402


def grade(subs: Path, out: Path, *extra: str) -> float:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "course"), "grade", ASSIGNMENT, str(subs), "--out", str(out), "--quiet",
                           *extra], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 2):
        sys.exit(f"course grade {' '.join(extra)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    from distributed import LocalCluster

    n, w = args.students, args.workers
    tmp = Path(tempfile.mkdtemp(prefix="bench-grade-cluster-"))
    try:
        subs = tmp / "submissions"
        for i in range(n):
            (subs / f"s{i:04d}").mkdir(parents=True)
            nbformat.write(student_notebook(i), str(subs / f"s{i:04d}" / f"{ASSIGNMENT}.ipynb"))
        print(f"{n} submissions of {ASSIGNMENT}, {os.cpu_count()} cores; load average "
              f"{os.getloadavg()[0]:.2f} before")  # fmt: skip
        local = grade(subs, tmp / "local", "--jobs", str(w))
        print(f"local --jobs {w}:             {local:7.1f} s wall, {n / local * 60:6.1f} submissions/min")
        start = time.perf_counter()
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0") as cluster:  # fmt: skip
            up = time.perf_counter() - start
            remote = grade(subs, tmp / "cluster", "--scheduler", cluster.scheduler_address)
        print(f"LocalCluster of {w} workers:   {remote:7.1f} s wall, {n / remote * 60:6.1f} submissions/min "
              f"(the cluster took {up:.1f} s to start, not counted)")  # fmt: skip
        print(f"RATIO cluster / local: {local / remote:.2f}x throughput")
        same = (tmp / "local" / "grades.csv").read_bytes() == (tmp / "cluster" / "grades.csv").read_bytes()
        print(f"grades.csv byte-identical: {same}")
        print(f"load average {os.getloadavg()[0]:.2f} after (other jobs on this machine slow both sides)")
        if not same:
            sys.exit("the cluster's grades differ from the local run's")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
