"""The payouts ledger's one writer: each charge split into the platform fee and the payee's share
(`billing.fees`), and refunds appended as reversals (entries are never edited)."""

from __future__ import annotations

from .fees import payout_split
from .models import PayoutEntry


def payout_record(*, order_id, payee_id, kind: str, reference: str, gross_cents: int, currency: str,
                  via_connect: bool, held_payment_id=None) -> PayoutEntry | None:
    """Inside the caller's transaction: the split of the charge `reference` (once per kind and
    reference: a repeated notice changes nothing). Nothing is recorded for a zero charge."""
    if not gross_cents:
        return None
    fee, share = payout_split(gross_cents)
    entry, _ = PayoutEntry.objects.get_or_create(
        kind=kind, reference=reference,
        defaults={"order_id": order_id, "held_payment_id": held_payment_id, "trainer_id": payee_id, "gross_cents": gross_cents,
                  "platform_fee_cents": fee, "trainer_cents": share, "currency": currency,
                  "via_connect": via_connect})
    return entry


def payout_reverse(*, order_id, kind: str, reference: str | None = None) -> None:
    """Record the refund of the order's entry of `kind` (the one for `reference` if given)."""
    entries = PayoutEntry.objects.filter(order_id=order_id, kind=kind)
    entry = (entries.filter(reference=reference) if reference else entries).first()
    if entry is not None:
        PayoutEntry.objects.get_or_create(
            kind=PayoutEntry.Kind.REFUND, reference=f"refund:{entry.reference}",
            defaults={"order_id": order_id, "trainer_id": entry.trainer_id, "gross_cents": entry.gross_cents,
                      "platform_fee_cents": entry.platform_fee_cents, "trainer_cents": entry.trainer_cents,
                      "currency": entry.currency, "via_connect": entry.via_connect},
        )
