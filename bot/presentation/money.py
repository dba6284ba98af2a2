"""Money and dates as a reader in the organization's region expects them, via Babel.

Locale by region: `us` → en_US, `europe` → en_IE (English wording with euro-area
conventions, e.g. "1 Dec 2026", "€1,200.00"), `worldwide` → en_US. Amounts always keep
the invoice's own currency; the locale only decides symbols, separators and placement.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel.core import get_global
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision

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


Period = tuple[dt.date | None, dt.date | None]


@lru_cache(maxsize=1)
def _tender_periods() -> dict[str, tuple[Period, ...]]:
    """For each currency, when it was legal tender in some territory (CLDR via Babel)."""
    periods: dict[str, list[Period]] = {}
    for entries in get_global("territory_currencies").values():
        for code, start, end, tender in entries:
            if tender:
                periods.setdefault(code, []).append(
                    (dt.date(*start) if start else None, dt.date(*end) if end else None)
                )
    return {code: tuple(p) for code, p in periods.items()}


def currency_in_use(code: str, on: dt.date) -> bool:
    """Whether `code` is an ISO 4217 currency that is legal tender somewhere on `on`: never
    the fund, metal and test codes (XXX, XAU, XTS...), nor one withdrawn by then."""
    return any(
        (start is None or start <= on) and (end is None or on <= end)
        for start, end in _tender_periods().get(code, ())
    )


def in_minor_units(amount: Decimal, code: str) -> bool:
    """Whether `amount` can be written in `code` (JPY has no cents, KWD has fils: three
    decimal places): no finer than the currency's smallest unit."""
    step = Decimal(1).scaleb(-get_currency_precision(code))
    return amount == amount.quantize(step)


def minor_digits(code: str) -> int:
    return int(get_currency_precision(code))
