"""Marketplace tasks: take an id, load, call one function. Billing's tasks (`billing.*`) live in
billing.tasks."""

from celery import shared_task

from billing.errors import GatewayError, GatewayTransient

from .checkout import order_refund as order_refund_at_stripe
from .commissions import SETTLE_TASK, commission_settle as commission_money_settle, commissions_sweep as sweep
from .services import ORDER_REFUND_TASK, orders_expire_due


@shared_task(name="marketplace.orders_expire")
def orders_expire() -> int:
    """Periodic: pending orders not paid in time expire (paying one is refused anyway)."""
    return orders_expire_due()


@shared_task(name=ORDER_REFUND_TASK, autoretry_for=(GatewayTransient,), retry_backoff=True, max_retries=8)
def order_refund(order_id: str) -> str:
    """Refund the payment of a refund_due order at Stripe; a refused refund stays for staff."""
    return order_refund_at_stripe(order_id=order_id).state


@shared_task(name=SETTLE_TASK, bind=True, max_retries=8)
def commission_settle(self, commission_id: str) -> str:
    """Release or refund a commission's held money as its state says; Stripe failures are retried
    here with backoff, then by the sweep."""
    try:
        return commission_money_settle(commission_id=commission_id)
    except GatewayError as exc:
        raise self.retry(exc=exc, countdown=min(600, 2 ** self.request.retries * 10)) from exc


@shared_task(name="marketplace.commissions_sweep")
def commissions_sweep() -> dict:
    """Periodic: lapsed review windows accept, missed deadlines cancel and refund, failed settling
    is retried. Safe to overlap: each commission moves under its row lock by a conditional check."""
    return sweep()


@shared_task(name="marketplace.demo_listings", acks_late=True, ignore_result=True)
def demo_listings() -> None:
    """Make the demo's listings (training queue: they fine-tune the built-in base) by running the
    idempotent demo command again; sent when the base becomes ready on an installation that has
    the demo's accounts."""
    from django.core.management import call_command

    call_command("demo")
