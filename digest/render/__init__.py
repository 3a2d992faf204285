"""Digest and confirmation emails: Jinja2 rendering and MIME assembly. Pure: no SMTP, no DB.

CSS is inlined once, when a template is loaded (css-inline), not per message. Each paper's
static fragment is rendered once per edition; per subscriber only the assembly happens.

- views: the data of one email (its items, links, the rendered digest);
- templates: the Jinja2 environment;
- fragments and edition: rendering an edition's digests once per paper and per layout;
- mime: headers and the RFC 5322 message.
"""

from __future__ import annotations

from digest.paper_views import MAX_AUTHORS, PaperView, authors_line, paper_view, safe_url, tldr
from digest.render.edition import EditionRenderer
from digest.render.mime import build_message, message_id
from digest.render.templates import InliningLoader, make_environment
from digest.render.views import DigestItem, DigestLinks, RenderedDigest

__all__ = [
    "MAX_AUTHORS",
    "DigestItem",
    "DigestLinks",
    "EditionRenderer",
    "InliningLoader",
    "PaperView",
    "RenderedDigest",
    "authors_line",
    "build_message",
    "make_environment",
    "message_id",
    "paper_view",
    "safe_url",
    "tldr",
]
