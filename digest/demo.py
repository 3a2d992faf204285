"""`digest demo`: the whole service offline, end to end, over real SMTP to a local sink.

Bundled recorded feeds -> its own SQLite file in the output folder -> three demo subscribers ->
ranked, rendered digests sent to an aiosmtpd server on 127.0.0.1 that writes .eml files ->
an index.html to open. Never touches the operator's database or SMTP settings.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

from digest import bootstrap
from digest.settings import Settings, SmtpSettings, WebSettings
from digest.smtpd.sink import SinkHandler, SmtpSink
from digest.usecases import demo_pipeline

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
# Recorded responses of the real sources, so the demo shows real papers with their real
# authors, arXiv ids, dates and links (see sample_data/README.md for their provenance).
SAMPLE_FEEDS = (
    ("arxiv_rss_quant-ph.xml", "arxiv-rss", "arxiv-quant-ph"),
    ("hf_daily_papers.json", "hf-daily", "hf-daily"),
    ("arxiv_api_testing.xml", "arxiv-api", "arxiv-api"),
)
DEMO_SUBSCRIBERS = (
    (
        "ada@demo.example",
        "language model agents: web and search agents, tool use, agent memory and safety",
    ),
    ("grace@demo.example", "quantum error correction, qubits, quantum circuits, entanglement"),
    (
        "alan@demo.example",
        "software testing: mutation testing, metamorphic testing, automated test generation",
    ),
)


@dataclass
class DemoReport:
    out_dir: Path
    papers_new: int = 0
    papers_seen: int = 0
    subscribers: int = 0
    sent: int = 0
    already_sent: int = 0
    messages: list[Path] = field(default_factory=list)
    index: Path | None = None
    seconds: float = 0.0


def demo_settings(out_dir: Path, smtp_port: int) -> Settings:
    """Settings of the demo alone: its own database in `out_dir`, the local sink as relay."""
    return Settings(
        mode="demo",
        database_url=f"sqlite:///{out_dir / 'demo.db'}",
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, connections=1),
        web=WebSettings(base_url="http://127.0.0.1:8000"),
    )


def run_demo(out_dir: Path, *, now: datetime | None = None) -> DemoReport:
    """Run the whole pipeline once; a second run on the same folder sends nothing new."""
    import time

    started = time.perf_counter()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out_dir=out_dir)
    feeds = [(SAMPLE_DIR / name, kind, source) for name, kind, source in SAMPLE_FEEDS]
    with SmtpSink(SinkHandler(out_dir=out_dir)) as sink:
        services = bootstrap.build(demo_settings(out_dir, sink.port))
        try:
            run = demo_pipeline.run(services, feeds, DEMO_SUBSCRIBERS, now=now or services.clock())
        finally:
            services.close()
    for name, value in asdict(run).items():
        setattr(report, name, value)
    report.messages = sorted(out_dir.glob("*.eml"))
    report.index = write_index(out_dir, report.messages)
    report.seconds = time.perf_counter() - started
    return report


def write_index(out_dir: Path, messages: list[Path]) -> Path:
    """index.html linking an HTML rendering of each captured message."""
    html_dir = out_dir / "html"
    html_dir.mkdir(exist_ok=True)
    rows = []
    for path in messages:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(("html",))
        target = html_dir / (path.stem + ".html")
        if body is not None:
            target.write_text(body.get_content(), encoding="utf-8")
        rows.append(
            f"<tr><td>{html.escape(str(message['To']))}</td>"
            f'<td><a href="html/{html.escape(target.name)}">'
            f"{html.escape(str(message['Subject']))}</a></td>"
            f'<td><a href="{html.escape(path.name)}">{html.escape(path.name)}</a></td></tr>'
        )
    index = out_dir / "index.html"
    index.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Digest demo</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}"
        "td{padding:.3rem .8rem;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>Digest demo: messages received by the local SMTP server</h1>"
        "<table><tr><th>To</th><th>Subject (HTML part)</th><th>Raw message</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n",
        encoding="utf-8",
    )
    return index
