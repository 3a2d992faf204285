"""`digest rank`: rank candidates (a JSONL file, or today's stored papers) for one profile or a
batch, as JSON lines or as a table to read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from digest.cli.context import fail, state
from digest.cli.output import Col, print_json, print_table
from digest.cli.readable import DigestTyper

commands = DigestTyper()


@commands.command()
def rank(
    ctx: typer.Context,
    papers: Path | None = typer.Option(None, "--papers", help="Candidates, JSONL."),
    interests: str | None = typer.Option(None, "--interests", help="One profile's interests."),
    like: list[str] = typer.Option([], "--like", help="Liked paper id (repeatable)."),
    dislike: list[str] = typer.Option([], "--dislike", help="Disliked paper id (repeatable)."),
    profiles: Path | None = typer.Option(None, "--profiles", help="Profiles, JSONL."),
    top: int = typer.Option(10, "--top", min=1, help="Papers per profile."),
    as_json: bool = typer.Option(
        True, "--json/--table", help="JSON lines (default), or a table to read."
    ),
) -> None:
    """Rank candidate papers for one profile or a batch of profiles.

    \b
    Examples:
        digest rank --papers papers.jsonl --interests "sparse attention" --top 5
        digest rank --interests "protein folding" --table
    """
    import io

    from digest.rankfile import RankInputError, read_profiles, run_rank
    from digest.settings import SettingsError, load_from_environment

    if profiles is None and interests is None and not like:
        fail("give --interests, --like or --profiles")
    lines = io.StringIO()
    try:
        if papers is not None:
            from digest.usecases.digests import params_for

            # Ranking a file signs nothing: no DIGEST_SECRET_KEY needed.
            try:
                settings = load_from_environment(
                    state(ctx).config, state(ctx).overrides, require_secret=False
                ).ranking
            except SettingsError as exc:
                fail(str(exc), 2)
            run_rank(
                papers,
                interests=interests,
                like=tuple(like),
                dislike=tuple(dislike),
                profiles_path=profiles,
                top=top,
                out=sys.stdout if as_json else lines,
                params=params_for(settings),
                text_backend=settings.text_backend,
                semantic_weight=settings.semantic_weight,
            )
            results = [json.loads(line) for line in lines.getvalue().splitlines()]
        else:
            from digest.ranking import Profile
            from digest.usecases.previews import rank_stored

            batch = (
                read_profiles(profiles)
                if profiles is not None
                else [
                    Profile(
                        user="cli",
                        interests=interests or "",
                        like=tuple(like),
                        dislike=tuple(dislike),
                    )
                ]
            )
            ranked = rank_stored(state(ctx).services, batch, top=top)
            results = [
                {
                    "user": profile.user,
                    "ranked": [
                        {"id": p.id, "score": round(p.score, 6), "why": p.why} for p in picks
                    ],
                }
                for profile, picks in zip(batch, ranked, strict=True)
            ]
            if as_json:
                for result in results:
                    print_json(result)
    except RankInputError as exc:
        fail(str(exc))
    if not as_json:
        print_table(
            [
                Col("user"),
                Col("#", numeric=True),
                Col("id"),
                Col("score", numeric=True),
                Col("why", text=True),
            ],
            [
                (r["user"], i, p["id"], f"{p['score']:.3f}", p["why"])
                for r in results
                for i, p in enumerate(r["ranked"], 1)
            ],
        )
