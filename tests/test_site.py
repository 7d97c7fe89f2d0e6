"""The website as readers meet it: every page of _toc.yml in a real browser (Chromium).

Pages load with no console error and no failed request, images load, math is typeset by the
MathJax copy served from the build, internal links resolve, and nothing of the solutions leaks.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser


def toc_pages() -> list[str]:
    """Every file named in _toc.yml, as an html path relative to _build/html."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb)$", "", f) + ".html" for f in files]


PAGES = toc_pages()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.problems = []  # console errors and failed requests, in order
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: pg.problems.append(f"request failed: {r.url} ({r.failure})"))
    pg.on("response", lambda r: r.status >= 400 and pg.problems.append(f"HTTP {r.status}: {r.url}"))
    yield pg
    ctx.close()


def open_page(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    # Wait for MathJax (served from _static/mathjax) to finish typesetting, if the page has math.
    page.evaluate(
        "() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve()"
    )


def test_toc_lists_the_pages(site):
    assert "book/intro.html" in PAGES and "book/01-activations.html" in PAGES, PAGES
    for p in PAGES:
        assert (site / p).is_file(), f"{p} is in _toc.yml but was not built"


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(page, site_url, path):
    open_page(page, f"{site_url}/{path}")
    assert page.problems == [], f"{path}: " + "\n".join(page.problems)
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert broken == [], f"{path}: images that did not load: {broken}"
    missing_alt = page.evaluate(
        "() => Array.from(document.querySelectorAll('main img')).filter(i => !i.alt).map(i => i.src)"
    )
    assert missing_alt == [], f"{path}: images without alt text: {missing_alt}"


@pytest.mark.parametrize("path", PAGES)
def test_math_is_typeset(page, site_url, path):
    open_page(page, f"{site_url}/{path}")
    stats = page.evaluate(
        """() => {
        const blocks = Array.from(document.querySelectorAll('main .math'));
        return {math: blocks.length,
                untypeset: blocks.filter(b => !b.querySelector('mjx-container'))
                                 .map(b => b.textContent.slice(0, 60)),
                mathjax: !!window.MathJax};
        }"""
    )
    if stats["math"]:
        assert stats["mathjax"], f"{path}: math on the page but MathJax did not load"
    assert stats["untypeset"] == [], f"{path}: math left as raw TeX: {stats['untypeset']}"
    text = page.evaluate(
        "() => { const m = document.querySelector('main').cloneNode(true);"
        " m.querySelectorAll('pre, code, .highlight').forEach(e => e.remove()); return m.innerText; }"
    )
    assert "$$" not in text, f"{path}: a raw $$ is left in the text (math that MathJax did not see)"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_internal_links_resolve(site):
    """Every relative link of every page points to a built file, and to an existing anchor."""
    bad = []
    for rel in PAGES:
        page = site / rel
        for href in _parse(page).hrefs:
            if urlparse(href).scheme or href.startswith(("mailto:", "//")):
                continue
            target, frag = urldefrag(urljoin(page.as_uri(), href))
            target_path = Path(urlparse(target).path)
            if not target_path.exists():
                bad.append(f"{rel}: {href} -> missing file")
            elif frag and target_path.suffix == ".html" and frag not in _parse(target_path).ids:
                bad.append(f"{rel}: {href} -> no element with id {frag!r}")
    assert bad == [], "broken internal links:\n" + "\n".join(bad)


def test_screenshots(page, site_url, output_dir):
    for name, path in [("home", "book/intro.html"), ("chapter-01", "book/01-activations.html")]:
        open_page(page, f"{site_url}/{path}")
        out = output_dir / f"screenshot-{name}.png"
        page.screenshot(path=str(out), full_page=False)
        assert out.stat().st_size > 10_000, f"{out} looks empty"


# --- leaks: nothing of the solutions reaches what students and readers see -------------------

MARKERS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")


def solution_lines() -> set[str]:
    """Distinctive code lines inside the solution and hidden-test regions of every assignment."""
    lines: set[str] = set()
    for nb_path in (ROOT / "solutions").glob("*/*.ipynb"):
        for cell in json.loads(nb_path.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                s = line.strip()
                if s.startswith("### BEGIN"):
                    inside = True
                elif s.startswith("### END"):
                    inside = False
                elif inside and len(s) >= 25 and not s.startswith("#"):
                    lines.add(s)
    return lines


def student_facing_texts(site: Path):
    yield from site.rglob("*.html")
    yield from site.rglob("*.ipynb")
    yield from (ROOT / "exercises").rglob("*.ipynb")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def _text_of(html: str) -> str:
    p = _Text()
    p.feed(html)
    return "".join(p.parts)


def test_no_solution_leaks(site):
    lines = solution_lines()
    assert lines, "found no solution code to check: are solutions/ notebooks marked up?"
    leaks = []
    for path in student_facing_texts(site):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":  # compare with the notebook's code, not its JSON escaping
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        else:  # compare with the text a reader sees, not the highlighted and escaped markup
            text = _text_of(text)
        leaks += [f"{path}: {m}" for m in MARKERS if m in text]
        leaks += [f"{path}: solution line {s!r}" for s in lines if s in text]
    assert leaks == [], "solution material in student-facing files:\n" + "\n".join(leaks[:20])
