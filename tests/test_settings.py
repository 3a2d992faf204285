"""Settings load from the shipped TOML, then DIGEST_CONFIG, then DIGEST_* variables, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.settings import DEFAULT_CONFIG, Settings, SettingsError, load_settings

DEV = {"DIGEST_MODE": "dev"}


def test_defaults_load_from_the_shipped_toml() -> None:
    settings = load_settings(None, DEV)

    assert settings.database_url == "sqlite:///digest.db"
    assert settings.smtp.tls == "none"
    assert [s.kind for s in settings.sources] == ["arxiv-rss", "hf-daily"]


def test_every_field_is_documented_in_default_toml() -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        if name in ("templates_dir", "secret_key", "sources"):
            continue
        section = field.annotation
        if isinstance(section, type) and hasattr(section, "model_fields"):
            assert f"[{name}]" in text
            for sub in section.model_fields:
                if sub in ("username", "password"):
                    continue
                documented = f"\n{sub} = " in text or f"\n# {sub} = " in text
                assert documented, f"{name}.{sub} missing from default.toml"
        else:
            assert f"\n{name} = " in text, f"{name} missing from default.toml"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text('[smtp]\nhost = "relay.from-file"\nport = 2525\n', encoding="utf-8")

    settings = load_settings(
        extra, {**DEV, "DIGEST_SMTP_HOST": "relay.from-env", "DIGEST_FROM": "Me <me@x.org>"}
    )

    assert settings.smtp.host == "relay.from-env"
    assert settings.smtp.port == 2525
    assert settings.email.from_address == "Me <me@x.org>"


def test_contract_variables_map_onto_settings() -> None:
    settings = load_settings(
        None,
        {
            "DIGEST_MODE": "production",
            "DIGEST_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "DIGEST_SMTP_PORT": "587",
            "DIGEST_SMTP_USERNAME": "user",
            "DIGEST_SMTP_PASSWORD": "hunter2",
            "DIGEST_SMTP_TLS": "starttls",
            "DIGEST_BASE_URL": "https://digest.example.org",
            "DIGEST_SECRET_KEY": "s3cret",
        },
    )

    assert settings.smtp.port == 587
    assert settings.smtp.tls == "starttls"
    assert settings.web.base_url == "https://digest.example.org"
    assert "hunter2" not in repr(settings)
    assert "s3cret" not in repr(settings)


def test_config_path_variable_and_test_database_variable_are_not_settings(tmp_path: Path) -> None:
    extra = tmp_path / "x.toml"
    extra.write_text("[ranking]\npapers_per_digest = 5\n", encoding="utf-8")

    settings = load_settings(
        None,
        {**DEV, "DIGEST_CONFIG": str(extra), "DIGEST_TEST_DATABASE_URL": "postgresql://x/y"},
    )

    assert settings.ranking.papers_per_digest == 5


def test_platform_database_url_is_honoured_when_ours_is_unset() -> None:
    assert load_settings(None, {**DEV, "DATABASE_URL": "sqlite:///p.db"}).database_url == (
        "sqlite:///p.db"
    )
    both = {**DEV, "DATABASE_URL": "sqlite:///p.db", "DIGEST_DATABASE_URL": "sqlite:///d.db"}
    assert load_settings(None, both).database_url == "sqlite:///d.db"


def test_a_typo_in_an_environment_variable_is_an_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="DIGEST_SMTP_HOTS: unknown setting"):
        load_settings(None, {**DEV, "DIGEST_SMTP_HOTS": "x"})


def test_a_typo_in_a_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    extra = tmp_path / "typo.toml"
    extra.write_text("[smtp]\nhots = 'x'\n", encoding="utf-8")

    with pytest.raises(SettingsError) as caught:
        load_settings(extra, DEV)

    assert str(caught.value) == f"smtp.hots: unknown setting ({extra})"


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"smtp.port: .*\(DIGEST_SMTP_PORT\)"):
        load_settings(None, {**DEV, "DIGEST_SMTP_PORT": "not-a-port"})


def test_a_missing_secret_outside_dev_is_a_startup_error() -> None:
    with pytest.raises(SettingsError, match="DIGEST_SECRET_KEY is not set"):
        load_settings(None, {})


def test_command_line_overrides_win() -> None:
    settings = load_settings(
        None, {**DEV, "DIGEST_RANKING_PAPERS_PER_DIGEST": "4"}, {"ranking.papers_per_digest": "6"}
    )

    assert settings.ranking.papers_per_digest == 6
