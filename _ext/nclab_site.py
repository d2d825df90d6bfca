"""Small fixes to the built site, found by the browser test (tests/test_site.py).

- Every script is included once: Jupyter Book 1.x adds sphinx-thebe's configuration script twice
  (once with the file name None, once with ""),
  and the second ``const THEBE_JS_URL`` is a script error on every page.
- The theme starts in light mode: with no default, the theme logs "invalid theme mode" on every
  page, and the book's figures are drawn on white.
"""

from __future__ import annotations


def _light_by_default(app, config) -> None:
    # The theme reads the mode from the template context (html_context), not from its options.
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")
    config.html_context = context


def _each_script_once(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _light_by_default)
    app.connect("html-page-context", _each_script_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
