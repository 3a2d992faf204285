"""Consent records: one row per opt-in request, confirmed when the person (or the operator,
on their behalf) confirms it. The proof of consent an audit asks for."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from digest.models import Consent
from digest.store.uow import Tx


def by_nonce(tx: Tx, nonce: str) -> Consent | None:
    return tx.execute(select(Consent).where(Consent.nonce == nonce)).scalars().first()


def record(
    tx: Tx,
    *,
    subscriber_id: int,
    nonce: str,
    form_version: str,
    text_hash: str,
    ip_hash: str,
    ua_hash: str,
    requested_at: datetime,
    confirmed_at: datetime | None = None,
) -> Consent:
    """Add a consent request (confirmed at once when `confirmed_at` is given)."""
    consent = Consent(
        subscriber_id=subscriber_id,
        nonce=nonce,
        form_version=form_version,
        text_hash=text_hash,
        ip_hash=ip_hash,
        ua_hash=ua_hash,
        requested_at=requested_at,
        confirmed_at=confirmed_at,
    )
    tx.add(consent)
    return consent


def confirm(tx: Tx, consent: Consent, *, now: datetime) -> None:
    consent.confirmed_at = now
    tx.add(consent)
