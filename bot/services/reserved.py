"""Staff and customer identities never overlap: the emails a customer contact may not take.

One email is one person. A vendor staff member's email, or any address in the vendor's own
domains (`SUBDESK_VENDOR_DOMAINS`), can never become a customer contact, whichever path
creates or changes the contact: commands, Technical Contact approvals, order imports.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.services.base import Invalid, Tx
from bot.wiring.config import Settings


def vendor_domain(settings: Settings, email: str) -> str | None:
    """The configured vendor domain `email` falls in (subdomains included), if any."""
    domain = email.rpartition("@")[2].lower()
    for vendor in settings.vendor_domains:
        if domain == vendor or domain.endswith("." + vendor):
            return vendor
    return None


async def reserved_emails(tx: Tx, settings: Settings, emails: Iterable[str]) -> dict[str, str]:
    """Why each of `emails` may not be a customer contact's (email → reason); the rest are
    absent. One query for the whole batch."""
    wanted = {e.lower() for e in emails}
    reasons = {email: f"{email} belongs to vendor staff"
               for email in await tx.directory.staff_emails(wanted)}
    for email in wanted - reasons.keys():
        domain = vendor_domain(settings, email)
        if domain is not None:
            reasons[email] = f"{email} is in the vendor's domain {domain}"
    return reasons


async def require_customer_email(tx: Tx, settings: Settings, email: str) -> None:
    """Refuse `email` for a customer contact when it is reserved for the vendor."""
    reasons = await reserved_emails(tx, settings, [email])
    if reasons:
        raise Invalid(f"{next(iter(reasons.values()))}; a customer contact needs their own "
                      "email.")
