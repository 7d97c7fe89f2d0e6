"""Figures served for the width they are shown at (issue 18), loaded by _config.yml.

A page glues ``course_lib.plotting.responsive(fig)``: one PNG, the wide version at 1x, whose
``course-figure`` text chunk records the CSS size it is drawn for, its smallest font and, in
base64, the other versions (wide 2x, narrow 1x and 2x, the narrow one with its panels stacked).
This extension turns that into what a browser can choose from:

* every ``<img>`` of such a figure becomes a ``<picture>``: a ``<source>`` with the narrow
  version for screens too narrow for the wide one's text, and the wide one with
  ``srcset="… 1x, … 2x"``, each with its CSS ``width`` and ``height`` (so the page does not jump
  as it loads, and a 2x PNG is shown at its CSS size, not twice as large);
* when the build is done, the versions are written under ``_images/`` next to the main PNG, and
  the main PNG loses the base64 payload (readers download only what they see) but keeps its
  metadata, which tests/test_site_figures.py reads to check the text a phone shows.

The narrow version is used below the window width at which the wide version, shrunk to the text
column, would show its smallest text under ``MIN_TEXT_PX`` (9 CSS px): that width follows from
each figure's own metadata. Runs before book/_ext/course_site.py's image pass (priority 50 <
100), which then adds ``loading="lazy"`` and keeps the sizes given here.
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: CSS px between the window's width and a figure's: the text column's padding and the figure's
#: margins (measured at 360-768 px windows: a figure is 48 px narrower than the window).
GUTTER_PX = 48

_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r'\bsrc="([^"]+\.png)"')


def _plotting():
    """course_lib.plotting, imported only when the build needs it (it imports matplotlib)."""
    from course_lib import plotting

    return plotting


def _names(name: str) -> dict[str, str]:
    """The file name of each version of the figure whose main PNG is ``name``."""
    stem = name[: -len(".png")]
    return {
        "wide@1x": name,
        "wide@2x": f"{stem}@2x.png",
        "narrow@1x": f"{stem}-narrow.png",
        "narrow@2x": f"{stem}-narrow@2x.png",
    }


def breakpoint_px(meta: dict) -> int:
    """The widest window that gets the narrow version: below it, the wide version's smallest text,
    scaled down to fit the column, would be under MIN_TEXT_PX."""
    plotting = _plotting()
    column = plotting.MIN_TEXT_PX / meta["min_font_px"] * meta["css_width"]
    return math.ceil(column) + GUTTER_PX


def picture(tag: str, src: str, meta: dict) -> str:
    """The ``<picture>`` that replaces the ``<img>`` tag ``tag`` of a responsive figure."""
    base = src[: -len(Path(src).name)]
    names = {k: base + v for k, v in _names(Path(src).name).items()}
    narrow = meta["narrow"]
    source = (
        f'<source media="(max-width: {breakpoint_px(meta)}px)" '
        f'srcset="{html.escape(names["narrow@1x"])} 1x, {html.escape(names["narrow@2x"])} 2x" '
        f'width="{narrow["css_width"]}" height="{narrow["css_height"]}" />'
    )
    tag = re.sub(r'\s(width|height|srcset)="[^"]*"', "", tag)
    end = "/>" if tag.endswith("/>") else ">"
    img = (
        tag[: -len(end)].rstrip()
        + f' srcset="{html.escape(names["wide@1x"])} 1x, {html.escape(names["wide@2x"])} 2x"'
        + f' width="{meta["css_width"]}" height="{meta["css_height"]}" {end}'
    )
    return f'<picture class="course-figure">{source}{img}</picture>'


def _fix_figures(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if not body or "<img" not in body:
        return
    images = getattr(app.builder, "images", {})
    sources = {Path(dest).name: Path(app.srcdir, src) for src, dest in images.items()}

    def fix(m: re.Match) -> str:
        tag = m.group(0)
        src = _SRC.search(tag)
        path = sources.get(Path(src.group(1)).name) if src else None
        if path is None or not path.is_file():
            return tag
        meta = _plotting().figure_meta(path.read_bytes())
        if not meta or "variants" not in meta:
            return tag
        return picture(tag, src.group(1), meta)

    context["body"] = _IMG.sub(fix, body)


def write_versions(folder: Path) -> int:
    """Write the versions carried by each main PNG in ``folder`` as files, and strip the payload
    from the main PNG. Returns how many figures it wrote; idempotent."""
    plotting = _plotting()
    count = 0
    for path in sorted(folder.glob("*.png")):
        data = path.read_bytes()
        meta = plotting.figure_meta(data)
        if not meta or "variants" not in meta:
            continue
        names = _names(path.name)
        for key, b64 in meta.pop("variants").items():
            (folder / names[key]).write_bytes(base64.b64decode(b64))
        path.write_bytes(plotting.with_figure_meta(data, meta))
        count += 1
    return count


def _write_versions(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    folder = Path(app.outdir, app.builder.imagedir)
    if folder.is_dir():
        n = write_versions(folder)
        logger.info(f"figures: wrote the 1x/2x and narrow versions of {n} figures")


def setup(app):
    app.connect("html-page-context", _fix_figures, priority=50)
    app.connect("build-finished", _write_versions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
