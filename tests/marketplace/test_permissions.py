"""Object-level permissions: a customer cannot use, see the keys of, or download another
customer's grant (pages and API alike: a 404, the same as for an id that does not exist)."""

import pytest
from django.urls import reverse

from licensing.models import ApiKey
from licensing.selectors import apikey_grants
from licensing.services import apikey_authenticate, apikey_create
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_customers(customer, make_user):
    offer = factories.offer(factories.listing())
    mallory = make_user("mallory")
    victim_grant = factories.grant(customer, offer)
    victim_key, _ = apikey_create(owner=customer, name="victim key")
    mallory_grant = factories.grant(mallory, offer)
    return {"victim": customer, "grant": victim_grant, "key": victim_key, "mallory": mallory,
            "mallory_grant": mallory_grant}


@pytest.mark.parametrize("url_name", ["licensing:grant_detail", "licensing:grant_download",
                                      "licensing:api_grant_detail", "licensing:api_grant_download"])
def test_a_customer_cannot_see_or_download_another_customers_grant(client, two_customers, url_name):
    client.force_login(two_customers["mallory"])
    response = client.get(reverse(url_name, args=[two_customers["grant"].pk]))
    assert response.status_code == 404
    assert str(two_customers["grant"].pk) not in response.content.decode()


def test_the_owner_can_download_their_licence(client, two_customers):
    client.force_login(two_customers["victim"])
    response = client.get(reverse("licensing:grant_download", args=[two_customers["grant"].pk]))
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert response.json()["terms_sha256"] == two_customers["grant"].terms_id


def test_a_customer_cannot_see_or_revoke_another_customers_keys(client, two_customers):
    client.force_login(two_customers["mallory"])
    listed = client.get(reverse("licensing:api_key_list")).json()["data"]
    assert listed == []
    assert two_customers["key"].prefix not in client.get(reverse("licensing:api_keys")).content.decode()
    victim_key = two_customers["key"]
    assert client.post(reverse("licensing:api_key_revoke", args=[victim_key.pk])).status_code == 404
    assert client.post(reverse("licensing:key_revoke", args=[victim_key.pk])).status_code == 404
    assert ApiKey.objects.get(pk=victim_key.pk).revoked_at is None


def test_a_customer_cannot_use_another_customers_grant(client, two_customers):
    client.force_login(two_customers["mallory"])
    response = client.post(reverse("licensing:api_key_list"),
                           {"name": "sneaky", "grants": [str(two_customers["grant"].pk)]},
                           content_type="application/json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "grant_not_found"
    _, plaintext = apikey_create(owner=two_customers["mallory"], name="all mine")
    usable = apikey_grants(apikey_authenticate(plaintext))
    assert list(usable) == [two_customers["mallory_grant"]]
    assert two_customers["grant"] not in usable


def test_api_errors_have_the_one_shape(client, two_customers):
    client.force_login(two_customers["mallory"])
    body = client.get(reverse("licensing:api_grant_detail", args=[two_customers["grant"].pk])).json()
    assert set(body["error"]) >= {"type", "code", "message", "param"}
    assert body["error"]["type"] == "not_found_error"


def test_the_openapi_schema_documents_the_marketplace_and_licensing_apis(client, customer):
    client.force_login(customer)
    schema = client.get(reverse("api_schema"), {"format": "json"}).json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"marketplace_catalogue", "marketplace_offer_purchase", "marketplace_order_charge",
            "licences_grant_download", "licences_key_create", "licences_terms_detail"} <= operations
