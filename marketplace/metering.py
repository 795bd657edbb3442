"""Metered billing: outbox rows → Stripe Billing Meter events.

The outbox row is written in the same transaction as the ledger row (services._settle). Delivery
happens after commit, outside any transaction, and may be retried any number of times: the row's
unique identifier is sent as the meter event's `identifier`, which Stripe de-duplicates, and a row
is marked sent only once (conditional update), so usage is never billed twice.
"""

from __future__ import annotations

from datetime import timedelta

import stripe
from django.db.models import F, Q
from django.utils import timezone

from inference.models import MeterOutbox

from .billing import meter_event_report
from .models import BillingCustomer, Order

MAX_ATTEMPTS = 8
SWEEP_AFTER = timedelta(minutes=5)


class MeterSendFailed(Exception):
    """A transient failure (network, Stripe 5xx/429): the task retries."""


class PayerUnknown(Exception):
    """The grant has no Stripe customer to bill (a permanent failure for this row)."""


def _payer(row: MeterOutbox) -> str:
    """The Stripe customer who pays for the row's grant: the order's, else the buyer's.
    Raises PayerUnknown when there is none."""
    grant = row.usage_entry.grant
    order = Order.objects.filter(grant=grant).first()
    customer_id = order.stripe_customer_id if order is not None else ""
    customer_id = customer_id or BillingCustomer.objects.filter(user_id=grant.customer_id).values_list(
        "stripe_customer_id", flat=True).first()
    if not customer_id:
        raise PayerUnknown(f"No Stripe customer pays for grant {grant.pk}.")
    return customer_id


def meter_outbox_deliver(*, outbox_id: int) -> str:
    """Send one pending row to Stripe and mark it sent. Returns the row's state afterwards
    ('sent', or 'failed' after MAX_ATTEMPTS). A row already sent returns at once (duplicate task).

    Raises MeterSendFailed on a failure that is worth retrying."""
    row = MeterOutbox.objects.select_related("usage_entry__grant").filter(pk=outbox_id).first()
    if row is None or row.state != MeterOutbox.State.PENDING:
        return row.state if row else "missing"
    MeterOutbox.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
    try:
        meter_event_report(stripe_customer_id=_payer(row), tokens=row.payload["tokens"],
                           identifier=row.payload["identifier"], timestamp=row.payload["timestamp"])
    except (stripe.StripeError, PayerUnknown) as exc:
        return _record_failure(row, exc)
    MeterOutbox.objects.filter(pk=row.pk, state=MeterOutbox.State.PENDING).update(
        state=MeterOutbox.State.SENT, sent_at=timezone.now(), last_error="")
    return MeterOutbox.State.SENT


def _record_failure(row: MeterOutbox, exc: Exception) -> str:
    row.refresh_from_db(fields=["attempts"])
    gave_up = row.attempts >= MAX_ATTEMPTS or _permanent(exc)
    state = MeterOutbox.State.FAILED if gave_up else MeterOutbox.State.PENDING
    MeterOutbox.objects.filter(pk=row.pk).update(
        state=state, last_error=str(exc)[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=min(600, 5 * 2 ** row.attempts)))
    if gave_up:
        return state
    raise MeterSendFailed(str(exc)) from exc


def _permanent(exc: Exception) -> bool:
    """4xx other than 409/429 will fail the same way again (bad customer id, bad event name)."""
    if isinstance(exc, PayerUnknown):
        return True
    status = getattr(exc, "http_status", None)
    return status is not None and 400 <= status < 500 and status not in (409, 429)


def meter_outbox_due() -> list[int]:
    """Pending rows old enough that their own task must have been lost."""
    now = timezone.now()
    lost = Q(next_attempt_at__isnull=True, created_at__lt=now - SWEEP_AFTER) | Q(next_attempt_at__lt=now)
    return list(MeterOutbox.objects.filter(lost, state=MeterOutbox.State.PENDING).values_list("pk", flat=True))
