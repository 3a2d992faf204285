"""Parsers on the recorded real feeds, text fidelity, id normalisation and the hostile corpus."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from digest.sources import KINDS, parse
from digest.sources.ids import (
    arxiv_id_from_url,
    canonical_url,
    find_arxiv_id,
    normalize_arxiv_id,
    normalize_doi,
    split_arxiv_id,
)
from digest.sources.text import clean_text
from tests.hostile_feeds import corpus, item, rss

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    if name.startswith("arxivpy_"):
        # arxiv.py's recorder keeps the body decoded as latin-1 inside JSON (PROVENANCE.md).
        return json.loads(data)["body"].encode("latin-1")
    return data


# --- recorded real feeds ----------------------------------------------------------------------


def test_arxiv_rss_sample_announce_types_ids_and_fields() -> None:
    result = parse("arxiv-rss", fixture("arxiv_rss2_quant-ph_2025-04-28.xml"), source="qp")
    assert result.error is None and result.warnings == () and result.skipped == 0
    assert Counter(r.announce for r in result.records) == {
        "new": 40,
        "cross": 10,
        "replace": 22,
        "replace-cross": 9,
    }
    assert len({r.key for r in result.records}) == 81
    first = result.records[0]
    assert first.key == first.arxiv_id == "2504.17830" and first.version == 1
    assert first.title == "Self-Adjoint Time Operator in a Weighted Energy Space"
    assert first.abstract.startswith("We introduce a self-adjoint time operator \\(T_w = i\\hbar")
    assert first.authors == ("Radmir Kokoulin",) and first.source == "qp"
    assert first.url == "https://arxiv.org/abs/2504.17830"
    assert (
        first.published is not None and first.published.isoformat() == "2025-04-28T04:00:00+00:00"
    )
    two_authors = result.records[1]
    assert two_authors.authors == ("Youssef Kora", "Christoph Simon")
    assert two_authors.categories == ("quant-ph", "physics.comp-ph")
    assert sum(1 for r in result.records if r.doi) == 10
    assert all(not r.abstract.startswith(("arXiv:", "Abstract:")) for r in result.records)
    replaced = [r for r in result.records if r.announce.startswith("replace")]
    assert all((r.version or 0) >= 2 for r in replaced)
    # The one escaped `<` of the sample survives as TeX: "($0&lt; \delta \ll 1$)".
    assert any("($0< \\delta \\ll 1$)" in r.abstract for r in result.records)


def test_arxiv_rss_fast_path_matches_feedparser_path() -> None:
    from digest.sources import arxiv_rss

    data = fixture("arxiv_rss2_quant-ph_2025-04-28.xml")
    assert arxiv_rss.parse(data) == arxiv_rss.parse(data, fast=False)
    golden = rss(
        "<item><title>$a&lt;b$ &amp; caf\u00e9</title><link>https://arxiv.org/abs/2504.17830</link>"
        "<description>arXiv:2504.17830v2 Announce Type: replace \nAbstract: x &lt;= y</description>"
        "</item>"
    )
    fast, slow = arxiv_rss.parse(golden), arxiv_rss.parse(golden, fast=False)
    assert fast == slow and fast.records[0].title == "$a<b$ & caf\u00e9"


def test_arxiv_api_sample_page() -> None:
    result = parse("arxiv-api", fixture("arxivpy_q_testing_s0_m100_cfe7536492ca.json"))
    assert result.error is None and result.total == 214881
    assert len(result.records) == 100 and result.skipped == 0
    first = result.records[0]
    assert (first.key, first.version) == ("2202.12139", 1)
    assert first.authors == ("Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker")
    assert first.categories == ("cs.SE", "cs.LG")
    assert first.doi == "10.1109/icstw55395.2022.00035"
    assert first.pdf_url == "https://arxiv.org/pdf/2202.12139v1"
    assert first.abstract.startswith("Deep Learning (DL) has revolutionized")


def test_arxiv_api_error_entry_is_an_error() -> None:
    result = parse("arxiv-api", fixture("arxivpy_id_abc_s0_m100_b79c8dcf6bc3.json"))
    assert result.records == ()
    assert result.error == "arXiv API error: incorrect id format for abc"


def test_arxiv_api_empty_result_is_empty_not_error() -> None:
    result = parse("arxiv-api", fixture("arxivpy_id_0000.0000_s0_m100_8b51d9633a68.json"))
    assert result.records == () and result.error is None and result.total == 0


def test_hf_daily_sample_has_upvotes_and_trending_fields() -> None:
    result = parse("hf-daily", fixture("hf_daily_papers_api_limit30_2026-06-12.json"))
    assert result.error is None and len(result.records) == 30
    assert all(r.upvotes is not None for r in result.records)
    assert max(r.upvotes or 0 for r in result.records) == 118
    assert all(r.key == r.arxiv_id and r.arxiv_id for r in result.records)
    assert sum(1 for r in result.records if r.code_url) == 16
    assert sum(1 for r in result.records if r.github_stars is not None) == 16
    assert sum(1 for r in result.records if r.organization) == 16
    assert all(r.ai_summary and r.comments is not None and r.published for r in result.records)
    assert result.records[0].authors[:2] == ("Etienne Casanova", "Rafal Kocielnik")


def test_third_party_hf_rss_takes_arxiv_ids_from_links() -> None:
    result = parse("feed", fixture("hf_papers_rss_thirdparty_MichaelMarkert_2026-08-22.xml"))
    assert result.error is None and len(result.records) == 26
    assert all(r.arxiv_id and r.key == r.arxiv_id for r in result.records)
    assert result.records[0].key == "2608.19880"
    assert result.records[0].url == "https://huggingface.co/papers/2608.19880"


# --- text fidelity ----------------------------------------------------------------------------

GOLDEN_TITLE = "Bounds for $a<b$ and $c>d$ &amp; <i>italic</i> x <= y, café, Ω, 東京"
GOLDEN_TEXT = "Bounds for $a<b$ and $c>d$ & italic x <= y, café, Ω, 東京"


def test_text_fidelity_golden_rss_html_description() -> None:
    # Escaped once for XML, as every feed serialiser does; HTML inside is decoded once more.
    escaped = GOLDEN_TITLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    result = parse("feed", rss(item(escaped, "https://example.org/p", escaped)))
    record = result.records[0]
    assert record.title == GOLDEN_TEXT
    assert record.abstract == GOLDEN_TEXT


def test_text_fidelity_arxiv_description_is_plain_tex() -> None:
    tex = "Let $a<b$ and $c>d$; then $<x>$ &amp; a <= b, caf\u00e9 \\(T_w\\)."
    body = tex.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    doc = rss(
        "<item><title>T</title><link>https://arxiv.org/abs/2504.17830</link>"
        f"<description>arXiv:2504.17830v1 Announce Type: new \nAbstract: {body}</description>"
        "<guid>oai:arXiv.org:2504.17830v1</guid></item>"
    )
    record = parse("arxiv-rss", doc).records[0]
    # Every character survives, and `&amp;` written by the author stays as typed (decoded once).
    assert record.abstract == tex


def test_text_fidelity_atom_type_text_keeps_markup_like_text() -> None:
    doc = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>'
        b"<entry><id>https://example.org/e</id>"
        b'<title type="text">$a&lt;b$ &amp;lt;i&amp;gt;</title>'
        b'<link href="https://example.org/e"/><summary type="text">x &lt;i&gt;y&lt;/i&gt;</summary>'
        b"</entry></feed>"
    )
    record = parse("feed", doc).records[0]
    assert record.title == "$a<b$ &lt;i&gt;"
    assert record.abstract == "x <i>y</i>"


@pytest.mark.parametrize(
    ("raw", "html_markup", "expected"),
    [
        ("a\x00b\x01c\x0bd\x7fe\x85f", True, "abcdef"),
        ("x\ud800y\udfffz", True, "xyz"),
        ("cafe\u0301", False, "caf\u00e9"),
        ("  many \n\t spaces\r\n", True, "many spaces"),
        ("&amp;lt;", True, "&lt;"),
        ("<p>one</p><p>two</p>", True, "one two"),
        ("<b>bold</b>s and <a href='x'>link</a>.", True, "bolds and link."),
        ("<script>alert(1)</script>safe<!-- c -->", True, "safe"),
        ("$\\langle x|y \\rangle$ $<x>$", True, "$\\langle x|y \\rangle$ $<x>$"),
        ("&lt;i&gt;", False, "&lt;i&gt;"),
    ],
)
def test_clean_text(raw: str, html_markup: bool, expected: str) -> None:
    assert clean_text(raw, html_markup=html_markup) == expected


@given(st.text())
@hsettings(max_examples=200, deadline=None)
def test_clean_text_output_is_storable(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # no lone surrogates
    assert "\x00" not in cleaned and cleaned == cleaned.strip()
    assert clean_text(cleaned, html_markup=False) == cleaned  # idempotent as plain text


# --- identifiers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2504.17830", ("2504.17830", None)),
        ("2504.17830v12", ("2504.17830", 12)),
        ("arXiv:2504.17830v2", ("2504.17830", 2)),
        ("oai:arXiv.org:2504.17830v1", ("2504.17830", 1)),
        ("https://arxiv.org/abs/2504.17830v2", ("2504.17830", 2)),
        ("http://arxiv.org/pdf/2504.17830v3.pdf", ("2504.17830", 3)),
        ("https://export.arxiv.org/abs/0704.0001", ("0704.0001", None)),
        ("https://huggingface.co/papers/2608.19880", ("2608.19880", None)),
        ("https://doi.org/10.48550/arXiv.2504.17830", ("2504.17830", None)),
        ("hep-th/9901001", ("hep-th/9901001", None)),
        ("oai:arXiv.org:hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("math.AG/0601001v1", ("math/0601001", 1)),
        ("https://arxiv.org/abs/cond-mat/0207270", ("cond-mat/0207270", None)),
        ("abc", None),
        ("0000.0000", None),
        ("1501.0001", None),  # 2015 on has five digits
        ("1412.00001", None),  # before 2015 four
        ("https://example.org/abs/2504.17830", None),
        ("", None),
    ],
)
def test_split_arxiv_id(text: str, expected: tuple[str, int | None] | None) -> None:
    assert split_arxiv_id(text) == expected


def test_find_and_other_identity_helpers() -> None:
    assert find_arxiv_id("see arXiv:2504.17830v2 for details") == ("2504.17830", 2)
    assert find_arxiv_id("phone 1234.56789") is None
    assert arxiv_id_from_url("https://example.org/2504.17830") is None
    assert (
        normalize_doi("https://doi.org/10.1103/PhysRevB.111.144313")
        == "10.1103/physrevb.111.144313"
    )
    assert normalize_doi("not a doi") is None
    assert (
        canonical_url("HTTP://Example.ORG/a?utm_source=x&b=1#frag") == "https://example.org/a?b=1"
    )
    assert canonical_url("gopher://example.org/") is None


new_ids = st.builds(
    lambda yy, mm, num: f"{yy:02d}{mm:02d}.{num:0{5 if yy >= 15 else 4}d}",
    st.integers(8, 99),
    st.integers(1, 12),
    st.integers(0, 9999),
)
old_ids = st.builds(
    lambda archive, yy, mm, num: f"{archive}/{yy:02d}{mm:02d}{num:03d}",
    st.sampled_from(["hep-th", "math", "cond-mat", "astro-ph", "q-bio", "cs"]),
    st.sampled_from([91, 95, 99, 0, 3, 6]),
    st.integers(1, 12),
    st.integers(0, 999),
)
forms = st.sampled_from(
    [
        "{id}",
        "{id}v{v}",
        "arXiv:{id}v{v}",
        "oai:arXiv.org:{id}v{v}",
        "https://arxiv.org/abs/{id}v{v}",
        "http://arxiv.org/pdf/{id}v{v}.pdf",
        "https://arxiv.org/abs/{id}",
        "https://huggingface.co/papers/{id}",
    ]
)


@given(st.one_of(new_ids, old_ids), forms, st.integers(1, 40))
@hsettings(max_examples=200, deadline=None)
def test_every_form_of_an_id_normalises_to_the_base(base: str, form: str, version: int) -> None:
    text = form.format(id=base, v=version)
    assert normalize_arxiv_id(text) == base
    parts = split_arxiv_id(text)
    assert parts is not None and parts[1] == (version if "{v}" in form else None)
    assert normalize_arxiv_id(base) == base  # idempotent


@given(st.text(max_size=80))
@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_id_functions_never_raise_and_are_idempotent(text: str) -> None:
    found = normalize_arxiv_id(text)
    if found is not None:
        assert normalize_arxiv_id(found) == found
    find_arxiv_id(text)
    arxiv_id_from_url(text)
    canonical_url(text)
    normalize_doi(text)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "data", "outcome"), corpus(), ids=[c[0] for c in corpus()]
)
def test_hostile_corpus_never_raises_and_says_why(
    name: str, kind: str, data: bytes, outcome: str
) -> None:
    result = parse(kind, data)
    if outcome == "failed":
        assert result.records == () and result.error and "\n" not in result.error
    elif outcome == "partial":
        assert result.records and (result.warnings or result.skipped)
    elif outcome == "empty":
        assert result.records == () and result.error is None and not result.warnings
    for record in result.records:
        for text in (record.title, record.abstract):
            text.encode("utf-8")
            assert not any(ord(c) < 32 for c in text)


def test_hostile_texts_come_out_clean() -> None:
    by_name = {name: parse(kind, data) for name, kind, data, _ in corpus()}
    assert by_name["NUL and controls"].records[0].title == "ABC"
    assert by_name["declared us-ascii, served utf-8"].records[0].title == "café"
    assert by_name["latin-1, no declaration"].records[0].title == "café"
    assert by_name["lone surrogate in JSON"].records[0].title == "xy"
    assert "entities" in (by_name["billion laughs"].error or "")
    assert "HTML" in (by_name["HTML page served as feed"].error or "")


def test_xxe_never_reads_local_files(tmp_path: Path) -> None:
    from tests.hostile_feeds import xxe

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-4f1c")
    for kind in ("feed", "arxiv-rss", "arxiv-api"):
        result = parse(kind, xxe(secret))
        assert result.error and "entities" in result.error
        assert b"TOP-SECRET" not in repr(result).encode()


def test_xxe_without_prescreen_is_still_not_resolved(tmp_path: Path) -> None:
    # Belt and braces: even if our entity refusal were removed, feedparser must not expand it.
    import feedparser

    from tests.hostile_feeds import xxe

    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-4f1c")
    parsed = feedparser.parse(xxe(secret), sanitize_html=False, resolve_relative_uris=False)
    assert "TOP-SECRET" not in repr(parsed)


def test_unknown_kind_and_item_cap() -> None:
    assert parse("nope", b"x").error.startswith("unknown source kind")  # type: ignore[union-attr]
    many = rss("".join(item(f"t{i}", f"https://example.org/{i}") for i in range(30)))
    capped = parse("feed", many, max_items=10)
    assert len(capped.records) == 10 and capped.skipped == 20
    assert set(KINDS) == {"arxiv-rss", "arxiv-api", "hf-daily", "feed"}


@given(st.binary(max_size=2000), st.sampled_from(KINDS))
@hsettings(max_examples=200, deadline=None)
def test_parsers_never_raise_on_arbitrary_bytes(data: bytes, kind: str) -> None:
    result = parse(kind, data)
    assert result.error is None or "\n" not in result.error
