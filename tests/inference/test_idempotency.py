"""Promises of `Idempotency-Key`: one generation and one charge per key, however many duplicates
arrive and however they are timed; a duplicate while the first runs is 409 idempotency_in_progress,
one after it finished replays it (as server-sent events when it asks for a stream); the same key
with another body is 409 idempotency_key_reused; a refused or failed first attempt frees the key."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from django.db import connections
from django.test import Client

from inference import services
from inference.models import UsageEntry
from inference.receipts import receipt_verify
from licensing.models import Grant

from .test_generation_api import URL, post
from .test_streaming import events

DUPLICATES = 5


@pytest.fixture
def engine_runs(monkeypatch):
    """Counts the generations the engine is asked for."""
    runs = []
    submit = services.generation_submit

    def counted(prepared, **kwargs):
        runs.append(prepared.request_id)
        return submit(prepared, **kwargs)

    monkeypatch.setattr(services, "generation_submit", counted)
    return runs


def _streamed_text(received: list) -> str:
    return "".join(e["text"] for e in received if isinstance(e, dict) and e.get("type") == "token")


def test_concurrent_streams_with_one_idempotency_key_generate_and_charge_once(transactional_db, make_licence,
                                                                              engine_runs):
    licence = make_licence()
    body = json.dumps({"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 40,
                       "ignore_eos": True, "stream": True})
    start = threading.Barrier(DUPLICATES)

    def attempt(_):
        try:
            start.wait()
            response = Client().post(URL, data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {licence.plaintext}",
                                              "Idempotency-Key": "stream-once"})
            if response.status_code != 200:
                return response.status_code, response.json()
            return 200, events(response.streaming_content)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=DUPLICATES) as pool:
        results = list(pool.map(attempt, range(DUPLICATES)))
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert len(engine_runs) == 1
    for status, received in results:
        if status == 409:
            assert received["error"]["code"] == "idempotency_in_progress"
        else:
            assert status == 200 and _streamed_text(received) == entry.response["outputs"][0]["text"]
    assert [status for status, _ in results].count(200) >= 1
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == entry.total_tokens


@pytest.fixture
def openai_client(transactional_db, live_server, make_licence):
    licence = make_licence()
    return licence, openai.OpenAI(api_key=licence.plaintext, base_url=f"{live_server.url}/v1", max_retries=0)


def _stream(client, licence, key: str):
    chunks = list(client.completions.create(model=str(licence.version.pk), prompt="the quick brown", max_tokens=30,
                                            stream=True, extra_body={"ignore_eos": True},
                                            extra_headers={"Idempotency-Key": key}))
    return "".join(c.choices[0].text for c in chunks if c.choices), chunks[-1]


def test_the_openai_client_gets_a_finished_stream_replayed_as_a_stream(openai_client, engine_runs):
    licence, client = openai_client
    text, final = _stream(client, licence, "replay-me")
    again, replayed_final = _stream(client, licence, "replay-me")
    assert again == text and len(engine_runs) == 1
    receipt = replayed_final.model_extra["imprint"]["receipts"][0]["jws"]
    assert receipt == final.model_extra["imprint"]["receipts"][0]["jws"] and receipt_verify(jws=receipt, text=again).valid
    plain = client.completions.create(model=str(licence.version.pk), prompt="the quick brown", max_tokens=30,
                                      extra_body={"ignore_eos": True}, extra_headers={"Idempotency-Key": "replay-me"})
    assert plain.choices[0].text == text and len(engine_runs) == 1
    assert UsageEntry.objects.filter(grant=licence.grant).count() == 1


def test_concurrent_openai_streams_with_one_key_generate_once(openai_client, engine_runs):
    licence, client = openai_client
    start = threading.Barrier(DUPLICATES)

    def attempt(_):
        start.wait()
        try:
            return _stream(client, licence, "together")[0]
        except openai.ConflictError as exc:
            assert exc.code == "idempotency_in_progress"
            return None
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=DUPLICATES) as pool:
        texts = list(pool.map(attempt, range(DUPLICATES)))
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert len(engine_runs) == 1
    assert {t for t in texts if t is not None} == {entry.response["outputs"][0]["text"]}


def test_a_reused_key_with_a_different_body_is_409_and_charges_nothing(client, make_licence):
    licence = make_licence()
    first = post(client, licence, headers={"Idempotency-Key": "k-1"})
    used = Grant.objects.get(pk=licence.grant.pk).used_tokens
    other = post(client, licence, prompt="a different prompt", headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200 and other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and "different" in error["message"]
    streamed = post(client, licence, prompt="another one", stream=True, headers={"Idempotency-Key": "k-1"})
    assert streamed.status_code == 409 and streamed.json()["error"]["code"] == "idempotency_key_reused"
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == used
    assert UsageEntry.objects.filter(grant=licence.grant).count() == 1


def test_a_refused_or_failed_first_attempt_frees_the_key_for_a_retry(client, make_licence, monkeypatch):
    licence = make_licence(uses=["personal"])
    refused = post(client, licence, purpose="commercial", headers={"Idempotency-Key": "k-2"})
    assert refused.status_code == 403
    submit = services.generation_submit

    def broken(*args, **kwargs):
        raise services.engine_module.EngineError("model file unreadable")

    monkeypatch.setattr(services, "generation_submit", broken)
    assert post(client, licence, headers={"Idempotency-Key": "k-2"}).status_code == 503
    monkeypatch.setattr(services, "generation_submit", submit)
    retried = post(client, licence, headers={"Idempotency-Key": "k-2"})
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried
    assert UsageEntry.objects.filter(grant=licence.grant).count() == 1


def test_a_claim_left_pending_by_a_dead_process_is_taken_over_once_stale(client, make_licence):
    from datetime import timedelta

    from django.utils import timezone

    from inference.models import IdempotencyKey

    licence = make_licence()
    fingerprint = services.generation_fingerprint(services.GenerationInput(
        model=str(licence.version.pk), prompt="the quick brown", max_new_tokens=8))
    claim = IdempotencyKey.objects.create(api_key=licence.key, key="k-3", fingerprint=fingerprint, request_id="gen_dead")
    busy = post(client, licence, headers={"Idempotency-Key": "k-3"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_in_progress"
    IdempotencyKey.objects.filter(pk=claim.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    taken = post(client, licence, headers={"Idempotency-Key": "k-3"})
    assert taken.status_code == 200
    claim.refresh_from_db()
    assert claim.state == "done" and claim.usage_entry.request_id == taken.json()["id"]
