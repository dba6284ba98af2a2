"""Order-form import (SPEC §4 Onboarding, §6): JSON and CSV, idempotent, all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.delivery.intents import Audience
from bot.importing import ImportFailed
from bot.presentation.messages import Message
from bot.services.onboarding import ImportReport, OrderForm, parse_orders
from storage.identities import IdentityStore
from storage.models import ChatIdentityRow, ContactRow, OrganizationRow, OutboxRow
from tests.harness import Harness
from tests.scenarios.orders import audit_of, contact, contacts_of, form, org_by_key, organization

ACME: dict[str, Any] = form(
    organization(
        "acme",
        [
            contact("main", "ana@acme.test", "Ana Main"),
            contact("technical", "tom@acme.test", "Tom Tech", slack="T0ACME:U0TOM",
                    matrix="@tom:acme.test"),
        ],
        name="ACME Corp",
        alert_channels=["slack:C0ACME", "matrix:!alerts:acme.test"],
    )
)

HEADER = ("key,name,program,level,region,timezone,starts_on,ends_on,alert_channels,role,"
          "contact_name,email,slack,matrix")
ORG_COLUMNS = "acme,ACME Corp,customer,standard,europe,Europe/Madrid,2026-01-01,2026-12-31"
CHANNELS = "slack:C0ACME;matrix:!alerts:acme.test"
ACME_CSV = "\n".join([
    HEADER,
    f"{ORG_COLUMNS},{CHANNELS},main,Ana Main,ana@acme.test,,",
    f"{ORG_COLUMNS},{CHANNELS},technical,Tom Tech,tom@acme.test,T0ACME:U0TOM,@tom:acme.test",
]) + "\n"


async def run_import(harness: Harness, name: str, data: bytes | str) -> ImportReport:
    raw = data.encode() if isinstance(data, str) else data
    report = await harness.app.services.onboarding.import_orders(parse_orders(name, raw))
    await harness.drain()
    return report


async def count(harness: Harness, model: type[Any]) -> int:
    async with harness.app.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def outbox_rows(harness: Harness) -> list[OutboxRow]:
    async with harness.app.db.read() as session:
        return list(await session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def failure(name: str, data: str) -> list[str]:
    with pytest.raises(ImportFailed) as caught:
        parse_orders(name, data.encode())
    return caught.value.errors


@pytest.mark.parametrize(("name", "data"), [("orders.json", json.dumps(ACME)),
                                            ("orders.csv", ACME_CSV)])
async def test_import_creates_organization_contacts_and_identities(
    harness: Harness, name: str, data: str
) -> None:
    """JSON and CSV create the same organization, contacts, roles and chat identities."""
    report = await run_import(harness, name, data)
    assert (report.created, report.updated, report.unchanged, report.contacts_added) == (
        1, 0, 0, 2)
    org = await org_by_key(harness, "acme")
    assert org.name == "ACME Corp" and org.level.value == "standard"
    assert org.timezone == "Europe/Madrid" and str(org.ends_on) == "2026-12-31"
    assert org.alert_channels == ("slack:C0ACME", "matrix:!alerts:acme.test")
    people = await contacts_of(harness, "acme")
    assert {e: sorted(c.roles) for e, c in people.items()} == {
        "ana@acme.test": ["main"], "tom@acme.test": ["technical"]}
    async with harness.app.db.read() as session:
        identities = await IdentityStore(session, harness.clock.now()).identities_of_contacts(
            [people["tom@acme.test"].id])
    assert {(i.platform.value, i.workspace, i.user_id) for i in identities} == {
        ("slack", "T0ACME", "U0TOM"), ("matrix", "acme.test", "@tom:acme.test")}


async def test_welcome_and_support_welcome(harness: Harness) -> None:
    """The Main Contact gets a Welcome by email; the linked Technical Contact a Support
    Welcome on each chat account and no email."""
    await run_import(harness, "orders.json", json.dumps(ACME))
    assert [m.subject for m in harness.emails_to("ana@acme.test")] == [
        "Welcome to your standard subscription"]
    assert not harness.emails_to("tom@acme.test")
    rows = await outbox_rows(harness)
    tom = [(r.platform, r.target, r.kind) for r in rows if r.recipient.endswith("<tom@acme.test>")]
    assert sorted(tom) == [("matrix", "@tom:acme.test", "dm"), ("slack", "T0ACME:U0TOM", "dm")]
    chat = [r for r in rows if r.target in ("T0ACME:U0TOM", "@tom:acme.test")]
    assert len(chat) == 2 and all(r.payload["kind"] == "support_welcome" for r in chat)
    rendered = await harness.app.dispatcher.intents.render(
        harness.app.db, harness.clock, chat[0].payload, Audience("matrix"))
    assert isinstance(rendered, Message) and rendered.subject == "Support Welcome — ACME Corp"


async def test_unlinked_technical_contact_gets_support_welcome_by_email(
    harness: Harness
) -> None:
    """Without a chat account, the Support Welcome goes by email."""
    await harness.import_orders(form(organization("beta", [
        contact("main", "bo@beta.test"), contact("technical", "ty@beta.test"),
        contact("administrative", "al@beta.test")])))
    assert [m.subject for m in harness.emails_to("ty@beta.test")] == [
        "Support Welcome — Beta Corp"]
    assert not harness.emails_to("al@beta.test"), "the Administrative Contact gets no welcome"


@pytest.mark.parametrize(("name", "data"), [("orders.json", json.dumps(ACME)),
                                            ("orders.csv", ACME_CSV)])
async def test_reimport_is_idempotent(harness: Harness, name: str, data: str) -> None:
    """Importing the same form again changes nothing and sends no second welcome."""
    await run_import(harness, name, data)
    before = (await count(harness, OrganizationRow), await count(harness, ContactRow),
              await count(harness, ChatIdentityRow), await count(harness, OutboxRow))
    audit_before = len(await audit_of(harness, "acme"))
    report = await run_import(harness, name, data)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert report.contacts_added == 0 and report.messages_queued == 0
    after = (await count(harness, OrganizationRow), await count(harness, ContactRow),
             await count(harness, ChatIdentityRow), await count(harness, OutboxRow))
    assert after == before
    assert len(await audit_of(harness, "acme")) == audit_before
    assert len(harness.emails_to("ana@acme.test")) == 1


async def test_json_and_csv_of_the_same_form_are_the_same_import(harness: Harness) -> None:
    """A CSV import after the equivalent JSON import is a no-op."""
    await run_import(harness, "orders.json", json.dumps(ACME))
    report = await run_import(harness, "orders.csv", ACME_CSV)
    assert report.unchanged == 1 and report.messages_queued == 0


async def test_a_change_of_contacts_alone_counts_as_an_update(harness: Harness) -> None:
    """Re-importing with only a contact's name changed reports the organization updated
    (it was counted nowhere: 0 created, 0 updated, 0 unchanged)."""
    await run_import(harness, "orders.json", json.dumps(ACME))
    renamed = json.loads(json.dumps(ACME))
    renamed["organizations"][0]["contacts"][0]["name"] = "Ana Renamed"
    report = await run_import(harness, "orders.json", json.dumps(renamed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)


async def test_update_changes_fields_and_moves_main(harness: Harness) -> None:
    """Re-importing with changes updates the organization (audited), moves the Main Contact
    and welcomes the new one."""
    await run_import(harness, "orders.json", json.dumps(ACME))
    changed = form(organization(
        "acme",
        [contact("main", "mo@acme.test", "Mo Main"),
         contact("technical", "tom@acme.test", "Thomas Tech")],
        name="ACME Inc", level="premium", ends_on="2027-06-30",
    ))
    report = await run_import(harness, "orders.json", json.dumps(changed))
    assert (report.created, report.updated, report.contacts_added) == (0, 1, 1)
    org = await org_by_key(harness, "acme")
    assert (org.name, org.level.value, str(org.ends_on)) == ("ACME Inc", "premium", "2027-06-30")
    assert org.alert_channels == ()
    people = await contacts_of(harness, "acme")
    assert people["mo@acme.test"].is_main
    assert people["tom@acme.test"].name == "Thomas Tech"
    assert "ana@acme.test" not in people, "a contact left with no role is removed"
    assert [c.email for c in people.values() if c.is_main] == ["mo@acme.test"]
    removed = [e for e in await audit_of(harness, "acme") if e.action == "role.main.removed"]
    assert (removed[0].target, removed[0].before, removed[0].after) == (
        "ana@acme.test", {"roles": ["main"]}, {"roles": []})
    updated = [e for e in await audit_of(harness, "acme") if e.action == "org.updated"]
    assert updated[0].before == {"level": "standard", "name": "ACME Corp",
                                 "ends_on": "2026-12-31"}
    assert updated[0].after == {"level": "premium", "name": "ACME Inc", "ends_on": "2027-06-30"}
    assert [m.subject for m in harness.emails_to("mo@acme.test")] == [
        "Welcome to your premium subscription"]


async def test_csv_bad_email_names_the_line(harness: Harness) -> None:
    """A bad email on CSV line 3 is reported as line 3, field email."""
    data = ACME_CSV.replace("tom@acme.test", "tom-at-acme")
    errors = failure("orders.csv", data)
    assert len(errors) == 1
    assert errors[0].startswith("line 3, ")
    assert "email" in errors[0]


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (lambda s: s.replace("standard", "platinum"), ["line 2", "level"]),
        (lambda s: s.replace("2026-12-31", "31/12/2026"), ["line 2", "ends_on"]),
        (lambda s: s.replace(",technical,", ",boss,"), ["line 3", "role"]),
        (lambda s: s.replace("T0ACME:U0TOM", "tom"), ["line 3", "slack"]),
        (lambda s: s.replace("Europe/Madrid", "Mars/Olympus"), ["line 2", "timezone"]),
        (lambda s: s.replace("Europe/Madrid", "localtime"), ["line 2", "timezone"]),
        (lambda s: s.replace("Europe/Madrid", "Factory"), ["line 2", "timezone"]),
        (lambda s: s.replace(",main,", ",technical,"), ["line 2", "main contact"]),
        (lambda s: s.replace("customer", "reseller"), ["line 2", "program"]),
        (lambda s: s.replace("standard", "premium", 1), ["line 3", "differ", "level"]),
        (lambda s: s.replace("2026-12-31", "2027-12-31", 1), ["line 3", "ends_on"]),
    ],
)
def test_csv_errors_name_line_and_field(mutate: Any, needles: list[str]) -> None:
    """Every kind of bad CSV value is reported with its line and field."""
    text = " | ".join(failure("orders.csv", mutate(ACME_CSV)))
    for needle in needles:
        assert needle in text, text


def test_csv_structure_errors() -> None:
    """Missing columns, extra values and rows that disagree about their organization."""
    assert "line 1: missing column(s) email" in failure(
        "o.csv", ACME_CSV.replace(",email,", ",mail,"))[0]
    extra = ACME_CSV.rstrip("\n") + ",surprise\n"
    assert failure("o.csv", extra) == ["line 3: more values than columns"]
    differ = ACME_CSV.replace("ACME Corp", "ACME Corporation", 1)
    assert failure("o.csv", differ) == [
        "line 3: organization columns differ from line 2 for key 'acme': name"]
    assert failure("o.csv", "") == ["line 1: the file is empty (a header row is needed)"]
    with pytest.raises(ImportFailed, match="not UTF-8"):
        parse_orders("o.csv", b"key,name\n\xff\xfe\n")


def test_json_errors_name_the_field() -> None:
    """JSON errors carry the path of the bad field, or the line and column of bad syntax."""
    bad = json.loads(json.dumps(ACME))
    bad["organizations"][0]["contacts"][1]["email"] = "nope"
    errors = failure("o.json", json.dumps(bad))
    assert errors[0].startswith("organizations[0].contacts[1].email:")
    syntax = failure("o.json", '{"organizations": [\n  {"key": "acme",,}]}')
    assert syntax[0].startswith("line 2, column")
    twice = form(ACME["organizations"][0], ACME["organizations"][0])
    assert "repeated: acme" in failure("o.json", json.dumps(twice))[0]
    unknown = json.loads(json.dumps(ACME))
    unknown["organizations"][0]["colour"] = "red"
    assert "organizations[0].colour" in failure("o.json", json.dumps(unknown))[0]


async def test_error_writes_nothing(harness: Harness) -> None:
    """A bad organization after a valid one fails the whole file: nothing is created."""
    good = organization("good", [contact("main", "g@good.test")])
    bad = organization("bad", [contact("main", "b@bad.test"),
                               contact("technical", "t1@bad.test"),
                               contact("technical", "t2@bad.test")], level="basic")
    with pytest.raises(ImportFailed) as caught:
        await harness.app.services.onboarding.import_orders(
            OrderForm.model_validate(form(good, bad)))
    assert "exceed the basic limit of 1" in caught.value.errors[0]
    assert caught.value.errors[0].startswith("organizations[1]: 2 technical contacts")
    assert await count(harness, OrganizationRow) == 0
    assert await count(harness, OutboxRow) == 0


async def test_failure_mid_import_rolls_everything_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing the second organization fails, the first is not kept either."""
    first = organization("first", [contact("main", "f@first.test")])
    second = organization("second", [contact("main", "s@second.test")])
    notifier = harness.app.services.notifier
    original = notifier.to_contact
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")
        return await original(*args, **kwargs)

    monkeypatch.setattr(notifier, "to_contact", flaky)
    with pytest.raises(RuntimeError):
        await harness.app.services.onboarding.import_orders(
            OrderForm.model_validate(form(first, second)))
    assert await count(harness, OrganizationRow) == 0
    assert await count(harness, ContactRow) == 0
    assert await count(harness, OutboxRow) == 0


async def test_csv_error_keeps_database_untouched(harness: Harness) -> None:
    """A CSV with a valid organization and a bad one writes nothing."""
    other = "beta,Beta,customer,basic,us,America/New_York,2026-01-01,2026-12-31,,main,Bo,bo@beta"
    with pytest.raises(ImportFailed) as caught:
        await run_import(harness, "o.csv", ACME_CSV + other + "\n")
    assert caught.value.errors[0].startswith("line 4, ")
    assert await count(harness, OrganizationRow) == 0


async def test_progress_is_reported_per_organization(harness: Harness) -> None:
    """The progress callback sees each organization done, out of the total."""
    seen: list[tuple[int, int]] = []
    orders = OrderForm.model_validate(form(
        organization("one", [contact("main", "a@one.test")]),
        organization("two", [contact("main", "a@two.test")]),
        organization("three", [contact("main", "a@three.test")]),
    ))
    await harness.app.services.onboarding.import_orders(
        orders, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_one_person_with_several_roles(harness: Harness) -> None:
    """The same email listed as main and technical is one contact with both roles."""
    await harness.import_orders(form(organization("solo", [
        contact("main", "sol@solo.test", "Sol"), contact("technical", "sol@solo.test", "Sol")])))
    people = await contacts_of(harness, "solo")
    assert list(people) == ["sol@solo.test"]
    assert people["sol@solo.test"].is_main and people["sol@solo.test"].is_technical
    subjects = sorted(m.subject or "" for m in harness.emails_to("sol@solo.test"))
    assert subjects == ["Support Welcome — Solo Corp", "Welcome to your standard subscription"]


async def test_reimport_cannot_exceed_the_technical_limit(harness: Harness) -> None:
    """Technical Contacts already designated count: a form adding one over the limit fails."""
    first = organization("lim", [contact("main", "m@lim.test"),
                                 contact("technical", "t1@lim.test"),
                                 contact("technical", "t2@lim.test")], level="standard")
    await harness.import_orders(form(first))
    second = organization("lim", [contact("main", "m@lim.test"),
                                  contact("technical", "t3@lim.test")], level="standard")
    outbox_before = await count(harness, OutboxRow)
    with pytest.raises(ImportFailed) as caught:
        await harness.app.services.onboarding.import_orders(OrderForm.model_validate(form(second)))
    assert "3 Technical Contacts" in caught.value.errors[0]
    assert "standard limit of 2" in caught.value.errors[0]
    assert set(await contacts_of(harness, "lim")) == {"m@lim.test", "t1@lim.test", "t2@lim.test"}
    assert await count(harness, OutboxRow) == outbox_before


async def test_downgrade_below_designated_technical_contacts_fails(harness: Harness) -> None:
    """Lowering the level under the number of Technical Contacts is refused, naming the limit."""
    premium = organization("down", [contact("main", "m@down.test"),
                                    contact("technical", "t1@down.test"),
                                    contact("technical", "t2@down.test")], level="premium")
    await harness.import_orders(form(premium))
    basic = organization("down", [contact("main", "m@down.test")], level="basic")
    with pytest.raises(ImportFailed) as caught:
        await harness.app.services.onboarding.import_orders(OrderForm.model_validate(form(basic)))
    assert "basic limit of 1" in caught.value.errors[0]
    assert (await org_by_key(harness, "down")).level.value == "premium"


async def test_csv_accepts_alternative_column_names(harness: Harness) -> None:
    """`organization`, `organization_name`, `name`, `contact_email`… name the same columns."""
    header = ("organization,organization_name,program,level,region,timezone,"
              "subscription_starts_on,subscription_ends_on,Contact Role,name,contact_email")
    data = "\n".join([
        header,
        "acme,ACME Corp,customer,standard,europe,Europe/Madrid,2026-01-01,2026-12-31,"
        "main,Ana Main,ana@acme.test",
    ]).encode()
    parsed = parse_orders("orders.csv", data)
    org = parsed.organizations[0]
    assert (org.key, org.name) == ("acme", "ACME Corp")
    assert [(c.role.value, c.name, c.email) for c in org.contacts] == [
        ("main", "Ana Main", "ana@acme.test")
    ]


def test_csv_repeated_column_is_an_error() -> None:
    """Two columns that mean the same thing are refused, naming the column."""
    data = (HEADER + ",org\n").encode()
    with pytest.raises(ImportFailed) as caught:
        parse_orders("orders.csv", data)
    assert "key" in caught.value.errors[0] and "line 1" in caught.value.errors[0]


def test_csv_field_over_the_csv_limit_is_a_clean_error() -> None:
    """A 200 kB field is refused naming its line, not with a traceback."""
    row = (f"acme,{'N' * 200_000},customer,standard,europe,Europe/Madrid,2026-01-01,"
           "2026-12-31,,main,Ana,ana@acme.test,,")
    with pytest.raises(ImportFailed) as caught:
        parse_orders("orders.csv", f"{HEADER}\n{row}\n".encode())
    assert caught.value.errors[0].startswith("line 2: field larger than field limit")


def test_names_with_control_characters_are_refused() -> None:
    """A name carrying CR/LF (header or message injection) is refused, naming the field."""
    bad = form(organization("evil", [contact("main", "a@evil.test", "Ana\r\nBcc: x@y.test")],
                            name="Evil\nCorp"))
    with pytest.raises(ImportFailed) as caught:
        parse_orders("o.json", json.dumps(bad).encode())
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "organizations[0].name", "organizations[0].contacts[0].name"]


async def test_an_exact_duplicate_csv_row_is_one_contact(harness: Harness) -> None:
    """A row given twice (even the Main Contact's) imports as one contact."""
    lines = ACME_CSV.splitlines()
    doubled = "\n".join([*lines, lines[1], lines[2]]) + "\n"
    report = await run_import(harness, "orders.csv", doubled)
    assert report.contacts_added == 2
    assert sorted(await contacts_of(harness, "acme")) == ["ana@acme.test", "tom@acme.test"]
    assert (await run_import(harness, "orders.csv", doubled)).unchanged == 1


def test_one_email_twice_with_different_data_is_refused() -> None:
    """One email listed twice with another name (or account) is refused, naming the line
    or the field, instead of renaming the contact back and forth on every import."""
    renamed = ACME_CSV + f"{ORG_COLUMNS},{CHANNELS},technical,Ana Other,ana@acme.test,,\n"
    assert failure("orders.csv", renamed) == [
        "line 4: contact_name of ana@acme.test differs from line 2; one email is one person"]
    doc = json.loads(json.dumps(ACME))
    doc["organizations"][0]["contacts"].append(
        contact("technical", "ANA@acme.test", "Ana Main", slack="T0ACME:U0ANA"))
    assert failure("orders.json", json.dumps(doc)) == [
        "organizations[0]: Value error, contacts[2] (ana@acme.test): slack differs from "
        "contacts[0]; one email is one person"]


async def test_csv_errors_found_on_import_name_the_line(harness: Harness) -> None:
    """Errors found against the database (a limit, an account linked to someone else) name
    the CSV line of the organization, and nothing is written."""
    await run_import(harness, "orders.csv", ACME_CSV)
    other = ("key,name,program,level,region,timezone,starts_on,ends_on,role,contact_name,"
             "email,slack\n"
             "beta,Beta,customer,basic,us,America/New_York,2026-01-01,2026-12-31,main,Bea,"
             "bea@beta.test,T0ACME:U0TOM\n")
    with pytest.raises(ImportFailed) as caught:
        await run_import(harness, "orders.csv", other)
    assert caught.value.errors == [
        "line 2 (organization 'beta'): slack account T0ACME:U0TOM of bea@beta.test is already "
        "linked to another person"]
    assert await count(harness, OrganizationRow) == 1
    three = ACME_CSV + "\n".join(
        f"{ORG_COLUMNS},{CHANNELS},technical,T{n},t{n}@acme.test,," for n in range(2)) + "\n"
    with pytest.raises(ImportFailed) as caught:
        await run_import(harness, "orders.csv", three)
    assert caught.value.errors[0].startswith(
        "line 2 (organization 'acme'): 3 technical contacts exceed the standard limit of 2")


async def test_country_is_optional_and_comes_from_json_or_csv(harness: Harness) -> None:
    """`country` (ISO 3166 alpha-2) is stored upper-case from JSON or a CSV column, and
    stays empty when absent; re-importing without it clears it."""
    with_country = json.loads(json.dumps(ACME))
    with_country["organizations"][0]["country"] = "es"
    await run_import(harness, "orders.json", json.dumps(with_country))
    assert (await org_by_key(harness, "acme")).country == "ES"
    csv = ACME_CSV.replace(",alert_channels,", ",alert_channels,country,").replace(
        f"{CHANNELS},", f"{CHANNELS},PT,")
    await run_import(harness, "orders.csv", csv)
    assert (await org_by_key(harness, "acme")).country == "PT"
    await run_import(harness, "orders.json", json.dumps(ACME))
    assert (await org_by_key(harness, "acme")).country is None


def test_unknown_country_names_the_field() -> None:
    """A country without a holiday calendar is one error naming the field or line."""
    bad = json.loads(json.dumps(ACME))
    bad["organizations"][0]["country"] = "XX"
    (error,) = failure("o.json", json.dumps(bad))
    assert error.startswith("organizations[0].country:") and "ISO 3166" in error
    csv = ACME_CSV.replace(",alert_channels,", ",alert_channels,country,").replace(
        f"{CHANNELS},", f"{CHANNELS},Spain,")
    assert all("country" in e and e.startswith("line ") for e in failure("o.csv", csv))
