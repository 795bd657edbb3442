"""The verification limit is counted per address and per account: a presented API key only narrows
it. Many keys of one account share one account limit, and keys never lift the address's limit."""

from __future__ import annotations

import json

import pytest

from licensing.services import apikey_create
from tests import factories

VERIFY = "/api/v1/verifications"


def verify(client, *, ip: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(VERIFY, data=json.dumps({"text": "some text"}), content_type="application/json",
                       REMOTE_ADDR=ip, headers=headers)


@pytest.fixture
def many_keys(db):
    """One verified account with five free keys (no grant needed)."""
    owner = factories.user()
    return owner, [apikey_create(owner=owner, name=f"key {i}")[1] for i in range(5)]


def test_many_keys_of_one_account_share_one_account_limit_from_any_address(client, many_keys, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 1000
    settings.COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR = 1000
    settings.COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR = 3
    _owner, keys = many_keys
    statuses = [verify(client, ip=f"192.0.2.{i}", key=key).status_code for i, key in enumerate(keys)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = verify(client, ip="192.0.2.50", key=keys[0])
    assert refused.json()["error"]["code"] == "verification_rate_limited"
    assert "one account" in refused.json()["error"]["message"] and int(refused["Retry-After"]) > 0
    # Someone else, from another address, is not affected.
    assert verify(client, ip="192.0.2.60").status_code == 200


def test_keys_never_lift_the_address_limit(client, many_keys, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 2
    settings.COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR = 1000
    settings.COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR = 1000
    _owner, keys = many_keys
    statuses = [verify(client, ip="203.0.113.70", key=key).status_code for key in keys]
    assert statuses == [200, 200, 429, 429, 429]
    assert "one address" in verify(client, ip="203.0.113.70", key=keys[0]).json()["error"]["message"]
    assert verify(client, ip="203.0.113.70").status_code == 429  # nor does leaving the key off
    assert verify(client, ip="203.0.113.71", key=keys[0]).status_code == 200


def test_a_signed_in_visitor_of_the_page_counts_against_their_account(client, many_keys, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 1000
    settings.COMPLIANCE_VERIFICATIONS_PER_ACCOUNT_PER_HOUR = 2
    owner, keys = many_keys
    assert verify(client, ip="198.51.100.90", key=keys[0]).status_code == 200
    client.force_login(owner)
    assert client.post("/verify/", {"text": "some text"}, REMOTE_ADDR="198.51.100.91").status_code == 200
    page = client.post("/verify/", {"text": "some text"}, REMOTE_ADDR="198.51.100.92")
    assert page.status_code == 429 and b"one account" in page.content
