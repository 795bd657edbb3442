"""API keys are shown once, at creation, and never again: not on later pages, not in the API, not
in logs, not in the audit log."""

import logging
import re

import pytest

from audit.models import AuditEntry
from licensing.models import ApiKey
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.inference.test_generation_api import post

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_and_never_logged(client, customer, make_licence, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(customer)
    created = client.post("/licences/keys/", {"name": "laptop", "default_purpose": "personal", "scope": "all"},
                          follow=True)
    plaintext = re.search(r"imp_[A-Za-z0-9_-]{20,}", created.content.decode()).group(0)
    key = ApiKey.objects.get(owner=customer, name="laptop")
    assert key.key_hash != plaintext and plaintext.startswith(key.prefix)

    later = client.get("/licences/keys/").content.decode()
    assert key.prefix in later and plaintext not in later
    listed = client.get("/api/v1/licences/keys/")
    assert listed.status_code == 200 and key.prefix in listed.content.decode()
    assert plaintext not in listed.content.decode()

    licence = make_licence()  # a key in use: generation with it, and a refused request with a bad one
    assert post(client, licence).status_code == 200
    assert post(client, licence, headers={"Authorization": f"Bearer {licence.plaintext}x"}).status_code == 401
    for secret in (plaintext, licence.plaintext):
        assert secret not in caplog.text
        assert not any(secret in str(entry.data) for entry in AuditEntry.objects.all())
