"""The malformed and hostile feed corpus of RELIABILITY.md §4, as (name, kind, bytes, outcome).

`outcome` is the FeedState status ingestion must record: failed, partial or empty, never a crash.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def rss(items: str, *, declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    """A minimal RSS 2.0 document around `items` (already-serialised <item> elements)."""
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def item(title: str, link: str, description: str = "An abstract.") -> str:
    """One RSS <item> (title and description must already be XML-escaped)."""
    return (
        f"<item><title>{title}</title><link>{link}</link>"
        f"<description>{description}</description></item>"
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>https://example.org/a</link></item></channel></rss>"""


def xxe(secret_path: Path) -> bytes:
    """A feed whose title is an external entity pointing at a local file."""
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret_path.as_uri()}">]>\n'
        '<rss version="2.0"><channel><title>x</title><item><title>&xxe;</title>'
        "<link>https://example.org/xxe</link><description>&xxe;</description></item>"
        "</channel></rss>"
    ).encode()


def corpus() -> list[tuple[str, str, bytes, str]]:
    """Every hostile document with its kind and the status it must be recorded with."""
    sample = (FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml").read_bytes()
    good = item("Fine", "https://example.org/fine")
    return [
        ("truncated", "arxiv-rss", sample[: len(sample) // 2], "partial"),
        (
            "declared us-ascii, served utf-8",
            "feed",
            rss(
                item("café", "https://example.org/c"),
                declaration='<?xml version="1.0" encoding="us-ascii"?>',
            ),
            "partial",
        ),
        (
            "latin-1, no declaration",
            "feed",
            rss(item("caf\xe9", "https://example.org/l"), declaration='<?xml version="1.0"?>')
            .decode()
            .encode("latin-1"),
            "partial",
        ),
        ("NUL and controls", "feed", rss(item("A\x00B\x0bC", "https://example.org/n")), "partial"),
        (
            "lone surrogate bytes",
            "feed",
            rss(item("ok", "https://example.org/s")).replace(b"ok", b"o\xed\xa0\x80k"),
            "partial",
        ),
        (
            "lone surrogate in JSON",
            "hf-daily",
            b'[{"paper": {"id": "2401.00001", "title": "x\\ud800y"}}]',
            "ok",
        ),
        ("billion laughs", "feed", BILLION_LAUGHS, "failed"),
        (
            "HTML page served as feed",
            "feed",
            b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>",
            "failed",
        ),
        ("empty body", "arxiv-rss", b"", "failed"),
        ("whitespace body", "feed", b" \n\t ", "failed"),
        ("zero items", "arxiv-rss", rss(""), "empty"),
        ("binary garbage", "feed", bytes(range(256)) * 4, "failed"),
        ("not JSON", "hf-daily", b"<html>rate limited</html>", "failed"),
        ("JSON of the wrong shape", "hf-daily", b'{"papers": 3}', "failed"),
        ("items without id or title", "feed", rss(item("", "") + good), "partial"),
    ]
