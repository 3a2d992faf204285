"""RFC 2047 encoded words for non-ASCII header values, built with binascii.

Subjects now carry the top paper's title (often with a non-ASCII character, and an ellipsis):
email.header.Header encodes them character by character in Python, which cost a third of a
digest's rendering. Base64 ("B") encoded words of at most 42 bytes each, cut on UTF-8 character
boundaries and folded onto continuation lines, keep every line under 78 characters with the
longest header name we encode ("Subject: ").
"""

from __future__ import annotations

import binascii

WORD_BYTES = 42  # 56 base64 characters: "=?utf-8?b?" + 56 + "?=" is 68


def encoded_words(value: str) -> str:
    data = value.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + WORD_BYTES, len(data))
        # Back off to a character boundary: a continuation byte is 0b10xxxxxx.
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        chunk = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start = end
    return "\r\n ".join(words)
