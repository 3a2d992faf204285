"""Author names as keys that match across the forms sources write them in.

"Hajdu\\v{s}ek", "Hajdušek" and "HAJDUSEK" are one key (TeX turned to Unicode, accents and case
dropped); "Baeva, Anna V." is "Anna V. Baeva". Initials ("A. V. Baeva" for "Anna V. Baeva")
are matched by `AuthorIndex`, built once per edition from the candidates' author keys, and
only where the match is unambiguous among that edition's authors.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache

from digest.texts import unicode_text

_NOT_NAME = re.compile(r"[^\w\s]")


@lru_cache(maxsize=65536)
def author_key(name: str) -> str:
    """The comparable form of an author name: plain lower-case letters, one space between."""
    text = unicode_text(name) if "\\" in name or "{" in name else name
    if text.count(",") == 1:  # "Surname, Given" -> "Given Surname"
        surname, given = text.split(",")
        text = f"{given} {surname}"
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _NOT_NAME.sub(" ", text.replace("-", " ").replace("'", "")).lower()
    return " ".join(text.split())


def _parts(key: str) -> tuple[list[str], str]:
    words = key.split()
    return words[:-1], (words[-1] if words else "")


def _same_given(a: str, b: str) -> bool:
    """Given names agree: equal, or one is the other's initial."""
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return a == b


def compatible(a: str, b: str) -> bool:
    """Two keys may name one person: same surname, same first given name or initial, middle
    names agreeing where both have them; and at least one side written with initials (two
    different full first names are two people)."""
    given_a, surname_a = _parts(a)
    given_b, surname_b = _parts(b)
    if surname_a != surname_b or not given_a or not given_b:
        return False
    if not any(len(g) == 1 for g in given_a + given_b):
        return False
    return all(_same_given(x, y) for x, y in zip(given_a, given_b, strict=False))


class AuthorIndex:
    """Today's author keys, grouped by (surname, first initial) for initials matching."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.rows: dict[str, int] = {}
        self._groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for key in keys:
            self.rows[key] = len(self.rows)
            given, surname = _parts(key)
            if given:
                self._groups[(surname, given[0][0])].append(key)

    def row_of(self, name: str) -> int | None:
        """The row of today's author `name` names, or None (absent, or ambiguous)."""
        key = author_key(name)
        row = self.rows.get(key)
        if row is not None:
            return row
        given, surname = _parts(key)
        if not given:
            return None
        matches = [k for k in self._groups.get((surname, given[0][0]), ()) if compatible(key, k)]
        if len(matches) > 1 and len(given) > 1:
            # A middle name said decides: "A. V. Baeva" is "Anna V. Baeva", not "Alexei Baeva".
            matches = [k for k in matches if len(k.split()) >= len(key.split())]
        return self.rows[matches[0]] if len(matches) == 1 else None

    def resolve(self, names: Iterable[str]) -> dict[str, int]:
        """name -> row for each distinct name that matches one of today's authors."""
        out: dict[str, int] = {}
        for name in set(names):
            row = self.row_of(name)
            if row is not None:
                out[name] = row
        return out
