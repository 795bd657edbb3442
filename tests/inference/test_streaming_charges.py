"""Streamed tokens are always charged: when the reservation was swept under a slow reader and the
quota spent meanwhile, when settling keeps failing, and when the engine fails after sending some."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta

from django.utils import timezone

from inference import services
from inference.engine import EngineError, TokenEvent
from inference.models import UsageEntry
from licensing.models import Grant, QuotaReservation
from licensing.quota import quota_reservations_sweep

from .test_streaming import events, stream


def _ledger_matches_counter(grant) -> None:
    grant = Grant.objects.get(pk=grant.pk)
    entries = UsageEntry.objects.filter(grant=grant)
    assert grant.used_tokens == sum(e.total_tokens - e.over_quota_tokens for e in entries)
    assert grant.reserved_tokens == 0


def test_a_slow_reader_whose_reservation_was_swept_is_charged_for_every_token_sent(client, make_licence):
    licence = make_licence(quota={"tokens": 40, "period": "total"})
    response = stream(client, licence, max_new_tokens=20, ignore_eos=True)
    chunks = response.streaming_content
    received = [next(chunks) for _ in range(2)]
    # The reader stalls past the reservation's expiry: the sweep takes it, and other requests spend
    # the quota meanwhile.
    QuotaReservation.objects.update(expires_at=timezone.now())
    assert quota_reservations_sweep() == 1
    Grant.objects.filter(pk=licence.grant.pk).update(used_tokens=30)
    received += list(chunks)
    final = events(received)[-2]
    assert final["type"] == "result" and final["usage"]["completion_tokens"] == 20
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert entry.total_tokens == 23 and entry.over_quota_tokens == 13
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.used_tokens == 30 + 10 == grant.quota_tokens and grant.reserved_tokens == 0  # all that remained


def test_streamed_tokens_are_charged_when_settling_keeps_failing(client, make_licence, monkeypatch):
    def unavailable(**kwargs):
        raise RuntimeError("signing service unreachable")

    monkeypatch.setattr(services, "receipt_sign", unavailable)
    licence = make_licence()
    received = events(stream(client, licence, max_new_tokens=10, ignore_eos=True).streaming_content)
    assert received[-1] == "[DONE]"
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert entry.interrupted and entry.completion_tokens == 10 and not entry.receipts.exists()
    _ledger_matches_counter(licence.grant)
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == entry.total_tokens > 0


def test_a_transient_settle_failure_is_retried(client, make_licence, monkeypatch):
    failures = []
    sign = services.receipt_sign

    def flaky(**kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("database is locked")
        return sign(**kwargs)

    monkeypatch.setattr(services, "receipt_sign", flaky)
    licence = make_licence()
    received = events(stream(client, licence, max_new_tokens=6, ignore_eos=True).streaming_content)
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert received[-2]["type"] == "result" and not entry.interrupted and entry.receipts.count() == 1
    _ledger_matches_counter(licence.grant)


def test_tokens_sent_before_the_engine_failed_are_charged(transactional_db, client, make_licence, monkeypatch):
    # transactional_db: the engine thread releases the reservation itself, which the test's own open
    # transaction would otherwise lock out on SQLite.
    def fails_midway(prepared, *, on_token=None, should_cancel=None):
        for token_id in (40, 41, 42):
            on_token(TokenEvent(sample_index=0, token_id=token_id, text="ab"))
        future = Future()
        future.set_exception(EngineError("the accelerator fell over"))
        return future

    monkeypatch.setattr(services, "generation_submit", fails_midway)
    licence = make_licence()
    received = events(stream(client, licence, max_new_tokens=10).streaming_content)
    assert [e["text"] for e in received if isinstance(e, dict) and e.get("type") == "token"] == ["ab"] * 3
    assert received[-2]["error"]["code"] == "model_unavailable"
    entry = UsageEntry.objects.get(grant=licence.grant)
    assert entry.interrupted and entry.completion_tokens == 3 and entry.response["outputs"][0]["text"] == "ababab"
    _ledger_matches_counter(licence.grant)


def test_a_stream_being_read_keeps_its_reservation_alive(client, make_licence, monkeypatch):
    from inference import api

    monkeypatch.setattr(api, "KEEPALIVE_SECONDS", -1)  # every token keeps it alive
    licence = make_licence()
    chunks = stream(client, licence, max_new_tokens=20, ignore_eos=True).streaming_content
    next(chunks)
    QuotaReservation.objects.update(expires_at=timezone.now())
    next(chunks)
    assert QuotaReservation.objects.get().expires_at > timezone.now() + timedelta(seconds=30)  # renewed: TTL 45 s
    assert quota_reservations_sweep() == 0
    list(chunks)
    _ledger_matches_counter(licence.grant)
