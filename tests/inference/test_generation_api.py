"""Promises of POST /api/v1/generations: metered generation with receipts, licence stamp and the
documented error statuses."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from inference.models import Receipt, UsageEntry
from inference.receipts import receipt_verify
from audit.models import AuditRefusal
from licensing.models import Grant
from licensing.services import apikey_revoke, grant_set_state

URL = "/api/v1/generations"


def post(client, licence, *, headers=None, **body):
    if "listing" not in body:
        body.setdefault("model", str(licence.version.pk))
    body.setdefault("prompt", "the quick brown")
    body.setdefault("max_new_tokens", 8)
    return client.post(URL, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {licence.plaintext}", **(headers or {})})


def test_it_generates_text_with_usage_receipt_and_licence_stamp(client, make_licence):
    licence = make_licence()
    response = post(client, licence, seed=3, n=2)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["outputs"]) == 2
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.used_tokens == usage["total_tokens"] and grant.reserved_tokens == 0
    entry = UsageEntry.objects.get(request_id=body["id"])
    assert entry.total_tokens == usage["total_tokens"] and entry.api_key_id == licence.key.pk
    assert entry.receipts.count() == 2 and Receipt.objects.filter(usage_entry=entry).count() == 2
    for output in body["outputs"]:
        check = receipt_verify(jws=output["receipt"]["jws"], text=output["text"], prompt="the quick brown")
        assert check.valid, check.reason
        assert check.claims["grant"] == str(grant.pk) and check.claims["model"]["digest"] == licence.version.digest
    stamp = body["licence"]
    assert stamp["terms_id"] == grant.terms_id and stamp["attribution"] and stamp["samples_publishable"] is True
    assert response["x-ratelimit-limit-requests"] == "1000"
    assert response["x-ratelimit-remaining-tokens"] == str(grant.remaining_tokens)


def test_a_listing_id_serves_its_model_version(client, make_licence):
    licence = make_licence()
    response = post(client, licence, listing=str(licence.version.listing.pk))
    assert response.status_code == 200, response.content


def test_a_bad_or_revoked_key_is_401(client, make_licence):
    licence = make_licence()
    bad = client.post(URL, data=json.dumps({"model": str(licence.version.pk), "prompt": "x"}),
                      content_type="application/json", headers={"Authorization": "Bearer imp_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    missing = client.post(URL, data="{}", content_type="application/json")
    assert missing.status_code == 401
    apikey_revoke(key_id=licence.key.pk, owner=licence.customer)
    revoked = post(client, licence)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_a_suspended_or_expired_licence_is_403_and_the_refusal_is_audited(client, make_licence):
    licence = make_licence()
    grant_set_state(grant_id=licence.grant.pk, state=Grant.State.SUSPENDED, reason="case 7")
    suspended = post(client, licence)
    assert suspended.status_code == 403 and suspended.json()["error"]["code"] == "licence_suspended"
    # Refusals are audited off the chain head (audit.AuditRefusal) and sealed into the chain in batches.
    assert AuditRefusal.objects.filter(event="generation.refused", subject_id=str(licence.grant.pk)).exists()
    other = make_licence()
    Grant.objects.filter(pk=other.grant.pk).update(expires_at=timezone.now() - timezone.timedelta(days=1))
    expired = post(client, other)
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "licence_inactive"
    assert Grant.objects.get(pk=other.grant.pk).used_tokens == 0


def test_a_purpose_the_terms_do_not_permit_is_403(client, make_licence):
    licence = make_licence(uses=["personal"])
    response = post(client, licence, purpose="commercial")
    assert response.status_code == 403 and response.json()["error"]["code"] == "purpose_not_permitted"
    assert post(client, licence, purpose="personal").status_code == 200


def test_the_rate_limit_is_429_with_ratelimit_headers(client, make_licence):
    licence = make_licence(rate_limit_per_minute=2)
    statuses = [post(client, licence, max_new_tokens=2).status_code for _ in range(2)]
    limited = post(client, licence, max_new_tokens=2)
    assert statuses == [200, 200] and limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert limited["x-ratelimit-limit-requests"] == "2" and limited["x-ratelimit-remaining-requests"] == "0"
    assert int(limited["retry-after"]) >= 1 and limited["x-ratelimit-reset-requests"].endswith("s")


def test_an_exhausted_quota_is_402_with_the_remaining_tokens(client, make_licence):
    licence = make_licence(quota={"tokens": 20, "period": "total"})
    response = post(client, licence, max_new_tokens=30)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota" and error["remaining_tokens"] == 20
    assert Grant.objects.get(pk=licence.grant.pk).reserved_tokens == 0


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"max_new_tokens": 126, "prompt": "the quick brown fox"}, 400, "max_new_tokens"),
    ({"prompt": ""}, 400, "prompt"),
    ({"temperature": 80}, 400, "temperature"),
    ({"model": "00000000-0000-0000-0000-000000000000"}, 404, "model"),
    ({"model": "not-a-model"}, 404, "model"),
])
def test_bad_requests_get_400_or_404_with_a_message(client, make_licence, body, status, param):
    licence = make_licence()
    response = post(client, licence, **body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == 0


def test_context_overflow_names_both_numbers(client, make_licence):
    licence = make_licence()
    error = post(client, licence, max_new_tokens=126, prompt="the quick brown fox").json()["error"]
    assert error["code"] == "context_length_exceeded" and error["n_positions"] == 128
    assert error["max_new_tokens"] == 126 and str(error["prompt_tokens"]) in error["message"]


def test_an_idempotent_retry_returns_the_first_result_without_charging_again(client, make_licence):
    licence = make_licence()
    first = post(client, licence, headers={"Idempotency-Key": "retry-1"})
    used = Grant.objects.get(pk=licence.grant.pk).used_tokens
    again = post(client, licence, headers={"Idempotency-Key": "retry-1"})
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == used
    assert UsageEntry.objects.filter(grant=licence.grant).count() == 1
    assert post(client, licence, headers={"Idempotency-Key": "retry-2"}).json()["id"] != first.json()["id"]


def test_each_grant_gets_its_own_watermark(client, make_licence):
    from inference.verification import verification_run

    first, second = make_licence(), make_licence()
    body = post(client, first, max_new_tokens=120, temperature=1.0, ignore_eos=True).json()
    text = body["outputs"][0]["text"]
    scan = verification_run(text=text)["watermark"]
    assert scan["detected"] and scan["grant_id"] == str(first.grant.pk) and scan["candidates"] == 2
    assert scan["licence"]["terms_id"] == first.grant.terms_id
    other = post(client, second, max_new_tokens=120, temperature=1.0, ignore_eos=True).json()["outputs"][0]["text"]
    assert verification_run(text=other)["watermark"]["grant_id"] == str(second.grant.pk)


def test_a_reservation_orphaned_by_a_dead_worker_is_released_by_the_sweep(make_licence):
    from inference.services import GenerationInput, generation_prepare
    from licensing.models import QuotaReservation
    from licensing.quota import quota_reservations_sweep

    licence = make_licence()
    params = GenerationInput(model=str(licence.version.pk), prompt="the quick brown", max_new_tokens=10)
    prepared = generation_prepare(api_key=licence.key, params=params)  # ...and the process dies here
    assert Grant.objects.get(pk=licence.grant.pk).reserved_tokens == prepared.reserved == 13
    assert quota_reservations_sweep() == 0  # not expired yet: a live request keeps its tokens
    QuotaReservation.objects.filter(pk=prepared.request_id).update(expires_at=timezone.now())
    assert quota_reservations_sweep() == 1 and quota_reservations_sweep() == 0
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.reserved_tokens == 0 and grant.used_tokens == 0


def test_a_failing_engine_releases_the_reservation(make_licence, monkeypatch):
    from inference import services
    from inference.errors import ModelUnavailable

    licence = make_licence()

    def broken(*args, **kwargs):
        raise services.engine_module.EngineError("model file unreadable")

    monkeypatch.setattr(services, "generation_submit", broken)
    params = services.GenerationInput(model=str(licence.version.pk), prompt="the quick brown", max_new_tokens=4)
    prepared = services.generation_prepare(api_key=licence.key, params=params)
    with pytest.raises(ModelUnavailable):
        services.generation_execute(prepared)
    grant = Grant.objects.get(pk=licence.grant.pk)
    assert grant.reserved_tokens == 0 and grant.used_tokens == 0 and not UsageEntry.objects.exists()


def test_the_openapi_schema_documents_the_generation_api_and_its_errors(client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).content.decode()
    for path in ("/api/v1/generations", "/api/v1/verifications", "/v1/completions", "/v1/models"):
        assert path in schema
    assert "insufficient_quota" in schema and "bearer" in schema


def test_the_usage_ledger_is_append_only(client, make_licence):
    licence = make_licence()
    entry = UsageEntry.objects.get(request_id=post(client, licence).json()["id"])
    with pytest.raises(PermissionError):
        UsageEntry.objects.filter(pk=entry.pk).update(total_tokens=0)
    entry.total_tokens = 0
    with pytest.raises(PermissionError):
        entry.save()
