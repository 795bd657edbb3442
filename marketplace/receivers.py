"""What the marketplace does when billing announces a payment fact (billing.signals): orders paid,
failed, refunded or disputed, with their grants activated, revoked or suspended through licensing.
Connected in MarketplaceConfig.ready(). Each receiver runs inside the transaction that records the
Stripe event and returns an outcome, or None for a payment that is not an order's."""

from __future__ import annotations

from celery import current_app

from billing.customers import billing_customer_card_set

from .errors import MeteredOfferHeld
from .models import Listing, Order
from .services import (
    ORDER_NOT_PAYABLE,
    order_mark_failed,
    order_mark_paid,
    order_mark_refund_due,
    order_mark_reversed,
)


def _order_for(*, intent_id: str, order_id: str, id_field: str) -> Order | None:
    """The Stripe-mode order an intent belongs to: by intent id, else by the metadata we set."""
    order = Order.objects.filter(provider=Order.Provider.STRIPE, **{id_field: intent_id}).first()
    if order is None and order_id:
        order = Order.objects.filter(provider=Order.Provider.STRIPE, pk=order_id).first()
        # The webhook can outrun the request that saves the intent's id on the order.
        if order is not None and not getattr(order, id_field):
            Order.objects.filter(pk=order.pk).update(**{id_field: intent_id})
    return order


def payment_succeeded(sender, payment, **kwargs) -> str | None:
    order = _order_for(intent_id=payment.reference, order_id=payment.order_id, id_field="stripe_payment_intent_id")
    if order is None:
        return None
    try:
        _, changed = order_mark_paid(order_id=order.pk, reference=payment.reference, amount_cents=payment.amount_cents,
                                     currency=payment.currency, via_connect=payment.via_connect)
    except ORDER_NOT_PAYABLE as exc:
        # The money moved but the order may not activate: record it for a refund instead. A second
        # payment for a metered offer the customer holds is refunded at once: nothing about it needs
        # a person's judgement, unlike an offer withdrawn while its buyer was paying.
        held = isinstance(exc, MeteredOfferHeld)
        order_mark_refund_due(order_id=order.pk, reference=payment.reference, amount_cents=payment.amount_cents,
                              currency=payment.currency, reason=exc.code, message=exc.message if held else "",
                              refund_now=held)
        return f"refused: {exc.code}; recorded as refund_due"
    return "order paid" if changed else "no change: order already paid or amount mismatch"


def payment_failed(sender, payment, **kwargs) -> str | None:
    order = _order_for(intent_id=payment.reference, order_id=payment.order_id, id_field="stripe_payment_intent_id")
    if order is None:
        return None
    _, changed = order_mark_failed(order_id=order.pk, message=payment.failure_message)
    return "order failed" if changed else "no change: order not pending"


def card_saved(sender, setup, **kwargs) -> str | None:
    order = _order_for(intent_id=setup.reference, order_id=setup.order_id, id_field="stripe_setup_intent_id")
    if order is None:
        return None
    if setup.payment_method:
        billing_customer_card_set(user_id=order.customer_id, payment_method=setup.payment_method)
    if order.amount_cents:
        return "card saved; the fee's payment intent settles the order"
    try:
        _, changed = order_mark_paid(order_id=order.pk, reference=setup.reference, amount_cents=0,
                                     currency=order.currency)
    except ORDER_NOT_PAYABLE as exc:
        return f"ignored: {exc.code}; card saved, nothing charged, no grant"
    return "card saved, order active" if changed else "no change"


def charge_reversed(sender, reversal, **kwargs) -> str | None:
    """A refund or dispute of an order's one-time fee (metered invoices are billing's)."""
    order = Order.objects.filter(provider=Order.Provider.STRIPE,
                                 stripe_payment_intent_id=reversal.payment_reference).first()
    if order is None:
        return None
    _, changed = order_mark_reversed(order_id=order.pk, state=reversal.state, reason=reversal.reason)
    return f"order {reversal.state}" if changed else "no change"


def invoice_reversed(sender, invoice, state: str, reason: str, **kwargs) -> None:
    """A metered invoice's charge was refunded or disputed: its order's grant follows (the one-time
    fee's payout entry stays: that money was not refunded)."""
    order_mark_reversed(order_id=invoice.subscription.order_id, state=state, reason=reason, reverse_sale=False)


def subscription_started(sender, subscription, **kwargs) -> None:
    Order.objects.filter(pk=subscription.order_id).update(stripe_subscription_id=subscription.stripe_subscription_id)


def funds_held(sender, held, **kwargs) -> None:
    """Money held for a commission: its work starts (billing.held)."""
    from .commissions import commission_funded

    commission_funded(held=held)


def funds_refunded(sender, held, reason: str = "", **kwargs) -> None:
    """Held money refunded: a commission still under way stops."""
    from .commissions import commission_refunded_elsewhere

    commission_refunded_elsewhere(held=held, reason=reason)


def held_dispute_decided(sender, subject_id: str, grant_id, outcome: str, staff, reason: str, **kwargs) -> str | None:
    """Staff decided a disputed commission on its compliance case: release or refund (None when the
    case is not about one of our commissions). Domain errors propagate, so the decision is not
    recorded when the commission cannot follow it."""
    from .commissions import commission_dispute_resolve
    from .models import Commission

    # By the grant (a delivered grant belongs to one commission), then the subject must match: a
    # case about another kind of thing never moves a commission's money.
    commission = Commission.objects.filter(grant_id=grant_id).only("pk").first()
    if commission is None or str(commission.pk) != str(subject_id):
        return None
    return commission_dispute_resolve(staff=staff, commission_id=commission.pk, outcome=outcome, reason=reason).state


def builtin_base_ready(sender, digest: str, **kwargs) -> None:
    """The built-in base is ready: an installation with the demo's accounts (and not in production)
    gets its demo listings, fine-tuned from it on a training worker."""
    from django.conf import settings

    from accounts.models import User

    if settings.PRODUCTION or not User.objects.filter(username="trainer").exists():
        return
    if Listing.objects.filter(trainer__username="trainer").exists():
        return
    current_app.send_task("marketplace.demo_listings", ignore_result=True)
