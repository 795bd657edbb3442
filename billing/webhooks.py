"""Stripe webhook events, each processed once.

The event row (unique event id) and every change the event causes commit in one transaction: a
redelivered event hits the unique constraint and changes nothing; a crash mid-way rolls back the
event row too, so Stripe's retry processes it again. Handlers are idempotent state transitions,
so events arriving out of order (a failure notice after the success) are harmless as well.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from . import gateway, signals
from .customers import payout_account_update
from .errors import SignatureInvalid
from .held import held_payment_for_charge, held_payment_mark_failed, held_payment_mark_held, held_payment_mark_refunded
from .models import Invoice, Provider, StripeEvent, Subscription
from .subscriptions import (
    InvoiceFacts,
    invoice_for_payment,
    invoice_mark_failed,
    invoice_mark_paid,
    invoice_mark_reversed,
    subscription_mark_ended,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Payment:
    """A PaymentIntent's outcome, as the signals carry it."""

    reference: str  # the PaymentIntent id
    order_id: str  # the metadata's imprint_order ("" when absent)
    amount_cents: int
    currency: str
    via_connect: bool = False
    failure_message: str = ""


@dataclass(frozen=True)
class CardSetup:
    """A SetupIntent that saved a card."""

    reference: str  # the SetupIntent id
    order_id: str
    payment_method: str


@dataclass(frozen=True)
class Reversal:
    """A charge refunded in full ("refunded") or disputed ("disputed")."""

    payment_reference: str  # the charge's PaymentIntent id
    state: str
    reason: str


def _order_id(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("imprint_order") or "")


def _payment(obj: dict) -> Payment:
    error = obj.get("last_payment_error") or {}
    return Payment(reference=obj["id"], order_id=_order_id(obj),
                   amount_cents=int(obj.get("amount_received") or obj.get("amount") or 0),
                   currency=obj.get("currency", ""), via_connect=bool(obj.get("transfer_data")),
                   failure_message=error.get("message") or "Your payment failed.")


def _held_purpose(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("imprint_held") or "")


def _held_succeeded(obj: dict) -> str | None:
    """A charge of money the platform holds (billing.held): held once, whoever asked first."""
    charge = obj.get("latest_charge") or ""
    held, changed = held_payment_mark_held(
        purpose=_held_purpose(obj), payment_reference=obj["id"], currency=obj.get("currency", ""),
        amount_cents=int(obj.get("amount_received") or obj.get("amount") or 0),
        charge_reference=charge if isinstance(charge, str) else charge.get("id", ""))
    if held is None:
        return None
    return "funds held" if changed else "no change: funds already held"


def _payment_succeeded(obj: dict) -> str:
    if _held_purpose(obj):
        outcome = _held_succeeded(obj)
        if outcome is not None:
            return outcome
    return (signals.first_outcome(signals.payment_succeeded, payment=_payment(obj))
            or "ignored: unknown payment intent")


def _payment_failed(obj: dict) -> str:
    if _held_purpose(obj):
        held, changed = held_payment_mark_failed(purpose=_held_purpose(obj), message=_payment(obj).failure_message)
        if held is not None:
            return "held payment failed" if changed else "no change: held payment not pending"
    return signals.first_outcome(signals.payment_failed, payment=_payment(obj)) or "ignored: unknown payment intent"


def _setup_succeeded(obj: dict) -> str:
    setup = CardSetup(reference=obj["id"], order_id=_order_id(obj), payment_method=obj.get("payment_method") or "")
    return signals.first_outcome(signals.card_saved, setup=setup) or "ignored: unknown setup intent"


def _charge_reversed(obj: dict, *, state: str, reason: str) -> str:
    """A refund or dispute of a one-time fee (the order's PaymentIntent: its owner answers the
    signal) or of a metered invoice (the invoice's PaymentIntent): the grant is revoked or
    suspended either way."""
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if state == Invoice.State.REFUNDED and not obj.get("refunded"):
        return "ignored: partial refund"
    if held_payment_for_charge(intent) is not None:
        if state != Invoice.State.REFUNDED:
            log.error("held payment %s: charge %s; staff answer the dispute", intent, reason)
            return "held payment disputed: staff answer it"
        _, changed = held_payment_mark_refunded(payment_reference=intent, refund_reference=obj.get("id") or "",
                                                reason=reason)
        return "held payment refunded" if changed else "no change: held payment not held"
    outcome = signals.first_outcome(signals.charge_reversed,
                                    reversal=Reversal(payment_reference=intent, state=state, reason=reason)) \
        if intent else None
    if outcome is not None:
        return outcome
    invoice = invoice_for_payment(intent) or Invoice.objects.filter(reference=obj.get("invoice") or "-").first()
    if invoice is None:
        return "ignored: unknown charge"
    _, changed = invoice_mark_reversed(invoice_id=invoice.pk, state=state, reason=f"metered invoice {reason}")
    return f"invoice {state}" if changed else "no change"


# --- Metered subscriptions and their invoices ---------------------------------------------------

def _nested(obj: dict, *keys):
    for key in keys:
        obj = (obj or {}).get(key) if isinstance(obj, dict) else None
    return obj


def _subscription_for(subscription_id, metadata: dict | None) -> Subscription | None:
    """Our subscription row: by Stripe's id, else by the metadata we set (the webhook can outrun the
    task that records the id)."""
    if isinstance(subscription_id, dict):
        subscription_id = subscription_id.get("id")
    sub = Subscription.objects.filter(stripe_subscription_id=subscription_id).first() if subscription_id else None
    pk = (metadata or {}).get("imprint_subscription")
    if sub is None and pk and str(pk).isdigit():
        sub = Subscription.objects.filter(pk=int(pk), provider=Provider.STRIPE).first()
    return sub


def _invoice_subscription(obj: dict) -> Subscription | None:
    # API versions before 2025-03 name the subscription at the top; later ones under "parent".
    details = _nested(obj, "parent", "subscription_details") or obj.get("subscription_details") or {}
    return _subscription_for(obj.get("subscription") or details.get("subscription"), details.get("metadata"))


def _moment(value) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _invoice_facts(obj: dict, *, amount_field: str) -> InvoiceFacts:
    """The invoice as Stripe describes it: the metered line's quantity is the meter's token sum for
    the period the line covers."""
    lines = _nested(obj, "lines", "data") or []
    period = (lines[0].get("period") if lines else None) or {}
    intent = obj.get("payment_intent") or _nested((_nested(obj, "payments", "data") or [{}])[0], "payment",
                                                  "payment_intent")
    attempts = obj.get("attempt_count") or 1
    return InvoiceFacts(
        reference=obj["id"], tokens=sum(int(line.get("quantity") or 0) for line in lines),
        period_start=_moment(period.get("start") or obj.get("period_start") or 0),
        period_end=_moment(period.get("end") or obj.get("period_end") or 0),
        amount_cents=int(obj.get(amount_field) or 0), currency=obj.get("currency") or "usd",
        payment_reference=(intent.get("id") if isinstance(intent, dict) else intent) or "",
        hosted_url=obj.get("hosted_invoice_url") or "",
        failure_message=f"Stripe could not charge the card (attempt {attempts})",
    )


def _invoice_paid(obj: dict) -> str:
    sub = _invoice_subscription(obj)
    if sub is None:
        return "ignored: unknown subscription"
    _, changed = invoice_mark_paid(subscription_id=sub.pk, facts=_invoice_facts(obj, amount_field="amount_paid"))
    return "invoice paid" if changed else "no change: invoice already paid"


def _invoice_failed(obj: dict) -> str:
    sub = _invoice_subscription(obj)
    if sub is None:
        return "ignored: unknown subscription"
    _, changed = invoice_mark_failed(subscription_id=sub.pk, facts=_invoice_facts(obj, amount_field="amount_due"))
    return "invoice payment failed" if changed else "no change: invoice already paid"


def _subscription_deleted(obj: dict) -> str:
    sub = _subscription_for(obj.get("id"), obj.get("metadata"))
    if sub is None:
        return "ignored: unknown subscription"
    _, changed = subscription_mark_ended(subscription_id=sub.pk, reason="metered subscription cancelled")
    return "subscription ended" if changed else "no change: already ended"


def _account_updated(obj: dict) -> str:
    """Connect: the trainer's account can (or no longer can) receive transfers."""
    active = (obj.get("capabilities") or {}).get("transfers") == "active"
    if not payout_account_update(stripe_account_id=obj.get("id") or "", transfers_active=active):
        return "ignored: unknown account"
    return "transfers active" if active else "transfers inactive"


HANDLERS = {
    "account.updated": _account_updated,
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "setup_intent.succeeded": _setup_succeeded,
    "charge.refunded": lambda obj: _charge_reversed(obj, state=Invoice.State.REFUNDED, reason="charge refunded"),
    "charge.dispute.created": lambda obj: _charge_reversed(obj, state=Invoice.State.DISPUTED,
                                                            reason="charge disputed"),
    # Stripe sends both for a charged invoice (invoice.paid also for one paid out of band); the
    # invoice's id makes the second a no-op.
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.deleted": _subscription_deleted,
}


@transaction.atomic
def stripe_event_process(*, event: dict) -> str:
    """Apply a verified Stripe event once and say what it did. Events of other types, and events
    about objects we do not know, are recorded and logged but change nothing."""
    obj = (event.get("data") or {}).get("object") or {}
    try:
        with transaction.atomic():
            record = StripeEvent.objects.create(event_id=event["id"], type=event.get("type", ""),
                                                object_id=str(obj.get("id", ""))[:100], payload=event)
    except IntegrityError:
        log.info("stripe event %s (%s) already processed", event.get("id"), event.get("type"))
        return "duplicate: already processed"
    handler = HANDLERS.get(event.get("type", ""))
    outcome = handler(obj) if handler else "ignored: event type not handled"
    if outcome.startswith("ignored"):
        log.warning("stripe event %s (%s, %s): %s", event["id"], event.get("type"), obj.get("id"), outcome)
    StripeEvent.objects.filter(pk=record.pk).update(outcome=outcome)
    return outcome


def webhook_receive(*, body: bytes, signature: str) -> str:
    """Verify a webhook body's signature with STRIPE_WEBHOOK_SECRET and process its event once.
    Returns what it did. Raises SignatureInvalid (also when no secret is configured: nothing
    unsigned is ever trusted)."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise SignatureInvalid("STRIPE_WEBHOOK_SECRET is not set")
    gateway.webhook_verify(body=body, signature=signature, secret=settings.STRIPE_WEBHOOK_SECRET)
    # The verified body as plain JSON (the SDK's objects are not dicts).
    return stripe_event_process(event=json.loads(body))
