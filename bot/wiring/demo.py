"""The demo organization `subdesk demo` seeds: every role, and one vendor staff member."""

from __future__ import annotations

import datetime as dt

from bot.clock import Clock
from bot.domain import Platform, StaffRole
from bot.services.onboarding import OrderForm
from bot.wiring.services import Services

DEMO_KEY = "demo"
DEMO_MAIN = "ana@demo.test"
DEMO_ADMIN = "ada@demo.test"
DEMO_TECH = "tom@demo.test"
DEMO_STAFF = "sam@vendor.test"


def demo_form(clock: Clock) -> OrderForm:
    today = clock.now().date()
    return OrderForm.model_validate(
        {
            "organizations": [
                {
                    "key": DEMO_KEY,
                    "name": "Demo Corp",
                    "program": "customer",
                    "level": "standard",
                    "region": "europe",
                    "timezone": "Europe/Madrid",
                    "subscription": {
                        "starts_on": str(today - dt.timedelta(days=30)),
                        "ends_on": str(today + dt.timedelta(days=335)),
                    },
                    "contacts": [
                        {"role": "main", "name": "Ana Main", "email": DEMO_MAIN},
                        {"role": "administrative", "name": "Ada Admin", "email": DEMO_ADMIN},
                        {"role": "technical", "name": "Tom Tech", "email": DEMO_TECH},
                    ],
                }
            ]
        }
    )


DEMO_STAFF_ROLES = [StaffRole.ENGINEER, StaffRole.BILLING, StaffRole.ADMIN]
CONSOLE_ACCOUNT = (Platform.CONSOLE, "local", "local")


async def seed_demo(services: Services, *, link_console: bool = False) -> bool:
    """Create the demo organization and staff member unless the organization exists, and
    (with `link_console`) point the local console account at its Technical Contact.

    Returns whether anything was seeded: an existing demo organization is left as its
    users changed it (re-importing would undo their role changes).
    """
    seeded = not await services.onboarding.has_organization(DEMO_KEY)
    if seeded:
        await services.onboarding.import_orders(demo_form(services.clock))
        await services.identity.add_staff(DEMO_STAFF, DEMO_STAFF_ROLES, "Sam Support")
    if link_console:
        platform, workspace, user = CONSOLE_ACCOUNT
        await services.identity.admin_link(DEMO_TECH, platform, workspace, user)
    return seeded
