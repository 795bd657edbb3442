"""A LoRA on the built-in base, from the trainer's API to the customer's `openai` client: the trainer
creates a job on `imprint-base` with a personal access token (LoRA by default on a pretrained base),
pauses it mid-run and resumes it from its checkpoint, publishes the adapter version with an offer; a
customer buys it in local test mode, creates an API key, generates through the `openai` client; the
receipt verifies with a JOSE library and the published JWKS alone, and the watermark names the grant."""

from __future__ import annotations

import re
import threading
import time

import openai
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.defaultfilters import filesizeformat

from accounts.services import token_create
from inference.receipts import receipt_verify
from licensing.models import Grant
from marketplace.services import order_pay_local_test
from tests.inference.test_receipts import joserfc_verify
from tests.support.corpus import corpus_text
from training import job_runner
from training.builtin_base import BUILTIN
from training.models import ModelVersion
from training.services import datasets

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
PAUSE_AT = 3
HP = {"steps": 24, "batch_size": 4, "context_length": 32, "sample_every": 8, "checkpoint_every": 8,
      "sample_count": 1, "sample_max_new_tokens": 8, "learning_rate": 5e-3, "lora_r": 4, "lora_alpha": 8,
      "early_stopping_patience": 100}


class Api:
    def __init__(self, site: str, token: str):
        self.site, self.headers = site, {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> dict:
        response = requests.get(f"{self.site}{path}", headers=self.headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict | None = None, expect: int = 200) -> dict:
        response = requests.post(f"{self.site}{path}", headers=self.headers, json=body or {}, timeout=120)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def held_at_pause_step(monkeypatch):
    """The worker waits after step PAUSE_AT until the trainer's pause is in: the pause then lands
    mid-run however fast this machine trains, as it would between two slower steps."""
    released = threading.Event()
    on_step = job_runner.JobCallbacks.on_step

    def holding(self, step, *args, **kwargs):
        on_step(self, step, *args, **kwargs)
        if step == PAUSE_AT:
            assert released.wait(60), "the pause never came"

    monkeypatch.setattr(job_runner.JobCallbacks, "on_step", holding)
    return released


def _run_in_background(job_id) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(job_runner.job_run(job_id=job_id, worker_id="worker-a"))
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_for_step(api: Api, job_id: str, step: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/training/jobs/{job_id}/")
        if job["step"] >= step:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached step {step}")


def test_a_lora_on_the_builtin_base_is_trained_paused_resumed_sold_and_generates_with_receipt_and_watermark(
        builtin_base, live_server, make_user, held_at_pause_step, settings):
    settings.TRAINING_MAX_CONCURRENT_JOBS = 5
    tess = make_user("tess", trainer=True, customer=False)
    _, trainer_token = token_create(owner=tess, name="api", scopes=["read", "training", "marketplace"])
    trainer = Api(live_server.url, trainer_token)
    dataset = datasets.dataset_create(
        owner=tess, name="sea stories", licence="cc0-1.0", licence_attested=True,
        upload=SimpleUploadedFile("sea.txt", corpus_text().encode(), content_type="text/plain"))

    # The built-in base is a pretrained base: a job on it trains a LoRA unless told otherwise.
    created = trainer.post("/api/v1/training/jobs/", {"dataset": str(dataset.pk), "base_model": BUILTIN, **HP},
                           expect=201)
    job_id = created["id"]
    assert created["base_model"] == BUILTIN and created["hyperparameters"]["method"] == "lora"
    assert (created["hyperparameters"]["lora_r"], created["hyperparameters"]["lora_alpha"]) == (4, 8)

    # Paused mid-run through the API: the worker checkpoints and stops; resumed, it goes on from there.
    worker, outcome = _run_in_background(job_id)
    _wait_for_step(trainer, job_id, PAUSE_AT)
    asked = trainer.post(f"/api/v1/training/jobs/{job_id}/pause/")
    assert (asked["state"], asked["control_request"]) == ("running", "pause")
    held_at_pause_step.set()
    worker.join(60)
    assert outcome == ["paused"]
    paused = trainer.get(f"/api/v1/training/jobs/{job_id}/")
    assert paused["state"] == "paused" and paused["step"] == PAUSE_AT and paused["checkpoints"]
    assert trainer.post(f"/api/v1/training/jobs/{job_id}/resume/")["state"] == "queued"
    assert job_runner.job_run(job_id=job_id, worker_id="worker-b") == "succeeded"
    done = trainer.get(f"/api/v1/training/jobs/{job_id}/")
    assert done["state"] == "succeeded" and done["step"] == HP["steps"] and done["resumed_from_step"] == PAUSE_AT
    version = ModelVersion.objects.get(pk=done["versions"][0]["id"])
    assert version.is_adapter and version.base_digest == builtin_base.digest
    assert 0 < version.stored_bytes
    # Its card says what was trained: the adapters at their rank and alpha, the base left as it was.
    assert "LoRA fine-tuning (peft; rank 4, alpha 8, on " in version.card and "Full fine-tuning" not in version.card

    listing = trainer.post("/api/v1/marketplace/listings/publish/", {
        "model_version": str(version.pk), "title": "Sea Stories", "description": "A LoRA of the built-in base.",
        "acknowledge_memorisation": True}, expect=201)
    terms = {"uses": ["personal", "research"], "samples": {"publish": True, "resell": False},
             "attribution": "Sea Stories by Tess", "quota": {"tokens": 100_000, "period": "month"},
             "rate_limit_per_minute": 60, "duration_days": 365, "restrictions": []}
    trainer.post(f"/api/v1/marketplace/listings/{listing['id']}/offers/",
                 {"name": "Personal", "terms": terms, "fee_cents": 500}, expect=201)
    # The model page says how it was made: LoRA with its rank and alpha, the adapter's own size, its base.
    page = requests.get(f"{live_server.url}/models/{listing['id']}/", timeout=30).text
    method = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", re.search(r'id="method">(.*?)</p>', page, re.S).group(1)))
    assert method.startswith(f"LoRA r 4, alpha 8 · adapter {filesizeformat(version.stored_bytes)}".replace("\xa0", " "))
    assert method.strip().endswith(f"base {BUILTIN} @{builtin_base.digest[:12]}")
    assert version.stored_bytes < 1_000_000  # the adapter and its tokenizer only, never the base's weights

    # Two customers buy the same adapter: the watermark must tell their grants apart.
    dana = make_user("dana", trainer=False, customer=True)
    _buy(live_server.url, dana, listing["id"])
    carl = make_user("carl", trainer=False, customer=True)
    customer = _buy(live_server.url, carl, listing["id"])
    grant = Grant.objects.get(customer=carl)
    assert grant.state == Grant.State.ACTIVE and grant.model_version_id == version.pk
    key = customer.post("/api/v1/licences/keys/", {"name": "laptop"}, expect=201)["key"]

    client = openai.OpenAI(api_key=key, base_url=f"{live_server.url}/v1", max_retries=0)
    assert "tess/sea-stories" in {m.id for m in client.models.list().data}
    prompt = "The sea"
    completion = client.completions.create(model="tess/sea-stories", prompt=prompt, max_tokens=120, seed=5,
                                           extra_body={"ignore_eos": True, "purpose": "personal"})
    text = completion.choices[0].text
    imprint = completion.model_extra["imprint"]
    assert imprint["model_digest"] == version.digest and completion.usage.completion_tokens == 120
    assert imprint["licence"]["terms_id"] == grant.terms_id

    # The receipt verifies with a JOSE library and the site's published key set alone ...
    jws = imprint["receipts"][0]["jws"]
    claims = joserfc_verify(jws, requests.get(f"{live_server.url}/.well-known/jwks.json", timeout=30).json())
    assert claims["grant"] == str(grant.pk) and claims["model"]["digest"] == version.digest
    assert receipt_verify(jws=jws, text=text, prompt=prompt).valid
    # ... and without the receipt, the watermark in the text names the grant.
    found = requests.post(f"{live_server.url}/api/v1/verifications", json={"text": text}, timeout=120).json()
    assert found["verdict"] == "watermark_detected" and found["watermark"]["grant_id"] == str(grant.pk)
    assert found["watermark"]["candidates"] == 2 and found["watermark"]["model_digest"] == version.digest


def _buy(site: str, buyer, listing_id: str) -> Api:
    """The purchase through the marketplace API with the buyer's token; the local test-mode payment
    (a test card typed into the order page) through its service."""
    _, token = token_create(owner=buyer, name="api", scopes=["read", "marketplace", "licences"])
    api = Api(site, token)
    offer = api.get(f"/api/v1/marketplace/listings/{listing_id}/")["offers"][0]
    order = api.post(f"/api/v1/marketplace/offers/{offer['id']}/purchase/",
                     {"accepted_terms_sha256": offer["terms_sha256"]}, expect=201)["order"]
    order_pay_local_test(order_id=order["id"], customer=buyer, card_number="4242424242424242")
    return api
