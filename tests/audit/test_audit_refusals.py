"""Refused generations are audited without queueing behind the chain head, sealed into the chain in
tamper-evident batches, and compliance still hears of each one as it happens."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test import Client

import audit.services
from audit.models import AuditEntry, AuditRefusal
from audit.signals import entry_appended
from compliance.models import Flag
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401
from tests.inference.test_generation_api import post

REFUSALS, CLIENTS = 200, 20


def _sql(sql: str, params=()) -> None:
    # Bypasses the models on purpose: this is what an attacker with database access could do.
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))


@pytest.fixture
def head_locks(monkeypatch):
    """How many times the chain head was locked (every chained append takes it once)."""
    taken = []
    locked_head = audit.services._locked_head

    def counting():
        taken.append(1)
        return locked_head()

    monkeypatch.setattr(audit.services, "_locked_head", counting)
    return taken


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_refusals_from_many_clients_never_take_the_chain_head(make_licence, head_locks):
    licence = make_licence(uses=["personal"])
    heard, lock = [], threading.Lock()

    def listen(sender, entry, **kwargs):
        if entry.event == "generation.refused":
            with lock:
                heard.append(entry.pk)

    entry_appended.connect(listen, dispatch_uid="test.refusals")
    chained_before = AuditEntry.objects.count()
    head_locks.clear()  # the licence's own entries

    def client_loop(statuses):
        http = Client()
        try:
            for _ in range(REFUSALS // CLIENTS):
                statuses.append(post(http, licence, purpose="commercial").status_code)
        finally:
            connections.close_all()

    statuses: list[int] = []
    threads = [threading.Thread(target=client_loop, args=(statuses,)) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        entry_appended.disconnect(dispatch_uid="test.refusals")
    assert statuses == [403] * REFUSALS
    assert Flag.objects.count() == 1
    # Each refusal was heard once, at once; the only chained append of the burst is the one flag.
    assert len(set(heard)) == REFUSALS
    assert list(AuditEntry.objects.filter(id__gt=chained_before).values_list("event", flat=True)) == ["flag.raised"]
    assert len(head_locks) == 1
    post(Client(), licence, purpose="commercial")  # the flag's evidence counts every refusal
    assert Flag.objects.get().evidence["count"] == REFUSALS + 1
    assert audit.services.audit_refusals_seal() == REFUSALS + 1
    assert audit.services.audit_chain_verify()[1] is None


def _refuse(n: int) -> None:
    for i in range(n):
        audit.services.audit_refusal_record(event="generation.refused", data={"code": "x", "i": i})


@pytest.mark.django_db
def test_a_seal_is_one_chain_entry_with_the_sha256_of_its_refusals(head_locks):
    _refuse(7)
    assert head_locks == []
    assert audit.services.audit_refusals_seal() == 7 and len(head_locks) == 1
    seal = AuditEntry.objects.get(event="audit.refusals_sealed")
    last = AuditRefusal.objects.order_by("-id").values_list("id", flat=True)[0]  # ids need not start at 1
    assert (seal.data["after"], seal.data["last"], seal.data["count"]) == (0, last, 7) and len(seal.data["sha256"]) == 64
    _refuse(2)
    call_command("audit_anchor")  # seals what is pending, then signs
    assert AuditEntry.objects.filter(event="audit.refusals_sealed").count() == 2
    call_command("verify_audit_chain")


# Each statement targets the third refusal (its id is appended to the parameters).
TAMPERING = [
    ("UPDATE audit_auditrefusal SET data = %s WHERE id = %s", ['{"code": "purpose_not_permitted"}']),
    ("UPDATE audit_auditrefusal SET created_at = %s WHERE id = %s", ["2026-01-01 00:00:00"]),
    ("DELETE FROM audit_auditrefusal WHERE id = %s", []),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("sql", "params"), TAMPERING,
                         ids=["an edited refusal", "a refusal moved in time", "a removed refusal"])
def test_a_sealed_refusal_tampered_with_is_named_by_its_seal(sql, params):
    _refuse(5)
    audit.services.audit_refusals_seal()
    _refuse(1)
    audit.services.audit_refusals_seal()
    ids = list(AuditRefusal.objects.order_by("id").values_list("id", flat=True))  # ids need not start at 1
    _sql(sql, [*params, ids[2]])
    seal = AuditEntry.objects.filter(event="audit.refusals_sealed").order_by("id").first()
    after = seal.data["after"]
    with pytest.raises(CommandError, match=rf"at entry #{seal.id}: the refusals #{after + 1}\.\.#{ids[4]} it seals were changed"):
        call_command("verify_audit_chain")


@pytest.mark.django_db(transaction=True)
def test_refusals_recorded_while_sealing_are_each_sealed_exactly_once():
    def record_many():
        try:
            _refuse(25)
        finally:
            connection.close()

    threads = [threading.Thread(target=record_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    sealed = 0
    while any(t.is_alive() for t in threads):
        sealed += audit.services.audit_refusals_seal()
    for thread in threads:
        thread.join()
    sealed += audit.services.audit_refusals_seal()
    assert sealed == 100
    assert audit.services.audit_chain_verify()[1] is None


@pytest.mark.django_db
def test_a_refusal_rolled_back_is_neither_kept_nor_announced(django_capture_on_commit_callbacks):
    from audit.models import AuditRefusal

    with (django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError),
          transaction.atomic()):
        _refuse(1)
        raise RuntimeError("the request failed")
    assert callbacks == [] and not AuditRefusal.objects.exists()
