"""The view data of one email: a reader's items and links in, the rendered digest out."""

from __future__ import annotations

from dataclasses import dataclass, field

from digest.paper_views import PaperView


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One paper in one subscriber's digest: the shared view plus this reader's reason and links."""

    paper: PaperView
    why: str
    up_url: str
    down_url: str
    section: str = "For you"


@dataclass(frozen=True, slots=True)
class DigestLinks:
    manage: str
    unsubscribe: str
    view: str
    archive: str = ""


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """A digest as UTF-8, the form it is assembled in and mailed in; `html` and `text` decode
    it for the pages and tools that want strings."""

    subject: str
    html_utf8: bytes
    text_utf8: bytes
    # (paper key, reason, kind) in the order shown; stored with the delivery for replays.
    picks: tuple[tuple[str, str, str], ...] = ()
    # The text quoted-printable encoded (CRLF line ends), mostly from encodings made once per
    # edition, so build_message need not encode it again; None when it must (see render).
    text_qp: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def html(self) -> str:
        return self.html_utf8.decode("utf-8")

    @property
    def text(self) -> str:
        return self.text_utf8.decode("utf-8")
