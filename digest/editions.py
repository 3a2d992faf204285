"""Use case: plan an edition, then claim, rank, render, send and record its deliveries.

The Delivery ledger is the only record of what was sent: a row is claimed, the subscriber is
re-checked, the message goes out, and the outcome is committed at once. A crash leaves claimed
rows that a later run resumes after the lease, with the same Message-ID.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from digest import ranking
from digest.bootstrap import Services
from digest.mailer import SendOutcome, SmtpConnection
from digest.models import Edition, Paper, Subscriber, Suppression, utcnow
from digest.render import (
    DigestItem,
    DigestLinks,
    EditionRenderer,
    PaperView,
    RenderedDigest,
    build_message,
    message_id,
    paper_view,
)
from digest.store import deliveries as ledger
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store


@dataclass
class SendReport:
    """What one send run did; `seconds` is wall time."""

    planned: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    relay_down: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EditionContext:
    """Everything computed once per edition and shared by every subscriber's digest."""

    edition: Edition
    candidates: list[ranking.Candidate]
    views: dict[str, PaperView]
    renderer: EditionRenderer
    pool: list[ranking.Candidate] = field(default_factory=list)


def is_due(subscriber: Subscriber, *, now: datetime) -> bool:
    """True once the subscriber's local delivery hour has come today (and today is a send day)."""
    try:
        zone = ZoneInfo(subscriber.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    if subscriber.frequency == "paused":
        return False
    if subscriber.frequency == "weekdays" and local.weekday() >= 5:
        return False
    if subscriber.frequency == "weekly" and local.weekday() != subscriber.weekly_day:
        return False
    return local.hour >= subscriber.delivery_hour


def plan_edition(
    services: Services, *, edition_date: date, now: datetime, due_only: bool = False
) -> tuple[Edition, int]:
    """The edition of `edition_date` and how many new delivery rows were planned for it."""
    with Session(services.engine, expire_on_commit=False) as session:
        edition, _ = ledger.get_or_create_edition(
            session, edition_date=edition_date, send_by=now + timedelta(hours=24)
        )
        subscribers = subscriber_store.active_subscribers(session)
        if due_only:
            subscribers = [s for s in subscribers if is_due(s, now=now)]
        planned = ledger.plan_deliveries(
            session, edition_id=edition.id, subscriber_ids=[s.id for s in subscribers]
        )
        session.commit()
        return edition, planned


def to_candidate(paper: Paper, *, liked_by: int = 0) -> ranking.Candidate:
    return ranking.Candidate(
        id=paper.key,
        title=paper.title,
        abstract=paper.abstract,
        authors=tuple(paper.authors or ()),
        categories=tuple(paper.categories or ()),
        upvotes=paper.upvotes,
        github_stars=paper.github_stars,
        published=paper.published,
        liked_by=liked_by,
    )


def edition_context(
    services: Services, session: Session, edition: Edition, *, now: datetime
) -> EditionContext:
    """Candidates, their views and the renderer, built once for the edition."""
    settings = services.settings
    since = now - timedelta(days=settings.ranking.candidate_days)
    papers = paper_store.recent_papers(session, since=since)
    likes = subscriber_store.like_counts(session, [p.key for p in papers])
    candidates = [to_candidate(p, liked_by=likes.get(p.key, 0)) for p in papers]
    views = {p.key: paper_view(p, max_tldr_chars=settings.email.max_tldr_chars) for p in papers}
    renderer = EditionRenderer(
        env=services.templates,
        edition_date=edition.edition_date,
        postal_address=settings.email.postal_address,
    )
    return EditionContext(edition, candidates, views, renderer)


def profiles_for(
    session: Session, subscribers: Sequence[Subscriber], *, context: EditionContext
) -> list[ranking.Profile]:
    """Ranking profiles for these subscribers, with feedback and already-sent papers."""
    ids = [s.id for s in subscribers]
    feedback = subscriber_store.feedback_by_subscriber(session, ids)
    sent = ledger.delivered_keys(session, ids)
    wanted = {k for s in subscribers for k in s.seed_papers} | {
        k for ratings in feedback.values() for k in ratings
    }
    known = {c.id for c in context.candidates} | {c.id for c in context.pool}
    missing = [k for k in wanted if k not in known]
    if missing:
        found = paper_store.papers_by_keys(session, missing)
        context.pool.extend(to_candidate(p) for p in found.values())
    profiles = []
    for s in subscribers:
        ratings = feedback[s.id]
        profiles.append(
            ranking.Profile(
                user=str(s.id),
                interests=s.interests,
                like=tuple(s.seed_papers) + tuple(k for k, v in ratings.items() if v > 0),
                dislike=tuple(k for k, v in ratings.items() if v < 0),
                categories=tuple(s.categories),
                authors=tuple(s.authors),
                muted=tuple(s.muted),
                exclude=frozenset(sent[s.id]),
                trending_weight=s.trending_weight,
            )
        )
    return profiles


def compose(
    picks: Sequence[ranking.Pick],
    trending_order: Sequence[str],
    *,
    banned: set[str],
    top_n: int,
    min_relevance: float,
) -> tuple[list[tuple[str, str, str]], int]:
    """(key, why, section) rows: matches above the bar, then labelled trending fill."""
    rows = [(p.id, p.why, "For you") for p in picks if p.relevance >= min_relevance][:top_n]
    matched = len(rows)
    chosen = {key for key, _, _ in rows} | banned
    for key in trending_order:
        if len(rows) >= top_n:
            break
        if key not in chosen:
            rows.append((key, "trending today", "Trending"))
            chosen.add(key)
    return rows, matched


def _links(services: Services, subscriber: Subscriber, edition: Edition) -> DigestLinks:
    base = services.settings.web.base_url.rstrip("/")
    tokens = services.tokens
    return DigestLinks(
        manage=f"{base}/manage/{tokens.dumps('manage', subscriber.id)}",
        unsubscribe=f"{base}/u/{tokens.dumps('unsubscribe', subscriber.id)}",
        view=f"{base}/view/{tokens.dumps('view', [subscriber.id, edition.id])}",
    )


def render_for(
    services: Services,
    context: EditionContext,
    subscriber: Subscriber,
    picks: Sequence[ranking.Pick],
    profile: ranking.Profile,
    *,
    trending_order: Sequence[str],
    is_test: bool = False,
) -> tuple[RenderedDigest, list[str], DigestLinks]:
    """One subscriber's digest from their picks; returns it with the keys it contains."""
    settings = services.settings
    banned = set(profile.exclude) | set(profile.like) | set(profile.dislike)
    rows, matched = compose(
        picks,
        trending_order,
        banned=banned,
        top_n=settings.ranking.papers_per_digest,
        min_relevance=settings.ranking.min_relevance,
    )
    base = settings.web.base_url.rstrip("/")
    edition_id = context.edition.id or 0
    items = []
    for key, why, section in rows:
        view = context.views[key]
        if section == "Trending" and view.upvotes:
            why = f"trending: {view.upvotes} upvotes"
        up = services.tokens.dumps("feedback", [subscriber.id, key, 1, edition_id])
        down = services.tokens.dumps("feedback", [subscriber.id, key, -1, edition_id])
        items.append(DigestItem(view, why, f"{base}/f/{up}", f"{base}/f/{down}", section=section))
    has_profile = bool(profile.interests.strip() or profile.like or profile.categories)
    shortfall = ""
    if has_profile and matched < settings.ranking.papers_per_digest:
        shortfall = (
            f"Only {matched} new paper{'s' if matched != 1 else ''} matched your interests "
            "closely today, so the rest are what the community is reading."
        )
    links = _links(services, subscriber, context.edition)
    digest = context.renderer.render(
        items=items,
        interests=subscriber.interests,
        links=links,
        shortfall=shortfall,
        is_test=is_test,
    )
    return digest, [key for key, _, _ in rows], links


def digests_for(
    services: Services,
    session: Session,
    context: EditionContext,
    subscribers: Sequence[Subscriber],
    *,
    is_test: bool = False,
) -> list[tuple[RenderedDigest, list[str], DigestLinks]]:
    """Rank all these subscribers at once, then render each one's digest."""
    profiles = profiles_for(session, subscribers, context=context)
    settings = services.settings
    params = ranking.RankParams(
        trending_weight=settings.ranking.trending_weight,
        dislike_weight=settings.ranking.dislike_weight,
        chunk_size=settings.ranking.chunk_size,
    )
    picks = ranking.rank(
        context.candidates,
        profiles,
        top_n=settings.ranking.papers_per_digest,
        pool=context.pool,
        params=params,
    )
    trend = ranking.trending_scores(context.candidates)
    trending_order = [
        context.candidates[i].id
        for i in sorted(range(len(context.candidates)), key=lambda i: -trend[i])
    ]
    return [
        render_for(services, context, s, p, prof, trending_order=trending_order, is_test=is_test)
        for s, p, prof in zip(subscribers, picks, profiles, strict=True)
    ]


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
    return build_message(
        sender=settings.email.from_address,
        to=subscriber.email,
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        message_id=msg_id,
        date=now,
        headers=headers,
    )


def _retry_at(services: Services, attempts: int, now: datetime) -> datetime:
    base = services.settings.delivery.backoff_base_s
    delay = base * (2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)
    return now + timedelta(seconds=delay)


def _suppress(session: Session, subscriber: Subscriber, reason: str, now: datetime) -> None:
    key = subscriber_store.email_hash(subscriber.email)
    if not subscriber_store.is_suppressed(session, subscriber.email):
        session.add(Suppression(email_hash=key, reason=reason, created_at=now))
    subscriber.status = "suppressed"
    session.add(subscriber)
    session.commit()


async def send_edition(
    services: Services,
    edition: Edition,
    *,
    now: datetime | None = None,
    worker: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> SendReport:
    """Send every due row of this edition; returns counts. Never sends a 'sent' row again."""
    settings = services.settings
    worker = worker or f"{socket.gethostname()}:{id(object())}"
    report = SendReport()
    started = time.perf_counter()
    now = now or clock()
    connection = SmtpConnection(settings.smtp)
    try:
        with Session(services.engine, expire_on_commit=False) as session:
            context = edition_context(services, session, edition, now=now)
            while True:
                batch = ledger.claim_batch(
                    session,
                    edition_id=edition.id,
                    worker=worker,
                    limit=settings.delivery.batch_size,
                    now=clock() if not dry_run else now,
                    lease_s=settings.delivery.lease_s,
                )
                if not batch:
                    break
                subscribers = ledger.subscribers_of(session, [d.subscriber_id for d in batch])
                live = []
                for delivery in batch:
                    subscriber = subscribers.get(delivery.subscriber_id)
                    # Re-checked at claim time: an unsubscribe that landed mid-edition wins.
                    if subscriber is None or subscriber.status != "active":
                        ledger.mark(
                            session,
                            delivery.id,
                            state="skipped",
                            now=clock(),
                            worker=worker,
                            count_attempt=False,
                        )
                        report.skipped += 1
                        continue
                    live.append((delivery, subscriber))
                if dry_run:
                    for delivery, _ in live:
                        ledger.mark(
                            session,
                            delivery.id,
                            state="pending",
                            now=now,
                            worker=worker,
                            count_attempt=False,
                        )
                    report.planned += len(live)
                    break
                digests = digests_for(services, session, context, [s for _, s in live])
                for (delivery, subscriber), (digest, keys, links) in zip(
                    live, digests, strict=True
                ):
                    msg_id = message_id(
                        edition_id=edition.id,
                        subscriber_id=subscriber.id,
                        domain=settings.email.message_id_domain,
                        secret=settings.secret(),
                    )
                    raw = compose_message(
                        services,
                        subscriber=subscriber,
                        digest=digest,
                        links=links,
                        msg_id=msg_id,
                        now=clock(),
                    )
                    outcome = await connection.send(
                        sender=settings.email.from_address, recipient=subscriber.email, message=raw
                    )
                    _record(
                        services,
                        session,
                        delivery,
                        subscriber,
                        outcome,
                        keys,
                        msg_id,
                        worker=worker,
                        report=report,
                        now=clock(),
                    )
                    if progress:
                        progress(1)
                    if outcome.kind == "relay":
                        report.relay_down = True
                        break
                if report.relay_down:
                    _release_claims(session, edition.id, worker, clock())
                    break
    finally:
        await connection.close()
    report.seconds = time.perf_counter() - started
    return report


def _record(
    services: Services,
    session: Session,
    delivery,
    subscriber: Subscriber,
    outcome: SendOutcome,
    keys: list[str],
    msg_id: str,
    *,
    worker: str,
    report: SendReport,
    now: datetime,
) -> None:
    settings = services.settings
    common = dict(
        now=now, worker=worker, message_id=msg_id, smtp_code=outcome.code, smtp_text=outcome.text
    )
    if outcome.kind == "sent":
        ledger.mark(session, delivery.id, state="sent", paper_keys=keys, **common)
        report.sent += 1
    elif outcome.kind == "deferred" and delivery.attempts + 1 < settings.delivery.max_attempts:
        ledger.mark(
            session,
            delivery.id,
            state="deferred",
            next_attempt_at=_retry_at(services, delivery.attempts + 1, now),
            **common,
        )
        report.deferred += 1
    elif outcome.kind == "relay":
        ledger.mark(
            session,
            delivery.id,
            state="pending",
            count_attempt=False,
            next_attempt_at=_retry_at(services, 1, now),
            **common,
        )
    else:
        ledger.mark(session, delivery.id, state="failed", **common)
        report.failed += 1
        if outcome.hard_bounce:
            _suppress(session, subscriber, "hard_bounce", now)
            report.suppressed += 1


def _release_claims(session: Session, edition_id: int, worker: str, now: datetime) -> None:
    """Hand this worker's unsent claims back, so the relay's outage costs no message."""
    from sqlalchemy import update

    from digest.models import Delivery

    session.execute(
        update(Delivery)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.claimed_by == worker,
            Delivery.state == "claimed",
        )
        .values(state="pending", claimed_by=None, claimed_at=None)
    )
    session.commit()
