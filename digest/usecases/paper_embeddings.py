"""The day's papers embedded right after the fetch, not by the first edition that ranks them.

With the default text backend an edition embeds every candidate that has no stored vector yet
(0.1-0.2 s a paper on 2 cores), so a day of 2,000 new papers would hold the morning's first
send for minutes. The worker runs this after each fetch instead. Vectors are computed outside
any transaction, a batch at a time, and each batch is stored in one short write: a long encoder
run never holds the database, and a stop or a deadline loses at most one batch (the edition
embeds whatever is still missing, as before).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.ranking import semantic
from digest.store import papers as paper_store
from digest.usecases.edition_context import to_candidate

if TYPE_CHECKING:
    from digest.bootstrap import Services

BATCH = 64  # ~10 s of encoder time on 2 cores between two checks of the deadline


def embed_recent_papers(
    services: Services,
    *,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Embed and store the candidate window's papers that have no current vector; returns how
    many vectors were stored. Nothing to do with the `tfidf` backend."""
    settings = services.settings
    if settings.ranking.text_backend == "tfidf":
        return 0
    now = now or services.clock()
    since = now - timedelta(days=settings.ranking.candidate_days)
    with services.reading() as tx:
        papers = [to_candidate(p) for p in paper_store.recent_papers(tx, since=since)]
    saved = 0
    for start in range(0, len(papers), BATCH):
        if should_stop():
            break
        batch = papers[start : start + BATCH]
        keys = [p.id for p in batch]
        with services.reading() as tx:
            stored = services.embedding_store(tx, now).paper_vectors(keys, semantic.MODEL)
        # The batch's stored vectors in memory: precompute embeds only what they lack.
        memory = semantic.MemoryEmbeddings()
        memory.save_paper_vectors([(k, h, v) for k, (h, v) in stored.items()], semantic.MODEL)
        semantic.precompute(batch, memory, threads=settings.ranking.embed_threads)
        # Compared with what was stored rather than counted by the encoder: a vector this
        # process computed earlier (for another database) is reused without encoding, and
        # must still be stored here.
        fresh = [
            (key, text_hash, vector)
            for key, (text_hash, vector) in memory.paper_vectors(keys, semantic.MODEL).items()
            if stored.get(key, ("",))[0] != text_hash
        ]
        if fresh:
            with services.transaction() as tx:
                services.embedding_store(tx, now).save_paper_vectors(fresh, semantic.MODEL)
        saved += len(fresh)
    return saved
