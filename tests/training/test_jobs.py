"""Training jobs without a broker: the job runner called in-process (as a worker would), the
state machine, estimates, model versions, and trainers seeing only their own work."""

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.corpus import corpus_text
from training import artifacts, job_runner, services
from training.errors import IllegalTransition, LeaseLost, TrainingError, TrainingLimitExceeded
from training.models import Checkpoint, ModelVersion, TrainingJob
from training.services import jobs

pytestmark = pytest.mark.django_db

FAST = {"steps": 30, "learning_rate": 3e-3, "batch_size": 4, "context_length": 32, "warmup_steps": 0,
        "sample_every": 15, "sample_count": 2, "sample_prompt": "The", "sample_max_new_tokens": 12,
        "checkpoint_every": 10, "seed": 7, "early_stopping_patience": None, "early_stopping_min_delta": 0.0}


@pytest.fixture
def local_media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "media")}}}
    settings.TRAINING_WORK_DIR = tmp_path / "work"


def make_dataset(owner, text=None, licence="cc-by-4.0"):
    upload = SimpleUploadedFile("corpus.txt", (text or corpus_text()).encode(), content_type="text/plain")
    return services.dataset_create(owner=owner, name="corpus", upload=upload, licence=licence, licence_attested=True)


def make_job(owner, dataset=None, **overrides):
    return services.job_create(owner=owner, dataset=dataset or make_dataset(owner), name="job",
                               base_model="tiny", hyperparameters={**FAST, **overrides})


def test_a_job_runs_to_a_model_version_that_reloads_and_generates(trainer, local_media, tmp_path):
    job = make_job(trainer)
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.SUCCEEDED
    job.refresh_from_db()
    assert (job.state, job.step, job.attempts) == ("succeeded", 30, 1)
    assert list(job.metrics.values_list("step", flat=True)) == list(range(1, 31))
    assert job.metrics.filter(val_loss__isnull=False).count() == 2  # at the sample points 15 and 30
    assert sorted(set(job.samples.values_list("step", flat=True))) == [15, 30]
    assert job.samples.filter(step=15).count() == 2
    assert all(s.longest_copied_span is not None for s in job.samples.all())
    # The newest two are kept; the evaluation at 15, the best when it ran, was checkpointed at once.
    assert list(job.checkpoints.values_list("step", flat=True)) == [15, 20]
    version = ModelVersion.objects.get(job=job)
    assert version.from_step == 30 and version.parameter_count > 10_000
    names = {f["name"] for f in version.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not names & services.TRAINING_STATE_FILES  # weights only, never optimizer state
    assert version.card.startswith("---\n") and "base_model: tiny" in version.card and "perplexity" in version.card
    assert version.digest == artifacts.manifest_digest(version.files)

    folder = artifacts.folder_download(version.storage_prefix, tmp_path / "download")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The quick", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert out.shape[1] == ids.shape[1] + 8
    assert torch.equal(out[0, : ids.shape[1]], ids[0])


def test_the_encoding_is_computed_once_per_dataset_and_tokenizer(trainer, local_media):
    dataset = make_dataset(trainer)
    assert dataset.encodings.count() == 1  # encoded at upload, with the tokenizer its stats used
    job_runner.job_run(job_id=make_job(trainer, dataset, steps=2, sample_every=2, checkpoint_every=2).pk)
    job_runner.job_run(job_id=make_job(trainer, dataset, steps=2, sample_every=2, checkpoint_every=2).pk)
    assert dataset.encodings.count() == 1
    assert dataset.encodings.get().tokens > 0


def test_a_second_delivery_of_a_running_job_is_refused_by_the_claim(trainer, local_media):
    job = make_job(trainer)
    assert services.job_claim(job_id=job.pk, worker_id="worker-a")
    assert not services.job_claim(job_id=job.pk, worker_id="worker-b")
    assert job_runner.job_run(job_id=job.pk, worker_id="worker-b") == "not-claimed"


def test_an_expired_lease_lets_another_worker_take_the_job(trainer, local_media, settings):
    settings.TRAINING_LEASE_SECONDS = 0
    job = make_job(trainer)
    assert services.job_claim(job_id=job.pk, worker_id="worker-a")
    assert services.job_claim(job_id=job.pk, worker_id="worker-b")
    job.refresh_from_db()
    assert job.worker_id == "worker-b" and job.attempts == 2


class SentTasks:
    """Stands in for the Celery app: records what the job services send."""

    def __init__(self):
        self.sent = []

    def send_task(self, name, args=None, **options):
        self.sent.append((name, args, options))


@pytest.fixture
def sent_tasks(monkeypatch) -> SentTasks:
    recorder = SentTasks()
    monkeypatch.setattr(jobs, "current_app", recorder)
    return recorder


def test_a_created_job_is_sent_to_the_run_job_task_only_after_commit(
        trainer, local_media, sent_tasks, django_capture_on_commit_callbacks):
    from training.tasks import run_job

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = make_job(trainer)
    assert sent_tasks.sent == []  # nothing reaches a worker before the job's row is committed
    for callback in callbacks:
        callback()
    assert sent_tasks.sent == [(run_job.name, [str(job.pk)], {"ignore_result": True})]


def test_a_resumed_job_is_sent_again_after_commit(trainer, local_media, sent_tasks,
                                                  django_capture_on_commit_callbacks):
    job = make_job(trainer)
    TrainingJob.objects.filter(pk=job.pk).update(state="paused")
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_control(job=job, action="resume")
    assert [args for _, args, _ in sent_tasks.sent] == [[str(job.pk)]]
    job.refresh_from_db()
    assert job.state == "queued"


def test_a_worker_that_lost_its_lease_writes_nothing_more(trainer, local_media, settings):
    settings.TRAINING_LEASE_SECONDS = 0
    job = make_job(trainer)
    assert jobs.job_claim(job_id=job.pk, worker_id="worker-a")
    assert jobs.job_claim(job_id=job.pk, worker_id="worker-b")
    with pytest.raises(LeaseLost):
        jobs.job_heartbeat(job_id=job.pk, worker_id="worker-a", elapsed_seconds=5.0, step=3)
    jobs.job_finish(job_id=job.pk, worker_id="worker-a", state="cancelled")
    jobs.job_fail(job_id=job.pk, worker_id="worker-a", error=RuntimeError("too late"))
    job.refresh_from_db()
    assert (job.state, job.worker_id, job.step, job.compute_seconds) == ("running", "worker-b", 0, 0.0)
    assert job.error_message == "" and job.finished_at is None


def test_the_heartbeat_renews_the_lease_with_the_progress(trainer, local_media):
    job = make_job(trainer)
    assert jobs.job_claim(job_id=job.pk, worker_id="worker-a")
    jobs.job_heartbeat(job_id=job.pk, worker_id="worker-a", elapsed_seconds=1.5, step=4)
    jobs.job_heartbeat(job_id=job.pk, worker_id="worker-a", elapsed_seconds=2.0)
    jobs.job_finish(job_id=job.pk, worker_id="worker-a", state="paused")
    job.refresh_from_db()
    assert (job.state, job.step, job.compute_seconds, job.finished_at) == ("paused", 4, 3.5, None)


def test_the_sweep_resends_jobs_whose_lease_expired_once_per_lease(trainer, local_media, settings, sent_tasks):
    settings.TRAINING_LEASE_SECONDS = 60
    stale, fresh = make_job(trainer), make_job(trainer)
    an_hour_ago = timezone.now() - timezone.timedelta(hours=1)
    TrainingJob.objects.filter(pk=stale.pk).update(heartbeat_at=an_hour_ago)
    assert jobs.jobs_requeue_stale() == 1
    assert [args for _, args, _ in sent_tasks.sent] == [[str(stale.pk)]]
    assert jobs.jobs_requeue_stale() == 0  # the queued job was touched: not re-sent on every sweep
    assert fresh.pk not in {args[0] for _, args, _ in sent_tasks.sent}


@pytest.mark.parametrize("state, action, message", [
    ("succeeded", "pause", "Cannot pause a job that is succeeded"),
    ("succeeded", "resume", "Cannot resume a job that is succeeded"),
    ("cancelled", "cancel", "Cannot cancel a job that is cancelled"),
    ("running", "resume", "Cannot resume a job that is running"),
    ("queued", "resume", "Cannot resume a job that is queued"),
])
def test_illegal_transitions_are_refused_with_a_message(trainer, local_media, client, state, action, message):
    job = make_job(trainer)
    TrainingJob.objects.filter(pk=job.pk).update(state=state)
    with pytest.raises(IllegalTransition, match=message):
        services.job_control(job=job, action=action)
    client.force_login(trainer)
    response = client.post(f"/api/v1/training/jobs/{job.pk}/{action}/")
    assert response.status_code == 409 and message in response.json()["error"]["message"]
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("conflict_error", "illegal_transition", None)


def test_pause_and_cancel_of_a_running_job_are_requests_the_loop_honours(trainer, local_media):
    job = make_job(trainer)
    TrainingJob.objects.filter(pk=job.pk).update(state="running")
    services.job_control(job=job, action="pause")
    job.refresh_from_db()
    assert (job.state, job.control_request) == ("running", "pause")


def test_a_failed_job_shows_its_error_without_a_trace_to_the_trainer(trainer, staff_user, local_media, client):
    job = make_job(trainer, context_length=32)
    TrainingJob.objects.filter(pk=job.pk).update(hyperparameters={**FAST, "learning_rate": -1.0})
    assert job_runner.job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert "learning_rate must be positive" in job.error_message
    assert "Traceback" in job.error_trace
    client.force_login(trainer)
    body = client.get(f"/studio/jobs/{job.pk}/progress/").json()
    assert "learning_rate must be positive" in body["error"] and "error_trace" not in body
    trainer.is_staff = True
    trainer.save()
    assert "Traceback" in client.get(f"/studio/jobs/{job.pk}/progress/").json()["error_trace"]


def test_job_fields_are_validated_with_field_errors(trainer, local_media, client):
    dataset = make_dataset(trainer)
    client.force_login(trainer)
    response = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk), "steps": 0})
    assert response.status_code == 400 and response.json()["error"]["param"] == "steps"
    response = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk), "context_length": 600})
    assert response.status_code == 400 and "at most 512" in response.json()["error"]["message"]
    page = client.post("/studio/jobs/new/", {"dataset": str(dataset.pk), "learning_rate": "fast"})
    assert page.status_code == 400 and "Enter a number" in page.content.decode()
    assert TrainingJob.objects.count() == 0


def test_a_job_with_defaults_only_needs_a_dataset(trainer, local_media, client):
    dataset = make_dataset(trainer)
    client.force_login(trainer)
    response = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk)})
    assert response.status_code == 201
    assert response.json()["estimate"]["tokens"] == 200 * 8 * 64


def test_trainer_limits_are_enforced(trainer, local_media, settings):
    settings.TRAINING_MAX_CONCURRENT_JOBS = 1
    dataset = make_dataset(trainer)
    make_job(trainer, dataset)
    with pytest.raises(TrainingLimitExceeded, match="limit 1"):
        make_job(trainer, dataset)


def test_limit_refusals_keep_their_status_and_code_on_the_api(trainer, local_media, settings, client):
    settings.TRAINING_MAX_CONCURRENT_JOBS = 1
    dataset = make_dataset(trainer)
    paused = make_job(trainer, dataset)
    TrainingJob.objects.filter(pk=paused.pk).update(state="paused")
    make_job(trainer, dataset)
    client.force_login(trainer)
    created = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk)}).json()["error"]
    assert (created["type"], created["code"], created["param"]) == ("invalid_request_error", "invalid_request", None)
    assert "limit 1" in created["message"]
    resumed = client.post(f"/api/v1/training/jobs/{paused.pk}/resume/")
    assert resumed.status_code == 409 and resumed.json()["error"]["code"] == "illegal_transition"
    settings.TRAINING_MAX_CONCURRENT_JOBS, settings.TRAINING_MAX_TOTAL_STEPS = 5, 100
    over = client.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk)}).json()["error"]
    assert (over["code"], over["param"]) == ("invalid_request", "steps")


def test_an_unknown_base_model_is_a_training_error_on_the_base_model_field(trainer, local_media):
    dataset = make_dataset(trainer)
    with pytest.raises(TrainingError) as refused:
        jobs.job_create(owner=trainer, dataset=dataset, name="job", base_model="gpt-5", hyperparameters=FAST)
    assert (refused.value.status_code, refused.value.code, refused.value.param) == (400, "training_error", "base_model")


def test_the_estimate_says_real_fine_tunes_belong_on_gpus(trainer, client):
    client.force_login(trainer)
    estimate = client.get("/studio/jobs/estimate/", {"dataset": "00000000-0000-0000-0000-000000000000",
                                                      "base_model": "gpt2", "steps": 1000, "batch_size": 8,
                                                      "context_length": 512}).json()
    assert estimate["tokens"] == 1000 * 8 * 512
    assert estimate["gpu_recommended"] is True
    assert estimate["cpu_seconds"] > 3600 * 10 and estimate["gpu_seconds"] < estimate["cpu_seconds"] / 100


def test_any_checkpoint_of_a_finished_job_becomes_a_version(trainer, local_media):
    job = make_job(trainer)
    job_runner.job_run(job_id=job.pk)
    checkpoint = Checkpoint.objects.get(job=job, step=20)
    job.refresh_from_db()
    version = services.version_from_checkpoint(job=job, checkpoint=checkpoint)
    assert version.from_step == 20
    assert version.selection["rule"] == "checkpoint" and "chosen by the trainer" in version.selection["text"]
    assert not {f["name"] for f in version.files} & services.TRAINING_STATE_FILES
    checkpoint.refresh_from_db()
    assert checkpoint.kept


def test_trainers_see_only_their_own_datasets_jobs_and_versions(trainer, make_user, local_media, client):
    job = make_job(trainer)
    job_runner.job_run(job_id=job.pk)
    version = ModelVersion.objects.get(job=job)
    other = make_user("otto", trainer=True)
    client.force_login(other)
    for url in (f"/studio/datasets/{job.dataset.pk}/", f"/studio/jobs/{job.pk}/", f"/studio/jobs/{job.pk}/progress/",
                f"/studio/versions/{version.pk}/", f"/studio/versions/{version.pk}/files/config.json",
                f"/api/v1/training/datasets/{job.dataset.pk}/", f"/api/v1/training/jobs/{job.pk}/",
                f"/api/v1/training/versions/{version.pk}/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/api/v1/training/jobs/{job.pk}/cancel/").status_code == 404
    assert client.post("/api/v1/training/jobs/", {"dataset": str(job.dataset.pk)}).status_code == 404
    assert client.get("/api/v1/training/jobs/").json() == []
    customer_only = make_user("cleo", customer=True)
    client.force_login(customer_only)
    assert client.get("/api/v1/training/jobs/").status_code == 403
    assert client.get("/studio/").status_code == 403


def test_a_gpt2_family_base_loads_through_from_pretrained_from_a_configured_local_copy(
        trainer, local_media, settings, tmp_path):
    """No hub here: TRAINING_BASE_MODEL_PATHS points "gpt2" at a local Hugging Face folder, and the
    job loads it (and its tokenizer) with the same from_pretrained code that would fetch the hub."""
    from training.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path / "gpt2-local", [corpus_text()], n_positions=64)
    settings.TRAINING_BASE_MODEL_PATHS = [("gpt2", str(folder))]
    dataset = make_dataset(trainer)
    job = services.job_create(owner=trainer, dataset=dataset, name="gpt2 job", base_model="gpt2",
                              hyperparameters={**FAST, "steps": 4, "sample_every": 4, "checkpoint_every": 4})
    assert job_runner.job_run(job_id=job.pk) == "succeeded"
    version = ModelVersion.objects.get(job=job)
    assert version.base_model == "gpt2" and version.base_licence == "mit" and version.n_positions == 64


def test_a_gpt2_base_without_a_local_copy_or_hub_is_refused_at_creation_with_a_clear_message(
        trainer, local_media, settings):
    settings.TRAINING_BASE_MODEL_PATHS = [("gpt2", "/nonexistent/gpt2")]
    with pytest.raises(TrainingError) as refused:
        services.job_create(owner=trainer, dataset=make_dataset(trainer), name="gpt2 job", base_model="gpt2",
                            hyperparameters={**FAST, "steps": 2})
    assert (refused.value.code, refused.value.param) == ("base_model_unavailable", "base_model")
    assert "TRAINING_BASE_MODEL_PATHS names /nonexistent/gpt2, but the folder does not exist" in refused.value.message
    assert not TrainingJob.objects.filter(base_model="gpt2").exists()


def test_the_progress_feed_sends_only_what_is_new_to_a_polling_page(trainer, local_media, client):
    job = make_job(trainer)
    job_runner.job_run(job_id=job.pk)
    client.force_login(trainer)
    url = f"/studio/jobs/{job.pk}/progress/"
    assert [m["step"] for m in client.get(url).json()["metrics"]] == list(range(1, 31))
    newer = client.get(url, {"metrics_after": 27, "samples_after": 15}).json()
    assert [m["step"] for m in newer["metrics"]] == [28, 29, 30]
    assert {s["step"] for s in newer["samples"]} == {30}


def cancel_at(monkeypatch, step):
    """The trainer cancels the running job once it has computed `step` steps."""
    original = job_runner.JobCallbacks.on_step

    def on_step(self, s, *args):
        original(self, s, *args)
        if s == step:
            jobs.job_control(job=self.job, action="cancel")

    monkeypatch.setattr(job_runner.JobCallbacks, "on_step", on_step)


def test_cancelled_jobs_steps_still_count_towards_the_step_limit(trainer, local_media, settings, monkeypatch):
    settings.TRAINING_MAX_TOTAL_STEPS = 40
    dataset = make_dataset(trainer)
    job = make_job(trainer, dataset)
    cancel_at(monkeypatch, 25)
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.CANCELLED
    job.refresh_from_db()
    # The cancelled job's checkpoint still becomes a version: its 25 steps were really computed.
    services.version_from_checkpoint(job=job, checkpoint=job.checkpoints.get(step=20))
    with pytest.raises(TrainingLimitExceeded, match="limit is 40"):
        make_job(trainer, dataset)
    make_job(trainer, dataset, steps=15)  # 25 computed + 15 fit the limit exactly


def fail_at(monkeypatch, step):
    """The worker crashes when it reaches `step` (its last checkpoint is the one before)."""
    original = job_runner.JobCallbacks.on_step

    def on_step(self, s, *args):
        if s == step and self.job.attempts == 1:
            raise RuntimeError("worker crashed")
        original(self, s, *args)

    monkeypatch.setattr(job_runner.JobCallbacks, "on_step", on_step)


def test_recomputed_steps_of_a_resumed_job_count_towards_the_step_limit(trainer, local_media, settings,
                                                                       monkeypatch):
    dataset = make_dataset(trainer)
    job = make_job(trainer, dataset)
    fail_at(monkeypatch, 25)
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.FAILED
    # 24 steps computed, and resuming from the checkpoint at step 20 computes 10 more: 34.
    settings.TRAINING_MAX_TOTAL_STEPS = 33
    with pytest.raises(IllegalTransition, match="limit is 33"):
        jobs.job_control(job=job, action="resume")
    settings.TRAINING_MAX_TOTAL_STEPS = 34
    jobs.job_control(job=job, action="resume")
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.SUCCEEDED
    with pytest.raises(TrainingLimitExceeded, match="limit is 34"):
        make_job(trainer, dataset, steps=1)


def test_each_owner_gets_their_own_version_of_identical_weights(trainer, make_user, local_media, client):
    other = make_user("tom", trainer=True, customer=False)
    small = {"steps": 4, "sample_every": 4, "checkpoint_every": 2}
    first, second = make_job(trainer, **small), make_job(other, **small)
    job_runner.job_run(job_id=first.pk)
    job_runner.job_run(job_id=second.pk)
    mine, theirs = ModelVersion.objects.get(job=first), ModelVersion.objects.get(job=second)
    assert mine.digest == theirs.digest and mine.pk != theirs.pk
    assert (mine.owner, theirs.owner) == (trainer, other)
    assert mine.storage_prefix == theirs.storage_prefix  # stored files are shared: same content
    client.force_login(other)
    listed = client.get("/api/v1/training/versions/").json()
    listed = listed.get("results", listed) if isinstance(listed, dict) else listed
    assert [v["id"] for v in listed] == [str(theirs.pk)]
    assert client.get(f"/api/v1/training/versions/{mine.pk}/").status_code == 404
    # The inference worker finds the model by digest whichever owner's version it is.
    from inference.tasks import generation_run

    result = generation_run.run({"request_id": "shared-digest", "model_digest": mine.digest, "prompt": "The",
                                 "max_new_tokens": 3, "temperature": 0, "top_k": 0, "top_p": 1.0, "n": 1,
                                 "seed": 1, "stop_at_eos": False, "watermark": {"key": 7}})
    assert result["model_digest"] == mine.digest and len(result["completions"]) == 1
