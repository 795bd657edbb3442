"""The audit log is an append-only hash chain; verification names the first broken entry."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditEntry
from audit.services import GENESIS_HASH, audit_append, audit_chain_verify


@pytest.mark.django_db
def test_each_entry_links_to_the_previous_one(customer):
    first = audit_append(event="test.one", actor=customer, data={"n": 1})
    second = audit_append(event="test.two", subject=customer, data={"n": 2})
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.entry_hash
    assert first.actor_ref == f"user:{customer.pk}"
    assert audit_chain_verify() == (2, None)


@pytest.mark.django_db
def test_there_is_no_update_or_delete_path():
    entry = audit_append(event="test.one")
    entry.event = "test.changed"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(event="x")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()


@pytest.mark.django_db
def test_the_admin_cannot_add_change_or_delete_entries(staff_user, rf):
    from django.contrib import admin

    model_admin = admin.site._registry[AuditEntry]
    request = rf.get("/")
    request.user = staff_user
    staff_user.is_superuser = True
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def _tamper(sql: str, params) -> None:
    # Bypasses the model on purpose: this is what an attacker with database access could do.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


EDITED = ("UPDATE {table} SET data = %s WHERE id = %s", ['{"n": 99}'], "broken at entry #{id}: its content")
REMOVED = ("DELETE FROM {table} WHERE id = %s", [], "broken at entry #{id}: entry #{id} is missing")
TRUNCATED = ("DELETE FROM {table} WHERE id = %s", [], "entry #{id}")


@pytest.mark.django_db
@pytest.mark.parametrize(("count", "target", "tampering"), [(5, 2, EDITED), (4, 1, REMOVED), (3, 2, TRUNCATED)],
                         ids=["an edited entry", "a removed entry", "a truncated tail"])
def test_verify_audit_chain_names_the_first_tampered_entry(count, target, tampering):
    sql, params, message = tampering
    entries = [audit_append(event="test.step", data={"n": n}) for n in range(count)]
    call_command("verify_audit_chain")
    entry_id = entries[target].id
    _tamper(sql.format(table=AuditEntry._meta.db_table), [*params, entry_id])
    with pytest.raises(CommandError, match=message.format(id=entry_id)):
        call_command("verify_audit_chain")


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_never_fork_the_chain():
    def append_many():
        try:
            for n in range(10):
                audit_append(event="test.parallel", data={"n": n})
        finally:
            connection.close()

    threads = [threading.Thread(target=append_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert audit_chain_verify() == (40, None)
    assert AuditEntry.objects.values("prev_hash").distinct().count() == 40
