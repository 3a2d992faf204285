"""Shipped defaults that must not reach subscribers: example.com addresses, "1 Example Street",
a base URL on localhost. Pure: settings in, one problem per setting out.

In production mode `digest doctor` fails on each and `digest send` refuses to start; in dev and
demo modes the defaults are what makes the service run out of the box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.settings import Settings

# RFC 2606 reserves these second-level names for documentation.
_EXAMPLE_DOMAIN = re.compile(r"(^|[.@<\s])example\.(com|org|net)\b", re.IGNORECASE)
_PLACEHOLDER_POSTAL = re.compile(r"\bexample\s+(street|city|road|avenue)\b", re.IGNORECASE)
_LOCAL_HOSTS = ("localhost", "127.", "0.0.0.0", "[::1]", "::1")


@dataclass(frozen=True)
class Placeholder:
    setting: str  # dotted key, e.g. email.from_address
    variable: str  # the environment variable that sets it
    value: str
    fix: str


def _uses_example_domain(value: str) -> bool:
    return bool(_EXAMPLE_DOMAIN.search(value))


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(".localhost") or any(host.startswith(h) for h in _LOCAL_HOSTS)


def find_placeholders(settings: Settings) -> list[Placeholder]:
    """Every setting still at a placeholder value (whatever the mode)."""
    e, found = settings.email, []
    addresses = [
        ("email.from_address", "DIGEST_FROM", e.from_address, "your From address"),
        ("email.reply_to_domain", "DIGEST_EMAIL_REPLY_TO_DOMAIN", e.reply_to_domain,
         "the domain that receives replies (reply+token@ and the mailto: unsubscribe)"),
        ("email.list_id", "DIGEST_EMAIL_LIST_ID", e.list_id, "a List-Id under your domain"),
        ("email.message_id_domain", "DIGEST_EMAIL_MESSAGE_ID_DOMAIN", e.message_id_domain,
         "your domain"),
        ("inbound.address", "DIGEST_INBOUND_ADDRESS", settings.inbound.address,
         "the address people write commands to"),
        ("inbound.bounce_address", "DIGEST_INBOUND_BOUNCE_ADDRESS",
         settings.inbound.bounce_address, "the address bounces come back to"),
        ("fetch.contact", "DIGEST_FETCH_CONTACT", settings.fetch.contact,
         "an address the feeds' operators can reach you at"),
    ]  # fmt: skip
    for setting, variable, value, what in addresses:
        if _uses_example_domain(value):
            found.append(Placeholder(setting, variable, value, f"set {variable} to {what}"))
    if _PLACEHOLDER_POSTAL.search(e.postal_address) or _uses_example_domain(e.postal_address):
        found.append(
            Placeholder(
                "email.postal_address",
                "DIGEST_EMAIL_POSTAL_ADDRESS",
                e.postal_address,
                "set DIGEST_EMAIL_POSTAL_ADDRESS to your real postal address (the law requires "
                "one in every bulk mail)",
            )
        )
    if _is_local(settings.web.base_url):
        found.append(
            Placeholder(
                "web.base_url",
                "DIGEST_BASE_URL",
                settings.web.base_url,
                "set DIGEST_BASE_URL to the public https:// address of `digest serve` (every "
                "link in every mail points there)",
            )
        )
    return found


def production_placeholders(settings: Settings) -> list[Placeholder]:
    """The placeholders that matter: all of them in production mode, none in dev or demo."""
    return find_placeholders(settings) if settings.mode == "production" else []
