"""Use case: what `digest rank` does. Candidates come from a JSONL file (ranked in memory, no
database, no secret key needed) or are today's stored papers (the editions' context and ranker);
profiles come from a JSONL file or from --interests/--like/--dislike. Either way the result is
one row per profile, {"user", "ranked": [{"id", "score", "why"}, ...]}."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest.rankfile import RankInputError, one_profile, rank_file, read_profiles, result_rows
from digest.settings import RankingSettings
from digest.usecases.edition_context import params_for
from digest.usecases.previews import rank_stored

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = ["RankInputError", "RankRequest", "rank_request"]


@dataclass(frozen=True)
class RankRequest:
    """What was asked: a papers file (None: today's stored papers), and who to rank for."""

    papers: Path | None
    interests: str | None
    like: tuple[str, ...]
    dislike: tuple[str, ...]
    profiles: Path | None
    top: int


def rank_request(
    request: RankRequest,
    *,
    ranking_settings: Callable[[], RankingSettings],
    services: Callable[[], Services],
) -> list[dict[str, Any]]:
    """The result rows for `request`; RankInputError (one line) on bad input.

    Settings and services are asked for only when needed: ranking a file opens no database
    and signs nothing, so it works without one and without DIGEST_SECRET_KEY.
    """
    if request.profiles is None and request.interests is None and not request.like:
        raise RankInputError("give --interests, --like or --profiles")
    if request.papers is not None:
        settings = ranking_settings()
        return rank_file(
            request.papers,
            interests=request.interests,
            like=request.like,
            dislike=request.dislike,
            profiles_path=request.profiles,
            top=request.top,
            params=params_for(settings),
            text_backend=settings.text_backend,
            semantic_weight=settings.semantic_weight,
        )
    profiles = (
        read_profiles(request.profiles)
        if request.profiles is not None
        else [one_profile(request.interests, request.like, request.dislike)]
    )
    ranked = rank_stored(services(), profiles, top=request.top)
    return result_rows(profiles, ranked)
