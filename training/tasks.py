"""Celery tasks of the training app: thin, idempotent, safe to deliver twice. They take a job id
and call the job runner or a service; services send `run_job` by its name (see
training.services.jobs.RUN_JOB_TASK), so nothing below imports this module."""

from celery import shared_task

from . import job_runner
from .models import DatasetUpload
from .services import bases, datasets, jobs


@shared_task(name=jobs.RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    """Run a training job on this worker (training queue: GPU workers). A duplicate delivery of a
    job another worker holds, or one already finished, returns "not-claimed" at once."""
    return job_runner.job_run(job_id=job_id)


@shared_task(name="training.sweep_leases", ignore_result=True)
def sweep_leases() -> int:
    """Beat: re-send jobs (and the built-in base's preparation) whose worker stopped renewing its lease."""
    bases.builtin_base_requeue_stale()
    return jobs.jobs_requeue_stale()


@shared_task(name=datasets.PROCESS_DATASET_TASK, acks_late=True, ignore_result=True)
def process_dataset(upload_id: str) -> str:
    """Validate, count and encode an uploaded dataset (default queue). A duplicate delivery, or one
    for an upload already ready or refused, returns its state without doing the work again."""
    try:
        return datasets.dataset_upload_process(upload_id=upload_id).state
    except DatasetUpload.DoesNotExist:
        return "gone"


@shared_task(name="training.uploads_sweep", ignore_result=True)
def uploads_sweep() -> int:
    """Beat: refuse uploads stuck processing past DATASET_UPLOAD_TIMEOUT_SECONDS, deleting their files."""
    return datasets.dataset_uploads_sweep()


@shared_task(name=bases.PREPARE_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def builtin_base_prepare() -> str:
    """Prepare the built-in pretrained base (training queue; minutes on a CPU). A duplicate
    delivery finds it claimed or ready and returns its state at once."""
    return bases.builtin_base_prepare().state


@shared_task(name=bases.HUB_PROBE_TASK, ignore_result=True)
def hub_probe() -> bool:
    """Beat (default queue): whether the model hub answers, cached for the base-model list."""
    return bases.hub_probe()["reachable"]
