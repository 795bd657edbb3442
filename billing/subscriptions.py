"""The lifecycle of a metered grant's billing, written once for Stripe and the local test mode.

    grant paid ─▶ subscription (pending ─▶ active) ─▶ invoice paid ─▶ payout entry (fee rounded down)
                                                  └▶ invoice failed ─▶ past due ─(grace)─▶ grant suspended
                                                                                 paid ─▶ grant reinstated
                  subscription deleted ─▶ grant ended

Stripe's webhooks (billing.webhooks) and the local test mode's month close (billing.local)
both call these services, so a person without Stripe keys sees exactly what a Stripe customer sees.
Every grant state change goes through licensing's `grant_set_state`, which audits it. The e-mails
leave after commit, so a rolled-back webhook sends nothing. What the grant is billed at (price,
meter, payee) comes from the seller's plan (billing.plans); the order that bought it is an opaque id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_append
from core.templatetags.money import money
from core.links import absolute_url
from licensing.models import Grant
from licensing.services import grant_set_state

from . import gateway, signals
from .errors import GatewayError
from .models import BillingCustomer, Invoice, PayoutEntry, Provider, Subscription
from .payouts import payout_record, payout_reverse
from .plans import metered_plan

log = logging.getLogger(__name__)

# The reason a grant is suspended for non-payment: only a suspension with this reason is lifted by
# a paid invoice (a compliance suspension or a dispute stays until staff decide).
UNPAID_REASON = "metered invoice unpaid after the grace period"
MAX_RETRY_SECONDS = 3600


@dataclass(frozen=True)
class InvoiceFacts:
    """What an invoice says, from Stripe's invoice object or the local month close."""

    reference: str
    period_start: datetime
    period_end: datetime
    tokens: int
    amount_cents: int
    currency: str
    payment_reference: str = ""
    hosted_url: str = ""
    failure_message: str = ""


def grace_period() -> timedelta:
    return timedelta(hours=float(settings.BILLING_GRACE_HOURS))


# --- Opening a subscription --------------------------------------------------------------------

def subscription_open(*, order_id, grant_id, provider: str, connect_account: str = "", customer_id=None,
                      meter_event_name: str = "") -> Subscription:
    """Inside the transaction that activates a metered order's grant: its subscription row, so a
    metered grant never exists without one. In local test mode it is active at once; a pending one
    (Stripe) is for the caller to hand to the `billing.subscription_create` task after commit (a
    Stripe call never runs inside a transaction), retried with the sweep until Stripe accepts it.

    Raises IntegrityError (rolling the caller's transaction back) when `customer_id` already has
    a live subscription on `meter_event_name`: the caller checks that first, under a lock."""
    # Whole seconds, as Stripe's periods and meter event timestamps are.
    now = timezone.now().replace(microsecond=0)
    local = provider == Provider.LOCAL_TEST
    return Subscription.objects.create(
        order_id=order_id, grant_id=grant_id, provider=provider, connect_account=connect_account,
        customer_id=customer_id, meter_event_name=meter_event_name,
        state=Subscription.State.ACTIVE if local else Subscription.State.PENDING,
        stripe_subscription_id=f"testsub_{order_id.hex}" if local else None,
        started_at=now if local else None, current_period_start=now if local else None,
    )


@transaction.atomic
def subscription_record_created(*, subscription_id: int, stripe_subscription_id: str,
                                started_at: datetime) -> Subscription:
    """Stripe accepted the subscription: meter events for the grant may now be delivered."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    if sub.state != Subscription.State.PENDING:
        return sub
    sub.state, sub.stripe_subscription_id, sub.last_error = Subscription.State.ACTIVE, stripe_subscription_id, ""
    sub.started_at = sub.current_period_start = started_at
    sub.next_attempt_at = None
    sub.save()
    signals.subscription_started.send(sender=None, subscription=sub)
    audit_append(event="subscription.created", subject=sub.order,
                 data={"subscription": stripe_subscription_id, "grant": str(sub.grant_id),
                       "connect_account": sub.connect_account})
    return sub


@transaction.atomic
def subscription_record_failure(*, subscription_id: int, error: str) -> Subscription:
    """Creating the subscription at Stripe failed: keep the error for the customer's page and the
    admin, and schedule the next try (exponential backoff, at most an hour apart)."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    if sub.state != Subscription.State.PENDING:
        return sub
    sub.attempts += 1
    sub.last_error = error[:300]
    sub.next_attempt_at = timezone.now() + timedelta(seconds=min(MAX_RETRY_SECONDS, 10 * 2 ** sub.attempts))
    sub.save(update_fields=["attempts", "last_error", "next_attempt_at", "updated_at"])
    log.error("subscription %s for order %s could not be created (attempt %s): %s",
              sub.pk, sub.order_id, sub.attempts, error)
    return sub


def subscriptions_to_create() -> list[int]:
    """Pending subscriptions whose next try is due (or whose first task was lost)."""
    now = timezone.now()
    lost = timezone.now() - timedelta(minutes=2)
    pending = Subscription.objects.filter(state=Subscription.State.PENDING, provider=Provider.STRIPE)
    due = pending.filter(next_attempt_at__lte=now) | pending.filter(next_attempt_at__isnull=True,
                                                                     created_at__lte=lost)
    return list(due.values_list("pk", flat=True))


# --- Invoices ----------------------------------------------------------------------------------

def _upsert_invoice(sub: Subscription, facts: InvoiceFacts, state: str) -> tuple[Invoice, bool]:
    """The invoice row in `state`; a paid (or refunded, disputed) invoice never goes back to failed
    (a late failure notice after the success changes nothing). Returns (invoice, changed)."""
    invoice = Invoice.objects.select_for_update().filter(reference=facts.reference).first()
    if invoice is None:
        invoice = Invoice(subscription=sub, reference=facts.reference, currency=facts.currency.lower())
    elif invoice.subscription_id != sub.pk:
        log.error("invoice %s belongs to subscription %s, not %s; ignored", facts.reference,
                  invoice.subscription_id, sub.pk)
        return invoice, False
    elif invoice.state == state or invoice.state not in (Invoice.State.OPEN, Invoice.State.FAILED):
        return invoice, False
    invoice.period_start, invoice.period_end = facts.period_start, facts.period_end
    invoice.tokens, invoice.amount_cents, invoice.state = facts.tokens, facts.amount_cents, state
    invoice.payment_reference = facts.payment_reference or invoice.payment_reference
    invoice.hosted_url = facts.hosted_url or invoice.hosted_url
    invoice.failure_message = facts.failure_message[:300] if state == Invoice.State.FAILED else ""
    invoice.paid_at = timezone.now() if state == Invoice.State.PAID else None
    invoice.save()
    return invoice, True


@transaction.atomic
def invoice_mark_paid(*, subscription_id: int, facts: InvoiceFacts) -> tuple[Invoice, bool]:
    """An invoice was paid: record it, write the trainer's payout entry for the metered revenue (the
    platform fee rounded down to the cent, as for one-time fees), and, if the grant was suspended
    for non-payment, reinstate it. Idempotent: the second notice changes nothing."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    invoice, changed = _upsert_invoice(sub, facts, Invoice.State.PAID)
    if not changed:
        return invoice, False
    payout_record(order_id=sub.order_id, payee_id=metered_plan(sub.grant_id).payee_id, kind=PayoutEntry.Kind.METERED,
                  reference=invoice.reference, gross_cents=invoice.amount_cents, currency=invoice.currency,
                  via_connect=bool(sub.connect_account))
    signals.invoice_paid.send(sender=None, invoice=invoice)
    audit_append(event="invoice.paid", subject=sub.order,
                 data={"invoice": invoice.reference, "tokens": invoice.tokens, "amount_cents": invoice.amount_cents,
                       "currency": invoice.currency})
    if sub.state in (Subscription.State.PAST_DUE, Subscription.State.SUSPENDED) and not _unpaid_invoices(sub):
        _reinstate(sub)
    return invoice, True


def _unpaid_invoices(sub: Subscription) -> bool:
    return sub.invoices.filter(state=Invoice.State.FAILED).exists()


def _reinstate(sub: Subscription) -> None:
    was_suspended = sub.state == Subscription.State.SUSPENDED
    sub.state, sub.past_due_since = Subscription.State.ACTIVE, None
    sub.save(update_fields=["state", "past_due_since", "updated_at"])
    grant = Grant.objects.get(pk=sub.grant_id)
    if was_suspended and grant.state == Grant.State.SUSPENDED and grant.state_reason == UNPAID_REASON:
        grant_set_state(grant_id=grant.pk, state=Grant.State.ACTIVE, reason="metered invoice paid")
        _email_after_commit(sub, "Your licence is active again",
                            "Thank you: your invoice is paid and your licence is active again.")


@transaction.atomic
def invoice_mark_failed(*, subscription_id: int, facts: InvoiceFacts) -> tuple[Invoice, bool]:
    """An invoice's payment failed: the subscription is past due from now (the first failure
    counts), the customer is e-mailed, and the grant is suspended when the grace period
    (BILLING_GRACE_HOURS) ends unpaid, at once if it is zero."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    invoice, changed = _upsert_invoice(sub, facts, Invoice.State.FAILED)
    if not changed or sub.state == Subscription.State.ENDED:
        return invoice, changed
    if sub.state == Subscription.State.ACTIVE:
        sub.state, sub.past_due_since = Subscription.State.PAST_DUE, timezone.now()
        sub.save(update_fields=["state", "past_due_since", "updated_at"])
    audit_append(event="invoice.payment_failed", subject=sub.order,
                 data={"invoice": invoice.reference, "amount_cents": invoice.amount_cents,
                       "message": invoice.failure_message})
    signals.invoice_payment_failed.send(sender=None, invoice=invoice)
    # A subscription whose creation is still being recorded has no past-due time yet: count from now.
    deadline = (sub.past_due_since or timezone.now()) + grace_period()
    _email_after_commit(sub, "Your payment failed",
                        f"We could not take the payment of your invoice {invoice.reference} "
                        f"({money(invoice.amount_cents, invoice.currency)}): "
                        f"{invoice.failure_message or 'the card was declined'}.\n\nPlease update your card "
                        f"or pay the invoice{' at ' + invoice.hosted_url if invoice.hosted_url else ''}. "
                        f"Unless it is paid by {deadline:%Y-%m-%d %H:%M} UTC your licence will be suspended.")
    if deadline <= timezone.now() and sub.state == Subscription.State.PAST_DUE:
        _suspend(sub)
    return invoice, True


def _suspend(sub: Subscription) -> None:
    sub.state = Subscription.State.SUSPENDED
    sub.save(update_fields=["state", "updated_at"])
    grant = Grant.objects.get(pk=sub.grant_id)
    if grant.state == Grant.State.ACTIVE:
        grant_set_state(grant_id=grant.pk, state=Grant.State.SUSPENDED, reason=UNPAID_REASON)
        _email_after_commit(sub, "Your licence is suspended",
                            "Your metered invoice is still unpaid after the grace period, so your licence "
                            "is suspended. Paying the invoice reinstates it at once.")


def subscriptions_suspend_overdue(*, now: datetime | None = None) -> int:
    """Periodic: suspend the grants of subscriptions past due for longer than the grace period.
    Each in its own short transaction. Returns how many were suspended."""
    cutoff = (now or timezone.now()) - grace_period()
    due = Subscription.objects.filter(state=Subscription.State.PAST_DUE, past_due_since__lte=cutoff)
    return sum(subscription_suspend_if_overdue(subscription_id=pk, cutoff=cutoff)
               for pk in list(due.values_list("pk", flat=True)))


@transaction.atomic
def subscription_suspend_if_overdue(*, subscription_id: int, cutoff: datetime) -> bool:
    """Suspend the subscription's grant if it is still past due since before `cutoff`."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    if sub.state != Subscription.State.PAST_DUE or sub.past_due_since > cutoff:
        return False  # paid meanwhile
    _suspend(sub)
    return True


# --- The end of a subscription, refunds and disputes -------------------------------------------

@transaction.atomic
def subscription_mark_ended(*, subscription_id: int, reason: str) -> tuple[Subscription, bool]:
    """The subscription was cancelled (at Stripe, or by the customer): the grant ends with it (an
    expired grant; a revoked one stays revoked). Idempotent."""
    sub = Subscription.objects.select_for_update().get(pk=subscription_id)
    if sub.state == Subscription.State.ENDED:
        return sub, False
    sub.state = Subscription.State.ENDED
    sub.save(update_fields=["state", "updated_at"])
    grant = Grant.objects.get(pk=sub.grant_id)
    if grant.state in (Grant.State.ACTIVE, Grant.State.SUSPENDED):
        grant_set_state(grant_id=grant.pk, state=Grant.State.EXPIRED, reason=reason)
    audit_append(event="subscription.ended", subject=sub.order,
                 data={"subscription": sub.stripe_subscription_id, "reason": reason})
    return sub, True


def invoice_for_payment(payment_reference: str) -> Invoice | None:
    """The invoice a charge's PaymentIntent paid (refunds and disputes of metered charges)."""
    if not payment_reference:
        return None
    return Invoice.objects.select_related("subscription").filter(payment_reference=payment_reference).first()


def _email_after_commit(sub: Subscription, subject: str, body: str) -> None:
    customer = sub.grant.customer
    link = absolute_url(reverse("marketplace:customer_statement"))
    text = f"Hello {customer.username},\n\n{body}\n\nYour statement: {link}\n"
    transaction.on_commit(lambda: send_mail(f"Imprint: {subject}", text, None, [customer.email],
                                            fail_silently=True), robust=True)


@transaction.atomic
def invoice_mark_reversed(*, invoice_id, state: str, reason: str) -> tuple[Invoice, bool]:
    """A metered invoice's charge was refunded (state "refunded": the invoice's payout entry is
    reversed) or disputed ("disputed"); the billed order's owner hears it by `invoice_reversed`
    (a refund revokes the grant, a dispute suspends it)."""
    invoice = Invoice.objects.select_for_update().select_related("subscription").get(pk=invoice_id)
    target = Invoice.State.REFUNDED if state == Invoice.State.REFUNDED else Invoice.State.DISPUTED
    if invoice.state == target or invoice.state not in (Invoice.State.PAID, Invoice.State.DISPUTED):
        return invoice, False
    invoice.state = target
    invoice.save(update_fields=["state"])
    if target == Invoice.State.REFUNDED:
        payout_reverse(order_id=invoice.subscription.order_id, kind=PayoutEntry.Kind.METERED,
                       reference=invoice.reference)
    signals.invoice_reversed.send(sender=None, invoice=invoice, state=state, reason=reason)
    return invoice, True


# --- At Stripe -----------------------------------------------------------------------------------

def _stripe_customer(plan) -> tuple[str, str]:
    """(Stripe customer id, saved card) of the plan's payer. Raises BillingCustomer.DoesNotExist."""
    billing = BillingCustomer.objects.get(user_id=plan.customer_id)
    return plan.stripe_customer_id or billing.stripe_customer_id, billing.default_payment_method


def subscription_create_remote(*, subscription_id: int) -> Subscription:
    """Create the pending subscription at Stripe and record it; on failure record the error (the
    customer's page shows it, the sweep retries) and raise it (billing.errors.GatewayError, or
    BillingCustomer.DoesNotExist). The idempotency key is the order's, so a retry after a lost
    response never makes a second subscription. With Stripe Connect each invoice is paid to the
    trainer's account less the platform's fee (billing.fees)."""
    sub = Subscription.objects.get(pk=subscription_id)
    if sub.state != Subscription.State.PENDING:
        return sub
    try:
        plan = metered_plan(sub.grant_id)
        customer, card = _stripe_customer(plan)
        created = gateway.subscription_create(
            key=f"imprint-subscription-{sub.order_id}", customer=customer, price=plan.price_ensure(),
            metadata={"imprint_order": str(sub.order_id), "imprint_grant": str(sub.grant_id),
                      "imprint_subscription": str(sub.pk)},
            payment_method=card, connect_account=sub.connect_account)
    except (GatewayError, BillingCustomer.DoesNotExist) as exc:
        message = exc.shown if isinstance(exc, GatewayError) else (str(exc) or type(exc).__name__)
        subscription_record_failure(subscription_id=sub.pk, error=f"Stripe refused the subscription: {message}")
        raise
    started_at = datetime.fromtimestamp(int(created.started), tz=UTC) if created.started else timezone.now()
    return subscription_record_created(subscription_id=sub.pk, stripe_subscription_id=created.id,
                                       started_at=started_at)


def subscription_cancel_remote(*, subscription_id: int) -> None:
    """Cancel the subscription at Stripe now (its grant was revoked): no further invoices.
    Stripe's customer.subscription.deleted webhook then ends it here."""
    sub = Subscription.objects.get(pk=subscription_id)
    if sub.provider == Provider.STRIPE and sub.stripe_subscription_id:
        gateway.subscription_cancel(sub.stripe_subscription_id)
