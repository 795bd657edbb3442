"""Warnings a trainer must see while a job runs: validation loss rising (overfitting) and samples
that copy the training data (memorisation). Computed from the job's recorded evaluations and
samples, so the job page, the job API and the CLI say the same thing as soon as the figures are
there. Each warning is {"code", "message", "figures"}; the thresholds are settings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.conf import settings

VALIDATION_LOSS_RISING = "validation_loss_rising"
MEMORISATION = "memorisation"


def validation_warning(evaluations: Sequence[tuple[int, float]]) -> dict | None:
    """The overfitting warning for (step, val_loss) evaluations in step order, or None: once
    TRAINING_WARN_RISING_EVALUATIONS evaluations have followed the lowest and the latest is
    above it."""
    if not evaluations:
        return None
    best_index = min(range(len(evaluations)), key=lambda i: (evaluations[i][1], i))
    best_step, best_loss = evaluations[best_index]
    since = len(evaluations) - 1 - best_index
    latest_step, latest_loss = evaluations[-1]
    if since < settings.TRAINING_WARN_RISING_EVALUATIONS or latest_loss <= best_loss:
        return None
    return {"code": VALIDATION_LOSS_RISING,
            "message": f"Validation loss has risen for {since} evaluations: {latest_loss:.3f} at step {latest_step} "
                       f"against {best_loss:.3f} at step {best_step}, the lowest. The model is learning the training "
                       f"text rather than the language (overfitting); the version is made from step {best_step}.",
            "figures": {"best_step": best_step, "best_val_loss": best_loss, "latest_step": latest_step,
                        "latest_val_loss": latest_loss, "evaluations_since_best": since}}


def _copies(sample: dict) -> bool:
    span, overlap = sample.get("longest_copied_span") or 0, sample.get("ngram_overlap") or 0.0
    return span >= settings.TRAINING_WARN_COPIED_SPAN_TOKENS or overlap >= settings.TRAINING_WARN_NGRAM_OVERLAP


def memorisation_warning(samples: Iterable[dict], *, upto_step: int | None = None) -> dict | None:
    """The memorisation warning for samples ({step, longest_copied_span, ngram_overlap}), or None.
    For a job, any sampled step whose samples cross a threshold counts (the first such step and
    the worst figures are given); with `upto_step` (a version), only the samples of the latest
    sampled step at or before it, the samples of those weights."""
    samples = [s for s in samples if upto_step is None or s["step"] <= upto_step]
    if upto_step is not None and samples:
        last = max(s["step"] for s in samples)
        samples = [s for s in samples if s["step"] == last]
    copying = [s for s in samples if _copies(s)]
    if not copying:
        return None
    span = max(s.get("longest_copied_span") or 0 for s in copying)
    overlap = max(s.get("ngram_overlap") or 0.0 for s in copying)
    first = min(s["step"] for s in copying)
    span_limit, overlap_limit = settings.TRAINING_WARN_COPIED_SPAN_TOKENS, settings.TRAINING_WARN_NGRAM_OVERLAP
    return {"code": MEMORISATION,
            "message": f"Samples copy the training data from step {first}: up to {span} tokens word for word and "
                       f"{overlap:.0%} of 8-grams found in the data (warning at {span_limit} tokens or "
                       f"{overlap_limit:.0%}). Publishing a version that copies its data needs your acknowledgement.",
            "figures": {"first_step": first, "longest_copied_span": span, "ngram_overlap": overlap,
                        "span_threshold": span_limit, "overlap_threshold": overlap_limit,
                        "copying_samples": len(copying)}}


def job_warnings(evaluations: Sequence[tuple[int, float]], samples: Iterable[dict]) -> list[dict]:
    """Every warning of a job, overfitting first."""
    return [w for w in (validation_warning(evaluations), memorisation_warning(samples)) if w]
