"""Satisfaction: the opener of a solved ticket is asked once per solve and rates it."""

from __future__ import annotations

import datetime as dt

from bot.presentation.messages import Actions, Button
from tests.harness import Harness
from tests.scenarios.tickets_world import SAM, TIA, TOM, build


def rating_buttons(h: Harness) -> list[Button]:
    asked = [m for m in h.delivered_to(TOM) if "How did we do?" in m.text]
    return [b for m in asked for block in m.blocks if isinstance(block, Actions)
            for b in block.buttons]


async def test_solving_asks_the_opener_once_and_the_rating_reaches_staff(
    harness: Harness,
) -> None:
    """Solve → one "How did we do?" with good/bad buttons; pressing Good records it, a
    typed rating with a comment changes it; staff see it on the ticket, the customer's
    colleague cannot rate, and an open ticket cannot be rated."""
    await build(harness)
    tom, sam = harness.as_(TOM), harness.as_(SAM)
    await tom.send("/ticket new sev3 Slow exports")
    early = await tom.send("/ticket rate 1 good")
    assert "once it is solved" in early.message.text
    await sam.send("/triage status 1 solved")
    await harness.drain()
    buttons = rating_buttons(harness)
    assert [(b.label, b.command, b.values) for b in buttons] == [
        ("Good", "ticket.rate", {"ID": "1", "RATING": "good"}),
        ("Bad", "ticket.rate", {"ID": "1", "RATING": "bad"}),
    ]
    assert (await tom.press(buttons[0])).ok
    shown = (await sam.send("/ticket show 1")).message.text
    assert "Satisfaction: good from Tom Tech" in shown
    await tom.send("/ticket rate #1 bad Took two days")
    shown = (await sam.send("/ticket show 1")).message.text
    assert "Satisfaction: bad from Tom Tech" in shown and "Took two days" in shown
    assert "Satisfaction" not in (await tom.send("/ticket show 1")).message.text
    refused = await harness.as_(TIA).send("/ticket rate 1 good")
    assert not refused.ok
    await harness.drain()
    assert len(rating_buttons(harness)) == 2, "asked once for this solve"
    harness.clock.advance(dt.timedelta(days=1))
    await tom.send("/ticket comment 1 Slow again")  # reopens
    await sam.send("/triage status 1 solved")
    await harness.drain()
    assert len(rating_buttons(harness)) == 4, "asked again for the new solve"
    usage = await tom.send("/ticket rate 1 meh")
    assert "RATING must be one of" in usage.message.text or "good" in usage.message.text
