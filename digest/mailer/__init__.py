"""SMTP transport only (aiosmtplib): connections reused across messages, replies classified.

protocol.py speaks one mail transaction (pipelined when offered), connection.py keeps a session
and classifies what became of each message, pacing.py spaces messages and rides out outages,
tls.py builds the client TLS context that bootstrap hands to every connection.
"""

from digest.mailer.connection import SendOutcome, SmtpConnection
from digest.mailer.pacing import RateLimiter, RelayBreaker
from digest.mailer.tls import client_context

__all__ = ["RateLimiter", "RelayBreaker", "SendOutcome", "SmtpConnection", "client_context"]
