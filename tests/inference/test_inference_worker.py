"""In production the web tier does not run the model: generation runs on `inference` queue workers."""

from __future__ import annotations

import json

import pytest

from inference.models import UsageEntry
from inference.receipts import receipt_verify
from training.models import ModelVersion

from .test_generation_api import post
from .test_serving_precision import check as accepted_check

pytestmark = pytest.mark.slow


def test_a_generation_runs_on_a_real_inference_worker_when_not_in_process(
        celery_workers, make_licence, settings, client):
    settings.INFERENCE_IN_PROCESS = False
    settings.INFERENCE_TIMEOUT_SECONDS = 120
    worker = celery_workers.start(queues="inference", pool="threads", concurrency=2)
    licence = make_licence()
    response = post(client, licence, max_new_tokens=6, ignore_eos=True, seed=4)
    assert response.status_code == 200, (response.content, worker.log()[-3000:])
    output = response.json()["outputs"][0]
    assert receipt_verify(jws=output["receipt"]["jws"], text=output["text"]).valid
    assert UsageEntry.objects.get(request_id=response.json()["id"]).completion_tokens == 6
    assert "inference.generate" in worker.log() and "succeeded" in worker.log()
    assert response.json()["precision"] == "fp32"

    # The web chooses the precision (an accepted int8 check); the worker serves it and says so.
    accepted_check(licence.version, increase=0.004)
    ModelVersion.objects.filter(pk=licence.version.pk).update(serving_precision="int8")
    int8 = post(client, licence, max_new_tokens=6, ignore_eos=True, seed=4).json()
    output = int8["outputs"][0]
    assert int8["precision"] == "int8"
    assert receipt_verify(jws=output["receipt"]["jws"], text=output["text"]).claims["precision"] == "int8"


def test_a_stream_from_a_worker_relays_tokens_and_a_disconnect_stops_it(
        celery_workers, make_licence, settings, client, redis_url):
    from inference.relay import relay_url
    from tests.conftest import require

    require(relay_url() is not None, "a Redis broker (CELERY_BROKER_URL=redis://...) for the token relay")
    settings.INFERENCE_IN_PROCESS = False
    worker = celery_workers.start(queues="inference", pool="threads", concurrency=2)
    licence = make_licence()
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 120,
            "ignore_eos": True, "stream": True}
    response = client.post("/api/v1/generations", data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {licence.plaintext}"})
    assert response.status_code == 200
    chunks = response._iterator  # the test client's closing wrapper (see test_streaming.py)
    # Three token events (a keep-alive comment may come first while the worker loads the model).
    first = []
    while len(first) < 3:
        chunk = next(chunks)
        if not chunk.startswith(b":"):
            first.append(chunk)
    chunks.close()  # the client goes away after three tokens
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert entry.interrupted and entry.completion_tokens == 3, worker.log()[-2000:]
    assert all(b'"type": "token"' in chunk for chunk in first)
