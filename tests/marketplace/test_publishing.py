"""Trainers publish their own succeeded model versions; unpublishing hides a listing from buyers
without breaking the grants already sold."""

import pytest
from django.urls import reverse

from licensing.models import Grant
from licensing.selectors import apikey_grants
from licensing.services import apikey_authenticate, apikey_create
from marketplace.errors import ModelVersionNotOwned, ModelVersionNotReady
from marketplace.models import Listing
from marketplace.services import listing_publish, listing_unpublish
from tests import factories

pytestmark = pytest.mark.django_db


def test_a_trainer_publishes_their_own_succeeded_model_version(client, trainer):
    version = factories.model_version(trainer)
    client.force_login(trainer)
    response = client.post(reverse("marketplace:listing_publish"),
                           {"model_version": str(version.pk), "title": "Poems", "description": "Short poems."})
    listing = Listing.objects.get(model_version=version)
    assert response.status_code == 302 and listing.published and version.card in listing.card
    assert listing.trainer == trainer
    link = f'<a href="{reverse("marketplace:listing_detail", args=[listing.pk])}">Poems</a>'
    assert link not in client.get(reverse("marketplace:catalogue")).content.decode()  # a draft until it has an offer
    factories.offer(listing)
    page = client.get(reverse("marketplace:catalogue")).content.decode()
    assert link in page


def test_a_trainer_cannot_publish_someone_elses_model_version(client, trainer, make_user):
    other = make_user("otto", trainer=True)
    foreign = factories.model_version(other)
    with pytest.raises(ModelVersionNotOwned):
        listing_publish(trainer=trainer, model_version_id=foreign.pk, title="Mine now")
    client.force_login(trainer)
    page = client.post(reverse("marketplace:listing_publish"), {"model_version": str(foreign.pk), "title": "x"})
    api = client.post(reverse("marketplace:api_listing_publish"), {"model_version": str(foreign.pk), "title": "x"},
                      content_type="application/json")
    assert page.status_code == 404
    assert api.status_code == 404 and api.json()["error"]["code"] == "model_version_not_found"
    assert not Listing.objects.exists()


def test_only_versions_of_succeeded_jobs_can_be_published(trainer):
    running = factories.model_version(trainer, job_state="running")
    with pytest.raises(ModelVersionNotReady):
        listing_publish(trainer=trainer, model_version_id=running.pk, title="Too early")


def test_customers_cannot_publish(client, customer):
    client.force_login(customer)
    response = client.post(reverse("marketplace:api_listing_publish"), {"model_version": "x", "title": "x"},
                           content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "trainer_role_required"


def test_unpublished_listings_are_invisible_but_existing_grants_keep_working(client, trainer, customer):
    listing = factories.listing(trainer, title="Vanishing model")
    offer = factories.offer(listing)
    grant = factories.grant(customer, offer)
    _key, plaintext = apikey_create(owner=customer, name="prod")

    listing_unpublish(trainer=trainer, listing_id=listing.pk)

    assert "Vanishing model" not in client.get(reverse("marketplace:catalogue")).content.decode()
    assert client.get(reverse("marketplace:listing_detail", args=[listing.pk])).status_code == 404
    assert client.get(reverse("marketplace:api_listing_detail", args=[listing.pk])).status_code == 404
    assert client.get(reverse("marketplace:api_catalogue")).json()["data"] == []
    # Buying is no longer possible...
    client.force_login(customer)
    client.post(reverse("marketplace:offer_buy", args=[offer.pk]), {"accept": "1", "accepted_terms": offer.terms_id})
    assert not listing.model_version.grants.exclude(pk=grant.pk).exists()
    # ...but the grant already sold is still active and usable with the customer's key.
    grant.refresh_from_db()
    assert grant.state == Grant.State.ACTIVE
    assert list(apikey_grants(apikey_authenticate(plaintext))) == [grant]
    assert client.get(reverse("licensing:grant_detail", args=[grant.pk])).status_code == 200
    assert client.get(reverse("licensing:api_grant_detail", args=[grant.pk])).json()["state"] == "active"


def test_publishing_again_shows_the_listing_again(trainer):
    listing = factories.listing(trainer, title="Back again")
    listing_unpublish(trainer=trainer, listing_id=listing.pk)
    listing_publish(trainer=trainer, model_version_id=listing.model_version_id, title="Back again")
    assert Listing.objects.get(pk=listing.pk).published
