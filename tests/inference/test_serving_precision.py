"""Promises of serving precision: a version is served at fp32 until the precision it asks for (its
trainer's choice, else the deployment's) has a done, accepted check; the trainer chooses it on the
listing's page and through the management API; every output's response and receipt say which
precision generated it, and the model card and /verify/ show it.

The quality of real quantisations (an accepted model, a refused one) is tests/inference/
test_precision_checks.py; here checks are rows in their states, as the measurement leaves them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.services import token_create
from audit.models import AuditEntry
from config.celery_app import app as celery_app
from inference import engine as engine_module
from inference.errors import PrecisionInvalid
from inference.models import PrecisionCheck
from inference.precision import (
    precision_check_measure,
    precision_effective,
    precision_summary,
)
from inference.receipts import receipt_sign, receipt_verify
from inference.tasks import _payload, _result_from_json, _result_to_json, generation_run, precision_check_measure_task
from marketplace.services import listing_publish
from tests import factories
from tests.inference.test_receipts import joserfc_verify
from training.models import ModelVersion

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def version_of(trainer, precision: str = "") -> ModelVersion:
    version = factories.model_version(trainer)
    factories.listing(trainer, mv=version)
    ModelVersion.objects.filter(pk=version.pk).update(serving_precision=precision)
    version.refresh_from_db()
    return version


def check(version, precision: str = "int8", *, state: str = "done", increase: float | None = 0.008,
          windows: int = 64) -> PrecisionCheck:
    """A check as the measurement leaves it (figures consistent with `increase`)."""
    done = state == "done"
    return PrecisionCheck.objects.create(
        model_version=version, precision=precision, state=state, device="cpu", windows=windows if done else 0,
        window_tokens=32 if done else 0, perplexity_fp32=20.0 if done else None,
        perplexity=20.0 * (1 + increase) if done and increase is not None else None,
        increase=increase if done else None, bound=0.02 if done else None,
        accepted=done and increase is not None and increase <= 0.02,
        error="" if state != "failed" else "storage unreachable", measured_at=timezone.now() if state != "running" else None)


def api(client, version, *, method="get", token=None, **body):
    url = f"/api/v1/training/versions/{version.pk}/serving-precision/"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "get":
        return client.get(url, headers=headers)
    return client.put(url, data=json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def sent(monkeypatch):
    """The precision checks queued for the inference queue, as (version id, precision)."""
    queued = []
    monkeypatch.setattr(precision_check_measure_task, "delay", lambda *args: queued.append(args))
    return queued


# --- The deployment's settings ----------------------------------------------------------------

def start(tmp_path, **env) -> subprocess.CompletedProcess:
    """Start Django's settings in a fresh interpreter with these environment variables."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "IMPRINT_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_an_unknown_deployment_precision_refuses_to_start_with_a_clear_error(tmp_path):
    refused = start(tmp_path, INFERENCE_PRECISION="fp16")
    assert refused.returncode != 0
    assert "INFERENCE_PRECISION='fp16' is not a serving precision: choose one of fp32, int8, bf16." in refused.stderr
    negative = start(tmp_path, INFERENCE_PRECISION_MAX_INCREASE="-0.5")
    assert negative.returncode != 0 and "INFERENCE_PRECISION_MAX_INCREASE" in negative.stderr
    assert start(tmp_path, INFERENCE_PRECISION="INT8", INFERENCE_PRECISION_WINDOWS="16").returncode == 0


def test_the_settings_name_exactly_the_engines_precisions(settings):
    assert tuple(settings.SERVING_PRECISIONS) == tuple(engine_module.PRECISIONS)
    assert (settings.INFERENCE_PRECISION, settings.INFERENCE_PRECISION_MAX_INCREASE,
            settings.INFERENCE_PRECISION_WINDOWS) == ("fp32", 0.02, 64)


# --- What a request is served at ------------------------------------------------------------

@pytest.mark.parametrize("state, increase", [(None, None), ("running", None), ("failed", None),
                                             ("done", 0.053), ("done", None)])
def test_a_quantisation_is_never_served_before_its_check_is_done_and_accepted(trainer, state, increase):
    version = version_of(trainer, "int8")
    if state is not None:
        check(version, state=state, increase=increase)
    assert precision_effective(version) == "fp32"


def test_an_accepted_check_serves_the_precision_the_trainer_chose(trainer):
    version = version_of(trainer, "int8")
    check(version, increase=0.008)
    assert precision_effective(version) == "int8"


def test_the_deployment_default_applies_until_the_trainer_chooses(trainer, settings):
    settings.INFERENCE_PRECISION = "int8"
    default, exact = version_of(trainer), version_of(trainer, "fp32")
    check(default), check(exact)
    assert precision_effective(default) == "int8"
    assert precision_effective(exact) == "fp32"  # the trainer's choice wins, even when it is fp32
    assert precision_summary(default)["chosen_by"] == "deployment"


def test_tightening_the_bound_refuses_an_accepted_check_at_once_and_loosening_accepts_it(trainer, settings):
    version = version_of(trainer, "int8")
    check(version, increase=0.015)
    assert precision_effective(version) == "int8"
    settings.INFERENCE_PRECISION_MAX_INCREASE = 0.01
    assert precision_effective(version) == "fp32"
    assert precision_summary(version)["text"] == "int8 refused: +1.5 % > 1 % bound; served at fp32."
    settings.INFERENCE_PRECISION_MAX_INCREASE = 0.02
    assert precision_effective(version) == "int8"


# --- The model card ----------------------------------------------------------------------------

@pytest.mark.parametrize("state, increase, sentence", [
    ("done", 0.008, "Served at: int8 (perplexity +0.8 % over fp32 on 64 validation windows; bound 2 %)."),
    ("done", 0.053, "int8 refused: +5.3 % &gt; 2 % bound; served at fp32."),
    ("running", None, "int8 measuring…; served at fp32 until it is accepted."),
    ("failed", None, "int8 could not be measured (storage unreachable); served at fp32."),
])
def test_the_model_card_says_what_the_model_is_served_at_and_why(client, trainer, state, increase, sentence):
    version = version_of(trainer, "int8")
    check(version, state=state, increase=increase)
    page = client.get(reverse("marketplace:listing_detail", args=[version.listing.pk])).content.decode()
    assert sentence in page


def test_a_model_served_at_fp32_says_so_on_its_card(client, trainer):
    version = version_of(trainer)
    page = client.get(reverse("marketplace:listing_detail", args=[version.listing.pk])).content.decode()
    assert "Served at: fp32 (full precision)." in page


# --- The trainer chooses: the management API ---------------------------------------------------

def test_a_trainer_chooses_an_unmeasured_precision_as_pending_and_its_check_is_queued_after_commit(
        client, trainer, sent, django_capture_on_commit_callbacks):
    version = version_of(trainer)
    _, token = token_create(owner=trainer, name="ci", scopes=["training"])
    with django_capture_on_commit_callbacks(execute=True):
        response = api(client, version, method="put", token=token, precision="int8")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["serving_precision"], body["verdict"], body["effective"]) == ("int8", "pending", "fp32")
    assert body["text"] == "int8 not measured yet; served at fp32 until it is accepted."
    assert sent == [(str(version.pk), "int8")]
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == "int8"
    entry = AuditEntry.objects.filter(event="version.serving_precision_set").get()
    assert entry.data == {"from": "", "to": "int8"}
    read = api(client, version, token=token).json()
    assert read["verdict"] == "pending" and read["check"] is None


def test_choosing_a_refused_precision_is_a_400_naming_the_increase_and_the_bound_and_changes_nothing(
        client, trainer, sent):
    version = version_of(trainer)
    check(version, increase=0.053)
    client.force_login(trainer)
    response = api(client, version, method="put", precision="int8")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"], error["increase"], error["bound"]) == ("precision_refused", "precision",
                                                                                  0.053, 0.02)
    assert "+5.3 %" in error["message"] and "2 % bound" in error["message"] and "64 validation windows" in error["message"]
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == ""
    assert sent == [] and not AuditEntry.objects.filter(event="version.serving_precision_set").exists()


def test_an_accepted_precision_is_served_at_once_and_a_failed_one_is_measured_again(
        client, trainer, sent, django_capture_on_commit_callbacks):
    accepted, failed = version_of(trainer), version_of(trainer)
    check(accepted, increase=0.004)
    check(failed, state="failed")
    client.force_login(trainer)
    with django_capture_on_commit_callbacks(execute=True):
        assert api(client, accepted, method="put", precision="int8").json()["effective"] == "int8"
        assert api(client, failed, method="put", precision="int8").json()["verdict"] == "failed"
    assert sent == [(str(failed.pk), "int8")]


def test_clearing_the_choice_returns_to_the_deployment_default(client, trainer, sent):
    version = version_of(trainer, "int8")
    client.force_login(trainer)
    for cleared in ("", None):
        body = api(client, version, method="put", precision=cleared).json()
        assert (body["serving_precision"], body["requested"], body["chosen_by"]) == ("", "fp32", "deployment")


def test_an_unknown_precision_is_a_400_and_changes_nothing(client, trainer):
    version = version_of(trainer, "int8")
    client.force_login(trainer)
    response = api(client, version, method="put", precision="fp8")
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("invalid_precision", "precision")
    assert api(client, version, method="put").status_code == 400  # no precision at all
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == "int8"


def test_another_trainers_version_is_not_found(client, trainer, make_user):
    version = version_of(trainer)
    client.force_login(make_user("ivy", trainer=True))
    for method in ("get", "put"):
        response = api(client, version, method=method, precision="int8")
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_version_not_found"
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == ""


def test_a_token_without_the_training_scope_may_only_read(client, trainer):
    version = version_of(trainer)
    _, reader = token_create(owner=trainer, name="read", scopes=["read"])
    _, seller = token_create(owner=trainer, name="sell", scopes=["marketplace"])
    assert api(client, version, token=reader).status_code == 200
    assert api(client, version, method="put", token=reader, precision="int8").status_code == 403
    assert api(client, version, method="put", token=seller, precision="int8").status_code == 403
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == ""


def test_the_version_api_shows_the_trainers_choice(client, trainer):
    version = version_of(trainer, "int8")
    client.force_login(trainer)
    assert client.get(f"/api/v1/training/versions/{version.pk}/").json()["serving_precision"] == "int8"


def test_the_openapi_schema_documents_the_serving_precision_api(client):
    schema = client.get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/v1/training/versions/{id}/serving-precision/"]
    assert set(operations) >= {"get", "put"} and "400" in operations["put"]["responses"]


# --- The trainer chooses: the listing's page -----------------------------------------------------

def test_a_trainer_chooses_the_precision_on_the_listing_page(client, trainer, sent,
                                                             django_capture_on_commit_callbacks):
    version = version_of(trainer)
    client.force_login(trainer)
    edit = reverse("marketplace:listing_edit", args=[version.listing.pk])
    assert "the deployment&#x27;s default (fp32)" in client.get(edit).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("marketplace:listing_precision", args=[version.listing.pk]),
                               {"precision": "int8"}, follow=True)
    page = response.content.decode()
    assert "int8 not measured yet; served at fp32 until it is accepted." in page
    assert sent == [(str(version.pk), "int8")]


def test_the_listing_page_refuses_a_refused_precision_with_its_figures(client, trainer):
    version = version_of(trainer)
    check(version, increase=0.053)
    client.force_login(trainer)
    response = client.post(reverse("marketplace:listing_precision", args=[version.listing.pk]), {"precision": "int8"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "int8 was measured at +5.3 % perplexity over fp32 on 64 validation windows" in page
    assert "more than the 2 % bound" in page
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == ""


def test_a_stranger_cannot_choose_the_precision_of_a_listing(client, trainer, make_user):
    version = version_of(trainer)
    client.force_login(make_user("ivy", trainer=True))
    response = client.post(reverse("marketplace:listing_precision", args=[version.listing.pk]), {"precision": "int8"})
    assert response.status_code == 404
    assert ModelVersion.objects.get(pk=version.pk).serving_precision == ""


# --- Publishing and measuring ------------------------------------------------------------------

def test_publishing_queues_a_check_only_for_a_precision_below_fp32(trainer, settings, sent,
                                                                   django_capture_on_commit_callbacks):
    exact, quantised, measured = (factories.model_version(trainer) for _ in range(3))
    ModelVersion.objects.filter(pk=quantised.pk).update(serving_precision="int8")
    ModelVersion.objects.filter(pk=measured.pk).update(serving_precision="int8")
    check(measured, increase=0.01)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for version in (exact, quantised, measured):
            listing_publish(trainer=trainer, model_version_id=version.pk, title="Harbour")
        assert sent == []  # nothing leaves before the listing is committed
    for callback in callbacks:
        callback()
    assert sent == [(str(quantised.pk), "int8")]
    settings.INFERENCE_PRECISION = "bf16"
    with django_capture_on_commit_callbacks(execute=True):
        listing_publish(trainer=trainer, model_version_id=exact.pk, title="Harbour")
    assert sent[-1] == (str(exact.pk), "bf16")


def test_the_check_runs_on_the_inference_queue():
    assert celery_app.amqp.router.route({}, "inference.precision_check_measure")["queue"].name == "inference"


def test_a_done_check_is_not_measured_again_without_force(trainer):
    version = version_of(trainer, "int8")
    done = check(version, increase=0.008)
    again = precision_check_measure(version_id=version.pk, precision="int8")
    assert (again.pk, again.measured_at, again.increase) == (done.pk, done.measured_at, 0.008)


def test_fp32_and_unknown_names_need_no_check(trainer):
    version = version_of(trainer)
    for name in ("fp32", "fp8"):
        with pytest.raises(PrecisionInvalid):
            precision_check_measure(version_id=version.pk, precision=name)
    assert not PrecisionCheck.objects.exists()


def test_a_check_whose_model_cannot_be_loaded_is_stored_failed_and_the_version_served_at_fp32(trainer):
    version = version_of(trainer, "int8")  # a version whose files were never stored
    failed = precision_check_measure(version_id=version.pk, precision="int8")
    assert failed.state == "failed" and failed.error and failed.perplexity is None
    assert precision_effective(version) == "fp32"
    assert precision_check_measure_task.apply(args=[str(version.pk), "int8"]).get()["state"] == "failed"


def test_a_check_of_a_deleted_version_exits_quietly():
    missing = "00000000-0000-4000-8000-000000000000"
    assert precision_check_measure_task.apply(args=[missing, "int8"]).get()["state"] == "gone"


# --- Responses and receipts ----------------------------------------------------------------------

def generate(client, licence, url="/api/v1/generations", **body):
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 6, "seed": 1, **body}
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {licence.plaintext}"})


def test_the_response_and_the_receipt_say_which_precision_generated_the_text(client, make_licence):
    from inference.receipts import jwks

    licence = make_licence()
    fp32 = generate(client, licence).json()
    assert fp32["precision"] == "fp32"
    check(licence.version, increase=0.004)
    ModelVersion.objects.filter(pk=licence.version.pk).update(serving_precision="int8")
    body = generate(client, licence).json()
    assert body["precision"] == "int8" and body["model_digest"] == licence.version.digest
    claims = joserfc_verify(body["outputs"][0]["receipt"]["jws"], json.loads(json.dumps(jwks())))
    assert claims["precision"] == "int8"  # a top-level claim any JOSE library reads
    openai = generate(client, licence, url="/v1/completions", prompt="the quick", max_tokens=4,
                      model=str(licence.version.pk)).json()
    assert openai["imprint"]["precision"] == "int8" and openai["imprint"]["model_digest"] == licence.version.digest


def test_an_inference_worker_is_asked_for_the_precision_and_answers_with_the_one_it_used(make_licence):
    from inference.services import GenerationInput, generation_abandon, generation_prepare

    licence = make_licence()
    check(licence.version, increase=0.004)
    ModelVersion.objects.filter(pk=licence.version.pk).update(serving_precision="int8")
    prepared = generation_prepare(api_key=licence.key, params=GenerationInput(
        model=str(licence.version.pk), prompt="the quick brown", max_new_tokens=4, seed=2))
    payload = _payload(prepared, None, stream=False)
    assert payload["precision"] == "int8"
    answer = generation_run.apply(args=[payload]).get()  # the worker's task, run here
    assert answer["precision"] == "int8"
    assert _result_from_json(answer).precision == "int8"
    generation_abandon(prepared)
    older = {key: value for key, value in _result_to_json(_result_from_json(answer)).items() if key != "precision"}
    assert _result_from_json(older).precision == "fp32"  # a worker that did not say served fp32


def test_verify_shows_the_precision_of_a_receipt_that_has_one_and_nothing_for_older_ones(client, make_licence):
    licence = make_licence()
    output = generate(client, licence).json()["outputs"][0]
    page = client.post("/verify/", {"text": output["text"], "receipt": output["receipt"]["jws"]}).content.decode()
    assert "Generated at fp32 precision" in page
    claims = receipt_verify(jws=output["receipt"]["jws"], text=output["text"]).claims
    del claims["precision"]  # as receipts were signed before precisions were recorded
    _kid, older = receipt_sign(claims=claims)
    page = client.post("/verify/", {"text": output["text"], "receipt": older}).content.decode()
    assert "RECEIPT VALID" in page and "Generated at" not in page
