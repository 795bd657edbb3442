"""Billing tasks: take an id, load, call one function; retry only transient errors.

`billing.meter_outbox_send` / `billing.meter_outbox_sweep` report metered usage to Stripe Billing
Meters with bounded retries and backoff; `billing.subscription_*` create and cancel metered grants'
subscriptions; `billing.suspend_overdue` suspends grants whose invoices stay unpaid and
`billing.local_close_periods` closes months in local test mode."""

from celery import shared_task

from .errors import GatewayError, GatewayTransient
from .local import local_periods_close_due
from .metering import MeterSendFailed, meter_outbox_deliver, meter_outbox_due
from .models import BillingCustomer
from .subscriptions import (
    subscription_cancel_remote,
    subscription_create_remote,
    subscriptions_suspend_overdue,
    subscriptions_to_create,
)


@shared_task(name="billing.subscription_create", bind=True, max_retries=6)
def subscription_create(self, subscription_id: int) -> str:
    """Create a metered grant's subscription at Stripe. A failure is recorded on the row (the
    customer sees it) and retried here with backoff, then by the periodic sweep, until it succeeds."""
    try:
        return subscription_create_remote(subscription_id=subscription_id).state
    except (GatewayError, BillingCustomer.DoesNotExist) as exc:
        raise self.retry(exc=exc, countdown=min(600, 2 ** self.request.retries * 10)) from exc


@shared_task(name="billing.subscriptions_sweep")
def subscriptions_sweep() -> int:
    """Periodic: retry subscriptions still not created at Stripe (failed, or their task was lost)."""
    due = subscriptions_to_create()
    for subscription_id in due:
        subscription_create.delay(subscription_id)
    return len(due)


@shared_task(name="billing.subscription_cancel", autoretry_for=(GatewayTransient,), retry_backoff=True,
             max_retries=8)
def subscription_cancel(subscription_id: int) -> None:
    """Cancel a refunded grant's subscription at Stripe (no further invoices)."""
    subscription_cancel_remote(subscription_id=subscription_id)


@shared_task(name="billing.suspend_overdue")
def suspend_overdue() -> int:
    """Periodic: suspend the grants whose invoice is unpaid after the grace period."""
    return subscriptions_suspend_overdue()


@shared_task(name="billing.local_close_periods")
def local_close_periods() -> int:
    """Periodic, local test mode only: close each subscription's month when it ends (invoice raised
    and paid with the saved test card), as Stripe does for real subscriptions."""
    return local_periods_close_due()


@shared_task(name="billing.meter_outbox_send", bind=True, max_retries=8)
def meter_outbox_send(self, outbox_id: int) -> str:
    """Report one meter event row to Stripe; a failure retries with exponential backoff. The row's
    unique identifier is the meter event identifier, so a retry can never bill twice."""
    try:
        return meter_outbox_deliver(outbox_id=outbox_id)
    except MeterSendFailed as exc:
        raise self.retry(exc=exc, countdown=min(600, 2 ** self.request.retries * 5)) from exc


@shared_task(name="billing.meter_outbox_sweep")
def meter_outbox_sweep() -> int:
    """Periodic: resend pending rows whose task was lost (a crashed worker, a broker restart)."""
    due = meter_outbox_due()
    for outbox_id in due:
        meter_outbox_send.delay(outbox_id)
    return len(due)


def meter_event_recorded(sender, outbox_id: int, **kwargs) -> None:
    """Receiver of inference.signals.meter_event_recorded (connected in BillingConfig.ready)."""
    meter_outbox_send.delay(outbox_id)
