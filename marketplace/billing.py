"""Metered offers, post-paid through Stripe Billing Meters.

Why post-paid meters and not prepaid credits: the ledger (inference.UsageEntry) already records
every token; reporting those tokens to a meter lets Stripe price and invoice them (unit price per
1,000 tokens on the Stripe Price), so no balance of money lives in our database and the customer
never buys credits they do not use. The card is saved at purchase (SetupIntent, or the fee's
PaymentIntent with setup_future_usage) and Stripe charges it each month.

`subscription_create_remote` subscribes the buyer to the offer's Price once the grant is paid (with
Stripe Connect, invoices are paid to the trainer's account less the platform's fee).
`meter_event_report(...)` is what meter event delivery (marketplace.metering) calls for each
settled generation of a metered grant, with the row's unique identifier (Stripe de-duplicates
meter events by identifier, so a retried report is never billed twice). The invoices come back
through webhooks (marketplace.webhooks → marketplace.subscriptions).

localstripe emulates none of these endpoints; tests/marketplace/test_stripe_contract.py checks each
call's method, path and parameters against a recording server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import stripe
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from .models import BillingCustomer, Offer, Order, PayoutAccount, StripeMeter, Subscription
from .stripe_gateway import stripe_client
from .subscriptions import subscription_record_created, subscription_record_failure

METER_EVENT_PREFIX = "imprint_tokens"


def meter_event_name(offer: Offer) -> str:
    """One Billing Meter per metered offer. Stripe sums a meter's events per customer and every
    subscription item priced on that meter bills the whole sum, so a customer holding two metered
    licences on one shared meter would pay for their usage twice."""
    return f"{METER_EVENT_PREFIX}_{offer.pk.hex}"


def billing_meter_ensure(offer: Offer) -> str:
    """The id of the offer's Billing Meter, which sums tokens per Stripe customer (created once)."""
    event_name = meter_event_name(offer)
    meter = StripeMeter.objects.filter(event_name=event_name).first()
    if meter is not None:
        return meter.stripe_meter_id
    created = stripe_client().v1.billing.meters.create(
        params={
            "display_name": f"Imprint tokens: {offer.listing.title[:60]} ({offer.name[:30]})",
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        },
        options={"idempotency_key": f"imprint-meter-{event_name}"},
    )
    try:
        StripeMeter.objects.create(event_name=event_name, stripe_meter_id=created.id)
    except IntegrityError:
        return StripeMeter.objects.get(event_name=event_name).stripe_meter_id
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
            "recurring": {"interval": "month", "usage_type": "metered", "meter": billing_meter_ensure(offer)},
            "product_data": {"name": f"{offer.listing.title}: {offer.name} (tokens)"},
            "metadata": {"imprint_offer": str(offer.pk), "unit": "token"},
        },
        options={"idempotency_key": f"imprint-price-{offer.pk}"},
    )
    Offer.objects.filter(pk=offer.pk, stripe_price_id="").update(stripe_price_id=price.id)
    return price.id


def _subscription_params(sub: Subscription) -> dict:
    order = sub.order
    billing = BillingCustomer.objects.get(user_id=order.customer_id)
    params = {
        "customer": order.stripe_customer_id or billing.stripe_customer_id,
        "items": [{"price": offer_price_ensure(order.offer)}],
        "metadata": {"imprint_order": str(order.pk), "imprint_grant": str(order.grant_id),
                     "imprint_subscription": str(sub.pk)},
    }
    if billing.default_payment_method:
        params["default_payment_method"] = billing.default_payment_method
    if sub.connect_account:
        # Stripe Connect: each invoice's payment goes to the trainer's account, less the platform's
        # fee as a percentage (basis points / 100, e.g. 2000 → "20", 1250 → "12.5").
        params["application_fee_percent"] = format((Decimal(settings.PLATFORM_FEE_BPS) / 100).normalize(), "f")
        params["transfer_data"] = {"destination": sub.connect_account}
    return params


def subscription_create_remote(*, subscription_id: int) -> Subscription:
    """Create the pending subscription at Stripe and record it; on failure record the error (the
    customer's page shows it, the sweep retries) and raise the Stripe error. The idempotency key is
    the row's, so a retry after a lost response never makes a second subscription."""
    sub = Subscription.objects.select_related("order__offer__listing").get(pk=subscription_id)
    if sub.state != Subscription.State.PENDING:
        return sub
    try:
        created = stripe_client().v1.subscriptions.create(
            params=_subscription_params(sub), options={"idempotency_key": f"imprint-subscription-{sub.order_id}"})
    except (stripe.StripeError, BillingCustomer.DoesNotExist) as exc:
        message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
        subscription_record_failure(subscription_id=sub.pk, error=f"Stripe refused the subscription: {message}")
        raise
    started = created.to_dict().get("start_date") or created.to_dict().get("created")
    started_at = datetime.fromtimestamp(int(started), tz=UTC) if started else timezone.now()
    return subscription_record_created(subscription_id=sub.pk, stripe_subscription_id=created.id,
                                       started_at=started_at)


def subscription_cancel_remote(*, subscription_id: int) -> None:
    """Cancel the subscription at Stripe now (its grant was revoked): no further invoices.
    Stripe's customer.subscription.deleted webhook then ends it here."""
    sub = Subscription.objects.get(pk=subscription_id)
    if sub.provider != Order.Provider.STRIPE or not sub.stripe_subscription_id:
        return
    try:
        stripe_client().v1.subscriptions.cancel(sub.stripe_subscription_id)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) != 404:  # already gone at Stripe: nothing to cancel
            raise


def meter_event_report(*, event_name: str, stripe_customer_id: str, tokens: int, identifier: str,
                       timestamp: int) -> None:
    """Report `tokens` used by a Stripe customer at `timestamp` (Unix seconds). `identifier` is
    unique per usage row: Stripe ignores a repeated identifier, which makes outbox retries safe."""
    stripe_client().v1.billing.meter_events.create(
        params={
            "event_name": event_name,
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
