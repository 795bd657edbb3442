"""A trainer's whole selling flow through the pages: publish, edit the card, add an offer,
withdraw it, unpublish."""

import pytest
from django.urls import reverse

from marketplace.models import Listing, Offer
from tests import factories

pytestmark = pytest.mark.django_db

OFFER_FORM = {"name": "Research", "fee": "19.99", "currency": "eur", "licence_id": "custom",
              "uses": ["research", "education"], "samples_publish": "on", "attribution": "By Imprint",
              "quota_tokens": "50000", "quota_period": "total", "rate_limit_per_minute": "30",
              "duration_days": "90", "restrictions": "No spam.\nNo impersonation."}


def test_a_trainer_sells_a_model_through_the_pages(client, trainer):
    version = factories.model_version(trainer, dataset_licence="cc0-1.0")
    client.force_login(trainer)
    dashboard = client.get(reverse("marketplace:trainer_dashboard")).content.decode()
    assert str(version.pk) in dashboard  # offered for publishing

    client.post(reverse("marketplace:listing_publish"), {"model_version": str(version.pk), "title": "Haiku"})
    listing = Listing.objects.get()
    edit_url = reverse("marketplace:listing_edit", args=[listing.pk])
    assert version.card in client.get(edit_url).content.decode()
    client.post(edit_url, {"title": "Haiku 2", "description": "Short poems", "card": "# Edited card",
                           "samples": "first sample\n\nsecond sample"})
    listing.refresh_from_db()
    assert (listing.title, listing.samples) == ("Haiku 2", ["first sample", "second sample"])
    assert "\n# Edited card\n" in listing.card  # the edit stays; the licence metadata is restated

    response = client.post(reverse("marketplace:listing_offer_add", args=[listing.pk]), OFFER_FORM)
    assert response.status_code == 302
    offer = Offer.objects.get()
    assert (offer.fee_cents, offer.currency) == (1999, "eur")
    assert offer.terms.document["uses"] == ["research", "education"]
    assert offer.terms.document["restrictions"] == ["No impersonation.", "No spam."]
    public = client.get(reverse("marketplace:listing_detail", args=[listing.pk])).content.decode()
    assert "EUR 19.99" in public and "<h1>Edited card</h1>" in public and "second sample" in public

    client.post(reverse("marketplace:offer_withdraw", args=[offer.pk]))
    assert not Offer.objects.get().active
    client.post(reverse("marketplace:listing_visibility", args=[listing.pk]), {"action": "unpublish"})
    assert not Listing.objects.get().published
    assert "Haiku 2" not in client.get(reverse("marketplace:catalogue")).content.decode()


def test_a_trainer_cannot_edit_someone_elses_listing(client, make_user):
    listing = factories.listing(title="Not yours")
    intruder = make_user("ivy", trainer=True)
    client.force_login(intruder)
    assert client.get(reverse("marketplace:listing_edit", args=[listing.pk])).status_code == 404
    assert client.post(reverse("marketplace:listing_visibility", args=[listing.pk]),
                       {"action": "unpublish"}).status_code == 404
    assert Listing.objects.get(pk=listing.pk).published


def test_order_and_terms_pages_render(client, customer, offer, payments_test_mode):
    from marketplace.services import order_create

    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address=None, provider="local_test")
    client.force_login(customer)
    page = client.get(reverse("marketplace:order_detail", args=[order.pk])).content.decode()
    assert "local test mode" in page and "pending" in page
    assert client.get(reverse("marketplace:order_status", args=[order.pk])).json()["state"] == "pending"
    terms_page = client.get(reverse("licensing:terms_text", args=[offer.terms_id])).content.decode()
    assert "IMPRINT MODEL LICENCE" in terms_page and offer.terms_id in terms_page
