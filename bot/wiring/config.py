"""Settings from the environment, a `.env` file and `subdesk.toml` (SPEC §6).

Every variable of the contract keeps its documented name; `subdesk.toml` accepts the same
names or their lower-case field names. Secrets are `SecretStr`, so they print as `**********`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.business_time import Hours
from bot.domain import Level, Severity

DEFAULT_DATABASE_URL = "sqlite:///subdesk.db"
SMTP_SCHEMES = ("smtp", "smtps", "smtp+plain", "smtp+starttls")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVELS = tuple(level.value for level in Level)
_SEVERITIES = tuple(severity.value for severity in Severity)
_YEAR_MINUTES = 366 * 24 * 60


def _known(name: str, known: tuple[str, ...], what: str) -> None:
    if name not in known:
        raise ValueError(f"{name[:20]!r} is not a {what} ({', '.join(known)})")


_ENCODE_HINT = (
    "percent-encode special characters in the user name and password "
    "(# as %23, / as %2F, ? as %3F, @ as %40, % as %25, : as %3A)"
)


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why `url` is not a usable server URL with credentials, without quoting any of it
    (it may hold a password); None when it is fine."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"is not a valid URL; {_ENCODE_HINT}"
    if parts.scheme.lower() not in schemes:
        return f"must start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname or "@" in parts.hostname or parts.fragment or parts.query:
        return f"is not a valid URL; {_ENCODE_HINT}"
    if parts.path not in ("", "/"):
        return f"takes no path; {_ENCODE_HINT}"
    return None


def _env(name: str, field_name: str) -> AliasChoices:
    return AliasChoices(name, field_name)


DEFAULT_TECHNICAL_LIMITS: dict[str, int] = {"basic": 1, "standard": 2, "premium": 5}

# First- and next-response targets in minutes of covered time, by level then severity: business
# minutes (a business day is one day of the level's hours, 8 h by default), or plain minutes
# where the level covers the severity 24×7.
DEFAULT_SLA_MINUTES: dict[str, dict[str, int]] = {
    "basic": {"sev1": 240, "sev2": 480, "sev3": 960, "sev4": 1440},
    "standard": {"sev1": 120, "sev2": 240, "sev3": 480, "sev4": 960},
    "premium": {"sev1": 120, "sev2": 240, "sev3": 480, "sev4": 960},
}
# Business hours by level, in the organization's timezone.
DEFAULT_SLA_HOURS: dict[str, str] = {
    "basic": "mon-fri 09:00-17:00",
    "standard": "mon-fri 09:00-17:00",
    "premium": "mon-fri 09:00-17:00",
}
# Severities a level covers round the clock (24×7).
DEFAULT_SLA_ALWAYS: dict[str, tuple[str, ...]] = {"premium": ("sev1", "sev2")}

# Invoice reminder stages in days relative to the due date (negative: before).
DEFAULT_REMINDER_OFFSETS: tuple[int, ...] = (-7, 0, 7, 14, 30)
DEFAULT_RENEWAL_OFFSETS: tuple[int, ...] = (60, 30, 7)


class Settings(BaseSettings):
    """Runtime configuration. Construct with keyword arguments in tests."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        toml_file="subdesk.toml",
        hide_input_in_errors=True,  # values may be secrets: errors name the setting only
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=_env("SUBDESK_DATABASE_URL", "database_url")
    )
    http_host: str = Field("127.0.0.1", validation_alias=_env("SUBDESK_HTTP_HOST", "http_host"))
    http_port: int = Field(3000, ge=0, le=65535,  # 0: any free port
                           validation_alias=_env("SUBDESK_HTTP_PORT", "http_port"))
    api_token: SecretStr | None = Field(
        None, validation_alias=_env("SUBDESK_API_TOKEN", "api_token")
    )
    smtp_url: SecretStr | None = Field(None, validation_alias=_env("SUBDESK_SMTP_URL", "smtp_url"))
    mail_from: str = Field(
        "Subdesk <subdesk@localhost>", validation_alias=_env("SUBDESK_MAIL_FROM", "mail_from")
    )
    triage_channels: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=_env("SUBDESK_TRIAGE_CHANNELS", "triage_channels")
    )
    billing_channels: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=_env("SUBDESK_BILLING_CHANNELS", "billing_channels")
    )
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_client_id: str | None = Field(
        None, validation_alias=_env("SLACK_CLIENT_ID", "slack_client_id")
    )
    slack_client_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_CLIENT_SECRET", "slack_client_secret")
    )
    # Fernet keys (comma-separated, the first seals) for the tokens of OAuth installs.
    slack_token_key: SecretStr | None = Field(
        None, validation_alias=_env("SUBDESK_SLACK_TOKEN_KEY", "slack_token_key")
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", validation_alias=_env("SLACK_API_URL", "slack_api_url")
    )
    # Worker processes that run the Slack requests `subdesk run` acknowledged, so the process
    # that acknowledges does little else; 0 runs them in that process (small installs).
    slack_workers: int = Field(
        1, ge=0, le=16, validation_alias=_env("SUBDESK_SLACK_WORKERS", "slack_workers")
    )
    matrix_homeserver: str | None = Field(
        None, validation_alias=_env("MATRIX_HOMESERVER", "matrix_homeserver")
    )
    matrix_user_id: str | None = Field(
        None, validation_alias=_env("MATRIX_USER_ID", "matrix_user_id")
    )
    matrix_password: SecretStr | None = Field(
        None, validation_alias=_env("MATRIX_PASSWORD", "matrix_password")
    )
    matrix_access_token: SecretStr | None = Field(
        None, validation_alias=_env("MATRIX_ACCESS_TOKEN", "matrix_access_token")
    )
    # Local state that is not the database's: the Matrix device and its encryption keys.
    data_dir: Path = Field(
        Path("subdesk-data"), validation_alias=_env("SUBDESK_DATA_DIR", "data_dir")
    )

    # Policy knobs (SPEC §2 defaults, configurable).
    technical_limits: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_TECHNICAL_LIMITS),
        validation_alias=_env("SUBDESK_TECHNICAL_LIMITS", "technical_limits"),
    )
    sla_minutes: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SLA_MINUTES.items()},
        validation_alias=_env("SUBDESK_SLA_MINUTES", "sla_minutes"),
    )
    # Next-response targets (same shape); a level or severity not named takes its first-
    # response target.
    sla_next_minutes: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        validation_alias=_env("SUBDESK_SLA_NEXT_MINUTES", "sla_next_minutes"),
    )
    sla_hours: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_HOURS),
        validation_alias=_env("SUBDESK_SLA_HOURS", "sla_hours"),
    )
    sla_always: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_ALWAYS),
        validation_alias=_env("SUBDESK_SLA_ALWAYS", "sla_always"),
    )
    # Auto-close: a ticket pending on the customer is reminded, then solved, after these many
    # business days; a solved ticket closes after these many days.
    pending_reminder_days: int = Field(
        3, ge=1, le=365,
        validation_alias=_env("SUBDESK_PENDING_REMINDER_DAYS", "pending_reminder_days"),
    )
    pending_solve_days: int = Field(
        7, ge=1, le=365, validation_alias=_env("SUBDESK_PENDING_SOLVE_DAYS", "pending_solve_days")
    )
    solved_close_days: int = Field(
        4, ge=1, le=365, validation_alias=_env("SUBDESK_SOLVED_CLOSE_DAYS", "solved_close_days")
    )
    sla_warning_ratio: float = Field(
        0.8, gt=0, lt=1, validation_alias=_env("SUBDESK_SLA_WARNING_RATIO", "sla_warning_ratio")
    )
    # Days from the due date (negative: before it) and days before a subscription ends;
    # bounded so date arithmetic in the sweeps can never overflow.
    reminder_offsets: tuple[Annotated[int, Field(ge=-3650, le=3650)], ...] = Field(
        DEFAULT_REMINDER_OFFSETS,
        validation_alias=_env("SUBDESK_REMINDER_OFFSETS", "reminder_offsets"),
    )
    renewal_offsets: tuple[Annotated[int, Field(ge=1, le=3650)], ...] = Field(
        DEFAULT_RENEWAL_OFFSETS,
        validation_alias=_env("SUBDESK_RENEWAL_OFFSETS", "renewal_offsets"),
    )
    reminder_time: dt.time = Field(
        dt.time(9, 0), validation_alias=_env("SUBDESK_REMINDER_TIME", "reminder_time")
    )
    # Invoices a reminder sweep claims per transaction (one statement each; the dispatcher
    # queues messages for at most 1,000 claims per transaction).
    reminder_batch: int = Field(
        50_000, ge=1, validation_alias=_env("SUBDESK_REMINDER_BATCH", "reminder_batch")
    )
    attachment_max_bytes: int = Field(
        10 * 1024 * 1024,
        validation_alias=_env("SUBDESK_ATTACHMENT_MAX_BYTES", "attachment_max_bytes"),
    )
    attachment_types: tuple[str, ...] = Field(
        (
            "text/plain",
            "text/csv",
            "application/json",
            "application/pdf",
            "application/zip",
            "application/gzip",
            "image/png",
            "image/jpeg",
            "application/octet-stream",
        ),
        validation_alias=_env("SUBDESK_ATTACHMENT_TYPES", "attachment_types"),
    )

    # Outbox dispatcher.
    outbox_max_attempts: int = Field(
        8, ge=1, le=1000,
        validation_alias=_env("SUBDESK_OUTBOX_MAX_ATTEMPTS", "outbox_max_attempts")
    )
    outbox_base_delay: float = Field(
        2.0, ge=0, le=86_400,
        validation_alias=_env("SUBDESK_OUTBOX_BASE_DELAY", "outbox_base_delay")
    )
    outbox_max_delay: float = Field(
        900.0, ge=0, le=86_400,
        validation_alias=_env("SUBDESK_OUTBOX_MAX_DELAY", "outbox_max_delay")
    )
    outbox_poll_interval: float = Field(
        0.5, gt=0, le=3600,
        validation_alias=_env("SUBDESK_OUTBOX_POLL_INTERVAL", "outbox_poll_interval")
    )
    outbox_per_target_interval: float = Field(
        1.0, ge=0, le=3600,
        validation_alias=_env("SUBDESK_OUTBOX_PER_TARGET_INTERVAL", "outbox_per_target_interval"),
    )
    # Deliveries one process (replica) has under way at once, each the first message of its
    # line (as many more may be claimed, waiting for their time); with several replicas the
    # lines spread across them.
    outbox_concurrency: int = Field(
        200, ge=1, le=10_000,
        validation_alias=_env("SUBDESK_OUTBOX_CONCURRENCY", "outbox_concurrency"),
    )
    # Seconds a claim holds a message; its holder renews it while delivering, and a message
    # whose holder died is taken by another replica once it runs out.
    outbox_lease: float = Field(
        60.0, gt=0, validation_alias=_env("SUBDESK_OUTBOX_LEASE", "outbox_lease")
    )
    link_code_ttl_minutes: int = Field(
        15, ge=1, le=10_080,
        validation_alias=_env("SUBDESK_LINK_CODE_TTL_MINUTES", "link_code_ttl_minutes")
    )
    link_code_attempts: int = Field(
        5, ge=1, le=100,
        validation_alias=_env("SUBDESK_LINK_CODE_ATTEMPTS", "link_code_attempts")
    )
    # Link-code limits, per chat account and per contact (held in the database).
    link_code_cooldown_seconds: int = Field(
        60, ge=0,
        validation_alias=_env("SUBDESK_LINK_CODE_COOLDOWN_SECONDS", "link_code_cooldown_seconds"),
    )
    link_codes_per_hour: int = Field(
        3, ge=1, validation_alias=_env("SUBDESK_LINK_CODES_PER_HOUR", "link_codes_per_hour")
    )
    link_lockout_minutes: int = Field(
        15, ge=1, validation_alias=_env("SUBDESK_LINK_LOCKOUT_MINUTES", "link_lockout_minutes")
    )
    # Email domains of the vendor's own people: never a customer contact's.
    vendor_domains: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=_env("SUBDESK_VENDOR_DOMAINS", "vendor_domains")
    )
    log_level: str = Field("INFO", validation_alias=_env("SUBDESK_LOG_LEVEL", "log_level"))
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("SUBDESK_LOG_FORMAT", "log_format"))

    # Work one HTTP API request may ask for (bodies beyond these are refused whole).
    api_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024,
        validation_alias=_env("SUBDESK_API_MAX_BODY_BYTES", "api_max_body_bytes"),
    )
    api_max_organizations: int = Field(
        500, ge=1, validation_alias=_env("SUBDESK_API_MAX_ORGANIZATIONS", "api_max_organizations")
    )
    api_max_contacts: int = Field(
        50, ge=1, validation_alias=_env("SUBDESK_API_MAX_CONTACTS", "api_max_contacts")
    )
    api_max_invoices: int = Field(
        5000, ge=1, validation_alias=_env("SUBDESK_API_MAX_INVOICES", "api_max_invoices")
    )

    @field_validator("api_token", "smtp_url", "slack_bot_token", "slack_signing_secret",
                     "slack_app_token", "slack_client_id", "slack_client_secret",
                     "slack_token_key", "matrix_homeserver", "matrix_user_id",
                     "matrix_password", "matrix_access_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`SUBDESK_API_TOKEN=` (empty, or spaces) is unset, never a secret everybody knows:
        an empty signing secret or API token would let anyone in."""
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @field_validator("technical_limits")
    @classmethod
    def _check_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for level, limit in value.items():
            _known(level, _LEVELS, "level")
            if not 0 <= limit <= 1000:
                raise ValueError(f"{level[:20]}: {limit} is not between 0 and 1000")
        return value

    @field_validator("sla_minutes", "sla_next_minutes")
    @classmethod
    def _check_minutes(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for level, targets in value.items():
            _known(level, _LEVELS, "level")
            for severity, minutes in targets.items():
                _known(severity, _SEVERITIES, "severity")
                if not 1 <= minutes <= _YEAR_MINUTES:
                    raise ValueError(f"{level[:20]}.{severity[:20]}: {minutes} minutes is not "
                                     f"between 1 and {_YEAR_MINUTES} (a year)")
        return value

    @field_validator("sla_always")
    @classmethod
    def _check_always(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for level, severities in value.items():
            _known(level, _LEVELS, "level")
            for severity in severities:
                _known(severity, _SEVERITIES, "severity")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := url_problem(value.get_secret_value(), SMTP_SCHEMES)):
            raise ValueError(problem)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url_parses(cls, value: str) -> str:
        """A PostgreSQL URL holds a password: refuse what cannot be parsed without quoting it."""
        from sqlalchemy.engine import make_url

        if value.lower().startswith("sqlite"):
            scheme, sep, _ = value.partition(":///")
            if not sep or scheme.lower() not in ("sqlite", "sqlite+aiosqlite"):
                raise ValueError("a SQLite URL is sqlite:///relative/path or "
                                 "sqlite:////absolute/path")
            return value
        try:
            url = make_url(value)
        except Exception:  # the parser's messages quote the URL
            raise ValueError(f"is not a valid URL; {_ENCODE_HINT}") from None
        if url.host is not None and "@" in url.host:
            raise ValueError(f"is not a valid URL; {_ENCODE_HINT}")
        from storage.urls import pg_options

        pg_options(url.query)  # an option asyncpg cannot take is refused by name
        return value

    @field_validator("triage_channels", "billing_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("triage_channels", "billing_channels")
    @classmethod
    def _check_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            platform, _, target = channel.partition(":")
            if platform not in ("slack", "matrix", "console") or not target:
                raise ValueError(
                    f"channel {channel!r} must look like slack:CHANNEL_ID or matrix:!room:server"
                )
        return value

    @field_validator("sla_hours")
    @classmethod
    def _check_sla_hours(cls, value: dict[str, str]) -> dict[str, str]:
        for level, hours in value.items():
            if level not in {item.value for item in Level}:
                raise ValueError(f"{level!r} is not a level (basic, standard, premium)")
            Hours.parse(hours)
        return value

    @field_validator("vendor_domains", mode="before")
    @classmethod
    def _split_domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            return tuple(str(p).strip().lstrip("@").lower() for p in value if str(p).strip())
        return value

    @field_validator("vendor_domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for domain in value:
            if "." not in domain or any(ch in domain for ch in " @/:"):
                raise ValueError(f"{domain!r} is not an email domain like vendor.example")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )

    # Derived views --------------------------------------------------------------------

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None or self.slack_oauth

    @property
    def slack_oauth(self) -> bool:
        """Whether Slack workspaces install the app through OAuth (multi-workspace)."""
        return self.slack_client_id is not None or self.slack_client_secret is not None

    @property
    def matrix_enabled(self) -> bool:
        """A homeserver, the bot's user id and a credential (password or access token)."""
        return (self.matrix_homeserver is not None and self.matrix_user_id is not None
                and (self.matrix_password is not None or self.matrix_access_token is not None))

    @property
    def chat_platform_configured(self) -> bool:
        return self.slack_enabled or self.matrix_enabled

    def technical_limit(self, level: Level) -> int:
        return self.technical_limits.get(level.value, DEFAULT_TECHNICAL_LIMITS[level.value])

    def sla_target(self, level: Level, severity: Severity) -> dt.timedelta:
        minutes = self.sla_minutes.get(level.value, {}).get(
            severity.value, DEFAULT_SLA_MINUTES[level.value][severity.value]
        )
        return dt.timedelta(minutes=minutes)

    def sla_next_target(self, level: Level, severity: Severity) -> dt.timedelta:
        minutes = self.sla_next_minutes.get(level.value, {}).get(severity.value)
        return self.sla_target(level, severity) if minutes is None else dt.timedelta(
            minutes=minutes)

    def sla_coverage(self, level: Level, severity: Severity) -> Hours | None:
        """The hours a level's clock runs for a severity; None when covered 24×7."""
        if severity.value in self.sla_always.get(level.value, ()):
            return None
        return self.business_hours(level)

    def business_hours(self, level: Level) -> Hours:
        """A level's business hours (whatever it covers round the clock)."""
        return Hours.parse(self.sla_hours.get(level.value, DEFAULT_SLA_HOURS[level.value]))

    def database_path_hint(self) -> str:
        """The database URL with any password masked, for logs and banners."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except ArgumentError:
            return "(unparsable database URL)"

    def __repr_args__(self) -> Any:
        """Like pydantic's, with the database URL's password masked too."""
        for name, value in super().__repr_args__():
            yield name, self.database_path_hint() if name == "database_url" else value
