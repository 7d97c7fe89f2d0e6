"""Execute the book's pages in parallel before Sphinx reads them, one kernel per core.

MyST-NB (``execute_notebooks: cache``) runs each page that is not in the jupyter-cache while
Sphinx reads it, one page after another: on a 2-core machine half the CPU waits. This extension
runs first (``builder-inited``): it finds every MyST notebook page that the build will read, skips
those the cache already holds (same hash of code cells and kernelspec, the rule MyST-NB matches
on), executes the rest in a process pool of ``os.cpu_count()`` workers, longest page first (by its
last recorded run time), and stores each result in the cache. MyST-NB then finds every page
cached. A page that fails here is left out of the cache, so MyST-NB runs it again during the read
and reports its error exactly as it would without this extension; nothing is hidden.

Each kernel is told to use one thread (``OMP_NUM_THREADS=1`` and friends): two kernels with two
BLAS threads each on two cores are slower than two with one. Set ``COURSE_BUILD_JOBS=1`` to
execute serially (as MyST-NB alone would).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _execute(path: str, timeout: int, allow_errors: bool) -> tuple[str, object, float, str | None]:
    """Run one page in a fresh kernel (in a worker process); return the executed notebook."""
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import myst_nb_reader_plugin

    os.environ.update(ONE_THREAD)
    nb = myst_nb_reader_plugin(path)
    result = single_nb_execution(
        nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=allow_errors, meta_override=True
    )
    error = None if result.err is None else (result.exc_string or repr(result.err))
    return path, nb, result.time, error


def _pages(app) -> list[Path]:
    """The MyST notebook pages of this build that execution does not exclude."""
    from myst_nb.core.read import is_myst_markdown_notebook

    excluded = app.config.nb_execution_excludepatterns or []
    pages = []
    for docname in sorted(app.project.discover(app.config.exclude_patterns, app.config.include_patterns)):
        path = Path(app.project.doc2path(docname, absolute=True))
        if path.suffix != ".md" or any(path.match(p) for p in excluded):
            continue
        with path.open(encoding="utf8") as f:
            if is_myst_markdown_notebook(f):
                pages.append(path)
    return pages


def execute_pages(app) -> None:
    if app.config.nb_execution_mode != "cache" or not app.config.nb_execution_cache_path:
        return
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import myst_nb_reader_plugin

    cache = get_cache(app.config.nb_execution_cache_path)
    last_runs = _last_runtimes(cache)
    todo: dict[str, float] = {}
    for path in _pages(app):
        try:
            cache.match_cache_notebook(myst_nb_reader_plugin(str(path)))
        except KeyError:  # not cached: to run; the last run time (if any) orders the queue
            todo[str(path)] = last_runs.get(str(path), path.stat().st_size / 1e4)
    jobs = int(os.environ.get("COURSE_BUILD_JOBS") or os.cpu_count() or 1)
    if not todo or jobs < 2:
        return
    queue = sorted(todo, key=todo.get, reverse=True)
    logger.info(f"[parallel_execution] executing {len(queue)} page(s) with {jobs} workers")
    start = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_execute, p, app.config.nb_execution_timeout, app.config.nb_execution_allow_errors)
            for p in queue
        ]
        for future in as_completed(futures):
            path, nb, seconds, error = future.result()
            name = Path(path).relative_to(app.srcdir)
            if error is not None:
                logger.info(f"[parallel_execution] {name} failed; it will run again while read")
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            logger.info(f"[parallel_execution] {name}: {seconds:.1f} s")
    logger.info(f"[parallel_execution] done in {time.perf_counter() - start:.1f} s")


def _last_runtimes(cache) -> dict[str, float]:
    """Seconds each page took when it was last cached (any version of it), by path. A page never
    run is ordered by its size instead (10 kB ~ 1 s), a rough proxy."""
    runs: dict[str, tuple] = {}
    for record in cache.list_cache_records():
        if record.uri not in runs or record.created > runs[record.uri][0]:
            runs[record.uri] = (record.created, record.data.get("execution_seconds") or 0.0)
    return {uri: seconds for uri, (_, seconds) in runs.items()}


def setup(app):
    app.connect("builder-inited", execute_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
