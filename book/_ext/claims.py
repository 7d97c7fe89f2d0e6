"""The claims of every page, collected into ``_build/claims/<page>.json`` and the claims appendix.

A page records each finding with ``course_lib.claims.claim(...)``, which raises (and so fails the
strict build) when the page's own numbers contradict it, and otherwise leaves the claim's record
in the cell's output (MIME type ``course_lib.claims.MIME``). This extension reads those records
back from the executed notebooks in the jupyter-cache once every page has been read
(``env-updated``: cached and freshly executed pages alike), checks that keys are unique on a page,
writes one JSON file per page (a list of records: ``key``, ``statement``, ``value``, ``se``,
``n_seeds``, ``holds``, ...) and renders the ``{claims-table}`` directive of the appendix page
(``book/claims.md``): every claim, its numbers, its seeds, and a link to the box where the page
makes it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


class claims_table(nodes.General, nodes.Element):  # noqa: N801 - docutils node naming
    """Placeholder of the ``claims-table`` directive, filled in at ``doctree-resolved``."""


class ClaimsTable(SphinxDirective):
    """``{claims-table}``: the table of every claim of the book (no arguments)."""

    def run(self):
        pages = getattr(self.env, "course_claims_pages", set())
        pages.add(self.env.docname)
        self.env.course_claims_pages = pages
        return [claims_table("")]


def purge(app, env, docname: str) -> None:
    getattr(env, "course_claims_pages", set()).discard(docname)


def _notebook_pages(app, env) -> dict[str, Path]:
    from myst_nb.core.read import is_myst_markdown_notebook

    pages = {}
    for docname in sorted(env.found_docs):
        path = Path(env.doc2path(docname))
        if path.suffix != ".md" or not path.is_file():
            continue
        with path.open(encoding="utf8") as f:
            if is_myst_markdown_notebook(f):
                pages[docname] = path
    return pages


def collect(app, env) -> list[str]:
    """Read every page's claim records from the cache; write _build/claims/<page>.json. Returns
    the pages that show the claims table: they are written again whenever any page is."""
    from course_lib.claims import records_from_notebook

    if not app.config.nb_execution_cache_path:
        return []
    from jupyter_cache import get_cache
    from myst_nb.core.read import myst_nb_reader_plugin

    cache = get_cache(app.config.nb_execution_cache_path)
    out_dir = Path(app.outdir).parent / "claims"
    out_dir.mkdir(parents=True, exist_ok=True)
    claims: dict[str, list[dict]] = {}
    for docname, path in _notebook_pages(app, env).items():
        try:
            record = cache.match_cache_notebook(myst_nb_reader_plugin(str(path)))
        except KeyError:
            logger.warning(f"[claims] {docname} is not in the execution cache: its claims are unknown")
            continue
        records = records_from_notebook(cache.get_cache_bundle(record.pk).nb)
        keys = [r["key"] for r in records]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            logger.warning(f"[claims] {docname} makes the claims {repeated} more than once: keys are unique")
        stem = Path(docname).name
        for r in records:
            if r.get("page") != stem:
                logger.warning(
                    f"[claims] {docname}: claim {r['key']} names the page {r.get('page')!r}, not {stem!r}"
                )
        if records:
            claims[docname] = records
        target = out_dir / f"{stem}.json"
        if records:
            target.write_text(json.dumps(records, indent=1) + "\n")
        elif target.exists():
            target.unlink()
    env.course_claims = claims
    return sorted(getattr(env, "course_claims_pages", set()))


def _status(record: dict) -> str:
    if record.get("holds") is None:
        return "not measured in this build"
    return "holds" if record["holds"] else "FAILS"


def _table_html(app, fromdocname: str, claims: dict[str, list[dict]]) -> str:
    env = app.builder.env
    parts = []
    total = sum(len(v) for v in claims.values())
    measured = sum(1 for v in claims.values() for r in v if r.get("holds") is not None)
    parts.append(
        f'<p class="course-claims-count">{total} claims on {len(claims)} pages; {measured} measured '
        f"in this build, all of them hold (a claim that does not hold stops the build).</p>"
    )
    for docname, records in claims.items():
        title = env.titles.get(docname)
        name = title.astext() if title is not None else docname
        uri = app.builder.get_relative_uri(fromdocname, docname)
        parts.append(
            f'<h2 class="course-claims-page"><a href="{html.escape(uri)}">{html.escape(name)}</a></h2>'
        )
        parts.append(
            '<div class="course-claims-scroll"><table class="course-claims-table">'
            "<thead><tr><th>claim</th><th>evidence</th><th>status</th></tr></thead><tbody>"
        )
        for r in records:
            link = f"{uri}#claim-{r['key']}"
            parts.append(
                "<tr>"
                f'<td><a href="{html.escape(link)}">{html.escape(r["statement"])}</a></td>'
                f"<td>{html.escape(r.get('text') or '')}</td>"
                f"<td>{html.escape(_status(r))}</td>"
                "</tr>"
            )
        parts.append("</tbody></table></div>")
    return "\n".join(parts)


def resolve(app, doctree, fromdocname: str) -> None:
    claims = getattr(app.builder.env, "course_claims", {})
    for node in doctree.findall(claims_table):
        if app.builder.format != "html":
            node.replace_self(nodes.paragraph(text="The claims table is part of the HTML edition."))
            continue
        node.replace_self(nodes.raw("", _table_html(app, fromdocname, claims), format="html"))


def setup(app):
    app.add_node(claims_table)
    app.add_directive("claims-table", ClaimsTable)
    app.connect("env-purge-doc", purge)
    app.connect("env-updated", collect)
    app.connect("doctree-resolved", resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
