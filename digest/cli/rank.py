"""`digest rank`: rank candidates (a JSONL file, or today's stored papers) for one profile or a
batch, as JSON lines or as a table to read."""

from __future__ import annotations

from pathlib import Path

import typer

from digest.cli.context import fail, state
from digest.cli.output import Col, print_json, print_table
from digest.cli.readable import DigestTyper
from digest.settings import RankingSettings, SettingsError, load_from_environment

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
    from digest.usecases.rank_requests import RankInputError, RankRequest, rank_request

    request = RankRequest(papers, interests, tuple(like), tuple(dislike), profiles, top)
    try:
        results = rank_request(
            request,
            ranking_settings=lambda: _ranking_settings(ctx),
            services=lambda: state(ctx).services,
        )
    except RankInputError as exc:
        fail(str(exc))
    if as_json:
        for result in results:
            print_json(result)
        return
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


def _ranking_settings(ctx: typer.Context) -> RankingSettings:
    """The ranking settings without DIGEST_SECRET_KEY: ranking a file signs nothing."""
    try:
        return load_from_environment(
            state(ctx).config, state(ctx).overrides, require_secret=False
        ).ranking
    except SettingsError as exc:
        fail(str(exc), 2)
