"""Promises of the listing's "try it" box: the platform's trial grant, a daily budget per visitor."""

from __future__ import annotations

from inference.models import UsageEntry
from inference.receipts import receipt_verify
from inference.trial import PLATFORM_USERNAME
from licensing.models import Grant


def test_a_visitor_gets_a_watermarked_sample_under_the_platform_trial_grant(client, make_licence):
    listing = make_licence().version.listing
    page = client.post(f"/try/{listing.pk}/", {"prompt": "the quick brown"})
    assert page.status_code == 200 and b"Verify this sample" in page.content
    grant = Grant.objects.get(customer__username=PLATFORM_USERNAME, model_version=listing.model_version)
    assert grant.terms.uses == ["personal"] and grant.terms.document["samples"]["publish"] is False
    entry = UsageEntry.objects.get(grant=grant)
    receipt = entry.receipts.get()
    assert receipt_verify(jws=receipt.jws, text=entry.response["outputs"][0]["text"]).valid
    client.post(f"/try/{listing.pk}/", {"prompt": "the lazy dog"})
    assert Grant.objects.filter(customer__username=PLATFORM_USERNAME).count() == 1  # one trial grant


def test_the_trial_stops_at_the_daily_budget_per_visitor(client, make_licence, settings):
    settings.TRIAL_TOKENS_PER_DAY = 52  # one request reserves 3 prompt + 48 new tokens, and spends >= 3
    listing = make_licence().version.listing
    first = client.post(f"/try/{listing.pk}/", {"prompt": "the quick brown"})
    assert b"Verify this sample" in first.content
    second = client.post(f"/try/{listing.pk}/", {"prompt": "the quick brown"})
    assert b"The free trial allows 52 tokens a day" in second.content
    grant = Grant.objects.get(customer__username=PLATFORM_USERNAME)
    assert grant.reserved_tokens == 0 and UsageEntry.objects.filter(grant=grant).count() == 1
    other_visitor = client.__class__().post(f"/try/{listing.pk}/", {"prompt": "the quick brown"})
    assert b"Verify this sample" in other_visitor.content
