"""The books of generation, checked against each other (`manage.py reconcile` prints them beside
metered billing's):

1. each grant's `used_tokens` equals its ledger rows (total less over-quota tokens) since its quota
   period began, and its `reserved_tokens` equals its reservation rows;
2. no reservation is past its expiry and no Idempotency-Key claim is pending past its TTL (the
   sweeps free both within a minute: one left longer means a sweep is not running), and every
   finished claim points at its ledger row;
3. every ledger row's stored outputs match its receipts: one receipt per output that carries one,
   with the SHA-256 of exactly that output's text.

`books_discrepancies(now=...)` lists each difference in plain words.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.utils import timezone

from audit.models import AuditEntry
from licensing.models import Grant, QuotaReservation

from .models import IdempotencyKey, Receipt, UsageEntry
from .receipts import sha256_text


def _period_start(grant: Grant) -> datetime | None:
    """When the grant's counter last went back to zero (a monthly reset), or None: never."""
    if grant.quota_period != Grant.QuotaPeriod.MONTH:
        return None
    reset = (AuditEntry.objects.filter(event="grant.quota_reset", subject_id=str(grant.pk))
             .order_by("-created_at").values_list("created_at", flat=True).first())
    return reset


def _grant_counters() -> Iterator[str]:
    for grant in Grant.objects.order_by("created_at"):
        rows = UsageEntry.objects.filter(grant=grant)
        since = _period_start(grant)
        if since is not None:
            rows = rows.filter(created_at__gte=since)
        ledger = rows.aggregate(tokens=Sum(F("total_tokens") - F("over_quota_tokens")))["tokens"] or 0
        if grant.used_tokens != ledger:
            yield (f"grant {grant.pk}: counts {grant.used_tokens} used tokens but its ledger rows"
                   f"{' this period' if since else ''} sum to {ledger}")
        held = QuotaReservation.objects.filter(grant=grant).aggregate(tokens=Sum("tokens"))["tokens"] or 0
        if grant.reserved_tokens != held:
            yield (f"grant {grant.pk}: counts {grant.reserved_tokens} reserved tokens but its reservations "
                   f"hold {held}")


def _leftovers(now: datetime, claim_ttl: timedelta) -> Iterator[str]:
    for reservation in QuotaReservation.objects.filter(expires_at__lt=now).order_by("expires_at"):
        yield (f"reservation {reservation.request_id}: {reservation.tokens} tokens of grant {reservation.grant_id} "
               f"still held {int((now - reservation.expires_at).total_seconds())} s after it expired")
    stale = IdempotencyKey.objects.filter(state=IdempotencyKey.State.PENDING, updated_at__lt=now - claim_ttl)
    for claim in stale.order_by("updated_at"):
        yield (f"idempotency key {claim.key!r} of API key {claim.api_key_id}: pending for request "
               f"{claim.request_id} since {claim.updated_at:%Y-%m-%d %H:%M:%S}, past its {int(claim_ttl.total_seconds())} "
               f"s TTL")
    for claim in IdempotencyKey.objects.filter(state=IdempotencyKey.State.DONE, usage_entry__isnull=True):
        yield f"idempotency key {claim.key!r} of API key {claim.api_key_id}: done but names no ledger row"


def _receipts_against_outputs() -> Iterator[str]:
    receipts: dict[int, dict[int, Receipt]] = {}
    for receipt in Receipt.objects.only("id", "usage_entry_id", "index", "output_sha256"):
        receipts.setdefault(receipt.usage_entry_id, {})[receipt.index] = receipt
    for entry in UsageEntry.objects.only("id", "request_id", "response").iterator():
        issued = receipts.pop(entry.pk, {})
        for output in entry.response.get("outputs", []):
            index, stated = output.get("index", 0), output.get("receipt")
            receipt = issued.pop(index, None)
            if stated and receipt is None:
                yield f"usage {entry.request_id}: output {index} names receipt {stated['id']}, which does not exist"
            elif receipt is not None and not stated:
                yield f"usage {entry.request_id}: receipt {receipt.id} was issued but output {index} does not name it"
            elif receipt is not None and receipt.output_sha256 != sha256_text(output.get("text", "")):
                yield f"usage {entry.request_id}: receipt {receipt.id} covers other text than output {index}"
        for receipt in issued.values():
            yield f"usage {entry.request_id}: receipt {receipt.id} has no output {receipt.index}"


def books_discrepancies(*, claim_ttl: timedelta, now: datetime | None = None) -> tuple[list[str], dict]:
    """Every difference between grant counters, reservations, Idempotency-Key claims, the ledger and
    the receipts (`claim_ttl`: how long a pending claim may go without a keep-alive), and what was
    checked."""
    now = now or timezone.now()
    problems = [*_grant_counters(), *_leftovers(now, claim_ttl), *_receipts_against_outputs()]
    checked = {"grants": Grant.objects.count(), "ledger rows": UsageEntry.objects.count(),
               "receipts": Receipt.objects.count(), "reservations": QuotaReservation.objects.count(),
               "idempotency keys": IdempotencyKey.objects.count()}
    return problems, checked
