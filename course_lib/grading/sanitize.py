"""Feedback that runs nothing: student-controlled text, made safe for the HTML and Markdown it lands in.

A student controls much of what their feedback shows: markdown cells (raw HTML allowed), outputs
(``text/html``, SVG), file names, even grade ids. ``feedback_html(html)`` cleans the body of a
rendered feedback page with nh3 (the Python binding of the Ammonia sanitizer): only the tags and
attributes nbconvert's templates use survive, no ``<script>``, no ``on*`` handler, no
``javascript:`` or ``data:`` link, and images only as inline PNG/JPEG/GIF/WebP data. Math needs no
script and no network: ``math_to_mathml`` turns the TeX of markdown cells into MathML (with
latex2mathml) before the page is rendered, and every browser draws MathML itself; the MathJax
loader of nbgrader's template is removed from the head, and a Content-Security-Policy meta tag
there forbids every script, so even markup the sanitizer let through could not run. ``md(text)``
and ``cell(text)`` escape strings for ``summary.md`` and for CSV files opened in a spreadsheet
(no formula: a leading ``= + - @`` gets a quote).
"""

from __future__ import annotations

import html
import re

import nh3

#: What a feedback page may load: its own styles and inline images; no script at all, nothing from
#: anywhere (it reads offline, math included).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "main", "ol", "p", "pre", "s", "samp", "small", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
    # MathML, from math_to_mathml
    "math", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac",
    "msqrt", "mroot", "mstyle", "merror", "mpadded", "mphantom", "mfenced", "menclose", "munder",
    "mover", "munderover", "mtable", "mtr", "mtd", "semantics", "annotation",
}  # fmt: skip
MATHML_ATTRIBUTES = {
    "display", "xmlns", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign",
    "rowspacing", "columnspacing", "accent", "accentunder", "linethickness", "width", "height", "depth",
    "movablelimits", "symmetric", "largeop", "minsize", "maxsize", "scriptlevel", "displaystyle",
    "notation", "open", "close", "separators", "encoding", "form",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "id", "title", "tabindex"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    **{
        tag: MATHML_ATTRIBUTES
        for tag in (
            "math",
            "mrow",
            "mi",
            "mo",
            "mn",
            "mtext",
            "mspace",
            "msup",
            "msub",
            "msubsup",
            "mfrac",
            "msqrt",
            "mroot",
            "mstyle",
            "mpadded",
            "mfenced",
            "menclose",
            "munder",
            "mover",
            "munderover",
            "mtable",
            "mtr",
            "mtd",
            "annotation",
        )
    },  # fmt: skip
}
_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
_BODY = re.compile(r"(<body[^>]*>)(.*)(</body>)", re.S | re.I)


def _attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if _IMAGE.match(value) else None
    if tag == "a" and name == "href":
        v = value.strip().lower()
        return value if v.startswith(("#", "http://", "https://", "mailto:")) else None
    return value


def clean(fragment: str) -> str:
    """``fragment`` with only the safe tags and attributes (see the module docstring)."""
    return nh3.clean(
        fragment,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "data"},
        attribute_filter=_attribute,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S | re.I)
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)")


def _mathml(tex: str, display: str) -> str:
    import latex2mathml.converter

    try:
        return latex2mathml.converter.convert(tex.strip(), display=display)
    except Exception:  # what latex2mathml cannot read stays TeX, as code
        return f"<code>{html.escape(tex.strip())}</code>"


def math_to_mathml(markdown: str) -> str:
    """``markdown`` with its ``$...$`` and ``$$...$$`` math as MathML (code spans and blocks kept)."""
    parts = _CODE.split(markdown)
    for i in range(0, len(parts), 2):  # the even parts are outside code
        text = _DISPLAY.sub(lambda m: "\n\n" + _mathml(m.group(1), "block") + "\n\n", parts[i])
        parts[i] = _INLINE.sub(lambda m: _mathml(m.group(1), "inline"), text)
    return "".join(parts)


def feedback_html(page: str) -> str:
    """A rendered feedback page: its body sanitized, its scripts gone, the CSP in its head."""
    match = _BODY.search(page)
    if match is None:  # not a page: treat it all as student content
        return clean(page)
    head, body = _SCRIPT.sub("", page[: match.start()]), clean(match.group(2))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP, quote=False)}">'
    head = re.sub(r"(<head[^>]*>)", r"\1\n" + meta.replace("\\", "\\\\"), head, count=1, flags=re.I)
    if meta not in head:
        head = meta + head
    return head + match.group(1) + body + match.group(3) + page[match.end() :]


_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def md(text: object) -> str:
    """``text`` for a Markdown table or list: HTML escaped, Markdown's specials backslashed, one line."""
    one_line = " ".join(str(text).split())
    return _MD.sub(r"\\\1", html.escape(one_line, quote=False))


def cell(text: object) -> str:
    """``text`` for a CSV cell a spreadsheet may open: no leading formula character."""
    value = str(text)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
