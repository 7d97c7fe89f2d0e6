"""What a reader of the site gets besides the pages (issue 18): the whole book as a PDF, each page's
"Show source" and "Suggest edit" links, and the date it was last changed.

The PDF is made by ``make pdf`` (book/pdf.py; ``make test`` makes it when Chromium is there). Without
it the PDF tests are skipped locally and fail under CI, as the browser tests do, and the pages must
then have no PDF button. The last-updated dates come from git (sphinx-last-updated-by-git): they
are checked against the repository's history when it has one.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import yaml
from test_site import ASSIGNMENT_PAGES, PAGES

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PDF = ROOT / "_build" / "pdf" / "book.pdf"
#: The book is over 300 A4 pages; fewer than this means chapters went missing from the print.
MIN_PAGES = 150
#: TeX that must never reach a reader: every formula is MathML by the time the page is printed.
RAW_TEX = ("$$", "\\frac", "\\begin{", "\\mathbf", "\\sum_", "\\left(")


class _Page(HTMLParser):
    """The header buttons (class ``btn-<label>``: href), the footer text and the meta tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.buttons: dict[str, dict[str, str]] = {}
        self.meta: dict[str, str] = {}
        self.h1: list[str] = []
        self.text: list[str] = []
        self._in_h1 = 0

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "a":
            for cls in a.get("class", "").split():
                if cls.startswith("btn-") and cls != "btn-sm":
                    self.buttons[cls[4:]] = a
        elif tag == "meta" and (a.get("property") or a.get("name")):
            self.meta[a.get("property") or a.get("name")] = a.get("content", "")
        elif tag == "h1":
            self._in_h1 += 1
            self.h1.append("")

    def handle_endtag(self, tag):
        if tag == "h1" and self._in_h1:
            self._in_h1 -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h1:
            self.h1[-1] += data


def parse(site: Path, path: str) -> _Page:
    p = _Page()
    p.feed((site / path).read_text(encoding="utf-8"))
    return p


def words(text: str) -> str:
    """Text as a PDF's text layer gives it back: one space between words, no soft hyphens."""
    return " ".join(text.replace("\u00ad", "").replace("\u00a0", " ").split())


def source_of(path: str) -> str:
    """The repository file a page is made from: its .md, or an assignment page's student notebook."""
    if path in ASSIGNMENT_PAGES:
        name = Path(path).stem
        return f"exercises/{name}/{name}.ipynb"
    return path.removesuffix(".html") + ".md"


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def need_pdf() -> Path:
    if not PDF.is_file():
        msg = f"{PDF.relative_to(ROOT)} was not built: run `make pdf` (needs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return PDF


@pytest.fixture(scope="module")
def pdf_text() -> tuple[int, str]:
    """(page count, all the text of the PDF), read once."""
    from pypdf import PdfReader

    reader = PdfReader(str(need_pdf()))
    return len(reader.pages), words(" ".join(page.extract_text() for page in reader.pages))


# --- the PDF -------------------------------------------------------------------------------------


def test_pdf_is_the_whole_book(site, pdf_text):
    pages, text = pdf_text
    assert pages > MIN_PAGES, f"the PDF has {pages} pages, fewer than {MIN_PAGES}: chapters are missing"
    missing = []
    for path in PAGES:
        title = words(parse(site, path).h1[0]).rstrip("#").strip()
        if title not in text:
            missing.append(f"{path}: {title!r}")
    assert not missing, "chapter titles not in the PDF:\n" + "\n".join(missing)
    raw = [tex for tex in RAW_TEX if tex in text]
    assert not raw, f"raw TeX in the PDF: {raw} (math must be MathML when printed)"


def test_every_page_links_the_pdf(site):
    """With the PDF built, every page's header links it, and the site serves that same file; without
    it no page has the button (no dead link)."""
    for path in PAGES:
        button = parse(site, path).buttons.get("book-pdf-button")
        if not PDF.is_file():
            assert button is None, f"{path}: a PDF button but no {PDF.relative_to(ROOT)}"
            continue
        assert button is not None, f"{path}: no 'Download the book (PDF)' button in its header"
        assert button.get("title") == "Download the book (PDF)", f"{path}: button {button}"
        target = (site / path).parent / button["href"]
        assert target.resolve() == (site / "book.pdf").resolve(), f"{path}: the button points to {target}"
    if not PDF.is_file():
        need_pdf()  # the button's absence is checked; the PDF itself was not made
    assert (site / "book.pdf").read_bytes() == PDF.read_bytes(), "_build/html/book.pdf is not the PDF built"


@pytest.mark.browser
def test_pdf_button_downloads_the_pdf(browser, site_url):
    need_pdf()
    page = browser.new_page()
    try:
        page.goto(f"{site_url}/book/02-initialization.html", wait_until="networkidle")
        link = page.locator(".article-header-buttons a.btn-book-pdf-button")
        assert link.is_visible(), "the PDF button is not visible in the header"
        resp = page.request.get(urljoin(page.url, link.get_attribute("href")))
        assert resp.ok and resp.headers.get("content-type") == "application/pdf", resp.headers
        assert resp.body()[:5] == b"%PDF-" and len(resp.body()) == PDF.stat().st_size
    finally:
        page.close()


# --- view source, suggest an edit ----------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_source_and_edit_links(site, path):
    """Both open the page's own file on the repository's branch; that file is in the repository."""
    buttons = parse(site, path).buttons
    repo = CONFIG["repository"]["url"].rstrip("/")
    branch = CONFIG["repository"].get("branch", "main")
    want = source_of(path)
    for label, verb in (("source-file-button", "blob"), ("source-edit-button", "edit")):
        assert label in buttons, f"{path}: no {label} in the header"
        url = urlparse(buttons[label]["href"])
        prefix = f"{urlparse(repo).path}/{verb}/{branch}/"
        assert f"{url.scheme}://{url.netloc}" == f"{urlparse(repo).scheme}://{urlparse(repo).netloc}"
        assert url.path.startswith(prefix), f"{path}: {label} {url.geturl()} is not under {repo}/{verb}/"
        file = url.path[len(prefix):]
        assert file == want, f"{path}: {label} opens {file}, not {want}"
        assert (ROOT / file).is_file(), f"{path}: {label} opens {file}, which is not in the repository"
        if git("rev-parse", "--git-dir") is not None:
            assert git("ls-files", "--error-unmatch", file) is not None, f"{file} is not tracked by git"


# --- last updated --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history() -> set[int]:
    """The author times of every commit, when the checkout has its full history."""
    if git("rev-parse", "--git-dir") is None or git("rev-parse", "--is-shallow-repository") != "false":
        pytest.skip("no git history here: the pages show no last-updated date, by design")
    return {int(t) for t in git("log", "--format=%at").split()}


@pytest.mark.parametrize("path", PAGES)
def test_last_updated(site, path, history):
    """The date shown is a commit's (not the build's), no older than the page's own file's last commit."""
    page = parse(site, path)
    stamp = page.meta.get("article:modified_time")
    assert stamp, f"{path}: no article:modified_time meta tag"
    when = datetime.fromisoformat(stamp)
    assert int(when.timestamp()) in history, f"{path}: {stamp} is not the time of any commit"
    own = git("log", "-1", "--format=%at", "--", source_of(path))
    assert own and when.timestamp() >= int(own), f"{path}: {stamp} is older than {source_of(path)}'s commit"
    shown = re.search(r"Last updated on (\d{4}-\d{2}-\d{2})", " ".join(page.text))
    assert shown, f"{path}: no 'Last updated on' date on the page"
    assert shown.group(1) == when.astimezone(UTC).strftime("%Y-%m-%d"), (path, shown.group(1), stamp)
