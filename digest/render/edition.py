"""The renderer of one edition's digests: fragments once per paper, layouts once per shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from digest import subjects
from digest.paper_views import PaperView
from digest.render.fragments import Fragment, SlotTemplate, SlotText, escaped, slot
from digest.render.mime import CR
from digest.render.views import DigestItem, DigestLinks, RenderedDigest

# Per section of a digest, its items encoded one way (HTML, text or quoted-printable).
Sections = list[list[bytes]]
# The placeholders of an item's and of a page layout's per-reader values.
_ITEM_SLOTS = {name: Markup(slot(name)) for name in ("why", "up_url", "down_url", "number")}
_LAYOUT_SLOTS = (
    "subject",
    "headline",
    "interests",
    "shortfall",
    "manage",
    "unsubscribe",
    "view",
    "archive",
)


@dataclass
class EditionRenderer:
    """Renders one edition's digests.

    Each paper's HTML and text fragment, and the page layout for each shape of digest (with or
    without interests, a shortfall note, the sections present), is rendered once with
    placeholders and kept as %-formats, the text also as its quoted-printable encoding; per
    subscriber only escaping the reader's values, filling the formats and encoding the lines
    holding the reader's values remain.
    """

    env: Environment
    edition_date: date
    postal_address: str
    _fragments: dict[str, Fragment] = field(default_factory=dict)
    _layouts: dict[tuple[Any, ...], Fragment] = field(default_factory=dict)
    _memos: dict[tuple[bytes, ...], dict[tuple[bytes, ...], bytes]] = field(default_factory=dict)

    def fragment(self, paper: PaperView) -> Fragment:
        cached = self._fragments.get(paper.key)
        if cached is None:
            html = self.env.get_template("email/_paper.html").render(paper=paper, **_ITEM_SLOTS)
            text = self.env.get_template("email/_paper.txt").render(paper=paper, **_ITEM_SLOTS)
            # Jinja drops the template's last line end, but in a digest every item ends a line.
            cached = Fragment(
                SlotTemplate.of(html),
                SlotText.of(text, ends_line=True, memos=self._memos),
            )
            self._fragments[paper.key] = cached
        return cached

    def _layout(self, shape: tuple[Any, ...]) -> Fragment:
        cached = self._layouts.get(shape)
        if cached is None:
            has_interests, has_shortfall, is_test, titles = shape
            slots = {name: Markup(slot(name)) for name in _LAYOUT_SLOTS}
            context = {
                "subject": slots["subject"],
                "edition_label": self.edition_date.strftime("%A %d %B %Y"),
                "headline": slots["headline"],
                "interests": slots["interests"] if has_interests else "",
                "shortfall": slots["shortfall"] if has_shortfall else "",
                "links": DigestLinks(
                    *(slots[n] for n in ("manage", "unsubscribe", "view", "archive"))
                ),
                "postal_address": self.postal_address,
                "is_test": is_test,
            }
            sections = [
                {"title": title, "entries": [Markup(slot(f"section{n}"))]}
                for n, title in enumerate(titles)
            ]
            html = self.env.get_template("email/digest.html").render(context, sections=sections)
            text = self.env.get_template("email/digest.txt").render(context, sections=sections)
            blocks = frozenset(f"section{n}" for n in range(len(titles)))
            cached = Fragment(SlotTemplate.of(html), SlotText.of(text, blocks))
            self._layouts[shape] = cached
        return cached

    def _sections(
        self, items: Sequence[DigestItem]
    ) -> tuple[list[str], Sections, Sections, Sections]:
        """Each item's fragment filled with the reader's values, grouped by section in order:
        (section titles, their HTML, text and quoted-printable items)."""
        titles: list[str] = []
        html_sections: Sections = []
        text_sections: Sections = []
        qp_sections: Sections = []
        for number, item in enumerate(items, start=1):
            title = "Trending today" if item.section == "Trending" else "For you"
            if not titles or titles[-1] != title:
                titles.append(title)
                html_sections.append([])
                text_sections.append([])
                qp_sections.append([])
            fragment = self.fragment(item.paper)
            why = item.why.encode("utf-8")
            up_url = item.up_url.encode("utf-8")
            down_url = item.down_url.encode("utf-8")
            html_sections[-1].append(
                fragment.html.fill(
                    {
                        "why": escaped(item.why, why),
                        "up_url": escaped(item.up_url, up_url),
                        "down_url": escaped(item.down_url, down_url),
                    }
                )
            )
            values = {"number": _NUMBERS[number] if number < len(_NUMBERS) else b"%d" % number}
            values.update(why=why, up_url=up_url, down_url=down_url)
            text_sections[-1].append(fragment.text.plain.fill(values))
            qp_sections[-1].append(fragment.text.encode(values, {}))
        return titles, html_sections, text_sections, qp_sections

    def render(
        self,
        *,
        items: Sequence[DigestItem],
        interests: str,
        links: DigestLinks,
        shortfall: str = "",
        is_test: bool = False,
        picks: tuple[tuple[str, str, str], ...] = (),
    ) -> RenderedDigest:
        matched = sum(1 for i in items if i.section == "For you")
        count = len(items)
        headline = subjects.headline(count, matched)
        subject = subjects.subject(count, items[0].paper.title if items else "", is_test=is_test)
        titles, html_sections, text_sections, qp_sections = self._sections(items)
        short = _short_interests(interests)
        layout = self._layout((bool(short), bool(shortfall), is_test, tuple(titles)))
        text_values = {
            "subject": subject.encode("utf-8"),
            "headline": headline.encode("utf-8"),
            "interests": short.encode("utf-8"),
            "shortfall": shortfall.encode("utf-8"),
            "manage": links.manage.encode("utf-8"),
            "unsubscribe": links.unsubscribe.encode("utf-8"),
            "view": links.view.encode("utf-8"),
            "archive": links.archive.encode("utf-8"),
        }
        # Every value below is escaped here, and every fragment came from an autoescaped
        # template: the joined page is safe HTML by construction.
        html_values = {
            "subject": escaped(subject, text_values["subject"]),
            "headline": escaped(headline, text_values["headline"]),
            "interests": escaped(short, text_values["interests"]),
            "shortfall": escaped(shortfall, text_values["shortfall"]),
            "manage": escaped(links.manage, text_values["manage"]),
            "unsubscribe": escaped(links.unsubscribe, text_values["unsubscribe"]),
            "view": escaped(links.view, text_values["view"]),
            "archive": escaped(links.archive, text_values["archive"]),
        }
        qp_blocks: dict[str, bytes] = {}
        for n, (html_items, text_items, qp_items) in enumerate(
            zip(html_sections, text_sections, qp_sections, strict=True)
        ):
            name = f"section{n}"
            html_values[name] = b"".join(html_items)
            # One blank line between items; the layout ends the section's last line.
            text_values[name] = b"\n\n".join(text_items)
            qp_blocks[name] = b"\r\n".join(qp_items)
        text = layout.text.plain.fill(text_values)
        # A CR anywhere (a reader's value or feed text) means line ends that the one-pass
        # encoder normalises across piece boundaries: build_message then encodes the text whole.
        text_qp = None if CR in text else layout.text.encode(text_values, qp_blocks)
        return RenderedDigest(
            subject=subject,
            html_utf8=layout.html.fill(html_values),
            text_utf8=text,
            picks=picks,
            text_qp=text_qp,
        )


_NUMBERS = [b"%d" % n for n in range(100)]


def _short_interests(interests: str, limit: int = 120) -> str:
    text = " ".join(interests.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"
