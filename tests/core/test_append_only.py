"""Append-only records refuse every rewrite: the base serves the usage ledger as it serves the audit
log (tests/audit) and staff decisions (tests/audit/test_audit_log.py)."""

from __future__ import annotations

import pytest

from inference.models import UsageEntry


@pytest.mark.django_db
def test_the_usage_ledger_refuses_bulk_updates_and_deletes():
    with pytest.raises(PermissionError):
        UsageEntry.objects.all().update(total_tokens=0)
    with pytest.raises(PermissionError):
        UsageEntry.objects.all().delete()
