"""A deactivated account is locked out of the API too: its keys are refused and the attempt is
audited."""

import json

import pytest

from audit.models import AuditEntry
from tests.inference.conftest import make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def _generations(client, licence):
    return client.post("/api/v1/generations", content_type="application/json",
                       data=json.dumps({"model": str(licence.version.pk), "prompt": "the quick", "max_new_tokens": 4}),
                       headers={"Authorization": f"Bearer {licence.plaintext}"})


def _completions(client, licence):
    return client.post("/v1/completions", content_type="application/json",
                       data=json.dumps({"model": str(licence.version.pk), "prompt": "the quick", "max_tokens": 4}),
                       headers={"Authorization": f"Bearer {licence.plaintext}"})


def test_a_deactivated_owners_key_is_refused_and_audited(client, make_licence):  # noqa: F811
    licence = make_licence()
    assert _generations(client, licence).status_code == 200  # the key works while the owner is active
    licence.customer.is_active = False
    licence.customer.save(update_fields=["is_active"])

    for call in (_generations, _completions):
        response = call(client, licence)
        assert response.status_code == 401, (call.__name__, response.content)
        error = response.json()["error"]
        assert error["code"] == "account_inactive"
        assert "deactivated" in error["message"]
    entries = AuditEntry.objects.filter(event="apikey.used_by_inactive_account", subject_id=str(licence.key.pk))
    assert entries.count() == 2
    assert entries.first().data["prefix"] == licence.key.prefix
