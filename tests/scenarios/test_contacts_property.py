"""Random command sequences through the real core keep the role rules and org isolation."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from bot.clock import FixedClock
from bot.domain import StaffRole
from bot.wiring.config import Settings
from storage.db import Database
from storage.directory import Directory
from tests.conftest import NOW
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

LIMITS = {"alpha": 1, "beta": 2}
PEOPLE = ["ana@alpha.test", "ada@alpha.test", "tom@alpha.test", "bob@beta.test",
          "tim@beta.test", "root@vendor.test", "eve@vendor.test", "nobody@x.test",
          "new1@alpha.test", "new1@beta.test"]
EMAILS = ["ana@alpha.test", "ada@alpha.test", "tom@alpha.test", "new1@alpha.test",
          "new2@alpha.test", "bob@beta.test", "tim@beta.test", "new1@beta.test",
          "new2@beta.test"]

commands = st.one_of(
    st.builds("/contacts set main {}".format, st.sampled_from(EMAILS)),
    st.builds("/contacts set administrative {}".format, st.sampled_from(EMAILS)),
    st.builds("/contacts request-technical {}".format, st.sampled_from(EMAILS)),
    st.builds("/contacts remove-technical {}".format, st.sampled_from(EMAILS)),
    st.sampled_from(["/contacts sharing on", "/contacts sharing off", "/contacts"]),
    st.builds("/subdesk approve {}".format, st.integers(1, 4)),
    st.builds("/subdesk deny {}".format, st.integers(1, 4)),
)
decisions = st.tuples(st.just("root@vendor.test"),
                      st.builds("/subdesk approve {}".format, st.integers(1, 3)))
main_commands = st.tuples(st.sampled_from(["ana@alpha.test", "bob@beta.test"]), commands)
anyone = st.tuples(st.sampled_from(PEOPLE), commands)
request_then_decide = st.tuples(
    st.tuples(st.sampled_from(["ana@alpha.test", "bob@beta.test"]),
              st.builds("/contacts request-technical {}".format, st.sampled_from(EMAILS))),
    decisions,
).map(list)
chunks = st.one_of(main_commands.map(lambda s: [s]), decisions.map(lambda s: [s]),
                   anyone.map(lambda s: [s]), request_then_decide)
steps = st.lists(chunks, min_size=1, max_size=8).map(
    lambda parts: [step for part in parts for step in part])

State = tuple[tuple[tuple[str, str, tuple[str, ...]], ...], bool]


async def org_state(h: Harness, key: str) -> State:
    async with h.app.db.read() as session:
        directory = Directory(session, h.clock.now())
        org = await directory.org_by_key(key)
        assert org is not None
        people = await directory.contacts(org.id)
        pending = await directory.pending_requests(org.id)
    contacts = tuple(sorted((c.email, c.name, tuple(sorted(c.roles))) for c in people))
    requests = tuple(("request", r.email, (r.status.value,)) for r in pending)
    return contacts + requests, org.sharing


async def check_rules(h: Harness, key: str) -> None:
    entries, _sharing = await org_state(h, key)
    people = [e for e in entries if e[0] != "request"]
    roles = [e[2] for e in people]
    assert sum("main" in r for r in roles) == 1, (key, people)
    assert sum("administrative" in r for r in roles) <= 1, (key, people)
    assert sum("technical" in r for r in roles) <= LIMITS[key], (key, people)
    assert all(r for r in roles), f"{key} keeps a contact without any role: {people}"


async def run_steps(database: str, sequence: list[tuple[str, str]]) -> None:
    db = Database(database)
    clock = FixedClock(NOW)
    config = Settings(_env_file=None, database_url=database,
                      outbox_per_target_interval=0.0)
    h = await Harness.create(config, clock, db)
    try:
        await h.import_orders(form(
            organization("alpha", [contact("main", "ana@alpha.test"),
                                   contact("administrative", "ada@alpha.test"),
                                   contact("technical", "tom@alpha.test")], level="basic"),
            organization("beta", [contact("main", "bob@beta.test"),
                                  contact("technical", "tim@beta.test")]),
        ))
        await h.add_staff("root@vendor.test", StaffRole.ADMIN)
        await h.add_staff("eve@vendor.test", StaffRole.ENGINEER)
        for who, line in sequence:
            actor = await h.app.services.identity.actor(h.as_(who).sender)
            before = {key: await org_state(h, key) for key in LIMITS}
            reply = await h.as_(who).send(line)
            assert "Something went wrong" not in reply.message.text, (who, line)
            if actor.contact is not None and actor.org is not None:
                for key in LIMITS:
                    if key != actor.org.key:
                        assert await org_state(h, key) == before[key], (
                            f"{who} of {actor.org.key} changed {key} with {line!r}")
            elif actor.staff is None or StaffRole.ADMIN not in actor.staff.roles:
                for key in LIMITS:
                    assert await org_state(h, key) == before[key], (who, line)
            for key in LIMITS:
                await check_rules(h, key)
    finally:
        await db.dispose()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=steps)
def test_random_contact_commands_keep_rules_and_isolation(
    database_url: str, sequence: list[tuple[str, str]]
) -> None:
    """Whoever types whatever contact command, each organization keeps one Main Contact,
    at most one Administrative Contact and its Technical limit, no contact of one
    organization changes another, and non-admins outside an organization change nothing."""
    if not database_url.startswith("sqlite"):
        pytest.skip("engine-independent rules; run on the SQLite template only")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "subdesk.db"
        shutil.copy(make_url(database_url).database or "", target)
        asyncio.run(run_steps(f"sqlite:///{target}", sequence))
