"""Read-side queries of the training app. Every query a trainer's request makes is scoped to its
owner: another trainer's objects are simply not found (404). The worker's queries (`job_for_run`,
`job_control_request`, `checkpoint_latest`) take a job it has claimed."""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.shortcuts import get_object_or_404

from django.db.models import Q

from .availability import base_availability, base_models_list  # noqa: F401 - the read side's names
from .base_models import base_model_get
from .config import HyperparameterError
from .models import Checkpoint, Dataset, DatasetUpload, ModelVersion, TrainingJob
from .services.datasets import VAL_FRACTION, dataset_encoding
from .job_warnings import job_warnings
from .textdata import held_out_split


def studio_overview(*, owner) -> dict:
    return {
        "datasets": Dataset.objects.filter(owner=owner),
        "uploads": DatasetUpload.objects.filter(owner=owner).exclude(state=DatasetUpload.State.READY)[:10],
        "jobs": TrainingJob.objects.filter(owner=owner).select_related("dataset"),
        "versions": ModelVersion.objects.filter(owner=owner).select_related("job"),
        "base_models": base_models_list(),
    }


def dataset_get(*, owner, pk) -> Dataset:
    return get_object_or_404(Dataset, pk=pk, owner=owner)


def dataset_for_training(*, user, pk) -> Dataset:
    """The user's own dataset, or one lent to their jobs (404 otherwise, even for a lapsed lending)."""
    return get_object_or_404(Dataset.objects.filter(Q(owner=user) | Q(accesses__user=user, accesses__active=True))
                             .distinct(), pk=pk)


def datasets_for(*, owner, sha256: str = ""):
    """The owner's datasets; with `sha256`, those whose content digest (as uploaded or as
    stored) it is."""
    found = Dataset.objects.filter(owner=owner)
    sha256 = sha256.strip().lower()
    return found.filter(Q(sha256=sha256) | Q(upload_sha256=sha256)) if sha256 else found


def upload_get(*, owner, pk) -> DatasetUpload:
    return get_object_or_404(DatasetUpload.objects.select_related("dataset"), pk=pk, owner=owner)


def job_get(*, owner, pk) -> TrainingJob:
    return get_object_or_404(TrainingJob.objects.select_related("dataset"), pk=pk, owner=owner)


def version_get(*, owner, pk) -> ModelVersion:
    return get_object_or_404(ModelVersion.objects.select_related("job"), pk=pk, owner=owner)


def job_for_run(*, job_id) -> TrainingJob:
    """A claimed job with what its run reads: the dataset and the owner."""
    return TrainingJob.objects.select_related("dataset", "owner").get(pk=job_id)


def job_control_request(*, job_id) -> str | None:
    """The trainer's pending "pause" or "cancel" of a running job, or None."""
    return TrainingJob.objects.filter(pk=job_id).values_list("control_request", flat=True).first() or None


def checkpoint_latest(*, job: TrainingJob) -> Checkpoint | None:
    return Checkpoint.objects.filter(job=job).order_by("-step").first()


def checkpoint_at(*, job: TrainingJob, step: int) -> Checkpoint | None:
    return Checkpoint.objects.filter(job=job, step=step).first()


# Steps a job's own attempt must have run before its ETA comes from its own pace.
MEASURED_STEPS_MIN = 5


def _measured_seconds_per_step(job: TrainingJob) -> float | None:
    """Wall seconds per step of the current attempt, from the times its steps were recorded:
    evaluations, samples and checkpoints between them included, unlike a step's own tokens/s."""
    rows = job.metrics.filter(attempt=job.attempts).order_by("step").values_list("step", "created_at")
    first, last = rows.first(), rows.last()
    if first is None or last[0] - first[0] < MEASURED_STEPS_MIN:
        return None
    return (last[1] - first[1]).total_seconds() / (last[0] - first[0])


def job_eta(job: TrainingJob) -> dict:
    """{"eta_seconds", "eta_source", "cost_estimate_cents"}: a running job's remaining time from
    its own measured pace once it has run MEASURED_STEPS_MIN steps ("measured"); before that the
    estimate made at creation, less the compute already spent ("estimate"). The cost estimate is
    the compute so far plus the remaining time at the compute rate. Not running: no ETA."""
    eta, source = None, None
    if job.state == TrainingJob.State.RUNNING:
        per_step = _measured_seconds_per_step(job)
        if per_step is not None:
            eta, source = round((job.total_steps - job.step) * per_step, 1), "measured"
        elif job.estimate.get("seconds") is not None:
            eta, source = round(max(job.estimate["seconds"] - job.compute_seconds, 0.0), 1), "estimate"
    hours = (job.compute_seconds + (eta or 0.0)) / 3600
    return {"eta_seconds": eta, "eta_source": source,
            "cost_estimate_cents": math.ceil(hours * settings.COMPUTE_RATE_CENTS_PER_HOUR)}


def job_evaluations(job: TrainingJob) -> list[tuple[int, float]]:
    """(step, validation loss) of every evaluation of the job, in step order."""
    return list(job.metrics.filter(val_loss__isnull=False).order_by("step").values_list("step", "val_loss"))


def job_warning_list(*, job: TrainingJob) -> list[dict]:
    """The job's warnings ({code, message, figures}): overfitting and memorisation, as they happen."""
    samples = job.samples.values("step", "longest_copied_span", "ngram_overlap")
    return job_warnings(job_evaluations(job), samples)


def _best_evaluation(evaluations: list[tuple[int, float]]) -> dict | None:
    if not evaluations:
        return None
    step, loss = min(evaluations, key=lambda e: (e[1], e[0]))
    return {"step": step, "val_loss": loss}


def job_settings(*, job: TrainingJob) -> list[tuple[str, str, object]]:
    """(name, label, value) of each of the job's hyperparameters, defaults filled in, for its page.
    A row stored outside the limits (its run fails on it) is shown as stored, under its keys."""
    try:
        return job.config.described()
    except HyperparameterError:
        return [(name, name, value) for name, value in job.hyperparameters.items()]


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")


def _reads_as_a_start(text: str) -> bool:
    # A capital or an opening quote starts a sentence; a lower-case letter or a comma is a middle.
    return text[0].isupper() or text[0].isdigit() or text[0] in "\"'“‘(["


def sample_reading(text: str, *, prompt: str) -> dict:
    """How a sample reads best: {"shown": text, "cut": bool}. After a prompt the text continues it
    and is shown whole. From an empty prompt the model starts wherever its training windows started
    (mid-sentence, often mid-word), so the sample is shown from its first line or sentence start,
    else its first whole word, in its first half; `cut` says a start was left out."""
    if prompt or not text.strip() or _reads_as_a_start(text.lstrip()):
        return {"shown": text if prompt else text.lstrip(), "cut": False}
    half = len(text) // 2
    line = text.find("\n", 0, half)
    sentence = _SENTENCE_END.search(text, 0, half)
    space = text.find(" ", 0, half)
    # The earliest line or sentence start reads best; else the first whole word; else all of it.
    starts = [i for i in (line + 1 if line >= 0 else 0, sentence.end() if sentence else 0) if i > 0]
    start = min(starts) if starts else space + 1
    return {"shown": text[start:].lstrip(), "cut": start > 0}


def job_progress(*, job: TrainingJob, include_trace: bool = False, metrics_after: int = 0,
                 samples_after: int = -1) -> dict:
    """Everything the live job page and the API show: state, progress, ETA, compute cost so far,
    the loss curves, samples, checkpoints and versions. The stack trace only for staff.

    `metrics_after` and `samples_after` (steps) let a polling page fetch only what is new: a long
    job has one metric row per step, too many to send every few seconds."""
    metrics = list(job.metrics.filter(step__gt=metrics_after).values(
        "step", "train_loss", "val_loss", "perplexity", "learning_rate", "tokens_per_second", "attempt"))
    prompt = job.hyperparameters.get("sample_prompt") or ""
    evaluations = job_evaluations(job)
    samples = [{**row, **sample_reading(row["text"], prompt=prompt)} for row in job.samples.filter(
        step__gt=samples_after).values("step", "index", "text", "longest_copied_span", "ngram_overlap")]
    hours = job.compute_seconds / 3600
    return {
        "id": str(job.pk), "name": job.name, "state": job.state, "control_request": job.control_request,
        "step": job.step, "total_steps": job.total_steps, "percent": job.progress_percent,
        **job_eta(job), "attempts": job.attempts,
        "resumed_from_step": job.resumed_from_step, "device": job.device,
        "compute_seconds": round(job.compute_seconds, 1),
        "cost_so_far_cents": math.ceil(hours * settings.COMPUTE_RATE_CENTS_PER_HOUR),
        "estimate": job.estimate, "base_model": job.base_model, "hyperparameters": job.hyperparameters,
        "error": job.error_message or None, **({"error_trace": job.error_trace} if include_trace else {}),
        "metrics": metrics, "samples": samples, "sample_prompt": prompt,
        "checkpoint_every": job.hyperparameters.get("checkpoint_every"),
        "checkpoints": list(job.checkpoints.values("id", "step", "kept")),
        "versions": [{"id": str(v.pk), "name": v.name, "digest": v.digest, "from_step": v.from_step,
                      "selection": v.selection.get("text", ""), "warnings": v.warnings,
                      "memorisation_acknowledged": v.memorisation_acknowledged_at is not None}
                     for v in job.versions.all()],
        "warnings": job_warnings(evaluations, job.samples.values("step", "longest_copied_span", "ngram_overlap")),
        "best": _best_evaluation(evaluations), "data_split": job.data_split,
    }


# --- The windows a job trains and evaluates on -------------------------------------------------

@dataclass
class JobWindows:
    tokenizer: object
    ids: list[int]
    train: object  # LongTensor [n, context_length + 1]
    val: object
    split: dict  # HeldOutSplit.summary(): documents and tokens on each side


def job_windows(*, job: TrainingJob, scratch: Path) -> JobWindows:
    """The dataset's tokens for the job's base model and the (train, validation) windows its run
    uses: documents split by its seed into training and held-out validation, each side cut at
    its context length (textdata.held_out_split). The one place they are made, so the training
    run and every later measurement of a version on "its validation set" (inference's precision
    checks) read the same windows. Raises TrainingError when the tokenizer is unreachable."""
    config = job.config
    tokenizer, ids = dataset_encoding(dataset=job.dataset, base=base_model_get(job.base_model), scratch=scratch)
    split = held_out_split(ids, eos_id=tokenizer.eos_token_id, context_length=config.context_length,
                           val_fraction=VAL_FRACTION, seed=config.seed)
    return JobWindows(tokenizer=tokenizer, ids=ids, train=split.train, val=split.val, split=split.summary())


def version_validation_windows(version: ModelVersion, *, max_windows: int | None = None):
    """The held-out validation windows of the run that produced `version` (LongTensor
    [n, context_length + 1] of token ids, as the run evaluated them), at most `max_windows`: the
    first ones, as the training loop's evaluation takes them (its eval_max_windows). A window longer
    than the model's positions (a context as long as they are) is cut to them: the engine's
    perplexity reads whole windows. Raises TrainingError when the dataset's tokenizer is unreachable."""
    job = TrainingJob.objects.select_related("dataset").get(pk=version.job_id)
    with tempfile.TemporaryDirectory(prefix="imprint-windows-") as scratch:
        val = job_windows(job=job, scratch=Path(scratch)).val
    val = val[:, : version.n_positions]
    return val[:max_windows] if max_windows is not None else val


def version_training_evidence(version: ModelVersion, *, samples: int = 10, metrics: int = 50) -> dict:
    """What a version's training shows, as plain data (a dispute's case keeps it): the job's
    metrics, its latest samples with their memorisation figures, and the worst of those figures."""
    job = version.job
    rows = list(job.metrics.order_by("-step")[:metrics])
    kept = list(job.samples.order_by("-step", "index")[:samples])
    overlaps = [s.ngram_overlap for s in job.samples.all() if s.ngram_overlap is not None]
    spans = [s.longest_copied_span for s in job.samples.all() if s.longest_copied_span is not None]
    return {
        "model_version": str(version.pk), "job": str(job.pk), "job_state": job.state,
        "dataset": str(job.dataset_id), "base_model": version.base_model, "from_step": version.from_step,
        "version_metrics": version.metrics,
        "metrics": [{"step": m.step, "train_loss": m.train_loss, "val_loss": m.val_loss, "perplexity": m.perplexity}
                    for m in reversed(rows)],
        "samples": [{"step": s.step, "text": s.text[:1000], "longest_copied_span": s.longest_copied_span,
                     "ngram_overlap": s.ngram_overlap} for s in kept],
        "memorisation": {"samples": len(overlaps), "max_ngram_overlap": max(overlaps, default=None),
                         "max_copied_span": max(spans, default=None)},
    }
