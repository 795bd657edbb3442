"""Marketplace tasks: take an id, load, call one function; retry only transient Stripe errors."""

import stripe
from celery import shared_task

from .billing import metered_subscription_create
from .models import Order


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
