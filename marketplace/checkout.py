"""Checkout through Stripe: a Stripe Customer per user; the card is collected and confirmed in
the page with Stripe.js (Card Element, `confirmCardSetup`), then the server charges the one-time
fee with a PaymentIntent confirmed on the saved card ("finalize payments on the server"). When
the bank asks for 3-D Secure, the page completes it with `confirmCardPayment`. Metered offers keep
the saved card for the monthly post-paid charges. Nothing here activates a paid grant: only the
signed `payment_intent.succeeded` webhook does.

Why a SetupIntent first instead of confirming the PaymentIntent with the card in the page: the same
page code then runs against Stripe and against localstripe's Stripe.js stand-in (which creates
card payment methods only through confirmCardSetup), so the browser test exercises the production
path; a declined card is reported synchronously by the server charge, with Stripe's own message.

Every Stripe call runs outside a database transaction; the rows are written before (the order)
and after (the intents' ids) in short transactions of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from billing import gateway
from billing.customers import billing_customer_card_set, billing_customer_ensure, payout_account_active
from billing.errors import CardDeclined, GatewayError
from billing.fees import platform_fee_cents

from .errors import OrderNotFound, PaymentDeclined, PaymentProviderError
from .models import Order
from .services import (
    Checkout,
    order_create,
    order_failed_when_held,
    order_mark_failed,
    order_mark_paid,
    order_mark_refunded,
    order_payable_check,
)

log = logging.getLogger(__name__)


def _destination(order: Order) -> gateway.Destination | None:
    """Stripe Connect destination charge once the trainer's account receives transfers: the
    trainer's account gets the money, minus our fee (billing.fees)."""
    account = payout_account_active(order.offer.listing.trainer)
    if not account:
        return None
    return gateway.Destination(account=account, application_fee_cents=platform_fee_cents(order.amount_cents))


def _create_intent(order: Order, stripe_customer: str) -> Checkout:
    # usage=off_session: metered offers charge the saved card monthly without the customer present.
    intent = gateway.setup_intent_create(customer=stripe_customer, order_id=order.pk)
    Order.objects.filter(pk=order.pk).update(stripe_setup_intent_id=intent.id, stripe_customer_id=stripe_customer)
    order.stripe_setup_intent_id = intent.id
    return Checkout(order=order, client_secret=intent.client_secret, intent_kind="setup")


def purchase_start(*, customer, offer_id, accepted_terms_sha256: str, ip_address: str | None,
                   user_agent: str = "") -> Checkout:
    """Start buying an offer: record the acceptance and a pending order, then (with Stripe) create
    the intent the page confirms. In local test mode the order waits for a test card instead.

    Raises OfferNotFound, TermsChanged, PaymentProviderError (the order is then marked failed)."""
    provider = Order.Provider.LOCAL_TEST if gateway.payments_in_test_mode() else Order.Provider.STRIPE
    order = order_create(customer=customer, offer_id=offer_id, accepted_terms_sha256=accepted_terms_sha256,
                         ip_address=ip_address, user_agent=user_agent, provider=provider)
    if provider == Order.Provider.LOCAL_TEST:
        return Checkout(order=order)
    try:
        return _create_intent(order, billing_customer_ensure(customer))
    except GatewayError as exc:
        message = exc.user_message or str(exc)
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
        intent = gateway.setup_intent_retrieve(order.stripe_setup_intent_id)
        return Checkout(order=order, client_secret=intent.client_secret, intent_kind="setup")
    except GatewayError as exc:
        raise PaymentProviderError(f"Stripe is not reachable: {exc}") from exc


@dataclass
class Charge:
    """The outcome of `order_charge`: "processing" (wait for the webhook), "requires_action"
    (the page runs 3-D Secure with `client_secret`), or "card_saved" (metered offer, no fee)."""

    status: str
    order: Order
    client_secret: str = ""


def _saved_card(order: Order) -> str:
    """The payment method the customer confirmed in the page, checked at Stripe."""
    intent = gateway.setup_intent_retrieve(order.stripe_setup_intent_id)
    if intent.status != "succeeded" or not intent.payment_method:
        raise PaymentDeclined("Your card has not been confirmed yet.", param="card")
    if intent.metadata.get("imprint_order") != str(order.pk):
        raise PaymentProviderError("The card setup does not belong to this order.")
    billing_customer_card_set(user_id=order.customer_id, payment_method=intent.payment_method)
    return intent.payment_method


def _pending_stripe_order(order_id, customer) -> Order:
    order = (Order.objects.select_related("offer__listing__trainer")
             .filter(pk=order_id, customer=customer, provider=Order.Provider.STRIPE).first())
    if order is None:
        raise OrderNotFound("No such order of yours.", param="order")
    return order


def order_charge(*, order_id, customer) -> Charge:
    """Charge the one-time fee on the card the customer just saved in the page. The grant becomes
    active when Stripe's signed webhook confirms the payment (not here). A metered offer without a
    fee needs no charge: its verified saved card activates it at once (idempotently).

    Raises OrderNotFound, OrderExpired / OrderNotPayable / WrongPaymentProvider / MeteredOfferHeld
    (nothing charged; the last leaves the order failed), PaymentDeclined (Stripe's message; the order is marked failed) and PaymentProviderError."""
    order = _pending_stripe_order(order_id, customer)
    if order.state == Order.State.PAID:
        return Charge(status="paid", order=order)
    with order_failed_when_held(order.pk):
        order_payable_check(order)  # before any money moves: the webhook checks again when it arrives
    if order.state != Order.State.PENDING or not order.stripe_setup_intent_id:
        # A failed order stays failed (its message says why); buying again starts a new order.
        raise PaymentDeclined(order.failure_message or "This order can no longer be paid.", param="order")
    try:
        payment_method = _saved_card(order)
        if not order.amount_cents:
            with order_failed_when_held(order.pk):
                order, _ = order_mark_paid(order_id=order.pk, reference=order.stripe_setup_intent_id,
                                           amount_cents=0, currency=order.currency)
            return Charge(status="card_saved", order=order)
        intent = gateway.payment_intent_confirm(
            order_id=order.pk, offer_id=order.offer_id, amount_cents=order.amount_cents, currency=order.currency,
            customer=order.stripe_customer_id, payment_method=payment_method, destination=_destination(order))
    except CardDeclined as exc:
        message = exc.user_message or "Your card was declined."
        order_mark_failed(order_id=order.pk, message=message)
        raise PaymentDeclined(message, param="card") from exc
    except GatewayError as exc:
        raise PaymentProviderError(f"Stripe could not take the payment: {exc.user_message or exc}") from exc
    Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id=intent.id)
    order.stripe_payment_intent_id = intent.id
    if intent.status == "requires_action":
        return Charge(status="requires_action", order=order, client_secret=intent.client_secret)
    return Charge(status="processing", order=order)


def order_refund(*, order_id) -> Order:
    """Refund in full the payment of a refund_due order at Stripe (outside any transaction; the
    idempotency key is the order's, so a retried task refunds once), then mark the order refunded.
    An order in any other state, or one without a payment, is returned as it is.

    Raises GatewayError when Stripe refuses or cannot be reached (the order stays refund_due)."""
    order = Order.objects.get(pk=order_id)
    if order.state != Order.State.REFUND_DUE or not order.stripe_payment_intent_id:
        return order
    refund = gateway.refund_create(payment_reference=order.stripe_payment_intent_id,
                                   key=f"imprint-refund-order-{order.pk}")
    order, _ = order_mark_refunded(order_id=order.pk, refund_reference=refund)
    log.info("order %s: payment %s refunded (%s)", order.pk, order.stripe_payment_intent_id, refund)
    return order
