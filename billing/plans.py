"""What a metered grant is billed at, as the app that sold it says.

Billing keys a subscription on the licensing Grant it bills and keeps the order that bought it as
an opaque id: the price, the meter, the currency and who is paid belong to the seller (the
marketplace's offers). Rather than read those through the order (an import upwards), billing asks
the one plan source the seller registers in its AppConfig.ready(). A query, not news: so a
registered function, not a signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MeteredPlan:
    """The billing facts of one metered grant."""

    order_id: object  # the billed order (settings.BILLING_ORDER_MODEL), opaque to billing
    provider: str  # billing.models.Provider
    customer_id: int  # the paying user
    payee_id: int  # the user paid (less the platform fee)
    stripe_customer_id: str  # "" when only the customer's BillingCustomer knows it
    meter_event_name: str
    currency: str
    cents_per_1k: int
    price_ensure: Callable[[], str]  # the Stripe Price id, created at Stripe the first time


_source: Callable[[object], MeteredPlan | None] | None = None


def plan_source_register(source: Callable[[object], MeteredPlan | None]) -> None:
    """Register the function that gives a grant id's plan (None: nobody sold that grant)."""
    global _source
    _source = source


def metered_plan(grant_id) -> MeteredPlan | None:
    """The plan of the grant, or None when no order pays for it.

    Raises LookupError when no app registered a plan source."""
    if _source is None:
        raise LookupError("No plan source is registered (the selling app's AppConfig.ready registers one).")
    return _source(grant_id)
