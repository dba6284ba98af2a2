"""The work one import request may ask for: counts of records, checked on the parsed JSON
before the (much costlier) schema validation and import run."""

from __future__ import annotations

from typing import Any

from bot.wiring.config import Settings


def over_limits(kind: str, document: Any, settings: Settings) -> list[str]:
    """One line per list in `document` longer than the configured limit (empty when fine).

    Shapes other than the documented one are left to schema validation, which names them.
    """
    if not isinstance(document, dict):
        return []
    errors: list[str] = []

    def check(value: Any, path: str, limit: int, setting: str) -> None:
        if isinstance(value, list) and len(value) > limit:
            errors.append(f"{path}: {len(value)} items, at most {limit} per request ({setting})")

    if kind == "orders":
        organizations = document.get("organizations")
        check(organizations, "organizations", settings.api_max_organizations,
              "SUBDESK_API_MAX_ORGANIZATIONS")
        if isinstance(organizations, list) and not errors:
            for index, org in enumerate(organizations):
                if isinstance(org, dict):
                    check(org.get("contacts"), f"organizations[{index}].contacts",
                          settings.api_max_contacts, "SUBDESK_API_MAX_CONTACTS")
    else:
        for name in ("invoices", "payments"):
            check(document.get(name), name, settings.api_max_invoices, "SUBDESK_API_MAX_INVOICES")
    return errors[:20]
