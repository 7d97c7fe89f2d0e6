"""Execute one page of the book the way the build does, and print what it cost and what it claims.

    .venv/bin/python benchmarks/run_page.py book/04-regularization.md [--figures DIR] [--save NB]

The page runs in a fresh kernel with one BLAS thread, in ``book/`` (as ``parallel_execution`` runs
it), with no cache. Printed: wall seconds, the kernel's CPU seconds (user + system: a figure that
other work on the machine disturbs less than wall time), every ``claim()`` the page made with its
evidence, and the first error if a cell failed (a false claim is one). ``--figures DIR`` writes
every PNG the page displays to DIR (``cell-012-0.png``...) to look at; ``--save NB`` writes the
executed notebook; ``--no-mnist`` runs it on the 8x8 digits, as a build without MNIST does. The
build's budget for all pages is in the README (``benchmarks/bench_build.py``
measures the whole site).
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--figures", type=Path, default=None, help="write the page's PNG outputs here")
    parser.add_argument("--save", type=Path, default=None, help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument(
        "--no-mnist",
        action="store_true",
        help="hide MNIST: run on the bundled 8x8 digits, as a build without it",
    )
    args = parser.parse_args(argv)

    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import myst_nb_reader_plugin

    from course_lib.claims import records_from_notebook

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if args.no_mnist:
        import tempfile

        empty = tempfile.mkdtemp(prefix="no-mnist-")
        os.environ["COURSE_DATA_DIR"] = os.environ["XDG_CACHE_HOME"] = empty
    elif "COURSE_DATA_DIR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
        os.environ["COURSE_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
    page = args.page.resolve()
    nb = myst_nb_reader_plugin(str(page))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = single_nb_execution(nb, cwd=str(page.parent), timeout=args.timeout, allow_errors=False,
                                 meta_override=True)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{page.name}: {wall:.1f} s wall, {cpu:.1f} s CPU of the kernel")

    for r in records_from_notebook(nb):
        status = {True: "holds", None: "not measured", False: "FAILS"}[r["holds"]]
        print(f"  claim {r['key']} [{status}]: {r['statement']}\n      {r['text']}")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        n = 0
        for i, cell in enumerate(nb.cells):
            for j, out in enumerate(cell.get("outputs", [])):
                data = out.get("data") or {}
                png = data.get("image/png") or data.get("application/papermill.record/image/png")  # glue()
                if png:
                    (args.figures / f"cell-{i:03d}-{j}.png").write_bytes(base64.b64decode(png))
                    n += 1
        print(f"  {n} figure(s) written to {args.figures}")
    if args.save is not None:
        nbformat.write(nb, str(args.save))
    if result.err is not None:
        print(f"FAILED: {result.exc_string or result.err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
