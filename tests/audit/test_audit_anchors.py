"""Signed anchors hold the audit chain against someone with write access to the database: a cut
tail, a rewritten entry with every later hash recomputed, an anchor rewritten to match, and (with
an exported copy of the anchors) anchors deleted as well are all named by `verify_audit_chain`."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditChainHead, AuditEntry
from audit.services import audit_append, entry_digest

ENTRIES = AuditEntry._meta.db_table
HEAD = AuditChainHead._meta.db_table


def _sql(sql: str, params=()) -> None:
    # Bypasses the models on purpose: this is what an attacker with database access could do.
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))


def _chain(count: int) -> list[AuditEntry]:
    return [audit_append(event="test.step", data={"n": n}) for n in range(count)]


def _rewrite_and_recompute(entry_id: int, data: dict) -> str:
    """Change entry #entry_id and recompute every later hash and the head, as a careful attacker
    would. Returns the new head hash."""
    prev = AuditEntry.objects.get(pk=entry_id - 1).entry_hash if entry_id > 1 else "0" * 64
    for entry in AuditEntry.objects.filter(id__gte=entry_id).order_by("id"):
        new_data = data if entry.id == entry_id else entry.data
        digest = entry_digest(prev_hash=prev, entry_id=entry.id, created_at=entry.created_at, event=entry.event,
                              actor_ref=entry.actor_ref, subject_type=entry.subject_type,
                              subject_id=entry.subject_id, data=new_data)
        _sql(f"UPDATE {ENTRIES} SET data = %s, prev_hash = %s, entry_hash = %s WHERE id = %s",
             [json.dumps(new_data), prev, digest, entry.id])
        prev = digest
    _sql(f"UPDATE {HEAD} SET last_hash = %s", [prev])
    return prev


def _export(tmp_path):
    call_command("audit_anchor", "--export", stdout=(out := _Out()))
    path = tmp_path / "anchors.json"
    path.write_text(out.text)
    return path


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


@pytest.mark.django_db
def test_a_tail_cut_off_with_its_head_row_is_named_against_the_anchor():
    _chain(5)
    call_command("audit_anchor")
    _sql(f"DELETE FROM {ENTRIES} WHERE id >= 4")
    _sql(f"DELETE FROM {HEAD}")
    with pytest.raises(CommandError, match=r"broken at entry #4: entries #4\.\.#5 are missing: the anchor signed at"):
        call_command("verify_audit_chain")


@pytest.mark.django_db
def test_a_rewritten_entry_with_recomputed_hashes_no_longer_reaches_its_anchor():
    _chain(5)
    call_command("audit_anchor")
    _rewrite_and_recompute(2, {"n": 99})
    with pytest.raises(CommandError, match=(r"broken at entry #5: its recomputed hash no longer reaches the hash "
                                            r"anchored for it at .*: an entry in #1\.\.#5 was changed")):
        call_command("verify_audit_chain")


@pytest.mark.django_db
def test_the_anchor_that_names_the_rewrite_is_the_latest_one_below_it():
    _chain(3)
    call_command("audit_anchor")
    _chain(3)
    call_command("audit_anchor")
    _rewrite_and_recompute(5, {"n": 42})
    with pytest.raises(CommandError, match=r"broken at entry #6: .* an entry in #4\.\.#6 was changed"):
        call_command("verify_audit_chain")


@pytest.mark.django_db
def test_an_anchor_rewritten_to_match_the_rewritten_chain_fails_its_signature():
    _chain(5)
    call_command("audit_anchor")
    new_head = _rewrite_and_recompute(2, {"n": 99})
    _sql("UPDATE audit_auditanchor SET entry_hash = %s", [new_head])
    with pytest.raises(CommandError, match=r"the anchor of entry #5 \(signed at .*\): its signature does not verify"):
        call_command("verify_audit_chain")


@pytest.mark.django_db
def test_anchors_deleted_with_the_tail_are_named_from_an_exported_copy(tmp_path):
    _chain(4)
    call_command("audit_anchor")
    _chain(2)
    call_command("audit_anchor")
    exported = _export(tmp_path)
    _sql(f"DELETE FROM {ENTRIES} WHERE id >= 3")
    _sql("DELETE FROM audit_auditanchor")
    _sql(f"UPDATE {HEAD} SET last_entry_id = 2, last_hash = %s", [AuditEntry.objects.get(pk=2).entry_hash])
    call_command("verify_audit_chain")  # the database alone no longer shows it
    with pytest.raises(CommandError) as failed:
        call_command("verify_audit_chain", "--anchors", str(exported))
    message = str(failed.value)
    assert "broken at entry #3: entries #3..#6 are missing: the anchor signed at" in message
    assert "the anchor of entry #4 signed at" in message and "is missing from the database" in message
    assert "the anchor of entry #6 signed at" in message


@pytest.mark.django_db
def test_an_exported_copy_catches_a_rewrite_whose_anchors_were_replaced(tmp_path):
    _chain(5)
    call_command("audit_anchor")
    exported = _export(tmp_path)
    _rewrite_and_recompute(3, {"n": 7})
    _sql("DELETE FROM audit_auditanchor")
    with pytest.raises(CommandError, match=r"broken at entry #5: its recomputed hash no longer reaches"):
        call_command("verify_audit_chain", "--anchors", str(exported))


@pytest.mark.django_db
def test_a_bad_anchors_file_is_refused_with_its_reason(tmp_path):
    path = tmp_path / "anchors.json"
    path.write_text('{"anchors": []}')
    with pytest.raises(CommandError, match="not an exported anchors document"):
        call_command("verify_audit_chain", "--anchors", str(path))
    with pytest.raises(CommandError, match="Cannot read the anchors file"):
        call_command("verify_audit_chain", "--anchors", str(tmp_path / "missing.json"))


@pytest.mark.django_db
def test_anchoring_refuses_to_vouch_for_a_chain_broken_since_the_last_anchor():
    _chain(3)
    call_command("audit_anchor")
    _chain(2)
    _sql(f"UPDATE {ENTRIES} SET data = %s WHERE id = 4", ['{"n": 77}'])
    with pytest.raises(CommandError, match="Not anchoring: the chain is broken at entry #4"):
        call_command("audit_anchor")


@pytest.mark.django_db
def test_anchoring_an_unmoved_head_keeps_one_anchor_and_an_intact_chain_verifies():
    _chain(3)
    call_command("audit_anchor")
    call_command("audit_anchor")
    call_command("verify_audit_chain", stdout=(out := _Out()))
    assert "3 entries verified, held against 1 signed anchors" in out.text


@pytest.mark.django_db
def test_the_anchors_are_published_and_an_outsider_can_check_them_with_the_published_keys(client):
    from audit.anchors import ANCHOR_CONTEXT
    from core.secrets import b64url_decode

    _chain(2)
    call_command("audit_anchor")
    document = client.get("/audit/anchors.json").json()
    (anchor,) = document["anchors"]
    assert anchor["seq"] == 2 and anchor["hash"] == AuditEntry.objects.get(pk=2).entry_hash
    key = next(k for k in document["keys"] if k["kid"] == anchor["kid"])
    message = ANCHOR_CONTEXT + json.dumps({"seq": anchor["seq"], "hash": anchor["hash"], "at": anchor["at"]},
                                          sort_keys=True, separators=(",", ":")).encode()
    Ed25519PublicKey.from_public_bytes(b64url_decode(key["x"])).verify(b64url_decode(anchor["sig"]), message)
    assert client.get("/audit/anchors.json?after=2").json()["anchors"] == []
    bad = client.get("/audit/anchors.json?after=x")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "after"


@pytest.mark.django_db
def test_the_beat_schedule_anchors_the_head_from_the_default_queue(settings):
    from audit.tasks import anchor_head
    from config.celery_app import app

    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "audit.anchor_head" in entries
    assert app.amqp.router.route({}, "audit.anchor_head")["queue"].name == "default"
    _chain(2)
    assert anchor_head() == 2
    _chain(2)
    _sql(f"UPDATE {ENTRIES} SET data = %s WHERE id = 3", ['{"n": 5}'])
    assert anchor_head() is None  # a broken chain is logged, never anchored
