"""arXiv identifiers: find, validate and normalise them (new and old style, links, oai guids).

The merge key of a paper is its arXiv id without version: "2504.17830", "hep-th/9901001".
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# New style (April 2007 on): YYMM.NNNN until 2014, YYMM.NNNNN from 2015; optional vN.
_NEW = r"(?P<new>(?P<yy>\d{2})(?P<mm>\d{2})\.(?P<num>\d{4,5}))"
# Old style: archive[.SUBJECT-CLASS]/YYMMNNN, e.g. hep-th/9901001, math.AG/0601001.
_OLD = r"(?P<old>(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[A-Z]{2})?/(?P<oldnum>\d{7}))"
_VERSION = r"(?:v(?P<version>\d{1,4}))?"
_ID = re.compile(rf"^(?:{_NEW}|{_OLD}){_VERSION}$")
# Prefixes that may precede an id in free text or guids.
_PREFIX = re.compile(r"^(?:oai:arxiv\.org:|arxiv:|ar[xX]iv\.org:)", re.IGNORECASE)
_FIND = re.compile(
    rf"(?<![\w.]){_PREFIX.pattern[1:]}?(?:{_NEW}|{_OLD}){_VERSION}(?![\w])", re.IGNORECASE
)
_ARXIV_HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org")
# Sites whose paper pages are addressed by arXiv id (huggingface.co/papers/2504.17830, ...).
_MIRROR_PATHS = {
    "huggingface.co": ("papers",),
    "www.huggingface.co": ("papers",),
    "alphaxiv.org": ("abs", "overview"),
    "www.alphaxiv.org": ("abs", "overview"),
    "paperswithcode.com": ("paper",),
}
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.IGNORECASE)


def _valid(match: re.Match[str]) -> bool:
    if match.group("new"):
        month = int(match.group("mm"))
        year = int(match.group("yy"))
        if not 1 <= month <= 12 or (year, month) < (7, 4):
            return False
        # Five-digit numbers start in 2015 (1501); before that exactly four digits.
        return (len(match.group("num")) == 5) == (year >= 15)
    # Old-style ids run from 1991 to March 2007; YY 91-99 or 00-07, month 01-12.
    digits = match.group("oldnum")
    year, month = int(digits[:2]), int(digits[2:4])
    return (year >= 91 or year <= 7) and 1 <= month <= 12


def _base(match: re.Match[str]) -> str:
    if match.group("new"):
        return match.group("new")
    return f"{match.group('archive').lower()}/{match.group('oldnum')}"


def split_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """Split an arXiv id (prefixed, versioned, or an arXiv/mirror link) into base id and version."""
    if not text:
        return None
    text = text.strip()
    if "/" in text and ("://" in text or text.lower().startswith(("arxiv.org", "www.arxiv.org"))):
        return arxiv_id_from_url(text)
    text = _PREFIX.sub("", text)
    match = _ID.match(text)
    if not match or not _valid(match):
        return None
    version = match.group("version")
    return _base(match), (int(version) if version else None)


def normalize_arxiv_id(text: str | None) -> str | None:
    """The version-less arXiv id named by `text`, or None when it names none."""
    parts = split_arxiv_id(text)
    return parts[0] if parts else None


def paper_key(text: str) -> str:
    """The stored key a person means by `text`: a version-less arXiv id when it names one (any
    version or link form), else the text itself, trimmed."""
    return normalize_arxiv_id(text) or text.strip()


def arxiv_id_from_url(url: str | None) -> tuple[str, int | None] | None:
    """Base id and version from an arXiv abs/pdf/html link or a mirror page link, else None."""
    if not url:
        return None
    if "://" not in url:
        url = "https://" + url
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    path = parts.path.strip("/")
    if host in _ARXIV_HOSTS:
        section, _, rest = path.partition("/")
        if section not in ("abs", "pdf", "html", "format", "ps"):
            return None
        rest = rest.removesuffix(".pdf")
    elif host in _MIRROR_PATHS:
        section, _, rest = path.partition("/")
        if section not in _MIRROR_PATHS[host]:
            return None
    elif host in ("doi.org", "dx.doi.org"):
        match = _ARXIV_DOI.match(path)
        if not match:
            return None
        rest = match.group(1)
    else:
        return None
    rest = _PREFIX.sub("", rest.strip("/"))
    match = _ID.match(rest)
    if not match or not _valid(match):
        return None
    version = match.group("version")
    return _base(match), (int(version) if version else None)


def find_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """The first valid arXiv id mentioned in free text ("arXiv:2504.17830v2 ..."), else None."""
    if not text:
        return None
    for match in _FIND.finditer(text):
        if _valid(match):
            version = match.group("version")
            return _base(match), (int(version) if version else None)
    return None


def canonical_url(url: str | None) -> str | None:
    """A link reduced to a stable identity: lower-case host, no fragment or tracking query."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    query = "&".join(
        item for item in parts.query.split("&") if item and not item.lower().startswith("utm_")
    )
    netloc = parts.netloc.lower()
    return urlunsplit(("https", netloc, parts.path or "/", query, ""))


def normalize_doi(value: str | None) -> str | None:
    """A bare lower-case DOI ("10.1103/physrevb.111.144313") from a DOI, doi: or doi.org form."""
    if not value:
        return None
    text = value.strip()
    text = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", text, flags=re.IGNORECASE)
    if not re.match(r"^10\.\d{4,9}/\S+$", text):
        return None
    return text.lower()
