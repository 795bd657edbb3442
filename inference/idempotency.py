"""Idempotency keys: one generation and one charge per (API key, `Idempotency-Key`), however the
duplicates are timed.

A request carrying a key claims it before any check runs, by INSERT on a unique constraint, so of
concurrent duplicates exactly one wins; nothing waits on a lock while text is generated.

- pending (the winner runs): a duplicate gets 409 `idempotency_in_progress` at once (it does not
  wait: a stream may run for minutes) and may retry once the first finished;
- done (its ledger row): a duplicate replays the stored response, charged nothing, as server-sent
  events when it asks for a stream (`stream` is a transport choice, not part of the fingerprint);
- failed (refused, or failed before delivering anything): the key is free again, even for another
  body, so a corrected retry runs.

The fingerprint is the SHA-256 of the canonical generation parameters; the same key with other
parameters is 409 `idempotency_key_reused` (as Stripe does). A pending claim not kept alive for
longer than a request may run (its process died) may be taken over.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from licensing.models import ApiKey

from .errors import IdempotencyInProgress, IdempotencyKeyReused
from .models import IdempotencyKey, UsageEntry


def idempotency_fingerprint(params: dict) -> str:
    """SHA-256 of the canonical JSON of the request's generation parameters."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_claim(*, api_key: ApiKey | None, key: str, fingerprint: str, request_id: str,
                          stale_after: timedelta) -> UsageEntry | None:
    """Claim `key` for `request_id`. Returns None when claimed (or when there is no key), or the
    finished ledger row to replay. Raises IdempotencyKeyReused (409: other parameters) and
    IdempotencyInProgress (409: the first request still runs)."""
    if not key or api_key is None:
        return None
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(api_key=api_key, key=key, fingerprint=fingerprint, request_id=request_id)
        return None
    except IntegrityError:
        pass  # taken: see by whom
    claim = IdempotencyKey.objects.select_related("usage_entry").get(api_key=api_key, key=key)
    if _retake(claim, fingerprint=fingerprint, request_id=request_id, stale_after=stale_after):
        return None
    claim.refresh_from_db()
    if claim.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a request with different parameters; use a new key "
            "for a new request.", param="Idempotency-Key")
    if claim.state == IdempotencyKey.State.DONE and claim.usage_entry is not None:
        return claim.usage_entry
    raise IdempotencyInProgress("A request with this Idempotency-Key is still running; retry once it has "
                                "finished to receive its result.", param="Idempotency-Key",
                                headers={"retry-after": "1"})


def _retake(claim: IdempotencyKey, *, fingerprint: str, request_id: str, stale_after: timedelta) -> bool:
    # A conditional update on the state we read: of racing retries, one retakes it.
    now = timezone.now()
    free = claim.state == IdempotencyKey.State.FAILED or (
        claim.state == IdempotencyKey.State.PENDING and claim.updated_at < now - stale_after)
    if not free:
        return False
    return bool(IdempotencyKey.objects.filter(pk=claim.pk, state=claim.state, request_id=claim.request_id).update(
        state=IdempotencyKey.State.PENDING, fingerprint=fingerprint, request_id=request_id, updated_at=now))


def _held(*, api_key: ApiKey | None, key: str, request_id: str):
    return IdempotencyKey.objects.filter(api_key=api_key, key=key, request_id=request_id,
                                         state=IdempotencyKey.State.PENDING)


def idempotency_key_complete(*, api_key: ApiKey | None, key: str, request_id: str, entry: UsageEntry) -> None:
    """Mark the claim done with its ledger row; call it in the transaction that writes the row."""
    if key and api_key is not None:
        _held(api_key=api_key, key=key, request_id=request_id).update(
            state=IdempotencyKey.State.DONE, usage_entry=entry, updated_at=timezone.now())


def idempotency_key_release(*, api_key: ApiKey | None, key: str, request_id: str) -> None:
    """Free the key after a refusal or a failure that delivered nothing (a retry may run)."""
    if key and api_key is not None:
        _held(api_key=api_key, key=key, request_id=request_id).update(
            state=IdempotencyKey.State.FAILED, updated_at=timezone.now())


def idempotency_key_keepalive(*, api_key: ApiKey | None, key: str, request_id: str) -> None:
    """A long stream is alive: its claim must not be taken over as stale."""
    if key and api_key is not None:
        _held(api_key=api_key, key=key, request_id=request_id).update(updated_at=timezone.now())


def claim_ttl() -> timedelta:
    """How long a pending claim lives past its last keep-alive (the request's reservation too)."""
    return timedelta(seconds=int(settings.INFERENCE_RESERVATION_TTL_SECONDS))


def idempotency_keys_sweep(*, stale_after: timedelta) -> int:
    """Mark failed the claims pending past `stale_after` without a keep-alive: their request's
    process died, so nothing will finish them (a retry may also take such a claim over itself).
    Returns how many were freed."""
    cutoff = timezone.now() - stale_after
    return IdempotencyKey.objects.filter(state=IdempotencyKey.State.PENDING, updated_at__lt=cutoff).update(
        state=IdempotencyKey.State.FAILED, updated_at=timezone.now())
