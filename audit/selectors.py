"""Audit reads: the rows of the CSV export, the entries about one subject, the published anchors."""

from __future__ import annotations

import json
from datetime import datetime


from .anchors import SignedHead
from .models import AuditAnchor, AuditEntry

EXPORT_COLUMNS = ["id", "created_at", "event", "actor", "subject_type", "subject_id", "data", "prev_hash",
                  "entry_hash"]


def audit_export_rows(since: datetime, until: datetime):
    """One row per audit entry appended in [since, until), hashes included so the export itself
    can be checked against the chain."""
    entries = AuditEntry.objects.filter(created_at__gte=since, created_at__lt=until).order_by("id")
    for e in entries.iterator(chunk_size=2000):
        yield [e.id, e.created_at.isoformat(), e.event, e.actor_ref, e.subject_type, e.subject_id,
               json.dumps(e.data, sort_keys=True, ensure_ascii=False), e.prev_hash, e.entry_hash]


ANCHORS_PAGE = 1000  # anchors per page of the published document


def audit_anchors_page(*, after: int = 0, limit: int = ANCHORS_PAGE) -> tuple[list[SignedHead], int | None]:
    """The signed anchors with seq > `after`, oldest first, and the `after` of the next page
    (None on the last page)."""
    rows = list(AuditAnchor.objects.filter(seq__gt=after).order_by("seq")[:limit + 1])
    heads = [SignedHead(seq=a.seq, hash=a.entry_hash, at=a.anchored_at.isoformat(), kid=a.kid, sig=a.signature)
             for a in rows[:limit]]
    return heads, (heads[-1].seq if len(rows) > limit else None)
