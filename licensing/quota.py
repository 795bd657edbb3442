"""A grant's quota while generations run: reserve before, settle or release after.

Reservations are made by one conditional UPDATE (`... WHERE quota >= used + reserved + n`), so
parallel requests can never reserve more than remains, and no row lock is held while generating;
this is correct on SQLite and PostgreSQL alike. Each reservation is a row with an expiry, so the
tokens of a request whose process died come back through the periodic sweep.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .errors import QuotaExceeded, ReservationLost
from .models import Grant, QuotaReservation


@transaction.atomic
def quota_reserve(*, grant_id, tokens: int, request_id: str, ttl: timedelta) -> None:
    """Reserve `tokens` of the grant's quota for `request_id`, for at most `ttl` (choose it longer
    than the request may run, so the sweep never takes a live one).

    Raises QuotaExceeded (402, with the tokens left)."""
    reserved = Grant.objects.filter(
        pk=grant_id, quota_tokens__gte=F("used_tokens") + F("reserved_tokens") + tokens,
    ).update(reserved_tokens=F("reserved_tokens") + tokens)
    if not reserved:
        grant = Grant.objects.get(pk=grant_id)
        raise QuotaExceeded(needed=tokens, remaining=grant.remaining_tokens)
    QuotaReservation.objects.create(request_id=request_id, grant_id=grant_id, tokens=tokens,
                                    expires_at=timezone.now() + ttl)


@transaction.atomic
def quota_release(*, request_id: str) -> bool:
    """Give back a reservation that will not be settled (the request failed, was a duplicate, or its
    process died). Returns False when it was already settled or released (idempotent)."""
    reservation = QuotaReservation.objects.select_for_update().filter(pk=request_id).first()
    if reservation is None:
        return False
    reservation.delete()
    Grant.objects.filter(pk=reservation.grant_id).update(reserved_tokens=F("reserved_tokens") - reservation.tokens)
    return True


def quota_settle(*, grant_id, request_id: str, reserved: int, charged: int, delivered: bool = False) -> int:
    """Turn a reservation of `reserved` tokens into `charged` used tokens. Call it inside the
    transaction that writes the usage ledger row, so the counter and the ledger agree. Returns the
    tokens charged past the quota (0 unless `delivered`).

    A request that outlived its reservation (the sweep released it) is charged if the tokens still
    fit. Else tokens the client has not received raise ReservationLost (503: the caller's
    transaction rolls back and nothing is delivered); tokens already `delivered` (a stream that was
    read) are charged up to what remains of the quota, and the rest is returned for the ledger row
    to record, since the check constraint keeps `used_tokens` within the quota."""
    if QuotaReservation.objects.filter(pk=request_id).delete()[0]:
        Grant.objects.filter(pk=grant_id).update(
            used_tokens=F("used_tokens") + charged, reserved_tokens=F("reserved_tokens") - reserved)
        return 0
    if Grant.objects.filter(pk=grant_id, quota_tokens__gte=F("used_tokens") + F("reserved_tokens") + charged,
                            ).update(used_tokens=F("used_tokens") + charged):
        return 0
    if not delivered:
        raise ReservationLost(f"The reservation of {request_id} expired and the quota is spent.")
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    counted = min(charged, grant.remaining_tokens)
    Grant.objects.filter(pk=grant_id).update(used_tokens=F("used_tokens") + counted)
    return charged - counted


def quota_reservation_extend(*, request_id: str, ttl: timedelta) -> bool:
    """Push a live request's reservation expiry to now + `ttl` (a stream still being read), so the
    sweep does not take it. Returns False when it is gone (settled, released or swept)."""
    return bool(QuotaReservation.objects.filter(pk=request_id).update(expires_at=timezone.now() + ttl))


def quota_reservations_sweep() -> int:
    """Release expired reservations (orphaned by a dead worker). Returns how many were released."""
    expired = QuotaReservation.objects.filter(expires_at__lt=timezone.now()).values_list("pk", flat=True)
    return sum(quota_release(request_id=request_id) for request_id in list(expired))
