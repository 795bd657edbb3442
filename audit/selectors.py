"""Audit reads: the rows of the CSV export, the staff log page (filtered entries, newest first, people
by name), the chain's verification status, the published anchors."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from .anchors import SignedHead
from .models import AuditAnchor, AuditChainHead, AuditEntry
from .verification import audit_chain_report

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


# --- The staff log page ------------------------------------------------------------------------

_USER_REF = re.compile(r"^user:(\d+)$")
SUBJECT_PREFIX_MIN = 6  # a pasted id prefix shorter than this matches too much to mean one subject


def _actor_ref_of(actor: str) -> str | None:
    """The actor_ref a filter means: "user:42" as is, otherwise a username (None: nobody by that name)."""
    if _USER_REF.match(actor):
        return actor
    user = get_user_model().objects.filter(username__iexact=actor).only("pk").first()
    return f"user:{user.pk}" if user else None


def audit_entries(*, subject: str = "", subject_type: str = "", actor: str = "", event: str = "") -> QuerySet:
    """Chain entries newest first, narrowed by subject id (whole, or a prefix of at least
    SUBJECT_PREFIX_MIN characters), subject type, actor (username or "user:<id>") and event."""
    entries = AuditEntry.objects.order_by("-id")
    if subject:
        match = Q(subject_id=subject)
        if len(subject) >= SUBJECT_PREFIX_MIN:
            match |= Q(subject_id__startswith=subject)
        entries = entries.filter(match)
    if subject_type:
        entries = entries.filter(subject_type=subject_type)
    if actor:
        ref = _actor_ref_of(actor.strip())
        entries = entries.filter(actor_ref=ref) if ref else entries.none()
    if event:
        entries = entries.filter(event=event)
    return entries


def audit_filter_choices() -> dict:
    """The events and subject types that occur in the chain, for the page's filter menus."""
    events = AuditEntry.objects.order_by("event").values_list("event", flat=True).distinct()
    types = AuditEntry.objects.exclude(subject_type="").order_by("subject_type").values_list(
        "subject_type", flat=True).distinct()
    return {"events": list(events), "subject_types": list(types)}


@dataclass(frozen=True)
class AuditRow:
    """An entry as the log page shows it: people by name, its data as (key, text) pairs."""

    entry: AuditEntry
    actor: str | None
    subject_name: str | None
    details: list[tuple[str, str]]


def _refs_in(entry: AuditEntry) -> set[str]:
    refs = {entry.actor_ref, *(v for v in entry.data.values() if isinstance(v, str))}
    if entry.subject_type == "User":
        refs.add(f"user:{entry.subject_id}")
    return {r for r in refs if _USER_REF.match(r)}


def _detail_text(value, people: dict[str, str]) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return people.get(value, value)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def audit_rows(entries) -> list[AuditRow]:
    """The page's rows for `entries`, every "user:<id>" they name (actor, User subject, data
    values) shown as the username, in one query."""
    entries = list(entries)
    ids = {int(ref.split(":")[1]) for e in entries for ref in _refs_in(e)}
    people = {f"user:{pk}": name for pk, name in get_user_model().objects.filter(pk__in=ids).values_list(
        "pk", "username")}
    return [AuditRow(entry=e, actor=people.get(e.actor_ref),
                     subject_name=people.get(f"user:{e.subject_id}") if e.subject_type == "User" else None,
                     details=[(k, _detail_text(v, people)) for k, v in e.data.items()]) for e in entries]


# --- The chain's verification status -------------------------------------------------------------

STATUS_CACHE_KEY = "audit:chain-status"
STATUS_MAX_AGE_SECONDS = 300


@dataclass(frozen=True)
class ChainStatus:
    """One run of audit_chain_report, summed up for a page: when, how long it took, what it found."""

    verified_at: datetime
    seconds: float
    checked: int
    anchors: int
    unsealed: int
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def milliseconds(self) -> int:
        return round(self.seconds * 1000)


def audit_chain_status(*, refresh: bool = False) -> ChainStatus:
    """The chain's last verification, run again when asked or when older than
    STATUS_MAX_AGE_SECONDS. A run reads every entry, so page views share one instead of each
    walking the whole chain."""
    status = None if refresh else cache.get(STATUS_CACHE_KEY)
    if status is None:
        started = time.perf_counter()
        report = audit_chain_report()
        status = ChainStatus(verified_at=timezone.now(), seconds=time.perf_counter() - started,
                             checked=report.checked, anchors=report.anchors, unsealed=report.unsealed,
                             problems=[f"#{p.entry_id}: {p.reason}" for p in report.problems])
        cache.set(STATUS_CACHE_KEY, status, STATUS_MAX_AGE_SECONDS)
    return status


def audit_chain_head() -> dict:
    """The chain's last entry (id and hash) and its latest signed anchor (or None)."""
    head = AuditChainHead.objects.filter(pk=1).first()
    return {"entry_id": head.last_entry_id if head else None, "hash": head.last_hash if head else None,
            "anchor": AuditAnchor.objects.order_by("-seq").first()}
