"""Periodic licensing upkeep, run by Celery beat (the embedded worker runs beat too; the schedule
is CELERY_BEAT_SCHEDULE in config/settings.py). Each is idempotent: a second run right after the
first finds nothing due."""

from celery import shared_task

from .quota import quota_reservations_sweep
from .services import grants_expire_due, grants_reset_quota_periods_due


@shared_task(name="licensing.expire_grants")
def expire_grants() -> int:
    return grants_expire_due()


@shared_task(name="licensing.reset_quota_periods")
def reset_quota_periods() -> int:
    return grants_reset_quota_periods_due()


@shared_task(name="licensing.reservations_sweep")
def reservations_sweep() -> int:
    """Release quota reservations left by requests whose process died."""
    return quota_reservations_sweep()
