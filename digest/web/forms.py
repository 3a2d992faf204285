"""Form validation: raw form fields in, Preferences or a FormError naming each bad field out.

Pure functions (no request, no DB), so hypothesis and atheris can drive them directly. Error
codes, not messages: the wording lives in templates/web/_errors.html.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from digest.addresses import normalise_address
from digest.usecases.subscriptions import Preferences, SubscribeRequest
from digest.windows import PAPERS_PER_DIGEST
from digest.zones import is_zone, listed_zones

MAX_EMAIL = 254  # RFC 5321 path limit
MAX_INTERESTS_TEXT = 6000
MAX_INTERESTS = 50
MAX_INTEREST_CHARS = 100
MAX_CATEGORIES = 20
MAX_SEEDS = 200  # an imported library may bring many (digest/usecases/profile_imports.py)
MAX_AUTHORS = 50
MAX_AUTHOR_CHARS = 100
MAX_MUTED = 50
MAX_MUTED_CHARS = 60
FREQUENCIES = ("daily", "weekdays", "weekly")
# Line breaks of every kind a mail header parser might honour, plus NUL.
LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x85\u2028\u2029")
_SPLIT_INTERESTS = re.compile(r"[,;\n\r\u2028\u2029\x85]+")
_CATEGORY = re.compile(r"^[a-z][a-z-]{0,15}(\.[A-Za-z][A-Za-z-]{0,15})?$")
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z.-]{1,20}/\d{7}"
_SEED = re.compile(
    rf"^(?:https?://(?:www\.)?(?:arxiv\.org/(?:abs|pdf)|huggingface\.co/papers)/)?"
    rf"({_NEW_ID}|{_OLD_ID})(?:v\d+)?(?:\.pdf)?/?$"
)


class FormError(Exception):
    """One or more fields are invalid: `errors` maps field name to an error code."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def timezones() -> tuple[str, ...]:
    """The zones the forms offer: real places of the zone database and UTC (no "Factory")."""
    return listed_zones()


def _clean(text: str) -> str:
    """Drop control and format characters (keeps ordinary spaces); collapse whitespace."""
    kept = "".join(
        " " if ch in LINE_BREAKS or ch == "\t" else ch
        for ch in text
        if ch in LINE_BREAKS or ch == "\t" or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def parse_email(raw: str) -> str:
    """The normalised address, or FormError. No line breaks, ≤ 254 characters, ASCII only."""
    if not raw.strip():
        raise FormError({"email": "required"})
    if len(raw) > MAX_EMAIL:
        raise FormError({"email": "too_long"})
    # Checked before the normaliser strips the ends, so a trailing line break is refused too.
    if any(ch in LINE_BREAKS or unicodedata.category(ch)[0] == "C" for ch in raw):
        raise FormError({"email": "invalid"})
    if not raw.isascii():
        # Said apart: the address may well be real, we just cannot mail it.
        raise FormError({"email": "not_ascii"})
    try:
        address = normalise_address(raw)
    except ValueError as exc:
        raise FormError({"email": "invalid"}) from exc
    if len(address) > MAX_EMAIL:
        raise FormError({"email": "too_long"})
    return address


def parse_interests(raw: str) -> str:
    """Interests as ", "-joined phrases: at most 50, each at most 100 characters."""
    if len(raw) > MAX_INTERESTS_TEXT:
        raise FormError({"interests": "too_long"})
    items = [_clean(part) for part in _SPLIT_INTERESTS.split(raw)]
    items = [item for item in items if item]
    if len(items) > MAX_INTERESTS:
        raise FormError({"interests": "too_many"})
    if any(len(item) > MAX_INTEREST_CHARS for item in items):
        raise FormError({"interests": "item_too_long"})
    return ", ".join(items)


def parse_categories(raw: str) -> tuple[str, ...]:
    items = [c for c in re.split(r"[\s,;]+", raw.strip()) if c]
    if len(items) > MAX_CATEGORIES:
        raise FormError({"categories": "too_many"})
    if not all(_CATEGORY.match(c) for c in items):
        raise FormError({"categories": "invalid"})
    return tuple(dict.fromkeys(items))


def parse_seeds(raw: str) -> tuple[str, ...]:
    """arXiv ids or arXiv / Hugging Face paper URLs, stored as ids without version."""
    items = [s for s in re.split(r"[\s,;]+", raw.strip()) if s]
    if len(items) > MAX_SEEDS:
        raise FormError({"seed_papers": "too_many"})
    keys = []
    for item in items:
        match = _SEED.match(item)
        if not match:
            raise FormError({"seed_papers": "invalid"})
        keys.append(match.group(1))
    return tuple(dict.fromkeys(keys))


def parse_authors(raw: str) -> tuple[str, ...]:
    """Followed authors, one per line or separated by semicolons ("Baeva, Anna" keeps its
    comma); the same person written twice is kept once."""
    items = [_clean(part) for part in re.split(r"[;\n\r]+", raw)]
    items = [item for item in items if item]
    if len(items) > MAX_AUTHORS:
        raise FormError({"authors": "too_many"})
    if any(len(item) > MAX_AUTHOR_CHARS for item in items):
        raise FormError({"authors": "item_too_long"})
    return tuple(dict.fromkeys(items))


def parse_muted(raw: str) -> tuple[str, ...]:
    """Muted words, phrases or arXiv categories, separated by commas, semicolons or lines."""
    items = [_clean(part) for part in _SPLIT_INTERESTS.split(raw)]
    items = [item for item in items if item]
    if len(items) > MAX_MUTED:
        raise FormError({"muted": "too_many"})
    if any(len(item) > MAX_MUTED_CHARS for item in items):
        raise FormError({"muted": "item_too_long"})
    return tuple(dict.fromkeys(items))


def _int(raw: str, low: int, high: int, name: str, default: int | None) -> int | None:
    if not raw.strip():
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise FormError({name: "invalid"})
    return int(raw)


def parse_preferences(form: Mapping[str, Any], *, default_hour: int = 7) -> Preferences:
    """Every preference field; all errors are collected so the page can show them together."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    parsers = {
        "interests": lambda: parse_interests(_field(form, "interests")),
        "categories": lambda: parse_categories(_field(form, "categories")),
        "seed_papers": lambda: parse_seeds(_field(form, "seed_papers")),
        "delivery_hour": lambda: _int(
            _field(form, "delivery_hour"), 0, 23, "delivery_hour", default_hour
        ),
        "weekly_day": lambda: _int(_field(form, "weekly_day"), 0, 6, "weekly_day", 0),
        "trending": lambda: _int(_field(form, "trending"), 0, 100, "trending", 25) / 100,
        "authors": lambda: parse_authors(_field(form, "authors")),
        "muted": lambda: parse_muted(_field(form, "muted")),
        "papers_per_digest": lambda: _int(
            _field(form, "papers_per_digest"), *PAPERS_PER_DIGEST, "papers_per_digest", None
        ),
    }
    for name, parse in parsers.items():
        try:
            values[name] = parse()
        except FormError as exc:
            errors.update(exc.errors)
    timezone = _field(form, "timezone").strip() or "UTC"
    if not is_zone(timezone):
        errors["timezone"] = "invalid"
    frequency = _field(form, "frequency") or "daily"
    if frequency not in FREQUENCIES:
        errors["frequency"] = "invalid"
    if errors:
        raise FormError(errors)
    return Preferences(
        interests=values["interests"],
        categories=values["categories"],
        seed_papers=values["seed_papers"],
        timezone=timezone,
        delivery_hour=values["delivery_hour"],
        frequency=frequency,
        weekly_day=values["weekly_day"],
        trending_weight=values["trending"],
        nothing_new_note=_field(form, "nothing_new_note") in ("on", "1", "yes"),
        authors=values["authors"],
        muted=values["muted"],
        papers_per_digest=values["papers_per_digest"],
    )


def parse_subscribe_form(form: Mapping[str, Any], *, default_hour: int = 7) -> SubscribeRequest:
    """The whole subscribe form; FormError lists every invalid field."""
    errors: dict[str, str] = {}
    email = ""
    try:
        email = parse_email(_field(form, "email"))
    except FormError as exc:
        errors.update(exc.errors)
    try:
        prefs = parse_preferences(form, default_hour=default_hour)
    except FormError as exc:
        errors.update(exc.errors)
    if errors:
        raise FormError(errors)
    return SubscribeRequest(email=email, preferences=prefs)
