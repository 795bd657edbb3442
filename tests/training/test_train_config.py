"""TrainConfig, the one description of a job's hyperparameters: how it is stored and read back,
its limits on the form and the API, and the settings a job started through the API trains with."""

import importlib
import json

import pytest
from django.apps import apps

from training import job_runner, services
from training.config import TRAJECTORY_FIELDS, HyperparameterError, TrainConfig, hyperparameters
from training.forms import JobForm
from training.models import Checkpoint, TrainingJob

from .test_jobs import local_media, make_dataset  # noqa: F401 - fixtures used by name

# The keys the job form stored before TrainConfig existed (no schedule, decay, clipping, kept
# checkpoints or evaluation windows), as rows in existing databases hold them.
OLD_ROW = {"steps": 30, "learning_rate": 3e-3, "batch_size": 4, "context_length": 32, "warmup_steps": 0,
           "sample_every": 15, "sample_count": 2, "sample_prompt": "The", "sample_max_new_tokens": 12,
           "checkpoint_every": 10, "seed": 7, "early_stopping_patience": None, "early_stopping_min_delta": 0.0}
NEW_SETTINGS = {"lr_schedule": "cosine", "weight_decay": 0.05, "grad_clip": 0.5, "eval_max_windows": 8,
                "keep_checkpoints": 1}


def test_it_round_trips_through_its_stored_form():
    config = TrainConfig(steps=12, learning_rate=2e-3, sample_prompt="Once", early_stopping_patience=3,
                         **NEW_SETTINGS)
    stored = json.loads(json.dumps(config.to_dict()))  # as the JSONField gives it back
    assert TrainConfig.from_dict(stored) == config
    assert set(stored) == {name for name, *_ in hyperparameters()}


def test_rows_stored_by_older_versions_load_with_the_defaults_they_trained_with():
    config = TrainConfig.from_dict(OLD_ROW)
    assert (config.steps, config.learning_rate, config.context_length) == (30, 3e-3, 32)
    assert (config.lr_schedule, config.weight_decay, config.grad_clip) == ("linear", 0.0, 1.0)
    assert (config.keep_checkpoints, config.eval_max_windows) == (2, 64)
    # A null for a setting that has no "off" value, and an int for a float, read as before.
    loose = TrainConfig.from_dict({**OLD_ROW, "early_stopping_min_delta": None, "learning_rate": 1})
    assert loose.early_stopping_min_delta == 0.0 and loose.learning_rate == 1.0


@pytest.mark.django_db
def test_the_migration_writes_into_old_rows_what_they_trained_with(trainer, local_media):  # noqa: F811
    migration = importlib.import_module("training.migrations.0007_hyperparameters_stored_complete")
    job = services.job_create(owner=trainer, dataset=make_dataset(trainer), name="old", base_model="tiny",
                              hyperparameters=OLD_ROW)
    TrainingJob.objects.filter(pk=job.pk).update(hyperparameters={**OLD_ROW, "early_stopping_min_delta": None})
    migration.fill(apps, None)
    importlib.import_module("training.migrations.0010_held_out_split_and_version_warnings").fill(apps, None)
    job.refresh_from_db()
    # the fields that existed when the migration was written (later ones read back as their defaults)
    later = {"activations", "method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
             "lora_token_embeddings"}
    assert job.hyperparameters == {k: v for k, v in TrainConfig.from_dict(OLD_ROW).to_dict().items() if k not in later}


def test_the_defaults_are_what_the_product_trained_with():
    config = TrainConfig()
    assert (config.steps, config.learning_rate, config.batch_size, config.context_length) == (200, 1e-3, 8, 64)
    assert (config.sample_every, config.sample_count, config.checkpoint_every, config.seed) == (50, 2, 50, 42)


def test_unknown_keys_and_values_out_of_range_are_refused_by_name():
    with pytest.raises(HyperparameterError) as refused:
        TrainConfig.from_dict({**OLD_ROW, "weight_decy": 0.1, "grad_clip": -1, "lr_schedule": "step",
                               "steps": "many"})
    assert refused.value.errors == {"weight_decy": "is not a hyperparameter",
                                    "steps": "must be a whole number",
                                    "lr_schedule": "must be one of linear, cosine",
                                    "grad_clip": "must be between 0 and 100"}
    assert refused.value.field == "weight_decy" and isinstance(refused.value, ValueError)


def test_settings_that_change_the_weights_refuse_a_resume_across_them():
    assert {"learning_rate", "lr_schedule", "weight_decay", "grad_clip", "seed"} <= set(TRAJECTORY_FIELDS)
    assert not {"sample_every", "keep_checkpoints", "eval_max_windows"} & set(TRAJECTORY_FIELDS)


def _form(**data):
    return JobForm({"dataset": "00000000-0000-0000-0000-000000000000", **data})


@pytest.mark.django_db  # the form lists the base models with their availability, read from the database
@pytest.mark.parametrize(("field", "value", "message"), [
    ("weight_decay", "2", "Must be between 0 and 1."),
    ("grad_clip", "-0.5", "Must be between 0 and 100."),
    ("lr_schedule", "step", "Select a valid choice."),
    ("eval_max_windows", "0", "Must be between 1 and 4096."),
    ("keep_checkpoints", "50", "Must be between 1 and 20."),
    ("learning_rate", "0", "Must be positive and at most 1."),
    ("warmup_steps", "300", "Must not exceed the number of steps (200)."),
])
def test_the_form_refuses_values_out_of_range_with_the_limit(field, value, message):
    form = _form(**{field: value})
    assert not form.is_valid()
    assert message in form.errors[field][0]


@pytest.mark.django_db  # the form lists the base models with their availability, read from the database
def test_the_form_accepts_the_newly_settable_hyperparameters():
    form = _form(**{name: str(value) for name, value in NEW_SETTINGS.items()})
    assert form.is_valid(), form.errors
    assert form.config == TrainConfig(**NEW_SETTINGS)
    assert form.hyperparameters() == TrainConfig(**NEW_SETTINGS).to_dict()


@pytest.mark.django_db
def test_the_api_refuses_out_of_range_and_unknown_fields_with_a_clear_error(trainer, local_media, client):  # noqa: F811
    dataset = make_dataset(trainer)
    client.force_login(trainer)
    url = "/api/v1/training/jobs/"
    error = client.post(url, {"dataset": str(dataset.pk), "weight_decay": 3}, content_type="application/json").json()
    assert error["error"]["param"] == "weight_decay"
    assert error["error"]["message"] == "weight_decay: Must be between 0 and 1."
    error = client.post(url, {"dataset": str(dataset.pk), "weight_decy": 0.1}, content_type="application/json")
    assert error.status_code == 400 and error.json()["error"]["param"] == "weight_decy"
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_the_api_lists_what_a_job_can_set(trainer, client):
    client.force_login(trainer)
    listed = {hp["name"]: hp for hp in client.get("/api/v1/training/hyperparameters/").json()}
    assert list(listed) == [name for name, *_ in hyperparameters()]
    assert listed["lr_schedule"]["limits"]["choices"] == ["linear", "cosine"]
    assert listed["weight_decay"] | {"help": ""} == {"name": "weight_decay", "type": "float", "default": 0.0,
                                                     "label": "Weight decay", "help": "",
                                                     "limits": {"min": 0.0, "max": 1.0}}


@pytest.mark.django_db
def test_a_job_started_through_the_api_trains_with_its_new_settings(trainer, local_media, client, monkeypatch):  # noqa: F811
    seen = []

    def run_training(**kwargs):
        seen.append(kwargs["config"])
        return real_run_training(**kwargs)

    real_run_training = job_runner.run_training
    monkeypatch.setattr(job_runner, "run_training", run_training)
    dataset = make_dataset(trainer)
    client.force_login(trainer)
    body = {"dataset": str(dataset.pk), "steps": 8, "batch_size": 4, "context_length": 32, "sample_every": 8,
            "sample_count": 0, "checkpoint_every": 2, **NEW_SETTINGS}
    created = client.post("/api/v1/training/jobs/", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    job = TrainingJob.objects.get()
    assert {name: job.hyperparameters[name] for name in NEW_SETTINGS} == NEW_SETTINGS
    assert job_runner.job_run(job_id=job.pk) == "succeeded"
    (config,) = seen
    assert {name: getattr(config, name) for name in NEW_SETTINGS} == NEW_SETTINGS
    # keep_checkpoints=1: of the checkpoints at steps 2, 4 and 6 only the newest is kept.
    assert list(Checkpoint.objects.filter(job=job).values_list("step", flat=True)) == [6]
    page = client.get(f"/studio/jobs/{job.pk}/").content.decode()
    assert "Weight decay</dt><dd>0.05</dd>" in page and "Learning-rate schedule</dt><dd>cosine</dd>" in page


def test_lora_jobs_stored_before_token_rows_keep_training_without_them(trainer, local_media):  # noqa: F811
    job = services.job_create(owner=trainer, dataset=make_dataset(trainer), name="old lora", base_model="tiny",
                              hyperparameters={**OLD_ROW, "method": "lora"})
    stored = {k: v for k, v in job.hyperparameters.items() if k != "lora_token_embeddings"}
    TrainingJob.objects.filter(pk=job.pk).update(hyperparameters=stored)
    importlib.import_module("training.migrations.0013_lora_token_embeddings").fill(apps, None)
    job.refresh_from_db()
    assert job.hyperparameters["lora_token_embeddings"] == 0
    assert TrainConfig.from_dict(job.hyperparameters).lora_token_embeddings == 0
