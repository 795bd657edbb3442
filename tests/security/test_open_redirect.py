"""The `next` a buyer's form posts only ever leads to a page of this site: another host's address
(absolute or scheme-relative) falls back to the catalogue."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db
ATTACKS = ["https://evil.example/phish", "//evil.example/x", "/\\evil.example/x", "javascript:alert(1)"]


@pytest.fixture
def offer():
    return factories.offer(factories.listing())


@pytest.mark.parametrize("target", ATTACKS)
def test_it_never_follows_next_to_another_site_when_the_box_is_unticked(client, customer, offer, target):
    client.force_login(customer)
    response = client.post(f"/offers/{offer.pk}/buy/", {"next": target})
    assert response.status_code == 302 and response["Location"] == "/models/"


@pytest.mark.parametrize("target", ATTACKS)
def test_it_never_follows_next_to_another_site_when_buying_is_refused(client, customer, offer, target):
    client.force_login(customer)
    response = client.post(f"/offers/{offer.pk}/buy/", {"accept": "on", "accepted_terms": "0" * 64, "next": target})
    assert response.status_code == 302 and response["Location"] == "/models/"


def test_it_still_returns_to_the_model_page_it_came_from(client, customer, offer):
    client.force_login(customer)
    here = f"/models/{offer.listing.pk}/"
    response = client.post(f"/offers/{offer.pk}/buy/", {"next": here})
    assert response.status_code == 302 and response["Location"] == here


def test_over_https_it_does_not_step_down_to_http(client, customer, offer):
    client.force_login(customer)
    response = client.post(f"/offers/{offer.pk}/buy/", {"next": "http://testserver/models/"}, secure=True)
    assert response["Location"] == "/models/"
