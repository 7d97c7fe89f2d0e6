"""The website as readers and students meet it: every page of _toc.yml in a real browser (Chromium).

Pages load with no console error and no failed request, images load and every figure has a
caption and alt text, math arrives as MathML written at build time (no MathJax, nothing typeset in
the browser), a phone (390x844) never scrolls the page sideways and reaches every wide table and
equation by scrolling its own box, axe-core finds no serious or critical accessibility violation,
internal links resolve, the search finds what readers look for, the assignment pages offer the
student notebook
(identical to exercises/) with a points table that matches its nbgrader metadata, launch and
download buttons are there, and nothing of the solutions leaks into the site, the student
notebooks or the feedback students get back.

Tests marked ``browser`` need Chromium (conftest: skipped locally without it, failed under CI);
the others read _build/html or the sources directly.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urldefrag, urlencode, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
browser = pytest.mark.browser
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
EXERCISES = sorted(p for p in (ROOT / "exercises").glob("*/*.ipynb") if p.parent.name == p.stem)


def toc_files() -> list[str]:
    """Every source file named in _toc.yml (globs expanded, as Sphinx does), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(re.sub(r"\.(md|ipynb)$", "", e["file"]))
            if "glob" in e:
                found = sorted(
                    str(Path(p).relative_to(ROOT).with_suffix("")).replace(os.sep, "/")
                    for ext in ("md", "ipynb")
                    for p in glob.glob(str(ROOT / f"{e['glob']}.{ext}"))
                )
                files.extend(f for f in found if f not in files)
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


PAGES = [f + ".html" for f in toc_files()]
ASSIGNMENT_PAGES = [f"book/assignments/{nb.stem}.html" for nb in EXERCISES]


def is_notebook_page(html_path: str) -> bool:
    """A MyST notebook page (jupytext header with a kernelspec): it gets launch buttons."""
    src = ROOT / html_path.replace(".html", ".md")
    if not src.is_file():
        return (ROOT / html_path.replace(".html", ".ipynb")).is_file()
    m = re.match(r"^---\n(.*?)\n---\n", src.read_text(encoding="utf-8"), flags=re.S)
    return bool(m and "kernelspec" in (yaml.safe_load(m.group(1)) or {}))


NOTEBOOK_PAGES = [p for p in PAGES if is_notebook_page(p)]


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
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


def test_toc_lists_the_pages(site):
    for p in ("book/intro.html", "book/01-activations.html", "book/tf-to-pytorch.html",
              "book/notation.html", "book/bibliography.html"):
        assert p in PAGES, f"{p} is missing from _toc.yml: {PAGES}"
    assert EXERCISES, "no student notebook exercises/<NN-name>/<NN-name>.ipynb found"
    for p in ASSIGNMENT_PAGES:
        assert p in PAGES, f"{p} (an assignment in exercises/) has no page in the table of contents"
    for p in PAGES:
        assert (site / p).is_file(), f"{p} is in _toc.yml but was not built"


@browser
@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(page, site_url, path):
    open_page(page, f"{site_url}/{path}")
    # Images below the first load lazily (when scrolled to): fetch them all now, as a reader scrolling would.
    page.evaluate(
        "() => Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
        " return i.decode().catch(() => null); }))"
    )
    page.wait_for_load_state("networkidle")
    assert page.problems == [], f"{path}: " + "\n".join(page.problems)
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert broken == [], f"{path}: images that did not load: {broken}"
    missing_alt = page.evaluate(
        "() => Array.from(document.querySelectorAll('main img')).filter(i => !i.alt.trim()).map(i => i.src)"
    )
    assert missing_alt == [], f"{path}: images without alt text: {missing_alt}"
    # Every image of the page's content is a figure with a caption.
    uncaptioned = page.evaluate(
        """() => Array.from(document.querySelectorAll('article.bd-article img')).filter(i => {
            const f = i.closest('figure');
            return !f || !f.querySelector('figcaption') || !f.querySelector('figcaption').innerText.trim();
        }).map(i => i.src)"""
    )
    assert uncaptioned == [], f"{path}: figures without a caption: {uncaptioned}"


@browser
@pytest.mark.parametrize("path", PAGES)
def test_math_is_typeset(page, site_url, path):
    """Math is MathML written at build time (book/_ext/course_site.py) that the browser lays out
    itself: every math element holds a <math> the browser knows (a MathMLElement with a size), no TeX
    command or escape is left in what it shows (``\\text{fan\\_in}`` reads fan_in), and no MathJax."""
    open_page(page, f"{site_url}/{path}")
    stats = page.evaluate(
        """() => {
        const blocks = Array.from(document.querySelectorAll('main .math'));
        // laid out by the browser (math inside a closed dropdown has no box: it is only checked as MathML)
        const drawn = m => m instanceof MathMLElement
                           && (!m.checkVisibility() || m.getBoundingClientRect().width > 0);
        return {math: blocks.length,
                untypeset: blocks.filter(b => !b.querySelector('math') || !drawn(b.querySelector('math')))
                                 .map(b => b.textContent.slice(0, 60)),
                raw_tex: blocks.map(b => b.querySelector('math'))
                               .filter(m => m && m.textContent.includes(String.fromCharCode(92)))  // '\\'
                               .map(m => m.textContent.slice(0, 60)),
                errors: Array.from(document.querySelectorAll('main code.course-math-error'))
                             .map(c => c.textContent.slice(0, 60)),
                mathjax: !!window.MathJax || !!document.querySelector('script[src*="mathjax" i]')};
        }"""
    )
    assert not stats["mathjax"], f"{path}: MathJax is loaded, but math is rendered at build time"
    assert stats["untypeset"] == [], f"{path}: math that is not drawn as MathML: {stats['untypeset']}"
    assert stats["raw_tex"] == [], f"{path}: TeX left in the rendered math: {stats['raw_tex']}"
    assert stats["errors"] == [], f"{path}: math the build could not convert: {stats['errors']}"
    text = page.evaluate(
        "() => { const m = document.querySelector('main').cloneNode(true);"
        " m.querySelectorAll('pre, code, .highlight').forEach(e => e.remove()); return m.innerText; }"
    )
    assert "$$" not in text, f"{path}: a raw $$ is left in the text (math that MathJax did not see)"


def _load_course_site():
    path = ROOT / "book" / "_ext" / "course_site.py"
    spec = importlib.util.spec_from_file_location("course_site_ext", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tex_to_mathml():
    """The build's TeX-to-MathML step on the TeX the pages use, and on TeX it must refuse."""
    tex_to_mathml = _load_course_site().tex_to_mathml
    out = tex_to_mathml(r"\operatorname{Var}(W) = \frac{2}{\text{fan\_in}}", display=True)
    assert out.startswith("<math") and 'display="block"' in out and "<mfrac>" in out
    assert "<mtext>fan_in</mtext>" in out, out  # the TeX escape \_ is not shown
    aligned = tex_to_mathml(r"\begin{aligned} a &= b \\ c &= d \end{aligned}", display=True)
    assert aligned.count("<mtr>") == 2 and 'style="text-align: right"' in aligned, aligned
    assert "&" not in aligned.replace("&#x", ""), aligned
    assert "<mtext>leaky_relu</mtext>" in tex_to_mathml(r"\operatorname{leaky\_relu}(x)", display=False)
    assert "<mo>arg</mo>" in tex_to_mathml(r"\arg\max_c p", display=False)
    assert '<mi>log</mi><mspace width="0.167em" /><msub>' in tex_to_mathml(r"\log P_n", display=False)
    sized = tex_to_mathml(r"\bigl\lVert \delta \bigr\rVert", display=False)
    assert sized.count("\u2016</mo>") == 2 and "\\" not in sized, sized
    for bad in (r"\notacommand{x}", r"a & b"):
        with pytest.raises(ValueError):
            tex_to_mathml(bad, display=False)


def test_pages_describe_themselves(site):
    """Every page has a meta description (its first paragraph), and no page but search.html loads the
    search scripts or the search index; images below the first load lazily."""
    for rel in PAGES:
        html = (site / rel).read_text(encoding="utf-8")
        m = re.search(r'<meta name="description" content="([^"]*)"', html)
        assert m and 20 <= len(m.group(1)) <= 170, f"{rel}: meta description {m and m.group(1)!r}"
        assert not re.search(r"<script[^>]*(searchindex|searchtools)\.js", html), f"{rel}: loads the search"
        imgs = re.findall(r"<img\b[^>]*>", html.split('<article', 1)[-1])
        assert all('loading="lazy"' in i for i in imgs[1:]), f"{rel}: images that do not load lazily"
    assert "searchindex.js" in (site / "search.html").read_text(encoding="utf-8")
    # A title's TeX in references.bib (Nesterov's O(1/k^2)) is math, not dollars and carets.
    bib = (site / "book" / "bibliography.html").read_text(encoding="utf-8")
    raw = re.findall(r"\$[^$<>\n]*[\\^_{][^$<>\n]*\$", bib)
    assert raw == [], f"raw TeX in the bibliography: {raw}"


def test_the_site_works_offline(site):
    """Scripts and stylesheets come from the build: nothing from a CDN. Math needs no script at all."""
    for rel in PAGES:
        html = (site / rel).read_text(encoding="utf-8")
        assets = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
        assets += re.findall(r'<link[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"', html)
        for a in assets:
            assert not urlparse(a).scheme and not a.startswith("//"), f"{rel}: {a} comes from the network"
            assert (site / rel).parent.joinpath(a.split("?")[0]).resolve().is_file(), f"{rel}: {a} missing"
        assert not any("mathjax" in a.lower() for a in assets), f"{rel}: loads MathJax ({assets})"
        if 'class="math' in html:
            assert "<math " in html, f"{rel}: math but no MathML written at build time"


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


@browser
@pytest.mark.parametrize(("word", "expected_page"), [
    ("dropout", "book/tf-to-pytorch.html"),
    ("Xavier", "book/tf-to-pytorch.html"),
])
def test_search_finds(page, site_url, word, expected_page):
    """The search page, driven like a reader does, lists the pages that mention the word."""
    open_page(page, f"{site_url}/search.html?q={word}")
    page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
    hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    paths = {urlparse(h).path.lstrip("/") for h in hrefs}
    assert expected_page in paths, f"searching {word!r} found {sorted(paths)}, not {expected_page}"
    assert page.problems == [], "\n".join(page.problems)


# --- assignment pages ------------------------------------------------------------------------


def nbgrader_points(nb_path: Path) -> list[tuple[str, float]]:
    """(grade_id, points) of every graded cell, read here independently of the site's extension."""
    cells = json.loads(nb_path.read_text())["cells"]
    out = []
    for c in cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            out.append((meta["grade_id"], float(meta.get("points", 0))))
    return out


def _cells(nb: dict) -> list[tuple]:
    def src(c):
        return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]

    return [(c["cell_type"], src(c), json.dumps(c.get("metadata", {}), sort_keys=True)) for c in nb["cells"]]


@browser
@pytest.mark.parametrize("nb_path", EXERCISES, ids=lambda p: p.stem)
def test_assignment_page(page, site_url, nb_path, output_dir):
    name = nb_path.stem
    open_page(page, f"{site_url}/book/assignments/{name}.html")
    assert page.problems == [], "\n".join(page.problems)

    # The points table is the notebook's nbgrader metadata, part by part, and its total.
    rows = page.eval_on_selector_all(
        "table.points-table tbody tr",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))",
    )
    expected = nbgrader_points(nb_path)
    assert expected, f"{nb_path} has no graded cell"
    *parts, total = rows
    shown = [(r[1], float(r[-1])) for r in parts]
    assert shown == expected, f"points table {shown} != nbgrader metadata {expected}"
    assert float(total[-1]) == sum(p for _, p in expected), f"total {total} != {sum(p for _, p in expected)}"

    # The download link gives the student notebook itself: same cells, no solutions.
    link = page.locator("article a.download", has_text=f"{name}.ipynb").first
    with page.expect_download() as dl:
        link.click()
    got = Path(dl.value.path()).read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker not in got, f"the downloaded notebook contains {marker!r}"
    assert _cells(json.loads(got)) == _cells(json.loads(nb_path.read_text())), (
        "the downloaded notebook differs from " + str(nb_path.relative_to(ROOT))
    )
    header_dl = page.get_attribute(".dropdown-download-buttons a.btn-download-notebook-button", "href")
    assert header_dl and urljoin(page.url, header_dl) == urljoin(page.url, link.get_attribute("href"))

    # Rendered, not executed: one captioned code block per code cell, and no outputs.
    n_code = sum(c["cell_type"] == "code" for c in json.loads(got)["cells"])
    assert page.locator("article .literal-block-wrapper").count() == n_code
    assert page.locator("article .cell_output, article .output").count() == 0

    # Launch buttons open the student notebook.
    launch = page.eval_on_selector_all(".dropdown-launch-buttons a", "els => els.map(e => e.href)")
    want = expected_launch_urls(f"exercises/{name}/{name}.ipynb", ipynb=True)
    assert sorted(launch) == sorted(want.values()), f"launch buttons {launch} != {want}"

    text = page.inner_text("article")
    for words in (f"course check {name}.ipynb", "Restart & Run All", "Submit"):
        assert words in text, f"the page does not say {words!r}"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(output_dir / f"screenshot-assignment-{name}.png"))


def expected_launch_urls(path_in_repo: str, ipynb: bool) -> dict[str, str]:
    """The launch URLs _config.yml asks for, for a file of the repository."""
    repo = CONFIG["repository"]["url"].rstrip("/")
    branch = CONFIG["repository"].get("branch", "main")
    org_repo = urlparse(repo).path.strip("/")
    b = CONFIG.get("launch_buttons", {})
    ui = {"classic": "tree", "jupyterlab": "lab/tree"}[b.get("notebook_interface", "classic")]
    urls = {}
    if b.get("binderhub_url"):
        binder = b["binderhub_url"].rstrip("/")
        urls["Binder"] = f"{binder}/v2/gh/{org_repo}/{branch}?urlpath={ui}/{path_in_repo}"
    if b.get("jupyterhub_url"):
        query = urlencode({"repo": repo, "urlpath": f"{ui}/{org_repo.split('/')[1]}/{path_in_repo}",
                           "branch": branch}, safe="/")
        urls["JupyterHub"] = f"{b['jupyterhub_url'].rstrip('/')}/hub/user-redirect/git-pull?{query}"
    if b.get("colab_url") and ipynb:
        urls["Colab"] = f"{b['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{path_in_repo}"
    return urls


def test_launch_buttons_are_configured():
    """Binder and Colab are on, for the repository named in _config.yml."""
    b = CONFIG["launch_buttons"]
    assert b.get("binderhub_url") and b.get("colab_url") and "jupyterhub_url" in b
    assert urlparse(CONFIG["repository"]["url"]).netloc == "github.com"


@browser
@pytest.mark.parametrize("path", NOTEBOOK_PAGES)
def test_chapter_launch_and_download_buttons(page, site_url, site, path):
    """Chapters: Binder (and JupyterHub) launch buttons; .ipynb and .md downloads that work."""
    open_page(page, f"{site_url}/{path}")
    src = path.replace(".html", ".md")
    launch = page.eval_on_selector_all(".dropdown-launch-buttons a", "els => els.map(e => e.href)")
    want = expected_launch_urls(src, ipynb=False)
    assert sorted(launch) == sorted(want.values()), f"{path}: launch buttons {launch} != {want}"
    nb_href = page.get_attribute(".dropdown-download-buttons a.btn-download-notebook-button", "href")
    md_href = page.get_attribute(".dropdown-download-buttons a.btn-download-source-button", "href")
    assert nb_href and md_href, f"{path}: no .ipynb or .md download button"
    nb = page.request.get(urljoin(page.url, nb_href))
    assert nb.ok and json.loads(nb.text())["nbformat"] == 4, f"{path}: {nb_href} is not a notebook"
    md = page.request.get(urljoin(page.url, md_href))
    assert md.ok and md.text() == (ROOT / src).read_text(encoding="utf-8"), f"{path}: {md_href} != {src}"


def _load_extension():
    path = ROOT / "book" / "_ext" / "assignments.py"
    spec = importlib.util.spec_from_file_location("assignments_ext", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_assignment_generator_units(tmp_path):
    """The generator on a made-up notebook: manual parts, JupyterHub links, refusing solutions."""
    ext = _load_extension()
    cell = {"cell_type": "code", "source": "x = 1", "metadata": {}}
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# A title\nWhat it covers.", "metadata": {}},
        {"cell_type": "markdown", "source": "## 1. Code\n```\n# not a heading\n```", "metadata": {}},
        {**cell, "metadata": {"nbgrader": {"grade": True, "solution": False, "grade_id": "t1", "points": 2}}},
        {"cell_type": "markdown", "source": "## Essay", "metadata": {}},
        {"cell_type": "markdown", "source": "Answer here", "metadata": {
            "nbgrader": {"grade": True, "solution": True, "grade_id": "essay", "points": 1.5}}},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "ex" / "07-x").mkdir(parents=True)
    (tmp_path / "ex" / "07-x" / "07-x.ipynb").write_text(json.dumps(nb))
    (a,) = ext.find_assignments(tmp_path, "ex", "pages")
    assert a.title == "A title"
    parts = [(p.grade_id, p.points, p.part) for p in a.graded_parts()]
    assert parts == [("t1", 2, "1. Code"), ("essay", 1.5, "Essay")]
    options = {"repository_url": "https://github.com/o/r", "repository_branch": "dev",
               "launch_buttons": {"jupyterhub_url": "https://hub.example.edu/", "binderhub_url": "",
                                  "colab_url": "https://colab.research.google.com"}}
    links = dict(ext.launch_links(options, "ex/07-x/07-x.ipynb"))
    hub = urlparse(links["JupyterHub"])
    assert hub.netloc == "hub.example.edu" and hub.path == "/hub/user-redirect/git-pull"
    assert parse_qs(hub.query) == {
        "repo": ["https://github.com/o/r"], "urlpath": ["tree/r/ex/07-x/07-x.ipynb"], "branch": ["dev"]
    }
    assert links["Colab"] == "https://colab.research.google.com/github/o/r/blob/dev/ex/07-x/07-x.ipynb"
    assert "Binder" not in links
    text = ext.render_page(a, options, chapter=None, label="a-07")
    assert "**3.5**" in text and "### 1. Code" in text and "# not a heading" in text
    assert "\n# not a heading" in text.split("### 1. Code")[1], "a comment in a fence became a heading"
    nb["cells"][2]["source"] = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    (tmp_path / "ex" / "07-x" / "07-x.ipynb").write_text(json.dumps(nb))
    with pytest.raises(Exception, match="must not contain"):
        ext.find_assignments(tmp_path, "ex", "pages")


def test_exercise_solutions_are_dropdowns(site):
    """sphinx-exercise solutions in the chapters are folded: the reader opens them on purpose."""
    for rel in PAGES:
        html = (site / rel).read_text(encoding="utf-8")
        for cls in re.findall(r'<div class="([^"]*\bsolution\b[^"]*)"', html):
            assert "dropdown" in cls.split(), f"{rel}: a solution that is not a dropdown ({cls})"


# --- screenshots, light and dark ------------------------------------------------------------


@browser
def test_screenshots(page, site_url, output_dir):
    for name, path in [("home", "book/intro.html"), ("chapter-01", "book/01-activations.html")]:
        open_page(page, f"{site_url}/{path}")
        out = output_dir / f"screenshot-{name}.png"
        page.screenshot(path=str(out), full_page=False)
        assert out.stat().st_size > 10_000, f"{out} looks empty"


def _luminance(rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", rgb)[:3])

    def lin(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@browser
def test_dark_mode(browser, site_url, output_dir):
    """In the dark theme, text and captions keep their contrast and figures stay on white."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    try:
        page = ctx.new_page()
        open_page(page, f"{site_url}/book/01-activations.html")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        colours = page.evaluate(
            """() => {
            const bg = getComputedStyle(document.body).backgroundColor;
            const col = e => e ? getComputedStyle(e).color : null;
            const fig = document.querySelector('article figure');
            return {bg, text: col(document.querySelector('article p')),
                    caption: col(fig && fig.querySelector('figcaption')),
                    filter: fig ? getComputedStyle(fig.querySelector('img')).filter : 'none'};
            }"""
        )
        assert _contrast(colours["text"], colours["bg"]) >= 4.5, colours
        if colours["caption"]:
            assert _contrast(colours["caption"], colours["bg"]) >= 4.5, colours
        assert "invert" not in colours["filter"], f"figures are colour-inverted in dark mode: {colours}"
        figure = page.locator("article figure").first
        figure.scroll_into_view_if_needed()
        out = output_dir / "screenshot-chapter-01-dark.png"
        page.screenshot(path=str(out))
        assert out.stat().st_size > 10_000, f"{out} looks empty"
    finally:
        ctx.close()


# --- a phone, and accessibility ----------------------------------------------------------------

PHONE = {"width": 390, "height": 844}
AXE = ROOT / ".venv" / "node" / "node_modules" / "axe-core" / "axe.min.js"  # `make test` installs it (npm)


@pytest.fixture
def phone(browser):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
    yield ctx.new_page()
    ctx.close()


@browser
@pytest.mark.parametrize("path", PAGES)
def test_phone_layout(phone, site_url, path):
    """At 390x844 the page never scrolls sideways, and every table and display equation wider than
    the text is inside a box that scrolls sideways itself (and that a keyboard can focus)."""
    open_page(phone, f"{site_url}/{path}")
    got = phone.evaluate(
        """() => {
        const vw = document.documentElement.clientWidth;
        const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
        const box = e => { for (let a = e; a && a !== document.body; a = a.parentElement)
                               if (scrolls(a)) return a; return null; };
        const wide = [], stuck = [];
        for (const e of document.querySelectorAll('article table, article math[display="block"]')) {
            const b = box(e);
            const r = e.getBoundingClientRect();
            const label = e.tagName + ': ' + e.textContent.trim().slice(0, 50);
            // A <math> may draw its content wider than its own box: measure the content.
            const content = Math.max(r.width,
                                     ...Array.from(e.children).map(c => c.getBoundingClientRect().width));
            if (b) {
                const br = b.getBoundingClientRect();
                if (b.scrollWidth > b.clientWidth + 1) wide.push(label);
                if (content > b.clientWidth + 1 && b.scrollWidth + 1 < content)
                    stuck.push(label + ' (clipped: its box does not scroll to all of it)');
                if (br.right > vw + 1) stuck.push(label + ' (its scroll box is wider than the screen)');
                else if (b.scrollWidth > b.clientWidth + 1
                         && !(b.tabIndex >= 0 || b.querySelector('a, button')))
                    stuck.push(label + ' (its scroll box cannot be focused)');
            } else if (r.right > vw + 1 || r.left < -1) stuck.push(label + ' (cut off, no scroll box)');
        }
        const over = Array.from(document.querySelectorAll('article *'))
            .filter(e => e.getBoundingClientRect().right > vw + 1 && !box(e.parentElement))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 40));
        return {vw, doc: document.documentElement.scrollWidth, wide: wide.length, stuck, over};
        }"""
    )
    assert got["doc"] <= got["vw"], (
        f"{path}: the page is {got['doc']} px wide on a {got['vw']} px phone: {got['over']}")
    assert got["stuck"] == [], f"{path}: wide content a phone cannot reach: {got['stuck']}"


@browser
@pytest.mark.parametrize("path", PAGES)
def test_accessibility(page, site_url, path):
    """axe-core (the npm package, loaded from a local file: offline) finds no serious or critical
    violation, with WCAG 2.1's label-content-name-mismatch rule switched on as Lighthouse does."""
    if not AXE.is_file():
        msg = f"{AXE} is missing: `make test` installs axe-core with npm"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    open_page(page, f"{site_url}/{path}")
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => {
        const r = await axe.run(document, {rules: {'label-content-name-mismatch': {enabled: true}}});
        return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => `${v.id} (${v.impact}, ${v.nodes.length}x): ${v.help};`
                      + ` e.g. ${v.nodes[0].html.slice(0, 120)}`);
        }"""
    )
    assert violations == [], f"{path}:\n" + "\n".join(violations)


# --- leaks: nothing of the solutions reaches what students and readers see -------------------

MARKERS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")


#: Lines of solution or hidden-test code too generic to count as a leak when they appear elsewhere
#: (reviewed one by one; a line that gives away an answer never belongs here).
GENERIC_LINES = {'with np.errstate(all="ignore"):'}


def _released_lines() -> set[str]:
    """Every line of the student notebooks: what students already see is not a leak."""
    lines = set()
    for nb_path in EXERCISES:
        for cell in json.loads(nb_path.read_text())["cells"]:
            lines.update(s.strip() for s in "".join(cell["source"]).splitlines())
    return lines


def solution_lines(kind: str = "") -> set[str]:
    """Distinctive code lines inside the ``### BEGIN <kind>`` regions of every assignment (all
    solution and hidden-test regions when ``kind`` is empty): 25 characters or more, not a
    comment, not a line the student notebook shows anyway, not in ``GENERIC_LINES``."""
    lines: set[str] = set()
    for nb_path in (ROOT / "solutions").glob("*/*.ipynb"):
        for cell in json.loads(nb_path.read_text())["cells"]:
            inside = False
            for line in "".join(cell["source"]).splitlines():
                s = line.strip()
                if s.startswith(f"### BEGIN {kind}".rstrip()):
                    inside = True
                elif s.startswith("### END"):
                    inside = False
                elif inside and len(s) >= 25 and not s.startswith("#"):
                    lines.add(s)
    return lines - _released_lines() - GENERIC_LINES


def judge_lines() -> set[str]:
    """Distinctive code lines of every assignment's judge (``solutions/<NN>/judge.py``, the hidden
    tests): 30 characters or more, code (not a comment, a message string or an import), and not
    part of a line the student or solution notebook shows anyway (a perfect student sees their own
    answer; a judge may split a visible test's long line in two)."""
    shown = "\n".join(_released_lines() | solution_lines())
    lines = set()
    for path in (ROOT / "solutions").glob("*/judge.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            code = not s.startswith(("#", '"', "'", 'f"', "f'", "assert", ")", "import ", "from "))
            if len(s) >= 30 and code and s not in shown:
                lines.add(s)
    return lines - GENERIC_LINES


def student_facing_texts(site: Path):
    yield from site.rglob("*.html")
    yield from site.rglob("*.ipynb")
    yield from (site / "_sources").rglob("*.md")
    yield from (ROOT / "exercises").rglob("*.ipynb")
    yield from (ROOT / "book" / "assignments").rglob("*.md")


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


def _readable(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":  # compare with the notebook's code and outputs, not its JSON escaping
        cells = json.loads(text)["cells"]
        parts = ["".join(c["source"]) for c in cells]
        for c in cells:
            for o in c.get("outputs", []):
                parts.append(json.dumps(o, ensure_ascii=False).replace("\\n", "\n"))
        return "\n".join(parts)
    if path.suffix == ".html":  # compare with the text a reader sees, not the highlighted markup
        return _text_of(text)
    return text


def test_no_solution_leaks(site):
    lines = solution_lines() | judge_lines()
    assert lines, "found no solution code to check: are solutions/ notebooks marked up?"
    leaks = []
    for path in student_facing_texts(site):
        text = _readable(path)
        leaks += [f"{path}: {m}" for m in MARKERS if m in text]
        leaks += [f"{path}: solution line {s!r}" for s in lines if s in text]
    assert leaks == [], "solution material in student-facing files:\n" + "\n".join(leaks[:20])


def feedback_dirs() -> list[Path]:
    """Feedback already written by the grading tests or `course grade`: test-output/**/feedback,
    and the folder in COURSE_FEEDBACK_DIR when set."""
    dirs = [p for p in (ROOT / "test-output").glob("**/feedback") if p.is_dir()]
    if os.environ.get("COURSE_FEEDBACK_DIR"):
        dirs.append(Path(os.environ["COURSE_FEEDBACK_DIR"]))
    return dirs


def _solved(released: dict, solution_path: Path) -> dict:
    """The released notebook with every answer cell filled in from the solution (markers removed):
    what a student who answered everything right submits."""
    answers = {}
    for c in json.loads(solution_path.read_text())["cells"]:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            lines = "".join(c["source"]).splitlines()
            keep = [x for x in lines if "### BEGIN SOLUTION" not in x and "### END SOLUTION" not in x]
            answers[meta["grade_id"]] = "\n".join(keep)
    nb = json.loads(json.dumps(released))
    for c in nb["cells"]:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            c["source"] = answers[gid]
    return nb


def _grade_for_feedback(tmp: Path) -> list[Path]:
    """`course grade` every assignment for two students, one who handed in the blank notebook and
    one who answered everything right, and return their feedback folders."""
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    out_dirs = []
    for nb_path in EXERCISES:
        name = nb_path.stem
        released = json.loads(nb_path.read_text())
        subs = tmp / name / "submissions"
        solved = _solved(released, ROOT / "solutions" / name / nb_path.name)
        for student, nb in (("blank", released), ("solved", solved)):
            (subs / student).mkdir(parents=True)
            (subs / student / nb_path.name).write_text(json.dumps(nb))
        out = tmp / name / "graded"
        r = subprocess.run(
            [str(bin_dir / "course"), "grade", name, str(subs), "--out", str(out), "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        assert r.returncode == 0, f"course grade {name} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        out_dirs.append(out / "feedback")
    return out_dirs


@pytest.mark.slow
def test_no_hidden_tests_in_feedback(tmp_path):
    """Feedback handed back to students shows no line of the judge (the hidden tests). (It may
    show solution code: a student who answered perfectly sees their own answer.) Checks the feedback found in
    test-output/ or COURSE_FEEDBACK_DIR, else grades a blank and a perfect submission of every
    assignment with `course grade` and checks theirs."""
    dirs = feedback_dirs() or _grade_for_feedback(tmp_path)
    files = [f for d in dirs for f in d.rglob("*") if f.suffix in (".html", ".ipynb")]
    assert files, f"no feedback files in {dirs}"
    hidden = judge_lines() | solution_lines("HIDDEN TESTS")  # (no notebook holds hidden tests now)
    assert len(hidden) > 100, f"found only {len(hidden)} judge lines in solutions/*/judge.py"
    leaks = []
    for path in files:
        text = _readable(path)
        leaks += [f"{path}: {m}" for m in MARKERS if m in text]
        leaks += [f"{path}: hidden-test line {s!r}" for s in hidden if s in text]
    assert leaks == [], "hidden tests in feedback:\n" + "\n".join(leaks[:20])
