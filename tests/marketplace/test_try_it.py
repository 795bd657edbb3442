"""The model page's "try it" box: real generation with a tiny model under the platform's trial
grant, metered in the ledger, limited to a few free tokens per visitor per day."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from licensing.models import Grant
from licensing.services import TRIAL_USERNAME
from tests import factories
from training.models import ModelVersion

TEXTS = ["the quick brown fox jumps over the lazy dog and rivers run past old stone bridges."] * 20


@pytest.fixture(scope="session")
def tiny_in_storage(tmp_path_factory):
    from training.artifacts import folder_upload, manifest_digest
    from training.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("try-it") / "model", TEXTS)
    manifest = folder_upload(folder, "models/marketplace-tests/tiny")
    return {"prefix": "models/marketplace-tests/tiny", "manifest": manifest, "digest": manifest_digest(manifest)}


@pytest.fixture
def tiny_listing(db, trainer, tiny_in_storage):
    listing = factories.listing(trainer, title="Tiny model")
    ModelVersion.objects.filter(pk=listing.model_version_id).update(
        storage_prefix=tiny_in_storage["prefix"], digest=tiny_in_storage["digest"], n_positions=128,
        files=tiny_in_storage["manifest"])
    # Budgets of earlier runs today (a shared cache) are not this test's.
    cache.clear()
    return listing


@pytest.mark.django_db
def test_a_visitor_tries_the_model_within_a_daily_budget_metered_under_the_trial_grant(client, tiny_listing, settings):
    from inference.models import UsageEntry

    settings.TRY_IT_TOKENS_PER_VISITOR_PER_DAY = 40
    url = reverse("marketplace:listing_try", args=[tiny_listing.pk])
    first = client.post(url, {"prompt": "the quick brown"})
    body = first.json()
    assert first.status_code == 200, body
    assert isinstance(body["text"], str) and body["usage"]["completion_tokens"] > 0
    assert body["remaining"] == 40 - body["usage"]["total_tokens"]
    trial = Grant.objects.get(customer__username=TRIAL_USERNAME, model_version=tiny_listing.model_version)
    assert trial.terms.uses == ["personal"] and trial.state == Grant.State.ACTIVE
    entry = UsageEntry.objects.get(grant=trial)
    assert trial.used_tokens == entry.total_tokens == body["usage"]["total_tokens"]

    while client.post(url, {"prompt": "the quick brown"}).status_code == 200:
        pass
    refused = client.post(url, {"prompt": "the quick brown"})
    assert refused.status_code == 429 and "today's free tokens" in refused.json()["error"]["message"]
    # Another visitor (another address) still has a budget of their own.
    assert client.post(url, {"prompt": "the quick brown"}, REMOTE_ADDR="10.9.8.7").status_code == 200


@pytest.mark.django_db
def test_the_try_it_box_is_on_the_model_page_and_refuses_empty_prompts(client, tiny_listing):
    page = client.get(reverse("marketplace:listing_detail", args=[tiny_listing.pk])).content.decode()
    assert 'id="try-it"' in page and "300</span> left for you today" in page
    response = client.post(reverse("marketplace:listing_try", args=[tiny_listing.pk]), {"prompt": "  "})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_prompt"


def _trial_tokens_used(listing) -> int:
    from django.db.models import Sum

    from inference.models import UsageEntry

    return UsageEntry.objects.filter(grant__customer__username=TRIAL_USERNAME,
                                     grant__model_version=listing.model_version).aggregate(
        total=Sum("total_tokens"))["total"] or 0


@pytest.mark.django_db(transaction=True)
def test_parallel_tries_never_spend_more_than_the_daily_budget(tiny_listing, settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.test import Client

    settings.TRY_IT_TOKENS_PER_VISITOR_PER_DAY = 40
    settings.TRY_IT_MAX_CONCURRENT = 10
    url = reverse("marketplace:listing_try", args=[tiny_listing.pk])

    def attempt(_):
        try:
            return Client().post(url, {"prompt": "the quick brown"}, REMOTE_ADDR="203.0.113.77").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(attempt, range(6)))
    assert 200 in statuses and set(statuses) <= {200, 429}, statuses
    assert 0 < _trial_tokens_used(tiny_listing) <= 40


@pytest.mark.django_db(transaction=True)
def test_the_trial_takes_a_bounded_share_of_the_engine_and_says_busy_beyond_it(tiny_listing, settings, monkeypatch):
    import threading

    from django.db import connection
    from django.test import Client

    from marketplace import try_it

    settings.TRY_IT_MAX_CONCURRENT = 1
    url = reverse("marketplace:listing_try", args=[tiny_listing.pk])
    entered, release, calls = threading.Event(), threading.Event(), []
    real_execute = try_it.generation_execute

    def held_execute(prepared, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first generation stays in the engine until the test lets it go
            entered.set()
            release.wait(30)
        return real_execute(prepared, **kwargs)

    monkeypatch.setattr(try_it, "generation_execute", held_execute)
    first = {}

    def slow_visitor():
        try:
            first["status"] = Client().post(url, {"prompt": "the quick"}, REMOTE_ADDR="203.0.113.1").status_code
        finally:
            connection.close()

    thread = threading.Thread(target=slow_visitor)
    thread.start()
    try:
        assert entered.wait(30)
        busy = Client().post(url, {"prompt": "the quick"}, REMOTE_ADDR="203.0.113.2")
    finally:
        release.set()
        thread.join(60)
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "try_it_busy"
    assert busy["Retry-After"]
    assert first["status"] == 200
    # The slot is given back: the next visitor is served.
    assert Client().post(url, {"prompt": "the quick"}, REMOTE_ADDR="203.0.113.3").status_code == 200


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_visitor_has_a_budget_a_forged_header_cannot_reset(client, tiny_listing,
                                                                                         settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRY_IT_TOKENS_PER_VISITOR_PER_DAY = 40
    url = reverse("marketplace:listing_try", args=[tiny_listing.pk])
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    while client.post(url, {"prompt": "the quick brown"}, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy
                      ).status_code == 200:
        pass
    forged = client.post(url, {"prompt": "the quick brown"}, HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.5", **proxy)
    assert forged.status_code == 429 and forged.json()["error"]["code"] == "try_it_limit"
    other = client.post(url, {"prompt": "the quick brown"}, HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy)
    assert other.status_code == 200
