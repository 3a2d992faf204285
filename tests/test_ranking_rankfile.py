"""The `digest rank` JSONL contract, on a reduced copy of the real sample."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from digest.rankfile import RankInputError, run_rank

SAMPLE = Path(__file__).parent / "fixtures" / "papers-sample-small.jsonl"


def sample_ids(n=3):
    return [json.loads(line)["id"] for line in SAMPLE.read_text().splitlines()[:n]]


def test_batch_of_profiles(tmp_path):
    liked = sample_ids(3)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        "\n".join(
            json.dumps(p)
            for p in [
                {
                    "user": "a",
                    "interests": "quantization of large language models",
                    "like": [],
                    "dislike": [],
                },
                {"user": "b", "interests": "", "like": liked[:2], "dislike": liked[2:]},
                {"user": "c"},
            ]
        )
        + "\n"
    )
    out = io.StringIO()
    assert run_rank(SAMPLE, profiles_path=profiles, top=5, out=out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["user"] for line in lines] == ["a", "b", "c"]
    for line in lines:
        assert len(line["ranked"]) == 5
        for item in line["ranked"]:
            assert set(item) == {"id", "score", "why"}
            assert isinstance(item["id"], str) and item["why"]
    assert not set(liked) & {item["id"] for item in lines[1]["ranked"]}
    assert "quantiz" in lines[0]["ranked"][0]["why"].lower()


def test_single_profile_and_errors(tmp_path):
    out = io.StringIO()
    like = sample_ids(1)
    run_rank(SAMPLE, like=like, top=3, out=out)
    [line] = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(line["ranked"]) == 3 and like[0] not in [r["id"] for r in line["ranked"]]
    with pytest.raises(RankInputError, match="--papers"):
        run_rank(None, interests="x", out=out)
    with pytest.raises(RankInputError, match="either"):
        run_rank(SAMPLE, interests="x", profiles_path=SAMPLE, out=out)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "title": "ok"}\nnot json\n')
    with pytest.raises(RankInputError, match="bad.jsonl:2"):
        run_rank(bad, interests="x", out=out)
    with pytest.raises(RankInputError, match="cannot read"):
        run_rank(tmp_path / "missing.jsonl", interests="x", out=out)


def test_numeric_ids_become_strings_and_papers_without_votes_rank_on_text(tmp_path):
    papers = tmp_path / "p.jsonl"
    papers.write_text(
        json.dumps(
            {
                "id": 7,
                "title": "Sparse attention",
                "abstract": "sparse attention heads",
                "upvotes": 3,
                "published": "2025-01-01T00:00:00Z",
            }
        )
        + "\n"
        + json.dumps({"id": 8, "title": "Protein folding", "abstract": "protein structure"})
        + "\n"
    )
    out = io.StringIO()
    run_rank(papers, interests="sparse attention", top=2, out=out)
    ranked = json.loads(out.getvalue())["ranked"]
    assert [r["id"] for r in ranked] == ["7", "8"]
