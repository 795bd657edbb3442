"""The one module that talks to Stripe (tests and benches aside).

Plain values go in and plain dataclasses come out, never the SDK's objects; every Stripe error is
translated into billing's own (`billing.errors`). Every call happens outside a database
transaction (a slow or failing network call must not hold row locks). STRIPE_API_BASE points the
client at localstripe (tests, local development) or at a recording server (contract tests).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal

import stripe
from django.conf import settings

from .errors import CardDeclined, GatewayError, GatewayTransient, SignatureInvalid
from .fees import application_fee_percent

_TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def stripe_client() -> stripe.StripeClient:
    """The SDK client for the configured account (SDK retries once on a network error)."""
    kwargs = {}
    if settings.STRIPE_API_BASE:
        base = settings.STRIPE_API_BASE.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "files": base, "connect": base, "meter_events": base}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, max_network_retries=1, **kwargs)


def payments_in_test_mode() -> bool:
    """No Stripe key: the embedded default's local test-mode provider (labelled on every page)."""
    return settings.PAYMENTS_TEST_MODE or not settings.STRIPE_SECRET_KEY


@contextlib.contextmanager
def _translated():
    """Stripe's errors as billing's: declined cards, transient failures, and the rest."""
    try:
        yield
    except stripe.StripeError as exc:
        kind = CardDeclined if isinstance(exc, stripe.CardError) else (
            GatewayTransient if isinstance(exc, _TRANSIENT) else GatewayError)
        raise kind(str(exc), user_message=exc.user_message or "", http_status=exc.http_status) from exc


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent or SetupIntent as billing needs it."""

    id: str
    status: str
    client_secret: str = ""
    payment_method: str = ""
    metadata: dict = field(default_factory=dict)
    charge: str = ""  # a PaymentIntent's latest charge (what a transfer's source_transaction names)


def _object_id(value) -> str:
    return (value if isinstance(value, str) else (value or {}).get("id", "")) or ""


def _intent(obj) -> Intent:
    data = obj.to_dict()
    return Intent(id=data["id"], status=data.get("status") or "", client_secret=data.get("client_secret") or "",
                  payment_method=_object_id(data.get("payment_method")), metadata=dict(data.get("metadata") or {}),
                  charge=_object_id(data.get("latest_charge")))


# --- Customers and cards -------------------------------------------------------------------------

def customer_create(*, user_id, email: str, name: str) -> str:
    """A Stripe Customer for the user (one per user: the idempotency key is the user's)."""
    with _translated():
        return stripe_client().v1.customers.create(
            params={"email": email, "name": name, "metadata": {"imprint_user": str(user_id)}},
            options={"idempotency_key": f"imprint-customer-{user_id}"},
        ).id


def setup_intent_create(*, customer: str, order_id) -> Intent:
    """A SetupIntent saving a card for off-session use (metered offers charge it monthly)."""
    with _translated():
        return _intent(stripe_client().v1.setup_intents.create(
            params={"customer": customer, "usage": "off_session", "payment_method_types": ["card"],
                    "metadata": {"imprint_order": str(order_id)}},
            options={"idempotency_key": f"imprint-order-{order_id}-setup"},
        ))


def setup_intent_retrieve(intent_id: str) -> Intent:
    with _translated():
        return _intent(stripe_client().v1.setup_intents.retrieve(intent_id))


@dataclass(frozen=True)
class Destination:
    """Stripe Connect destination charge: the payee's account gets the money less our fee."""

    account: str
    application_fee_cents: int


def payment_intent_confirm(*, order_id, offer_id, amount_cents: int, currency: str, customer: str,
                           payment_method: str, destination: Destination | None) -> Intent:
    """Charge `amount_cents` on the saved card now. One idempotency key per order and card: a
    retried click never charges twice, a new card can. Raises CardDeclined, GatewayError."""
    params = {"amount": amount_cents, "currency": currency, "customer": customer,
              "payment_method_types": ["card"],
              "metadata": {"imprint_order": str(order_id), "imprint_offer": str(offer_id)}}
    if destination is not None:
        params["application_fee_amount"] = destination.application_fee_cents
        params["transfer_data"] = {"destination": destination.account}
    params.update(payment_method=payment_method, confirm=True)
    with _translated():
        return _intent(stripe_client().v1.payment_intents.create(
            params=params, options={"idempotency_key": f"imprint-order-{order_id}-{payment_method}"}))


def held_setup_intent_create(*, customer: str, purpose: str, key: str) -> Intent:
    """A SetupIntent saving the payer's card for a held payment (`purpose` in its metadata)."""
    with _translated():
        return _intent(stripe_client().v1.setup_intents.create(
            params={"customer": customer, "payment_method_types": ["card"], "metadata": {"imprint_held": purpose}},
            options={"idempotency_key": key}))


def held_payment_intent_confirm(*, purpose: str, amount_cents: int, currency: str, customer: str,
                                payment_method: str, transfer_group: str) -> Intent:
    """Charge `amount_cents` to the platform's own account (no destination: the money is held until
    it is transferred or refunded). `transfer_group` ties the later transfer to this charge. One
    idempotency key per purpose and card. Raises CardDeclined, GatewayError."""
    params = {"amount": amount_cents, "currency": currency, "customer": customer, "payment_method_types": ["card"],
              "metadata": {"imprint_held": purpose}, "transfer_group": transfer_group,
              "payment_method": payment_method, "confirm": True}
    with _translated():
        return _intent(stripe_client().v1.payment_intents.create(
            params=params, options={"idempotency_key": f"imprint-held-{purpose}-{payment_method}"}))


def payment_intent_retrieve(intent_id: str) -> Intent:
    with _translated():
        return _intent(stripe_client().v1.payment_intents.retrieve(intent_id))


def refund_create(*, payment_reference: str, amount_cents: int | None = None, key: str) -> str:
    """Refund a PaymentIntent (all of it, or `amount_cents`); returns the refund's id."""
    params = {"payment_intent": payment_reference}
    if amount_cents is not None:
        params["amount"] = amount_cents
    with _translated():
        return stripe_client().v1.refunds.create(params=params, options={"idempotency_key": key}).id


def transfer_create(*, account: str, amount_cents: int, currency: str, key: str,
                    source_transaction: str = "", transfer_group: str = "") -> str:
    """Move `amount_cents` of the platform's balance to a Connect account; returns the transfer's id.
    With `source_transaction` (a charge id) the transfer is paid from that charge's funds, so it
    never waits on or overdraws the platform's available balance."""
    params = {"destination": account, "amount": amount_cents, "currency": currency}
    if source_transaction:
        params["source_transaction"] = source_transaction
    if transfer_group:
        params["transfer_group"] = transfer_group
    with _translated():
        return stripe_client().v1.transfers.create(params=params, options={"idempotency_key": key}).id


# --- Metered prices, meters, subscriptions and meter events ----------------------------------------

def meter_create(*, event_name: str, display_name: str) -> str:
    """A Billing Meter summing the `value` of `event_name` events per Stripe customer."""
    with _translated():
        return stripe_client().v1.billing.meters.create(
            params={"display_name": display_name, "event_name": event_name,
                    "default_aggregation": {"formula": "sum"},
                    "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
                    "value_settings": {"event_payload_key": "value"}},
            options={"idempotency_key": f"imprint-meter-{event_name}"},
        ).id


def metered_price_create(*, key: str, currency: str, cents_per_1k: int, meter: str, product_name: str,
                         metadata: dict) -> str:
    """A monthly metered Price: `cents_per_1k` per 1,000 tokens as an exact decimal amount per token
    (Stripe allows 12 decimals)."""
    per_token = Decimal(cents_per_1k) / 1000
    with _translated():
        return stripe_client().v1.prices.create(
            params={"currency": currency, "unit_amount_decimal": format(per_token.normalize(), "f"),
                    "recurring": {"interval": "month", "usage_type": "metered", "meter": meter},
                    "product_data": {"name": product_name}, "metadata": {**metadata, "unit": "token"}},
            options={"idempotency_key": key},
        ).id


@dataclass(frozen=True)
class RemoteSubscription:
    id: str
    started: int | None  # Unix seconds


def subscription_create(*, key: str, customer: str, price: str, metadata: dict, payment_method: str = "",
                        connect_account: str = "") -> RemoteSubscription:
    """Subscribe the customer to a metered price; with `connect_account` each invoice is paid to it
    less the platform's fee. `key` makes a retry after a lost response return the same one."""
    params = {"customer": customer, "items": [{"price": price}], "metadata": metadata}
    if payment_method:
        params["default_payment_method"] = payment_method
    if connect_account:
        params["application_fee_percent"] = application_fee_percent()
        params["transfer_data"] = {"destination": connect_account}
    with _translated():
        data = stripe_client().v1.subscriptions.create(params=params, options={"idempotency_key": key}).to_dict()
    return RemoteSubscription(id=data["id"], started=data.get("start_date") or data.get("created"))


def subscription_cancel(subscription_id: str) -> None:
    """Cancel now (no further invoices); one already gone at Stripe counts as cancelled."""
    try:
        with _translated():
            stripe_client().v1.subscriptions.cancel(subscription_id)
    except GatewayError as exc:
        if exc.http_status != 404 or isinstance(exc, GatewayTransient):
            raise


def meter_event_create(*, event_name: str, stripe_customer_id: str, tokens: int, identifier: str,
                       timestamp: int) -> None:
    """Report `tokens` at `timestamp` (Unix seconds). Stripe ignores a repeated `identifier`."""
    with _translated():
        stripe_client().v1.billing.meter_events.create(
            params={"event_name": event_name,
                    "payload": {"stripe_customer_id": stripe_customer_id, "value": str(int(tokens))},
                    "identifier": identifier, "timestamp": int(timestamp)})


# --- Connect and webhooks --------------------------------------------------------------------------

def connect_account_create(*, user_id, email: str) -> str:
    """An Express account able to take card payments and receive transfers."""
    with _translated():
        return stripe_client().v1.accounts.create(
            params={"type": "express", "email": email,
                    "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
                    "metadata": {"imprint_user": str(user_id)}},
            options={"idempotency_key": f"imprint-connect-{user_id}"},
        ).id


def connect_onboarding_link(*, account: str, refresh_url: str, return_url: str) -> str:
    with _translated():
        return stripe_client().v1.account_links.create(
            params={"account": account, "refresh_url": refresh_url, "return_url": return_url,
                    "type": "account_onboarding"}).url


def webhook_verify(*, body: bytes, signature: str, secret: str) -> None:
    """Raise SignatureInvalid unless `body` was signed by Stripe with `secret` (recently)."""
    try:
        stripe.Webhook.construct_event(body, signature, secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise SignatureInvalid(str(exc)) from exc
