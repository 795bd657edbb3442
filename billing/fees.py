"""The platform's fee, stated once.

PLATFORM_FEE_BPS (basis points: 2000 is 20 %) of a gross amount in integer cents, ROUNDED DOWN to
the cent, so the payee is never short-changed by rounding; the payee's share is the rest, so the
two always add up to the gross. Checkout's Connect `application_fee_amount`, a metered
subscription's `application_fee_percent` and every payout entry derive from this module.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings


def platform_fee_cents(gross_cents: int) -> int:
    """The platform's fee of `gross_cents` (rounded down to the cent)."""
    return gross_cents * settings.PLATFORM_FEE_BPS // 10_000


def payout_split(gross_cents: int) -> tuple[int, int]:
    """(platform fee, payee share) of `gross_cents`; they add up to the gross."""
    fee = platform_fee_cents(gross_cents)
    return fee, gross_cents - fee


def application_fee_percent() -> str:
    """The fee as Stripe's percentage string for subscriptions (2000 → "20", 1250 → "12.5").
    Stripe applies it to each invoice and rounds itself; the payout entry of a paid invoice is
    still split by `payout_split`."""
    return format((Decimal(settings.PLATFORM_FEE_BPS) / 100).normalize(), "f")
