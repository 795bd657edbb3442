"""Cases: one matter for staff to decide about one grant, its decisions and the customer's answer."""

from __future__ import annotations

import logging

from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.links import site_root
from audit.services import audit_append
from billing.signals import first_outcome, held_dispute_decided
from licensing.models import Grant
from licensing.services import grant_set_state, grant_state_allowed
from training.model_names import model_name

from ..errors import (
    AnswerInvalid,
    CaseAlreadyAnswered,
    CaseNotFound,
    DecisionInvalid,
    DisputeAlreadyDecided,
    FlagNotFound,
)
from ..models import Case, CustomerAnswer, Decision, Flag, Report, Severity

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 2_000
MAX_ANSWER_CHARS = 20_000


def case_undecided(grant: Grant) -> Case | None:
    """The grant's case still to be decided, locked (new evidence about the grant joins it)."""
    return (Case.objects.select_for_update().filter(grant=grant).exclude(state=Case.State.DECIDED)
            .order_by("created_at").first())


def case_attach(case: Case, flags: list[Flag]) -> None:
    """Put flags into a case; the case takes the highest severity among them."""
    Flag.objects.filter(pk__in=[f.pk for f in flags]).update(case=case)
    for flag in flags:
        flag.case = case
    top = max([case.severity] + [f.severity for f in flags])
    if top != case.severity:
        case.severity = top
        case.save(update_fields=["severity"])


def case_open(*, grant: Grant, source: str, severity: int, summary: str, report: Report | None = None,
               opened_by=None) -> Case:
    """A new case about `grant` (audited). Call it inside a transaction."""
    case = Case.objects.create(grant=grant, customer_id=grant.customer_id, model_version_id=grant.model_version_id,
                               source=source, report=report, opened_by=opened_by, severity=severity,
                               summary=summary[:300])
    audit_append(event="case.opened", actor=opened_by, subject=case,
                 data={"grant": str(grant.pk), "customer": f"user:{grant.customer_id}", "source": source,
                       "severity": severity, "report": report.pk if report else None})
    return case


@transaction.atomic
def case_open_from_flag(*, flag_id: int, staff) -> Case:
    """Open a case about the flag's grant holding every flag of that grant not yet in a case (or add
    them to the grant's undecided case). Raises FlagNotFound, and DecisionInvalid when the flag names
    no grant (nothing to decide on)."""
    flag = Flag.objects.select_for_update().filter(pk=flag_id).first()
    if flag is None:
        raise FlagNotFound("No such flag.", param="flag")
    if flag.grant is None:
        raise DecisionInvalid("This flag names no grant, so there is nothing a case could decide on.")
    if flag.case_id is not None:
        return flag.case
    pending = list(Flag.objects.filter(grant=flag.grant, case__isnull=True))
    case = case_undecided(flag.grant) or case_open(
        grant=flag.grant, source=Case.Source.FLAG, severity=max(f.severity for f in pending),
        summary=f"{flag.get_kind_display()} ({len(pending)} flag{'s' if len(pending) != 1 else ''})",
        opened_by=staff)
    case_attach(case, pending)
    return case


_ACTION_STATES = {
    Decision.Action.SUSPEND: Grant.State.SUSPENDED,
    Decision.Action.REVOKE: Grant.State.REVOKED,
    Decision.Action.REINSTATE: Grant.State.ACTIVE,
}


# The decisions of a disputed commission: they move held money, through billing's signal.
DISPUTE_ACTIONS = (Decision.Action.RELEASE, Decision.Action.REFUND)


def dispute_pending(case: Case) -> bool:
    """A disputed commission's case whose dispute staff have not decided yet (release or refund)."""
    return case.source == Case.Source.COMMISSION and not case.decisions.filter(action__in=DISPUTE_ACTIONS).exists()


def decision_actions(grant: Grant, case: Case | None = None) -> list[tuple[str, str]]:
    """The (action, label) pairs that make sense for a case in its grant's current state: a disputed
    commission first needs release or refund; otherwise dismiss and warn always, and suspend,
    revoke and reinstate only where they would change the grant's state."""
    if case is not None and dispute_pending(case):
        return [(value, label) for value, label in Decision.Action.choices if value in DISPUTE_ACTIONS]
    return [(value, label) for value, label in Decision.Action.choices
            if value not in DISPUTE_ACTIONS and (
                value not in _ACTION_STATES
                or (grant.state != _ACTION_STATES[value]
                    and grant_state_allowed(current=grant.state, target=_ACTION_STATES[value])))]


def _dispute_decide(case: Case, *, staff, action: str, reason: str) -> Grant:
    """Inside case_decide's transaction: the owner of the disputed delivery releases or refunds the
    held money (billing.signals.held_dispute_decided); its errors roll the decision back."""
    if not dispute_pending(case):
        raise DisputeAlreadyDecided("This dispute has been decided already; its money has moved.", param="action")
    outcome = first_outcome(held_dispute_decided, subject_id=case.evidence.get("commission", ""),
                            grant_id=case.grant_id, outcome=action, staff=staff, reason=reason)
    if outcome is None:
        raise DecisionInvalid("No commission answers for this case's grant; nothing was decided.", param="action")
    return Grant.objects.get(pk=case.grant_id)


def case_decide(*, case_id: int, staff, action: str, reason: str) -> Decision:
    """Record a staff decision and apply it. Suspend, revoke and reinstate go through
    `grant_set_state`, so they take effect on the grant's next generation request (the 403 carries
    the reason); both the grant change and the decision are in the audit log. The customer and the
    model's trainer are e-mailed after commit.

    Raises CaseNotFound, DecisionInvalid (unknown action, missing reason) and GrantStateError (409,
    e.g. reinstating a revoked grant)."""
    reason = (reason or "").strip()
    if action not in Decision.Action.values:
        raise DecisionInvalid(f"Choose one of {', '.join(Decision.Action.values)}.", param="action")
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise DecisionInvalid(f"Give a reason (at most {MAX_REASON_CHARS} characters).", param="reason")
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id).first()
        if case is None:
            raise CaseNotFound("No such case.", param="case")
        if action in DISPUTE_ACTIONS:
            if case.source != Case.Source.COMMISSION:
                raise DecisionInvalid("Release and refund decide a disputed commission; this case is not one.",
                                      param="action")
            grant = _dispute_decide(case, staff=staff, action=action, reason=reason)
        elif dispute_pending(case):
            raise DecisionInvalid("First decide the dispute: release the payment to the trainer or refund "
                                  "the customer.", param="action")
        else:
            target = _ACTION_STATES.get(action)
            grant = (grant_set_state(grant_id=case.grant_id, state=target, reason=reason, actor=staff)
                     if target else case.grant)
        decision = Decision.objects.create(case=case, staff=staff, action=action, reason=reason,
                                           grant_state_after=grant.state)
        case.state, case.decided_at = Case.State.DECIDED, timezone.now()
        case.save(update_fields=["state", "decided_at"])
        audit_append(event="case.decided", actor=staff, subject=case,
                     data={"decision": decision.pk, "action": action, "reason": reason,
                           "grant": str(grant.pk), "grant_state": grant.state})
    decision_notify(decision=decision)
    return decision


def decision_notify(*, decision: Decision) -> int:
    """E-mail the decision to the customer and the model's trainer. Returns how many were sent.

    Runs after the decision committed; a mail server failure is logged, never undoes the decision."""
    case = Case.objects.select_related("customer", "model_version__owner", "grant").get(pk=decision.case_id)
    verb = {"dismiss": "dismissed", "warn": "a warning", "suspend": "suspension", "revoke": "revocation",
            "reinstate": "reinstatement", "release": "payment released to the trainer",
            "refund": "refund to the customer"}[decision.action]
    subject = f"[Imprint] Compliance case #{case.pk}: {verb}"
    site, model = site_root(), model_name(case.model_version)
    common = (f"Decision: {decision.get_action_display()}\nReason: {decision.reason}\n"
              f"Licence (grant) {case.grant_id} is now {decision.grant_state_after}.\n")
    messages = [
        EmailMessage(subject, f"Hello {case.customer.username},\n\nA compliance case about your licence for "
                              f"{model} was decided.\n\n{common}\n"
                              f"See the case and answer it: {site}/compliance/cases/{case.pk}/\n",
                     to=[case.customer.email]),
        EmailMessage(subject, f"Hello {case.model_version.owner.username},\n\nA compliance case about a "
                              f"licence of your model {model} was decided.\n\n{common}\n"
                              f"{site}/compliance/cases/{case.pk}/\n",
                     to=[case.model_version.owner.email]),
    ]
    messages = [m for m in messages if m.to[0]]
    try:
        return get_connection().send_messages(messages) or 0
    except Exception:
        logger.exception("Could not e-mail decision %s of case %s", decision.pk, case.pk)
        return 0


@transaction.atomic
def case_answer(*, case_id: int, customer, text: str) -> CustomerAnswer:
    """The customer's one answer to a case about them; an open case becomes `answered`.

    Raises CaseNotFound (not theirs), AnswerInvalid (empty or too long) and CaseAlreadyAnswered (409)."""
    text = (text or "").strip()
    if not text or len(text) > MAX_ANSWER_CHARS:
        raise AnswerInvalid(f"Write an answer of at most {MAX_ANSWER_CHARS} characters.", param="text")
    case = Case.objects.select_for_update().filter(pk=case_id, customer=customer).first()
    if case is None:
        raise CaseNotFound("No such case.", param="case")
    if CustomerAnswer.objects.filter(case=case).exists():
        raise CaseAlreadyAnswered("This case has been answered already; each case takes one answer.")
    try:
        with transaction.atomic():
            answer = CustomerAnswer.objects.create(case=case, author=customer, text=text)
    except IntegrityError as exc:  # a concurrent answer won the unique constraint
        raise CaseAlreadyAnswered("This case has been answered already; each case takes one answer.") from exc
    if case.state == Case.State.OPEN:
        case.state = Case.State.ANSWERED
        case.save(update_fields=["state"])
    audit_append(event="case.answered", actor=customer, subject=case, data={"answer": answer.pk})
    return answer


@transaction.atomic
def case_open_for_disputed_delivery(*, grant_id, commission_ref: str, reason: str, actor_ref: str = "") -> Case:
    """A customer disputed a commissioned delivery (heard from the audit log): a case about the
    delivered version's grant, holding the training evidence. Once per grant: a repeated notice
    returns the grant's undecided case."""
    from training.selectors import version_training_evidence

    grant = Grant.objects.select_related("model_version__job").get(pk=grant_id)
    existing = case_undecided(grant)
    if existing is not None and existing.source == Case.Source.COMMISSION:
        return existing
    case = case_open(grant=grant, source=Case.Source.COMMISSION, severity=Severity.MEDIUM,
                     summary=f"Disputed commission {commission_ref}: {reason}")
    case.evidence = {"commission": commission_ref, "reason": reason, "disputed_by": actor_ref,
                     "training": version_training_evidence(grant.model_version)}
    case.save(update_fields=["evidence"])
    return case
