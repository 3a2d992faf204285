"""JSONL in, JSONL out: the `digest rank` contract over the same ranker the editions use.

Papers: one JSON object a line, {"id", "title", "abstract", optional "authors", "categories",
"upvotes", "published" (ISO 8601)}. Profiles: {"user", "interests", "like", "dislike"}. Output:
one line per profile, {"user", "ranked": [{"id", "score", "why"}, ...]}, the plain top N by
final score. Ids are strings; liked and disliked papers are never returned. Each profile of a
batch is ranked independently (a batch is for speed only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from digest.ranking import Candidate, Pick, Profile, RankParams, fit_for, rank

if TYPE_CHECKING:
    from digest.ranking.embeddings import EmbeddingStore


class RankInputError(ValueError):
    """Bad input for `digest rank`: the message is one line, fit for the CLI to print."""


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RankInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RankInputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(value, dict):
            raise RankInputError(f"{path}:{number}: expected a JSON object")
        yield number, value


def _strings(value: object, where: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise RankInputError(f"{where}: {field!r} must be a list")
    return tuple(str(v) for v in value)


def _published(value: object, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise RankInputError(f"{where}: 'published' is not an ISO date: {value!r}") from exc


def read_papers(path: Path) -> list[Candidate]:
    papers = []
    for number, row in _lines(path):
        where = f"{path}:{number}"
        if row.get("id") in (None, "") or not isinstance(row.get("title"), str):
            raise RankInputError(f"{where}: a paper needs an 'id' and a 'title'")
        upvotes = row.get("upvotes")
        if upvotes is not None and not isinstance(upvotes, int | float):
            raise RankInputError(f"{where}: 'upvotes' must be a number")
        papers.append(
            Candidate(
                id=str(row["id"]),
                title=row["title"],
                abstract=str(row.get("abstract") or ""),
                authors=_strings(row.get("authors"), where, "authors"),
                categories=_strings(row.get("categories"), where, "categories"),
                upvotes=None if upvotes is None else int(upvotes),
                published=_published(row.get("published"), where),
            )
        )
    if not papers:
        raise RankInputError(f"{path}: no papers")
    return papers


def read_profiles(path: Path) -> list[Profile]:
    profiles = []
    for number, row in _lines(path):
        where = f"{path}:{number}"
        interests = row.get("interests") or ""
        if not isinstance(interests, str):
            raise RankInputError(f"{where}: 'interests' must be a string")
        profiles.append(
            Profile(
                user=str(row.get("user", number)),
                interests=interests,
                like=_strings(row.get("like"), where, "like"),
                dislike=_strings(row.get("dislike"), where, "dislike"),
            )
        )
    return profiles


def run_rank(papers_path: Path | str | None, *, out: TextIO, **options: Any) -> int:
    """Rank the papers file for one profile or a batch; writes JSONL to `out`, returns lines.

    `options` are `rank_file`'s (interests, like, dislike, profiles_path, top, params, now,
    text_backend, semantic_weight, embeddings)."""
    results = rank_file(papers_path, **options)
    for line in results:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(results)


def rank_file(
    papers_path: Path | str | None,
    *,
    interests: str | None = None,
    like: Sequence[str] = (),
    dislike: Sequence[str] = (),
    profiles_path: Path | str | None = None,
    top: int = 10,
    params: RankParams = RankParams(),
    now: datetime | None = None,
    text_backend: str = "tfidf",
    semantic_weight: float = 0.5,
    embeddings: EmbeddingStore | None = None,
) -> list[dict[str, Any]]:
    """Rank the papers file for one profile or a batch: one result row per profile.

    `text_backend` is ranking.text_backend: "semantic" and "both" embed the file's papers in
    memory (nothing is stored unless `embeddings`, an EmbeddingStore, is given), as an
    edition would from its embedding table.
    """
    if papers_path is None:
        raise RankInputError(
            "no --papers file: ranking the current edition from the database is done by the "
            "CLI through editions, not by rankfile"
        )
    if top < 1:
        raise RankInputError("--top must be at least 1")
    single = interests is not None or bool(like) or bool(dislike)
    if profiles_path is not None and single:
        raise RankInputError("give either --profiles or --interests/--like/--dislike, not both")
    if profiles_path is None and not single:
        raise RankInputError("give --interests, --like or --profiles")
    papers = read_papers(Path(papers_path))
    if profiles_path is not None:
        profiles = read_profiles(Path(profiles_path))
    else:
        profiles = [one_profile(interests, like, dislike)]
    # The papers file is both the candidates and the pool that liked ids are looked up in.
    model = None
    if text_backend != "tfidf" and papers:
        from digest.ranking import semantic

        model = semantic.backend_for(
            fit_for(papers, dims=semantic.lsa_dims(text_backend)),
            papers,
            embeddings if embeddings is not None else semantic.MemoryEmbeddings(),
            backend=text_backend,
            weight=semantic_weight,
        )
    ranked = rank(papers, profiles, top_n=top, params=params, now=now, model=model)
    return result_rows(profiles, ranked)


def one_profile(interests: str | None, like: Sequence[str], dislike: Sequence[str]) -> Profile:
    """The profile given by --interests/--like/--dislike (user "cli")."""
    return Profile(
        user="cli",
        interests=interests or "",
        like=tuple(map(str, like)),
        dislike=tuple(map(str, dislike)),
    )


def result_rows(
    profiles: Sequence[Profile], ranked: Sequence[Sequence[Pick]]
) -> list[dict[str, Any]]:
    """One output row per profile: {"user", "ranked": [{"id", "score", "why"}, ...]}."""
    return [
        {
            "user": profile.user,
            "ranked": [{"id": p.id, "score": round(p.score, 6), "why": p.why} for p in picks],
        }
        for profile, picks in zip(profiles, ranked, strict=True)
    ]
