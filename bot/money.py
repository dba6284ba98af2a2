"""Money and dates as a reader in the organization's region expects them, via Babel.

Locale by region: `us` → en_US, `europe` → en_IE (English wording with euro-area
conventions, e.g. "1 Dec 2026", "€1,200.00"), `worldwide` → en_US. Amounts always keep
the invoice's own currency; the locale only decides symbols, separators and placement.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel.dates import format_date
from babel.numbers import format_currency, list_currencies

from bot.domain import Region

LOCALES: dict[Region, str] = {
    Region.US: "en_US",
    Region.EUROPE: "en_IE",
    Region.WORLDWIDE: "en_US",
}


def locale_for(region: Region | str) -> str:
    """The Babel locale used for an organization's region."""
    try:
        return LOCALES[Region(region)]
    except ValueError:
        return "en_US"


@lru_cache(maxsize=4096)
def money(amount: Decimal, currency: str, region: Region | str) -> str:
    """`amount` in `currency`, formatted for the region's locale (e.g. "€1,200.00")."""
    return str(format_currency(amount, currency, locale=locale_for(region)))


@lru_cache(maxsize=4096)
def day(value: dt.date, region: Region | str) -> str:
    """A date in the region's medium format (e.g. "1 Dec 2026" or "Dec 1, 2026")."""
    return str(format_date(value, format="medium", locale=locale_for(region)))


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    """ISO 4217 codes Babel knows."""
    return frozenset(list_currencies())
