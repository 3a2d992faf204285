"""Optional DKIM signing of outgoing messages (dkimpy).

dkimpy's default header list leaves out List-Unsubscribe-Post, and RFC 8058 section 4 says both
List-Unsubscribe headers MUST be covered, so the list is given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dkim

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


class SigningError(Exception):
    """The DKIM key could not be read or the message could not be signed."""


@dataclass(frozen=True)
class DkimSigner:
    domain: str
    selector: str
    private_key: bytes

    @classmethod
    def from_file(cls, *, domain: str, selector: str, key_path: Path) -> DkimSigner:
        try:
            key = key_path.read_bytes()
        except OSError as exc:
            raise SigningError(f"DKIM key {key_path}: {exc.strerror}") from exc
        return cls(domain=domain, selector=selector, private_key=key)

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended."""
        try:
            header = dkim.sign(
                message,
                self.selector.encode(),
                self.domain.encode(),
                self.private_key,
                include_headers=list(SIGNED_HEADERS),
            )
        except dkim.DKIMException as exc:
            raise SigningError(f"DKIM signing failed: {exc}") from exc
        return header + message
