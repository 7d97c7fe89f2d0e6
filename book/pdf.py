"""The whole book as one PDF (``make pdf``), and the site's "Download the book (PDF)" button.

As a script, ``python book/pdf.py`` builds the book as a single HTML page (Jupyter Book's
``singlehtml`` builder, strict, from the same sources and the same execution cache as the website:
no page runs again) and prints it to ``_build/pdf/book.pdf`` with Debian's Chromium through
Playwright (``page.pdf``). The math is the MathML the build writes (book/_ext/course_site.py), which
Chromium lays out itself; course.css's ``@media print`` rules drop the sidebars and buttons, keep
figures and equations whole and wrap code. What is still wider than the page after that (a wide
table or equation) is scaled down to fit here, just before printing. It prints the page count and
the seconds each step took.

As a Sphinx extension (``sphinx.local_extensions`` in _config.yml) it adds a header button to every
page that links to ``book.pdf``, and copies the PDF into the HTML output, but only when
``_build/pdf/book.pdf`` exists when the site is built: a site built without ``make pdf`` has no button
and no dead link. The button's presence is the config value ``course_book_pdf`` (rebuild "html"), so
the first build after the PDF appears rewrites every page with it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where ``make pdf`` leaves the book, relative to the build folder (_build).
PDF_IN_BUILD = Path("pdf") / "book.pdf"
#: Its name in the website, next to index.html.
PDF_IN_SITE = "book.pdf"

# --- the Sphinx extension ------------------------------------------------------------------------


def _built_pdf(app) -> Path:
    return Path(app.outdir).parent / PDF_IN_BUILD  # _build/html -> _build/pdf/book.pdf


def find_pdf(app, config) -> None:
    """config-inited: the button appears when the PDF is there (before the builder hashes the config)."""
    config.course_book_pdf = PDF_IN_SITE if _built_pdf(app).is_file() else ""


def pdf_button(app, pagename, templatename, context, doctree) -> None:
    """html-page-context, after sphinx-book-theme: the button, right after the page's download menu."""
    buttons = context.get("header_buttons")
    if buttons is None or not app.config.course_book_pdf:
        return
    button = {
        "type": "link",
        "url": context["pathto"](app.config.course_book_pdf, 1),
        "tooltip": "Download the book (PDF)",
        "icon": "fas fa-book",
        "label": "book-pdf-button",
    }
    labels = [b.get("label") for b in buttons]
    at = labels.index("download-buttons") + 1 if "download-buttons" in labels else len(buttons)
    buttons.insert(at, button)


def singlehtml_handlers(app) -> None:
    """builder-inited: the single-page build writes every node the html build writes.

    Sphinx gives a builder only the node handlers registered under its own name when there are any:
    sphinx-exercise registers some for ``singlehtml``, so that build loses the ``html`` ones of the
    other extensions (MyST-NB's hidden cells fail it: "unknown node type: HideCodeCellNode")."""
    if app.builder.name == "singlehtml":
        handlers = app.registry.translation_handlers
        own = handlers.setdefault("singlehtml", {})
        for node, pair in handlers.get("html", {}).items():
            own.setdefault(node, pair)


def copy_pdf(app, exception) -> None:
    """build-finished: the PDF goes into the website, where the button points."""
    if exception is None and app.builder.name == "html" and app.config.course_book_pdf:
        pdf = _built_pdf(app)
        if pdf.is_file():
            shutil.copy2(pdf, Path(app.outdir) / app.config.course_book_pdf)


def setup(app):
    app.add_config_value("course_book_pdf", "", "html")
    app.connect("config-inited", find_pdf)
    app.connect("builder-inited", singlehtml_handlers)
    app.connect("html-page-context", pdf_button, priority=520)  # after sphinx-book-theme (501)
    app.connect("build-finished", copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --- printing ------------------------------------------------------------------------------------

#: The left and right margins of a sheet.
MARGIN_MM = 14
#: A headless Chromium on a machine with no network (as tests/conftest.py starts it).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-dev-shm-usage"]
#: What is wider than its box in print (a table, a display equation, a pandas frame) is zoomed to fit.
FIT_WIDE = """() => {
  let n = 0;
  for (const box of document.querySelectorAll(
      'div.math, div.course-scroll, div.pst-scrollable-table-container, div.cell_output, figure')) {
    const wide = box.scrollWidth, room = box.clientWidth;
    if (room > 0 && wide > room + 1) {
      for (const child of box.children) child.style.zoom = (room / wide).toFixed(3);
      n++;
    }
  }
  return n;
}"""


def build_singlehtml(root: Path) -> None:
    """The book as one HTML page, strict, reusing the execution cache and the read sources."""
    jb = Path(sys.executable).with_name("jupyter-book")  # the venv's, as the Makefile runs it
    cmd = [str(jb), "build", str(root), "--builder", "singlehtml", "-W", "-n", "--keep-going"]
    subprocess.run(cmd, cwd=root, check=True)


def book_root(root: Path) -> str:
    """The root page of _toc.yml ("book/intro"): the single page holds the whole book."""
    import yaml

    return str(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))["root"]).removesuffix(".md")


def print_pdf(html: Path, out: Path, chromium: str) -> tuple[int, int]:
    """Print ``html`` to ``out`` in Chromium; returns (elements scaled to fit, pages)."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader

    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # As wide as the text of an A4 sheet (210 mm less the margins, at 96 px per inch), so that
            # what is measured as too wide here is too wide on paper.
            width = round((210 - 2 * MARGIN_MM) / 25.4 * 96)
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=300_000)
            page.emulate_media(media="print")
            # Lazy images would print blank: load them all, and wait for them.
            page.evaluate("() => Promise.all(Array.from(document.images).map(i => {"
                          " i.loading = 'eager'; return i.decode().catch(() => null); }))")
            scaled = page.evaluate(FIT_WIDE)
            page.pdf(
                path=str(out), format="A4", print_background=True, outline=True, tagged=True,
                margin={"top": "16mm", "bottom": "16mm", "left": f"{MARGIN_MM}mm", "right": f"{MARGIN_MM}mm"},
                display_header_footer=True, header_template="<span></span>",
                footer_template='<div style="font-size:8px;width:100%;text-align:center">'
                                '<span class="pageNumber"></span> / <span class="totalPages"></span></div>',
            )
        finally:
            browser.close()
    return scaled, len(PdfReader(str(out)).pages)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true", help="print _build/singlehtml as it is")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / PDF_IN_BUILD)
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: `apt-get install chromium` (Debian's), then `make pdf` again",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if not args.no_build:
        build_singlehtml(ROOT)
    t1 = time.perf_counter()
    built = ROOT / "_build" / "singlehtml" / f"{book_root(ROOT)}.html"  # index.html only redirects there
    if not built.is_file():
        print(f"{built} is missing: run without --no-build", file=sys.stderr)
        return 2
    # Sphinx writes the single page's links (_static/, _images/) relative to the output folder, not to
    # book/ where the page is: printed from there, it would have no styles and no figures.
    html = built.parents[len(Path(book_root(ROOT)).parts) - 1] / "book.html"
    html.write_bytes(built.read_bytes())
    scaled, pages = print_pdf(html, args.out, chromium)
    t2 = time.perf_counter()
    size = args.out.stat().st_size / 2**20
    print(f"{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: {pages} pages,"
          f" {size:.1f} MiB; singlehtml build {t1 - t0:.1f} s, printing {t2 - t1:.1f} s"
          f" ({scaled} wide boxes scaled to fit), {t2 - t0:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
