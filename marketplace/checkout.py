"""Checkout through Stripe: a Stripe Customer per user, then a PaymentIntent for the one-time fee
(or a SetupIntent that saves the card of a metered, post-paid offer) for the customer to confirm
in the page with Stripe.js. Nothing here activates a grant: only the signed webhook does.

Every Stripe call runs outside a database transaction; the rows are written before (the order)
and after (the intent's id) in short transactions of their own.
"""

from __future__ import annotations

import logging

import stripe
from django.db import IntegrityError

from .errors import OrderNotFound, PaymentDeclined, PaymentProviderError
from .models import BillingCustomer, Order
from .services import (
    Checkout,
    order_create,
    order_mark_failed,
    payout_split,
    trainer_connect_account,
)
from .stripe_gateway import payments_in_test_mode, stripe_client

log = logging.getLogger(__name__)


def billing_customer_ensure(user) -> str:
    """The user's Stripe Customer id, created at Stripe the first time.

    Raises PaymentProviderError when Stripe fails."""
    existing = BillingCustomer.objects.filter(user=user).first()
    if existing is not None:
        return existing.stripe_customer_id
    try:
        customer = stripe_client().v1.customers.create(
            params={"email": user.email, "name": user.get_full_name() or user.username,
                    "metadata": {"imprint_user": str(user.pk)}},
            options={"idempotency_key": f"imprint-customer-{user.pk}"},
        )
    except stripe.StripeError as exc:
        raise PaymentProviderError(f"Stripe could not create the customer: {exc.user_message or exc}") from exc
    try:
        BillingCustomer.objects.create(user=user, stripe_customer_id=customer.id)
    except IntegrityError:
        # A concurrent checkout created it first; the idempotency key made Stripe return the same one.
        return BillingCustomer.objects.get(user=user).stripe_customer_id
    return customer.id


def _payment_intent_params(order: Order, stripe_customer: str) -> dict:
    params = {
        "amount": order.amount_cents,
        "currency": order.currency,
        "customer": stripe_customer,
        "payment_method_types": ["card"],
        "metadata": {"imprint_order": str(order.pk), "imprint_offer": str(order.offer_id)},
    }
    destination = trainer_connect_account(order.offer.listing.trainer)
    if destination:
        # Stripe Connect destination charge: the trainer's account gets the money, minus our fee.
        params["application_fee_amount"] = payout_split(order.amount_cents)[0]
        params["transfer_data"] = {"destination": destination}
    if order.offer.is_metered:
        # Post-paid usage is charged to the same card later, off session.
        params["setup_future_usage"] = "off_session"
    return params


def _create_intent(order: Order, stripe_customer: str) -> Checkout:
    client = stripe_client()
    options = {"idempotency_key": f"imprint-order-{order.pk}"}
    if order.amount_cents:
        intent = client.v1.payment_intents.create(params=_payment_intent_params(order, stripe_customer),
                                                  options=options)
        Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id=intent.id,
                                                 stripe_customer_id=stripe_customer)
        order.stripe_payment_intent_id = intent.id
        return Checkout(order=order, client_secret=intent.client_secret, intent_kind="payment")
    intent = client.v1.setup_intents.create(
        params={"customer": stripe_customer, "usage": "off_session", "payment_method_types": ["card"],
                "metadata": {"imprint_order": str(order.pk)}},
        options=options,
    )
    Order.objects.filter(pk=order.pk).update(stripe_setup_intent_id=intent.id, stripe_customer_id=stripe_customer)
    order.stripe_setup_intent_id = intent.id
    return Checkout(order=order, client_secret=intent.client_secret, intent_kind="setup")


def purchase_start(*, customer, offer_id, accepted_terms_sha256: str, ip_address: str | None,
                   user_agent: str = "") -> Checkout:
    """Start buying an offer: record the acceptance and a pending order, then (with Stripe) create
    the intent the page confirms. In local test mode the order waits for a test card instead.

    Raises OfferNotFound, TermsChanged, PaymentProviderError (the order is then marked failed)."""
    provider = Order.Provider.LOCAL_TEST if payments_in_test_mode() else Order.Provider.STRIPE
    order = order_create(customer=customer, offer_id=offer_id, accepted_terms_sha256=accepted_terms_sha256,
                         ip_address=ip_address, user_agent=user_agent, provider=provider)
    if provider == Order.Provider.LOCAL_TEST:
        return Checkout(order=order)
    try:
        return _create_intent(order, billing_customer_ensure(customer))
    except (stripe.StripeError, PaymentProviderError) as exc:
        message = getattr(exc, "user_message", None) or str(exc)
        order_mark_failed(order_id=order.pk, message=f"Payment could not start: {message}")
        log.warning("order %s: Stripe refused the intent: %s", order.pk, exc)
        raise PaymentProviderError(f"Payment could not start: {message}") from exc


def checkout_resume(*, order_id, customer) -> Checkout:
    """The checkout of a pending order again (the payment page reloaded): the client secret is
    read back from Stripe rather than stored. Raises OrderNotFound, PaymentProviderError."""
    order = Order.objects.select_related("offer__listing").filter(pk=order_id, customer=customer).first()
    if order is None:
        raise OrderNotFound("No such order of yours.", param="order")
    if order.provider == Order.Provider.LOCAL_TEST or order.state != Order.State.PENDING:
        return Checkout(order=order)
    try:
        if order.stripe_payment_intent_id:
            intent = stripe_client().v1.payment_intents.retrieve(order.stripe_payment_intent_id)
            return Checkout(order=order, client_secret=intent.client_secret, intent_kind="payment")
        intent = stripe_client().v1.setup_intents.retrieve(order.stripe_setup_intent_id)
        return Checkout(order=order, client_secret=intent.client_secret, intent_kind="setup")
    except stripe.StripeError as exc:
        raise PaymentProviderError(f"Stripe is not reachable: {exc}") from exc


def card_error_message(exc: stripe.StripeError) -> PaymentDeclined:
    return PaymentDeclined(exc.user_message or "Your card was declined.")
