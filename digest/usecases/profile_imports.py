"""Importing a library into a subscriber's profile (the manage page's upload, and
`digest subscribers add --profile FILE`): the use case around digest/profile_files.py.

arXiv entries join the seed papers (and are fetched when the store lacks them); the other
entries' titles and abstracts become the profile's library text (replacing an earlier import's);
often-seen authors are returned to be offered, and followed only when the person says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.profile_files import MAX_SEEDS, LibraryImport, read_library
from digest.store import subscribers as subscriber_store
from digest.usecases.following import follow

if TYPE_CHECKING:
    from digest.bootstrap import Services


@dataclass
class ImportOutcome:
    library: LibraryImport
    new_seeds: list[str]  # seed papers added to the profile by this import
    followed: list[str]

    def summary(self) -> str:
        return self.library.summary()


def import_library(
    services: Services,
    subscriber_id: int,
    data: bytes,
    *,
    follow_authors: Sequence[str] = (),
) -> ImportOutcome:
    """Read `data` and apply it to the subscriber's profile; a file that cannot be read
    changes nothing (`outcome.library.error` says why)."""
    library = read_library(data)
    outcome = ImportOutcome(library, [], [])
    if library.error:
        return outcome
    with services.transaction() as tx:
        subscriber = subscriber_store.get(tx, subscriber_id)
        if subscriber is None:
            return outcome
        known = set(subscriber.seed_papers)
        outcome.new_seeds = [s for s in library.seeds if s not in known]
        seeds = [*subscriber.seed_papers, *outcome.new_seeds]
        subscriber.seed_papers = seeds[:MAX_SEEDS]
        if library.texts:
            subscriber.library_text = "\n".join(library.texts)
    if follow_authors:
        outcome.followed = follow(services, subscriber_id, follow_authors)
    return outcome
