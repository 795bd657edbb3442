"""Metered offers, post-paid through Stripe Billing Meters.

Why post-paid meters and not prepaid credits: the ledger (inference.UsageEntry) already records
every token; reporting those tokens to a meter lets Stripe price and invoice them (unit price per
1,000 tokens on the Stripe Price), so no balance of money lives in our database and the customer
never buys credits they do not use. The card is saved at purchase (SetupIntent, or the fee's
PaymentIntent with setup_future_usage) and Stripe charges it each month.

`meter_event_report(...)` is what meter event delivery (marketplace.metering) calls for each
settled generation of a metered grant, with the row's unique identifier (Stripe de-duplicates
meter events by identifier, so a retried report is never billed twice).

localstripe emulates none of these endpoints; tests/marketplace/test_stripe_contract.py checks each
call's method, path and parameters against a recording server.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError

from .models import BillingCustomer, Offer, Order, PayoutAccount, StripeMeter
from .stripe_gateway import stripe_client

METER_EVENT_NAME = "imprint_tokens"


def billing_meter_ensure() -> str:
    """The id of the Billing Meter that sums tokens per Stripe customer (created once)."""
    meter = StripeMeter.objects.filter(event_name=METER_EVENT_NAME).first()
    if meter is not None:
        return meter.stripe_meter_id
    created = stripe_client().v1.billing.meters.create(
        params={
            "display_name": "Imprint generated tokens",
            "event_name": METER_EVENT_NAME,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        options={"idempotency_key": f"imprint-meter-{METER_EVENT_NAME}"},
    )
    try:
        StripeMeter.objects.create(event_name=METER_EVENT_NAME, stripe_meter_id=created.id)
    except IntegrityError:
        return StripeMeter.objects.get(event_name=METER_EVENT_NAME).stripe_meter_id
    return created.id


def offer_price_ensure(offer: Offer) -> str:
    """The Stripe Price of a metered offer: `metered_cents_per_1k` per 1,000 tokens, expressed as
    an exact decimal amount per token (Stripe allows 12 decimals), billed monthly from the meter."""
    if offer.stripe_price_id:
        return offer.stripe_price_id
    per_token = Decimal(offer.metered_cents_per_1k) / 1000
    price = stripe_client().v1.prices.create(
        params={
            "currency": offer.currency,
            "unit_amount_decimal": format(per_token.normalize(), "f"),
            "recurring": {"interval": "month", "usage_type": "metered", "meter": billing_meter_ensure()},
            "product_data": {"name": f"{offer.listing.title}: {offer.name} (tokens)"},
            "metadata": {"imprint_offer": str(offer.pk), "unit": "token"},
        },
        options={"idempotency_key": f"imprint-price-{offer.pk}"},
    )
    Offer.objects.filter(pk=offer.pk, stripe_price_id="").update(stripe_price_id=price.id)
    return price.id


def metered_subscription_create(order: Order) -> str:
    """Subscribe the buyer of a metered offer to its Price, charging the saved card each month."""
    if order.stripe_subscription_id:
        return order.stripe_subscription_id
    billing = BillingCustomer.objects.get(user_id=order.customer_id)
    params = {
        "customer": billing.stripe_customer_id,
        "items": [{"price": offer_price_ensure(order.offer)}],
        "metadata": {"imprint_order": str(order.pk), "imprint_grant": str(order.grant_id)},
    }
    if billing.default_payment_method:
        params["default_payment_method"] = billing.default_payment_method
    subscription = stripe_client().v1.subscriptions.create(
        params=params, options={"idempotency_key": f"imprint-subscription-{order.pk}"}
    )
    Order.objects.filter(pk=order.pk).update(stripe_subscription_id=subscription.id)
    return subscription.id


def meter_event_report(*, stripe_customer_id: str, tokens: int, identifier: str, timestamp: int) -> None:
    """Report `tokens` used by a Stripe customer at `timestamp` (Unix seconds). `identifier` is
    unique per usage row: Stripe ignores a repeated identifier, which makes outbox retries safe."""
    stripe_client().v1.billing.meter_events.create(
        params={
            "event_name": METER_EVENT_NAME,
            "payload": {"stripe_customer_id": stripe_customer_id, "value": str(int(tokens))},
            "identifier": identifier,
            "timestamp": int(timestamp),
        }
    )


def payout_account_onboard(*, trainer, refresh_url: str, return_url: str) -> str:
    """The URL of Stripe's onboarding for the trainer's Connect (Express) account, creating the
    account the first time. Charges go to it only once Stripe reports transfers active
    (account.updated webhook); until then the payouts ledger shows what the trainer is owed."""
    account = PayoutAccount.objects.filter(user=trainer).first()
    if account is None:
        created = stripe_client().v1.accounts.create(
            params={"type": "express", "email": trainer.email,
                    "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
                    "metadata": {"imprint_user": str(trainer.pk)}},
            options={"idempotency_key": f"imprint-connect-{trainer.pk}"},
        )
        account, _ = PayoutAccount.objects.get_or_create(user=trainer, defaults={"stripe_account_id": created.id})
    link = stripe_client().v1.account_links.create(
        params={"account": account.stripe_account_id, "refresh_url": refresh_url, "return_url": return_url,
                "type": "account_onboarding"}
    )
    return link.url
