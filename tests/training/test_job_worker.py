"""Training through real Celery worker processes: a job runs to a model version; pause, resume and
cancel reach the running loop; a worker killed with SIGKILL is replaced and the job resumes from
its last checkpoint without recomputing a step before it."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.corpus import corpus_text
from training import job_runner, services
from training.models import JobMetric, ModelVersion, TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HP = {"steps": 120, "learning_rate": 3e-3, "batch_size": 4, "context_length": 32, "warmup_steps": 0,
      "sample_every": 40, "sample_count": 1, "sample_prompt": "The", "sample_max_new_tokens": 8,
      "checkpoint_every": 20, "seed": 11, "early_stopping_patience": None, "early_stopping_min_delta": 0.0}
# A short lease so that a killed worker's job is taken over within seconds, not a minute.
WORKER_ENV = {"TRAINING_LEASE_SECONDS": "3", "TRAINING_SWEEP_SECONDS": "1"}


def wait_for(predicate, what: str, workers, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    logs = "\n".join(w.log()[-2500:] for w in workers.started)
    pytest.fail(f"timed out waiting for {what}; worker logs:\n{logs}")


def job_state(job):
    return TrainingJob.objects.values_list("state", flat=True).get(pk=job.pk)


def create_job(owner, **overrides):
    upload = SimpleUploadedFile("c.txt", corpus_text().encode(), content_type="text/plain")
    dataset = services.dataset_create(owner=owner, name="c", upload=upload, licence="cc0-1.0", licence_attested=True)
    return services.job_create(owner=owner, dataset=dataset, name="job", base_model="tiny",
                               hyperparameters={**HP, **overrides})


def weights_sha(job) -> str:
    version = ModelVersion.objects.get(job=job)
    return next(f["sha256"] for f in version.files if f["name"] == "model.safetensors")


def test_a_job_runs_through_a_worker_and_pause_resume_gives_the_uninterrupted_weights(
        celery_workers, trainer, client):
    celery_workers.start(queues="training", pool="solo", concurrency=1, env=WORKER_ENV)
    client.force_login(trainer)
    job = create_job(trainer)
    wait_for(lambda: TrainingJob.objects.get(pk=job.pk).step >= 30, "the job to pass step 30", celery_workers)
    assert client.post(f"/studio/jobs/{job.pk}/pause/").status_code == 302
    wait_for(lambda: job_state(job) == "paused", "the job to pause", celery_workers)
    paused_at = TrainingJob.objects.get(pk=job.pk).step
    assert 30 <= paused_at < 120
    page = client.get(f"/studio/jobs/{job.pk}/")
    assert b"loss-plot" in page.content and b"vendor/plotly.min.js" in page.content

    assert client.post(f"/api/v1/training/jobs/{job.pk}/resume/").status_code == 200
    wait_for(lambda: job_state(job) == "succeeded", "the resumed job to succeed", celery_workers)
    job.refresh_from_db()
    assert job.resumed_from_step == paused_at and job.attempts == 2
    assert list(job.metrics.values_list("step", flat=True)) == list(range(1, 121))  # one continuous history
    assert sorted(set(job.samples.values_list("step", flat=True))) == [40, 80, 120]

    # The same job run without interruption ends with bit-identical weights.
    celery_workers.stop_all()  # this one runs here, in the test process
    twin = services.job_create(owner=trainer, dataset=job.dataset, name="twin", base_model="tiny", hyperparameters=HP)
    assert job_runner.job_run(job_id=twin.pk, worker_id="in-test") == "succeeded"
    assert weights_sha(twin) == weights_sha(job)


def test_cancel_stops_a_running_job(celery_workers, trainer, client):
    celery_workers.start(queues="training", pool="solo", concurrency=1, env=WORKER_ENV)
    client.force_login(trainer)
    job = create_job(trainer, steps=2000, checkpoint_every=500, sample_every=1000)
    wait_for(lambda: TrainingJob.objects.get(pk=job.pk).step >= 5, "the job to start", celery_workers)
    assert client.post(f"/api/v1/training/jobs/{job.pk}/cancel/").status_code == 200
    wait_for(lambda: job_state(job) == "cancelled", "the job to cancel", celery_workers)
    job.refresh_from_db()
    assert job.step < 2000 and not ModelVersion.objects.filter(job=job).exists()
    assert client.post(f"/api/v1/training/jobs/{job.pk}/resume/").status_code == 409


def test_a_killed_worker_is_replaced_and_the_job_resumes_from_its_last_checkpoint(celery_workers, trainer):
    first = celery_workers.start(queues="training", pool="solo", concurrency=1, env=WORKER_ENV)
    job = create_job(trainer, steps=200, sample_every=100)
    wait_for(lambda: job.checkpoints.filter(step__gte=40).exists(), "a checkpoint at step 40", celery_workers)
    first.kill()  # SIGKILL to the whole worker: no clean-up, no acknowledgement
    first.proc.wait(timeout=10)
    checkpoint_step = job.checkpoints.order_by("-step").values_list("step", flat=True).first()
    assert job_state(job) == "running"  # the dead worker still "holds" it until the lease expires

    celery_workers.start(queues="training,default", pool="solo", concurrency=1, beat=True, env=WORKER_ENV)
    wait_for(lambda: job_state(job) == "succeeded", "the job to resume and succeed", celery_workers)
    job.refresh_from_db()
    assert job.attempts == 2 and job.resumed_from_step == checkpoint_step
    metrics = JobMetric.objects.filter(job=job)
    assert list(metrics.values_list("step", flat=True)) == list(range(1, 201))
    # Steps up to the checkpoint were computed once, by the killed worker; later ones by the new one.
    assert set(metrics.filter(step__lte=checkpoint_step).values_list("attempt", flat=True)) == {1}
    assert set(metrics.filter(step__gt=checkpoint_step).values_list("attempt", flat=True)) == {2}
    assert ModelVersion.objects.filter(job=job, from_step=200).exists()
    page_text = f"Resumed from the checkpoint at step {checkpoint_step}."
    from django.test import Client

    owner = Client()
    owner.force_login(trainer)
    assert page_text in owner.get(f"/studio/jobs/{job.pk}/").content.decode()
