"""Marketplace tasks: take an id, load, call one function. Billing's tasks (`billing.*`) live in
billing.tasks."""

from celery import shared_task

from .services import orders_expire_due


@shared_task(name="marketplace.orders_expire")
def orders_expire() -> int:
    """Periodic: pending orders not paid in time expire (paying one is refused anyway)."""
    return orders_expire_due()
