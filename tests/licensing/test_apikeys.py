"""API keys are shown once, stored as a hash with a visible prefix, scoped, and revocable."""

import hashlib

import pytest

from licensing.errors import ApiKeyInvalid, ApiKeyNotFound, GrantNotOwned
from audit.models import AuditEntry
from licensing.models import ApiKey
from licensing.selectors import apikey_grants
from licensing.services import apikey_authenticate, apikey_create, apikey_revoke
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_plaintext_is_only_returned_and_only_its_hash_is_stored(customer):
    key, plaintext = apikey_create(owner=customer, name="laptop")
    stored = ApiKey.objects.get(pk=key.pk)
    assert plaintext.startswith("imp_") and len(plaintext) > 40
    assert stored.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(stored.prefix)
    assert plaintext not in str([getattr(stored, f.attname) for f in ApiKey._meta.fields])
    assert AuditEntry.objects.filter(event="apikey.created", subject_id=str(key.pk)).exists()


def test_authenticate_finds_the_key_and_records_last_use(customer):
    key, plaintext = apikey_create(owner=customer, name="server")
    assert ApiKey.objects.get(pk=key.pk).last_used_at is None
    assert apikey_authenticate(plaintext).pk == key.pk
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None


@pytest.mark.parametrize("plaintext", ["", "imp_unknown", "sk_live_whatever"])
def test_unknown_keys_are_refused(plaintext):
    with pytest.raises(ApiKeyInvalid):
        apikey_authenticate(plaintext)


def test_revoked_keys_are_refused(customer):
    key, plaintext = apikey_create(owner=customer, name="old")
    apikey_revoke(key_id=key.pk, owner=customer)
    with pytest.raises(ApiKeyInvalid, match="revoked"):
        apikey_authenticate(plaintext)


def test_nobody_revokes_someone_elses_key(customer, make_user):
    key, _ = apikey_create(owner=customer, name="mine")
    with pytest.raises(ApiKeyNotFound):
        apikey_revoke(key_id=key.pk, owner=make_user("mallory"))
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_keys_are_scoped_to_all_or_some_of_the_owners_grants(customer):
    lst = factories.listing()
    off = factories.offer(lst)
    g1, g2 = factories.grant(customer, off), factories.grant(customer, off)
    all_key, _ = apikey_create(owner=customer, name="all")
    one_key, _ = apikey_create(owner=customer, name="one", grants=[g1])
    assert set(apikey_grants(all_key)) == {g1, g2}
    assert list(apikey_grants(one_key)) == [g1]


def test_a_key_cannot_be_scoped_to_another_customers_grant(customer, make_user):
    other = make_user("olga")
    foreign = factories.grant(other, factories.offer(factories.listing()))
    with pytest.raises(GrantNotOwned):
        apikey_create(owner=customer, name="sneaky", grants=[foreign])
    assert not ApiKey.objects.filter(owner=customer).exists()
