"""The tables. Declarative only: no queries here (those live in store.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Aware UTC now; every timestamp we store is UTC."""
    return datetime.now(UTC)


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Paper(SQLModel, table=True):
    """One paper however many sources carry it; `key` is the arXiv id without version if any."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True, index=True)
    arxiv_id: str | None = Field(default=None, max_length=64, index=True)
    version: int | None = None
    doi: str | None = Field(default=None, max_length=300)
    title: str
    abstract: str = ""
    authors: list[str] = _json_list()
    categories: list[str] = _json_list()
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    upvotes_prev: int | None = None
    upvotes_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    github_stars: int | None = None
    comments: int | None = None
    ai_summary: str | None = None
    organization: str | None = None
    published: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sources: list[str] = _json_list()
    announce: str = Field(default="new", max_length=20)
    first_seen: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Subscriber(SQLModel, table=True):
    """A person on the list and everything that shapes their digest."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    status: str = Field(default="pending", max_length=20, index=True)
    interests: str = ""
    seed_papers: list[str] = _json_list()
    categories: list[str] = _json_list()
    authors: list[str] = _json_list()
    muted: list[str] = _json_list()
    timezone: str = Field(default="UTC", max_length=64)
    delivery_hour: int = 7
    frequency: str = Field(default="daily", max_length=20)
    weekly_day: int = 0
    trending_weight: float | None = None
    # On a day with nothing new, a short "nothing new today" note instead of no mail at all.
    nothing_new_note: bool = False
    # Papers per digest the subscriber chose (5-30); None: the service's default.
    papers_per_digest: int | None = None
    # Titles and abstracts of an imported library (digest/usecases/profile_imports.py): read
    # as interest text next to `interests`, kept apart so the form's short phrases stay editable.
    library_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    unsubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Feedback(SQLModel, table=True):
    """A thumbs up (+1) or down (-1) on one paper; the latest click wins."""

    __table_args__ = (UniqueConstraint("subscriber_id", "paper_key"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    paper_key: str = Field(max_length=300, index=True)
    value: int
    edition_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Edition(SQLModel, table=True):
    """One day's issue; the unique date makes planning the same day twice impossible."""

    id: int | None = Field(default=None, primary_key=True)
    edition_date: date = Field(unique=True, index=True)
    # planned -> sending -> done | partly failed | expired, or held (every source failed).
    status: str = Field(default="planned", max_length=20)
    # Why the edition is held, in one line; None when it is not.
    note: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    send_by: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """The ledger: one row per (edition, subscriber), the only record of what was sent."""

    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        # Claiming walks (edition, state) in id order and the profile load asks for one
        # subscriber's sent rows: both stay O(batch) however many rows the edition has. No
        # index on state alone: PostgreSQL took it to find "sent rows of these subscribers",
        # reading every sent row of every edition per batch.
        Index("ix_delivery_edition_state", "edition_id", "state", "id"),
        Index("ix_delivery_subscriber_state", "subscriber_id", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # No single-column indexes: (edition_id, ...) and (subscriber_id, state) serve those
    # lookups, and every state change writes each index of the table again.
    edition_id: int = Field(foreign_key="edition.id")
    subscriber_id: int = Field(foreign_key="subscriber.id")
    state: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message_id: str | None = Field(default=None, max_length=300)
    smtp_code: int | None = None
    smtp_text: str | None = None
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paper_keys: list[str] = _json_list()
    # What the message showed, in order: [{"id", "why", "kind"}], so "view in browser" replays it.
    picks: list[dict[str, str]] = _json_list()
    # Why a row was not sent as a digest ("nothing new", "held: every source failed", ...).
    reason: str | None = Field(default=None, max_length=200)
    # The instant the digest's papers were chosen at: the next digest covers papers first seen
    # from here on, so nothing is missed and nothing repeats.
    window_end: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FeedState(SQLModel, table=True):
    """Per-source fetch memory: conditional-GET validators and the last outcome."""

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100, unique=True)
    url: str = ""
    etag: str | None = None
    last_modified: str | None = None
    last_fetch_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: str | None = Field(default=None, max_length=20)
    last_error: str | None = None
    fetched: int = 0
    new: int = 0
    updated: int = 0


class Suppression(SQLModel, table=True):
    """Addresses we must never mail again, kept as a hash so erasure leaves no address behind."""

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=64, unique=True)
    reason: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Consent(SQLModel, table=True):
    """Proof of a double opt-in: what form was shown, when, from where (hashed), when confirmed.

    One row per subscribe request; the confirmation link names the row by its random nonce, so a
    link from an older request cannot be replayed once a newer one has been confirmed.
    """

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    nonce: str = Field(max_length=64, unique=True)
    form_version: str = Field(max_length=40)
    text_hash: str = Field(max_length=64)
    ip_hash: str = Field(max_length=64)
    ua_hash: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateLimit(SQLModel, table=True):
    """Rate-limit state per key (hashed address, hashed IP, global hour), updated atomically.

    `hits` holds recent hit times (epoch seconds) for sliding windows, `count` a fixed-window
    counter; `version` makes every change a compare-and-swap, so concurrent requests on SQLite or
    PostgreSQL can never both take the last slot.
    """

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    hits: list[float] = _json_list()
    count: int = 0
    version: int = 0
    expires_at: datetime = Field(index=True, sa_type=UTCDateTime)


class SchedulerLease(SQLModel, table=True):
    """Who runs the singleton scheduler jobs; taken over by another worker once it expires."""

    name: str = Field(primary_key=True, max_length=50)
    holder: str = Field(max_length=200)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    acquired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SendingProcess(SQLModel, table=True):
    """A live sender: its claims are its own while it beats; a dead one's are taken over."""

    name: str = Field(primary_key=True, max_length=100)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EditionModel(SQLModel, table=True):
    """The text model fitted for an edition, kept so every send run of the day reuses it."""

    edition_id: int = Field(foreign_key="edition.id", primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class BounceEvent(SQLModel, table=True):
    """One parsed delivery report or complaint, per recipient.

    `event_key` (a hash of the report's Message-ID, or of its content, and the recipient) is
    unique, so a replayed report adds no row and changes nothing. The address is kept only as
    its suppression hash: erasing a subscriber leaves the bounce and complaint figures intact.
    """

    id: int | None = Field(default=None, primary_key=True)
    event_key: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=20)  # hard | soft | complaint | delivered
    status: str | None = Field(default=None, max_length=20)
    email_hash: str = Field(max_length=64, index=True)
    edition_id: int | None = None
    received_at: datetime = Field(default_factory=utcnow, index=True, sa_type=UTCDateTime)
    day: date = Field(index=True)


class SendingPause(SQLModel, table=True):
    """A pause of all sending (complaint rate too high); open while `resumed_at` is empty."""

    id: int | None = Field(default=None, primary_key=True)
    reason: str
    paused_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resumed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PaperEmbedding(SQLModel, table=True):
    """A paper's sentence embedding (the optional semantic backend), computed once per text.

    Keyed by paper and model, so a different model never mixes vector spaces; `text_hash` is
    the hash of the text that was embedded, so a retitled or longer abstract is embedded again.
    The vector is float16 bytes: half the space of float32, and cosines move by ~1e-3.
    """

    paper_key: str = Field(primary_key=True, max_length=300)
    model: str = Field(primary_key=True, max_length=100)
    text_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class TextEmbedding(SQLModel, table=True):
    """Embedding of an interest text, keyed by its hash: computed once per distinct text, so
    an edition embeds only texts that changed since the last one, whatever the list size."""

    text_hash: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
