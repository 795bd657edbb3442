"""Reconciling metered billing: the usage ledger, the meter events sent and the invoices.

Each metered grant's money passes three records that must agree:

1. every usage ledger row has a meter event row, and every meter event row was sent;
2. every invoice bills exactly the tokens the ledger and the sent meter events hold for its period,
   at the plan's unit price (rounded to the cent);
3. every paid invoice has its payout entry (platform fee rounded down), and a refunded one its
   reversal.

`billing_discrepancies()` lists every difference in plain words; `manage.py reconcile` prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone

from inference.models import MeterOutbox, UsageEntry
from licensing.models import Grant

from .fees import payout_split
from .metering import SWEEP_AFTER
from .models import HeldPayment, Invoice, PayoutEntry, StripeEvent, Subscription
from .plans import metered_plan
from .selectors import metered_estimate_cents

BILLED_INVOICE_STATES = (Invoice.State.PAID, Invoice.State.FAILED, Invoice.State.OPEN, Invoice.State.REFUNDED,
                         Invoice.State.DISPUTED)


def _ledger_and_meter(sub: Subscription) -> Iterator[str]:
    """Check 1: every ledger row has a meter event, and every meter event was sent."""
    entries = UsageEntry.objects.filter(grant_id=sub.grant_id).select_related("meter_event")
    stale = timezone.now() - SWEEP_AFTER
    for entry in entries:
        row = getattr(entry, "meter_event", None)
        if row is None:
            yield (f"grant {sub.grant_id}: usage {entry.request_id} ({entry.total_tokens} tokens, "
                   f"{entry.created_at:%Y-%m-%d %H:%M}) has no meter event: it will never be billed")
        elif row.state == MeterOutbox.State.FAILED:
            yield (f"grant {sub.grant_id}: meter event {row.identifier} ({entry.total_tokens} tokens) failed after "
                   f"{row.attempts} attempts: {row.last_error[:120]}")
        elif row.state == MeterOutbox.State.PENDING and row.created_at < stale:
            yield (f"grant {sub.grant_id}: meter event {row.identifier} ({entry.total_tokens} tokens) is still "
                   f"unsent after {row.attempts} attempts")


def _billed_moment(sub: Subscription, created_at: datetime) -> datetime:
    # Usage before the subscription started is reported at its start (billing.metering).
    return max(created_at, sub.started_at) if sub.started_at else created_at


def _tokens_in(sub: Subscription, invoice: Invoice) -> tuple[int, int]:
    """(ledger tokens, sent meter event tokens) whose billed moment falls in the invoice's period.
    Meter event timestamps are whole seconds, so the comparison is in whole seconds too."""
    start, end = int(invoice.period_start.timestamp()), int(invoice.period_end.timestamp())
    ledger = sent = 0
    for entry in UsageEntry.objects.filter(grant_id=sub.grant_id).select_related("meter_event"):
        moment = int(_billed_moment(sub, entry.created_at).timestamp())
        if start <= moment < end:
            ledger += entry.total_tokens
            row = getattr(entry, "meter_event", None)
            sent += entry.total_tokens if row is not None and row.state == MeterOutbox.State.SENT else 0
    return ledger, sent


def _invoices(sub: Subscription) -> Iterator[str]:
    """Check 2 and 3 for each invoice of the subscription."""
    price = metered_plan(sub.grant_id).cents_per_1k
    for invoice in sub.invoices.filter(state__in=BILLED_INVOICE_STATES).order_by("period_start"):
        ledger, sent = _tokens_in(sub, invoice)
        if invoice.tokens != ledger or invoice.tokens != sent:
            yield (f"invoice {invoice.reference}: bills {invoice.tokens} tokens for "
                   f"{invoice.period_start:%Y-%m-%d %H:%M}–{invoice.period_end:%Y-%m-%d %H:%M}; the ledger holds "
                   f"{ledger} and the meter events sent {sent}")
        expected = metered_estimate_cents(invoice.tokens, price)
        if invoice.amount_cents != expected:
            yield (f"invoice {invoice.reference}: amount {invoice.amount_cents} cents; {invoice.tokens} tokens at "
                   f"{price} cents per 1,000 make {expected}")
        yield from _payouts(sub, invoice)


def _payouts(sub: Subscription, invoice: Invoice) -> Iterator[str]:
    paid = invoice.state in (Invoice.State.PAID, Invoice.State.REFUNDED, Invoice.State.DISPUTED)
    entry = PayoutEntry.objects.filter(kind=PayoutEntry.Kind.METERED, reference=invoice.reference).first()
    if paid and invoice.amount_cents and entry is None:
        yield f"invoice {invoice.reference}: paid {invoice.amount_cents} cents but has no payout entry"
    elif entry is not None and not paid:
        yield f"invoice {invoice.reference}: is {invoice.state} but has a payout entry"
    elif entry is not None:
        if (entry.gross_cents, entry.platform_fee_cents, entry.trainer_cents) != (
                invoice.amount_cents, *payout_split(invoice.amount_cents)):
            yield (f"invoice {invoice.reference}: payout entry {entry.gross_cents}/{entry.platform_fee_cents}/"
                   f"{entry.trainer_cents} (gross/fee/share) does not split {invoice.amount_cents} cents")
    refund = PayoutEntry.objects.filter(kind=PayoutEntry.Kind.REFUND, reference=f"refund:{invoice.reference}")
    if invoice.state == Invoice.State.REFUNDED and entry is not None and not refund.exists():
        yield f"invoice {invoice.reference}: refunded but its payout entry is not reversed"


def _subscription(sub: Subscription) -> Iterator[str]:
    if sub.state == Subscription.State.PENDING and sub.created_at < timezone.now() - SWEEP_AFTER:
        yield (f"grant {sub.grant_id}: its subscription is not created at Stripe after {sub.attempts} attempts"
               f"{': ' + sub.last_error if sub.last_error else ''}")
    yield from _ledger_and_meter(sub)
    yield from _invoices(sub)


def billing_discrepancies() -> tuple[list[str], dict]:
    """Every difference between ledger, meter events, invoices and payouts, and what was checked."""
    problems: list[str] = []
    subs = list(Subscription.objects.order_by("created_at"))
    for sub in subs:
        problems.extend(_subscription(sub))
    # A grant is only sold (has a plan) once its order was paid.
    orphans = Grant.objects.filter(metered=True, subscription__isnull=True).values_list("pk", flat=True)
    for grant_id in [pk for pk in orphans if metered_plan(pk) is not None]:
        problems.append(f"grant {grant_id}: metered but has no subscription: its usage is never invoiced")
    checked = {"subscriptions": len(subs), "invoices": Invoice.objects.count(),
               "usage rows": UsageEntry.objects.filter(grant__subscription__isnull=False).count()}
    held_problems, checked["held payments"] = held_funds_discrepancies()
    problems.extend(held_problems)
    return problems, checked


def _stripe_says(reference: str, event_type: str) -> bool:
    return bool(reference) and StripeEvent.objects.filter(type=event_type, object_id=reference).exists()


def _held(held: HeldPayment) -> Iterator[str]:
    """A held payment against its payout entry and the Stripe events recorded for its charge."""
    name = f"held payment {held.purpose} ({held.state}, {held.amount_cents} {held.currency})"
    charged = held.state in (HeldPayment.State.HELD, HeldPayment.State.RELEASED, HeldPayment.State.REFUNDED)
    entries = list(PayoutEntry.objects.filter(held_payment=held, kind=PayoutEntry.Kind.COMMISSION))
    if charged and not held.payment_reference:
        yield f"{name}: has no charge reference"
    if not charged and _stripe_says(held.payment_reference, "payment_intent.succeeded"):
        yield f"{name}: Stripe reported the charge succeeded but the money is not recorded as held"
    if held.state == HeldPayment.State.RELEASED and len(entries) != 1:
        yield f"{name}: released but has {len(entries)} payout entries"
    elif held.state != HeldPayment.State.RELEASED and entries:
        yield f"{name}: has a payout entry but was not released"
    for entry in entries:
        if (entry.gross_cents, entry.platform_fee_cents, entry.trainer_cents) != (
                held.amount_cents, *payout_split(held.amount_cents)):
            yield f"{name}: payout entry {entry.gross_cents}/{entry.platform_fee_cents}/{entry.trainer_cents} does not split it"
        if entry.via_connect != bool(held.transfer_reference):
            yield f"{name}: payout entry says via Connect {entry.via_connect}, transfer {held.transfer_reference or 'none'}"
    if held.state == HeldPayment.State.REFUNDED and not held.refund_reference:
        yield f"{name}: refunded without a refund reference"
    if held.state == HeldPayment.State.HELD and _stripe_says(held.charge_reference, "charge.refunded"):
        yield f"{name}: Stripe refunded the charge but the money is still recorded as held"


def held_funds_discrepancies() -> tuple[list[str], int]:
    """Held money (billing.held) against its payout entries and the Stripe events received, and how
    many held payments were checked."""
    rows = list(HeldPayment.objects.order_by("created_at"))
    return [problem for held in rows for problem in _held(held)], len(rows)
