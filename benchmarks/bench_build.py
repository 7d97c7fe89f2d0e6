"""Time a clean build of the website and a rebuild with no change.

Copies the repository's tracked and new (not ignored) files to a temporary folder, builds
there with the same strict command as `make book` (so your own _build is left alone), then
builds again with nothing changed. Targets: rebuild under 15 s; clean build under 5 minutes on
2 cores with all chapters present.

    .venv/bin/python benchmarks/bench_build.py            # on every core of this machine
    .venv/bin/python benchmarks/bench_build.py --cpus 2   # pinned to 2 cores, as the target says

It prints the page count (every HTML page built from _toc.yml, assignment pages included), the
cores used and the load average before the run: times taken on a busy machine are longer.
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

ROOT = Path(__file__).resolve().parents[1]
BUILD = [str(Path(sys.executable).parent / "jupyter-book"), "build", ".", "-W", "-n", "--keep-going"]


def copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)


def timed_build(where: Path, cpus: set[int] | None) -> tuple[float, str]:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    t0 = time.perf_counter()
    r = subprocess.run(BUILD, cwd=where, env=env, capture_output=True, text=True, preexec_fn=pin)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return dt, r.stdout + r.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=None, help="pin the builds to this many cores")
    args = parser.parse_args()
    available = sorted(os.sched_getaffinity(0))
    cpus = set(available[: args.cpus]) if args.cpus else None
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="course-build-") as tmp:
        where = Path(tmp)
        copy_tree(where)
        clean, log = timed_build(where, cpus)
        rebuild, _ = timed_build(where, cpus)
        html = where / "_build" / "html"
        pages = sorted(p.relative_to(html).as_posix() for p in (html / "book").rglob("*.html"))
    data = os.environ.get("COURSE_DATA_DIR") or "(unset: chapters fall back to the bundled digits)"
    print(f"COURSE_DATA_DIR: {data}")
    print(f"cores used:                {len(cpus or available)} of {os.cpu_count()}"
          f" (load average before the run: {load[0]:.1f})")
    print(f"pages built:               {len(pages)} ({', '.join(p.removeprefix('book/') for p in pages)})")
    # book/_ext/parallel_execution.py logs each page it ran: "[parallel_execution] PAGE: N s"
    runs = [line.split("] ", 1)[1] for line in log.splitlines() if line.startswith("[parallel_execution]")]
    for line in runs:
        print(f"  page execution {line}")
    for label, seconds, target in [("clean build", clean, 300), ("rebuild with no change", rebuild, 15)]:
        verdict = "PASS" if seconds < target else "FAIL"
        print(f"{label + ':':26s} {seconds:7.1f} s   (target < {target} s: {verdict})")


if __name__ == "__main__":
    main()
