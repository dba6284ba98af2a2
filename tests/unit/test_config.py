"""Settings from the environment, `.env` and `subdesk.toml`; secrets stay secret."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.domain import Level, Severity
from bot.wiring.config import DEFAULT_DATABASE_URL, Settings
from bot.wiring.demo import DEMO_MAIN
from tests.harness import Harness

TOKEN = "xoxb-111-222-SeCrEtToKeN"
SECRETS = {
    "SUBDESK_API_TOKEN": "api-SeCrEt-1",
    "SUBDESK_SMTP_URL": "smtp://bot:SmTpPaSs@mail.x.test",
    "SLACK_BOT_TOKEN": TOKEN,
    "SLACK_SIGNING_SECRET": "SiGnInGsEcReT",
    "SLACK_APP_TOKEN": "xapp-AppSeCrEt",
    "SLACK_CLIENT_SECRET": "ClIeNtSeCrEt",
    "SUBDESK_SLACK_TOKEN_KEY": "FeRnEtKeYSeCrEt=",
    "MATRIX_PASSWORD": "MxPaSsWoRd",
    "MATRIX_ACCESS_TOKEN": "syt_MxToKeN",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and no Subdesk, Slack or Matrix variables."""
    for name in list(os.environ):
        if name.startswith(("SUBDESK_", "SLACK_", "MATRIX_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.nodb
def test_defaults(clean_env: Path) -> None:
    """With nothing configured: SQLite in the working directory, no chat platform."""
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 3000)
    assert not settings.chat_platform_configured
    assert settings.technical_limit(Level.BASIC) == 1
    assert settings.technical_limit(Level.STANDARD) == 2
    assert settings.technical_limit(Level.PREMIUM) == 5
    assert settings.link_code_ttl_minutes == 15 and settings.link_code_attempts == 5
    assert settings.sla_target(Level.PREMIUM, Severity.SEV1).total_seconds() == 2 * 3600
    assert settings.sla_coverage(Level.PREMIUM, Severity.SEV1) is None


@pytest.mark.nodb
def test_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented variable names are read from the environment."""
    monkeypatch.setenv("SUBDESK_DATABASE_URL", "postgresql://db.internal/subdesk")
    monkeypatch.setenv("SUBDESK_HTTP_PORT", "8080")
    monkeypatch.setenv("SUBDESK_TRIAGE_CHANNELS", "slack:C0TRIAGE, matrix:!triage:vendor.test")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SUBDESK_TECHNICAL_LIMITS", '{"basic": 2, "standard": 3, "premium": 9}')
    settings = Settings()
    assert settings.database_url == "postgresql://db.internal/subdesk"
    assert settings.http_port == 8080
    assert settings.triage_channels == ("slack:C0TRIAGE", "matrix:!triage:vendor.test")
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == TOKEN
    assert settings.chat_platform_configured
    assert settings.technical_limit(Level.BASIC) == 2


@pytest.mark.nodb
def test_dotenv_file(clean_env: Path) -> None:
    """A `.env` in the working directory sets the same variables."""
    (clean_env / ".env").write_text(
        "SUBDESK_MAIL_FROM='Support <help@vendor.test>'\n"
        "SUBDESK_BILLING_CHANNELS=slack:C0BILL\n"
        "MATRIX_HOMESERVER=https://matrix.vendor.test\n"
        "MATRIX_USER_ID=@subdesk:vendor.test\n"
    )
    settings = Settings()
    assert settings.mail_from == "Support <help@vendor.test>"
    assert settings.billing_channels == ("slack:C0BILL",)
    assert not settings.matrix_enabled  # no password nor access token: not configured
    with (clean_env / ".env").open("a") as env:
        env.write("MATRIX_PASSWORD=correct horse\n")
    settings = Settings()
    assert settings.matrix_enabled and settings.chat_platform_configured


@pytest.mark.nodb
def test_toml_file(clean_env: Path) -> None:
    """`subdesk.toml` accepts the variable names and the lower-case field names."""
    (clean_env / "subdesk.toml").write_text(
        'SUBDESK_HTTP_PORT = 4000\n'
        'mail_from = "Toml <toml@vendor.test>"\n'
        'triage_channels = ["slack:C0TOML"]\n'
        'outbox_max_attempts = 3\n'
        '[technical_limits]\nbasic = 4\n'
    )
    settings = Settings()
    assert settings.http_port == 4000
    assert settings.mail_from == "Toml <toml@vendor.test>"
    assert settings.triage_channels == ("slack:C0TOML",)
    assert settings.outbox_max_attempts == 3
    assert settings.technical_limit(Level.BASIC) == 4
    assert settings.technical_limit(Level.PREMIUM) == 5, "unlisted levels keep their default"


@pytest.mark.nodb
def test_precedence_environment_over_dotenv_over_toml(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment wins over `.env`, which wins over `subdesk.toml`."""
    (clean_env / "subdesk.toml").write_text(
        'SUBDESK_HTTP_PORT = 1111\nSUBDESK_HTTP_HOST = "toml.host"\nlog_level = "DEBUG"\n')
    (clean_env / ".env").write_text("SUBDESK_HTTP_PORT=2222\nSUBDESK_HTTP_HOST=dotenv.host\n")
    monkeypatch.setenv("SUBDESK_HTTP_PORT", "3333")
    settings = Settings()
    assert settings.http_port == 3333
    assert settings.http_host == "dotenv.host"
    assert settings.log_level == "DEBUG"
    assert Settings(http_port=4444).http_port == 4444, "explicit arguments win over all"


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", ()),
        ("slack:C1", ("slack:C1",)),
        (" slack:C1 ,, matrix:!room:server.org ,", ("slack:C1", "matrix:!room:server.org")),
        ("console:triage", ("console:triage",)),
    ],
)
def test_channel_lists(clean_env: Path, monkeypatch: pytest.MonkeyPatch, raw: str,
                       parsed: tuple[str, ...]) -> None:
    """Comma-separated channel lists are split and trimmed; Matrix room colons survive."""
    monkeypatch.setenv("SUBDESK_TRIAGE_CHANNELS", raw)
    assert Settings().triage_channels == parsed


@pytest.mark.nodb
@pytest.mark.parametrize("raw", ["irc:#support", "slack:", "C0TRIAGE", "slack:C1,telegram:42"])
def test_bad_channels_are_refused_by_name(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """A channel that is not slack:ID or matrix:!room:server is a configuration error."""
    monkeypatch.setenv("SUBDESK_BILLING_CHANNELS", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "must look like slack:CHANNEL_ID or matrix:!room:server" in str(caught.value)


@pytest.mark.nodb
@pytest.mark.parametrize("blank", ["", "   ", "\u3000"])
def test_a_blank_secret_is_unset(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                  blank: str) -> None:
    """`SUBDESK_API_TOKEN=` (or spaces) leaves the API off, never open to an empty token;
    likewise every other secret, so an empty SLACK_SIGNING_SECRET cannot check (and pass)
    requests signed with an empty key: Slack over HTTP is refused until it is set."""
    from adapters.slack.app import setup_of
    from bot.services.base import ServiceError

    for name in SECRETS:
        monkeypatch.setenv(name, blank)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    settings = Settings()
    assert settings.api_token is None and settings.slack_signing_secret is None
    assert settings.smtp_url is None and settings.matrix_password is None
    assert settings.slack_bot_token is not None
    with pytest.raises(ServiceError, match="SLACK_SIGNING_SECRET is needed"):
        setup_of(settings)


@pytest.mark.nodb
def test_secrets_print_masked(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens, passwords and the SMTP URL never appear in repr, str or JSON dumps."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SUBDESK_DATABASE_URL", "postgresql://subdesk:DbPaSsWoRd@db/subdesk")
    settings = Settings()
    shown = [repr(settings), str(settings)]
    dumped = settings.model_dump_json()
    for value in SECRETS.values():
        secret = value.split(":")[-1].split("@")[0] if "://" in value else value
        for text in shown:
            assert secret not in text
        assert secret not in dumped
    for text in shown:
        assert "DbPaSsWoRd" not in text
    assert settings.database_path_hint() == "postgresql://subdesk:***@db/subdesk"
    assert settings.smtp_url is not None
    assert settings.smtp_url.get_secret_value() == SECRETS["SUBDESK_SMTP_URL"]


@pytest.mark.nodb
def test_invalid_values_do_not_echo_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configuration error elsewhere does not print the secrets next to it."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SUBDESK_HTTP_PORT", "not-a-port")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "http_port" in str(caught.value) or "SUBDESK_HTTP_PORT" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_handling_commands_with_secrets_logs_none_of_them(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Commands carrying a secret-looking token, including ones that fail in the database,
    leave no trace of it in the logs."""
    caplog.set_level(logging.DEBUG)
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    lines = [
        f"/contacts request-technical nia@demo.test {TOKEN}",
        f"/contacts set administrative bea@demo.test {TOKEN} " + "x" * 300,
        f"/contacts request-technical ola@demo.test {TOKEN} " + "y" * 300,
        f"/subdesk deny 1 {TOKEN}",
        f"/billing question {TOKEN}",
        f"/ticket new sev3 {TOKEN}",
        f"/nonsense {TOKEN}",
        f"/contacts set main {TOKEN}",
    ]
    for line in lines:
        reply = await ana.send(line)
        assert "Traceback" not in reply.message.text
    too_long = await ana.send(f"/contacts set administrative bea@demo.test {'z' * 300}")
    assert not too_long.ok and "NAME is too long" in too_long.message.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in (record.exc_text or "")
    assert TOKEN not in caplog.text


async def test_database_errors_carry_no_parameters(harness: Harness) -> None:
    """A failing statement's error names the statement but not the values bound to it."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as caught:
        async with harness.app.db.transaction() as session:
            await session.execute(text("SELECT no_such_column FROM staff WHERE email = :e"),
                                  {"e": TOKEN})
    assert TOKEN not in str(caught.value)


@pytest.mark.nodb
@pytest.mark.parametrize("url", ["sqlite:///subdesk.db", "sqlite:////var/lib/s.db",
                                 "postgresql://u:p@db/subdesk", "postgres://db/x",
                                 "postgresql+asyncpg://db/x"])
def test_supported_database_urls(clean_env: Path, url: str) -> None:
    """SQLite and PostgreSQL URLs are accepted."""
    assert Settings(database_url=url).database_url == url


@pytest.mark.nodb
def test_a_postgresql_url_takes_libpq_ssl_modes(clean_env: Path) -> None:
    """`?sslmode=require`, as managed PostgreSQL services write their URLs, is asyncpg's
    `ssl=require`; an option asyncpg cannot take is refused by name, not by value."""
    from storage.db import async_url

    url = "postgresql://app:s3cret@db.internal/subdesk?sslmode=require"
    assert Settings(database_url=url).database_url == url
    assert dict(async_url(url).query) == {"ssl": "require"}
    with pytest.raises(ValidationError, match="query option 'application_name'") as refused:
        Settings(database_url="postgresql://app:s3cret@db/x?application_name=subdesk")
    assert "s3cret" not in str(refused.value)


async def test_sslmode_disable_connects(db_url: str) -> None:
    """The same URL with `sslmode=disable` reaches the test PostgreSQL (it was a TypeError
    from the driver before it was translated)."""
    from storage.db import Database

    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (SUBDESK_TEST_DATABASE_URL)")
    separator = "&" if "?" in db_url else "?"
    db = Database(f"{db_url}{separator}sslmode=disable")
    try:
        await db.ping()
    finally:
        await db.dispose()


@pytest.mark.nodb
@pytest.mark.parametrize("url", ["sqlite:relative.db", "sqlite://user@/x.db"])
def test_misshapen_sqlite_urls_are_refused(clean_env: Path, url: str) -> None:
    """A SQLite URL without its three slashes is a configuration error saying the form."""
    with pytest.raises(ValidationError, match="sqlite:///relative/path"):
        Settings(database_url=url)


@pytest.mark.nodb
@pytest.mark.parametrize("url", ["mysql://db/x", "subdesk.db", "", "http://db"])
def test_unsupported_database_urls_are_refused(clean_env: Path, url: str) -> None:
    """Anything but SQLite or PostgreSQL is a configuration error naming the setting."""
    with pytest.raises(ValidationError, match="sqlite:/// or postgresql://"):
        Settings(database_url=url)


@pytest.mark.nodb
def test_vendor_domains(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SUBDESK_VENDOR_DOMAINS is a comma-separated list of domains; a wrong one is named."""
    monkeypatch.setenv("SUBDESK_VENDOR_DOMAINS", " Vendor.test, @corp.example ,")
    assert Settings().vendor_domains == ("vendor.test", "corp.example")
    monkeypatch.setenv("SUBDESK_VENDOR_DOMAINS", "admin@vendor.test")
    with pytest.raises(ValidationError, match="not an email domain"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("SUBDESK_REMINDER_OFFSETS", "[-7, 99999999999]", "SUBDESK_REMINDER_OFFSETS.1"),
        ("SUBDESK_RENEWAL_OFFSETS", "[60, 0]", "SUBDESK_RENEWAL_OFFSETS.1"),
        ("SUBDESK_SLA_WARNING_RATIO", "1.5", "SUBDESK_SLA_WARNING_RATIO"),
        ("SUBDESK_PENDING_SOLVE_DAYS", "99999999999", "SUBDESK_PENDING_SOLVE_DAYS"),
        ("SUBDESK_HTTP_PORT", "70000", "SUBDESK_HTTP_PORT"),
        ("SUBDESK_HTTP_PORT", "-1", "SUBDESK_HTTP_PORT"),
        ("SUBDESK_OUTBOX_MAX_ATTEMPTS", "-3", "SUBDESK_OUTBOX_MAX_ATTEMPTS"),
        ("SUBDESK_OUTBOX_POLL_INTERVAL", "0", "SUBDESK_OUTBOX_POLL_INTERVAL"),
        ("SUBDESK_LINK_CODE_ATTEMPTS", "0", "SUBDESK_LINK_CODE_ATTEMPTS"),
        ("SUBDESK_LOG_LEVEL", "BOGUS", "SUBDESK_LOG_LEVEL"),
        ("SUBDESK_TECHNICAL_LIMITS", '{"basic": -5}', "SUBDESK_TECHNICAL_LIMITS"),
        ("SUBDESK_TECHNICAL_LIMITS", '{"gold": 3}', "SUBDESK_TECHNICAL_LIMITS"),
        ("SUBDESK_SLA_MINUTES", '{"standard": {"sev3": 99999999999999999999}}',
         "SUBDESK_SLA_MINUTES"),
        ("SUBDESK_SLA_MINUTES", '{"standard": {"sev3": -60}}', "SUBDESK_SLA_MINUTES"),
        ("SUBDESK_SLA_MINUTES", '{"standard": {"sev9": 60}}', "SUBDESK_SLA_MINUTES"),
        ("SUBDESK_SLA_ALWAYS", '{"premium": ["sev7"]}', "SUBDESK_SLA_ALWAYS"),
    ],
)
def test_schedule_settings_are_bounded(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, needle: str
) -> None:
    """Offsets that would overflow date arithmetic in the sweeps, and a warning ratio outside
    (0, 1), are refused when settings load, naming the setting."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    shown = "; ".join(".".join(str(p) for p in e["loc"]) for e in caught.value.errors())
    assert needle in shown


@pytest.mark.nodb
@pytest.mark.parametrize(("value", "accepted"), [
    ("0", 0), ("16", 16), ("17", None), ("-1", None), ("two", None)])
def test_slack_workers_are_bounded(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, value: str, accepted: int | None
) -> None:
    """`SUBDESK_SLACK_WORKERS` is 1 unless set, 0 to 16; anything else is one error that
    names the setting."""
    assert Settings().slack_workers == 1
    monkeypatch.setenv("SUBDESK_SLACK_WORKERS", value)
    if accepted is not None:
        assert Settings().slack_workers == accepted
        return
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    assert error["loc"] == ("SUBDESK_SLACK_WORKERS",)
