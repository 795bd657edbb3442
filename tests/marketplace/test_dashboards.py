"""Customer and trainer pages: licences with remaining quota and spend, API keys shown once,
and the trainer's dashboard with sales, active grants and revenue per model over time."""

import re

import pytest
from django.urls import reverse

from licensing.models import ApiKey, Grant
from marketplace.services import order_create, order_pay_local_test
from tests import factories

pytestmark = pytest.mark.django_db


def _buy(customer, offer):
    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address=None, provider="local_test")
    return order_pay_local_test(order_id=order.pk, customer=customer, card_number="4242424242424242")


def test_my_licences_shows_remaining_quota_and_spend(client, customer, offer):
    order = _buy(customer, offer)
    Grant.objects.filter(pk=order.grant_id).update(used_tokens=30_000, reserved_tokens=5_000)
    client.force_login(customer)
    page = client.get(reverse("marketplace:customer_home")).content.decode()
    assert "65000 of 100000 tokens this month" in page
    assert "USD 25.00" in page
    assert offer.listing.title in page  # the model by its one name: the listing title, not the version's


def test_api_keys_are_shown_once_and_can_be_scoped_and_revoked(client, customer, offer):
    grant = _buy(customer, offer).grant
    client.force_login(customer)
    created = client.post(reverse("licensing:api_keys"), {"name": "laptop", "default_purpose": "research",
                                                            "scope": "some", "grants": [str(grant.pk)]})
    plaintext = re.search(r"<code[^>]*>(imp_[^<]+)</code>", created.content.decode()).group(1)
    assert created["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(owner=customer)
    assert not key.all_grants and list(key.grants.all()) == [grant] and key.default_purpose == "research"
    listing = client.get(reverse("licensing:api_keys")).content.decode()
    assert plaintext not in listing and key.prefix in listing and "never" in listing

    client.post(reverse("licensing:key_revoke", args=[key.pk]))
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_the_api_returns_a_new_key_once(client, customer):
    client.force_login(customer)
    created = client.post(reverse("licensing:api_key_list"), {"name": "ci"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["key"].startswith("imp_")
    listed = client.get(reverse("licensing:api_key_list")).json()["data"]
    assert [k["name"] for k in listed] == ["ci"] and "key" not in listed[0]


def test_the_trainer_dashboard_plots_sales_active_grants_and_revenue_per_model(client, trainer, customer, make_user):
    first = factories.offer(factories.listing(trainer, title="Alpha model"), fee_cents=1000)
    second = factories.offer(factories.listing(trainer, title="Beta model"), fee_cents=5000)
    _buy(customer, first)
    _buy(customer, second)
    _buy(make_user("cleo"), second)
    client.force_login(trainer)
    page = client.get(reverse("marketplace:trainer_dashboard")).content.decode()
    assert page.count("<svg") == 4
    assert 'aria-label="Sales per day"' in page and 'aria-label="Active grants"' in page
    assert "<title>Alpha model</title>" in page and "<title>Beta model</title>" in page
    # 11,000 cents gross, 20 % platform fee: 2,200 to the platform, 8,800 owed to the trainer.
    assert "USD 110.00" in page and "USD 22.00" in page and "USD 88.00" in page


def test_the_trainer_dashboard_is_for_trainers(client, customer):
    client.force_login(customer)
    assert client.get(reverse("marketplace:trainer_dashboard")).status_code == 403


def _usage(grant, tokens: int, request_id: str):
    from inference.models import UsageEntry

    return UsageEntry.objects.create(request_id=request_id, grant=grant, model_digest=grant.model_version.digest,
                                     purpose="personal", prompt_tokens=0, completion_tokens=tokens,
                                     total_tokens=tokens)


def test_metered_use_is_shown_as_an_estimate_rounded_to_the_cent(client, customer, trainer):
    from marketplace.selectors import metered_estimate_cents

    assert metered_estimate_cents(1234, 25) == 31  # 30.85 cents → 31
    assert metered_estimate_cents(1000, 25) == 25
    offer = factories.offer(factories.listing(trainer, title="Metered model"), fee_cents=500, metered=25)
    grant = _buy(customer, offer).grant
    _usage(grant, 1000, "r1")
    _usage(grant, 234, "r2")
    client.force_login(customer)
    page = client.get(reverse("marketplace:customer_home")).content.decode()
    assert "1234 tokens ≈ USD 0.31" in page
    client.force_login(trainer)
    dashboard = client.get(reverse("marketplace:trainer_dashboard")).content.decode()
    assert 'aria-label="Tokens generated per model per day"' in dashboard
    assert f"<title>{grant.model_version.name}</title>" in dashboard
