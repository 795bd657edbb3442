"""The append-only audit chain: every licence-relevant event goes through `audit_append`.

Each entry's hash covers the previous entry's hash and the entry's own fields, so editing or
removing any entry breaks the chain at that entry (found by `manage.py verify_audit_chain`).
Appends are serialised by a row lock on the chain head, which works on PostgreSQL and SQLite.

Two things keep that from being the whole story:
- refused requests come in bursts (a customer's script retrying against an exhausted quota), so
  `audit_refusal_record` keeps them in their own append-only table without the chain head, and
  `audit_refusals_seal` covers each run of them with one chain entry carrying their SHA-256;
- someone with database access can cut the chain's tail or rewrite an entry and recompute every
  later hash, so `audit_anchor_create` signs the head (audit.anchors) and the anchors are
  published; verification (audit.verification) checks the chain against them.
"""

from __future__ import annotations

import json
import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .anchors import head_sign
from .chain import GENESIS_HASH, SEAL_EVENT, entry_digest, refusals_digest
from .errors import AuditChainBroken
from .models import AuditAnchor, AuditChainHead, AuditEntry, AuditRefusal
from .signals import entry_appended
from .verification import (
    ChainBreak,
    audit_chain_report,
    audit_chain_verify,
    chain_segment_break,
)

__all__ = ["GENESIS_HASH", "ChainBreak", "actor_ref_for", "audit_anchor_create", "audit_append",
           "audit_chain_report", "audit_chain_verify", "audit_refusal_record", "audit_refusals_seal",
           "entry_digest"]

logger = logging.getLogger(__name__)
SEAL_BATCH = 5000  # refusals per seal entry: one bounded read and one hash per batch


def actor_ref_for(user) -> str:
    """A stable reference that survives pseudonymisation of the account (no name, no e-mail)."""
    return f"user:{user.pk}" if user is not None and user.pk is not None else ""


def _normalise(data: dict) -> dict:
    # What the JSON column gives back must hash the same as what we hashed: plain JSON values only.
    return json.loads(json.dumps(data, default=str, sort_keys=True))


def _locked_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # First append ever (or after a test flush): create the head, then lock it. A concurrent
        # creator makes get_or_create fall back to reading the row it made.
        AuditChainHead.objects.get_or_create(pk=1)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


def _subject_ref(subject) -> tuple[str, str]:
    return (type(subject).__name__, str(subject.pk)) if subject is not None else ("", "")


@transaction.atomic
def audit_append(*, event: str, actor=None, subject=None, data: dict | None = None) -> AuditEntry:
    """Append one event to the chain, in the caller's transaction (so it commits with the change
    it records, or not at all). `subject` is a model instance (its class name and pk are kept).

    Receivers of `audit.signals.entry_appended` hear of it once the transaction commits.
    Raises nothing of its own; a database error rolls back the caller's change too."""
    head = _locked_head()
    subject_type, subject_id = _subject_ref(subject)
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
    transaction.on_commit(lambda: _announce(entry, sender=AuditEntry))
    return entry


def audit_refusal_record(*, event: str, actor=None, subject=None, data: dict | None = None) -> AuditRefusal:
    """Record a refused request, in the caller's transaction, without taking the chain head: one
    insert, so a burst of refusals queues behind nothing but the database itself. The next
    `audit_refusals_seal` puts it under the chain.

    Receivers of `audit.signals.entry_appended` hear of it once the transaction commits, with
    sender AuditRefusal. Raises nothing of its own."""
    subject_type, subject_id = _subject_ref(subject)
    refusal = AuditRefusal.objects.create(created_at=timezone.now(), event=event, actor_ref=actor_ref_for(actor),
                                          subject_type=subject_type, subject_id=subject_id,
                                          data=_normalise(data or {}))
    transaction.on_commit(lambda: _announce(refusal, sender=AuditRefusal))
    return refusal


def _announce(entry, *, sender) -> None:
    for receiver, result in entry_appended.send_robust(sender=sender, entry=entry):
        if isinstance(result, Exception):
            logger.error("Audit receiver %r failed on %s #%s", receiver, sender.__name__, entry.pk,
                         exc_info=result)


def _refusals_quiesce() -> None:
    # On PostgreSQL ids are handed out at insert and committed in any order: wait for the inserts
    # in flight (and hold new ones for the few milliseconds of the seal), so no refusal can commit
    # later with an id inside a sealed range. SQLite writers are serialised already. Lock order:
    # this table, then the chain head (nothing takes them the other way round).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{AuditRefusal._meta.db_table}" IN SHARE ROW EXCLUSIVE MODE')


def _sealed_up_to() -> int:
    last_seal = AuditEntry.objects.filter(event=SEAL_EVENT).order_by("-id").first()
    return int(last_seal.data["last"]) if last_seal else 0


@transaction.atomic
def _refusals_seal_batch() -> AuditEntry | None:
    _refusals_quiesce()
    after = _sealed_up_to()
    rows = list(AuditRefusal.objects.filter(id__gt=after).order_by("id")[:SEAL_BATCH])
    if not rows:
        return None
    return audit_append(event=SEAL_EVENT, data={"after": after, "last": rows[-1].id, "count": len(rows),
                                                "sha256": refusals_digest(rows)})


def audit_refusals_seal() -> int:
    """Seal every refusal recorded so far into the chain, one entry per batch of up to SEAL_BATCH
    rows (`after`, `last`, `count`, `sha256` of the rows). Returns how many were sealed. Safe to run
    concurrently (the chain head orders the seals). Raises nothing of its own."""
    sealed = 0
    while (entry := _refusals_seal_batch()) is not None:
        sealed += entry.data["count"]
    return sealed


def audit_anchor_create() -> AuditAnchor | None:
    """Seal pending refusals, then sign the chain head (sequence number, hash, time) and keep the
    anchor. Returns it; the latest anchor when the head has not moved since; None for an empty chain.

    Raises AuditChainBroken when the chain since the latest anchor does not verify: an anchor must
    never vouch for a tampered chain. Raises ImproperlyConfigured without signing keys."""
    audit_refusals_seal()
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or not head.last_entry_id:
        return None
    latest = AuditAnchor.objects.order_by("-seq").first()
    if latest is not None and latest.seq >= head.last_entry_id:
        return latest
    broken = chain_segment_break(since=latest, until=head.last_entry_id)
    if broken is not None:
        raise AuditChainBroken(f"Not anchoring: the chain is broken at entry #{broken.entry_id}: {broken.reason}.")
    # The entry's own hash, just verified, not the head row's copy of it.
    entry_hash = AuditEntry.objects.values_list("entry_hash", flat=True).get(pk=head.last_entry_id)
    at = timezone.now()
    signed = head_sign(seq=head.last_entry_id, entry_hash=entry_hash, at=at)
    try:
        with transaction.atomic():
            return AuditAnchor.objects.create(seq=signed.seq, entry_hash=signed.hash, anchored_at=at,
                                              kid=signed.kid, signature=signed.sig)
    except IntegrityError:
        return AuditAnchor.objects.get(seq=signed.seq)  # a concurrent run anchored the same head
