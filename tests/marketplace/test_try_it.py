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
