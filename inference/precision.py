"""Serving precision: the numeric precision a model version is served at, and the check that
allows a precision below fp32.

    requested = the trainer's choice for the version, else the deployment's INFERENCE_PRECISION
    effective = requested, if it is fp32 or its check is done and within the bound; else fp32

A check (`PrecisionCheck`) runs the engine's own forward at fp32 and at the precision over the
validation windows of the run that trained the version (the first INFERENCE_PRECISION_WINDOWS of
them, as the training loop's evaluation took them), and compares the perplexities. Above
INFERENCE_PRECISION_MAX_INCREASE the precision is refused. A quantisation that was not measured, is
being measured, failed or was refused is never served: the version is served at fp32 and the
receipt of every output says so (it records the precision the engine actually used).

The verdict is taken against the deployment's *current* bound: tightening it takes effect at once,
loosening it needs no new measurement (the figures do not depend on the bound).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from training.models import ModelVersion
from training.selectors import version_validation_windows

from . import engine as engine_module
from .errors import ModelVersionNotFound, PrecisionInvalid, PrecisionRefused
from .models import PrecisionCheck
from .modelstore import engine_instance, engine_source

log = logging.getLogger(__name__)

FP32 = "fp32"
# A check running for longer than this was lost with its worker (killed, redeployed): another
# delivery may take it over. Measuring 64 windows of GPT-2 medium on a CPU takes minutes, not hours.
STALE_AFTER = timedelta(hours=1)

# Verdicts on a precision for a version.
FULL = "full"  # fp32 requested: nothing to check
ACCEPTED = "accepted"
REFUSED = "refused"
PENDING = "pending"  # no check yet
MEASURING = "measuring"
FAILED = "failed"


class PrecisionUnmeasurable(Exception):
    """This worker's engine does not serve the precision (bf16 on a CPU): a check here would
    measure fp32 under another name."""


# --- Reads ------------------------------------------------------------------------------------

def precision_bound() -> float:
    """The largest relative perplexity increase over fp32 that is served (0.02 = 2 %)."""
    return float(settings.INFERENCE_PRECISION_MAX_INCREASE)


def precision_requested(version: ModelVersion) -> str:
    """What the version asks to be served at: its trainer's choice, else the deployment's default."""
    return version.serving_precision or settings.INFERENCE_PRECISION


def precision_check_get(version: ModelVersion, precision: str) -> PrecisionCheck | None:
    return PrecisionCheck.objects.filter(model_version=version, precision=precision).first()


def precision_check_verdict(check: PrecisionCheck | None) -> str:
    """PENDING (no check), MEASURING, FAILED, or ACCEPTED / REFUSED by the current bound."""
    if check is None:
        return PENDING
    if check.state == PrecisionCheck.State.RUNNING:
        return MEASURING
    if check.state == PrecisionCheck.State.FAILED:
        return FAILED
    if check.increase is not None and check.increase <= precision_bound():
        return ACCEPTED
    return REFUSED


def _standing(version: ModelVersion) -> tuple[str, PrecisionCheck | None, str, str]:
    """(requested, its check, the verdict, the effective precision) of a version; one query at most.
    Effective is the requested precision when it is fp32 or its check is accepted, else fp32:
    never an unchecked quantisation."""
    requested = precision_requested(version)
    if requested == FP32:
        return requested, None, FULL, FP32
    check = precision_check_get(version, requested)
    verdict = precision_check_verdict(check)
    return requested, check, verdict, requested if verdict == ACCEPTED else FP32


def precision_effective(version: ModelVersion) -> str:
    """The precision a request for `version` is served at (see `_standing`)."""
    return _standing(version)[3]


def _percent(value: float, *, sign: bool = False) -> str:
    if not sign:
        return f"{value * 100:g} %"
    return f"{round(value * 100, 1) + 0.0:+.1f} %"  # + 0.0: a rounded -0.0 reads "+0.0 %"


def _sentence(requested: str, verdict: str, check: PrecisionCheck | None) -> str:
    bound = _percent(precision_bound())
    if verdict == FULL:
        return "Served at: fp32 (full precision)."
    if verdict == ACCEPTED:
        return (f"Served at: {requested} (perplexity {_percent(check.increase, sign=True)} over fp32 on "
                f"{check.windows} validation windows; bound {bound}).")
    if verdict == REFUSED and check.increase is None:
        return f"{requested} refused: its perplexity is not finite ({check.error}); served at fp32."
    if verdict == REFUSED:
        return f"{requested} refused: {_percent(check.increase, sign=True)} > {bound} bound; served at fp32."
    if verdict == FAILED:
        return f"{requested} could not be measured ({check.error[:200]}); served at fp32."
    if verdict == MEASURING:
        return f"{requested} measuring…; served at fp32 until it is accepted."
    return f"{requested} not measured yet; served at fp32 until it is accepted."


def _check_figures(check: PrecisionCheck | None) -> dict | None:
    if check is None:
        return None
    return {"precision": check.precision, "state": check.state, "device": check.device, "windows": check.windows,
            "window_tokens": check.window_tokens, "perplexity_fp32": check.perplexity_fp32,
            "perplexity": check.perplexity, "increase": check.increase, "bound": check.bound,
            "accepted": check.accepted, "seconds": check.seconds, "error": check.error,
            "measured_at": check.measured_at}


def precision_summary(version: ModelVersion) -> dict:
    """For the model card, the trainer's page and the API: what is requested (and by whom), what
    is served, the verdict with the check's figures, and one sentence that says it all."""
    requested, check, verdict, effective = _standing(version)
    return {"model_version": str(version.pk), "serving_precision": version.serving_precision,
            "deployment_default": settings.INFERENCE_PRECISION, "requested": requested,
            "chosen_by": "trainer" if version.serving_precision else "deployment",
            "effective": effective, "verdict": verdict,
            "bound": precision_bound(), "bound_text": _percent(precision_bound()), "check": _check_figures(check),
            "text": _sentence(requested, verdict, check)}


def version_precision_for(*, trainer, version_id) -> dict:
    """The `precision_summary` of the trainer's own version. Raises ModelVersionNotFound (404,
    also for another trainer's version)."""
    return precision_summary(version_own(trainer, version_id))


# --- Choosing a precision ---------------------------------------------------------------------

def precision_choices() -> tuple[str, ...]:
    """The precisions the engine serves, fp32 first."""
    return tuple(engine_module.PRECISIONS)


def precision_name_clean(precision: str) -> str:
    """The precision's canonical name. Raises PrecisionInvalid for one the engine does not know."""
    name = (precision or "").strip().lower()
    if name not in engine_module.PRECISIONS:
        raise PrecisionInvalid(f"Unknown precision {precision!r}: choose one of {', '.join(engine_module.PRECISIONS)}.",
                               param="precision")
    return name


def version_own(trainer, version_id, *, lock: bool = False) -> ModelVersion:
    """The trainer's own version (locked with `lock`). Raises ModelVersionNotFound, also for another
    trainer's version."""
    versions = ModelVersion.objects.select_for_update() if lock else ModelVersion.objects
    try:
        version = versions.filter(pk=version_id, owner=trainer).first()
    except (ValueError, ValidationError):  # not a UUID
        version = None
    if version is None:
        raise ModelVersionNotFound("No such model version of yours.", param="model_version")
    return version


def precision_refusal(check: PrecisionCheck) -> PrecisionRefused:
    """The error that refuses a precision whose check measured too large an increase."""
    figure = (f"measured at {_percent(check.increase, sign=True)} perplexity over fp32" if check.increase is not None
              else "measured with a perplexity that is not finite")
    return PrecisionRefused(
        f"{check.precision} was {figure} on {check.windows} validation windows of this model, more than the "
        f"{_percent(precision_bound())} bound: it would be served at fp32. Choose another precision.",
        param="precision", extra={"increase": check.increase, "bound": precision_bound(),
                                  "windows": check.windows})


# --- Measuring --------------------------------------------------------------------------------

def _claim(version: ModelVersion, precision: str, force: bool) -> tuple[PrecisionCheck, bool]:
    """(the check, whether this call measures it). A done check, or one running and not stale,
    is left alone unless `force` (a duplicate delivery exits quietly)."""
    with transaction.atomic():
        check, created = PrecisionCheck.objects.select_for_update().get_or_create(
            model_version=version, precision=precision)
        running = check.state == PrecisionCheck.State.RUNNING and timezone.now() - check.started_at < STALE_AFTER
        if not created and not force and (check.state == PrecisionCheck.State.DONE or running):
            return check, False
        check.state, check.error, check.started_at = PrecisionCheck.State.RUNNING, "", timezone.now()
        check.save(update_fields=["state", "error", "started_at"])
    return check, True


def _measure(version: ModelVersion, precision: str) -> dict:
    """The figures of one check: both perplexities by the engine's own forward on the version's
    validation windows. Raises PrecisionUnmeasurable, and whatever loading the windows or the
    model raises (storage, integrity, the tokenizer)."""
    engine = engine_instance()
    used = engine_module.serving_precision(precision, engine.device)
    if used != precision:
        raise PrecisionUnmeasurable(
            f"{precision} is not available on this worker's {engine.device.type} (its engine would serve {used}); "
            f"it is measured on an inference worker with CUDA.")
    windows = version_validation_windows(version, max_windows=settings.INFERENCE_PRECISION_WINDOWS)
    source = engine_source(version)
    folder, digest = source.pop("model_dir"), source.pop("model_digest")
    reference = engine.perplexity(digest, folder, windows, precision=FP32, **source)
    if not math.isfinite(reference):
        raise ValueError(f"The fp32 perplexity is not finite ({reference}): the model itself overflows.")
    measured = engine.perplexity(digest, folder, windows, precision=precision, **source)
    finite = math.isfinite(measured)
    increase = measured / reference - 1 if finite else None
    bound = precision_bound()
    return {"device": str(engine.device), "windows": int(windows.shape[0]), "window_tokens": int(windows.shape[1]),
            "perplexity_fp32": reference, "perplexity": measured if finite else None, "increase": increase,
            "bound": bound, "accepted": increase is not None and increase <= bound,
            "error": "" if finite else f"{precision} perplexity is {measured}"}


def precision_check_measure(*, version_id, precision: str, force: bool = False) -> PrecisionCheck:
    """Measure (or re-measure with `force`) whether `version_id` may be served at `precision`, on
    the engine of this process; returns the stored check. A duplicate call while one runs, or once
    it is done without `force`, returns the existing check (tasks may be delivered twice). A
    measurement that fails is stored as failed with its error and no figures (served at fp32).

    Raises ModelVersion.DoesNotExist, PrecisionInvalid (an unknown name, or fp32: the reference)."""
    precision = precision_name_clean(precision)
    if precision == FP32:
        raise PrecisionInvalid("fp32 is the reference every precision is measured against: it needs no check.",
                               param="precision")
    version = ModelVersion.objects.get(pk=version_id)
    check, claimed = _claim(version, precision, force)
    if not claimed:
        return check
    started = time.monotonic()
    try:
        figures = _measure(version, precision)
    except Exception as exc:  # noqa: BLE001 - recorded on the check; the version is served at fp32
        log.exception("%s check of %s failed", precision, version.pk)
        figures = {"state": PrecisionCheck.State.FAILED, "error": str(exc)[:2000] or type(exc).__name__,
                   "perplexity_fp32": None, "perplexity": None, "increase": None, "bound": None, "accepted": False}
    else:
        figures["state"] = PrecisionCheck.State.DONE
        log.info("%s check of %s: %s", precision, version.pk, figures)
    PrecisionCheck.objects.filter(pk=check.pk).update(**figures, measured_at=timezone.now(),
                                                      seconds=time.monotonic() - started)
    check.refresh_from_db()
    return check
