"""The Jinja2 environment of the emails and pages: autoescaped, strict, CSS inlined at load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

_BLOCK_TAG = re.compile(r"(\{%.*?%\})", re.S)
_COMMENTED_TAG = re.compile(r"<!--(\{%.*?%\})-->", re.S)


class InliningLoader(BaseLoader):
    """Loads templates from disk, inlining templates/email/digest.css into email HTML once.

    Jinja block tags are hidden in HTML comments while the HTML is parsed, so the parser's
    table repair cannot move them; block tags must therefore not sit inside attribute values.
    """

    def __init__(self, root: Path) -> None:
        self._files = FileSystemLoader(str(root))
        css_path = root / "email" / "digest.css"
        css = css_path.read_text(encoding="utf-8") if css_path.exists() else ""
        self._inliner = css_inline.CSSInliner(extra_css=css, keep_style_tags=True)
        self._css = css

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self._files.get_source(environment, template)
        if template.startswith("email/") and template.endswith(".html"):
            shielded = _BLOCK_TAG.sub(r"<!--\1-->", source)
            if shielded.lstrip().lower().startswith(("<!doctype", "<html")):
                inlined = self._inliner.inline(shielded)
                if not inlined.lstrip().lower().startswith("<!doctype"):
                    inlined = "<!DOCTYPE html>\n" + inlined
            else:
                inlined = css_inline.inline_fragment(shielded, self._css)
            source = _COMMENTED_TAG.sub(r"\1", inlined)
        return source, filename, uptodate


def make_environment(templates_dir: Path) -> Environment:
    """HTML templates autoescaped whatever their name; strict about missing variables."""
    if not templates_dir.is_dir():
        raise TemplateNotFound(str(templates_dir))
    return Environment(
        loader=InliningLoader(templates_dir),
        # Everything is escaped (default=True, so even a name like digest.html.j2 is: the trap
        # of RELIABILITY.md finding 8) except plain-text parts, where &amp; would be a bug.
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"),
            disabled_extensions=("txt",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        auto_reload=False,
    )
