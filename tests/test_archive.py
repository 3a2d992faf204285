"""The archive of past digests and the personal feed list exactly what was mailed (issue 15).

Two editions go out through the SMTP sink; the archive page (behind the subscriber's signed
link), each archived digest and the RSS feed are read back through the web app.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from xml.etree import ElementTree

from sqlmodel import Session, select

from digest.models import Delivery, utcnow
from digest.smtpd.sink import SmtpSink
from digest.usecases.editions import plan_edition, send_edition
from digest.usecases.ingest import ingest_file
from tests.web_support import Web, active_subscriber, build_services, with_web

FIXTURES = Path(__file__).parent / "fixtures"
HF_DAILY = FIXTURES / "hf_daily_papers_api_limit30_2026-06-12.json"
QUANT_PH = FIXTURES / "arxiv_rss2_quant-ph_2025-04-28.xml"
BASE = "http://127.0.0.1:8000"
# The per-message tokens (manage, unsubscribe, view, archive) are minted per rendering.
TOKENS = re.compile(rf"{re.escape(BASE)}/(manage|u|view|archive)/[A-Za-z0-9._-]+")


def _html(raw: bytes) -> str:
    return message_from_bytes(raw, policy=policy.default).get_body(("html",)).get_content()


def test_the_archive_and_feed_show_exactly_what_was_mailed_newest_first(
    settings, smtp_sink: SmtpSink
) -> None:
    services = build_services(with_web(settings, base_url=BASE))
    web = Web(services)
    try:
        yesterday = utcnow() - timedelta(days=1)
        today = utcnow()
        ingest_file(services, QUANT_PH, kind="arxiv-rss", source="arxiv", now=yesterday)
        sid = active_subscriber(services, "ada@example.com", "quantum error correction agents")
        for now in (yesterday, today):
            if now is today:
                ingest_file(services, HF_DAILY, kind="hf-daily", source="hf", now=now)
            edition, _ = plan_edition(services, now=now, edition_date=now.date())
            asyncio.run(send_edition(services, edition, now=now))
        mails = [_html(m.data) for m in smtp_sink.messages]
        assert len(mails) == 2
        with Session(services.engine) as session:
            rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        shown = [[p["id"] for p in row.picks] for row in rows]

        archive_url = re.search(rf"{re.escape(BASE)}/archive/[A-Za-z0-9._-]+", mails[-1]).group(0)
        page = web.client.get(archive_url.removeprefix(BASE))
        assert page.status_code == 200
        views = re.findall(rf'href="{re.escape(BASE)}(/view/[^"]+)"', page.text)
        assert len(views) == 2  # newest first
        for view, mail in zip(views, reversed(mails), strict=True):
            replay = web.client.get(view).text
            assert TOKENS.sub("<token>", replay) == TOKENS.sub("<token>", mail)  # as sent

        feed_url = re.search(r'href="[^"]*(/feed/[^"]+\.xml)"', page.text).group(1)
        channel = ElementTree.fromstring(web.client.get(feed_url).content).find("channel")
        items = channel.findall("item")
        guids = [i.findtext("guid").split("@")[0] for i in items]
        assert guids == shown[1] + shown[0]  # newest digest first, each in its order
        assert all(i.findtext("pubDate") for i in items)
        assert all(i.findtext("description").startswith("Why: ") for i in items)

        forged = archive_url.removeprefix(BASE)[:-3] + "AAA"
        assert web.client.get(forged).status_code == 400
        assert (
            web.client.get(f"/archive/{services.tokens.dumps('view', [sid, 1])}").status_code == 400
        )
    finally:
        web.close()
        services.close()
