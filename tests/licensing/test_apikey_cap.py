"""An account holds at most API_KEYS_PER_ACCOUNT_MAX active keys: keys are free, so without a cap
every limit counted per key would be multiplied by as many keys as one cared to create."""

from __future__ import annotations

import json
import threading

import pytest

from licensing.models import ApiKey

KEYS = "/api/v1/licences/keys/"


def create(client, name: str):
    return client.post(KEYS, data=json.dumps({"name": name}), content_type="application/json")


@pytest.mark.django_db
def test_it_refuses_one_key_more_than_the_cap_through_the_api_and_a_revoked_key_frees_its_slot(
        client, customer, settings):
    settings.API_KEYS_PER_ACCOUNT_MAX = 3
    client.force_login(customer)
    created = [create(client, f"key {i}") for i in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]
    refused = create(client, "one more")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "api_key_limit_reached" and error["type"] == "conflict_error"
    assert "at most 3 active API keys" in error["message"]
    assert ApiKey.objects.filter(owner=customer).count() == 3

    revoked = client.post(f"{KEYS}{created[0].json()['id']}/revoke/")
    assert revoked.status_code == 200, revoked.content
    assert create(client, "replacement").status_code == 201
    assert ApiKey.objects.filter(owner=customer, revoked_at__isnull=True).count() == 3


@pytest.mark.django_db
def test_the_keys_page_says_the_cap_is_reached_and_creates_nothing(client, customer, settings):
    settings.API_KEYS_PER_ACCOUNT_MAX = 1
    client.force_login(customer)
    form = {"name": "laptop", "default_purpose": "personal", "scope": "all"}
    assert b"imp_" in client.post("/licences/keys/", form).content
    page = client.post("/licences/keys/", {**form, "name": "second"})
    assert page.status_code == 200
    assert b"at most 1 active API keys" in page.content
    assert list(ApiKey.objects.filter(owner=customer).values_list("name", flat=True)) == ["laptop"]


@pytest.mark.django_db(transaction=True)
def test_two_creations_racing_for_the_last_slot_create_one_key(customer, settings):
    from django.db import connection
    from django.test import Client

    settings.API_KEYS_PER_ACCOUNT_MAX = 2
    from licensing.services import apikey_create

    apikey_create(owner=customer, name="existing")
    start, statuses = threading.Barrier(2), []

    def attempt(name: str):
        client = Client()
        client.force_login(customer)
        try:
            start.wait()
            statuses.append(create(client, name).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"racer {i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409]
    assert ApiKey.objects.filter(owner=customer, revoked_at__isnull=True).count() == 2
