"""The one line `digest send` prints: what was done, or why nothing was sent."""

from __future__ import annotations

from datetime import date

from digest.usecases.send_report import SendReport


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(
    report: SendReport, *, edition_date: date, planned: int, due_only: bool, dry_run: bool = False
) -> str:
    day = f"{edition_date:%Y-%m-%d}"
    if report.held:
        return (
            f"Sent nothing: the {day} edition is {report.held}; "
            "the papers go out in each subscriber's next digest."
        )
    if report.expired:
        return f"Sent nothing: the {day} edition's window closed; {report.expired} rows expired."
    if dry_run:
        return f"Dry run: {_n(report.planned, 'digest')} would be sent for {day}."
    done = []
    if report.notes:
        done.append(_n(report.notes, '"nothing new" note'))
    if report.nothing_new:
        done.append(f"{report.nothing_new} skipped: nothing new since their last digest")
    other = report.skipped - report.nothing_new
    if other:
        done.append(f"{other} skipped: no longer subscribed")
    if report.deferred:
        done.append(f"{report.deferred} deferred for a retry")
    if report.failed:
        done.append(f"{report.failed} failed")
    digests = report.sent - report.notes
    if digests:
        rest = f" ({'; '.join(done)})" if done else ""
        return f"Sent {_n(digests, 'digest')} for {day}{rest} in {report.seconds:.1f}s."
    if done:
        return f"Sent no digest for {day}: {'; '.join(done)}."
    if planned == 0 and due_only:
        return (
            f"Sent nothing for {day}: no subscriber is due now (their local hour has not come, "
            "it is not their day, or they already had it); `digest send --all-now` sends to "
            "every active subscriber who has not had it."
        )
    return f"Sent nothing for {day}: every active subscriber already had this edition."
