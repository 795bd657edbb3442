"""A confirmed e-mail address is needed to buy a licence or create an API key, and every e-mailed
link is built from SITE_URL, whatever Host header the request carried."""

import json
import re

import pytest
from django.core import mail

from licensing.models import ApiKey
from marketplace.models import Order
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def unverified(make_user):
    return make_user("ursula", verified=False)


def test_an_unverified_customer_cannot_buy_a_licence_on_the_page_or_the_api(client, unverified):
    offer = factories.offer(factories.listing())
    client.force_login(unverified)
    page = client.post(f"/offers/{offer.pk}/buy/", {"accept": "on", "accepted_terms": offer.terms_id}, follow=True)
    assert "Confirm your e-mail address" in page.content.decode()
    assert "http://testserver.imprint/account/" in page.content.decode()

    api = client.post(f"/api/v1/marketplace/offers/{offer.pk}/purchase/", data=json.dumps(
        {"accepted_terms_sha256": offer.terms_id}), content_type="application/json")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "email_not_verified"
    assert api.json()["error"]["verify_url"] == "http://testserver.imprint/account/"
    assert not Order.objects.filter(customer=unverified).exists()


def test_an_unverified_customer_cannot_create_an_api_key_on_the_page_or_the_api(client, unverified):
    client.force_login(unverified)
    page = client.post("/licences/keys/", {"name": "laptop", "scope": "all", "default_purpose": "personal"})
    assert "Confirm your e-mail address" in page.content.decode()
    assert "imp_" not in page.content.decode()

    api = client.post("/api/v1/licences/keys/", data=json.dumps({"name": "laptop"}), content_type="application/json")
    assert api.status_code == 403 and api.json()["error"]["code"] == "email_not_verified"
    assert not ApiKey.objects.filter(owner=unverified).exists()


def test_once_confirmed_the_customer_buys_and_creates_keys(client, unverified, django_capture_on_commit_callbacks):
    client.force_login(unverified)
    client.post("/account/verify-again/")
    link = re.search(r"https?://\S+/account/verify/\S+/", mail.outbox[0].body).group(0)
    client.get(link.removeprefix("http://testserver.imprint"))
    offer = factories.offer(factories.listing())
    response = client.post(f"/offers/{offer.pk}/buy/", {"accept": "on", "accepted_terms": offer.terms_id})
    assert response.status_code == 302 and Order.objects.filter(customer=unverified).exists()
    api = client.post("/api/v1/licences/keys/", data=json.dumps({"name": "laptop"}), content_type="application/json")
    assert api.status_code == 201


def test_a_password_reset_link_ignores_a_forged_host_header(client, customer):
    client.post("/account/password-reset/", {"email": customer.email}, headers={"host": "attacker.example"})
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "attacker.example" not in body
    assert re.search(r"http://testserver\.imprint/account/reset/\S+/\S+/", body)


def test_a_verification_link_ignores_a_forged_host_header(client, unverified):
    client.force_login(unverified)
    client.post("/account/verify-again/", headers={"host": "attacker.example"})
    assert "attacker.example" not in mail.outbox[0].body
    assert "http://testserver.imprint/account/verify/" in mail.outbox[0].body


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = "http://testserver.imprint"
