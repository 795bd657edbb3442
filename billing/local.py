"""The local test mode's billing: the same month as Stripe's, without Stripe keys.

Stripe closes a metered subscription's month by summing the meter's events in the period into an
invoice and charging the saved card. Here the "meter" is the outbox rows marked sent (delivery in
local test mode sends nothing over the network), the invoice amount is the tokens times the plan's
unit price rounded to the cent as Stripe rounds, and the payment succeeds, or fails when asked
(`manage.py billing_test_mode close-month --fail`), so a person sees a failed payment, the
suspension after the grace period and the reinstatement when the invoice is paid. The paid and
failed invoices go through the same services as Stripe's webhooks (billing.subscriptions).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from inference.models import MeterOutbox
from licensing.models import months_later

from .models import Invoice, Provider, Subscription
from .plans import metered_plan
from .selectors import metered_estimate_cents
from .subscriptions import InvoiceFacts, invoice_mark_failed, invoice_mark_paid, subscription_suspend_if_overdue

OPEN_STATES = (Subscription.State.ACTIVE, Subscription.State.PAST_DUE, Subscription.State.SUSPENDED)
DECLINE_MESSAGE = "Your card was declined. (Local test mode: a simulated failed payment.)"


def _local_subscriptions():
    return Subscription.objects.filter(provider=Provider.LOCAL_TEST, state__in=OPEN_STATES)


def metered_tokens_sent(*, grant_id, start: datetime, end: datetime) -> int:
    """Tokens of the grant's meter events sent, by usage time in [start, end)."""
    rows = MeterOutbox.objects.filter(usage_entry__grant_id=grant_id, state=MeterOutbox.State.SENT,
                                      usage_entry__created_at__gte=start, usage_entry__created_at__lt=end)
    return rows.aggregate(t=Sum("usage_entry__total_tokens"))["t"] or 0


def _close(subscription_id: int, *, end: datetime) -> tuple[Subscription, InvoiceFacts] | None:
    """Close the subscription's current period at `end`: the next period starts there."""
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        if sub.state not in OPEN_STATES or sub.current_period_start is None or sub.current_period_start >= end:
            return None
        start, plan = sub.current_period_start, metered_plan(sub.grant_id)
        tokens = metered_tokens_sent(grant_id=sub.grant_id, start=start, end=end)
        number = sub.invoices.count() + 1
        facts = InvoiceFacts(reference=f"testinv_{sub.order_id.hex[:12]}_{number:04d}", period_start=start,
                             period_end=end, tokens=tokens, currency=plan.currency,
                             amount_cents=metered_estimate_cents(tokens, plan.cents_per_1k),
                             payment_reference=f"testpay_{sub.order_id.hex[:12]}_{number:04d}")
        sub.current_period_start = end
        sub.save(update_fields=["current_period_start", "updated_at"])
        return sub, facts


def _next_whole_second() -> datetime:
    """The next whole second, once it has passed. Periods (like Stripe's, and meter event
    timestamps) are whole seconds; waiting for the boundary means no usage can still arrive before
    it after the invoice was counted."""
    now = timezone.now()
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    time.sleep((end - now).total_seconds())
    return end


def local_period_close(*, subscription_id: int, fail: bool = False, now: datetime | None = None) -> Invoice | None:
    """Close a local test-mode subscription's month now: raise its invoice and pay it with the
    saved test card (or fail the payment when `fail` and there is something to charge). Returns
    the invoice, or None when the
    subscription is not open in local test mode."""
    closed = _close(subscription_id, end=now or _next_whole_second())
    if closed is None:
        return None
    sub, facts = closed
    if fail and facts.amount_cents:  # a zero invoice is paid without a charge, so it cannot fail
        return invoice_mark_failed(subscription_id=sub.pk,
                                   facts=InvoiceFacts(**{**facts.__dict__, "failure_message": DECLINE_MESSAGE}))[0]
    return invoice_mark_paid(subscription_id=sub.pk, facts=facts)[0]


def local_invoices_pay(*, subscription_id: int | None = None) -> list[Invoice]:
    """The customer pays their failed local test-mode invoices (a new test card): each is marked
    paid through the same service as Stripe's invoice.paid, which reinstates a suspended grant."""
    failed = Invoice.objects.filter(state=Invoice.State.FAILED, subscription__provider=Provider.LOCAL_TEST)
    if subscription_id is not None:
        failed = failed.filter(subscription_id=subscription_id)
    paid = []
    for invoice in failed.order_by("period_start"):
        facts = InvoiceFacts(reference=invoice.reference, period_start=invoice.period_start,
                             period_end=invoice.period_end, tokens=invoice.tokens, amount_cents=invoice.amount_cents,
                             currency=invoice.currency, payment_reference=invoice.payment_reference)
        paid.append(invoice_mark_paid(subscription_id=invoice.subscription_id, facts=facts)[0])
    return paid


def local_grace_end(*, subscription_id: int | None = None) -> int:
    """Treat the grace period of past-due local test-mode subscriptions as over: suspend their
    grants now (what the beat sweep does once BILLING_GRACE_HOURS have passed). Returns how many."""
    due = Subscription.objects.filter(provider=Provider.LOCAL_TEST, state=Subscription.State.PAST_DUE)
    if subscription_id is not None:
        due = due.filter(pk=subscription_id)
    now = timezone.now()
    return sum(subscription_suspend_if_overdue(subscription_id=pk, cutoff=now)
               for pk in list(due.values_list("pk", flat=True)))


def local_periods_close_due(*, now: datetime | None = None) -> int:
    """Periodic: close every local test-mode subscription whose month has ended (paid with the
    saved test card). Stripe does this itself for real subscriptions. Returns how many closed."""
    now = now or timezone.now()
    closed = 0
    for sub in _local_subscriptions().exclude(current_period_start__isnull=True):
        end = months_later(sub.current_period_start)
        if end <= now and local_period_close(subscription_id=sub.pk, now=end) is not None:
            closed += 1
    return closed
