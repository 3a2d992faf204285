"""Helpers shared by the web tests: an app over the test services, forms with CSRF, sink links."""

from __future__ import annotations

import json
import quopri
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from sqlmodel import Session
from starlette.testclient import TestClient

from digest import bootstrap
from digest.bootstrap import Services
from digest.db import make_engine, upgrade
from digest.models import Paper, Subscriber, utcnow
from digest.settings import Settings
from digest.smtpd.sink import Received
from digest.store.subscribers import add_subscriber, record_feedback
from digest.web import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BASE = "http://127.0.0.1:8000"

PAPERS = [
    ("2611.00001", "Diffusion transformers for video generation", "video diffusion model", 120),
    ("2611.00002", "Efficient LLM inference with speculative decoding", "llm inference", 95),
    ("2611.00003", "Protein structure prediction at scale", "protein folding model", 60),
    ("2611.00004", "Graph neural networks for weather", "weather forecasting graph", 30),
    ("2611.00005", "Sparse attention for long documents", "long context attention", 12),
    ("2611.00006", "Reinforcement learning from human feedback revisited", "rlhf reward", 7),
]


def with_web(settings: Settings, **web: Any) -> Settings:
    """A copy of `settings` with some [web] values changed (settings are frozen)."""
    return settings.model_copy(update={"web": settings.web.model_copy(update=web)})


def build_services(settings: Settings) -> Services:
    services = bootstrap.build(settings, engine=make_engine(settings.database_url))
    upgrade(services.engine)
    return services


def add_papers(services: Services, papers=PAPERS) -> list[str]:
    now = utcnow()
    with Session(services.engine) as session:
        for i, (key, title, abstract, votes) in enumerate(papers):
            session.add(
                Paper(
                    key=key,
                    arxiv_id=key,
                    title=title,
                    abstract=f"We study {abstract}. Results improve on prior work.",
                    authors=["A. Author", "B. Author"],
                    categories=["cs.LG"],
                    url=f"https://arxiv.org/abs/{key}",
                    upvotes=votes,
                    first_seen=now - timedelta(minutes=i),
                    published=now - timedelta(hours=1),
                )
            )
        session.commit()
    return [p[0] for p in papers]


@dataclass
class Web:
    """A TestClient over create_app(services) plus form helpers."""

    services: Services
    clock: Callable[[], float] | None = None
    client_addr: tuple[str, int] = ("203.0.113.7", 40000)
    app: Any = field(init=False)
    client: TestClient = field(init=False)

    def __post_init__(self) -> None:
        kwargs = {"clock": self.clock} if self.clock else {}
        self.app = create_app(self.services, **kwargs)
        self.client = TestClient(self.app, client=self.client_addr, follow_redirects=False)
        # Entered once: one event loop for all requests (and the app's lifespan runs).
        self.client.__enter__()

    def csrf(self, path: str = "/") -> str:
        response = self.client.get(path)
        found = CSRF.search(response.text)
        assert found, f"no CSRF token on {path} ({response.status_code})"
        return found.group(1)

    def subscribe(self, email: str, headers: dict[str, str] | None = None, **fields: str):
        data = {"csrf_token": self.csrf(), "email": email, "interests": "llm inference"}
        data.update(fields)
        return self.client.post("/subscribe", data=data, headers=headers or {})

    def post_form(self, path: str, **fields: str):
        """POST a form to `path` with this browser's CSRF token."""
        return self.client.post(path, data={"csrf_token": self.csrf(), **fields})

    def drain(self) -> None:
        self.app.state.web.jobs.drain()

    def close(self) -> None:
        self.drain()
        self.client.__exit__(None, None, None)


def body_text(message: Received) -> str:
    """The decoded text/plain part of a message from the sink."""
    parsed = message_from_bytes(message.data, policy=policy.default)
    part = parsed.get_body(preferencelist=("plain",))
    return part.get_content() if part else quopri.decodestring(message.data).decode()


def links_in(message: Received, kind: str) -> list[str]:
    """Paths such as /confirm/<token> or /f/<token> in a message (base URL stripped)."""
    parsed = message_from_bytes(message.data, policy=policy.default)
    text = ""
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            text += part.get_content()
    found = re.findall(rf"{re.escape(BASE)}/{kind}/[A-Za-z0-9._-]+", text)
    return list(dict.fromkeys(m.replace(BASE, "") for m in found))


def to(messages: list[Received], address: str) -> list[Received]:
    return [m for m in messages if address in m.recipients]


def active_subscriber(services: Services, email: str, interests: str = "llm inference") -> int:
    with Session(services.engine) as session:
        sid = add_subscriber(session, email=email, interests=interests, confirmed=True).id
        session.commit()
        return sid


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def record(test: str, **figures) -> None:
    """Append one test's figures (the numbers RELIABILITY.md asks for) to the artefacts."""
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "web-figures.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps({"test": test, **figures}) + "\n")
    print(test, figures)


XSS = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    "<svg onload=window.__xss=1>",
    '"><script>window.__xss=1</script>',
    "'><img src=x onerror=window.__xss=1>",
    "<iframe src=javascript:window.__xss=1>",
    "<body onload=window.__xss=1>",
    "<a href=javascript:window.__xss=1>x</a>",
    "<details open ontoggle=window.__xss=1>",
    "<input autofocus onfocus=window.__xss=1>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "<video><source onerror=window.__xss=1>",
    "<audio src=x onerror=window.__xss=1>",
    "<marquee onstart=window.__xss=1>",
    "<object data=javascript:window.__xss=1>",
    "<embed src=javascript:window.__xss=1>",
    "<form><button formaction=javascript:alert(1)>x",
    "<isindex action=javascript:alert(1) type=image>",
    "<base href=javascript:alert(1)//>",
    "<link rel=import href=data:text/html,<script>window.__xss=1</script>>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "{{7*7}}",
    "{% raw %}x",
    "${7*7}",
    "</textarea><script>window.__xss=1</script>",
    "</title><script>window.__xss=1</script>",
    "<style>@import'javascript:alert(1)'</style>",
    "<div style=x:expression(alert(1))>",
    "<img src=`x`onerror=window.__xss=1>",
    "<img/src=x/onerror=window.__xss=1>",
    "<svg><script>window.__xss=1</script>",
    "<scr<script>ipt>window.__xss=1</script>",
    "&lt;script&gt;window.__xss=1&lt;/script&gt;",
    "<img src=x onerror=&#x77;indow.__xss=1>",
    "<x onclick=window.__xss=1>click",
    "<select onfocus=window.__xss=1 autofocus>",
    "<textarea onfocus=window.__xss=1 autofocus>",
    "<keygen onfocus=window.__xss=1 autofocus>",
    "<body background=javascript:alert(1)>",
    "<table background=javascript:alert(1)>",
    "<img dynsrc=javascript:alert(1)>",
    "<img lowsrc=javascript:alert(1)>",
    "<bgsound src=javascript:alert(1)>",
    '<br size="&{window.__xss=1}">',
    "<layer src=javascript:alert(1)></layer>",
    "<xss style=behavior:url(x.htc)>",
    "<div onpointerover=window.__xss=1>x</div>",
    '<noscript><p title="</noscript><img src=x onerror=window.__xss=1>">',
    "<svg><animate onbegin=window.__xss=1 attributeName=x dur=1s>",
    "javascript:/*--></title></style></textarea></script><svg/onload=window.__xss=1>",
]


def xss_pages(services) -> dict[str, str]:
    """The pages and messages that show a subscriber's own text, with all 50 payloads in it."""
    add_papers(services)
    sid = active_subscriber(services, "xss@example.com")
    with Session(services.engine) as session:
        subscriber = session.get(Subscriber, sid)
        subscriber.interests = ", ".join(XSS)  # stored raw, as if validation were bypassed
        session.add(subscriber)
        for i, payload in enumerate(XSS[:10]):
            record_feedback(session, subscriber_id=sid, paper_key=payload, value=1 if i else -1)
        session.commit()
    web = Web(services)
    pages = {
        "manage": web.client.get(f"/manage/{services.tokens.dumps('manage', sid)}").text,
        "digest": web.client.get(f"/view/{services.tokens.dumps('view', [sid, 0])}").text,
    }
    form = web.client.post(
        "/subscribe",
        data={"csrf_token": web.csrf(), "email": "bad", "interests": XSS[1], "categories": XSS[0]},
    )
    pages["form_error"] = form.text
    web.close()
    return pages
