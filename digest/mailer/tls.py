"""The client TLS context for the relay: the system's CAs, plus a private CA when configured."""

from __future__ import annotations

import ssl

from digest.settings import SmtpSettings


def client_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """None when the relay is spoken to in plain text (tls = "none")."""
    if settings.tls == "none":
        return None
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        # Added to the defaults, not instead of them: a relay behind a private CA is trusted
        # without distrusting the public ones.
        context.load_verify_locations(cafile=settings.ca_file)
    return context
