"""Each base starts from its own defaults, a batch that cannot fit a training device is refused
before it is queued, and estimates come from measured throughput where there is some."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.training.test_jobs import local_media, make_dataset  # noqa: F401 - fixtures used by name
from training import selectors, services
from training.base_models import base_defaults
from training.models import JobMetric, TrainingJob

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/training/jobs/"


@pytest.fixture
def api(client, trainer, local_media):  # noqa: F811
    client.force_login(trainer)
    return client


def _defaults(api, base: str, **more) -> dict:
    return {hp["name"]: hp["default"] for hp in api.get("/api/v1/training/hyperparameters/",
                                                        {"base_model": base, **more}).json()}


def test_a_pretrained_base_starts_from_a_fine_tuning_learning_rate_with_warmup(api):
    gpt2, tiny = _defaults(api, "gpt2", method="full"), _defaults(api, "tiny")
    assert (gpt2["learning_rate"], gpt2["warmup_steps"], gpt2["context_length"]) == (2e-4, 20, 512)
    assert (tiny["learning_rate"], tiny["warmup_steps"], tiny["context_length"]) == (1e-3, 0, 64)
    # LoRA, the default on a pretrained base, starts higher: its adapters start at zero.
    assert _defaults(api, "gpt2")["learning_rate"] == _defaults(api, "gpt2", method="lora")["learning_rate"] == 1e-3
    assert api.get("/api/v1/training/hyperparameters/", {"base_model": "gpt5"}).status_code == 400
    refused = api.get("/api/v1/training/hyperparameters/", {"base_model": "gpt2", "method": "qlora"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "method"
    # A base registered without defaults of its own (or not at all) starts from TrainConfig's.
    assert base_defaults("no-such-base") == {}
    assert base_defaults("imprint-base") == {"learning_rate": 2e-3, "warmup_steps": 10, "context_length": 128}
    assert base_defaults("imprint-base", "full")["learning_rate"] == 3e-4


def test_a_job_left_to_its_defaults_takes_its_methods_learning_rate(trainer, builtin_base):
    dataset = make_dataset(trainer)
    lora = services.job_create(owner=trainer, dataset=dataset, name="lora", base_model="imprint-base",
                               hyperparameters={"steps": 10})
    full = services.job_create(owner=trainer, dataset=dataset, name="full", base_model="imprint-base",
                               hyperparameters={"steps": 10, "method": "full"})
    assert (lora.hyperparameters["method"], lora.hyperparameters["learning_rate"]) == ("lora", 2e-3)
    assert (full.hyperparameters["method"], full.hyperparameters["learning_rate"]) == ("full", 3e-4)


def test_a_job_takes_its_bases_defaults_for_what_the_trainer_left_unset(api, trainer, hub_reachable):
    dataset = make_dataset(trainer)
    made = api.post(JOBS, {"dataset": str(dataset.pk), "base_model": "gpt2", "steps": 100, "learning_rate": 1e-4},
                    content_type="application/json")
    assert made.status_code == 201, made.json()
    stored = made.json()["hyperparameters"]
    assert (stored["learning_rate"], stored["warmup_steps"], stored["context_length"]) == (1e-4, 20, 512)
    page = api.get(f"/studio/datasets/{dataset.pk}/").content.decode()
    assert 'id="base-defaults"' in page and '"gpt2": {' in page


def test_a_batch_that_cannot_fit_is_refused_before_queueing_with_what_would(api, trainer, settings, hub_reachable):
    settings.TRAINING_DEVICE_MEMORY_GIB = 16
    dataset = make_dataset(trainer)
    body = {"dataset": str(dataset.pk), "base_model": "gpt2", "steps": 100, "batch_size": 64,
            "context_length": 1024, "micro_batch_size": 64}
    refused = api.post(JOBS, body, content_type="application/json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("batch_exceeds_device_memory", "micro_batch_size")
    assert "GiB" in error["message"] and "set micro_batch_size to" in error["message"]
    assert not TrainingJob.objects.exists()
    fits = api.post(JOBS, {**body, "micro_batch_size": 4}, content_type="application/json")
    assert fits.status_code == 201 and fits.json()["hyperparameters"]["batch_size"] == 64


def test_the_estimate_comes_from_recent_jobs_measured_throughput(trainer, local_media):
    dataset = make_dataset(trainer)
    config = {"steps": 100, "batch_size": 4, "context_length": 32}
    first = services.job_create(owner=trainer, dataset=dataset, name="a", base_model="tiny", hyperparameters=config)
    assert first.estimate["source"] == "constant"
    # That job ran: 100 steps of 128 tokens in 64 s of compute, evaluations included.
    TrainingJob.objects.filter(pk=first.pk).update(state="succeeded", device="cpu", steps_computed=100,
                                                   compute_seconds=64.0, finished_at=timezone.now())
    second = services.job_create(owner=trainer, dataset=dataset, name="b", base_model="tiny",
                                 hyperparameters={**config, "steps": 50})
    assert second.estimate["source"] == "measured" and second.estimate["seconds"] == 32.0
    assert "200 tokens/s" in second.estimate["basis"]


def test_a_running_jobs_eta_comes_from_its_own_pace(trainer, local_media):
    job = services.job_create(owner=trainer, dataset=make_dataset(trainer), name="a", base_model="tiny",
                              hyperparameters={"steps": 100})
    TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1, step=3, compute_seconds=5.0)
    start = timezone.now()
    for step in range(1, 4):
        JobMetric.objects.create(job=job, step=step, attempt=1, train_loss=3.0)
    job.refresh_from_db()
    assert selectors.job_eta(job)["eta_source"] == "estimate"  # too few steps to measure
    for step in range(4, 12):
        JobMetric.objects.create(job=job, step=step, attempt=1, train_loss=3.0)
    JobMetric.objects.filter(job=job).update(created_at=start)
    for step in range(1, 12):  # one step every 2 s
        JobMetric.objects.filter(job=job, step=step).update(created_at=start + timedelta(seconds=2 * step))
    TrainingJob.objects.filter(pk=job.pk).update(step=11)
    job.refresh_from_db()
    eta = selectors.job_eta(job)
    assert (eta["eta_source"], eta["eta_seconds"]) == ("measured", 178.0)  # 89 steps left at 2 s
    assert eta["cost_estimate_cents"] >= 1


def test_a_batch_that_fits_only_recomputing_activations_is_told_so_and_fits_when_it_does(
        api, trainer, settings, hub_reachable):
    settings.TRAINING_DEVICE_MEMORY_GIB = 4
    dataset = make_dataset(trainer)
    # GPT-2 small, full fine-tune: 1.9 GiB of weights, gradients and moments, then 8 x 512 tokens a pass.
    body = {"dataset": str(dataset.pk), "base_model": "gpt2", "steps": 100, "batch_size": 8,
            "micro_batch_size": 8, "context_length": 512, "method": "full"}
    refused = api.post(JOBS, body, content_type="application/json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "batch_exceeds_device_memory"
    assert "set activations to recompute (the whole pass then fits" in error["message"]
    assert not TrainingJob.objects.exists()
    made = api.post(JOBS, {**body, "activations": "recompute"}, content_type="application/json")
    assert made.status_code == 201, made.json()
    assert made.json()["hyperparameters"]["activations"] == "recompute"
    # A LoRA keeps the base's weights only (no gradients or moments for them): 6 windows a pass fit.
    six = {**body, "micro_batch_size": 6}
    assert api.post(JOBS, six, content_type="application/json").status_code == 400
    lora = api.post(JOBS, {**six, "method": "lora"}, content_type="application/json")
    assert lora.status_code == 201, lora.json()


def test_recomputing_activations_lengthens_the_estimate_and_a_recomputing_jobs_pace_counts_as_if_it_kept_them(
        trainer, local_media):
    dataset = make_dataset(trainer)
    config = {"steps": 100, "batch_size": 4, "context_length": 32}
    keeping = services.job_create(owner=trainer, dataset=dataset, name="a", base_model="tiny", hyperparameters=config)
    recomputing = services.job_create(owner=trainer, dataset=dataset, name="b", base_model="tiny",
                                      hyperparameters={**config, "activations": "recompute"})
    # tiny trains every weight: one more forward pass against a forward and a backward of twice its work
    assert recomputing.estimate["seconds"] == pytest.approx(keeping.estimate["seconds"] * 4 / 3, abs=0.1)
    assert "recomputing activations takes about 1.3x as long" in recomputing.estimate["basis"]
    # It ran 100 steps of 128 tokens in 64 s recomputing: 48 s storing its activations.
    TrainingJob.objects.filter(pk=recomputing.pk).update(state="succeeded", device="cpu", steps_computed=100,
                                                         compute_seconds=64.0, finished_at=timezone.now())
    later = services.job_create(owner=trainer, dataset=dataset, name="c", base_model="tiny", hyperparameters=config)
    assert later.estimate["source"] == "measured" and later.estimate["seconds"] == pytest.approx(48.0)
