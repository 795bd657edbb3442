"""Money the platform holds until work is accepted: separate charges and transfers.

Stripe "doesn't provide escrow services", and a card authorisation with manual capture lapses after
about 7 days, so a commission with a longer deadline is paid like this instead:

1. `held_payment_open`: a pending row for the purpose (unique: one per commission);
2. the payer's card: Stripe.js confirms a SetupIntent in the page (`held_payment_checkout`), then
   `held_payment_charge` charges a PaymentIntent to the platform's own account (no destination),
   with a `transfer_group`; in local test mode `held_payment_pay_local_test` takes a test card;
3. `held_payment_mark_held` (from the charge's answer or the signed webhook, whichever comes first):
   the money is a liability of the platform, shown on both parties' statements;
4. `held_payment_release`: a Connect transfer of the payee's share tied to the charge
   (`source_transaction`, same transfer group) and the payout entry with the platform fee; or
   `held_payment_refund`: the charge refunded to the payer.

Every Stripe call runs outside a transaction with an idempotency key derived from the purpose, and
every state change is a conditional update, so retried tasks and replayed webhooks move money once.
The app that owns the purpose hears of each change by billing's signals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.services import audit_append

from . import gateway, signals
from .customers import billing_customer_card_set, billing_customer_ensure, payout_account_active
from .errors import CardDeclined, HeldPaymentRefused
from .models import HeldPayment, PayoutEntry, Provider
from .payouts import payout_record

log = logging.getLogger(__name__)

TEST_CARD_SUCCEEDS = "4242424242424242"
State = HeldPayment.State


def _provider() -> str:
    return Provider.LOCAL_TEST if gateway.payments_in_test_mode() else Provider.STRIPE


@transaction.atomic
def held_payment_open(*, purpose: str, payer, payee, amount_cents: int, currency: str) -> HeldPayment:
    """The pending held payment for `purpose` (the existing one when it was opened before, unless it
    failed: then it starts again for this payee and amount)."""
    held, created = HeldPayment.objects.select_for_update().get_or_create(
        purpose=purpose, defaults={"payer": payer, "payee": payee, "amount_cents": amount_cents,
                                   "currency": currency, "provider": _provider()})
    if not created and held.state == State.FAILED:
        held.payee, held.amount_cents, held.currency, held.provider = payee, amount_cents, currency, _provider()
        held.state, held.failure_message = State.PENDING, ""
        held.save()
    if created:
        audit_append(event="held_payment.opened", actor=payer, subject=held,
                     data={"purpose": purpose, "amount_cents": amount_cents, "currency": currency,
                           "provider": held.provider})
    return held


@dataclass
class HeldCheckout:
    held: HeldPayment
    client_secret: str = ""  # the SetupIntent's, for Stripe.js (empty in local test mode)


def held_payment_checkout(*, held_id) -> HeldCheckout:
    """What the payment page needs. With Stripe: a SetupIntent for the payer's card (created once;
    its client secret read back on a reload). Raises GatewayError."""
    held = HeldPayment.objects.select_related("payer").get(pk=held_id)
    if held.provider == Provider.LOCAL_TEST or held.state != State.PENDING:
        return HeldCheckout(held=held)
    if held.setup_reference:
        return HeldCheckout(held=held, client_secret=gateway.setup_intent_retrieve(held.setup_reference).client_secret)
    customer = billing_customer_ensure(held.payer)
    intent = gateway.held_setup_intent_create(customer=customer, purpose=held.purpose,
                                              key=f"imprint-held-{held.purpose}-setup")
    HeldPayment.objects.filter(pk=held.pk).update(setup_reference=intent.id, stripe_customer_id=customer)
    held.setup_reference, held.stripe_customer_id = intent.id, customer
    return HeldCheckout(held=held, client_secret=intent.client_secret)


def _saved_card(held: HeldPayment) -> str:
    intent = gateway.setup_intent_retrieve(held.setup_reference)
    if intent.status != "succeeded" or not intent.payment_method:
        raise HeldPaymentRefused("The card has not been confirmed yet.", param="card")
    if intent.metadata.get("imprint_held") != held.purpose:
        raise HeldPaymentRefused("The card setup does not belong to this payment.", param="card")
    billing_customer_card_set(user_id=held.payer_id, payment_method=intent.payment_method)
    return intent.payment_method


def held_payment_charge(*, held_id) -> HeldPayment:
    """Charge the card the payer confirmed in the page, to the platform. The payment is held once
    Stripe says it succeeded: in its answer here, or by the webhook (whichever comes first).

    Raises HeldPaymentRefused (nothing to charge, or the card is not confirmed), CardDeclined (the
    row is marked failed with Stripe's message) and GatewayError."""
    held = HeldPayment.objects.get(pk=held_id)
    if held.state != State.PENDING or held.provider != Provider.STRIPE or not held.setup_reference:
        raise HeldPaymentRefused(f"This payment is {held.state} and cannot be charged.", param="payment")
    try:
        intent = gateway.held_payment_intent_confirm(
            purpose=held.purpose, amount_cents=held.amount_cents, currency=held.currency,
            customer=held.stripe_customer_id, payment_method=_saved_card(held), transfer_group=held.purpose)
    except CardDeclined as exc:
        held_payment_mark_failed(purpose=held.purpose, message=exc.user_message or "The card was declined.")
        raise
    HeldPayment.objects.filter(pk=held.pk, payment_reference__isnull=True).update(
        payment_reference=intent.id, charge_reference=intent.charge, transfer_group=held.purpose)
    if intent.status == "succeeded":
        held_payment_mark_held(purpose=held.purpose, payment_reference=intent.id, amount_cents=held.amount_cents,
                               currency=held.currency, charge_reference=intent.charge)
    return HeldPayment.objects.get(pk=held.pk)


def held_payment_pay_local_test(*, held_id, card_number: str) -> HeldPayment:
    """Local test mode: 4242… holds the money (no money moves; the pages say so), anything else is
    declined. The same `held_payment_mark_held` as Stripe's answer. Raises HeldPaymentRefused,
    CardDeclined."""
    held = HeldPayment.objects.get(pk=held_id)
    if held.provider != Provider.LOCAL_TEST or held.state not in (State.PENDING, State.FAILED):
        raise HeldPaymentRefused(f"This payment is {held.state} and cannot be paid here.", param="payment")
    if "".join(ch for ch in card_number if ch.isdigit()) != TEST_CARD_SUCCEEDS:
        held_payment_mark_failed(purpose=held.purpose, message="The card was declined.")
        raise CardDeclined("declined", user_message="Your card was declined. (Local test mode: use 4242 4242 4242 4242.)")
    reference = f"testmode_held_{held.pk}"
    held_payment_mark_held(purpose=held.purpose, payment_reference=reference, amount_cents=held.amount_cents,
                           currency=held.currency, charge_reference=reference)
    return HeldPayment.objects.get(pk=held.pk)


@transaction.atomic
def held_payment_mark_held(*, purpose: str, payment_reference: str, amount_cents: int, currency: str,
                           charge_reference: str = "") -> tuple[HeldPayment | None, bool]:
    """The charge succeeded: the money is held (once). An amount or currency other than the row's
    is refused and logged. Sends `signals.funds_held` in this transaction. Returns (row, changed);
    (None, False) for a purpose we do not know."""
    held = HeldPayment.objects.select_for_update().filter(purpose=purpose).first()
    if held is None:
        return None, False
    if held.state not in (State.PENDING, State.FAILED):
        return held, False
    if (amount_cents, currency.lower()) != (held.amount_cents, held.currency):
        log.error("held payment %s: charged %s %s but it is %s %s; not holding", purpose, amount_cents, currency,
                  held.amount_cents, held.currency)
        return held, False
    held.state, held.held_at, held.failure_message = State.HELD, timezone.now(), ""
    held.payment_reference = held.payment_reference or payment_reference
    held.charge_reference = held.charge_reference or charge_reference
    held.transfer_group = held.transfer_group or purpose
    held.save()
    audit_append(event="held_payment.held", subject=held,
                 data={"purpose": purpose, "reference": payment_reference, "amount_cents": amount_cents,
                       "currency": held.currency})
    signals.funds_held.send(sender=HeldPayment, held=held)
    return held, True


@transaction.atomic
def held_payment_mark_failed(*, purpose: str, message: str) -> tuple[HeldPayment | None, bool]:
    """The charge failed: nothing is held; the payer may try another card. Held money stays held."""
    held = HeldPayment.objects.select_for_update().filter(purpose=purpose).first()
    if held is None or held.state != State.PENDING:
        return held, False
    held.state, held.failure_message = State.FAILED, message[:300]
    held.save(update_fields=["state", "failure_message"])
    audit_append(event="held_payment.failed", subject=held, data={"purpose": purpose, "message": message[:300]})
    signals.funds_failed.send(sender=HeldPayment, held=held)
    return held, True


def _charge_of(held: HeldPayment) -> str:
    if held.charge_reference or held.provider == Provider.LOCAL_TEST:
        return held.charge_reference
    charge = gateway.payment_intent_retrieve(held.payment_reference).charge
    HeldPayment.objects.filter(pk=held.pk).update(charge_reference=charge)
    return charge


def held_payment_release(*, held_id) -> HeldPayment:
    """Pay the payee their share of held money: with Stripe and an active Connect account, a transfer
    of the share from this charge (`source_transaction`, the transfer group); otherwise the share
    is owed (the payout entry says so). Then the payout entry with the platform fee (billing.fees).
    A released payment is returned as it is. Raises HeldPaymentRefused (not held) and GatewayError
    (nothing recorded; the caller retries: the transfer's idempotency key makes it one transfer)."""
    held = HeldPayment.objects.select_related("payee").get(pk=held_id)
    if held.state == State.RELEASED:
        return held
    if held.state != State.HELD:
        raise HeldPaymentRefused(f"This payment is {held.state}; only held money can be released.")
    account = payout_account_active(held.payee) if held.provider == Provider.STRIPE else None
    transfer = ""
    if account:
        from .fees import payout_split

        transfer = gateway.transfer_create(
            account=account, amount_cents=payout_split(held.amount_cents)[1], currency=held.currency,
            key=f"imprint-held-{held.purpose}-transfer", source_transaction=_charge_of(held),
            transfer_group=held.transfer_group or held.purpose)
    return _released(held.pk, transfer=transfer)


@transaction.atomic
def _released(held_id, *, transfer: str) -> HeldPayment:
    held = HeldPayment.objects.select_for_update().get(pk=held_id)
    if held.state != State.HELD:
        return held
    held.state, held.settled_at, held.transfer_reference = State.RELEASED, timezone.now(), transfer
    held.save(update_fields=["state", "settled_at", "transfer_reference"])
    payout_record(order_id=None, held_payment_id=held.pk, payee_id=held.payee_id, kind=PayoutEntry.Kind.COMMISSION,
                  reference=f"held:{held.purpose}", gross_cents=held.amount_cents, currency=held.currency,
                  via_connect=bool(transfer))
    audit_append(event="held_payment.released", subject=held,
                 data={"purpose": held.purpose, "transfer": transfer, "amount_cents": held.amount_cents})
    signals.funds_released.send(sender=HeldPayment, held=held)
    return held


def held_payment_refund(*, held_id, reason: str) -> HeldPayment:
    """Return held money to the payer (a full refund of the charge at Stripe, keyed by the purpose),
    or close a payment that was never charged. Released or refunded payments are returned as they
    are. Raises GatewayError (nothing recorded; the caller retries)."""
    held = HeldPayment.objects.get(pk=held_id)
    if held.state in (State.PENDING, State.FAILED):
        held_payment_mark_failed(purpose=held.purpose, message=f"Cancelled before payment: {reason}")
        return HeldPayment.objects.get(pk=held.pk)
    if held.state != State.HELD:
        return held
    refund = f"testmode_refund_{held.pk}"
    if held.provider == Provider.STRIPE:
        refund = gateway.refund_create(payment_reference=held.payment_reference,
                                       key=f"imprint-held-{held.purpose}-refund")
    held, _ = held_payment_mark_refunded(payment_reference=held.payment_reference, refund_reference=refund,
                                         reason=reason)
    return held


@transaction.atomic
def held_payment_mark_refunded(*, payment_reference: str, refund_reference: str,
                               reason: str) -> tuple[HeldPayment | None, bool]:
    """The held charge was refunded (by us, or from Stripe's dashboard): the money is the payer's
    again. Sends `signals.funds_refunded`. (None, False) for a charge that is not a held payment."""
    held = HeldPayment.objects.select_for_update().filter(payment_reference=payment_reference).first()
    if held is None or held.state != State.HELD:
        return held, False
    held.state, held.settled_at, held.refund_reference = State.REFUNDED, timezone.now(), refund_reference
    held.save(update_fields=["state", "settled_at", "refund_reference"])
    audit_append(event="held_payment.refunded", subject=held,
                 data={"purpose": held.purpose, "refund": refund_reference, "reason": reason[:200]})
    signals.funds_refunded.send(sender=HeldPayment, held=held, reason=reason)
    return held, True


def held_payment_for_charge(payment_reference: str) -> HeldPayment | None:
    return HeldPayment.objects.filter(payment_reference=payment_reference).first() if payment_reference else None


def held_payments_total(*, user, role: str) -> dict[str, int]:
    """Money held now, per currency, that `user` paid (role "payer") or is to be paid (role "payee")."""
    totals: dict[str, int] = {}
    for held in HeldPayment.objects.filter(state=State.HELD, **{role: user}):
        totals[held.currency] = totals.get(held.currency, 0) + held.amount_cents
    return totals

