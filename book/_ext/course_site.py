"""Small fixes to the site's HTML, loaded by _config.yml (``sphinx.local_extensions``).

* sphinx-thebe adds its inline configuration script twice under Jupyter Book 1, so browsers
  report "Identifier 'THEBE_JS_URL' has already been declared": drop repeated scripts.
* pydata-sphinx-theme logs "invalid theme mode" when no default colour mode is given: use
  "auto", which follows the reader's system setting (our figures have white backgrounds, so
  they stay readable in the dark theme).
* Math is rendered at build time, as MathML that browsers draw themselves (latex2mathml): no
  MathJax, nothing typeset in the reader's browser (a phone spent seconds on it). The math
  renderer ``course_mathml`` (``html_math_renderer`` in _config.yml) keeps Sphinx's equation
  numbers and their permalinks. TeX that latex2mathml cannot convert is a build warning (so
  ``-W`` fails) naming the page and the TeX. A few of its gaps are bridged before and after the
  conversion: ``\\text{fan\\_in}`` reads fan_in (TeX escapes inside text), ``aligned`` becomes the
  ``split`` it understands, ``\\operatorname*`` its plain form, and column alignment becomes CSS
  (which Chromium's MathML honours; the ``columnalign`` attribute it ignores). A bibliography
  entry's ``$TeX$`` (a title from references.bib) becomes MathML too.
* A phone: every table (docutils tables are already in the theme's scrolling container; pandas
  output is not) and every display equation scrolls sideways inside its own box, focusable from
  the keyboard (styles and the scroll cue: course.css); images load lazily and decode off the
  main thread (except the first of a page, which may be the largest paint) and carry their pixel
  size, so the text does not jump as they arrive.
* Accessible names that match what is shown: a hidden cell's "Show code cell source" toggle loses
  its aria-label "Toggle hidden content"; the theme's search field is named by its text
  (book/_templates/search-button-field.html); bibliography entries are list items of their list.
* Each page gets a ``<meta name="description">``: its first paragraph, cut at about 160 characters.
* The search scripts (searchtools.js, language_data.js, searchindex.js) load only on search.html,
  not on every page where they blocked the first paint, and fontawesome.js (1.5 MB) not at all
  (the theme's CSS draws the same icons from web fonts): book/_templates/layout.html.
"""

from __future__ import annotations

import html
import re
import struct
from pathlib import Path

from docutils import nodes
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

logger = logging.getLogger(__name__)

# --- math: TeX to MathML at build time ------------------------------------------------------------

_TEXT_ARG = re.compile(r"\\(text|textrm|textit|textbf|mathrm)\{((?:[^{}]|\{[^{}]*\})*)\}")
_TEXT_ESCAPE = re.compile(r"\\([_%&#$])")
_COLUMNALIGN = re.compile(r'<mtd columnalign="(left|right|center)"')
_UNKNOWN = re.compile(r"<(mi|mo|mtext)\b[^>]*>[^<]*\\[A-Za-z]|<mo />")
# latex2mathml leaves the delimiter of \bigl \Bigr ... as its TeX name: the character it stands for.
_DELIMITERS = {
    "lVert": "\u2016", "rVert": "\u2016", "Vert": "\u2016", "|": "\u2016", "lvert": "|", "rvert": "|",
    "vert": "|", "langle": "\u27e8", "rangle": "\u27e9", "{": "{", "}": "}", "lbrace": "{", "rbrace": "}",
    "lfloor": "\u230a", "rfloor": "\u230b", "lceil": "\u2308", "rceil": "\u2309",
    "lbrack": "[", "rbrack": "]",
}  # fmt: skip
_FUNCTION = re.compile(r"(<mi>[a-z]{2,}</mi>)(?=<m(?:i|n|row|sub|sup|frac)\b)")
_DELIMITER = re.compile(r"(<mo\b[^>]*>)\\([A-Za-z]+|[{}|])</mo>")
_OPERATORNAME = re.compile(r"\\operatorname\{([^{}]*)\}")


def _prepare_tex(tex: str) -> str:
    """TeX latex2mathml reads as TeX would: escapes inside ``\\text{}``, environments it knows."""
    tex = _TEXT_ARG.sub(lambda m: "\\" + m.group(1) + "{" + _TEXT_ESCAPE.sub(r"\1", m.group(2)) + "}", tex)
    tex = tex.replace(r"\operatorname*", r"\operatorname")
    # latex2mathml reads \operatorname{} of letters only; others (leaky\_relu, arg\,max) as upright text.
    tex = _OPERATORNAME.sub(lambda m: m.group(0) if m.group(1).isalpha() else
                            r"\text{" + _TEXT_ESCAPE.sub(r"\1", m.group(1)).replace(r"\,", " ") + "}", tex)
    tex = re.sub(r"\\arg(?![A-Za-z])", r"\\operatorname{arg}", tex)
    tex = re.sub(r"\\(begin|end)\{aligned\}", r"\\\1{split}", tex)
    # Sphinx numbers an equation (its eqno, with a permalink); latex2mathml would number align's rows too.
    tex = re.sub(r"\\(begin|end)\{(align|equation|gather)\}", r"\\\1{\2*}", tex)
    return tex.strip()


def tex_to_mathml(tex: str, display: bool) -> str:
    """``tex`` as a ``<math>`` element; raises ValueError for TeX that latex2mathml does not understand
    (it raises, or leaves a ``\\command`` or an alignment ``&`` as a symbol)."""
    import latex2mathml.converter

    try:
        out = latex2mathml.converter.convert(_prepare_tex(tex), display="block" if display else "inline")
    except Exception as e:  # latex2mathml raises many kinds
        raise ValueError(f"{type(e).__name__}: {e}") from e
    out = _DELIMITER.sub(lambda m: m.group(1) + html.escape(_DELIMITERS[m.group(2)]) + "</mo>"
                         if m.group(2) in _DELIMITERS else m.group(0), out)
    # A function name (\\log, \\exp, ...) is a multi-letter <mi>: the thin space TeX puts after it.
    out = _FUNCTION.sub(r'\1<mspace width="0.167em" />', out)
    if _UNKNOWN.search(out) or "<mi>&</mi>" in out or "<mi>&amp;</mi>" in out:
        raise ValueError("an unknown command or a stray '&' was left in the MathML")
    out = _COLUMNALIGN.sub(r'<mtd columnalign="\1" style="text-align: \1"', out)
    out = out.replace('<mspace width="negativethinmathspace" />', '<mspace style="margin-left: -0.167em" />')
    return out


def _convert_or_warn(translator, node, tex: str, display: bool) -> str:
    try:
        return tex_to_mathml(tex, display)
    except ValueError as e:
        logger.warning("math that cannot be rendered as MathML (%s): %s", e, tex.strip()[:200],
                       location=node, type="course", subtype="math")
        return f'<code class="course-math-error">{html.escape(tex.strip())}</code>'


#: Inline math longer than this (TeX characters) may be wider than a phone: it gets a box of its own
#: that scrolls sideways (course.css), as the browser does not break a line inside MathML.
LONG_INLINE_TEX = 40


def html_visit_math(self, node: nodes.math) -> None:
    if len(node.astext()) > LONG_INLINE_TEX:
        self.body.append(self.starttag(node, "span", "", tabindex="0",
                                       CLASS="math notranslate nohighlight course-math-long"))
    else:
        self.body.append(self.starttag(node, "span", "", CLASS="math notranslate nohighlight"))
    self.body.append(_convert_or_warn(self, node, node.astext(), display=False) + "</span>")
    raise nodes.SkipNode


def html_visit_displaymath(self, node: nodes.math_block) -> None:
    # Focusable, labelled: a keyboard reader can scroll a wide equation (course.css: overflow-x).
    self.body.append(self.starttag(node, "div", CLASS="math notranslate nohighlight",
                                   tabindex="0", role="group", **{"aria-label": "equation"}))
    if node["number"]:
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, _("Link to this equation"))
        self.body.append("</span>")
    tex = node.astext()
    if not node["nowrap"]:
        parts = [p.strip() for p in tex.split("\n\n") if p.strip()]
        if len(parts) > 1:  # several equations, one below the other, aligned as Sphinx does for MathJax
            tex = r"\begin{split}" + r"\\".join(parts) + r"\end{split}"
        elif parts and r"\\" in parts[0] and r"\begin" not in parts[0]:
            tex = r"\begin{split}" + parts[0] + r"\end{split}"
    self.body.append(_convert_or_warn(self, node, tex, display=True))
    self.body.append("</div>\n")
    raise nodes.SkipNode


# --- the page: scripts, meta description, tables and images --------------------------------------

def _fix_page(app, pagename, templatename, context, doctree) -> None:
    context.setdefault("default_mode", "auto")
    seen, unique = set(), []
    for js in context.get("script_files", []):
        key = (str(getattr(js, "filename", js) or ""), repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    if "script_files" in context:
        context["script_files"][:] = unique  # in place: later handlers may still add scripts


def _description(doctree) -> str:
    """The page's first paragraph of some length (40 characters: not a caption or a one-liner)."""
    for para in doctree.findall(nodes.paragraph):
        text = " ".join(para.astext().split())
        if len(text) >= 40:
            if len(text) > 160:
                text = text[:157].rsplit(" ", 1)[0] + "…"
            return text
    return ""


def _describe_page(app, pagename, templatename, context, doctree) -> None:
    desc = _description(doctree) if doctree is not None else ""
    if not desc:
        site = context.get("docstitle") or app.config.html_title or ""
        desc = f"{context.get('title', '')}: {site}".strip(": ")
    context["metatags"] = context.get("metatags", "") + (
        f'\n    <meta name="description" content="{html.escape(desc, quote=True)}" />')


_TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S)
_IMG = re.compile(r"<img\b[^>]*>")


def _png_size(path: Path) -> tuple[int, int] | None:
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


_CITATION = re.compile(r'<div class="citation"[^>]*>.*?</div>', re.S)
_INLINE_TEX = re.compile(r"\$([^$<>\n]+)\$")


def _citation_math(m: re.Match) -> str:
    try:
        mathml = tex_to_mathml(html.unescape(m.group(1)), display=False)
    except ValueError:
        return m.group(0)
    return f'<span class="math notranslate nohighlight">{mathml}</span>'


def _fix_body(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if not body:
        return

    def wrap_table(m: re.Match) -> str:
        table = m.group(0)
        if 'class="dataframe' not in table[:200]:
            return table  # docutils tables: the theme wraps them in a scrolling container already
        return f'<div class="course-scroll" tabindex="0" role="region" aria-label="table">{table}</div>'

    body = _TABLE.sub(wrap_table, body)
    # Bibliography entries (sphinxcontrib-bibtex) keep a title's $TeX$ as text: MathML as elsewhere.
    body = _CITATION.sub(lambda c: _INLINE_TEX.sub(_citation_math, c.group(0)), body)
    # A hidden cell's toggle is named by what it shows ("Show code cell source"), not by an aria-label
    # that says something else (axe: label-content-name-mismatch).
    body = body.replace('<summary aria-label="Toggle hidden content">', "<summary>")
    # docutils gives a bibliography's entries role="doc-biblioentry" inside a role="list": that role is
    # deprecated and not a list item, so the list has no items (axe: aria-required-children, critical).
    body = body.replace('role="doc-biblioentry"', 'role="listitem"')
    # Sphinx copies the images of a page under _images/: their sources, by file name.
    images = getattr(app.builder, "images", {})
    sources = {Path(dest).name: Path(app.srcdir, src) for src, dest in images.items()}
    first = [True]

    def fix_img(m: re.Match) -> str:
        tag = m.group(0)
        extra = []
        if first[0]:
            first[0] = False
        elif "loading=" not in tag:
            extra.append('loading="lazy"')
        if "decoding=" not in tag:
            extra.append('decoding="async"')
        src = re.search(r'\bsrc="([^"]+)"', tag)
        if src and "width=" not in tag and "height=" not in tag:
            size = _png_size(sources.get(Path(src.group(1)).name, Path("/nonexistent")))
            if size:
                extra.append(f'width="{size[0]}" height="{size[1]}"')
        if not extra:
            return tag
        end = "/>" if tag.endswith("/>") else ">"
        return tag[: -len(end)].rstrip() + " " + " ".join(extra) + " " + end

    context["body"] = _IMG.sub(fix_img, body)


def setup(app):
    app.add_html_math_renderer(
        "course_mathml",
        inline_renderers=(html_visit_math, None),
        block_renderers=(html_visit_displaymath, None),
    )
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _fix_page, priority=100)
    app.connect("html-page-context", _describe_page, priority=100)
    app.connect("html-page-context", _fix_body, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
