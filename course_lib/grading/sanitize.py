"""Feedback that runs nothing: student-controlled text, made safe for the HTML and Markdown it lands in.

A student controls much of what their feedback shows: markdown cells (raw HTML allowed), outputs
(``text/html``, SVG), file names, even grade ids. ``feedback_html(html)`` cleans the body of a
rendered feedback page with nh3 (the Python binding of the Ammonia sanitizer): only the tags and
attributes nbconvert's templates use survive, no ``<script>``, no ``on*`` handler, no
``javascript:`` or ``data:`` link, and images only as inline PNG/JPEG/GIF/WebP data. The page's
head (nbgrader's template: styles and the MathJax loader) is the grader's and is kept; a
Content-Security-Policy meta tag in it forbids inline scripts, so even markup the sanitizer let
through could not run. ``md(text)`` and ``cell(text)`` escape strings for ``summary.md`` and for
CSV files opened in a spreadsheet (no formula: a leading ``= + - @`` gets a quote).
"""

from __future__ import annotations

import html
import re

import nh3

#: What a feedback page may load: styles inline, images inline, MathJax from its CDN; no inline
#: script, no eval of injected text, nothing else from anywhere.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline' https://cdnjs.cloudflare.com; img-src data:; "
    "font-src data: https://cdnjs.cloudflare.com; script-src https://cdnjs.cloudflare.com 'unsafe-eval'; "
    "base-uri 'none'; form-action 'none'"
)

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "main", "ol", "p", "pre", "s", "samp", "small", "span", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "id", "title", "tabindex"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
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


def feedback_html(page: str) -> str:
    """A rendered feedback page with its body sanitized and the CSP in its head."""
    match = _BODY.search(page)
    if match is None:  # not a page: treat it all as student content
        return clean(page)
    head, body = page[: match.start()], clean(match.group(2))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP, quote=True)}">'
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
