"""Small fixes to the site's HTML, loaded by _config.yml (``sphinx.local_extensions``).

* sphinx-thebe adds its inline configuration script twice under Jupyter Book 1, so browsers
  report "Identifier 'THEBE_JS_URL' has already been declared": drop repeated scripts.
* pydata-sphinx-theme logs "invalid theme mode" when no default colour mode is given: use
  "auto", which follows the reader's system setting (our figures have white backgrounds, so
  they stay readable in the dark theme).
"""

from __future__ import annotations


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


def setup(app):
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", _fix_page, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
