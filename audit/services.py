"""The append-only audit chain: every licence-relevant event goes through `audit_append`.

Each entry's hash covers the previous entry's hash and the entry's own fields, so editing or
removing any entry breaks the chain at that entry (found by `manage.py verify_audit_chain`).
Appends are serialised by a row lock on the chain head, which works on PostgreSQL and SQLite.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import AuditChainHead, AuditEntry
from .signals import entry_appended

GENESIS_HASH = "0" * 64
logger = logging.getLogger(__name__)


def actor_ref_for(user) -> str:
    """A stable reference that survives pseudonymisation of the account (no name, no e-mail)."""
    return f"user:{user.pk}" if user is not None and user.pk is not None else ""


def _normalise(data: dict) -> dict:
    # What the JSON column gives back must hash the same as what we hashed: plain JSON values only.
    return json.loads(json.dumps(data, default=str, sort_keys=True))


def entry_digest(*, prev_hash: str, entry_id: int, created_at, event: str, actor_ref: str,
                 subject_type: str, subject_id: str, data: dict) -> str:
    body = json.dumps(
        {"id": entry_id, "at": created_at.isoformat(), "event": event, "actor": actor_ref,
         "subject": [subject_type, subject_id], "data": data},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _locked_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # First append ever (or after a test flush): create the head, then lock it. A concurrent
        # creator makes get_or_create fall back to reading the row it made.
        AuditChainHead.objects.get_or_create(pk=1)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


@transaction.atomic
def audit_append(*, event: str, actor=None, subject=None, data: dict | None = None) -> AuditEntry:
    """Append one event to the chain, in the caller's transaction (so it commits with the change
    it records, or not at all). `subject` is a model instance (its class name and pk are kept).

    Receivers of `audit.signals.entry_appended` hear of it once the transaction commits.
    Raises nothing of its own; a database error rolls back the caller's change too."""
    head = _locked_head()
    subject_type = type(subject).__name__ if subject is not None else ""
    subject_id = str(subject.pk) if subject is not None else ""
    entry_id = (head.last_entry_id or 0) + 1
    created_at = timezone.now()
    data = _normalise(data or {})
    actor_ref = actor_ref_for(actor)
    digest = entry_digest(prev_hash=head.last_hash, entry_id=entry_id, created_at=created_at,
                          event=event, actor_ref=actor_ref, subject_type=subject_type,
                          subject_id=subject_id, data=data)
    entry = AuditEntry.objects.create(
        id=entry_id, created_at=created_at, event=event, actor_ref=actor_ref,
        subject_type=subject_type, subject_id=subject_id, data=data,
        prev_hash=head.last_hash, entry_hash=digest,
    )
    AuditChainHead.objects.filter(pk=1).update(last_entry_id=entry_id, last_hash=digest)
    # After commit: receivers must not see an entry that is rolled back, nor run while this
    # transaction still holds the chain head.
    transaction.on_commit(lambda: _announce(entry))
    return entry


def _announce(entry: AuditEntry) -> None:
    for receiver, result in entry_appended.send_robust(sender=AuditEntry, entry=entry):
        if isinstance(result, Exception):
            logger.error("Audit receiver %r failed on entry #%s", receiver, entry.pk, exc_info=result)


@dataclass
class ChainBreak:
    entry_id: int
    reason: str


def audit_chain_verify() -> tuple[int, ChainBreak | None]:
    """(entries checked, the first break or None). Reads in id order, in chunks."""
    prev_hash, expected_id, checked = GENESIS_HASH, 1, 0
    for entry in AuditEntry.objects.order_by("id").iterator(chunk_size=2000):
        if entry.id != expected_id:
            return checked, ChainBreak(expected_id, f"entry #{expected_id} is missing")
        if entry.prev_hash != prev_hash:
            return checked, ChainBreak(entry.id, "its previous-hash does not match the entry before it")
        digest = entry_digest(prev_hash=prev_hash, entry_id=entry.id, created_at=entry.created_at,
                              event=entry.event, actor_ref=entry.actor_ref,
                              subject_type=entry.subject_type, subject_id=entry.subject_id,
                              data=entry.data)
        if digest != entry.entry_hash:
            return checked, ChainBreak(entry.id, "its content does not match its hash")
        prev_hash, expected_id, checked = entry.entry_hash, expected_id + 1, checked + 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_entry_id and head.last_entry_id >= expected_id:
        return checked, ChainBreak(expected_id, f"entry #{expected_id} is missing (the chain head is at #{head.last_entry_id})")
    return checked, None
