"""Use case: what `digest send` does. Plan today's edition (due subscribers, or everyone), send
it (or only count, in a dry run), and say what was done in one record and one line, plus the
reason the run must end in an error, if any."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from digest.placeholders import production_placeholders
from digest.settings import Settings
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.reports import deliveries_to_send
from digest.usecases.send_report import SendReport
from digest.usecases.send_summary import summary_line
from digest.usecases.takeover import held_claims_message

if TYPE_CHECKING:
    from digest.bootstrap import Services

# Given the number of deliveries to send, a context that yields "n more were sent".
ProgressBar = Callable[[int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class SendNow:
    """What a `digest send` run did: the edition, its report, the record and the summary line."""

    edition_date: date
    planned: int
    dry_run: bool
    report: SendReport
    summary: str

    def record(self) -> dict[str, Any]:
        """The outcome as printed (--json prints all of it)."""
        report = self.report
        return {
            "edition": str(self.edition_date),
            "planned": self.planned if not self.dry_run else report.planned,
            "sent": report.sent,
            "deferred": report.deferred,
            "failed": report.failed,
            "suppressed": report.suppressed,
            "skipped": report.skipped,
            "seconds": round(report.seconds, 1),
            "messages_per_s": round(report.rate, 1),
            "claims_held": report.claims_held,
            "dry_run": self.dry_run,
            "summary": self.summary,
        }

    @property
    def failure(self) -> str | None:
        """Why the run must exit non-zero (one line), or None."""
        if self.report.paused:
            return "sending is paused (complaint rate); `digest resume-sending` lifts the pause"
        if self.report.relay_down:
            return "the SMTP relay is unreachable; unsent messages stay queued for the next run"
        if self.report.claims_held:
            return held_claims_message(self.report)
        return None


def placeholder_refusal(settings: Settings) -> str | None:
    """Why production settings must not send (shipped example values), or None."""
    found = production_placeholders(settings)
    if not found:
        return None
    return (
        "refusing to send in production mode with placeholder settings ("
        + ", ".join(p.variable for p in found)
        + "): `digest doctor` gives the fix for each"
    )


def send_now(
    services: Services, *, dry_run: bool, due_only: bool, progress: ProgressBar | None = None
) -> SendNow:
    """Plan and send today's edition now; a dry run plans and counts, sends nothing.

    A real run shows `progress` (if given) and waits up to delivery.claim_wait_s for rows
    that other live senders hold.
    """
    now = services.clock()
    edition, planned = plan_edition(services, edition_date=now.date(), now=now, due_only=due_only)
    if dry_run:
        report = asyncio.run(send_edition(services, edition, now=now, dry_run=True))
    else:
        bar = progress(deliveries_to_send(services, edition.id)) if progress else nullcontext()
        with bar as advance:
            report = asyncio.run(
                send_edition(
                    services,
                    edition,
                    now=now,
                    progress=advance,
                    wait_for_others_s=services.settings.delivery.claim_wait_s,
                )
            )
    line = summary_line(
        report,
        edition_date=edition.edition_date,
        planned=planned,
        due_only=due_only,
        dry_run=dry_run,
    )
    return SendNow(edition.edition_date, planned, dry_run, report, line)
