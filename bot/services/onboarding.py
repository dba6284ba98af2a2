"""Order forms (SPEC §4 Onboarding, §6): organizations and their contacts, idempotent by key."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from bot.business_time import supported_country
from bot.domain import (
    Contact,
    ContactRole,
    Level,
    Platform,
    Program,
    Region,
    expiring_fingerprint,
)
from bot.emails import Email
from bot.importing import (
    ImportFailed,
    csv_rows_to_models,
    detect_format,
    load_json,
    read_csv,
)
from bot.presentation import notices
from bot.presentation.messages import command
from bot.services.base import Service, Tx
from bot.services.contacts import hand_over, queued_billing_notices
from bot.services.reserved import reserved_emails
from storage.directory import OrgFields

Progress = Callable[[int, int], None]
# A Matrix room id: `!opaque:server`, or `!opaque` alone from room version 12 on.
_CHANNEL = re.compile(r"^(slack:[A-Z0-9]{2,}|matrix:![^:\s]+(:\S+)?)$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}:[A-Z0-9]{2,}$")
_MXID = re.compile(r"^@[^:\s]+:\S+$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ID_MAX = 255  # Matrix user and room ids have at most 255 characters; so do the id columns


def _one_line(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must be one line of text without control characters")
    # Blank is no name: spaces, and format characters such as a zero-width space, alone.
    if not "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip():
        raise ValueError("must not be blank")
    return value.strip()


OneLine = Annotated[str, AfterValidator(_one_line)]


class Subscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_on: dt.date
    ends_on: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Subscription:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


def slack_account_problem(value: str) -> str | None:
    """What is wrong with a Slack account written TEAM_ID:USER_ID (None: nothing); the
    rule of order forms, `subdesk link` and `subdesk staff add` alike."""
    if not _SLACK_ID.fullmatch(value):
        return "must look like TEAM_ID:USER_ID, e.g. T0ACME:U0TOM"
    if max(len(part) for part in value.split(":")) > _ID_MAX:
        return f"Slack ids have at most {_ID_MAX} characters"
    return None


def matrix_account_problem(value: str) -> str | None:
    """What is wrong with a Matrix user id (None: nothing)."""
    if not _MXID.fullmatch(value):
        return "must be a Matrix user id like @tom:example.org"
    if len(value) > _ID_MAX:
        return f"Matrix user ids have at most {_ID_MAX} characters"
    return None


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: ContactRole
    name: OneLine = Field(min_length=1, max_length=200)
    email: Email
    slack: str | None = None
    matrix: str | None = None

    @field_validator("slack")
    @classmethod
    def _slack(cls, value: str | None) -> str | None:
        if value and (problem := slack_account_problem(value)):
            raise ValueError(problem)
        return value or None

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, value: str | None) -> str | None:
        if value and (problem := matrix_account_problem(value)):
            raise ValueError(problem)
        return value or None


class OrganizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    name: OneLine = Field(min_length=1, max_length=200)
    program: Program
    level: Level
    region: Region
    timezone: str
    subscription: Subscription
    contacts: list[ContactIn] = Field(min_length=1)
    alert_channels: list[str] = Field(default_factory=list)
    country: str | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if not value:
            return None
        code = value.strip().upper()
        if not supported_country(code):
            raise ValueError(f"{value[:8]!r} is not an ISO 3166 alpha-2 country code with a "
                             "public holiday calendar, such as ES or US")
        return code

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError("must be lower-case letters, digits, - or _ (at most 64)")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError(f"{value!r} is not an IANA timezone such as Europe/Madrid")
        ZoneInfo(value)
        return value

    @field_validator("alert_channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not _CHANNEL.fullmatch(channel):
                raise ValueError(f"{channel[:80]!r} must be slack:CHANNEL_ID or "
                                 "matrix:!ROOM_ID")
            if len(channel.partition(":")[2]) > _ID_MAX:
                raise ValueError(f"{channel[:80]!r}…: channel and room ids have at most "
                                 f"{_ID_MAX} characters")
        return value

    @model_validator(mode="after")
    def _one_person_per_email(self) -> OrganizationIn:
        """An email is one person: entries for it must agree on everything but the role,
        and an entry given twice counts once."""
        first: dict[str, tuple[int, ContactIn]] = {}
        unique: list[ContactIn] = []
        given: set[tuple[str, ContactRole]] = set()  # with the check above, a whole entry
        for index, contact in enumerate(self.contacts):
            seen = first.get(contact.email)
            if seen is None:
                first[contact.email] = (index, contact)
            elif differ := [f for f in ("name", "slack", "matrix")
                            if getattr(contact, f) != getattr(seen[1], f)]:
                raise ValueError(
                    f"contacts[{index}] ({contact.email}): {', '.join(differ)} differs from "
                    f"contacts[{seen[0]}]; one email is one person"
                )
            if (contact.email, contact.role) not in given:  # a set: a long list stays linear
                given.add((contact.email, contact.role))
                unique.append(contact)
        self.contacts = unique
        return self

    @model_validator(mode="after")
    def _roles(self) -> OrganizationIn:
        mains = [c for c in self.contacts if c.role is ContactRole.MAIN]
        if len(mains) != 1:
            raise ValueError(f"needs exactly one main contact (found {len(mains)})")
        admins = {c.email for c in self.contacts if c.role is ContactRole.ADMINISTRATIVE}
        if len(admins) > 1:
            raise ValueError("has more than one administrative contact")
        return self


class OrderForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organizations: list[OrganizationIn]
    _lines: list[str] = PrivateAttr(default_factory=list)

    def where(self, index: int) -> str:
        """How an error names organization `index`: its first CSV line, or its JSON path."""
        if index < len(self._lines):
            return self._lines[index]
        return f"organizations[{index}]"

    @model_validator(mode="after")
    def _unique(self) -> OrderForm:
        keys = [o.key for o in self.organizations]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"organization key(s) repeated: {', '.join(dupes)}")
        return self


_zone_cache: set[str] = set()


# Names the system's zone database lists that are no place's time: the machine's own
# setting, and a placeholder zone.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


def _zones() -> set[str]:
    if not _zone_cache:
        _zone_cache.update(available_timezones() - _NOT_ZONES)
    return _zone_cache


CSV_COLUMNS = ("key", "name", "program", "level", "region", "timezone", "starts_on", "ends_on",
               "role", "contact_name", "email")


_CSV_ALIASES = {
    "organization": "key",
    "organization_key": "key",
    "org": "key",
    "org_key": "key",
    "organization_name": "name",
    "org_name": "name",
    "subscription_starts_on": "starts_on",
    "subscription_ends_on": "ends_on",
    "contact_role": "role",
    "contact_email": "email",
    "contact_slack": "slack",
    "contact_matrix": "matrix",
}


def _csv_headers(headers: list[str]) -> list[str]:
    """Accept common alternative column names; `name` is the contact's when the
    organization's name has a column of its own (`organization_name`)."""
    if "contact_name" not in headers and {"organization_name", "org_name"} & set(headers):
        headers = ["contact_name" if h == "name" else h for h in headers]
    return [_CSV_ALIASES.get(h, h) for h in headers]


class _CsvRow(BaseModel):
    """One CSV line: the organization columns plus one contact."""

    org: dict[str, Any]
    contact: ContactIn


def _csv_build(row: dict[str, str]) -> dict[str, Any]:
    channels = [c for c in re.split(r"[;\s]+", row.get("alert_channels", "")) if c]
    return {
        "org": {
            "key": row["key"],
            "name": row["name"],
            "program": row["program"],
            "level": row["level"],
            "region": row["region"],
            "timezone": row["timezone"],
            "subscription": {"starts_on": row["starts_on"], "ends_on": row["ends_on"]},
            "alert_channels": channels,
            "country": row.get("country") or None,
        },
        "contact": {
            "role": row["role"],
            "name": row["contact_name"],
            "email": row["email"],
            "slack": row.get("slack") or None,
            "matrix": row.get("matrix") or None,
        },
    }


def parse_orders(name: str, data: bytes) -> OrderForm:
    """An order form from JSON or CSV bytes; raises `ImportFailed` naming line and field."""
    if detect_format(name, data) == "json":
        return load_json(data, OrderForm)
    rows = csv_rows_to_models(read_csv(data, CSV_COLUMNS, _csv_headers), _CsvRow, _csv_build)
    grouped: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    errors: list[str] = []
    contact_line: dict[tuple[str, str], tuple[int, ContactIn]] = {}
    for line, row in rows:
        key = str(row.org["key"])
        if key not in grouped:
            grouped[key] = {**row.org, "contacts": []}
            first_line[key] = line
        elif differ := _differing_columns(row.org, grouped[key]):
            errors.append(
                f"line {line}: organization columns differ from line {first_line[key]} "
                f"for key {key!r}: {', '.join(differ)}"
            )
        seen = contact_line.setdefault((key, row.contact.email), (line, row.contact))
        if differ := [f for f in ("name", "slack", "matrix")
                      if getattr(row.contact, f) != getattr(seen[1], f)]:
            columns = ["contact_name" if f == "name" else f for f in differ]
            errors.append(
                f"line {line}: {', '.join(columns)} of {row.contact.email} differs from "
                f"line {seen[0]}; one email is one person"
            )
        grouped[key]["contacts"].append(row.contact.model_dump())
    if errors:
        raise ImportFailed(errors)
    try:
        form = load_json(_json_bytes({"organizations": list(grouped.values())}), OrderForm)
        form._lines = [f"line {first_line[key]} (organization {key!r})" for key in grouped]
        return form
    except ImportFailed as exc:
        raise ImportFailed(
            [_csv_context(e, list(grouped), first_line) for e in exc.errors]
        ) from exc


def _differing_columns(org: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """The CSV organization columns whose values differ between two rows of one key."""
    differ: list[str] = []
    for name, value in org.items():
        if isinstance(value, dict):
            differ += [k for k, v in value.items() if first[name].get(k) != v]
        elif first[name] != value:
            differ.append(name)
    return differ


def _roles(contact: Contact, without: ContactRole | None = None) -> list[str]:
    return sorted(r.value for r in contact.roles if r is not without)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


def _csv_context(error: str, keys: list[str], first_line: dict[str, int]) -> str:
    match = re.match(r"organizations\[(\d+)\](.*)", error)
    if not match:
        return error
    key = keys[int(match.group(1))]
    return f"line {first_line[key]} (organization {key!r}){match.group(2)}"


class ImportReport(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    contacts_added: int = 0
    messages_queued: int = 0


class OnboardingService(Service):
    """Order-form imports: organizations, contacts, linked accounts and welcome messages."""

    async def has_organization(self, key: str | None = None) -> bool:
        """Whether any organization (or the one with `key`) exists."""
        async with self.read() as tx:
            if key is None:
                return await tx.directory.has_orgs()
            return await tx.directory.org_by_key(key) is not None

    async def import_orders(
        self, form: OrderForm, progress: Progress | None = None
    ) -> ImportReport:
        """Apply an order form in one transaction; re-importing the same form changes nothing."""
        report = ImportReport()
        total = len(form.organizations)
        async with self.tx() as tx:
            errors: list[str] = []
            for index, org_in in enumerate(form.organizations):
                limit = self.settings.technical_limit(org_in.level)
                technical = {c.email for c in org_in.contacts if c.role is ContactRole.TECHNICAL}
                if len(technical) > limit:
                    errors.append(
                        f"{form.where(index)}: {len(technical)} technical contacts "
                        f"exceed the {org_in.level.value} limit of {limit}"
                    )
            errors.extend(await self._reserved_contacts(tx, form))
            if errors:
                raise ImportFailed(errors)
            for done, org_in in enumerate(form.organizations, start=1):
                errors.extend(await self._apply(tx, org_in, report, form.where(done - 1)))
                errors.extend(await self._check_technical_limit(tx, form.where(done - 1), org_in))
                if progress is not None:
                    progress(done, total)
            if errors:
                raise ImportFailed(errors)
        return report

    async def _reserved_contacts(self, tx: Tx, form: OrderForm) -> list[str]:
        """Contacts whose email is reserved for the vendor's staff, one line each."""
        emails = [c.email for org_in in form.organizations for c in org_in.contacts]
        reasons = await reserved_emails(tx, self.settings, emails)
        return [
            f"organizations[{i}].contacts[{j}].email: {reasons[c.email.lower()]}; a customer "
            "contact needs their own email"
            for i, org_in in enumerate(form.organizations)
            for j, c in enumerate(org_in.contacts)
            if c.email.lower() in reasons
        ]

    async def _check_technical_limit(
        self, tx: Tx, where: str, org_in: OrganizationIn
    ) -> list[str]:
        """Technical Contacts already designated count too (a form never removes them)."""
        org = await tx.directory.org_by_key(org_in.key)
        assert org is not None
        limit = self.settings.technical_limit(org.level)
        count = await tx.directory.count_role(org.id, ContactRole.TECHNICAL)
        if count <= limit:
            return []
        return [
            f"{where} ({org.key}): {count} Technical Contacts with those already "
            f"designated, over the {org.level.value} limit of {limit}; remove some first "
            f"({command('contacts remove-technical EMAIL')})"
        ]

    async def _apply(
        self, tx: Tx, org_in: OrganizationIn, report: ImportReport, where: str
    ) -> list[str]:
        """Apply one organization; returns the errors that must roll the whole form back."""
        errors: list[str] = []
        fields = OrgFields(
            key=org_in.key,
            name=org_in.name,
            program=org_in.program,
            level=org_in.level,
            region=org_in.region,
            timezone=org_in.timezone,
            starts_on=org_in.subscription.starts_on,
            ends_on=org_in.subscription.ends_on,
            alert_channels=tuple(org_in.alert_channels),
            country=org_in.country,
        )
        org, before = await tx.directory.upsert_org(fields)
        await tx.directory.lock_org(org.id)
        org_changed = changed = before is None or before != org
        if before is None:
            report.created += 1
            await tx.directory.audit("import", org.id, "org.created", org.key, None,
                                     {"name": org.name, "level": org.level.value})
        elif changed:
            report.updated += 1
            if before.calendar != org.calendar:
                await tx.tickets.set_calendar(org.id, org.calendar)
            await tx.directory.audit("import", org.id, "org.updated", org.key,
                                     {"level": before.level.value, "name": before.name,
                                      "ends_on": str(before.ends_on)},
                                     {"level": org.level.value, "name": org.name,
                                      "ends_on": str(org.ends_on)})
            if before.ends_on is not None and before.ends_on != org.ends_on:
                # Renewed (or its end moved): the "subscription expiring" alert is over.
                renewed = org.ends_on is not None and org.ends_on > before.ends_on
                await self.alerting.settle(
                    tx, expiring_fingerprint(org.key, before.ends_on),
                    f"renewed until {org.ends_on}" if renewed else f"now ends on {org.ends_on}")
        # Exclusive roles move to whoever the form names; Technical roles are added.
        stripped: list[int] = []
        handed: dict[ContactRole, dict[str, dict[str, Any]]] = {}
        for role in (ContactRole.MAIN, ContactRole.ADMINISTRATIVE):
            named = {c.email for c in org_in.contacts if c.role is role}
            if not named:
                continue
            leaving = [h for h in await tx.directory.contacts(org.id)
                       if role in h.roles and h.email not in named]
            if leaving and (queued := await queued_billing_notices(tx, org, leaving, role)):
                handed[role] = queued
            for holder in leaving:
                await tx.directory.set_role(holder.id, role, False)
                await tx.directory.audit("import", org.id, f"role.{role.value}.removed",
                                         holder.email, {"roles": _roles(holder)},
                                         {"roles": _roles(holder, without=role)})
                stripped.append(holder.id)
                changed = True
        for contact_in in org_in.contacts:
            contact = await tx.directory.contact_by_email(org.id, contact_in.email)
            if contact is None:
                contact = await tx.directory.add_contact(
                    org.id, contact_in.name, contact_in.email, [contact_in.role]
                )
                report.contacts_added += 1
                changed = True
                await tx.directory.audit("import", org.id, f"role.{contact_in.role.value}.granted",
                                         contact.email, None, {"name": contact.name})
            else:
                if contact_in.name != contact.name:
                    await tx.directory.rename_contact(contact.id, contact_in.name)
                    changed = True
                if contact_in.role not in contact.roles:
                    await tx.directory.set_role(contact.id, contact_in.role, True)
                    changed = True
                    await tx.directory.audit("import", org.id,
                                             f"role.{contact_in.role.value}.granted",
                                             contact.email, None, None)
                contact = await tx.directory.contact(contact.id) or contact
            accounts: list[tuple[str, tuple[str, str, str]]] = []
            if contact_in.slack:
                team, user = contact_in.slack.split(":", 1)
                accounts.append((contact_in.slack, (Platform.SLACK.value, team, user)))
            if contact_in.matrix:
                server = contact_in.matrix.split(":", 1)[1]
                accounts.append((contact_in.matrix, (Platform.MATRIX.value, server,
                                                     contact_in.matrix)))
            for given, account in accounts:
                linked = await tx.identities.identity(*account)
                if linked is None:
                    await tx.identities.link(*account, contact_id=contact.id)
                elif linked.contact_id != contact.id:
                    # An import never moves a chat account to another person.
                    errors.append(f"{where}: {account[0]} account {given} of {contact.email} "
                                  "is already linked to another person")
        for role, notices_left in handed.items():  # to whoever holds the role now
            for successor in await tx.directory.contacts(org.id):
                if role in successor.roles:
                    report.messages_queued += await hand_over(tx, self.notifier,
                                                              notices_left, successor)
        for contact_id in stripped:
            await tx.directory.delete_contact_if_roleless(contact_id)
        if before is not None and not changed:
            report.unchanged += 1
        elif before is not None and not org_changed:  # its contacts alone changed
            report.updated += 1
        # Welcome messages: keyed by org and email, so a re-import never sends them twice.
        for contact in await tx.directory.contacts(org.id):
            if contact.is_main:
                report.messages_queued += await self.notifier.to_contact(
                    tx, contact, f"welcome:{org.key}:{contact.email}",
                    notices.welcome_intent(notices.WELCOME, org, contact),
                )
            if contact.is_technical:
                report.messages_queued += await self.notifier.to_contact(
                    tx, contact, f"support-welcome:{org.id}:{contact.email}",
                    notices.welcome_intent(notices.SUPPORT_WELCOME, org, contact),
                )

        return errors
