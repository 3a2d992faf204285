"""What a message sent to us by email asks for: commands in its subject and first lines.

Pure: parsing only. Who the message is about (a signed token) and what is done about it is
digest.usecases.inbound's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage

MAX_COMMAND_LINES = 10
_QUOTE_START = re.compile(
    r"^(>|on .+ wrote:|-- ?$|_{5,}|-{5,} ?original message|from: |le .+ a écrit)", re.I
)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv)\s*:\s*)+", re.I)
_SIGNED = re.compile(r"(?:(?<=\s)|^)([+-])\s?#?(\d{1,2})(?=[\s,.;!]|$)")
_LIKE = re.compile(r"\b(more like|dislike|like)(?: this| paper| number)?\s+#?(\d{1,2})\b", re.I)


@dataclass
class Commands:
    """What one message asks for, in the order written (ratings keep their order too)."""

    words: list[str] = field(default_factory=list)  # subscribe unsubscribe pause resume help
    interests: str | None = None
    follow: list[str] = field(default_factory=list)  # author names, from `follow: NAME`
    ratings: list[tuple[str, int]] = field(default_factory=list)  # (up|down|more, number)

    @property
    def empty(self) -> bool:
        return not (self.words or self.interests is not None or self.ratings or self.follow)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def parse_commands(subject: str, body: str) -> Commands:
    """Commands in the subject and the first lines of the body, up to the quoted digest."""
    lines = [_SUBJECT_PREFIX.sub("", subject or "")]
    for line in body.splitlines():
        if _QUOTE_START.match(line.strip()):
            break
        if line.strip():
            lines.append(line)
        if len(lines) > MAX_COMMAND_LINES:
            break
    found = Commands()
    for line in lines:
        text = line.strip()
        lower = text.lower()
        if lower.startswith("interests:"):
            found.interests = " ".join(text.partition(":")[2].split())[:2000]
            continue
        if lower.startswith("follow:"):
            # Several names may be given, separated by semicolons ("Baeva, Anna" is one name).
            found.follow.extend(n.strip() for n in text.partition(":")[2].split(";") if n.strip())
            continue
        word = lower.strip(" .!")
        if word in ("subscribe", "unsubscribe", "pause", "resume", "help", "stop"):
            found.words.append("unsubscribe" if word == "stop" else word)
            continue
        for verb, number in _LIKE.findall(text):
            kind = {"more like": "more", "dislike": "down", "like": "up"}[verb.lower()]
            found.ratings.append((kind, int(number)))
        for sign, number in _SIGNED.findall(_LIKE.sub(" ", text)):
            found.ratings.append(("up" if sign == "+" else "down", int(number)))
    return found


def reply_token(rcpt_tos: list[str], domain: str) -> str | None:
    """The token of the first `reply+<token>@domain` recipient (case kept: tokens are signed)."""
    for rcpt in rcpt_tos:
        local, _, rcpt_domain = rcpt.strip().strip("<>").rpartition("@")
        tag, plus, token = local.partition("+")
        if plus and token and tag.lower() == "reply" and rcpt_domain.lower() == domain.lower():
            return token
    return None


def is_auto_submitted(message: EmailMessage, mail_from: str | None) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return auto != "no" or precedence in ("bulk", "junk", "list") or mail_from == ""
