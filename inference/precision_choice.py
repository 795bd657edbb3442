"""A trainer's choice of serving precision, and queueing the check that a precision below fp32
needs (on the inference queue). Apart from inference.precision (reads and measuring) so that the
measuring task's module and the module that queues it do not import each other."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_append
from training.models import ModelVersion

from .engine import PRECISIONS
from .precision import (
    FAILED,
    FP32,
    PENDING,
    REFUSED,
    precision_check_get,
    precision_check_verdict,
    precision_name_clean,
    precision_refusal,
    precision_requested,
    precision_summary,
    version_own,
)
from .tasks import precision_check_measure_task


def version_precision_set(*, trainer, version_id, precision: str | None) -> dict:
    """Choose the serving precision of the trainer's own version ("" or None: the deployment's
    default). A precision below fp32 whose check is refused is refused here, naming the measured
    increase and the bound, and nothing changes; one not measured yet (or whose measurement
    failed) is set as pending and measured on the inference queue after commit, served at fp32
    until accepted. Returns the version's `precision_summary`.

    Raises ModelVersionNotFound (404, also for another trainer's version), PrecisionInvalid and
    PrecisionRefused (400)."""
    choice = precision_name_clean(precision) if (precision or "").strip() else ""
    with transaction.atomic():
        version = version_own(trainer, version_id, lock=True)
        check = precision_check_get(version, choice) if choice and choice != FP32 else None
        if check is not None and precision_check_verdict(check) == REFUSED:
            raise precision_refusal(check)
        previous = version.serving_precision
        version.serving_precision = choice
        version.save(update_fields=["serving_precision"])
        audit_append(event="version.serving_precision_set", actor=trainer, subject=version,
                     data={"from": previous, "to": choice})
        precision_check_request(version=version)
    return precision_summary(version)


def precision_check_request(*, version: ModelVersion) -> str | None:
    """Queue, after commit, the check of the precision `version` asks for, when it is below fp32
    and not measured yet (or its measurement failed); publishing and choosing a precision call it.
    Returns the precision queued, or None."""
    requested = precision_requested(version)
    if requested == FP32 or requested not in PRECISIONS:
        return None
    if precision_check_verdict(precision_check_get(version, requested)) not in (PENDING, FAILED):
        return None
    version_id = str(version.pk)
    transaction.on_commit(lambda: precision_check_measure_task.delay(version_id, requested), robust=True)
    return requested
