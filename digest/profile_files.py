"""A researcher's library as a profile: BibTeX, a Zotero CSV export, or a list of arXiv ids and
DOIs, read into seed papers, interest text and often-seen authors. Pure: bytes in, a
`LibraryImport` out, never raising on bad input (what could not be used is counted with why).

- An entry naming an arXiv id (eprint, arXiv DOI, arxiv.org link, "arXiv:…" in a journal or
  Extra field) becomes a seed paper: the ranker then knows the paper itself.
- Any other entry with a title gives its title and abstract as interest text.
- Authors named in at least `FREQUENT` entries are offered to follow; never followed unasked.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from digest.ranking.authors import author_key
from digest.sources.ids import find_arxiv_id, normalize_doi
from digest.texts import unicode_text

# bibtexparser logs every block it cannot read; they are counted in the summary instead.
logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)

MAX_ENTRIES = 5000
MAX_SEEDS = 200
MAX_TEXT = 50_000  # characters of interest text kept from titles and abstracts
FREQUENT = 2  # entries an author must appear in to be offered
MAX_OFFERED = 20
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)
_BIBTEX = re.compile(r"^\s*@\s*[A-Za-z]+\s*[{(]", re.M)
_BRACES = re.compile(r"[{}]")


@dataclass(frozen=True)
class Entry:
    """One bibliography item, as plain text."""

    title: str = ""
    abstract: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    doi: str | None = None


@dataclass
class LibraryImport:
    """What a file gave: seeds, interest text, authors to offer, and what was not used."""

    kind: str = ""  # "BibTeX", "Zotero CSV", "list of ids"
    entries: int = 0
    seeds: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # one "title. abstract" per entry
    offered_authors: list[str] = field(default_factory=list)
    unused: Counter[str] = field(default_factory=Counter)  # reason -> entries
    error: str | None = None  # the file as a whole could not be read

    @property
    def used(self) -> int:
        return len(self.seeds) + len(self.texts)

    def summary(self) -> str:
        """One line: how many entries were used, as what, and why the others were not."""
        if self.error:
            return f"Nothing imported: {self.error}."
        parts = [
            f"Used {self.used} of {self.entries} entries from the {self.kind} file: "
            f"{len(self.seeds)} as seed papers (arXiv), {len(self.texts)} as interest text "
            "(title and abstract)"
        ]
        if self.unused:
            reasons = ", ".join(f"{n} {why}" for why, n in self.unused.most_common())
            parts.append(f"not used: {reasons}")
        return "; ".join(parts) + "."


def _plain(text: str) -> str:
    text = unicode_text(text) if "\\" in text or "$" in text else text
    return " ".join(_BRACES.sub("", text).split())


def _name(text: str) -> str:
    """An author as people write it: "Vaswani, Ashish" -> "Ashish Vaswani", TeX as Unicode."""
    name = _plain(text)
    if name.count(",") == 1:
        surname, given = (part.strip() for part in name.split(","))
        name = f"{given} {surname}".strip()
    return "" if name.lower() == "others" else name


def _arxiv_of(*values: str | None) -> str | None:
    for value in values:
        if not value:
            continue
        doi = _ARXIV_DOI.match(value.strip())
        found = find_arxiv_id(doi.group(1) if doi else value)
        if found:
            return found[0]
    return None


def _bibtex_entries(text: str, result: LibraryImport) -> list[Entry]:
    from bibtexparser.entrypoint import parse_string

    library = parse_string(text)
    if library.failed_blocks:
        result.unused["unreadable BibTeX blocks"] += len(library.failed_blocks)
    entries = []
    for item in library.entries:
        fields = {k.lower(): str(f.value) for k, f in item.fields_dict.items()}
        eprint = fields.get("eprint", "")
        prefix = fields.get("archiveprefix", "") or fields.get("eprinttype", "")
        arxiv = _arxiv_of(
            eprint if (not prefix or prefix.lower() == "arxiv") else None,
            fields.get("doi"),
            fields.get("url"),
            fields.get("journal"),
            fields.get("note"),
        )
        names = re.split(r"\s+and\s+", fields.get("author", ""))
        authors = tuple(a for a in (_name(n) for n in names) if a)
        entries.append(
            Entry(
                title=_plain(fields.get("title", "")),
                abstract=_plain(fields.get("abstract", "")),
                authors=authors,
                arxiv_id=arxiv,
                doi=normalize_doi(fields.get("doi")),
            )
        )
    return entries


def _zotero_entries(text: str) -> list[Entry]:
    entries = []
    for row in csv.DictReader(io.StringIO(text)):

        def get(name: str, row: Mapping[str, str | None] = row) -> str:
            return (row.get(name) or "").strip()

        arxiv = _arxiv_of(get("DOI"), get("Url"), get("Extra"), get("Publication Title"))
        authors = tuple(a for a in (_name(n) for n in get("Author").split(";")) if a)
        entries.append(
            Entry(
                title=_plain(get("Title")),
                abstract=_plain(get("Abstract Note")),
                authors=authors,
                arxiv_id=arxiv,
                doi=normalize_doi(get("DOI")),
            )
        )
    return entries


def _listed_entries(text: str, result: LibraryImport) -> list[Entry]:
    entries = []
    for line in text.splitlines():
        item = line.strip().strip(",;")
        if not item or item.startswith("#"):
            continue
        arxiv = _arxiv_of(item)
        doi = normalize_doi(item)
        if arxiv is None and doi is None:
            result.unused["lines that are neither an arXiv id nor a DOI"] += 1
            continue
        entries.append(Entry(arxiv_id=arxiv, doi=doi))
    return entries


def read_library(data: bytes) -> LibraryImport:
    """The library in `data` (format recognised from the content)."""
    result = LibraryImport()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.error = "the file is not UTF-8 text"
        return result
    try:
        if _BIBTEX.search(text):
            result.kind = "BibTeX"
            entries = _bibtex_entries(text, result)
        elif text.lstrip().startswith(("Key,", '"Key"', "Item Type", '"Item Type"')):
            result.kind = "Zotero CSV"
            entries = _zotero_entries(text)
        else:
            result.kind = "list of ids"
            entries = _listed_entries(text, result)
    except (csv.Error, ValueError) as exc:
        result.error = f"the {result.kind} file could not be read ({exc})"
        return result
    result.entries = len(entries) + sum(result.unused.values())  # unreadable ones count too
    if len(entries) > MAX_ENTRIES:
        result.unused[f"entries beyond the first {MAX_ENTRIES}"] += len(entries) - MAX_ENTRIES
        entries = entries[:MAX_ENTRIES]
    _sort(entries, result)
    if not result.entries:
        result.error = "no entries found (expected BibTeX, a Zotero CSV export, or ids)"
    return result


def _sort(entries: list[Entry], result: LibraryImport) -> None:
    """Seeds, interest texts and reasons from the entries; often-seen authors to offer."""
    seeds: dict[str, None] = {}
    size = 0
    for entry in entries:
        if entry.arxiv_id:
            if entry.arxiv_id in seeds:
                result.unused["repeated arXiv ids"] += 1
            elif len(seeds) >= MAX_SEEDS:
                result.unused[f"arXiv papers beyond the first {MAX_SEEDS}"] += 1
            else:
                seeds[entry.arxiv_id] = None
        elif not entry.title:
            reason = "DOIs without an arXiv id (no title or abstract to read)"
            result.unused[reason if entry.doi else "entries without a title or id"] += 1
        elif size >= MAX_TEXT:
            result.unused["entries beyond the interest text's length limit"] += 1
        else:
            text = f"{entry.title}. {entry.abstract}".strip()[: MAX_TEXT - size]
            result.texts.append(text)
            size += len(text)
    result.seeds = list(seeds)
    counts: Counter[str] = Counter()
    names: dict[str, str] = {}
    for entry in entries:
        keys = {author_key(a): a for a in entry.authors if author_key(a)}
        counts.update(keys.keys())
        for key, name in keys.items():
            names.setdefault(key, name)
    result.offered_authors = [names[k] for k, n in counts.most_common(MAX_OFFERED) if n >= FREQUENT]
