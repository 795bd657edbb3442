"""Promises of the CSV exports: cases and the audit log for a date range, staff only."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEntry
from compliance.models import Case, Severity

from .conftest import decide


def _csv(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def _case(licence, summary: str, days_ago: int = 0) -> Case:
    case = Case.objects.create(grant=licence.grant, customer=licence.customer, model_version=licence.version,
                               source=Case.Source.FLAG, summary=summary, severity=Severity.MEDIUM)
    if days_ago:
        Case.objects.filter(pk=case.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return case


def test_cases_export_holds_the_cases_of_the_range_with_their_last_decision(client, make_licence, staff_user):
    licence = make_licence()
    recent, old = _case(licence, "recent"), _case(licence, "old", days_ago=40)
    client.force_login(staff_user)
    decide(client, recent.pk, "warn", "=HYPERLINK(\"http://evil\")")
    today = timezone.localdate()
    rows = _csv(client.get("/compliance/review/exports/cases.csv",
                           {"start": (today - timedelta(days=7)).isoformat(), "end": today.isoformat()}))
    assert [r["case"] for r in rows] == [str(recent.pk)]
    row = rows[0]
    assert row["last_action"] == "warn" and row["customer"] == licence.customer.username
    assert row["last_reason"].startswith("'=")  # not run as a formula by a spreadsheet
    older = _csv(client.get("/compliance/review/exports/cases.csv",
                            {"start": (today - timedelta(days=60)).isoformat(), "end": today.isoformat()}))
    assert {r["case"] for r in older} == {str(recent.pk), str(old.pk)}
    assert AuditEntry.objects.filter(event="compliance.exported", data__what="cases").count() == 2


def test_audit_export_holds_the_entries_of_the_range_with_their_hashes(client, make_licence, staff_user):
    make_licence()
    client.force_login(staff_user)
    today = timezone.localdate().isoformat()
    rows = _csv(client.get("/compliance/review/exports/audit.csv", {"start": today, "end": today}))
    entries = list(AuditEntry.objects.order_by("id"))
    assert [r["id"] for r in rows] == [str(e.id) for e in entries]
    assert rows[-1]["event"] == "compliance.exported"  # the export is on the record, in itself too
    assert rows[0]["entry_hash"] == entries[0].entry_hash and rows[0]["prev_hash"] == "0" * 64
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert _csv(client.get("/compliance/review/exports/audit.csv", {"start": yesterday, "end": yesterday})) == []


def test_a_bad_range_is_400(client, staff_user, db):
    client.force_login(staff_user)
    for params in ({"start": "2026-13-01"}, {"start": "2026-05-02", "end": "2026-05-01"},
                   {"start": "2020-01-01", "end": "2026-01-01"}):
        assert client.get("/compliance/review/exports/audit.csv", params).status_code == 400, params
