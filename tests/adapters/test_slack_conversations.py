"""Tickets from Slack conversations, end to end against the fake Web API: files shared in a
ticket's threads, the "Open a ticket from this message" shortcut, the :ticket: reaction,
and Slack Connect channels where a customer's workspace meets the vendor's."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bot.domain import Platform
from bot.wiring.demo import DEMO_TECH
from bot.wiring.manifest import MESSAGE_SHORTCUT
from storage.models import AttachmentRow, ContactRow, TicketRow
from tests.adapters import test_slack
from tests.adapters.slack_fake import TEAM, buttons
from tests.adapters.test_slack import SAM, TOM, TOM_DM, TRIAGE, World, mrkdwn

world = test_slack.world  # the running server, the fake Slack and the demo organization

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


async def attachments(w: World) -> list[tuple[str, str, int, bool, bytes | None]]:
    async with w.app.db.read() as session:
        rows = await session.execute(
            select(AttachmentRow.name, AttachmentRow.content_type, AttachmentRow.size,
                   AttachmentRow.internal, AttachmentRow.content).order_by(AttachmentRow.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


def a_file(w: World, name: str, *, kind: str = "image/png", size: int | None = None,
           url: str | None = None) -> dict[str, Any]:
    """A file as Slack describes it in a message event."""
    content = w.fake.files.get(name, b"")
    return {"id": "F0" + name.upper().replace(".", ""), "name": name, "title": name,
            "mimetype": kind, "filetype": name.rsplit(".", 1)[-1], "mode": "hosted",
            "size": len(content) if size is None else size,
            "url_private": url or w.fake.file_url(name),
            "url_private_download": url or w.fake.file_url(name)}


def in_thread(user: str, channel: str, thread_ts: str, ts: str, text: str,
              files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "message", "subtype": "file_share", "channel": channel,
            "channel_type": "im" if channel.startswith("D") else "channel", "user": user,
            "team": TEAM, "text": text, "ts": ts, "thread_ts": thread_ts, "files": files,
            **extra}


async def test_files_shared_in_the_ticket_threads_become_attachments(world: World) -> None:
    """A screenshot Tom shares under his card is a public comment's attachment, fetched
    with the bot token; a log Sam shares under the triage card is internal; a retried
    event stores nothing twice."""
    (_, card_ts), (_, triage_ts) = await world.open_ticket()
    world.fake.files["screen.png"] = PNG
    world.fake.files["vpn.log"] = b"tunnel down\n" * 10
    shared = in_thread(TOM, TOM_DM, card_ts, "1700000700.000001", "Here it is",
                       [a_file(world, "screen.png")])
    assert (await world.slack.event(shared, "EvF1"))[0] == 200
    assert (await world.slack.event(shared, "EvF1", retry=1))[0] == 200
    await world.adapter.settle()
    log = in_thread(SAM, TRIAGE, triage_ts, "1700000700.000002", "",
                    [a_file(world, "vpn.log", kind="text/plain")])
    assert (await world.slack.event(log, "EvF2"))[0] == 200
    await world.adapter.settle()
    assert await attachments(world) == [
        ("screen.png", "image/png", len(PNG), False, PNG),
        ("vpn.log", "text/plain", 120, True, b"tunnel down\n" * 10)]
    assert await world.comments() == [("Here it is", False), ("Shared vpn.log", True)]
    assert all(c["authorized"] for c in world.fake.of("file"))


async def test_files_the_core_refuses_are_not_downloaded_and_nothing_is_stored(
    world: World,
) -> None:
    """A file announced larger than the limit is not fetched, one that turns out larger
    is not fetched past it, a type the core refuses is not fetched; each time the person
    is told why, and neither the message nor any file is stored."""
    (_, card_ts), _ = await world.open_ticket()
    limit = world.app.settings.attachment_max_bytes
    world.fake.files["big.zip"] = b"z" * (limit + 1)
    world.fake.files["liar.zip"] = b"z" * (limit + 1)
    world.fake.files["run.exe"] = b"MZ"
    cases = [
        a_file(world, "big.zip", kind="application/zip"),
        a_file(world, "liar.zip", kind="application/zip", size=10),
        a_file(world, "run.exe", kind="application/x-msdownload"),
    ]
    for n, f in enumerate(cases):
        event = in_thread(TOM, TOM_DM, card_ts, f"1700000800.00000{n}", "see file", [f])
        await world.slack.event(event, f"EvR{n}")
    await world.adapter.settle()
    told = [m["text"].removeprefix(":warning: ") for m in
            await world.fake.wait_for("chat.postEphemeral", 3)]
    assert "big.zip is larger than the limit of 10.0 MB. Nothing was stored." in told
    assert "liar.zip is larger than the limit of 10.0 MB. Nothing was stored." in told
    assert any(t.startswith("run.exe is application/x-msdownload, which is not accepted")
               for t in told)
    assert [c["name"] for c in world.fake.of("file")] == ["liar.zip"]
    assert await attachments(world) == [] and await world.comments() == []


async def test_a_file_url_off_slacks_host_is_never_asked(world: World) -> None:
    """A file whose URL names another host, or a Slack URL redirecting elsewhere, is not
    followed there: the bot token never leaves Slack's host."""
    (_, card_ts), _ = await world.open_ticket()
    world.fake.files["elsewhere.png"] = PNG
    foreign = world.fake.file_url("elsewhere.png").replace("127.0.0.1", "localhost")
    moved = (world.fake.url.replace("/api/", "/moved/x.png") + "?to=" + foreign)
    for n, url in enumerate((foreign, moved)):
        event = in_thread(TOM, TOM_DM, card_ts, f"1700000900.00000{n}", "look",
                          [a_file(world, "x.png", size=10, url=url)])
        await world.slack.event(event, f"EvX{n}")
    await world.adapter.settle()
    told = [m["text"].removeprefix(":warning: ") for m in
            await world.fake.wait_for("chat.postEphemeral", 2)]
    assert told == ["x.png could not be fetched from Slack. Nothing was stored."] * 2
    assert world.fake.of("file") == [] and len(world.fake.of("moved")) == 1
    assert await attachments(world) == []


CHANNEL = "C0SUPPORT"


async def descriptions(w: World) -> list[tuple[str, str, str]]:
    async with w.app.db.read() as session:
        rows = await session.execute(select(TicketRow.subject, TicketRow.severity,
                                            TicketRow.description).order_by(TicketRow.id))
        return [(s, str(getattr(v, "value", v)), d) for s, v, d in rows.all()]


async def test_a_message_shortcut_opens_a_ticket_with_its_text_link_and_files(
    world: World,
) -> None:
    """"Open a ticket" on a message: a modal asks Tom for the subject and severity, the
    message's text (unescaped) and permalink are the description, its text file an
    attachment (the program, of a type not accepted, stays in Slack)."""
    world.fake.files["trace.txt"] = b"traceback\n"
    message = {"type": "message", "user": TOM, "ts": "1700001000.000100",
               "text": "Export fails &amp; times out &lt;again&gt;",
               "files": [a_file(world, "trace.txt", kind="text/plain"),
                         a_file(world, "tool.exe", kind="application/x-msdownload", size=9)]}
    status, body, took = await world.slack.shortcut(TOM, MESSAGE_SHORTCUT, message,
                                                    channel=CHANNEL)
    assert (status, body) == (200, "") and took < 0.5
    [opened] = await world.fake.wait_for("views.open")
    view = opened["view"]
    inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert sorted(inputs) == ["SEVERITY", "SUBJECT"]
    [link] = world.fake.of("chat.getPermalink")
    assert (link["channel"], link["message_ts"]) == (CHANNEL, "1700001000.000100")
    assert [f[0] for f in json.loads(view["private_metadata"])["files"]] == ["trace.txt"]
    status, body, _ = await world.slack.submit(TOM, view, {"SUBJECT": "Export fails",
                                                           "SEVERITY": "sev2"})
    assert (status, body) == (200, "")
    await world.fake.wait_for("chat.postEphemeral")
    await world.adapter.settle()
    assert await descriptions(world) == [(
        "Export fails", "sev2", "Export fails & times out <again>\n\nFrom Slack: "
        "https://demo.slack.test/archives/C0SUPPORT/p1700001000000100")]
    assert await attachments(world) == [("trace.txt", "text/plain", 10, False,
                                         b"traceback\n")]


async def test_a_shortcut_by_someone_who_may_not_open_tickets_is_refused(
    world: World,
) -> None:
    """Someone not linked gets the core's refusal, ephemerally, and no modal."""
    message = {"type": "message", "user": TOM, "ts": "1700001100.000100", "text": "help"}
    await world.slack.shortcut("U0NOBODY", MESSAGE_SHORTCUT, message, channel=CHANNEL)
    [answer] = await world.fake.wait_for("response_url")
    assert answer["response_type"] == "ephemeral" and "link" in answer["text"].lower()
    assert world.fake.of("views.open") == [] and await world.tickets() == []


def reaction(user: str, channel: str, ts: str, *, name: str = "ticket",
             author: str = TOM) -> dict[str, Any]:
    return {"type": "reaction_added", "user": user, "reaction": name, "item_user": author,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": "1700002000.000001"}


async def opener_names(w: World) -> list[str]:
    async with w.app.db.read() as session:
        rows = await session.execute(select(ContactRow.name).join(
            TicketRow, TicketRow.opener_id == ContactRow.id).order_by(TicketRow.id))
        return [name for (name,) in rows.all()]


async def test_a_ticket_reaction_opens_one_ticket_for_the_messages_author(
    world: World,
) -> None:
    """Sam (support) reacts :ticket: to Tom's message: a ticket opens for Tom, its subject
    the first line, the text and permalink its description, and Sam is told ephemerally;
    Tom's own :ticket: on it, and Slack's retry, open nothing more."""
    ts = "1700002000.000100"
    world.fake.messages[CHANNEL] = [{"type": "message", "user": TOM, "team": TEAM, "ts": ts,
                                     "text": "Backups stopped last night\nSince 02:00"}]
    status, _, took = await world.slack.event(reaction(SAM, CHANNEL, ts), "EvT1")
    assert status == 200 and took < 0.5
    await world.adapter.settle()
    await world.slack.event(reaction(SAM, CHANNEL, ts), "EvT1", retry=1)
    await world.slack.event(reaction(TOM, CHANNEL, ts), "EvT2")
    await world.adapter.settle()
    assert await descriptions(world) == [(
        "Backups stopped last night", "sev3", "Backups stopped last night\nSince 02:00\n\n"
        f"From Slack: https://demo.slack.test/archives/{CHANNEL}/p1700002000000100")]
    assert await opener_names(world) == ["Tom Tech"]
    told = [(m["user"], m["text"].split(": ", 1)[1] if m["text"].startswith(":") else
             m["text"]) for m in world.fake.of("chat.postEphemeral")]
    assert told[0][0] == SAM and told[0][1].startswith(
        "For the author of this message: Opened ticket #1")
    assert told[1:] == [(TOM, "A ticket was already opened from this message.")]


async def test_a_ticket_reaction_is_refused_unless_the_author_may_open_tickets(
    world: World,
) -> None:
    """On a message by someone who is not a linked technical contact, Sam is told no ticket
    was opened; other reactions, and a :ticket: by a stranger on Tom's message, do
    nothing at all."""
    world.fake.messages[CHANNEL] = [
        {"type": "message", "user": "U0GUEST", "team": TEAM, "ts": "1.000001", "text": "hi"},
        {"type": "message", "user": TOM, "team": TEAM, "ts": "1.000002", "text": "VPN"}]
    await world.slack.event(reaction(SAM, CHANNEL, "1.000001", author="U0GUEST"), "EvU1")
    await world.slack.event(reaction(SAM, CHANNEL, "1.000002", name="eyes"), "EvU2")
    await world.slack.event(reaction("U0GUEST", CHANNEL, "1.000002"), "EvU3")
    await world.adapter.settle()
    assert await world.tickets() == []
    assert [(m["user"], m["text"].removeprefix(":warning: "))
            for m in world.fake.of("chat.postEphemeral")] == [
        (SAM, "No ticket opened: the author of this message may not open tickets "
              "(only a linked technical contact can).")]


CUSTOMER_TEAM = "T0CUSTOMER"


async def test_slack_connect_customers_are_known_by_their_own_workspace(
    world: World,
) -> None:
    """In a channel shared with the customer's workspace, events arrive through the
    vendor's (`team_id`) while the customer's user belongs to theirs: Tom, linked as his
    own workspace's U0CUST, is recognised from `user_team` in a thread reply, from the
    message's `user_team` on a :ticket: reaction, and through `users.info` when a message
    does not say."""
    await world.app.services.identity.admin_link(
        DEMO_TECH, Platform.SLACK, CUSTOMER_TEAM, "U0CUST")
    (_, card_ts), _ = await world.open_ticket()
    reply = {"type": "message", "channel": TOM_DM, "channel_type": "im", "user": "U0CUST",
             "user_team": CUSTOMER_TEAM, "source_team": CUSTOMER_TEAM, "team": TEAM,
             "text": "From the shared channel", "ts": "1700003000.000001",
             "thread_ts": card_ts}
    await world.slack.event(reply, "EvC1")
    await world.adapter.settle()
    assert await world.comments() == [("From the shared channel", False)]

    world.fake.messages[CHANNEL] = [
        {"type": "message", "user": "U0CUST", "user_team": CUSTOMER_TEAM, "team": TEAM,
         "ts": "2.000001", "text": "Reports are empty"},
        {"type": "message", "user": "U0CUST", "ts": "2.000002", "text": "Also the API"}]
    world.fake.users["U0CUST"] = {"id": "U0CUST", "team_id": CUSTOMER_TEAM}
    await world.slack.event(reaction(SAM, CHANNEL, "2.000001", author="U0CUST"), "EvC2")
    await world.adapter.settle()
    await world.slack.event(reaction(SAM, CHANNEL, "2.000002", author="U0CUST"), "EvC3")
    await world.adapter.settle()
    assert [t[1] for t in await world.tickets()] == [
        "VPN drops every hour", "Reports are empty", "Also the API"]
    assert await opener_names(world) == ["Tom Tech"] * 3
    assert [u["user"] for u in world.fake.of("users.info")].count("U0CUST") == 1



async def test_app_home_shows_the_viewers_open_tickets_and_a_new_ticket_button(
    world: World,
) -> None:
    """Opening the Home tab publishes Tom's open tickets; its "Open a ticket" button opens
    the new-ticket form. Someone not linked is told how to link instead."""
    await world.open_ticket()
    home = {"type": "app_home_opened", "user": TOM, "channel": TOM_DM, "tab": "home",
            "event_ts": "1700004000.000001"}
    assert (await world.slack.event(home, "EvH1"))[0] == 200
    [published] = await world.fake.wait_for("views.publish")
    assert published["user_id"] == TOM and published["view"]["type"] == "home"
    shown = json.dumps(published["view"]["blocks"])
    assert "VPN drops every hour" in shown
    new = buttons(published["view"]["blocks"])["Open a ticket"]
    await world.slack.interact({
        "type": "block_actions", "api_app_id": "A0APP", "trigger_id": "9.1.home",
        "team": {"id": TEAM}, "user": {"id": TOM, "username": "tom", "team_id": TEAM},
        "container": {"type": "view", "view_id": "V0HOME"}, "view": published["view"],
        "actions": [{"type": "button", "block_id": "b1", "action_id": new["action_id"],
                     "value": new["value"], "text": new["text"],
                     "action_ts": "1700004000.000002"}]})
    [opened] = await world.fake.wait_for("views.open")
    assert opened["trigger_id"] == "9.1.home"
    assert "SUBJECT" in [b["block_id"] for b in opened["view"]["blocks"]]

    await world.slack.event({**home, "user": "U0NOBODY"}, "EvH2")
    _, stranger = await world.fake.wait_for("views.publish", 2)
    assert stranger["user_id"] == "U0NOBODY"
    assert "link" in " ".join(mrkdwn(stranger["view"]["blocks"])).lower()
