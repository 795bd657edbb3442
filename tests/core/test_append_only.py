"""Append-only records (the audit log, the usage ledger, staff decisions) refuse every rewrite."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from audit.services import audit_append
from inference.models import UsageEntry


@pytest.mark.django_db
@pytest.mark.parametrize("model", [AuditEntry, UsageEntry])
def test_bulk_updates_and_deletes_are_refused(model):
    with pytest.raises(PermissionError):
        model.objects.all().update(created_at=None)
    with pytest.raises(PermissionError):
        model.objects.all().delete()


@pytest.mark.django_db
def test_a_saved_row_cannot_be_saved_again_or_deleted():
    entry = audit_append(event="test.once")
    entry.event = "test.rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    assert AuditEntry.objects.get(pk=entry.pk).event == "test.once"
