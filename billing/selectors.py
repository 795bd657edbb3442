"""Billing reads."""

from __future__ import annotations


def metered_estimate_cents(tokens: int, cents_per_1k: int | None) -> int:
    """What Stripe will bill for `tokens` at `cents_per_1k`, as an estimate rounded to the cent
    (half up). Stripe computes the real amount from the meter; we never charge from this."""
    if not cents_per_1k:
        return 0
    return (tokens * cents_per_1k + 500) // 1000
