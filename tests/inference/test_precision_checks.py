"""Precision checks on real models: a quantisation is served only when it does not hurt the model.

A tiny GPT-2 is trained through the job runner (so its version has a dataset, a tokenizer and the
validation windows its run evaluated on), on sentences whose words depend on their context, so that
its predictions go through the layers a quantisation touches. Its int8 quantisation is accepted. A twin with an
activation outlier, the classic failure of per-row int8 activation quantisation, is refused:
its requests are served at fp32, and every receipt says so."""

from __future__ import annotations

import json
import re
import shutil
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.services import token_create
from inference.modelstore import model_folder_fetch
from inference.receipts import receipt_verify
from inference.tasks import precision_check_measure_task
from licensing.services import apikey_create
from marketplace.services import listing_publish
from tests import factories
from tests.support.corpus import sentence_text
from tests.support.outliers import add_activation_outlier
from tests.training.test_jobs import local_media  # noqa: F401 - fixture
from training import job_runner, services
from training.models import ModelVersion
from training.services import versions

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# Trained to a validation perplexity of ~3 on the patterned sentences (the words' own entropy) in seconds.
HP = {"steps": 150, "learning_rate": 5e-3, "batch_size": 8, "context_length": 32, "warmup_steps": 5,
      "sample_every": 150, "sample_count": 1, "sample_prompt": "The", "sample_max_new_tokens": 8,
      "checkpoint_every": 150, "seed": 7, "early_stopping_patience": None, "early_stopping_min_delta": 0.0}


def trained_version(trainer) -> ModelVersion:
    upload = SimpleUploadedFile("corpus.txt", sentence_text().encode(), content_type="text/plain")
    dataset = services.dataset_create(owner=trainer, name="corpus", upload=upload, licence="cc0-1.0",
                                      licence_attested=True)
    job = services.job_create(owner=trainer, dataset=dataset, name="harbour", base_model="tiny", hyperparameters=HP)
    assert job_runner.job_run(job_id=job.pk, worker_id="in-test") == "succeeded"
    return ModelVersion.objects.get(job=job)


def outlier_twin(version: ModelVersion, tmp_path) -> ModelVersion:
    """The same model with an activation outlier before every block's matrices
    (tests.support.outliers): the same perplexity at fp32, so the check's reference is a good
    model, and nothing left for int8 to round right."""
    from transformers import GPT2LMHeadModel

    folder = tmp_path / "outlier"
    shutil.copytree(model_folder_fetch(version), folder)
    model = GPT2LMHeadModel.from_pretrained(folder)
    add_activation_outlier(model)
    model.save_pretrained(folder, safe_serialization=True)
    return versions.version_create(job=version.job, folder=folder, step=version.from_step, name="outlier twin")


def choose(client, version, token, precision):
    return client.put(f"/api/v1/training/versions/{version.pk}/serving-precision/",
                      data=json.dumps({"precision": precision}), content_type="application/json",
                      headers={"Authorization": f"Bearer {token}"})


def generated_at(client, version, customer) -> tuple[str, str]:
    """(the response's precision, the receipt's precision claim) of one generation."""
    offer = factories.offer(version.listing, name=f"offer {factories._n()}", rate_limit_per_minute=1000)
    _, key = apikey_create(owner=customer, name="key", grants=[factories.grant(customer, offer)])
    response = client.post("/api/v1/generations", content_type="application/json",
                           data=json.dumps({"model": str(version.pk), "prompt": "The quick", "max_new_tokens": 8,
                                            "temperature": 0}),
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.content
    output = response.json()["outputs"][0]
    claims = receipt_verify(jws=output["receipt"]["jws"], text=output["text"], prompt="The quick").claims
    return response.json()["precision"], claims["precision"]


@pytest.mark.usefixtures("local_media")
def test_a_quantisation_that_hurts_the_model_is_refused_and_one_that_does_not_is_served(
        client, trainer, customer, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    # The inference worker, here: each queued check runs when its transaction commits.
    monkeypatch.setattr(precision_check_measure_task, "delay",
                        lambda *args: precision_check_measure_task.apply(args=args))
    good = trained_version(trainer)
    bad = outlier_twin(good, tmp_path)
    for version in (good, bad):
        listing_publish(trainer=trainer, model_version_id=version.pk, title=version.name)
    _, token = token_create(owner=trainer, name="ci", scopes=["training"])

    with django_capture_on_commit_callbacks(execute=True):
        for version in (good, bad):
            chosen = choose(client, version, token, "int8")
            assert chosen.status_code == 200 and chosen.json()["verdict"] == "pending", chosen.content
    accepted = precision_of(client, good, token)
    refused = precision_of(client, bad, token)

    # Measured on the windows the run evaluated on: the fp32 figure is the perplexity it reported.
    assert accepted["check"]["perplexity_fp32"] == pytest.approx(good.metrics["perplexity"], rel=1e-3)
    assert refused["check"]["perplexity_fp32"] == pytest.approx(good.metrics["perplexity"], rel=1e-3)
    # A run's window is its context and the last target after it; the held-out documents give 8 or more.
    assert accepted["check"]["window_tokens"] == HP["context_length"] + 1 and accepted["check"]["windows"] >= 8
    assert (accepted["verdict"], accepted["effective"]) == ("accepted", "int8")
    assert accepted["check"]["increase"] <= 0.02 and accepted["check"]["accepted"]
    assert (refused["verdict"], refused["effective"]) == ("refused", "fp32")
    assert refused["check"]["increase"] > 0.02 and not refused["check"]["accepted"]

    # Served as checked, and every receipt says so.
    assert generated_at(client, good, customer) == ("int8", "int8")
    assert generated_at(client, bad, customer) == ("fp32", "fp32")

    # The model cards say it in words.
    good_card = client.get(reverse("marketplace:listing_detail", args=[good.listing.pk])).content.decode()
    windows = accepted["check"]["windows"]
    assert re.search(rf"Served at: int8 \(perplexity [+-]\d+\.\d % over fp32 on {windows} validation windows; "
                     r"bound 2 %\)\.", good_card)
    bad_card = client.get(reverse("marketplace:listing_detail", args=[bad.listing.pk])).content.decode()
    assert re.search(r"int8 refused: \+\d+\.\d % &gt; 2 % bound; served at fp32\.", bad_card)

    # Choosing the refused precision again is refused with its figures, and changes nothing.
    assert choose(client, bad, token, "").status_code == 200
    again = choose(client, bad, token, "int8")
    assert again.status_code == 400 and again.json()["error"]["code"] == "precision_refused"
    assert again.json()["error"]["increase"] == pytest.approx(refused["check"]["increase"])
    assert ModelVersion.objects.get(pk=bad.pk).serving_precision == ""


def precision_of(client, version, token) -> dict:
    response = client.get(f"/api/v1/training/versions/{version.pk}/serving-precision/",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.usefixtures("local_media")
def test_the_precision_check_command_measures_here_and_prints_the_figures(trainer, tmp_path):
    version = trained_version(trainer)
    out = StringIO()
    call_command("precision_check", str(version.pk), "--precision", "int8", stdout=out)
    printed = out.getvalue()
    assert printed.startswith(f"{version.pk}: int8 accepted: perplexity ")
    assert "(fp32) → " in printed and "bound 2 %" in printed and "validation windows of 33 tokens" in printed
    out = StringIO()
    call_command("precision_check", str(version.pk), stdout=out)  # it asks for fp32: nothing to check
    assert "served at fp32; nothing to check" in out.getvalue()
    with pytest.raises(CommandError, match="No model version"):
        call_command("precision_check", "not-a-version")
