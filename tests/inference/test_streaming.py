"""Promises of `stream: true`: tokens as server-sent events, then usage and the receipt; a stream cut
short is charged only for the tokens sent and still gets a ledger row."""

from __future__ import annotations

import json

from inference.models import UsageEntry
from inference.receipts import receipt_verify
from licensing.models import Grant

from .test_generation_api import URL


def stream(client, licence, **body):
    body = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 12,
            "stream": True, **body}
    return client.post(URL, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {licence.plaintext}"})


def events(chunks) -> list:
    out = []
    for chunk in chunks:
        for line in chunk.decode().split("\n\n"):
            if line.startswith("data: "):
                payload = line[len("data: "):]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_a_stream_sends_tokens_then_usage_and_a_receipt_covering_the_full_text(client, make_licence):
    licence = make_licence()
    response = stream(client, licence, ignore_eos=True)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert "x-ratelimit-remaining-requests" in response
    received = events(response.streaming_content)
    tokens = [e for e in received[:-2] if e["type"] == "token"]
    final, done = received[-2], received[-1]
    assert done == "[DONE]" and final["type"] == "result"
    text = "".join(t["text"] for t in tokens)
    assert text == final["outputs"][0]["text"]
    assert final["usage"]["completion_tokens"] == 12
    assert receipt_verify(jws=final["outputs"][0]["receipt"]["jws"], text=text).valid
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == final["usage"]["total_tokens"]


def test_an_interrupted_stream_is_charged_only_for_the_tokens_sent(client, make_licence):
    licence = make_licence()
    response = stream(client, licence, max_new_tokens=100, ignore_eos=True)
    # The test client's closing wrapper (streaming_content maps over it): closing it is what a WSGI
    # server does when the client disconnects, and it keeps the test's DB connection open.
    chunks = response._iterator
    sent = [next(chunks) for _ in range(3)]  # the client reads three tokens, then goes away
    chunks.close()
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert entry.interrupted and entry.completion_tokens == 3 == len(events(sent))
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.used_tokens == entry.total_tokens == entry.prompt_tokens + 3 and grant.reserved_tokens == 0
    text = "".join(e["text"] for e in events(sent))
    assert receipt_verify(jws=entry.receipts.get().jws, text=text).valid
