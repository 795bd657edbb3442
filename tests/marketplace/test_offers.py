"""Offers: validated terms and prices, the inheritance check, immutability once sold, and the
stable per-version terms URLs (JSON, with the human text beside it)."""

import hashlib

import pytest
from django.urls import reverse

from licensing.models import Grant
from marketplace.errors import PriceInvalid
from marketplace.models import Offer
from marketplace.services import offer_create, offer_revise
from tests import factories

pytestmark = pytest.mark.django_db


def _create(client, listing, **overrides):
    body = {"name": "Standard", "terms": factories.terms_raw(), "fee_cents": 2500, "currency": "usd"}
    body.update(overrides)
    return client.post(reverse("marketplace:api_offer_create", args=[listing.pk]), body,
                       content_type="application/json")


def test_each_bad_terms_field_gets_its_message_through_the_api(client, trainer, listing):
    client.force_login(trainer)
    response = _create(client, listing, terms=factories.terms_raw(uses=[], quota={"tokens": -1, "period": "month"}))
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "invalid_terms"
    assert error["fields"] == {"uses": "Choose at least one permitted use.",
                               "quota": "The token quota must be a whole number from 1 to 1000000000000."}
    assert not Offer.objects.exists()


def test_the_offer_form_shows_each_message_beside_the_page(client, trainer, listing):
    client.force_login(trainer)
    form = {"name": "Bad", "fee": "25", "currency": "usd", "licence_id": "custom", "samples_publish": "on",
            "samples_resell": "on", "attribution": "x", "quota_tokens": "1000", "quota_period": "month",
            "rate_limit_per_minute": "10", "restrictions": ""}
    page = client.post(reverse("marketplace:listing_offer_add", args=[listing.pk]), form)
    assert page.status_code == 400 and "Choose at least one permitted use." in page.content.decode()


def test_commercial_offers_on_non_commercial_data_are_refused_with_the_reason(client, trainer):
    listing = factories.listing(trainer, dataset_licence="cc-by-nc-4.0")
    client.force_login(trainer)
    response = _create(client, listing, terms=factories.terms_raw(uses=["commercial"]))
    error = response.json()["error"]
    assert error["code"] == "licence_inheritance" and error["param"] == "dataset_licence"
    assert "cc-by-nc-4.0, which forbids commercial use" in error["message"]


@pytest.mark.parametrize(("fee", "metered", "message"), [
    (0, None, "needs a one-time fee, a metered price, or both"),
    (10, None, "at least 50 cents"),
    (-5, None, "whole number of cents"),
])
def test_prices_are_validated(trainer, listing, fee, metered, message):
    with pytest.raises(PriceInvalid, match=message):
        offer_create(trainer=trainer, listing_id=listing.pk, name="x", terms=factories.terms_raw(),
                     fee_cents=fee, metered_cents_per_1k=metered)


def test_a_trainer_cannot_add_offers_to_someone_elses_listing(client, make_user, listing):
    intruder = make_user("ivan", trainer=True)
    client.force_login(intruder)
    assert _create(client, listing).status_code == 404


def test_an_unsold_offer_is_revised_in_place(trainer, offer):
    revised = offer_revise(trainer=trainer, offer_id=offer.pk, terms=factories.terms_raw(rate_limit_per_minute=5),
                           fee_cents=3000)
    assert revised.pk == offer.pk and revised.version == 1 and revised.fee_cents == 3000
    assert revised.terms.document["rate_limit_per_minute"] == 5


def test_terms_are_immutable_after_a_sale_a_change_makes_a_new_version(trainer, customer, offer,
                                                                       payments_test_mode):
    from marketplace.services import order_create, order_pay_local_test

    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address="10.0.0.1", provider="local_test")
    order_pay_local_test(order_id=order.pk, customer=customer, card_number="4242424242424242")
    sold_terms = offer.terms_id

    new = offer_revise(trainer=trainer, offer_id=offer.pk, terms=factories.terms_raw(rate_limit_per_minute=5),
                       fee_cents=2500)
    old = Offer.objects.get(pk=offer.pk)
    assert new.pk != old.pk and new.version == 2 and new.supersedes == old
    assert not old.active and old.terms_id == sold_terms and new.terms_id != sold_terms
    grant = Grant.objects.get(customer=customer)
    assert grant.terms_id == sold_terms and grant.terms.document["rate_limit_per_minute"] == 60
    assert grant.acceptance.ip_address == "10.0.0.1"


def test_machine_readable_terms_live_at_a_stable_url_with_the_text_beside_them(client, offer):
    json_url = reverse("licensing:terms_json", args=[offer.terms_id])
    body = client.get(json_url).json()
    assert body["sha256"] == offer.terms_id
    assert hashlib.sha256(body["canonical"].encode()).hexdigest() == offer.terms_id
    assert body["terms"]["uses"] == ["personal", "research"]
    text = client.get(reverse("licensing:terms_text", args=[offer.terms_id]), {"format": "txt"})
    assert text["Content-Type"].startswith("text/plain") and f"terms {offer.terms_id}" in text.content.decode()
    assert client.get(body["text_url"]).status_code == 200
    assert client.get(reverse("licensing:terms_json", args=["0" * 64])).status_code == 404
