"""Claims: ``course_lib.claims`` records and checks a page's findings, and a false claim fails the build.

The statistics (``summarize``, ``difference``) are checked against NumPy and SciPy; ``claim``
refuses what DESIGN.md's rules refuse (comparisons on fewer than three seeds, a false statement);
a one-page Jupyter Book built with the course's ``claims`` extension fails on a false claim and,
with a true one, writes ``_build/claims/<page>.json`` and the appendix table. The last test reads
the real build: every page's claims hold or are marked not measured, and the appendix lists them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from course_lib.claims import MIME, ClaimError, claim, difference, records_from_notebook, summarize

ROOT = Path(__file__).resolve().parents[1]


def test_summarize_is_the_mean_and_the_sample_sd():
    s = summarize([1.0, 2.0, 4.0])
    assert math.isclose(s.mean, 7 / 3, rel_tol=1e-15)
    assert math.isclose(s.sd, np.std([1.0, 2.0, 4.0], ddof=1), rel_tol=1e-15)
    assert s.n == 3
    assert summarize([5.0]).sd == 0.0
    with pytest.raises(ValueError, match="non-finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=3, max_size=12), st.floats(-5, 5))
def test_paired_difference_matches_scipys_paired_t_statistic(a, shift):
    a = np.array(a)
    noise = np.random.default_rng(len(a)).normal(0, 1, size=a.size)
    b = a - shift + noise
    d = difference(a, b, paired=True)
    assert math.isclose(d.mean, float(np.mean(a - b)), rel_tol=1e-12, abs_tol=1e-12)
    t = stats.ttest_rel(a, b).statistic
    if np.isfinite(t) and d.se > 1e-9:
        assert math.isclose(d.z, float(t), rel_tol=1e-9, abs_tol=1e-9)


def test_unpaired_difference_is_welchs():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.7, 2.0])
    d = difference(a, b, paired=False)
    t = stats.ttest_ind(a, b, equal_var=False).statistic
    assert math.isclose(d.z, float(t), rel_tol=1e-12)
    with pytest.raises(ValueError, match="as many"):
        difference(a, b, paired=True)


def test_exceeds_is_more_than_k_standard_errors():
    a = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    assert difference(a + 1.0, a).exceeds(2)  # a constant difference: se 0, mean 1
    assert not difference(a, a).exceeds(2)  # no difference at all
    noisy = difference(np.array([1.0, -1.0, 1.2]), np.array([0.0, 0.0, 0.0]))
    assert not noisy.exceeds(2), f"mean {noisy.mean:.2f} vs se {noisy.se:.2f}: within noise"


def test_a_true_claim_records_plain_json_and_displays_a_box():
    c = claim("04-regularization", "dropout-gap", "Dropout narrows the gap.", 8.1234, 0.61,
              holds=True, n_seeds=5, data="MNIST-10k", unit="points", fmt="{:.1f}")  # fmt: skip
    record = c.record()
    assert json.loads(json.dumps(record)) == record
    assert record | {"text": None} == {
        "page": "04-regularization", "key": "dropout-gap", "statement": "Dropout narrows the gap.",
        "value": 8.1234, "se": 0.61, "n_seeds": 5, "holds": True, "data": "MNIST-10k",
        "requires": None, "unit": "points", "text": None, "details": {},
    }  # fmt: skip
    assert record["text"] == "8.1 ± 0.6 points (± one standard error, 5 seeds, MNIST-10k)"
    bundle = c._repr_mimebundle_()
    assert bundle[MIME] == record
    assert 'id="claim-dropout-gap"' in bundle["text/html"]
    assert "Dropout narrows the gap." in bundle["text/html"]


def test_a_false_claim_raises_with_its_numbers():
    with pytest.raises(ClaimError, match=r"does not hold.*0\.2 ± 0\.5"):
        claim("p", "k", "A beats B.", 0.2, 0.5, holds=False, n_seeds=5, fmt="{:.1f}")


def test_a_claim_about_mnist_is_not_measured_on_the_digits():
    c = claim("p", "k", "A beats B on MNIST.", -0.3, 0.1, holds=False, n_seeds=3,
              data="digits", requires="MNIST-10k")  # fmt: skip
    assert c.holds is None
    assert "Not measured in this build" in c._repr_html_()
    with pytest.raises(ClaimError):  # the same numbers on MNIST are a false claim
        claim("p", "k", "A beats B on MNIST.", -0.3, 0.1, holds=False, n_seeds=3,
              data="MNIST-10k", requires="MNIST-10k")  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"se": 0.1, "n_seeds": 2}, "at least 3 seeds"),
        ({"se": 0.1}, "at least 3 seeds"),
        ({"se": float("nan"), "n_seeds": 5}, "finite"),
        ({"key": "Bad Key"}, "lower-case"),
        ({"statement": "  "}, "empty"),
        ({"holds": "yes"}, "True or False"),
    ],
)
def test_claim_refuses_what_the_rules_refuse(kwargs, error):
    args = {"page": "p", "key": "k", "statement": "s", "value": 1.0, "holds": True} | kwargs
    with pytest.raises((ValueError, TypeError), match=error):
        claim(**args)


def test_records_are_read_back_from_an_executed_notebook():
    c1 = claim("p", "a", "First.", 1.0, holds=True)
    c2 = claim("p", "b", "Second.", 2.0, holds=True)
    nb = {"cells": [
        {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": c1._repr_mimebundle_()}]},
        {"cell_type": "markdown"},
        {"cell_type": "code", "outputs": [{"output_type": "execute_result",
                                           "data": {MIME: json.dumps(c2.record())}}]},
    ]}  # fmt: skip
    assert [r["key"] for r in records_from_notebook(nb)] == ["a", "b"]


# --- a real one-page book ---------------------------------------------------------------------

PAGE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page with a claim

```{{code-cell}} ipython3
from course_lib.claims import claim

claim("page", "first", "One is one (not the cell's last expression).", 1, holds=True)
claim("page", "the-claim", "Two and two make four.", 2 + 2, holds={holds})
```
"""


def _book(tmp_path: Path, holds: str) -> Path:
    book = tmp_path / "book"
    book.mkdir()
    (book / "page.md").write_text(PAGE.format(holds=holds))
    (book / "claims.md").write_text("# Claims\n\n```{claims-table}\n```\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\nchapters:\n  - file: claims\n")
    (book / "_config.yml").write_text(textwrap.dedent(f"""\
        title: claims test
        only_build_toc_files: true
        execute:
          execute_notebooks: cache
          cache: _build/.jupyter_cache
          allow_errors: false
        sphinx:
          local_extensions:
            claims: {ROOT / "book" / "_ext"}
          config:
            nb_execution_raise_on_error: true
            suppress_warnings: ["mystnb.unknown_mime_type"]
        """))  # fmt: skip
    return book


def _build(book: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        pytest.skip("jupyter-book is not installed in this environment")
    return subprocess.run([str(exe), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_a_false_claim_fails_the_build_of_a_one_page_book(tmp_path):
    proc = _build(_book(tmp_path, "2 + 2 == 5"))
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the build passed with a false claim:\n{log[-3000:]}"
    assert "ClaimError" in log and "does not hold" in log, log[-3000:]


@pytest.mark.slow
def test_a_true_claim_reaches_the_json_and_the_appendix(tmp_path):
    book = _book(tmp_path, "2 + 2 == 4")
    proc = _build(book)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    records = json.loads((book / "_build" / "claims" / "page.json").read_text())
    assert [(r["key"], r["value"], r["holds"]) for r in records] == [
        ("first", 1.0, True),
        ("the-claim", 4.0, True),
    ]
    appendix = (book / "_build" / "html" / "claims.html").read_text()
    assert "Two and two make four." in appendix and 'href="page.html#claim-the-claim"' in appendix
    page = (book / "_build" / "html" / "page.html").read_text()
    assert 'id="claim-the-claim"' in page and page.count('id="claim-first"') == 1, "each box shown once"
    shutil.rmtree(book / "_build" / "claims")  # rebuilt from the cache, not from a kernel
    proc = _build(book)
    assert proc.returncode == 0 and (book / "_build" / "claims" / "page.json").is_file()


# --- the course's own build -------------------------------------------------------------------


def test_every_claim_of_the_built_course_holds_and_is_listed(site):
    claims_dir = site.parent / "claims"
    files = sorted(claims_dir.glob("*.json"))
    assert files, f"no claims in {claims_dir}: the chapters record their findings with claim()"
    appendix = (site / "book" / "claims.html").read_text()
    for path in files:
        for r in json.loads(path.read_text()):
            assert r["holds"] in (True, None), f"{path.name}: {r['key']} does not hold"
            if r["se"] is not None:
                assert r["n_seeds"] >= 3, f"{path.name}: {r['key']} rests on {r['n_seeds']} seeds"
            assert f"#claim-{r['key']}" in appendix, f"the appendix does not list {path.name}: {r['key']}"


def test_the_modern_defaults_page_names_only_claims_that_exist(site):
    """book/modern-defaults.md states no numbers of its own: it names claim keys (`key`) of the other
    chapters. Each must be a claim of this build, or the page points readers at nothing."""
    keys = {r["key"] for p in (site.parent / "claims").glob("*.json") for r in json.loads(p.read_text())}
    text = (ROOT / "book" / "modern-defaults.md").read_text()
    pages = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    labels = set(re.findall(r"^\(([\w-]+)\)=", pages, re.M))
    named = {k for k in re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", text) if k not in labels}
    assert len(named) >= 10, f"the page names only {sorted(named)}"
    missing = sorted(named - keys)
    assert not missing, f"book/modern-defaults.md names claims this build does not have: {missing}"
