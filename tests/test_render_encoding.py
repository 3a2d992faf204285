"""The fast paths of message building give exactly what the straightforward encoders give.

Digest text is quoted-printable encoded from lines whose encodings are made once per edition and
reader lines cut by slicing, pages are filled from UTF-8 pieces with values escaped only when
they need it, the HTML base64 is cut into lines without slicing, tokens are minted with a
pre-keyed HMAC and bare addresses skip the address parser: each is checked here against the
plain way.
"""

from __future__ import annotations

import binascii
import random
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.utils import formataddr, parseaddr
from types import SimpleNamespace

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from markupsafe import escape

from digest import bootstrap
from digest.models import Edition, Subscriber
from digest.ranking import Pick, Profile
from digest.render import EditionRenderer, build_message, message_id, paper_view
from digest.render.fragments import SlotTemplate, SlotText, escaped, slot
from digest.render.mime import _address, _base64, _parsed_address, qp, qp_lines
from digest.settings import Settings
from digest.tokens import TokenError, Tokens, _UncompressedSerializer
from digest.usecases.digests import EditionContext, compose_message, render_for

NOW = datetime(2026, 11, 24, 7, tzinfo=UTC)
# Everything quoted-printable treats specially: non-ASCII, "=", tabs and spaces (at line ends
# too), a line that is a lone dot, "From " at a line start, and long runs that need soft breaks.
ALPHABET = ["a", "b", " ", "\t", ".", "=", "\n", "é", "☕", "—", "From ", "x" * 80, "\n.\n", "  \n"]


def _plain_base64(body: str) -> bytes:
    encoded = binascii.b2a_base64(body.replace("\r\n", "\n").encode("utf-8"), newline=False)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def _random_text(rng: random.Random, pieces: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, pieces)))


def test_reader_lines_cut_by_slicing_are_byte_for_byte_the_one_pass_encoding() -> None:
    rng = random.Random(5)
    plain = "abcdefghijklmnopqrstuvwxyz0123456789:/._-?&%+ "
    for _ in range(4000):
        if rng.random() < 0.5:
            # Plain ASCII lines around every cut length, as vote links are, a dot or a blank
            # here and there (a line that is a lone dot, a blank before a line end).
            lines = [
                "".join(
                    rng.choice(plain)
                    for _ in range(
                        rng.choice(
                            [*range(70, 80), *range(145, 155), *range(220, 230), 300, 0, 1, 5]
                        )
                    )
                )
                for _ in range(rng.randint(1, 4))
            ]
            if rng.random() < 0.2:
                lines.insert(rng.randrange(len(lines) + 1), ".")
            text = "\n".join(lines) + rng.choice(["\n", "", " ", " \n", "\n."])
        else:
            text = _random_text(rng, 40)
            if "\r" in text:
                continue
        data = text.encode("utf-8")

        assert qp_lines(data) == qp(text), text


def test_text_templates_encode_as_the_filled_text_would() -> None:
    rng = random.Random(7)
    names = ["number", "why", "up_url", "down_url", "headline"]
    for _ in range(1500):
        parts: list[str] = []
        for _ in range(rng.randint(0, 8)):
            parts.append(_random_text(rng, 30).replace("\r", ""))
            if rng.random() < 0.6:
                parts.append(slot(rng.choice(names)))
        if rng.random() < 0.5:
            parts.append("\n" + slot("section0") + "\n")
        rendered = "".join(parts)
        ends_line = rng.random() < 0.5
        template = SlotText.of(rendered, frozenset({"section0"}), ends_line=ends_line, memos={})
        for _ in range(3):
            values = {name: _random_text(rng).replace("\r", "").encode("utf-8") for name in names}
            block_lines = [
                _random_text(rng, 20).replace("\r", "") + "\n" for _ in range(rng.randint(1, 3))
            ]
            values["section0"] = "".join(block_lines)[:-1].encode("utf-8")
            blocks = {"section0": b"".join(qp(line) for line in block_lines)}
            text = template.plain.fill(values) + (b"\n" if ends_line else b"")

            assert template.encode(values, blocks) == qp(text), rendered


def test_templates_fill_their_placeholders() -> None:
    rendered = f"a%s {slot('x')}é{slot('y')}{slot('x')}\n"
    template = SlotTemplate.of(rendered)

    assert template.fill({"x": b"1", "y": "☕".encode()}) == "a%s 1é☕1\n".encode()
    assert SlotTemplate.of("static").fill({}) == b"static"


def test_values_are_escaped_as_markupsafe_does() -> None:
    rng = random.Random(9)
    alphabet = ["a", "&", "<", ">", '"', "'", "é", "/", "=", "?", " ", "&amp;"]
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

        assert escaped(value, value.encode("utf-8")) == str(escape(value)).encode("utf-8")


def test_bodies_given_as_utf8_build_the_same_message() -> None:
    text = "Grüße — café ☕\r\n= sign\n" + "long line " * 30
    html = "<p>Grüße — ☕\r\n" + "x" * 200 + "</p>"
    common = {
        "sender": "a@b.c",
        "to": "x@y.z",
        "subject": "s",
        "message_id": "<m@d>",
        "date": NOW,
    }

    assert build_message(text=text.encode(), html=html.encode(), **common) == build_message(
        text=text, html=html, **common
    )
    assert build_message(text=text, html=html, text_qp=qp(text), **common) == build_message(
        text=text, html=html, **common
    )


@pytest.mark.parametrize("length", [*range(0, 240), 5699, 5700, 5701, 5702, 5703, 5757])
def test_base64_lines_are_the_plain_ones(length: int) -> None:
    for body in ("x" * length, "é" * length, ("a\r\n" * length)[:length]):
        assert _base64(body) == _plain_base64(body)


def test_bare_addresses_skip_the_parser_and_come_out_the_same() -> None:
    addresses = [
        "reader@example.com",
        "a.b+tag@sub.example.org",
        "o'neil@example.com",
        "x_y-z=q?w@example-domain.io",
        "{weird}|~`!#$%&*/^@d.example",
        "Trending Papers <digest@example.com>",
        '"Doe, Jane" <jane@example.com>',
        "Zoë Müller <zoe@example.com>",
        "jane@example.com (Jane)",
        "a..b@example.com",
        "a@b..c",
        "<a@b.c>",
    ]
    for value in addresses:
        assert _address(value) == _parsed_address(value)
        name, address = parseaddr(value)
        assert _address(value) == formataddr((name, address), charset="utf-8")
    for hostile in ("x@y.z\r\nBcc: v@e.com", "x@y.z\nBcc: v@e.com", "x@y.z\0", ""):
        with pytest.raises(ValueError):
            _address(hostile)


def test_date_header_keeps_each_offset_of_the_same_instant() -> None:
    from datetime import timedelta, timezone
    from email.utils import format_datetime

    from digest.render.mime import _date_header

    paris = NOW.astimezone(timezone(timedelta(hours=1)))

    assert _date_header(NOW) == format_datetime(NOW)
    assert _date_header(paris) == format_datetime(paris) != format_datetime(NOW)
    assert _date_header(NOW.replace(tzinfo=None)) == format_datetime(NOW.replace(tzinfo=None))


def test_message_id_is_the_documented_hmac() -> None:
    import hashlib
    import hmac

    tag = hmac.new(b"k", b"3.7", hashlib.sha256).hexdigest()[:8]

    assert message_id(edition_id=3, subscriber_id=7, domain="d", secret="k") == (
        f"<edition-3.sub-7.{tag}@d>"
    )


class _FixedClockSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return 1_795_000_000


@pytest.mark.parametrize(
    ("purpose", "payload"),
    [
        ("manage", 7),
        ("unsubscribe", 123456789),
        ("view", [7, 3]),
        ("feedback", [7, 3, ["2611.00001", "hf:tiny-model", "2611.00002"]]),
        ("reply", 0),
        ("confirm", {"email": "zoë@example.com", "interests": 'low-bit "LLMs"'}),
    ],
)
def test_tokens_are_byte_for_byte_what_itsdangerous_mints(purpose: str, payload: object) -> None:
    keys = ["retired-key", "current-key"]
    reference = _UncompressedSerializer(keys, salt=f"digest.{purpose}", signer=_FixedClockSigner)

    minted = Tokens(keys).dumps(purpose, payload, now_s=1_795_000_000)

    assert minted == reference.dumps(payload)
    assert Tokens(keys).loads(purpose, minted, now_s=1_795_000_001) == payload


def test_tokens_stay_purpose_bound_rotatable_and_expiring() -> None:
    now = 1_795_000_000.0
    token = Tokens(["old", "new"]).dumps("manage", 7, now_s=now)

    assert Tokens(["new"]).loads("manage", token, now_s=now) == 7
    with pytest.raises(TokenError):
        Tokens(["old"]).loads("manage", token, now_s=now)
    with pytest.raises(TokenError):
        Tokens(["old", "new"]).loads("feedback", token, now_s=now)
    with pytest.raises(TokenError) as expired:
        Tokens(["new"]).loads("manage", token, now_s=now + 61 * 86_400)
    assert expired.value.expired
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(TokenError):
        Tokens(["new"]).loads("manage", forged, now_s=now)


def test_links_minted_by_plain_itsdangerous_keep_verifying() -> None:
    # Compressed and uncompressed tokens from before the pre-keyed minting, old key included.
    for serializer_class in (URLSafeTimedSerializer, _UncompressedSerializer):
        old = serializer_class(["old-key"], salt="digest.unsubscribe").dumps(list(range(60)))

        assert Tokens(["old-key", "new-key"]).loads("unsubscribe", old) == list(range(60))


HOSTILE_TEXT = [
    '<script>alert("x")</script> & <img src=x onerror=alert(1)>',
    ".\nlone dot line\n.",
    "trailing spaces   \n\tand tabs\t",
    "Grüße — café ☕ ≥ ∑ 数学 " + "long " * 40,
    "= signs == everywhere =3D =",
    "From the start of a line\n.\nFrom",
]
# A CR in a reader's values sends the text through the one-pass encoder instead.
WITH_CR = ["= and a CRLF\r\n.\r\n", "a lone\rCR"]


def _paper(i: int, title: str, abstract: str) -> SimpleNamespace:
    return SimpleNamespace(
        key=f"2611.{i:05d}",
        arxiv_id=f"2611.{i:05d}",
        title=title,
        abstract=abstract,
        authors=["Zoë Müller", ".dot Start", "O'Brien"],
        categories=["cs.LG"],
        url=None,
        pdf_url=None,
        code_url="javascript:alert(1)" if i % 2 else "https://github.com/x/y",
        upvotes=i,
        github_stars=None,
        ai_summary=None,
    )


@pytest.fixture
def services(tmp_path):
    built = bootstrap.build(Settings(mode="dev", database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    yield built
    built.close()


def test_digest_messages_are_byte_for_byte_the_straightforward_build(services) -> None:
    papers = [
        _paper(i, HOSTILE_TEXT[i % len(HOSTILE_TEXT)], HOSTILE_TEXT[(i + 2) % len(HOSTILE_TEXT)])
        for i in range(12)
    ]
    views = {p.key: paper_view(p, max_tldr_chars=320) for p in papers}
    edition = Edition(id=3, edition_date=date(2026, 11, 24))
    renderer = EditionRenderer(
        env=services.templates,
        edition_date=edition.edition_date,
        postal_address=services.settings.email.postal_address,
    )
    context = EditionContext(edition, [], views, renderer)
    rng = random.Random(3)
    paths = set()
    for subscriber_id in range(1, 41):
        subscriber = Subscriber(
            id=subscriber_id,
            email=f"reader{subscriber_id}@example.com",
            interests=rng.choice(HOSTILE_TEXT),
        )
        picks = [
            Pick(
                id=key,
                score=0.5,
                relevance=0.5,
                trending=0.1,
                why=rng.choice(HOSTILE_TEXT if subscriber_id % 4 else HOSTILE_TEXT + WITH_CR),
                kind=rng.choice(["match", "trending"]),
            )
            for key in rng.sample(list(views), rng.randint(1, 10))
        ]
        digest, _, links = render_for(
            services, context, subscriber, picks, Profile(user="x", interests="ml")
        )
        mid = message_id(edition_id=3, subscriber_id=subscriber_id, domain="d.example", secret="k")
        fast = compose_message(
            services, subscriber=subscriber, digest=digest, links=links, msg_id=mid, now=NOW
        )
        headers_end = fast.index(b"\r\n\r\n")
        plain = build_message(
            sender=services.settings.email.from_address,
            to=subscriber.email,
            subject=digest.subject,
            text=digest.text,
            html=digest.html,
            message_id=mid,
            date=NOW,
            headers={
                line.split(": ", 1)[0]: line.split(": ", 1)[1]
                for line in fast[:headers_end].decode("ascii").split("\r\n")
                if line.startswith(("List-", "Reply-To"))
            },
        )

        assert digest.text_qp is None or digest.text_qp == qp(digest.text)
        assert (digest.text_qp is None) == ("\r" in digest.text)
        paths.add("\r" in digest.text)
        assert fast == plain
        parsed = message_from_bytes(fast, policy=policy.default)
        text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert text.rstrip("\n") == digest.text.replace("\r\n", "\n").rstrip("\n")
        assert html.rstrip("\n") == digest.html.replace("\r\n", "\n").rstrip("\n")
        assert "<script>" not in html
        assert all(len(line) <= 76 for line in fast[headers_end:].split(b"\r\n"))
    assert paths == {True, False}
