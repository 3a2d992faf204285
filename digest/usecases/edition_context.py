"""The edition's shared context: candidates, paper views, the renderer and the ranking context
(with the edition's text model), built once and shared by every subscriber's digest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from digest import ranking, windows
from digest.models import Edition, Paper
from digest.ranking import semantic
from digest.render import EditionRenderer, PaperView, paper_view
from digest.settings import RankingSettings
from digest.store import editions as edition_store
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store import windows as window_store
from digest.store.uow import Tx

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass
class EditionContext:
    """Everything computed once per edition and shared by every subscriber's digest."""

    edition: Edition
    candidates: list[ranking.Candidate]
    views: dict[str, PaperView]
    renderer: EditionRenderer
    rank_context: ranking.RankContext | None = None
    # When each candidate was first seen (epoch microseconds, candidate order) and the instant
    # the edition's papers were read: each subscriber's window is cut from these.
    first_seen_us: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    now: datetime | None = None


def to_candidate(paper: Paper, *, liked_by: int = 0) -> ranking.Candidate:
    return ranking.Candidate(
        id=paper.key,
        title=paper.title,
        abstract=paper.abstract,
        authors=tuple(paper.authors or ()),
        categories=tuple(paper.categories or ()),
        upvotes=paper.upvotes,
        upvotes_prev=paper.upvotes_prev,
        github_stars=paper.github_stars,
        published=paper.published,
        liked_by=liked_by,
    )


def rank_params(services: Services) -> ranking.RankParams:
    return params_for(services.settings.ranking)


def params_for(settings: RankingSettings) -> ranking.RankParams:
    return ranking.RankParams(
        trending_weight=settings.trending_weight,
        dislike_weight=settings.dislike_weight,
        chunk_size=settings.chunk_size,
        diversity=settings.diversity,
    )


def edition_context(
    services: Services, tx: Tx, edition: Edition, *, now: datetime
) -> EditionContext:
    """Candidates, the text model, paper views and the renderer, built once for the edition.

    The text model is fitted on the stored window plus the candidates; the pool holds every
    paper a subscriber has seeded or rated, so profiles find them without another query.
    """
    settings = services.settings
    # Every paper the windows of the subscribers still waiting may hold (each digest is then
    # cut to its own window): about a day's papers when everyone had yesterday's digest.
    since = window_store.earliest_open_window(
        tx,
        edition.id,
        now=now,
        first_days=settings.ranking.candidate_days,
        weekly_first_days=7,
        max_days=settings.calendar.max_window_days,
    ) or now - timedelta(days=windows.pool_days(settings))
    papers = paper_store.recent_papers(tx, since=since)
    likes = subscriber_store.like_counts(tx, [p.key for p in papers])
    candidates = [to_candidate(p, liked_by=likes.get(p.key, 0)) for p in papers]
    views = {p.key: paper_view(p, max_tldr_chars=settings.email.max_tldr_chars) for p in papers}
    renderer = EditionRenderer(
        env=services.templates,
        edition_date=edition.edition_date,
        postal_address=settings.email.postal_address,
    )
    context = EditionContext(
        edition,
        candidates,
        views,
        renderer,
        first_seen_us=windows.epoch_us([p.first_seen for p in papers]),
        now=now,
    )
    if candidates:
        context.rank_context = _rank_context(services, tx, edition, candidates, now=now)
    return context


def _rank_context(
    services: Services,
    tx: Tx,
    edition: Edition,
    candidates: list[ranking.Candidate],
    *,
    now: datetime,
) -> ranking.RankContext:
    """The ranker's shared state: the pool of rated papers and the edition's text model."""
    settings = services.settings
    referenced = subscriber_store.referenced_paper_keys(tx)
    candidate_keys = {c.id for c in candidates}
    pool_papers = paper_store.papers_by_keys(tx, [k for k in referenced if k not in candidate_keys])
    pool = [to_candidate(p) for p in pool_papers.values()]
    window_since = now - timedelta(days=settings.ranking.window_days)
    # The embeddings (optional backend) are read from their table; only papers and
    # interest texts never embedded before are computed, once, and stored.
    model = semantic.backend_for(
        _edition_model(
            tx,
            edition,
            candidates,
            window_since,
            dims=semantic.lsa_dims(settings.ranking.text_backend),
        ),
        candidates + pool,
        services.embedding_store(tx, now),
        backend=settings.ranking.text_backend,
        weight=settings.ranking.semantic_weight,
        threads=settings.ranking.embed_threads,
        text_budget=settings.ranking.embed_new_texts_max,
    )
    return ranking.build_context(
        candidates, pool=pool, model=model, now=now, params=rank_params(services)
    )


def _edition_model(
    tx: Tx,
    edition: Edition,
    candidates: list[ranking.Candidate],
    since: datetime,
    *,
    dims: int,
) -> ranking.TextModel:
    """Fitted once per edition and stored, so each send run of the day reuses it.

    The window (up to tens of thousands of papers) is read only when the model must be fitted:
    the worker builds an edition's context on every send tick.
    """
    stored = edition_store.load_edition_model(tx, edition.id) if edition.id else None
    if stored is not None:
        return ranking.TextModel.from_bytes(stored)
    window = paper_store.list_papers(tx, since=since)
    model = ranking.fit_for(candidates, [to_candidate(p) for p in window], dims=dims)
    if edition.id:
        edition_store.save_edition_model(tx, edition.id, model.to_bytes())
    return model
