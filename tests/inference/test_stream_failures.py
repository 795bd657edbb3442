"""A stream tells the truth when its worker is lost: the error event says exactly what was charged
(tokens and ledger row) in both APIs, the Idempotency-Key is free at once, and a stream with nothing
to send for a while sends SSE keep-alive comments."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

from inference import services
from inference.engine import TokenEvent
from inference.models import IdempotencyKey, UsageEntry
from inference.tasks import WorkerLost
from licensing.models import Grant

from .test_streaming import events


def _stream(client, licence, url, tokens_field, **headers):
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", tokens_field: 10, "stream": True}
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {licence.plaintext}", **headers})


def _worker_dies_after_three_tokens(prepared, *, on_token=None, should_cancel=None):
    for token_id in (40, 41, 42):
        on_token(TokenEvent(sample_index=0, token_id=token_id, text="ab"))
    future = Future()
    future.set_exception(WorkerLost(f"The inference worker running {prepared.request_id} sent nothing for 5 s.",
                                    started=True))
    return future


def test_a_lost_worker_ends_the_stream_naming_the_charge_in_both_apis(transactional_db, client, make_licence,
                                                                      monkeypatch):
    monkeypatch.setattr(services, "generation_submit", _worker_dies_after_three_tokens)
    licence = make_licence()
    for url, field in (("/api/v1/generations", "max_new_tokens"), ("/v1/completions", "max_tokens")):
        received = events(_stream(client, licence, url, field, **{"Idempotency-Key": f"k-{field}"}).streaming_content)
        error = received[-2]["error"]
        charged = error["charged"]
        entry = UsageEntry.objects.get(request_id=charged["ledger_row"])
        assert error["code"] == "inference_worker_lost" and error["type"] == "api_error"
        assert entry.interrupted and entry.completion_tokens == 3 == charged["completion_tokens"]
        assert charged["total_tokens"] == entry.total_tokens == entry.prompt_tokens + 3
        assert f"Charged {entry.total_tokens} tokens" in error["message"] and entry.request_id in error["message"]
        # The key is free at once: its claim failed, so a retry with it runs rather than waiting for a TTL.
        assert IdempotencyKey.objects.get(key=f"k-{field}").state == IdempotencyKey.State.FAILED
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.reserved_tokens == 0
    assert grant.used_tokens == sum(e.total_tokens for e in UsageEntry.objects.filter(grant=grant))


def test_a_plain_request_whose_worker_was_lost_says_nothing_was_charged(transactional_db, client, make_licence,
                                                                       monkeypatch):
    def lost(prepared, *, on_token=None, should_cancel=None):
        future = Future()
        future.set_exception(WorkerLost("No inference worker took it within 30 s.", started=False))
        return future

    monkeypatch.setattr(services, "generation_submit", lost)
    licence = make_licence()
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 5}
    response = client.post("/api/v1/generations", data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {licence.plaintext}", "Idempotency-Key": "k-plain"})
    assert response.status_code == 503 and response["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["charged"] == {"total_tokens": 0, "prompt_tokens": 0, "completion_tokens": 0, "ledger_row": None}
    assert "Nothing was charged" in error["message"]
    assert not UsageEntry.objects.exists() and Grant.objects.get(pk=licence.grant.pk).reserved_tokens == 0
    assert IdempotencyKey.objects.get(key="k-plain").state == IdempotencyKey.State.FAILED


def test_a_quiet_stream_sends_keep_alive_comments(transactional_db, client, make_licence, monkeypatch, settings):
    settings.INFERENCE_SSE_KEEPALIVE_SECONDS = 0.05
    real_submit = services.generation_submit

    def slow_start(prepared, *, on_token=None, should_cancel=None):
        future = Future()

        def later():
            threading.Event().wait(0.3)  # the model loading, a queue
            inner = real_submit(prepared, on_token=on_token, should_cancel=should_cancel)
            inner.add_done_callback(lambda f: future.set_result(f.result()))

        threading.Thread(target=later, daemon=True).start()
        return future

    monkeypatch.setattr(services, "generation_submit", slow_start)
    licence = make_licence()
    chunks = list(_stream(client, licence, "/api/v1/generations", "max_new_tokens").streaming_content)
    assert chunks[0] == b": keep-alive\n\n"
    assert b'"type": "result"' in b"".join(chunks)
