"""Each subscriber's digest for an edition: candidates and views built once, profiles from
stored feedback, one ranking call for a whole batch, rendering, and the final message bytes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from digest import ranking, windows
from digest.models import Edition, Subscriber
from digest.ranking.compose import compose_row
from digest.ranking.scoring import rank_batch
from digest.render import (
    DigestItem,
    DigestLinks,
    EditionRenderer,
    RenderedDigest,
    build_message,
    paper_view,
)
from digest.store import deliveries as ledger
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store import windows as window_store
from digest.store.uow import Tx

# Re-exported: the web app, previews, tests and benchmarks build digests through here.
from digest.usecases.edition_context import (
    EditionContext,
    edition_context,
    params_for,
    rank_params,
    to_candidate,
)

if TYPE_CHECKING:
    from digest.bootstrap import Services

__all__ = [
    "EditionContext",
    "compose_message",
    "digests_for",
    "edition_context",
    "params_for",
    "profiles_for",
    "rank_params",
    "render_for",
    "replay_digest",
    "to_candidate",
    "window_starts",
]


def profiles_for(
    tx: Tx, subscribers: Sequence[Subscriber], *, context: EditionContext
) -> list[ranking.Profile]:
    """Ranking profiles for these subscribers, with feedback and already-sent papers."""
    ids = [s.id for s in subscribers]
    feedback = subscriber_store.feedback_by_subscriber(tx, ids)
    sent = ledger.delivered_keys(tx, ids)
    profiles = []
    for s in subscribers:
        ratings = feedback.get(s.id, {})
        profiles.append(
            ranking.Profile(
                user=str(s.id),
                interests=f"{s.interests}\n{s.library_text}" if s.library_text else s.interests,
                like=tuple(s.seed_papers) + tuple(k for k, v in ratings.items() if v > 0),
                dislike=tuple(k for k, v in ratings.items() if v < 0),
                categories=tuple(s.categories),
                authors=tuple(s.authors),
                muted=tuple(s.muted),
                exclude=frozenset(sent.get(s.id, ())),
                trending_weight=s.trending_weight,
            )
        )
    return profiles


def _links(services: Services, subscriber: Subscriber, edition: Edition) -> DigestLinks:
    base = services.settings.web.base_url.rstrip("/")
    tokens = services.tokens
    return DigestLinks(
        manage=f"{base}/manage/{tokens.dumps('manage', subscriber.id)}",
        unsubscribe=f"{base}/u/{tokens.dumps('unsubscribe', subscriber.id)}",
        view=f"{base}/view/{tokens.dumps('view', [subscriber.id, edition.id])}",
        archive=f"{base}/archive/{tokens.dumps('view', ['archive', subscriber.id])}",
    )


def render_for(
    services: Services,
    context: EditionContext,
    subscriber: Subscriber,
    picks: Sequence[ranking.Pick],
    profile: ranking.Profile,
    *,
    is_test: bool = False,
    wanted: int | None = None,
    delivery_id: int | None = None,
) -> tuple[RenderedDigest, list[str], DigestLinks]:
    """One subscriber's digest from their composed picks; returns it with the keys it contains.

    A digest with a ledger row gets short rating links (`/r/<token>/3u`): the token names only
    the row, whose stored picks the server resolves. Test sends and previews, which have no
    row, carry one token naming the digest's papers (`/f/...`), as every digest once did.
    """
    settings = services.settings
    base = settings.web.base_url.rstrip("/")
    keys = [p.id for p in picks]
    if delivery_id:
        rate = f"{base}/r/{services.tokens.short('rate', delivery_id)}/"
        votes = [(f"{rate}{n}u", f"{rate}{n}d") for n in range(1, len(picks) + 1)]
    else:
        feedback = services.tokens.dumps("feedback", [subscriber.id, context.edition.id or 0, keys])
        votes = [
            (f"{base}/f/{feedback}/{n}/up", f"{base}/f/{feedback}/{n}/down")
            for n in range(len(picks))
        ]
    items = []
    for pick, (up, down) in zip(picks, votes, strict=True):
        section = "Trending" if pick.kind == "trending" else "For you"
        items.append(DigestItem(context.views[pick.id], pick.why, up, down, section))
    matched = sum(1 for p in picks if p.kind != "trending")
    has_profile = bool(profile.interests.strip() or profile.like or profile.categories)
    shortfall = ""
    if wanted is None:
        wanted = settings.ranking.papers_per_digest
    if has_profile and picks and matched < wanted:
        shortfall = (
            f"Only {matched} new paper{'s' if matched != 1 else ''} matched your interests "
            "closely this time, so the rest are what the community is reading."
        )
    links = _links(services, subscriber, context.edition)
    digest = context.renderer.render(
        items=items,
        interests=subscriber.interests,
        links=links,
        shortfall=shortfall,
        is_test=is_test,
        picks=tuple((p.id, p.why, p.kind) for p in picks),
    )
    return digest, keys, links


def replay_digest(
    services: Services,
    tx: Tx,
    edition: Edition,
    subscriber: Subscriber,
    shown: Sequence[Mapping[str, str]],
    *,
    delivery_id: int | None = None,
) -> RenderedDigest:
    """The digest exactly as it was sent (stored picks), rendered again for the browser."""
    settings = services.settings
    papers = paper_store.papers_by_keys(tx, [p["id"] for p in shown])
    views = {
        key: paper_view(paper, max_tldr_chars=settings.email.max_tldr_chars)
        for key, paper in papers.items()
    }
    renderer = EditionRenderer(
        env=services.templates,
        edition_date=edition.edition_date,
        postal_address=settings.email.postal_address,
    )
    context = EditionContext(edition, [], views, renderer)
    picks = [
        ranking.Pick(
            id=p["id"],
            score=0.0,
            relevance=0.0,
            trending=0.0,
            why=p.get("why", ""),
            kind=p.get("kind", "match"),
        )
        for p in shown
        if p["id"] in views
    ]
    profile = ranking.Profile(user=str(subscriber.id), interests=subscriber.interests)
    digest, _, _ = render_for(
        services, context, subscriber, picks, profile, delivery_id=delivery_id
    )
    return digest


def window_starts(
    services: Services,
    tx: Tx,
    context: EditionContext,
    subscribers: Sequence[Subscriber],
) -> list[datetime]:
    """Where each subscriber's digest window begins (see windows.py)."""
    now = context.now or context.edition.created_at
    ends = window_store.previous_window_ends(
        tx, [s.id for s in subscribers if s.id is not None], edition_id=context.edition.id
    )
    return [
        windows.window_start(s, ends.get(s.id), now=now, settings=services.settings)
        for s in subscribers
    ]


def digests_for(
    services: Services,
    tx: Tx,
    context: EditionContext,
    subscribers: Sequence[Subscriber],
    *,
    is_test: bool = False,
    delivery_ids: Sequence[int] | None = None,
    phases: dict[str, float] | None = None,
) -> list[tuple[RenderedDigest, list[str], DigestLinks]]:
    """Rank all these subscribers at once, each within their own window, then render each one's
    digest. A digest with no picks means the subscriber's window holds nothing new.
    `delivery_ids`: each digest's ledger row, for its short rating links. `phases` (optional)
    accumulates the seconds spent ranking and rendering."""
    started = time.perf_counter()
    profiles = profiles_for(tx, subscribers, context=context)
    settings = services.settings
    wanted = [windows.papers_wanted(s, settings) for s in subscribers]
    floor = settings.ranking.min_relevance
    if context.rank_context is None or not subscribers:
        rows: list[list[ranking.Pick]] = [[] for _ in subscribers]
    else:
        params = rank_params(services)
        batch = ranking.build_batch(profiles, context.rank_context, params)
        starts = windows.epoch_us(window_starts(services, tx, context, subscribers))
        # Papers first seen before a subscriber's window were theirs to get last time: banned
        # like delivered ones, so neither the matches nor the trending fill reach back.
        banned = batch.banned + windows.before_window(context.first_seen_us, starts)
        banned = banned.tocsr()
        banned.data[:] = 1.0
        batch = replace(batch, banned=banned)
        result = rank_batch(context.rank_context, batch, top_n=max(wanted), params=params)
        rows = [
            compose_row(result, i, top_n=wanted[i], min_relevance=floor)
            for i in range(len(subscribers))
        ]
    ranked = time.perf_counter()
    rows_ids = list(delivery_ids) if delivery_ids is not None else [None] * len(subscribers)
    rendered = [
        render_for(
            services, context, s, picks, profile, is_test=is_test, wanted=top_n, delivery_id=row
        )
        for s, picks, profile, top_n, row in zip(
            subscribers, rows, profiles, wanted, rows_ids, strict=True
        )
    ]
    if phases is not None:
        phases["rank"] = phases.get("rank", 0.0) + ranked - started
        phases["render"] = phases.get("render", 0.0) + time.perf_counter() - ranked
    return rendered


def compose_message(
    services: Services,
    *,
    subscriber: Subscriber,
    digest: RenderedDigest,
    links: DigestLinks,
    msg_id: str,
    now: datetime,
    is_test: bool = False,
) -> bytes:
    settings = services.settings
    reply_token = services.tokens.dumps("reply", subscriber.id)
    mailto = f"mailto:reply+{reply_token}@{settings.email.reply_to_domain}?subject=unsubscribe"
    headers = {
        "List-Id": settings.email.list_id,
        "List-Unsubscribe": f"<{links.unsubscribe}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Reply-To": f"reply+{reply_token}@{settings.email.reply_to_domain}",
    }
    if is_test:
        headers["X-Digest-Test"] = "yes"
    raw = build_message(
        sender=settings.email.from_address,
        to=subscriber.email,
        subject=digest.subject,
        text=digest.text_utf8,
        html=digest.html_utf8,
        message_id=msg_id,
        date=now,
        headers=headers,
        text_qp=digest.text_qp,
    )
    # Signed last: the signature covers the final header set, List-Unsubscribe included.
    return services.dkim.sign(raw) if services.dkim else raw
