"""Periodic licensing upkeep, run by Celery beat (the embedded worker runs beat too).

Schedule (to add to CELERY_BEAT_SCHEDULE in config/settings.py):
    "licensing-expire-grants": {"task": "licensing.expire_grants", "schedule": 60.0},
    "licensing-reset-quota-periods": {"task": "licensing.reset_quota_periods", "schedule": 300.0},
Both are idempotent: a second run right after the first finds nothing due.
"""

from celery import shared_task

from .services import grants_expire_due, grants_reset_quota_periods_due


@shared_task(name="licensing.expire_grants")
def expire_grants() -> int:
    return grants_expire_due()


@shared_task(name="licensing.reset_quota_periods")
def reset_quota_periods() -> int:
    return grants_reset_quota_periods_due()
