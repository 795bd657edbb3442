"""Metered billing: outbox rows → Stripe Billing Meter events.

The outbox row is written by inference in the same transaction as the ledger row (its
services._settle); delivery is billing's. Delivery
happens after commit, outside any transaction, and may be retried any number of times: the row's
unique identifier is sent as the meter event's `identifier`, which Stripe de-duplicates, and a row
is marked sent only once (conditional update), so usage is never billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError
from django.db.models import F, Q
from django.utils import timezone

from inference.models import MeterOutbox

from . import gateway
from .errors import GatewayError
from .models import BillingCustomer, Provider, StripeMeter, Subscription
from .plans import metered_plan

MAX_ATTEMPTS = 8
SWEEP_AFTER = timedelta(minutes=5)
SUBSCRIPTION_WAIT = timedelta(seconds=60)


class MeterSendFailed(Exception):
    """A transient failure (network, Stripe 5xx/429): the task retries."""


class PayerUnknown(Exception):
    """The grant has no Stripe customer to bill (a permanent failure for this row)."""


@dataclass(frozen=True)
class Destination:
    """Where a row's usage is reported: the offer's meter, the paying Stripe customer, and the
    earliest timestamp the grant's subscription bills (its start)."""

    event_name: str
    stripe_customer_id: str
    not_before: int = 0
    local: bool = False  # local test mode: the outbox row itself is the meter


def _destination(row: MeterOutbox) -> Destination | None:
    """None while the grant's subscription is not created at Stripe yet (the row waits: usage sent
    before the subscription exists would not be invoiced). Raises PayerUnknown when nobody pays."""
    grant = row.usage_entry.grant
    plan = metered_plan(grant.pk)
    if plan is None:
        raise PayerUnknown(f"No order pays for grant {grant.pk}.")
    if plan.provider == Provider.LOCAL_TEST:
        return Destination(event_name=plan.meter_event_name, stripe_customer_id="", local=True)
    sub = Subscription.objects.filter(grant=grant).first()
    if sub is not None and sub.state == Subscription.State.PENDING:
        return None
    customer_id = plan.stripe_customer_id or BillingCustomer.objects.filter(user_id=grant.customer_id).values_list(
        "stripe_customer_id", flat=True).first()
    if not customer_id:
        raise PayerUnknown(f"No Stripe customer pays for grant {grant.pk}.")
    started = int(sub.started_at.timestamp()) if sub is not None and sub.started_at else 0
    return Destination(event_name=plan.meter_event_name, stripe_customer_id=customer_id, not_before=started)


def meter_outbox_deliver(*, outbox_id: int) -> str:
    """Send one pending row to Stripe and mark it sent. Returns the row's state afterwards
    ('sent', 'pending' while the grant's subscription is being created, or 'failed' after
    MAX_ATTEMPTS). A row already sent returns at once (duplicate task). In local test mode the row
    is marked sent without a network call: the local month close bills the sent rows.

    Raises MeterSendFailed on a failure that is worth retrying."""
    row = MeterOutbox.objects.select_related("usage_entry__grant").filter(pk=outbox_id).first()
    if row is None or row.state != MeterOutbox.State.PENDING:
        return row.state if row else "missing"
    try:
        destination = _destination(row)
    except PayerUnknown as exc:
        return _record_failure(row, exc)
    if destination is None:
        MeterOutbox.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() + SUBSCRIPTION_WAIT)
        return MeterOutbox.State.PENDING
    MeterOutbox.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
    if not destination.local:
        try:
            # Usage from before the subscription started is billed in its first period.
            gateway.meter_event_create(
                event_name=destination.event_name, stripe_customer_id=destination.stripe_customer_id,
                tokens=row.payload["tokens"], identifier=row.payload["identifier"],
                timestamp=max(row.payload["timestamp"], destination.not_before))
        except GatewayError as exc:
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


def meter_ensure(*, event_name: str, display_name: str) -> str:
    """The id of the Billing Meter for `event_name`, which sums tokens per Stripe customer (created
    at Stripe once; a concurrent creation returns the same meter by its idempotency key)."""
    meter = StripeMeter.objects.filter(event_name=event_name).first()
    if meter is not None:
        return meter.stripe_meter_id
    meter_id = gateway.meter_create(event_name=event_name, display_name=display_name)
    try:
        StripeMeter.objects.create(event_name=event_name, stripe_meter_id=meter_id)
    except IntegrityError:
        return StripeMeter.objects.get(event_name=event_name).stripe_meter_id
    return meter_id
