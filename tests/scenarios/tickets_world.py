"""A small world for ticket scenarios: two customer organizations, an expired one, a sole
Main Contact, and a support engineer."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.domain import StaffRole
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

ANA = "ana@acme.test"  # Main Contact of acme
ADA = "ada@acme.test"  # Administrative Contact of acme
TOM = "tom@acme.test"  # Technical Contact of acme
TIA = "tia@acme.test"  # Technical Contact of acme
BOB = "bob@beta.test"  # Technical Contact of beta
OLGA = "olga@old.test"  # Technical Contact of an expired subscription
SOL = "sol@solo.test"  # the only contact of solo
SAM = "sam@vendor.test"  # support engineer
BEA = "bea@vendor.test"  # billing agent
CUSTOMERS = (ANA, ADA, TOM, TIA, BOB, OLGA, SOL)


async def build(h: Harness) -> None:
    await h.import_orders(
        form(
            organization("acme", [
                contact("main", ANA, "Ana Main"),
                contact("administrative", ADA, "Ada Admin"),
                contact("technical", TOM, "Tom Tech"),
                contact("technical", TIA, "Tia Tech"),
            ]),
            organization("beta", [contact("main", "bo@beta.test"),
                                  contact("technical", BOB, "Bob Beta")], level="premium"),
            organization("old", [contact("main", "oz@old.test"),
                                 contact("technical", OLGA, "Olga Old")],
                         starts_on="2025-01-01", ends_on="2026-10-31"),
            organization("solo", [contact("main", SOL, "Sol Solo")], level="basic"),
        )
    )
    await h.add_staff(SAM, StaffRole.ENGINEER, name="Sam Support")
    await h.add_staff(BEA, StaffRole.BILLING, name="Bea Billing")
    await h.drain()
    h.console.delivered.clear()
    h.email.delivered.clear()


def customer_texts(h: Harness) -> str:
    """Everything any customer was sent, by any channel, as one text."""
    return "\n".join(m.plain() + "\n" + m.text for item, m in h.delivered
                     if item.target in CUSTOMERS)


async def count(h: Harness, model: type[object]) -> int:
    async with h.app.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
