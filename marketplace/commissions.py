"""Commissions: a customer hires a trainer to fine-tune a model for them, paid on delivery.

The money is billing's (billing.held: charged to the platform when a proposal is accepted, held as
the platform's liability, transferred to the trainer less the fee on acceptance, refunded on
cancellation or a missed deadline); the data is training's (lent to the chosen trainer's jobs,
never their download); the result is licensing's (a grant on the delivered version, exclusive when
the commission is). This module moves a commission through its states, each by a conditional
update under the row's lock, audited, with an e-mail to whoever must act next; Stripe calls and
money movements run after commit (`commission_settle`, retried by the beat sweep).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.services import user_require_verified_email
from audit.services import audit_append
from billing.held import held_payment_open, held_payment_refund, held_payment_release
from billing.models import HeldPayment
from core.links import absolute_url
from licensing.models import Grant
from licensing.services import acceptance_record, grant_activate, grant_create_pending, grant_set_state, terms_create
from licensing.terms import OWNERSHIPS, USES, validate_terms
from training.base_models import BASE_MODELS
from training.models import DatasetUpload, ModelVersion, TrainingJob
from training.services.access import dataset_lend, dataset_lending_end

from .errors import (
    CommissionInvalid,
    CommissionNotFound,
    CommissionStateConflict,
    DeliveryInvalid,
    ProposalInvalid,
    ProposalNotFound,
)
from .models import Commission, Proposal
from .services import CURRENCIES, MAX_FEE_CENTS

log = logging.getLogger(__name__)
State = Commission.State
MAX_EXAMPLES = 10
SETTLE_TASK = "marketplace.commission_settle"


# --- E-mails -----------------------------------------------------------------------------------

def _email(commission: Commission, users, subject: str, body: str) -> None:
    """After commit, to each user: what happened and the commission's page."""
    link = absolute_url(reverse("marketplace:commission_detail", args=[commission.pk]))
    for user in users:
        text = f"Hello {user.username},\n\n{body}\n\nThe commission: {link}\n"
        transaction.on_commit(lambda u=user, t=text: send_mail(f"Imprint: {subject}", t, None, [u.email],
                                                               fail_silently=True), robust=True)


def _trainer(commission: Commission):
    return commission.accepted_proposal.trainer if commission.accepted_proposal_id else None


# --- Posting and proposing ---------------------------------------------------------------------

def commission_terms(*, uses, ownership: str, exclusive: bool) -> dict:
    """The licence a commission asks for, as a terms document's rights (validated here; the rights
    chain joins at delivery from the version's inputs). Raises CommissionInvalid."""
    from licensing.errors import TermsInvalid

    raw = {"uses": list(uses or []), "ownership": ownership,
           "samples": {"publish": True, "resell": ownership in ("customer", "public")},
           "quota": {"tokens": settings.COMMISSION_QUOTA_TOKENS, "period": "month"},
           "rate_limit_per_minute": 60, "duration_days": None,
           "restrictions": ["Made to order for one customer; not sold to anyone else."] if exclusive else []}
    try:
        validate_terms(raw)
    except TermsInvalid as exc:
        field, message = next(iter(exc.errors.items())) if getattr(exc, "errors", None) else ("uses", str(exc))
        raise CommissionInvalid(message, param=field) from exc
    return raw


def _check_money(cents, currency: str, param: str) -> None:
    if not isinstance(cents, int) or isinstance(cents, bool) or not 50 <= cents <= MAX_FEE_CENTS:
        raise CommissionInvalid(f"An amount is a whole number of cents from 50 to {MAX_FEE_CENTS}.", param=param)
    if currency not in CURRENCIES:
        raise CommissionInvalid(f"The currency must be one of {', '.join(CURRENCIES)}.", param="currency")


def _clean_examples(examples) -> list[str]:
    if examples is None:
        return []
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise CommissionInvalid("Examples are a list of texts.", param="examples")
    cleaned = [e.strip()[:5000] for e in examples if e.strip()]
    if len(cleaned) > MAX_EXAMPLES:
        raise CommissionInvalid(f"At most {MAX_EXAMPLES} examples.", param="examples")
    return cleaned


@transaction.atomic
def commission_create(*, customer, title: str, description: str, examples: list[str] | None, budget_cents: int,
                      currency: str, uses: list[str], ownership: str, exclusive: bool, deadline: datetime,
                      dataset_upload_id=None, dataset_id=None, show_dataset_stats: bool = False) -> Commission:
    """Post a commission (open for proposals). The dataset, when given, is one of the customer's own
    uploads (validated and attested by training's upload services). Raises EmailNotVerified,
    CommissionInvalid."""
    user_require_verified_email(user=customer)
    title, description, currency = (title or "").strip(), (description or "").strip(), (currency or "").lower()
    if not title or len(title) > 200:
        raise CommissionInvalid("Give the commission a title of at most 200 characters.", param="title")
    if not description:
        raise CommissionInvalid("Describe what the model should do.", param="description")
    _check_money(budget_cents, currency, "budget_cents")
    if deadline is None or deadline <= timezone.now() + timedelta(hours=1):
        raise CommissionInvalid("The deadline must be at least an hour from now.", param="deadline")
    if ownership not in OWNERSHIPS or any(u not in USES for u in uses or []):
        raise CommissionInvalid("Choose the uses and who owns the outputs from the lists.", param="uses")
    upload = None
    if dataset_upload_id or dataset_id:
        found = DatasetUpload.objects.filter(owner=customer)
        upload = (found.filter(pk=dataset_upload_id) if dataset_upload_id else found.filter(dataset_id=dataset_id)).first()
        if upload is None or upload.state == DatasetUpload.State.REFUSED:
            raise CommissionInvalid("Attach one of your own uploads that was not refused.", param="dataset")
    commission = Commission.objects.create(
        customer=customer, title=title, description=description, examples=_clean_examples(examples),
        dataset_upload=upload, show_dataset_stats=bool(show_dataset_stats), budget_cents=budget_cents,
        currency=currency, terms_raw=commission_terms(uses=uses, ownership=ownership, exclusive=exclusive),
        exclusive=bool(exclusive), deadline=deadline)
    audit_append(event="commission.posted", actor=customer, subject=commission,
                 data={"budget_cents": budget_cents, "currency": currency, "exclusive": bool(exclusive),
                       "deadline": deadline, "dataset_upload": str(upload.pk) if upload else None})
    return commission


def _locked(commission_id) -> Commission:
    commission = (Commission.objects.select_for_update(of=("self",))
                  .select_related("customer", "accepted_proposal__trainer").filter(pk=commission_id).first())
    if commission is None:
        raise CommissionNotFound("No such commission.", param="commission")
    return commission


@transaction.atomic
def proposal_submit(*, trainer, commission_id, price_cents: int, base_model: str, method: str, steps: int,
                    context_length: int, delivery_date: datetime, message: str = "") -> Proposal:
    """A trainer's proposal for an open commission (one per trainer). Raises CommissionNotFound,
    CommissionStateConflict (not open, or the trainer's own), ProposalInvalid."""
    commission = _locked(commission_id)
    if commission.customer_id == trainer.pk:
        raise CommissionStateConflict("You cannot propose for your own commission.", param="commission")
    if commission.state != State.OPEN or commission.deadline <= timezone.now():
        raise CommissionStateConflict("This commission is not taking proposals.", param="commission")
    try:
        _check_money(price_cents, commission.currency, "price_cents")
    except CommissionInvalid as exc:
        raise ProposalInvalid(exc.message, param="price_cents") from exc
    if base_model not in BASE_MODELS:
        raise ProposalInvalid("Choose one of the base models this server offers.", param="base_model")
    if method not in Proposal.Method.values:
        raise ProposalInvalid("The method is full or lora.", param="method")
    if not isinstance(steps, int) or not 1 <= steps <= 1_000_000:
        raise ProposalInvalid("Plan 1 to 1,000,000 steps.", param="steps")
    if not isinstance(context_length, int) or not 8 <= context_length <= 4096:
        raise ProposalInvalid("The context is 8 to 4096 tokens.", param="context_length")
    if delivery_date is None or not timezone.now() < delivery_date <= commission.deadline:
        raise ProposalInvalid("Deliver between now and the commission's deadline.", param="delivery_date")
    try:
        with transaction.atomic():
            proposal = Proposal.objects.create(
                commission=commission, trainer=trainer, price_cents=price_cents, base_model=base_model,
                method=method, steps=steps, context_length=context_length, delivery_date=delivery_date,
                message=(message or "").strip()[:5000])
    except IntegrityError as exc:
        raise CommissionStateConflict("You have already proposed for this commission.", param="commission") from exc
    audit_append(event="commission.proposal", actor=trainer, subject=commission,
                 data={"proposal": str(proposal.pk), "price_cents": price_cents, "base_model": base_model})
    _email(commission, [commission.customer], "a new proposal for your commission",
           f"{trainer.username} proposes to do \u201c{commission.title}\u201d for "
           f"{price_cents / 100:.2f} {commission.currency.upper()}.")
    return proposal


@transaction.atomic
def proposal_accept(*, customer, proposal_id) -> Commission:
    """The customer accepts one proposal: the others are declined (and told), and the payment to be
    held opens for its price. Accepting the same proposal again returns the commission as it is.
    Raises ProposalNotFound, CommissionStateConflict, CommissionInvalid (the dataset is not ready)."""
    proposal = Proposal.objects.select_related("trainer").filter(pk=proposal_id,
                                                                 commission__customer=customer).first()
    if proposal is None:
        raise ProposalNotFound("No such proposal for your commissions.", param="proposal")
    commission = _locked(proposal.commission_id)
    if commission.accepted_proposal_id == proposal.pk:
        return commission
    if commission.state != State.OPEN or proposal.state != Proposal.State.OPEN:
        raise CommissionStateConflict(f"This commission is {commission.get_state_display()}; "
                                      "a proposal can no longer be accepted.", param="proposal")
    if commission.dataset_upload_id and commission.dataset is None:
        raise CommissionInvalid("Your dataset is still being processed; accept once it is ready.", param="dataset")
    Proposal.objects.filter(pk=proposal.pk).update(state=Proposal.State.ACCEPTED)
    others = list(commission.proposals.filter(state=Proposal.State.OPEN).exclude(pk=proposal.pk)
                  .select_related("trainer"))
    commission.proposals.filter(pk__in=[p.pk for p in others]).update(state=Proposal.State.DECLINED)
    held = held_payment_open(purpose=commission.purpose, payer=customer, payee=proposal.trainer,
                             amount_cents=proposal.price_cents, currency=commission.currency)
    commission.state, commission.accepted_proposal, commission.held_payment = State.AWARDED, proposal, held
    commission.save(update_fields=["state", "accepted_proposal", "held_payment", "updated_at"])
    audit_append(event="commission.awarded", actor=customer, subject=commission,
                 data={"proposal": str(proposal.pk), "trainer": f"user:{proposal.trainer_id}",
                       "price_cents": proposal.price_cents, "declined": [str(p.pk) for p in others]})
    _email(commission, [proposal.trainer], "your proposal was accepted",
           f"{customer.username} accepted your proposal for \u201c{commission.title}\u201d. You can start once "
           "the payment is held; we e-mail you then.")
    _email(commission, [p.trainer for p in others], "another proposal was chosen",
           f"Thank you for proposing for \u201c{commission.title}\u201d: the customer chose another proposal.")
    return commission


# --- Payment held (billing tells us by signal) --------------------------------------------------

def commission_funded(*, held: HeldPayment) -> str | None:
    """Inside the transaction that recorded the held money: an awarded commission is in progress,
    its dataset lent to the chosen trainer's jobs. Money held for a commission that is no longer
    awaiting it (cancelled meanwhile) is refunded after commit. None: not a commission's."""
    commission = Commission.objects.select_for_update(of=("self",)).filter(held_payment=held).first()
    if commission is None:
        return None
    if commission.state != State.AWARDED:
        transaction.on_commit(lambda: _send_settle(commission.pk), robust=True)
        return f"commission {commission.state}: the money goes back"
    trainer = _trainer(Commission.objects.select_related("accepted_proposal__trainer").get(pk=commission.pk))
    commission.state = State.IN_PROGRESS
    commission.save(update_fields=["state", "updated_at"])
    if commission.dataset is not None:
        dataset_lend(dataset=commission.dataset, user=trainer, purpose=commission.purpose,
                     exclusive=commission.exclusive)
    audit_append(event="commission.funded", subject=commission,
                 data={"held_payment": held.pk, "amount_cents": held.amount_cents, "currency": held.currency})
    _email(commission, [trainer], "the payment is held: start training",
           f"The payment for \u201c{commission.title}\u201d is held by Imprint until the customer accepts your "
           "delivery. The customer's dataset is available to your training jobs from the commission's page.")
    _email(commission, [commission.customer], "your payment is held",
           f"We hold your payment for \u201c{commission.title}\u201d until you accept the delivery.")
    return "commission funded"


def commission_refunded_elsewhere(*, held: HeldPayment, reason: str) -> None:
    """Held money was refunded outside our own cancellation (Stripe's dashboard): the work stops."""
    commission = Commission.objects.filter(held_payment=held).first()
    if commission is not None and commission.state not in (State.CANCELLED, State.COMPLETED):
        _cancel(commission.pk, actor=None, reason=f"payment refunded ({reason})", settle=False)


# --- Delivery and review -----------------------------------------------------------------------

def _delivered_version(commission: Commission, trainer, version_id) -> ModelVersion:
    version = (ModelVersion.objects.select_related("job__dataset")
               .filter(pk=version_id, owner=trainer).first())
    if version is None:
        raise DeliveryInvalid("No such model version of yours.", param="model_version")
    if version.job.state != TrainingJob.State.SUCCEEDED:
        raise DeliveryInvalid("Deliver a version of a succeeded training job.", param="model_version")
    dataset = commission.dataset
    if dataset is not None and version.job.dataset_id != dataset.pk:
        raise DeliveryInvalid("Deliver a version trained on the customer's dataset.", param="model_version")
    if dataset is None and version.job.created_at < commission.created_at:
        raise DeliveryInvalid("Deliver a version trained for this commission.", param="model_version")
    return version


def _terms_for(commission: Commission, version: ModelVersion) -> dict:
    """The wanted licence, attributed to the data's rights-holders (the customer's data licences
    may require attribution of published outputs)."""
    holders = version.job.dataset.rights_holders or [commission.customer.username]
    return {**commission.terms_raw, "attribution": f"Trained on data of {', '.join(holders)}"[:300]}


@transaction.atomic
def commission_deliver(*, trainer, commission_id, model_version_id) -> Commission:
    """The chosen trainer delivers a version made by one of their jobs (on the customer's dataset,
    when there is one). The customer's grant on it is created pending (licence terms with the
    version's rights chain); the review window starts. Raises CommissionNotFound,
    CommissionStateConflict, DeliveryInvalid, TermsNotAllowedByInputs."""
    commission = _locked(commission_id)
    if _trainer(commission) is None or _trainer(commission).pk != trainer.pk:
        raise CommissionNotFound("No such commission of yours.", param="commission")
    if commission.state != State.IN_PROGRESS:
        raise CommissionStateConflict(f"This commission is {commission.get_state_display()}; "
                                      "only one in progress takes a delivery.", param="commission")
    if timezone.now() >= commission.deadline:
        raise CommissionStateConflict("The deadline has passed.", param="commission")
    version = _delivered_version(commission, trainer, model_version_id)
    terms = terms_create(raw=_terms_for(commission, version), model_version=version, created_by=commission.customer)
    if commission.grant_id:  # a revision replaces the first delivery's pending grant
        grant_set_state(grant_id=commission.grant_id, state=Grant.State.REVOKED, reason="replaced by a revision")
    grant = grant_create_pending(customer=commission.customer, model_version=version, terms=terms, acceptance=None,
                                 price_paid_cents=commission.accepted_proposal.price_cents,
                                 currency=commission.currency)
    now = timezone.now()
    commission.state, commission.delivered_version, commission.grant = State.DELIVERED, version, grant
    commission.delivered_at, commission.review_ends_at = now, now + timedelta(hours=settings.COMMISSION_REVIEW_HOURS)
    commission.save(update_fields=["state", "delivered_version", "grant", "delivered_at", "review_ends_at",
                                   "updated_at"])
    audit_append(event="commission.delivered", actor=trainer, subject=commission,
                 data={"model_version": str(version.pk), "grant": str(grant.pk), "terms": terms.sha256,
                       "review_ends_at": commission.review_ends_at})
    _email(commission, [commission.customer], "your model is delivered: review it",
           f"{trainer.username} delivered \u201c{commission.title}\u201d. Try it, then accept it, ask for a "
           f"revision or open a dispute by {commission.review_ends_at:%Y-%m-%d %H:%M} UTC; with no answer by then "
           "the delivery is accepted.")
    return commission


def _customer_commission(customer, commission_id) -> Commission:
    commission = _locked(commission_id)
    if commission.customer_id != customer.pk:
        raise CommissionNotFound("No such commission of yours.", param="commission")
    return commission


def _review_open(commission: Commission) -> None:
    if commission.state != State.DELIVERED:
        raise CommissionStateConflict(f"This commission is {commission.get_state_display()}; there is no "
                                      "delivery to review.", param="commission")


@transaction.atomic
def commission_accept(*, customer, commission_id) -> Commission:
    """The customer accepts the delivery: their grant becomes active, the trainer is paid after
    commit (held money released less the fee). Accepting again changes nothing. Raises
    CommissionNotFound, CommissionStateConflict."""
    commission = _customer_commission(customer, commission_id)
    if commission.state == State.COMPLETED:
        return commission
    _review_open(commission)
    return _complete(commission, actor=customer, reason="accepted by the customer")


def _complete(commission: Commission, *, actor, reason: str) -> Commission:
    terms = commission.grant.terms
    acceptance = acceptance_record(user=commission.customer, terms=terms, ip_address=None,
                                   user_agent=f"commission {commission.pk}")
    Grant.objects.filter(pk=commission.grant_id).update(acceptance=acceptance)
    grant_activate(grant_id=commission.grant_id, reason=f"commission {commission.pk} {reason}", actor=actor)
    commission.state, commission.closed_at = State.COMPLETED, timezone.now()
    commission.save(update_fields=["state", "closed_at", "updated_at"])
    if commission.dataset is not None:
        dataset_lending_end(dataset_id=commission.dataset.pk, user_id=_trainer(commission).pk,
                            exclusive=commission.exclusive)
    audit_append(event="commission.completed", actor=actor, subject=commission,
                 data={"reason": reason, "grant": str(commission.grant_id)})
    transaction.on_commit(lambda: _send_settle(commission.pk), robust=True)
    _email(commission, [_trainer(commission)], "your delivery was accepted",
           f"\u201c{commission.title}\u201d was accepted ({reason}). Your share of the held payment is on its "
           "way; your statement shows it.")
    _email(commission, [commission.customer], "your commissioned model is yours to use",
           f"Your licence for \u201c{commission.title}\u201d is active ({reason}).")
    return commission


@transaction.atomic
def commission_request_revision(*, customer, commission_id, note: str) -> Commission:
    """Ask once for a revision, before the deadline: the commission is back in progress and the
    delivered version's pending grant is withdrawn. Raises CommissionNotFound,
    CommissionStateConflict, CommissionInvalid."""
    commission = _customer_commission(customer, commission_id)
    _review_open(commission)
    if commission.revisions_used >= 1:
        raise CommissionStateConflict("You have had your revision; accept the delivery or open a dispute.",
                                      param="commission")
    if timezone.now() >= commission.deadline:
        raise CommissionStateConflict("The deadline has passed; a revision can no longer be delivered.",
                                      param="commission")
    if not (note or "").strip():
        raise CommissionInvalid("Say what should change.", param="note")
    grant_set_state(grant_id=commission.grant_id, state=Grant.State.REVOKED, reason="revision requested")
    commission.state, commission.revisions_used, commission.revision_note = State.IN_PROGRESS, 1, note.strip()[:5000]
    commission.review_ends_at = None
    commission.save(update_fields=["state", "revisions_used", "revision_note", "review_ends_at", "updated_at"])
    audit_append(event="commission.revision_requested", actor=customer, subject=commission,
                 data={"note": commission.revision_note[:500]})
    _email(commission, [_trainer(commission)], "a revision is requested",
           f"The customer asks for a revision of \u201c{commission.title}\u201d before "
           f"{commission.deadline:%Y-%m-%d %H:%M} UTC:\n\n{commission.revision_note}")
    return commission


@transaction.atomic
def commission_dispute(*, customer, commission_id, reason: str) -> Commission:
    """Dispute the delivery: the money stays held and compliance opens a case holding the training
    evidence (it hears of `commission.disputed` from the audit log). Raises CommissionNotFound,
    CommissionStateConflict, CommissionInvalid."""
    commission = _customer_commission(customer, commission_id)
    _review_open(commission)
    if not (reason or "").strip():
        raise CommissionInvalid("Say what is wrong with the delivery.", param="reason")
    commission.state, commission.dispute_reason = State.DISPUTED, reason.strip()[:5000]
    commission.save(update_fields=["state", "dispute_reason", "updated_at"])
    audit_append(event="commission.disputed", actor=customer, subject=commission,
                 data={"grant": str(commission.grant_id), "model_version": str(commission.delivered_version_id),
                       "trainer": f"user:{_trainer(commission).pk}", "reason": commission.dispute_reason[:500]})
    _email(commission, [_trainer(commission), commission.customer], "the delivery is disputed",
           f"The delivery of \u201c{commission.title}\u201d is disputed; the payment stays held while Imprint's "
           f"compliance staff review the training evidence.\n\nThe customer says: {commission.dispute_reason}")
    return commission


@transaction.atomic
def commission_dispute_resolve(*, staff, commission_id, outcome: str, reason: str) -> Commission:
    """Staff decide a disputed commission: "release" (the delivery stands: completed, the trainer is
    paid) or "refund" (cancelled, the customer refunded). Raises CommissionNotFound (also for
    anyone who is not staff), CommissionStateConflict, CommissionInvalid."""
    if not getattr(staff, "is_staff", False):
        raise CommissionNotFound("No such commission.", param="commission")
    commission = _locked(commission_id)
    if commission.state != State.DISPUTED:
        raise CommissionStateConflict("Only a disputed commission is decided by staff.", param="commission")
    if outcome == "release":
        return _complete(commission, actor=staff, reason=f"dispute decided for the trainer: {reason}")
    if outcome == "refund":
        return _cancel(commission.pk, actor=staff, reason=f"dispute decided for the customer: {reason}")
    raise CommissionInvalid("The outcome is release or refund.", param="outcome")


# --- Cancellation, deadlines and the review window ------------------------------------------------

@transaction.atomic
def commission_cancel(*, user, commission_id, reason: str = "") -> Commission:
    """The customer withdraws a commission nobody has started (open or awarded); the chosen trainer
    gives up one in progress. Held money is refunded after commit. Raises CommissionNotFound,
    CommissionStateConflict."""
    commission = _locked(commission_id)
    trainer = _trainer(commission)
    is_customer, is_trainer = commission.customer_id == user.pk, trainer is not None and trainer.pk == user.pk
    if not (is_customer or is_trainer):
        raise CommissionNotFound("No such commission of yours.", param="commission")
    if commission.state == State.CANCELLED:
        return commission
    allowed = (State.OPEN, State.AWARDED) if is_customer else (State.AWARDED, State.IN_PROGRESS)
    if commission.state not in allowed:
        raise CommissionStateConflict(f"This commission is {commission.get_state_display()} and cannot be "
                                      "cancelled by you.", param="commission")
    who = "the customer" if is_customer else "the trainer"
    return _cancel(commission.pk, actor=user, reason=f"cancelled by {who}" + (f": {reason}" if reason else ""))


def _cancel(commission_id, *, actor, reason: str, settle: bool = True) -> Commission:
    commission = _locked(commission_id)
    if commission.state in (State.CANCELLED, State.COMPLETED):
        return commission
    commission.state, commission.cancel_reason, commission.closed_at = State.CANCELLED, reason[:300], timezone.now()
    commission.save(update_fields=["state", "cancel_reason", "closed_at", "updated_at"])
    commission.proposals.filter(state=Proposal.State.OPEN).update(state=Proposal.State.DECLINED)
    if commission.grant_id and commission.grant.state == Grant.State.PENDING:
        grant_set_state(grant_id=commission.grant_id, state=Grant.State.REVOKED, reason=reason[:200])
    trainer = _trainer(commission)
    if commission.dataset is not None and trainer is not None:
        # Versions trained on the data stay unsellable and undownloadable: the customer's data was
        # lent for work that was never accepted.
        dataset_lending_end(dataset_id=commission.dataset.pk, user_id=trainer.pk, exclusive=True)
    audit_append(event="commission.cancelled", actor=actor, subject=commission, data={"reason": reason[:300]})
    if settle and commission.held_payment_id:
        transaction.on_commit(lambda: _send_settle(commission.pk), robust=True)
    _email(commission, [commission.customer] + ([trainer] if trainer else []), "a commission was cancelled",
           f"\u201c{commission.title}\u201d is cancelled ({reason}). Any payment held for it is refunded.")
    return commission


def _send_settle(commission_id) -> None:
    from celery import current_app

    current_app.send_task(SETTLE_TASK, args=[str(commission_id)])


def commission_settle(*, commission_id) -> str:
    """Move the held money as the commission's state says: released to the trainer once completed,
    refunded to the customer once cancelled. Outside any transaction (Stripe calls); safe to repeat
    (billing's conditional updates and idempotency keys). Raises GatewayError for the task to retry."""
    commission = Commission.objects.select_related("held_payment").get(pk=commission_id)
    held = commission.held_payment
    if held is None:
        return "nothing held"
    if commission.state == State.COMPLETED:
        return held_payment_release(held_id=held.pk).state
    if commission.state == State.CANCELLED:
        return held_payment_refund(held_id=held.pk, reason=commission.cancel_reason or "commission cancelled").state
    return held.state


def commissions_sweep(*, now: datetime | None = None) -> dict:
    """Periodic (beat), safe to run twice at once: deliveries whose review window lapsed are
    accepted; commissions past their deadline without an accepted delivery are cancelled (and
    refunded); money whose settling failed earlier is settled again."""
    now = now or timezone.now()
    done = {"accepted": 0, "cancelled": 0, "settled": 0}
    lapsed = Commission.objects.filter(state=State.DELIVERED, review_ends_at__lte=now)
    for pk in list(lapsed.values_list("pk", flat=True)):
        done["accepted"] += _lapse_review(pk, now)
    late = Commission.objects.filter(state__in=(State.OPEN, State.AWARDED, State.IN_PROGRESS), deadline__lte=now)
    for pk in list(late.values_list("pk", flat=True)):
        done["cancelled"] += _miss_deadline(pk, now)
    unsettled = Commission.objects.filter(
        Q(state=State.COMPLETED, held_payment__state=HeldPayment.State.HELD)
        | Q(state=State.CANCELLED, held_payment__state__in=(HeldPayment.State.HELD, HeldPayment.State.PENDING)))
    for pk in list(unsettled.values_list("pk", flat=True)):
        try:
            commission_settle(commission_id=pk)
            done["settled"] += 1
        except Exception:  # noqa: BLE001 - one failing payment must not stop the others; retried next run
            log.exception("commission %s: settling its held payment failed; retried on the next sweep", pk)
    return done


@transaction.atomic
def _lapse_review(commission_id, now: datetime) -> int:
    commission = _locked(commission_id)
    if commission.state != State.DELIVERED or commission.review_ends_at > now:
        return 0  # answered meanwhile, or another sweep got there first
    _complete(commission, actor=None, reason="review window lapsed without an answer")
    return 1


@transaction.atomic
def _miss_deadline(commission_id, now: datetime) -> int:
    commission = _locked(commission_id)
    if commission.state not in (State.OPEN, State.AWARDED, State.IN_PROGRESS) or commission.deadline > now:
        return 0
    _cancel(commission.pk, actor=None, reason="deadline missed")
    return 1


def commission_get_for(*, user, commission_id) -> Commission:
    """A commission as `user` may see it: its customer and proposing trainers, any trainer while it
    is open, staff. Raises CommissionNotFound otherwise (strangers learn nothing)."""
    commission = (Commission.objects.select_related("customer", "accepted_proposal__trainer", "held_payment",
                                                    "delivered_version", "grant", "dataset_upload__dataset")
                  .filter(pk=commission_id).first())
    if commission is None or not commission_visible_to(commission, user):
        raise CommissionNotFound("No such commission.", param="commission")
    return commission


def commission_visible_to(commission: Commission, user) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or commission.customer_id == user.pk:
        return True
    if commission.proposals.filter(trainer=user).exists():
        return True
    return commission.state == State.OPEN and "trainer" in user.roles
