"""Reading the site (issue 18): NumPy and PyTorch code side by side in synchronized tabs, figures and
equations numbered by chapter, and citations that read the same in the text and in the bibliography.

The tabs' code is the library's own (``literalinclude`` of course_lib, checked here against the
functions' source), and the recipe the modern-defaults page shows in both frameworks runs. Tests
marked ``browser`` drive Chromium (conftest: skipped locally without it, failed under CI); the others
read _build/html and the sources.
"""

from __future__ import annotations

import html
import importlib
import inspect
import math
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
browser = pytest.mark.browser

#: Pages that show a NumPy and a PyTorch version of the same code, and how many tab sets each has.
TAB_PAGES = {
    "book/01-activations.html": 2,
    "book/02-initialization.html": 1,
    "book/03-rbm.html": 4,
    "book/04-regularization.html": 2,
    "book/05-optimization.html": 2,
    "book/07-lego.html": 1,
    "book/capstone.html": 1,
    "book/tf-to-pytorch.html": 1,
    "book/modern-defaults.html": 1,
}
#: The chapters in the order of _toc.yml's numbered part: chapter n is CHAPTERS[n - 1].
TOC_ENTRY = r'<li class="toctree-l1[^"]*"><a class="reference internal" href="([^"#]+)">(.*?)</a>'
INTERNAL_LINK = r'<a class="reference internal" href="([^"]*#[^"]+)"[^>]*>(.*?)</a>'
CITATION_TOOLTIP = r'<a class="reference internal" href="[^"]*bibliography\.html#[^"]*" title="([^"]*)"'
CHAPTERS = [
    e["file"].removeprefix("book/")
    for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"] if part.get("numbered")
    for e in part["chapters"]
]


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


def _read(site: Path, rel: str) -> str:
    return (site / rel).read_text(encoding="utf-8")


# --- tabs ----------------------------------------------------------------------------------------


class _TabSets(HTMLParser):
    """The tab sets of a page (sphinx-design's HTML): for each, its tabs as (label, sync id, [code of
    each block in the panel])."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sets: list[list[list]] = []
        self._divs: list[str] = []  # the role of each open div: "set", "panel", "pre" or ""
        self._label: list[str] | None = None
        self._pre: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "div":
            role = "set" if "sd-tab-set" in cls else "panel" if "sd-tab-content" in cls else ""
            self._divs.append(role)
            if role == "set":
                self.sets.append([])
        elif tag == "label" and "sd-tab-label" in cls:
            self._label = []
            self.sets[-1].append(["", a.get("data-sync-id", ""), []])
        elif tag == "pre" and "panel" in self._divs:
            self._pre = []

    def handle_endtag(self, tag):
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag == "label" and self._label is not None:
            self.sets[-1][-1][0] = " ".join("".join(self._label).split())
            self._label = None
        elif tag == "pre" and self._pre is not None:
            self.sets[-1][-1][2].append("".join(self._pre))
            self._pre = None

    def handle_data(self, data):
        for buf in (self._label, self._pre):
            if buf is not None:
                buf.append(data)


def _tab_sets(page_html: str) -> list[list[tuple[str, str, list[str]]]]:
    parser = _TabSets()
    parser.feed(page_html)
    return [[tuple(tab) for tab in tabs] for tabs in parser.sets]


def _normalize(code: str) -> str:
    return "\n".join(line.rstrip() for line in textwrap.dedent(code).strip().splitlines())


def _library_functions(package: str):
    """(module name, qualified name, normalized source) of every function and method of a package."""
    pkg = importlib.import_module(package)
    modules = [pkg]
    if hasattr(pkg, "__path__"):
        files = sorted(Path(pkg.__file__).parent.glob("*.py"))
        modules = [importlib.import_module(f"{package}.{p.stem}") for p in files]
    for mod in modules:
        for name, obj in vars(mod).items():
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                yield mod.__name__, name, _normalize(inspect.getsource(inspect.unwrap(obj)))
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for meth, f in vars(obj).items():
                    f = inspect.unwrap(f) if callable(f) else f  # torch.no_grad's wrapper: the method
                    if inspect.isfunction(f) and f.__code__.co_filename == mod.__file__:  # not a dataclass's
                        yield mod.__name__, f"{name}.{meth}", _normalize(inspect.getsource(f))


def _which_function(code: str, package: str) -> tuple[str, str] | None:
    """The (module, qualified name) of ``package`` whose current source the shown ``code`` is."""
    shown = _normalize(code)
    for module, qual, source in _library_functions(package):
        if source == shown:
            return module, qual
    return None


#: NumPy function -> its PyTorch twin, where the names differ (torch's RBM is an nn.Module; the
#: torch optimizers are torch.optim.Optimizer subclasses, whose hook is ``_update``).
TWINS = {"hidden_probs": "RBM.prob_h", "bernoulli": "RBM._uniform", "SGD.update": "SGD._update",
         "Adam.update": "Adam._update", "_numpy_fns": "_torch_fns",
         "residual_forward": "ResidualBlock.forward"}
LIBRARY = {"numpy": ("course_lib.numpy_impl", "course_lib.training"),
           "pytorch": ("course_lib.torch_impl", "course_lib.training")}


@pytest.mark.parametrize(("path", "n_sets"), TAB_PAGES.items())
def test_pages_with_both_frameworks_have_synced_tabs(site, path, n_sets):
    """Every page that shows a NumPy and a PyTorch version of the same code shows them as tabs
    NumPy | PyTorch of the sync group "framework", NumPy first, the NumPy one open."""
    page = _read(site, path)
    sets = _tab_sets(page)
    assert len(sets) == n_sets, f"{path}: {len(sets)} tab sets, expected {n_sets}"
    for tabs in sets:
        assert [tab[:2] for tab in tabs] == [("NumPy", "numpy"), ("PyTorch", "pytorch")], tabs
        assert all(blocks and all(b.strip() for b in blocks) for _, _, blocks in tabs), f"{path}: empty tab"
    assert set(re.findall(r'data-sync-group="([^"]+)"', page)) == {"framework"}
    checked = re.findall(r'<input checked="checked" id="(sd-tab-item-\d+)"', page)
    assert len(checked) == n_sets, f"{path}: {len(checked)} tabs open at first, expected {n_sets}"


@pytest.mark.parametrize("path", [p for p in TAB_PAGES if p != "book/modern-defaults.html"])
def test_tab_code_is_the_library_code(site, path):
    """Every code block in a tab is the current source of one course_lib function or method (a tab
    may show two or three, such as dropout's mask, forward and backward): NumPy tabs from numpy_impl,
    PyTorch tabs from torch_impl, and the two tabs of a set from twin modules of the same name."""
    for tabs in _tab_sets(_read(site, path)):
        found = {}
        for _, sync, blocks in tabs:
            found[sync] = []
            for code in blocks:
                hit = next((h for pkg in LIBRARY[sync] if (h := _which_function(code, pkg))), None)
                assert hit, f"{path}: the {sync} tab shows code that is not course_lib's:\n{code[:400]}"
                found[sync].append(hit)
        n_mod, n_fn = found["numpy"][0]
        twin_module = n_mod if n_mod == "course_lib.training" else n_mod.replace("numpy_impl", "torch_impl")
        twins = {(twin_module, TWINS.get(n_fn, n_fn)), (twin_module, f"RBM.{n_fn}")}
        assert twins & set(found["pytorch"]), f"{path}: {n_fn} next to {found['pytorch']}"


def test_the_tab_check_catches_a_copy():
    """A block that differs from the library by one character is not taken for library code."""
    source = inspect.getsource(importlib.import_module("course_lib.numpy_impl.layers").dropout_backward)
    assert _which_function(source, "course_lib.numpy_impl") == ("course_lib.numpy_impl.layers",
                                                                 "dropout_backward")
    assert _which_function(source.replace("dout", "grad", 1), "course_lib.numpy_impl") is None


# The recipe of the modern-defaults page, both tabs, run on a small network: the code it shows works.


def _recipe(site: Path) -> dict[str, str]:
    (tabs,) = _tab_sets(_read(site, "book/modern-defaults.html"))
    return {sync: blocks[0] for _, sync, blocks in tabs}


def test_modern_defaults_recipe_runs_with_numpy(site, tmp_path, monkeypatch):
    from course_lib.data import load_digits
    from course_lib.numpy_impl.mlp import MLP

    monkeypatch.chdir(tmp_path)
    X, y = load_digits()
    env = {"model": MLP([X.shape[1], 32, 10], "relu", init="he_normal", rng=0), "epochs": 3,
           "X_train": X[:500], "y_train": y[:500], "X_val": X[500:700], "y_val": y[500:700]}
    exec(compile(_recipe(site)["numpy"], "modern-defaults NumPy tab", "exec"), env)
    history = env["history"]
    assert len(history.val_loss) == 3 and np.all(np.isfinite(history.val_loss)), history.val_loss
    assert history.val_loss[-1] < history.val_loss[0], "the recipe did not lower the validation loss"
    # the learning rate warmed up, then decayed along the cosine
    assert 0 < history.lr[0] <= 1e-3 and history.lr[-1] < history.lr[0], history.lr


def test_modern_defaults_recipe_runs_with_pytorch(site, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    from course_lib.data import load_digits

    monkeypatch.chdir(tmp_path)
    X, y = load_digits()
    X, y = torch.as_tensor(X[:700], dtype=torch.float32), torch.as_tensor(y[:700], dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    env = {"model": model, "epochs": 3,
           "train_loader": DataLoader(TensorDataset(X[:500], y[:500]), batch_size=100, shuffle=True,
                                      generator=gen),
           "val_loader": DataLoader(TensorDataset(X[500:], y[500:]), batch_size=100)}
    exec(compile(_recipe(site)["pytorch"], "modern-defaults PyTorch tab", "exec"), env)
    assert (tmp_path / "best.pt").is_file(), "the PyTorch recipe saved no checkpoint"
    assert math.isfinite(env["best"]) and env["best"] < math.log(10), env["best"]
    assert env["scheduler"].last_epoch == 3 * 5, "the schedule is stepped once per mini-batch"


@browser
def test_choosing_pytorch_switches_every_tab_set(browser, site_url):
    """Clicking "PyTorch" in one tab set shows PyTorch in all of them (and the choice is kept on the
    next page); the keyboard alone can switch tabs; no JavaScript error."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(f"{site_url}/book/03-rbm.html", wait_until="networkidle")
        shown = "() => Array.from(document.querySelectorAll('.sd-tab-set')).map(s => s.querySelector(" \
                "'input:checked + label').innerText.trim())"
        assert page.evaluate(shown) == ["NumPy"] * 4
        visible = page.evaluate("() => Array.from(document.querySelectorAll('.sd-tab-content'))"
                                ".filter(c => c.checkVisibility()).map(c => c.innerText.includes('torch'))")
        assert visible == [False] * 4, visible
        page.locator(".sd-tab-set").nth(2).locator("label", has_text="PyTorch").click()
        assert page.evaluate(shown) == ["PyTorch"] * 4
        panels = page.evaluate("() => Array.from(document.querySelectorAll('.sd-tab-content'))"
                               ".filter(c => c.checkVisibility()).map(c => c.innerText)")
        assert len(panels) == 4 and all("self" in p for p in panels), panels  # the torch RBM's methods
        # the keyboard: Tab reaches the chosen tab (a radio group), the arrow keys choose the other
        page.locator(".sd-tab-set").first.locator("input:checked").focus()
        assert page.evaluate("document.activeElement.matches('.sd-tab-set > input:checked')")
        page.keyboard.press("ArrowLeft")
        assert page.evaluate(shown) == ["NumPy"] * 4, "arrow keys did not switch every tab set"
        page.keyboard.press("ArrowRight")
        assert page.evaluate(shown) == ["PyTorch"] * 4
        # the choice carries over to the next page
        page.goto(f"{site_url}/book/05-optimization.html", wait_until="networkidle")
        assert page.evaluate(shown) == ["PyTorch"] * 2
        assert errors == [], errors
    finally:
        ctx.close()


@browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_tabs_readable_on_a_phone(browser, site_url, output_dir, scheme):
    """On a 390 px phone, in both colour schemes, the tab labels are readable (contrast 4.5:1 or more
    against what is behind them), fit the screen, and long code scrolls inside its own box."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                              is_mobile=True, has_touch=True, color_scheme=scheme)
    try:
        page = ctx.new_page()
        page.goto(f"{site_url}/book/04-regularization.html", wait_until="networkidle")
        tabset = page.locator(".sd-tab-set").nth(1)
        tabset.scroll_into_view_if_needed()
        tabset.locator("label", has_text="PyTorch").tap()
        got = page.evaluate(
            """() => {
            const vw = document.documentElement.clientWidth;
            const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
                                if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
                              return 'rgb(255, 255, 255)'; };
            const labels = Array.from(document.querySelectorAll('.sd-tab-set > label')).map(l => ({
                color: getComputedStyle(l).color, bg: bg(l), right: l.getBoundingClientRect().right}));
            const pres = Array.from(document.querySelectorAll('.sd-tab-content pre'))
                .filter(p => p.checkVisibility());
            return {vw, doc: document.documentElement.scrollWidth, labels,
                    pres: pres.map(p => ({scrolls: getComputedStyle(p).overflowX,
                                          right: p.getBoundingClientRect().right,
                                          wide: p.scrollWidth > p.clientWidth}))};
            }"""
        )
        assert got["doc"] <= got["vw"], f"the page scrolls sideways: {got['doc']} > {got['vw']}"
        from test_site import _contrast

        for label in got["labels"]:
            assert _contrast(label["color"], label["bg"]) >= 4.5, label
            assert label["right"] <= got["vw"] + 1, label
        assert got["pres"] and any(p["wide"] for p in got["pres"]), "expected long lines of code"
        for p in got["pres"]:
            assert p["right"] <= got["vw"] + 1 and (not p["wide"] or p["scrolls"] in ("auto", "scroll")), p
        page.screenshot(path=str(output_dir / f"screenshot-tabs-phone-{scheme}.png"))
    finally:
        ctx.close()


# --- chapter-prefixed numbers ----------------------------------------------------------------------


def test_toc_numbers_the_chapters(site):
    """The sidebar numbers the chapters 1, 2, ... in the order of _toc.yml (and nothing else)."""
    page = _read(site, "book/intro.html")
    entries = re.findall(TOC_ENTRY, page, flags=re.S)
    numbered = [(href, _text(t)) for href, t in entries if re.match(r"\d+\. ", _text(t))]
    assert [href.removesuffix(".html") for href, _ in numbered] == CHAPTERS, numbered
    assert [int(t.split(".")[0]) for _, t in numbered] == list(range(1, len(CHAPTERS) + 1))
    for href, t in entries:
        if href.removesuffix(".html") not in CHAPTERS:
            assert not re.match(r"\d", _text(t)), f"an unnumbered page got a number: {t}"


@pytest.mark.parametrize("n", range(1, 12))
def test_figure_and_equation_numbers_carry_the_chapter(site, n):
    """Chapter n's figures are "Figure n.1", "Figure n.2", ... in order, its labelled equations
    (n.1), (n.2), ...; and every reference to them on any page shows the same number."""
    if n > len(CHAPTERS):
        pytest.skip(f"there are {len(CHAPTERS)} chapters")
    page = _read(site, f"book/{CHAPTERS[n - 1]}.html")
    figs = re.findall(r'<figure[^>]*id="([^"]+)"[^>]*>.*?<span class="caption-number">([^<]*)</span>',
                      page, flags=re.S)
    numbers = [num.strip() for _, num in figs]
    assert numbers == [f"Figure {n}.{i}" for i in range(1, len(numbers) + 1)], numbers
    eqs = re.findall(r'<span class="eqno">\(([^)<]*)\)', page)
    assert eqs == [f"{n}.{i}" for i in range(1, len(eqs) + 1)], eqs
    if CHAPTERS[n - 1] in ("01-activations", "02-initialization", "05-optimization"):
        assert figs and eqs, f"chapter {n} has lost its numbered figures or equations"


def _targets(site: Path) -> dict[str, str]:
    """Every numbered chapter, figure and equation: 'page.html#id' -> its number."""
    out = {}
    for n, name in enumerate(CHAPTERS, start=1):
        page = _read(site, f"book/{name}.html")
        out |= {f"{name}.html#{label}": str(n) for label in re.findall(r'id="(ch-[\w-]+)"', page)}
        for fid, num in re.findall(r'<figure[^>]*id="([^"]+)"[^>]*>.*?<span class="caption-number">'
                                   r"([^<]*)</span>", page, flags=re.S):
            out[f"{name}.html#{fid}"] = num.strip()
        for eid, num in re.findall(r'<div [^>]*id="(equation-[^"]+)"[^>]*>\s*<span class="eqno">\(([^)<]*)\)',
                                   page):
            out[f"{name}.html#{eid}"] = f"({num})"
    return out


def test_references_show_the_numbers_of_their_targets(site):
    """{numref} and {eq} references, on every page that has them, show the number of the figure or
    equation they link to."""
    targets = _targets(site)
    assert any(v.startswith("(") for v in targets.values()), "no numbered equation in the chapters"
    checked = 0
    for path in sorted((site / "book").glob("*.html")):
        page = path.read_text(encoding="utf-8")
        links = re.findall(INTERNAL_LINK, page, flags=re.S)
        for href, inner in links:
            kind = re.search(r'<span class="(std std-numref|eqno)"', inner) or ("#equation-" in href)
            if not kind:
                continue
            key = (href if "/" not in href and ".html" in href else f"{path.name}{href}").split("/")[-1]
            if key.startswith("#"):
                key = path.name + key
            shown = _text(inner)
            assert key in targets, f"{path.name}: a reference to {href} ({shown}) that is no numbered target"
            number = targets[key].removeprefix("Figure ").removeprefix("Table ").strip("()")
            assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", shown), (
                f"{path.name}: the reference to {key} reads {shown!r}, its target is {targets[key]!r}")
            checked += 1
    assert checked >= 10, f"only {checked} references to figures and equations found"


def test_equation_references_in_the_sources_exist():
    """Every {eq} reference of the chapters names an equation label of the same book."""
    labels, refs = set(), set()
    for src in (ROOT / "book").glob("*.md"):
        text = src.read_text(encoding="utf-8")
        labels |= set(re.findall(r"^\$\$ \(([\w-]+)\)$", text, flags=re.M))
        refs |= set(re.findall(r"\{eq\}`([\w-]+)`", text))
    assert refs and refs <= labels, f"references without an equation: {refs - labels}"
    unused = labels - refs
    assert not unused, f"numbered equations that no text refers to: {unused}"


# --- bibliography ---------------------------------------------------------------------------------


def _bibliography(site: Path) -> dict[str, str]:
    """The bibliography page's entries: anchor id -> label (without the brackets)."""
    page = _read(site, "book/bibliography.html")
    entry = (r'<div class="citation" id="([^"]+)" role="listitem">\s*<span class="label">'
             r'<span class="fn-bracket">\[</span>(.*?)<span class="fn-bracket">\]</span></span>')
    return {i: _text(label) for i, label in re.findall(entry, page, flags=re.S)}


def test_bibliography_labels_are_author_year(site):
    labels = _bibliography(site)
    assert len(labels) >= 50, f"only {len(labels)} bibliography entries found"
    pattern = re.compile(r"^\S.*, (1[89]|20)\d\d[a-z]?$")
    bad = [lab for lab in labels.values() if not pattern.match(lab)]
    assert bad == [], f"labels that are not 'Authors, year': {bad}"
    assert len(set(labels.values())) == len(labels), "two entries share a label"
    assert not any(re.fullmatch(r"[A-Z][A-Za-z+]{1,6}\d\d[a-z]?", lab) for lab in labels.values())


def test_citations_match_the_bibliography_labels(site):
    """Every citation in the text reads like the label of the entry it links to: a parenthetical
    one "[Glorot and Bengio, 2010]" is the label, a textual one "Glorot and Bengio [2010]" its two
    halves."""
    labels = _bibliography(site)
    checked = 0
    for path in sorted((site / "book").rglob("*.html")):
        page = path.read_text(encoding="utf-8")
        for span in re.findall(r'<span class="bibtex-citation"[^>]*>(.*?)</span>', page, flags=re.S):
            links = re.findall(r'href="[^"]*bibliography\.html#([^"]+)"[^>]*>(.*?)</a>', span, flags=re.S)
            text = _text(span)
            for anchor, link_text in links:
                label = labels[anchor]
                authors, year = label.rsplit(", ", 1)
                link_text = _text(link_text)
                assert link_text in (label, year), f"{path.name}: {link_text!r} links to [{label}]"
                assert authors in text and year in text, f"{path.name}: {text!r} cites [{label}]"
                checked += 1
    assert checked >= 100, f"only {checked} citations found"


def test_bibliography_has_no_raw_tex(site):
    """No TeX in the entries or in the citations' tooltips (their title attribute is plain text)."""
    page = _read(site, "book/bibliography.html")
    entries = page.split('<div role="list" class="citation-list">', 1)[1].split("</section>", 1)[0]
    for m in re.finditer(r'<div class="citation".*?</div>', entries, flags=re.S):
        shown = _text(re.sub(r"<math.*?</math>", "", m.group(0), flags=re.S))
        assert "$" not in shown and "\\" not in shown and "{" not in shown, shown
    for path in sorted((site / "book").rglob("*.html")):
        tooltips = re.findall(CITATION_TOOLTIP, path.read_text(encoding="utf-8"))
        for title in map(html.unescape, tooltips):
            assert "$" not in title and "\\" not in title, f"{path.name}: TeX in a tooltip: {title}"


def test_the_label_style_disambiguates():
    """Two works of the same authors and year get "2016a" and "2016b", in the order the
    bibliography lists them; one, two and three or more authors are cited as the text cites them."""
    import sys

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        style = importlib.import_module("bibliography_style")
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
    from pybtex.database import Entry, Person

    def entry(key, authors, year):
        e = Entry("article", fields={"title": key, "year": year})
        e.persons["author"] = [Person(a) for a in authors]
        e.key = key
        return e

    he = ["Kaiming He", "Xiangyu Zhang", "Jian Sun"]
    entries = [entry("a", ["Ada Lovelace"], "1843"), entry("b", he, "2016"), entry("c", he, "2016"),
               entry("d", ["Xavier Glorot", "Yoshua Bengio"], "2010")]
    labels = list(style.AuthorYearLabelStyle().format_labels(entries))
    assert labels == ["Lovelace, 1843", "He et al., 2016a", "He et al., 2016b", "Glorot and Bengio, 2010"]
    with pytest.raises(ValueError, match="no author or editor"):
        list(style.AuthorYearLabelStyle().format_labels([Entry("misc", fields={"title": "x", "year": "1"})]))
