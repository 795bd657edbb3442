"""A deliberately overfitting run: eight documents of random words, a high learning rate and
frequent evaluations. The held-out document's loss falls, then rises while the training loss keeps
falling; early stopping (on by default) ends the run, and the version holds the best evaluation's
weights. The trainer is told on the job page, in the API and by the CLI, and a version whose
samples copy its data is published only with an acknowledgement, which is audited."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from audit.models import AuditEntry
from imprint_cli import cli
from tests.cli.test_train_options import InProcessClient
from tests.support.corpus import corpus_text
from tests.training.test_jobs import local_media, make_dataset  # noqa: F401 - fixtures used by name
from training import artifacts, job_runner, services
from training.models import Checkpoint, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db

OVERFIT = {"steps": 200, "learning_rate": 2e-2, "batch_size": 8, "context_length": 32, "warmup_steps": 0,
           "sample_every": 10, "sample_count": 1, "sample_max_new_tokens": 32, "checkpoint_every": 50,
           "keep_checkpoints": 1, "seed": 1}
TEXT = corpus_text(documents=8, words=60, seed=3)


@pytest.fixture
def overfit(trainer, local_media, settings):  # noqa: F811
    """The finished job. A tiny model copies only a few tokens in so few steps, so the copied-span
    threshold is lowered to what it does copy: the figures are real, the bar is a setting."""
    settings.TRAINING_WARN_COPIED_SPAN_TOKENS = 2
    job = services.job_create(owner=trainer, dataset=make_dataset(trainer, text=TEXT), name="poems",
                              base_model="tiny", hyperparameters=OVERFIT)
    assert job.config.early_stopping_patience == 3  # on without asking
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.SUCCEEDED
    job.refresh_from_db()
    return job


def _weights(prefix: str, folder) -> dict:
    return load_file(artifacts.folder_download(prefix, folder) / "model.safetensors")


def test_an_overfitting_run_is_caught_everywhere_the_trainer_looks(overfit, client, trainer, monkeypatch, tmp_path,
                                                                   capsys):
    """One run (training is the slow part), each promise checked in turn."""
    client.force_login(trainer)
    the_version_is_the_best_evaluation_and_early_stopping_ends_the_run(overfit, tmp_path)
    the_warnings_reach_the_page_the_api_and_the_cli(overfit, client, capsys)
    publishing_a_copying_version_needs_an_acknowledgement_that_is_audited(overfit, client, trainer)
    the_same_command_after_success_prints_the_version_and_new_starts_another(overfit, client, monkeypatch,
                                                                             tmp_path, capsys)


def the_version_is_the_best_evaluation_and_early_stopping_ends_the_run(overfit, tmp_path):
    evaluations = list(overfit.metrics.filter(val_loss__isnull=False).values_list("step", "val_loss"))
    best_step, best_loss = min(evaluations, key=lambda e: (e[1], e[0]))
    assert overfit.step < overfit.total_steps  # stopped early: three evaluations without improvement
    assert [step for step, _ in evaluations][-4] == best_step and best_step < overfit.step
    version = ModelVersion.objects.get(job=overfit)
    assert version.from_step == best_step
    assert version.selection["text"] == (f"step {best_step} of 200: lowest validation loss {best_loss:.3f} "
                                         f"(stopped early at step {overfit.step})")
    assert version.selection["text"] in version.card
    # The best checkpoint outlived keep_checkpoints=1, and the version holds exactly its weights.
    kept = Checkpoint.objects.get(job=overfit, step=best_step)
    best = _weights(kept.storage_prefix, tmp_path / "best")
    stored = _weights(version.storage_prefix, tmp_path / "version")
    assert best.keys() == stored.keys() and all(torch.equal(best[k], stored[k]) for k in best)
    split = overfit.data_split
    assert (split["train_documents"], split["val_documents"]) == (7, 1)
    assert f"1 document ({split['val_tokens']:,} tokens) held out" in version.card


def the_warnings_reach_the_page_the_api_and_the_cli(overfit, client, capsys):
    api = client.get(f"/api/v1/training/jobs/{overfit.pk}/").json()
    codes = [w["code"] for w in api["warnings"]]
    assert codes == ["validation_loss_rising", "memorisation"]
    rising = api["warnings"][0]
    assert rising["figures"]["evaluations_since_best"] == 3
    assert rising["figures"]["latest_val_loss"] > rising["figures"]["best_val_loss"]
    assert api["warnings"][1]["figures"]["longest_copied_span"] >= 2
    page = client.get(f"/studio/jobs/{overfit.pk}/").content.decode()
    assert 'data-code="validation_loss_rising"' in page and "Validation loss has risen for 3 evaluations" in page
    assert 'data-code="memorisation"' in page

    status = cli.follow(InProcessClient(client), api, samples_after=10**9)
    out = capsys.readouterr().out
    assert status == 0
    assert "WARNING [validation_loss_rising]: Validation loss has risen for 3 evaluations" in out
    assert "WARNING [memorisation]" in out
    assert f"({ModelVersion.objects.get(job=overfit).selection['text']})" in out


def publishing_a_copying_version_needs_an_acknowledgement_that_is_audited(overfit, client, trainer):
    version = ModelVersion.objects.get(job=overfit)
    assert [w["code"] for w in version.warnings] == ["memorisation"]
    body = {"model_version": str(version.pk), "title": "Random poems"}
    refused = client.post("/api/v1/marketplace/listings/publish/", body, content_type="application/json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("memorisation_unacknowledged", "acknowledge_memorisation")
    assert not AuditEntry.objects.filter(event="listing.published").exists()

    page = client.get("/sell/").content.decode()
    assert "acknowledge_memorisation" in page and 'data-code="memorisation"' in page
    published = client.post("/api/v1/marketplace/listings/publish/", {**body, "acknowledge_memorisation": True},
                            content_type="application/json")
    assert published.status_code == 201
    version.refresh_from_db()
    assert version.memorisation_acknowledged_by == trainer
    assert "## Memorisation" in version.card and "acknowledged this before publishing" in version.card
    assert "## Memorisation" in published.json()["card"]
    entry = AuditEntry.objects.get(event="model_version.memorisation_acknowledged")
    assert entry.subject_id == str(version.pk)
    # Published again later (say after an unpublish), it needs no second acknowledgement.
    again = client.post("/api/v1/marketplace/listings/publish/", body, content_type="application/json")
    assert again.status_code == 201
    assert AuditEntry.objects.filter(event="model_version.memorisation_acknowledged").count() == 1


def the_same_command_after_success_prints_the_version_and_new_starts_another(overfit, client, monkeypatch, tmp_path,
                                                                             capsys):
    monkeypatch.setenv("IMPRINT_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setattr(cli, "_client", lambda cfg, **kw: InProcessClient(client))
    poems = tmp_path / "poems.txt"
    poems.write_text(TEXT)
    flags = [f"--{name}={value}" for name, value in OVERFIT.items()]
    assert cli.main(["train", str(poems), "--name", "poems", *flags]) == 0
    out = capsys.readouterr().out
    version = ModelVersion.objects.get(job=overfit)
    assert f"already ran: {overfit.pk} succeeded" in out and f"Model version: {version.pk}" in out
    assert TrainingJob.objects.count() == 1
    assert cli.main(["train", str(poems), "--new", "--detach", *flags]) == 0
    assert TrainingJob.objects.count() == 2 and "Started job" in capsys.readouterr().out


def test_a_resumed_run_still_ends_with_the_best_evaluation_of_an_earlier_attempt(trainer, local_media, monkeypatch,
                                                                                  tmp_path):  # noqa: F811
    # No later evaluation improves on the first by 100: step 5 stays the best through a pause.
    job = services.job_create(owner=trainer, dataset=make_dataset(trainer, text=TEXT), name="paused", base_model="tiny",
                              hyperparameters={**OVERFIT, "steps": 15, "sample_every": 5, "checkpoint_every": 5,
                                               "early_stopping_patience": None, "early_stopping_min_delta": 100.0,
                                               "sample_count": 0})
    on_step = job_runner.JobCallbacks.on_step

    def trainer_pauses_at_step_8(callbacks, step, *args):
        on_step(callbacks, step, *args)
        if step == 8 and callbacks.job.attempts == 1:
            services.job_control(job=TrainingJob.objects.get(pk=job.pk), action="pause")

    monkeypatch.setattr(job_runner.JobCallbacks, "on_step", trainer_pauses_at_step_8)
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.PAUSED
    services.job_control(job=job, action="resume")
    assert job_runner.job_run(job_id=job.pk) == TrainingJob.State.SUCCEEDED
    job.refresh_from_db()
    assert (job.step, job.attempts, job.resumed_from_step) == (15, 2, 8)
    version = ModelVersion.objects.get(job=job)
    assert version.from_step == 5 and version.selection["rule"] == "lowest_validation_loss"
    best = Checkpoint.objects.get(job=job, step=5)  # kept through keep_checkpoints=1 and the second attempt
    stored, kept = _weights(version.storage_prefix, tmp_path / "v"), _weights(best.storage_prefix, tmp_path / "c")
    assert all(torch.equal(stored[k], kept[k]) for k in stored)
