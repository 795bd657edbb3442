"""An inference worker killed with SIGKILL mid-request: the request fails cleanly with an error in
the API's shape that says nothing was charged, the quota reservation is released, and no ledger row
is written. With a Redis relay (CI) the worker's missing heartbeat ends it within seconds
(inference_worker_lost); without one, the web's overall timeout does (inference_timeout)."""

import json
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from inference.models import UsageEntry
from licensing.models import QuotaReservation
from licensing.models import Grant
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_request_fails_the_request_cleanly(celery_workers, make_licence, settings):
    settings.INFERENCE_IN_PROCESS = False
    settings.INFERENCE_TIMEOUT_SECONDS = 8  # how long the web waits for a worker that went silent
    worker = celery_workers.start(queues="inference", pool="threads", concurrency=1)
    licence = make_licence()
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 120, "n": 8,
            "ignore_eos": True, "seed": 1}
    outcome = {}

    def request():
        try:
            outcome["response"] = Client().post("/api/v1/generations", data=json.dumps(body),
                                                content_type="application/json",
                                                headers={"Authorization": f"Bearer {licence.plaintext}"})
        finally:
            connections.close_all()

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 60
    while "inference.generate" not in worker.log() or "received" not in worker.log():
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.02)
    worker.kill()  # SIGKILL while it generates
    thread.join(timeout=120)

    response = outcome["response"]
    assert 500 <= response.status_code < 600 and response.status_code != 500, response.content
    error = response.json()["error"]
    assert error["code"] in ("inference_worker_lost", "inference_timeout") and error["message"]
    assert "Nothing was charged" in error["message"] and error["charged"]["ledger_row"] is None
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.reserved_tokens == 0 and grant.used_tokens == 0
    assert not QuotaReservation.objects.exists()
    assert not UsageEntry.objects.exists()
