"""In production the web tier does not run the model: generation runs on `inference` queue workers."""

from __future__ import annotations

import pytest

from inference.models import UsageEntry
from inference.receipts import receipt_verify

from .test_generation_api import post

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
