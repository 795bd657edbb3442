"""Marketplace tasks: take an id, load, call one function. Billing's tasks (`billing.*`) live in
billing.tasks."""

from celery import shared_task

from billing.errors import GatewayTransient

from .checkout import order_refund as order_refund_at_stripe
from .services import ORDER_REFUND_TASK, orders_expire_due


@shared_task(name="marketplace.orders_expire")
def orders_expire() -> int:
    """Periodic: pending orders not paid in time expire (paying one is refused anyway)."""
    return orders_expire_due()


@shared_task(name=ORDER_REFUND_TASK, autoretry_for=(GatewayTransient,), retry_backoff=True, max_retries=8)
def order_refund(order_id: str) -> str:
    """Refund the payment of a refund_due order at Stripe; a refused refund stays for staff."""
    return order_refund_at_stripe(order_id=order_id).state


@shared_task(name="marketplace.demo_listings", acks_late=True, ignore_result=True)
def demo_listings() -> None:
    """Make the demo's listings (training queue: they fine-tune the built-in base) by running the
    idempotent demo command again; sent when the base becomes ready on an installation that has
    the demo's accounts."""
    from django.core.management import call_command

    call_command("demo")
