"""Address validation for list imports: email-validator's rules, without its cost per row.

email-validator spends most of its ~90 us per address on the domain (IDNA, UTS-46 checks per
character). A list has few distinct domains, so each domain is validated once with the library
and remembered; the local part is checked with the library's own dot-atom pattern. Anything
off that common path (quoted or non-ASCII parts, odd lengths, a refused domain) goes through
the full library call, so verdicts and error messages are exactly the library's.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT

_MAX_LOCAL = 64
_MAX_ADDRESS = 254


def normalise_address(value: str) -> str:
    """A validated, normalised, lower-case ASCII address, or a ValueError with the reason."""
    value = value.strip()
    if not value.isascii():
        raise ValueError(f"{value!r}: only ASCII addresses are accepted")
    local, at, domain = value.rpartition("@")
    if (
        at
        and len(local) <= _MAX_LOCAL
        and len(value) <= _MAX_ADDRESS
        and DOT_ATOM_TEXT.match(local)
    ):
        normal_domain = _domain(domain)
        if normal_domain is not None and len(local) + 1 + len(normal_domain) <= _MAX_ADDRESS:
            return f"{local}@{normal_domain}".lower()
    return _full(value)


def _full(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r}: {exc}") from None


@lru_cache(maxsize=65_536)
def _domain(domain: str) -> str | None:
    """The library's normalised form of `domain`, or None when it refuses it."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None
