"""`digest doctor`: check that a configuration can run, one line per check and a fix per failure.

Checks read and connect but never send: the SMTP check stops after EHLO, STARTTLS and AUTH.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

import aiosmtplib

from digest.addresses import normalise_address
from digest.mailer import client_context
from digest.placeholders import find_placeholders
from digest.settings import Settings
from digest.signing import DkimSigner
from digest.store import schema, stats

MIN_SECRET_CHARS = 32
WEAK_SECRETS = ("changeme", "change-me", "secret", "insecure-development-key", "password")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def check_secret(settings: Settings) -> Check:
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if settings.mode in ("dev", "demo") and not key:
        return Check("secret", True, f"{settings.mode} mode: fixed development key")
    if not key:
        return Check("secret", False, "DIGEST_SECRET_KEY is not set", _SECRET_FIX)
    if len(key) < MIN_SECRET_CHARS or key.lower() in WEAK_SECRETS:
        return Check("secret", False, f"DIGEST_SECRET_KEY is weak ({len(key)} chars)", _SECRET_FIX)
    return Check("secret", True, f"set ({len(key)} chars)")  # never the key itself


_SECRET_FIX = (
    "set DIGEST_SECRET_KEY to a random value of 32+ characters, e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
)


def check_base_url(settings: Settings) -> Check:
    url = settings.web.base_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Check("base URL", False, f"{url!r} is not an http(s) URL", _URL_FIX)
    if settings.mode == "production" and parts.scheme != "https":
        return Check("base URL", False, f"{url} is not https (links in every mail)", _URL_FIX)
    return Check("base URL", True, url)


_URL_FIX = "set DIGEST_BASE_URL to the public https:// address of `digest serve`"


def check_from(settings: Settings) -> Check:
    _, address = parseaddr(settings.email.from_address)
    try:
        normalise_address(address)
    except ValueError as exc:
        reason = str(exc).removeprefix(f"{address.strip()!r}: ")  # the whole header is shown
        return Check(
            "From address",
            False,
            f"{settings.email.from_address!r}: {reason}",
            'set DIGEST_FROM to e.g. "Trending Papers <digest@your-domain>"',
        )
    return Check("From address", True, settings.email.from_address)


def check_placeholders(settings: Settings) -> list[Check]:
    """One failing line per setting still at its shipped example value (production only)."""
    found = find_placeholders(settings)
    if settings.mode != "production":
        note = f" ({len(found)} example defaults in use)" if found else ""
        return [Check("placeholders", True, f"{settings.mode} mode: allowed{note}")]
    if not found:
        return [
            Check(
                "placeholders",
                True,
                "no example.com address, sample postal address or local base URL",
            )
        ]
    return [Check(p.setting, False, f"{p.value!r} is a placeholder", p.fix) for p in found]


def check_database(settings: Settings) -> Check:
    try:
        with schema.probe(settings.database_url) as tx:
            revision = schema.revision(tx, settings.database_url)
        head = schema.head()
    except Exception as exc:  # any driver error is one line
        return Check(
            "database",
            False,
            f"unreachable: {_one_line(exc.__cause__ or exc)}",
            "check DIGEST_DATABASE_URL and that the server is running",
        )
    if revision is None:
        return Check("database", False, "reachable, not initialised", "run `digest init`")
    if revision != head:
        return Check(
            "database",
            False,
            f"at revision {revision}, newest is {head}",
            "run `digest db upgrade`",
        )
    return Check("database", True, f"reachable, at the newest revision ({head})")


async def _smtp_probe(settings: Settings) -> str:
    s = settings.smtp
    client = aiosmtplib.SMTP(
        hostname=s.host,
        port=s.port,
        local_hostname=s.local_hostname,
        timeout=min(s.timeout_s, 10.0),
        use_tls=s.tls == "tls",
        start_tls=False,
        tls_context=client_context(s),
    )
    await client.connect()
    steps = ["connected"]
    try:
        await client.ehlo()
        if s.tls == "starttls":
            await client.starttls()
            steps.append("STARTTLS")
        elif s.tls == "tls":
            steps.append("TLS")
        if s.username:
            await client.login(s.username, s.password.get_secret_value() if s.password else "")
            steps.append("AUTH ok")
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()
    return ", ".join(steps)


def check_smtp(settings: Settings) -> Check:
    where = f"{settings.smtp.host}:{settings.smtp.port} (tls={settings.smtp.tls})"
    try:
        detail = asyncio.run(_smtp_probe(settings))
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Check(
            "SMTP relay",
            False,
            f"{where}: AUTH refused ({exc.code})",
            "check DIGEST_SMTP_USERNAME / DIGEST_SMTP_PASSWORD",
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Check(
            "SMTP relay",
            False,
            f"{where}: {_one_line(exc)}",
            "check DIGEST_SMTP_HOST, DIGEST_SMTP_PORT and DIGEST_SMTP_TLS, and that the relay "
            "accepts connections from this host",
        )
    return Check("SMTP relay", True, f"{where}: {detail} (nothing sent)")


def check_dkim(settings: Settings) -> Check:
    e = settings.email
    given = [e.dkim_domain, e.dkim_selector, e.dkim_key_path]
    if not any(given):
        return Check("DKIM", True, "not configured (digests are sent unsigned)")
    fix = "set email.dkim_domain, dkim_selector and dkim_key_path (a readable PEM private key)"
    if not all(given):
        return Check("DKIM", False, "partly configured: domain, selector and key are needed", fix)
    assert e.dkim_domain and e.dkim_selector and e.dkim_key_path
    try:
        DkimSigner.from_file(
            domain=e.dkim_domain, selector=e.dkim_selector, key_path=e.dkim_key_path
        )
    except Exception as exc:  # unreadable file, not a PEM key
        return Check("DKIM", False, f"key {e.dkim_key_path}: {_one_line(exc)}", fix)
    return Check("DKIM", True, f"d={e.dkim_domain} s={e.dkim_selector}, key readable")


def check_sources(settings: Settings) -> list[Check]:
    enabled = [s for s in settings.sources if s.enabled]
    if not enabled:
        return [Check("sources", False, "no source enabled", "add [[sources]] to your config")]
    try:
        with schema.probe(settings.database_url) as tx:
            states = {f.source: f for f in stats.feed_states(tx)}
    except Exception as exc:
        return [
            Check(
                "sources",
                False,
                f"cannot read fetch state: {_one_line(exc)}",
                "fix the database first",
            )
        ]
    checks = []
    for source in enabled:
        state = states.get(source.name)
        name = f"source {source.name}"
        if state is None or state.last_success_at is None:
            checks.append(
                Check(name, False, "never fetched", f"run `digest fetch --source {source.name}`")
            )
        elif state.last_status == "failed":
            # Cached papers keep editions going, so this passes; the detail says what to fix.
            checks.append(
                Check(
                    name,
                    True,
                    f"last fetch failed ({(state.last_error or '')[:100]}); using papers cached "
                    f"at {state.last_success_at:%Y-%m-%d %H:%M} UTC; check {source.url}",
                )
            )
        else:
            checks.append(
                Check(
                    name, True, f"{state.last_status} at {state.last_success_at:%Y-%m-%d %H:%M} UTC"
                )
            )
    return checks


CHECKS: tuple[Callable[[Settings], Check | list[Check]], ...] = (
    check_secret,
    check_base_url,
    check_from,
    check_placeholders,
    check_database,
    check_smtp,
    check_dkim,
    check_sources,
)


def run_checks(settings: Settings) -> list[Check]:
    results: list[Check] = []
    for check in CHECKS:
        outcome = check(settings)
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results
