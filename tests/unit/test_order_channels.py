"""Alert channels in an order form: Slack channel ids and Matrix room ids, including those
of room version 12, whose ids no longer name a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.services.onboarding import OrderForm
from tests.scenarios.orders import contact, form, organization

pytestmark = pytest.mark.nodb


def order(*channels: str) -> OrderForm:
    return OrderForm.model_validate(form(organization(
        "acme", [contact("main", "ana@acme.test")], alert_channels=list(channels))))


@pytest.mark.parametrize("channel", [
    "slack:C0ACME", "matrix:!alerts:acme.test", "matrix:!alerts:acme.test:8448",
    "matrix:!QHB_81WhAI2MetdjdIXpg_nFvMmTe17GsqtJve0jb40",
])
def test_slack_channels_and_matrix_rooms_of_every_version_are_accepted(channel: str) -> None:
    """`!opaque:server` and, from room version 12 on, `!opaque` alone."""
    assert order(channel).organizations[0].alert_channels == [channel]


@pytest.mark.parametrize("channel", [
    "matrix:#alerts:acme.test", "matrix:!", "matrix:!room with space", "slack:#alerts",
    "teams:C0ACME",
])
def test_anything_else_is_refused_naming_the_shapes(channel: str) -> None:
    with pytest.raises(ValidationError) as caught:
        order(channel)
    assert "must be slack:CHANNEL_ID or matrix:!ROOM_ID" in str(caught.value)
