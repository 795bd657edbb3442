"""Marketplace tasks: take an id, load, call one function; retry only transient Stripe errors.

`metering.outbox_send` / `metering.outbox_sweep` (default queue) report metered usage to Stripe
Billing Meters, with bounded retries and backoff."""

import stripe
from celery import shared_task

from .billing import metered_subscription_create
from .metering import MeterSendFailed, meter_outbox_deliver, meter_outbox_due
from .models import Order
from .services import orders_expire_due


@shared_task(
    name="marketplace.order_metered_subscription_create",
    autoretry_for=(stripe.APIConnectionError, stripe.RateLimitError),
    retry_backoff=True,
    max_retries=6,
)
def order_metered_subscription_create(order_id: str) -> str | None:
    order = Order.objects.select_related("offer__listing").filter(pk=order_id, state=Order.State.PAID).first()
    if order is None or not order.offer.is_metered:
        return None
    return metered_subscription_create(order)


@shared_task(name="metering.outbox_send", bind=True, max_retries=8)
def meter_outbox_send(self, outbox_id: int) -> str:
    """Report one meter event row to Stripe; a failure retries with exponential backoff. The row's
    unique identifier is the meter event identifier, so a retry can never bill twice."""
    try:
        return meter_outbox_deliver(outbox_id=outbox_id)
    except MeterSendFailed as exc:
        raise self.retry(exc=exc, countdown=min(600, 2 ** self.request.retries * 5)) from exc


@shared_task(name="metering.outbox_sweep")
def meter_outbox_sweep() -> int:
    """Periodic: resend pending rows whose task was lost (a crashed worker, a broker restart)."""
    due = meter_outbox_due()
    for outbox_id in due:
        meter_outbox_send.delay(outbox_id)
    return len(due)


def meter_event_recorded(sender, outbox_id: int, **kwargs) -> None:
    """Receiver of inference.signals.meter_event_recorded (connected in MarketplaceConfig.ready)."""
    meter_outbox_send.delay(outbox_id)


@shared_task(name="marketplace.orders_expire")
def orders_expire() -> int:
    """Periodic: pending orders not paid in time expire (paying one is refused anyway)."""
    return orders_expire_due()
