"""A form asked one field at a time: answers checked as they come, refused ones asked
again, the filled form submitted as typed values."""

from __future__ import annotations

import pytest

from bot.commands import form_named
from bot.commands.prompts import answer, asking, submitted

pytestmark = pytest.mark.nodb


def test_a_ticket_form_is_asked_field_by_field() -> None:
    form = form_named("ticket.new")
    assert form is not None
    assert [f.name for f in form.to_ask] == ["SEVERITY", "SUBJECT", "DESCRIPTION"]
    refused = answer(form, "sev9")
    assert refused.form == form
    assert refused.problem == "SEVERITY must be one of sev1, sev2, sev3, sev4."
    step = answer(form, " sev2 ")
    assert step.problem is None and step.asking is not None and step.asking.name == "SUBJECT"
    needed = answer(step.form, "")
    assert needed.problem == "Subject is needed." and needed.form == step.form
    step = answer(answer(step.form, "VPN drops").form, "")
    assert step.problem is None and step.asking is None and asking(step.form) is None
    assert submitted(step.form) == {"SEVERITY": "sev2", "SUBJECT": "VPN drops"}


def test_values_known_already_are_not_asked() -> None:
    form = form_named("ticket.new", {"SEVERITY": "sev1"})
    assert form is not None
    field = asking(form)
    assert field is not None and field.name == "SUBJECT"
