"""Training jobs and every write to their state: creation and enqueueing, the trainer's pause /
cancel / resume, a worker's claim with a lease, its heartbeats, the end of its attempt, and the
sweep that re-sends jobs whose lease expired. Also the progress rows (metrics, samples) a running
job records.

A worker holds a job while `worker_id` is its own and the job is running; every write a worker
makes is conditional on that (job_lease_hold), so a worker that lost its lease cannot overwrite
its successor. The worker renews the lease in the background for as long as it runs the job
(training.job_runner.LeaseKeeper), so the sweep only re-sends jobs whose worker is gone.
"""

from __future__ import annotations

import dataclasses

import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from accounts.services import user_lock

from ..base_models import (
    TINY,
    BaseModel,
    available_device,
    base_defaults,
    base_model_get,
    job_estimate,
    largest_fitting_micro_batch,
    recompute_slowdown,
    training_memory,
)
from ..config import HyperparameterError, TrainConfig
from ..config import hyperparameters as hyperparameters_declared
from ..errors import BatchTooLarge, IllegalTransition, LeaseLost, TrainingError, TrainingLimitExceeded
from ..models import Dataset, JobMetric, Sample, TrainingJob
from .access import dataset_usable_by
from .bases import base_require_available

State = TrainingJob.State
ACTIVE_STATES = (State.QUEUED, State.RUNNING)
RESTING_STATES = (State.SUCCEEDED, State.PAUSED, State.CANCELLED)
# The task that runs a job (training.tasks.run_job). Services send it by name instead of importing
# it: tasks import the job runner, which imports these services, so the dependency points one way
# (tasks -> job_runner -> services), and the web process needs no task module loaded to enqueue.
# Celery routes by this name too (config.celery_app task_routes: training.* -> training queue).
RUN_JOB_TASK = "training.run_job"


def _send_run(job_id) -> None:
    current_app.send_task(RUN_JOB_TASK, args=[str(job_id)], ignore_result=True)


def _enqueue(job: TrainingJob) -> None:
    """Send the job to a worker once the transaction that queued it has committed."""
    job_id = str(job.pk)
    transaction.on_commit(lambda: _send_run(job_id))


def _lease_expired_before() -> datetime:
    return timezone.now() - timezone.timedelta(seconds=settings.TRAINING_LEASE_SECONDS)


# --- Creation ---------------------------------------------------------------------------------

def _check_limits(owner, steps: int) -> None:
    """Raises TrainingLimitExceeded when the owner has too many jobs queued or running, or when
    `steps` more would bring their steps (see _steps_charged) over the total step limit."""
    active = TrainingJob.objects.filter(owner=owner, state__in=ACTIVE_STATES).count()
    concurrent, total = settings.TRAINING_MAX_CONCURRENT_JOBS, settings.TRAINING_MAX_TOTAL_STEPS
    if active >= concurrent:
        raise TrainingLimitExceeded(
            f"You already have {active} jobs queued or running (limit {concurrent}). "
            "Wait for one to finish, or pause or cancel one.")
    used = _steps_charged(owner)
    if used + steps > total:
        raise TrainingLimitExceeded(
            f"This job would bring your total to {used + steps} steps; your limit is {total}.", param="steps")


def _steps_charged(owner) -> int:
    """Every step the owner's jobs computed, in any state (a cancelled job's checkpoints still
    become versions) and recomputed ones included, plus the steps each job that may still run
    would compute to its end."""
    owned = TrainingJob.objects.filter(owner=owner).annotate(resume_at=Max("checkpoints__step"))
    return sum(job.steps_computed + _steps_ahead(job) for job in owned)


def _steps_ahead(job: TrainingJob) -> int:
    if job.state in (State.SUCCEEDED, State.CANCELLED):
        return 0
    # A running job goes on from its step; any other restarts at its latest checkpoint (or from
    # scratch), recomputing whatever followed it.
    start = job.step if job.state == State.RUNNING else (job.resume_at or 0)
    return max(job.total_steps - start, 0)


def job_estimate_for(*, base_model: str, config: TrainConfig) -> dict:
    """Tokens, duration and cost of a job before it is created (see base_models.job_estimate), from
    the throughput recent finished jobs on this base and device measured, where there are some,
    else from the base's constant. Raises TrainingError for an unknown base model."""
    device = available_device()
    return job_estimate(base=base_model_get(base_model), steps=config.steps, batch_size=config.batch_size,
                        context_length=config.context_length, device=device,
                        measured=measured_throughput(base_model=base_model, device=device),
                        slowdown=recompute_slowdown(config))


def measured_throughput(*, base_model: str, device: str) -> dict | None:
    """{"tokens_per_second", "jobs"}: the median throughput of the last TRAINING_ESTIMATE_RECENT_JOBS
    succeeded jobs on this base and device, counted over their whole compute time (evaluations,
    samples and checkpoints included, as a new job will spend it); None when there is none."""
    recent = (TrainingJob.objects.filter(base_model=base_model, device=device, state=State.SUCCEEDED,
                                         steps_computed__gt=0, compute_seconds__gt=0)
              .order_by("-finished_at").values("hyperparameters", "steps_computed", "compute_seconds")
              [: settings.TRAINING_ESTIMATE_RECENT_JOBS])
    # Each at the pace it would have kept storing its activations.
    rates = sorted(job["steps_computed"] * job["hyperparameters"].get("batch_size", 0)
                   * job["hyperparameters"].get("context_length", 0) / job["compute_seconds"]
                   * recompute_slowdown(_stored_config(job["hyperparameters"])) for job in recent)
    rates = [rate for rate in rates if rate > 0]
    if not rates:
        return None
    return {"tokens_per_second": rates[len(rates) // 2], "jobs": len(rates)}


def _stored_config(hyperparameters: Mapping[str, Any]) -> TrainConfig:
    """A stored job's TrainConfig; TrainConfig's defaults where a row no longer validates."""
    try:
        return TrainConfig.from_dict(hyperparameters)
    except HyperparameterError:
        return TrainConfig()


def _train_config(hyperparameters: Mapping[str, Any], base_model: str = TINY) -> TrainConfig:
    """The job's TrainConfig: the base's defaults for settings left unset (absent, or null where
    null is not a value of its own: an optional setting's null means "off"), then the request.
    Raises TrainingError on the first field out of its limits (or unknown)."""
    optional = {name for name, _, _, limits in hyperparameters_declared() if limits.optional}
    given = {name: value for name, value in hyperparameters.items() if value is not None or name in optional}
    try:
        return TrainConfig.from_dict({**base_defaults(base_model, given.get("method")), **given})
    except HyperparameterError as exc:
        raise TrainingError(str(exc), param=exc.field) from exc


def job_memory_check(*, base: BaseModel, config: TrainConfig) -> None:
    """Raises BatchTooLarge when one pass of the job's micro-batch (its batch, when it has none)
    would not fit TRAINING_DEVICE_MEMORY_GIB, saying which micro-batch would (and, when the job
    keeps its activations, which would if it recomputed them)."""
    micro = config.micro_batch_size or config.batch_size
    need = training_memory(base, config, micro_batch=micro)
    limit = settings.TRAINING_DEVICE_MEMORY_GIB * 2**30
    if need["total"] <= limit:
        return
    fits = largest_fitting_micro_batch(base, config, limit_bytes=limit)
    advice = (f"set micro_batch_size to {fits} or less (the batch of {config.batch_size} is then accumulated "
              "over several passes)" if fits else "shorten the context length")
    recomputing = 0
    if not config.recomputes_activations:
        recomputing = largest_fitting_micro_batch(base, dataclasses.replace(config, activations="recompute"),
                                                  limit_bytes=limit)
        if recomputing > fits:
            room = "the whole pass then fits" if recomputing >= micro else f"then up to {recomputing} windows a pass"
            advice += f", or set activations to recompute ({room}, at a third to a half more compute)"
    raise BatchTooLarge(
        f"A pass of {micro} windows of {config.context_length} tokens on {base.name} needs about "
        f"{need['total'] / 2**30:.1f} GiB (the fp32 logits alone {need['logits'] / 2**30:.1f} GiB), more than "
        f"the {settings.TRAINING_DEVICE_MEMORY_GIB:g} GiB of a training device: {advice}.",
        param="micro_batch_size" if config.micro_batch_size else "batch_size",
        extra={"estimated_bytes": need["total"], "device_memory_bytes": int(limit), "largest_micro_batch": fits,
               "largest_micro_batch_recomputing": max(fits, recomputing)})


def _max_context(base: BaseModel) -> int:
    return 512 if base.name == TINY else base.n_positions


@transaction.atomic
def job_create(*, owner, dataset: Dataset, name: str, base_model: str,
               hyperparameters: Mapping[str, Any]) -> TrainingJob:
    """Create a queued job and enqueue it on the training queue after commit.

    `hyperparameters` are read by TrainConfig.from_dict (missing ones take the base's defaults,
    then TrainConfig's) and stored complete (`to_dict`). Raises TrainingError for hyperparameters
    out of their limits, an unknown base model, a dataset of someone else or a context too long
    for the base, BaseModelUnavailable for a base this server cannot load now, BatchTooLarge for a
    micro-batch that cannot fit a training device, and TrainingLimitExceeded over the trainer's
    limits; nothing is queued then.
    """
    base = base_model_get(base_model)
    base_require_available(base)
    config = _resolved_config(hyperparameters, base)
    if not dataset_usable_by(dataset=dataset, user=owner):
        raise TrainingError("Choose one of your own datasets (or one lent to you).", param="dataset")
    if config.context_length > _max_context(base):
        raise TrainingError(f"Context length can be at most {_max_context(base)} for {base.name}.",
                            param="context_length")
    job_memory_check(base=base, config=config)
    user_lock(user=owner)
    _check_limits(owner, config.steps)
    job = TrainingJob.objects.create(
        owner=owner, dataset=dataset, name=name or f"{dataset.name} on {base.name}", base_model=base.name,
        hyperparameters=config.to_dict(), total_steps=config.steps,
        estimate=job_estimate_for(base_model=base.name, config=config), heartbeat_at=timezone.now())
    _enqueue(job)
    return job


# --- The trainer's control --------------------------------------------------------------------

# Which requests each state accepts, and the state they lead to directly. Pause and cancel of a
# running job are requests the loop honours at its next step, so they do not change the state here.
_DIRECT = {
    ("pause", State.QUEUED): State.PAUSED,
    ("cancel", State.QUEUED): State.CANCELLED,
    ("cancel", State.PAUSED): State.CANCELLED,
    ("cancel", State.FAILED): State.CANCELLED,
    ("resume", State.PAUSED): State.QUEUED,
    ("resume", State.FAILED): State.QUEUED,
}


def _resolved_config(hyperparameters: Mapping[str, Any], base: BaseModel) -> TrainConfig:
    """The config a job on `base` trains with: the base's defaults for what is unset, and the
    method resolved (stored so, the job trains the same whatever defaults become later)."""
    config = _train_config(hyperparameters, base.name)
    if config.method is None:
        config = dataclasses.replace(config, method=base.default_method)
    return config


@transaction.atomic
def job_start_or_resume(*, owner, dataset: Dataset, name: str, base_model: str,
                        hyperparameters: Mapping[str, Any]) -> tuple[TrainingJob, str]:
    """What running the same training command again means: the owner's unfinished job on the same
    dataset with the same base model and hyperparameters is resumed (when paused) or followed
    (when queued or running) instead of a second one being started; failing that, the same job
    that already succeeded is returned as it is (its version is the answer). Returns (job,
    "resumed" | "following" | "succeeded" | "created"). Raises what `job_create` and `job_control`
    raise."""
    wanted = _resolved_config(hyperparameters, base_model_get(base_model)).to_dict()
    same = (TrainingJob.objects.select_for_update()
            .filter(owner=owner, dataset=dataset, base_model=base_model,
                    state__in=[State.PAUSED, State.QUEUED, State.RUNNING, State.SUCCEEDED]).order_by("-created_at"))
    # Rows are stored complete (to_dict), so a request that leaves a setting at its default and one
    # that spells the default out find the same job.
    matching = [job for job in same if job.hyperparameters == wanted]
    for job in matching:
        if job.state == State.PAUSED:
            return job_control(job=job, action="resume"), "resumed"
        if job.state in ACTIVE_STATES:
            return job, "following"
    if matching:
        return matching[0], "succeeded"
    return job_create(owner=owner, dataset=dataset, name=name, base_model=base_model,
                      hyperparameters=hyperparameters), "created"


@transaction.atomic
def job_control(*, job: TrainingJob, action: str) -> TrainingJob:
    """Pause, cancel or resume a job; a resumed job is enqueued again after commit.

    Raises IllegalTransition with a message when the job's state does not allow it (e.g. resuming
    a running job, cancelling a finished one) or when resuming would exceed the trainer's limits.
    """
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if action in ("pause", "cancel") and job.state == State.RUNNING:
        return _control_request(job, action)
    target = _DIRECT.get((action, job.state))
    if target is None:
        raise IllegalTransition(f"Cannot {action} a job that is {job.state}.")
    if action == "resume":
        _check_resume_limits(job.owner)
    return _control_transition(job, target)


def _control_request(job: TrainingJob, action: str) -> TrainingJob:
    if job.control_request == "cancel" and action == "pause":
        raise IllegalTransition("The job is already being cancelled.")
    job.control_request = action
    job.save(update_fields=["control_request"])
    return job


def _check_resume_limits(owner) -> None:
    user_lock(user=owner)
    try:
        _check_limits(owner, 0)
    except TrainingLimitExceeded as exc:
        # What stops a resume is the state of the trainer's jobs (this one's steps computed so far
        # among them), so it is refused as a conflict (409), as the API has always answered it.
        raise IllegalTransition(exc.message) from exc


def _control_transition(job: TrainingJob, target: str) -> TrainingJob:
    job.state, job.control_request = target, ""
    if target == State.QUEUED:
        job.heartbeat_at = timezone.now()
        job.error_message = job.error_trace = ""
        _enqueue(job)
    if target == State.CANCELLED:
        job.finished_at = timezone.now()
    job.save()
    return job


# --- A worker's attempt -----------------------------------------------------------------------

def job_claim(*, job_id, worker_id: str) -> bool:
    """Take the job for this worker: a queued job, or a running one whose lease expired (its
    worker died). A conditional UPDATE, so two workers can never both win. Returns whether this
    worker won; the job is then running, with its attempt counted and its start time set once."""
    now = timezone.now()
    claimed = (
        TrainingJob.objects.filter(pk=job_id)
        .filter(Q(state=State.QUEUED) | Q(state=State.RUNNING, heartbeat_at__lt=_lease_expired_before()))
        .update(state=State.RUNNING, worker_id=worker_id, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if claimed:
        TrainingJob.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


def job_heartbeat(*, job_id, worker_id: str, elapsed_seconds: float, step: int | None = None) -> None:
    """Renew this worker's lease, adding the compute time since its last beat (and the step it
    just computed, counted towards the trainer's step limit). Raises LeaseLost when the job is no
    longer this worker's running job."""
    progress = {"step": step, "steps_computed": F("steps_computed") + 1} if step is not None else {}
    updated = TrainingJob.objects.filter(pk=job_id, worker_id=worker_id, state=State.RUNNING).update(
        heartbeat_at=timezone.now(), compute_seconds=F("compute_seconds") + elapsed_seconds, **progress)
    if not updated:
        raise LeaseLost(str(job_id))


def job_lease_renew(*, job_id, worker_id: str) -> None:
    """Renew this worker's lease on its running job. Raises LeaseLost when it is no longer its own."""
    _renew(job_id, worker_id)


def _renew(job_id, worker_id: str) -> None:
    updated = TrainingJob.objects.filter(pk=job_id, worker_id=worker_id, state=State.RUNNING).update(
        heartbeat_at=timezone.now())
    if not updated:
        raise LeaseLost(str(job_id))


@contextmanager
def job_lease_hold(*, job_id, worker_id: str) -> Iterator[None]:
    """A transaction in which this worker still holds the job: it renews the lease first (raising
    LeaseLost when it is gone), and that UPDATE keeps the job's row locked until commit, so no
    other worker can claim the job between the check and the writes made inside."""
    with transaction.atomic():
        _renew(job_id, worker_id)
        yield


def job_device_set(*, job_id, worker_id: str, device: str) -> None:
    """Record the device ("cpu", "cuda") this attempt trains on. Raises LeaseLost."""
    with job_lease_hold(job_id=job_id, worker_id=worker_id):
        TrainingJob.objects.filter(pk=job_id).update(device=device)


def job_data_split_record(*, job_id, worker_id: str, split: dict) -> None:
    """Record how the dataset was split into training and held-out validation (documents, tokens
    and windows on each side) for the job page and the model card. Raises LeaseLost."""
    with job_lease_hold(job_id=job_id, worker_id=worker_id):
        TrainingJob.objects.filter(pk=job_id).update(data_split=split)


def job_progress_rewind(*, job_id, worker_id: str, to_step: int | None) -> None:
    """Forget the progress rows recorded after `to_step`, the checkpoint this attempt resumes from
    (None: it starts over, so all of them). Those steps are recomputed; steps up to the checkpoint
    never are, and the job records that it resumed there. Raises LeaseLost."""
    with job_lease_hold(job_id=job_id, worker_id=worker_id):
        metrics, samples = JobMetric.objects.filter(job_id=job_id), Sample.objects.filter(job_id=job_id)
        if to_step is not None:
            metrics, samples = metrics.filter(step__gt=to_step), samples.filter(step__gt=to_step)
            TrainingJob.objects.filter(pk=job_id).update(step=to_step, resumed_from_step=to_step)
        metrics.delete()
        samples.delete()


def job_finish(*, job_id, worker_id: str, state: str, step: int | None = None) -> None:
    """End this worker's attempt in a resting state: succeeded (at `step`), paused or cancelled.
    The control request is cleared; a paused job has no finish time. A job another worker took
    over is left as it is. Raises ValueError for a state that is not a resting one."""
    if state not in RESTING_STATES:
        raise ValueError(f"{state!r} is not a state an attempt finishes in")
    now = timezone.now()
    progress = {"step": step} if step is not None else {}
    TrainingJob.objects.filter(pk=job_id, worker_id=worker_id, state=State.RUNNING).update(
        state=state, control_request="", heartbeat_at=now, finished_at=None if state == State.PAUSED else now,
        **progress)


def job_fail(*, job_id, worker_id: str, error: BaseException) -> None:
    """Mark this worker's job failed by `error`: the trainer sees its class and the first line of
    its message, staff the whole trace."""
    text = getattr(error, "message", None) or str(error)
    message = text.splitlines()[0] if text.strip() else error.__class__.__name__
    TrainingJob.objects.filter(pk=job_id, worker_id=worker_id, state=State.RUNNING).update(
        state=State.FAILED, error_message=f"{error.__class__.__name__}: {message}"[:2000],
        error_trace="".join(traceback.format_exception(error)), control_request="", finished_at=timezone.now())


def jobs_requeue_stale() -> int:
    """Periodic sweep: re-send jobs whose lease expired (a killed worker's message may be lost or
    come back only much later) and queued jobs whose message was lost. Duplicate deliveries are
    harmless: the claim lets one worker in. Returns how many jobs were sent."""
    stale = TrainingJob.objects.filter(state__in=ACTIVE_STATES, heartbeat_at__lt=_lease_expired_before())
    job_ids = list(stale.values_list("pk", flat=True))
    for job_id in job_ids:
        # Touch queued jobs so that one waiting behind another is re-sent once per lease, not per sweep.
        TrainingJob.objects.filter(pk=job_id, state=State.QUEUED).update(heartbeat_at=timezone.now())
        _send_run(job_id)
    return len(job_ids)


# --- Progress rows ----------------------------------------------------------------------------
# Written by the worker holding the job, each under its lease (job_lease_hold): one that lost it
# gets LeaseLost instead of overwriting its successor's rows.

def job_metric_record(*, job: TrainingJob, worker_id: str, step: int, train_loss: float, learning_rate: float,
                      tokens_per_second: float) -> None:
    """Record (or, for a recomputed step, replace) a step's training metrics, with the attempt
    that computed it; its evaluation, if any, follows with job_metric_evaluate. Raises LeaseLost."""
    with job_lease_hold(job_id=job.pk, worker_id=worker_id):
        JobMetric.objects.update_or_create(job=job, step=step, defaults={
            "train_loss": train_loss, "learning_rate": learning_rate,
            "tokens_per_second": round(tokens_per_second, 1), "attempt": job.attempts, "val_loss": None,
            "perplexity": None})


def job_metric_evaluate(*, job: TrainingJob, worker_id: str, step: int, val_loss: float, perplexity: float) -> None:
    """Add the validation loss and perplexity to a recorded step. Raises LeaseLost."""
    with job_lease_hold(job_id=job.pk, worker_id=worker_id):
        JobMetric.objects.filter(job=job, step=step).update(val_loss=val_loss, perplexity=perplexity)


def job_sample_record(*, job: TrainingJob, worker_id: str, step: int, index: int, text: str,
                      longest_copied_span: int, ngram_overlap: float) -> None:
    """Record (or replace) sample `index` written at `step`, with how much of it copies the data.
    Raises LeaseLost."""
    with job_lease_hold(job_id=job.pk, worker_id=worker_id):
        Sample.objects.update_or_create(job=job, step=step, index=index, defaults={
            "text": text, "longest_copied_span": longest_copied_span, "ngram_overlap": ngram_overlap})
