"""A worker keeps the lease of the job it runs for as long as it runs it, through phases that
outlast the lease (data preparation, evaluation, uploads); a worker whose lease really was lost
writes nothing more. Workers are threads here, each with its own database connection, as two
worker processes would be."""

import threading
import time

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from training import job_runner
from training.models import Checkpoint, JobMetric, ModelVersion, Sample, TrainingJob
from training.services import jobs

from .test_jobs import FAST, SentTasks, local_media, make_job  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEASE = 1  # seconds; every slow phase below lasts several leases
SMALL = {"steps": 8, "sample_every": 4, "checkpoint_every": 4}


class Worker(threading.Thread):
    """Runs a job as a worker would, with its own database connection."""

    def __init__(self, job_id, worker_id):
        super().__init__(daemon=True)
        self.job_id, self.worker_id, self.result = job_id, worker_id, None

    def run(self):
        try:
            self.result = job_runner.job_run(job_id=self.job_id, worker_id=self.worker_id)
        finally:
            connection.close()


def slow(monkeypatch, target, name, seconds, entered: threading.Event, *, once=True):
    """Make `target.name` sleep `seconds` before doing its work (the first call only, by default)."""
    original, calls = getattr(target, name), []

    def slowed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 or not once:
            entered.set()
            time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, slowed)


@pytest.fixture
def short_lease(settings, monkeypatch):
    settings.TRAINING_LEASE_SECONDS = LEASE
    recorder = SentTasks()
    monkeypatch.setattr(jobs, "current_app", recorder)
    return recorder


SLOW_PHASES = {
    "data preparation": (job_runner.selectors, "dataset_encoding"),
    "memorisation scan": (job_runner, "memorisation_score"),
    "checkpoint upload": (job_runner.versions.artifacts, "folder_upload"),
    "version creation": (job_runner.versions, "version_create"),
}


# The live-worker test holds a longer lease: its renewals (every third of it) must survive a busy
# CI machine's stalls (a database commit waiting on a checkpoint's fsync, a starved thread), which
# a one-second lease leaves under 0.7 s to absorb.
ALIVE_LEASE = 3


@pytest.mark.parametrize("phase", SLOW_PHASES)
@pytest.mark.usefixtures("local_media")
def test_no_second_worker_takes_a_job_whose_worker_is_alive(trainer, short_lease, settings, monkeypatch, phase):
    settings.TRAINING_LEASE_SECONDS = ALIVE_LEASE
    job = make_job(trainer, **SMALL)
    short_lease.sent.clear()  # the creation's own message
    entered = threading.Event()
    slow(monkeypatch, *SLOW_PHASES[phase], seconds=4 * ALIVE_LEASE, entered=entered)
    first = Worker(job.pk, "worker-a")
    first.start()
    assert entered.wait(60)
    for _ in range(3):  # each check a full lease after the last, all inside the phase
        time.sleep(ALIVE_LEASE)
        heartbeat_age = timezone.now() - TrainingJob.objects.get(pk=job.pk).heartbeat_at
        assert jobs.jobs_requeue_stale() == 0, f"the sweep took a live job (last renewed {heartbeat_age} ago)"
        assert job_runner.job_run(job_id=job.pk, worker_id="worker-b") == "not-claimed"
    first.join(120)
    job.refresh_from_db()
    assert first.result == "succeeded" and (job.state, job.attempts, job.worker_id) == ("succeeded", 1, "worker-a")
    assert short_lease.sent == []


class StalledKeeper:
    """A lease keeper that never renews."""

    def __init__(self, job_id, worker_id):
        self.lost = threading.Event()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def stored_names(prefix):
    try:
        dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return set()
    return {f"{prefix}/{f}" for f in files} | {n for d in dirs for n in stored_names(f"{prefix}/{d}")}


@pytest.mark.parametrize("phase", SLOW_PHASES)
@pytest.mark.usefixtures("local_media")
def test_a_worker_whose_lease_was_lost_writes_nothing_more(trainer, short_lease, monkeypatch, phase):
    job = make_job(trainer, **SMALL)
    entered = threading.Event()
    slow(monkeypatch, *SLOW_PHASES[phase], seconds=4 * LEASE, entered=entered)
    # The worker's background renewal stalls (a frozen process, a network partition): its lease expires.
    monkeypatch.setattr(job_runner, "LeaseKeeper", StalledKeeper, raising=False)
    first = Worker(job.pk, "worker-a")
    first.start()
    assert entered.wait(60)
    time.sleep(2 * LEASE)
    assert jobs.job_claim(job_id=job.pk, worker_id="worker-b")  # the lease expired: another worker took it
    before = snapshot(job)
    first.join(120)
    assert first.result == "lease-lost"
    assert snapshot(job) == before


def snapshot(job):
    """Everything a worker writes for a job: its row, its progress rows, its stored files."""
    row = TrainingJob.objects.filter(pk=job.pk).values(
        "state", "worker_id", "step", "compute_seconds", "device", "resumed_from_step", "error_message",
        "finished_at", "heartbeat_at", "control_request").get()
    return {
        "job": row,
        "metrics": list(JobMetric.objects.filter(job=job).values_list("step", "attempt", "train_loss", "val_loss")),
        "samples": list(Sample.objects.filter(job=job).values_list("step", "index", "text")),
        "checkpoints": list(Checkpoint.objects.filter(job=job).values_list("step", "storage_prefix")),
        "versions": list(ModelVersion.objects.filter(job=job).values_list("digest", flat=True)),
        "files": stored_names(f"jobs/{job.pk}") | stored_names("versions"),
    }
