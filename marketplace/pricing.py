"""Metered offers at Stripe, and the plan billing bills a metered grant at.

Why post-paid meters and not prepaid credits: the ledger (inference.UsageEntry) already records
every token; reporting those tokens to a meter lets Stripe price and invoice them (unit price per
1,000 tokens on the Stripe Price), so no balance of money lives in our database and the customer
never buys credits they do not use. The card is saved at purchase (SetupIntent) and Stripe charges
it each month.

Billing keys subscriptions on grants and asks `metered_plan_of_grant` (registered in
MarketplaceConfig.ready) what a grant is billed at: the offer's meter and price, and its trainer.

localstripe emulates none of these endpoints; tests/marketplace/test_stripe_contract.py checks each
call's method, path and parameters against a recording server.
"""

from __future__ import annotations

from billing import gateway
from billing.metering import meter_ensure
from billing.plans import MeteredPlan

from .models import Offer, Order

METER_EVENT_PREFIX = "imprint_tokens"


def meter_event_name(offer: Offer) -> str:
    """One Billing Meter per metered offer. Stripe sums a meter's events per customer and every
    subscription item priced on that meter bills the whole sum, so a customer holding two metered
    licences on one shared meter would pay for their usage twice."""
    return f"{METER_EVENT_PREFIX}_{offer.pk.hex}"


def billing_meter_ensure(offer: Offer) -> str:
    """The id of the offer's Billing Meter (created at Stripe once)."""
    return meter_ensure(event_name=meter_event_name(offer),
                        display_name=f"Imprint tokens: {offer.listing.title[:60]} ({offer.name[:30]})")


def offer_price_ensure(offer: Offer) -> str:
    """The Stripe Price of a metered offer: `metered_cents_per_1k` per 1,000 tokens, billed monthly
    from the offer's meter (created once). Raises billing.errors.GatewayError."""
    if offer.stripe_price_id:
        return offer.stripe_price_id
    meter = billing_meter_ensure(offer)
    price = gateway.metered_price_create(
        key=f"imprint-price-{offer.pk}", currency=offer.currency, cents_per_1k=offer.metered_cents_per_1k,
        meter=meter, product_name=f"{offer.listing.title}: {offer.name} (tokens)",
        metadata={"imprint_offer": str(offer.pk)})
    Offer.objects.filter(pk=offer.pk, stripe_price_id="").update(stripe_price_id=price)
    return price


def metered_plan_of_grant(grant_id) -> MeteredPlan | None:
    """What the grant's order bought, as billing needs it (None: no order pays for the grant)."""
    order = Order.objects.select_related("offer__listing").filter(grant_id=grant_id).first()
    if order is None:
        return None
    offer = order.offer
    return MeteredPlan(order_id=order.pk, provider=order.provider, customer_id=order.customer_id,
                       payee_id=offer.listing.trainer_id, stripe_customer_id=order.stripe_customer_id,
                       meter_event_name=meter_event_name(offer), currency=offer.currency,
                       cents_per_1k=offer.metered_cents_per_1k or 0, price_ensure=lambda: offer_price_ensure(offer))
