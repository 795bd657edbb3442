"""Promises of the audit log for compliance: every licence-relevant event is appended; editing any
entry in the database makes `verify_audit_chain` fail and name it; no update or delete path exists,
also not in the Django admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import audit_chain_verify
from compliance.models import Case, CustomerAnswer, Decision, Flag, Report
from licensing.models import Grant
from licensing.services import (
    apikey_revoke,
    grant_set_state,
    grants_expire_due,
)

from tests.compliance.conftest import decide, generate_text, report
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401


def _events() -> set[str]:
    return set(AuditEntry.objects.values_list("event", flat=True))


def test_every_licence_relevant_event_is_appended(client, make_licence, staff_user):
    licence = make_licence()  # terms created, grant created and activated, key created
    apikey_revoke(key_id=licence.key.pk, owner=licence.customer)
    other = make_licence()
    grant_set_state(grant_id=other.grant.pk, state="suspended", reason="dispute opened")
    grant_set_state(grant_id=other.grant.pk, state="revoked", reason="dispute lost")
    third = make_licence()
    Grant.objects.filter(pk=third.grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert grants_expire_due() == 1

    fresh = make_licence()
    text = generate_text(client, fresh)["text"]
    case_id = report(client, text=text).json()["case"]["id"]
    client.force_login(staff_user)
    assert client.get("/compliance/review/").status_code == 200
    decide(client, case_id, "warn", "Attribution missing")

    assert {"terms.created", "grant.created", "grant.activated", "grant.suspended", "grant.revoked",
            "grant.expired", "apikey.created", "apikey.revoked", "report.received", "case.opened",
            "flag.raised", "case.decided", "review.opened"} <= _events()
    decided = AuditEntry.objects.get(event="case.decided")
    assert decided.actor_ref == f"user:{staff_user.pk}" and decided.data["reason"] == "Attribution missing"
    assert audit_chain_verify()[1] is None


def test_opening_the_review_queue_is_logged_once_per_session(client, staff_user):
    client.force_login(staff_user)
    for _ in range(3):
        assert client.get("/compliance/review/").status_code == 200
    opened = AuditEntry.objects.filter(event="review.opened")
    assert opened.count() == 1 and opened.get().actor_ref == f"user:{staff_user.pk}"
    client.logout()
    client.force_login(staff_user)
    client.get("/compliance/review/")
    assert opened.count() == 2


def test_editing_a_decision_entry_in_the_database_makes_verification_fail_and_name_it(
        client, make_licence, staff_user):
    licence = make_licence()
    case_id = report(client, text=generate_text(client, licence)["text"]).json()["case"]["id"]
    client.force_login(staff_user)
    decide(client, case_id, "suspend", "Published samples")
    decide(client, case_id, "reinstate", "Samples taken down")
    call_command("verify_audit_chain")
    entry = AuditEntry.objects.filter(event="case.decided").order_by("id").first()
    later = AuditEntry.objects.filter(id__gt=entry.id).count()
    with connection.cursor() as cursor:  # what someone with database access could do
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET data = %s WHERE id = %s",
                       ['{"action": "dismiss", "reason": "nothing to see"}', entry.id])
    with pytest.raises(CommandError, match=f"broken at entry #{entry.id}: its content"):
        call_command("verify_audit_chain")
    assert later > 0  # entries after it do not hide the edit


def test_editing_any_field_of_any_entry_is_caught(make_licence):
    make_licence(), make_licence()
    ids = list(AuditEntry.objects.order_by("-id").values_list("id", flat=True))
    edits = [("data", '{"n": 1}'), ("event", "tampered.event"), ("actor_ref", "user:999"),
             ("subject_id", "tampered"), ("created_at", "2020-01-01 00:00:00")]
    assert len(ids) > len(edits)
    # Latest entry first: each edit is then the earliest break, the one the check must name.
    for target, (column, value) in zip(ids, edits, strict=False):
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET {column} = %s WHERE id = %s", [value, target])
        with pytest.raises(CommandError, match=f"broken at entry #{target}:"):
            call_command("verify_audit_chain")


def test_decisions_are_append_only_and_the_admin_only_shows_compliance_records(rf, staff_user, make_licence):
    licence = make_licence()
    case = Case.objects.create(grant=licence.grant, customer=licence.customer, model_version=licence.version,
                               source=Case.Source.FLAG, summary="test")
    decision = Decision.objects.create(case=case, staff=staff_user, action="warn", reason="r",
                                       grant_state_after="active")
    decision.reason = "rewritten"
    with pytest.raises(PermissionError):
        decision.save()
    request = rf.get("/")
    request.user = staff_user
    staff_user.is_superuser = True
    for model in (AuditEntry, Case, Flag, Report, Decision, CustomerAnswer):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
