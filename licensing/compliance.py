"""Compliance writes: automatic flags, public reports, cases, staff decisions, customer answers.

Where the evidence comes from:
- refused generation requests are recorded by inference as `generation.refused` audit entries;
  `flags_from_refusal` reads each one after commit (a post_save receiver in licensing.models) and
  raises a flag when a rule's threshold is reached within its window (purpose not permitted, repeated
  quota exhaustion, repeated rate-limit hits, use of a revoked grant);
- a revoked API key presented again: `flag_revoked_key_used` (called where keys are authenticated);
- a receipt that fails verification: `flags_from_verification` (reports here; the public verify API
  and page call it too);
- a reported text whose watermark names a grant: `report_submit` raises the flag and opens a case.

Flags of one kind about one subject within one window share a row (`dedupe_key`) whose evidence is
recomputed from the audit log on each new event, so a burst of refusals is one flag, not a thousand.

Settings (with their defaults): COMPLIANCE_REPORTS_PER_IP_PER_HOUR = 10;
COMPLIANCE_QUOTA_REFUSALS_THRESHOLD = 5 within COMPLIANCE_QUOTA_REFUSALS_WINDOW = 3600 s;
COMPLIANCE_RATE_REFUSALS_THRESHOLD = 20 within COMPLIANCE_RATE_REFUSALS_WINDOW = 600 s.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from .audit import audit_append
from .compliance_errors import (
    AnswerInvalid,
    CaseAlreadyAnswered,
    CaseNotFound,
    DecisionInvalid,
    FlagNotFound,
    ReportInvalid,
    ReportRateLimited,
)
from .models import (
    ApiKey,
    AuditEntry,
    Case,
    CustomerAnswer,
    Decision,
    Flag,
    Grant,
    Report,
    Severity,
)

logger = logging.getLogger(__name__)

MAX_REPORT_CHARS = 20_000
MAX_REASON_CHARS = 2_000
REPORT_WINDOW_SECONDS = 3600
EVIDENCE_ATTEMPTS = 20  # the most recent refusals quoted in a flag's evidence


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- Flags -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefusalRule:
    """Raise `kind` once `threshold` refusals with `code` hit one grant within `window` seconds."""

    kind: str
    severity: int
    threshold: int
    window: int


def _refusal_rule(code: str) -> RefusalRule | None:
    rules = {
        # One attempt is enough: the customer asked for a use the licence does not grant.
        "purpose_not_permitted": RefusalRule(Flag.Kind.PURPOSE_NOT_PERMITTED, Severity.MEDIUM, 1, 86_400),
        "insufficient_quota": RefusalRule(Flag.Kind.QUOTA_EXHAUSTED_REPEATEDLY, Severity.LOW,
                                          _setting("COMPLIANCE_QUOTA_REFUSALS_THRESHOLD", 5),
                                          _setting("COMPLIANCE_QUOTA_REFUSALS_WINDOW", 3600)),
        "rate_limit_exceeded": RefusalRule(Flag.Kind.RATE_LIMITED_REPEATEDLY, Severity.LOW,
                                           _setting("COMPLIANCE_RATE_REFUSALS_THRESHOLD", 20),
                                           _setting("COMPLIANCE_RATE_REFUSALS_WINDOW", 600)),
        # Only when the grant is revoked (checked below): a pending or expired grant is no breach.
        "licence_inactive": RefusalRule(Flag.Kind.USED_AFTER_REVOCATION, Severity.HIGH, 1, 86_400),
    }
    return rules.get(code)


def _attempt(entry: AuditEntry) -> dict:
    data = entry.data
    return {"audit_entry": entry.id, "at": entry.created_at.isoformat(), "status": data.get("status"),
            "code": data.get("code"), "purpose": data.get("purpose"), "key": data.get("key"),
            "model": data.get("model")}


def flags_from_refusal(*, audit_entry_id: int) -> Flag | None:
    """Raise (or refresh) the flag a refused generation request calls for, if any. Returns it.

    Raises nothing of its own: an entry that is not a refusal, or below its rule's threshold, is
    ignored."""
    entry = AuditEntry.objects.filter(pk=audit_entry_id, event="generation.refused", subject_type="Grant").first()
    rule = _refusal_rule(entry.data.get("code", "")) if entry else None
    if rule is None:
        return None
    grant = Grant.objects.select_related("terms", "customer").filter(pk=entry.subject_id).first()
    if grant is None or (rule.kind == Flag.Kind.USED_AFTER_REVOCATION and grant.state != Grant.State.REVOKED):
        return None
    same = AuditEntry.objects.filter(
        event="generation.refused", subject_type="Grant", subject_id=entry.subject_id,
        data__code=entry.data["code"], created_at__gt=entry.created_at - timedelta(seconds=rule.window),
        created_at__lte=entry.created_at)
    purpose = entry.data.get("purpose", "")
    if rule.kind == Flag.Kind.PURPOSE_NOT_PERMITTED:
        same = same.filter(data__purpose=purpose)  # one flag per attempted purpose
    count = same.count()
    if count < rule.threshold:
        return None
    evidence = {
        "rule": f"{rule.threshold} or more '{entry.data['code']}' refusals within {rule.window} s",
        "count": count, "threshold": rule.threshold, "window_seconds": rule.window,
        "permitted_uses": grant.terms.uses, "grant_state": grant.state, "grant_state_reason": grant.state_reason,
        "attempts": [_attempt(e) for e in same.order_by("-id")[:EVIDENCE_ATTEMPTS]],
    }
    bucket = int(entry.created_at.timestamp() // rule.window)
    suffix = f":{purpose}" if rule.kind == Flag.Kind.PURPOSE_NOT_PERMITTED else ""
    return flag_raise(kind=rule.kind, severity=rule.severity, grant=grant, customer=grant.customer,
                      evidence=evidence, dedupe_key=f"{rule.kind}:{grant.pk}{suffix}:{bucket}")


@transaction.atomic
def flag_raise(*, kind: str, severity: int, evidence: dict, grant: Grant | None = None, customer=None,
               api_key: ApiKey | None = None, dedupe_key: str | None = None) -> Flag:
    """Record a flag with its evidence, or refresh the evidence of the flag with the same
    `dedupe_key`. A new flag joins the grant's undecided case if there is one (else it waits in the
    review queue) and is appended to the audit log. Raises nothing of its own."""
    fields = {"kind": kind, "severity": severity, "grant": grant, "customer": customer, "api_key": api_key,
              "evidence": evidence}
    if dedupe_key:
        flag, created = Flag.objects.select_for_update().get_or_create(dedupe_key=dedupe_key, defaults=fields)
        if not created and (flag.dismissed_at is not None or _in_decided_case(flag)):
            # Events after a dismissal or a decision are news: the old flag keeps its key.
            return flag_raise(kind=kind, severity=severity, evidence=evidence, grant=grant, customer=customer,
                              api_key=api_key, dedupe_key=f"{dedupe_key}:after:{flag.pk}")
        if not created:
            flag.evidence = evidence
            flag.save(update_fields=["evidence", "updated_at"])
            return flag
    else:
        flag = Flag.objects.create(**fields)
    case = _undecided_case(grant) if grant is not None else None
    if case is not None:
        _case_attach(case, [flag])
    audit_append(event="flag.raised", subject=flag,
                 data={"kind": kind, "severity": severity, "grant": str(grant.pk) if grant else "",
                       "customer": f"user:{customer.pk}" if customer else "", "case": case.pk if case else None})
    return flag


def _in_decided_case(flag: Flag) -> bool:
    return flag.case_id is not None and Case.objects.filter(pk=flag.case_id, state=Case.State.DECIDED).exists()


def _key_grant(key: ApiKey) -> Grant | None:
    """The grant a key was used under: the one it is scoped to, else that of its last generation."""
    if not key.all_grants:
        return key.grants.order_by("-created_at").first()
    last = key.usage_entries.select_related("grant").order_by("-created_at").first()
    return last.grant if last else None


def flag_revoked_key_used(*, key: ApiKey) -> Flag:
    """A revoked API key was presented: record the attempt in the audit log and raise (or refresh)
    a high-severity flag for the key's owner. Call it where authentication refuses the key.
    Raises nothing of its own."""
    now = timezone.now()
    audit_append(event="apikey.used_after_revocation", subject=key, data={"prefix": key.prefix})
    attempts = AuditEntry.objects.filter(event="apikey.used_after_revocation", subject_type="ApiKey",
                                         subject_id=str(key.pk), created_at__gt=now - timedelta(days=1))
    evidence = {"key_prefix": key.prefix, "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                "count": attempts.count(), "window_seconds": 86_400,
                "attempts": [{"audit_entry": e.id, "at": e.created_at.isoformat()}
                             for e in attempts.order_by("-id")[:EVIDENCE_ATTEMPTS]]}
    bucket = int(now.timestamp() // 86_400)
    return flag_raise(kind=Flag.Kind.USED_AFTER_REVOCATION, severity=Severity.HIGH, grant=_key_grant(key),
                      customer=key.owner, api_key=key, evidence=evidence,
                      dedupe_key=f"{Flag.Kind.USED_AFTER_REVOCATION}:key:{key.pk}:{bucket}")


# A malformed "receipt" is someone pasting the wrong thing, not evidence; flagging it would only let
# anyone fill the review queue through the public verify API.
RECEIPT_FAILURES_FLAGGED = ("signature", "unknown_key", "text_altered", "prompt_altered")


def flag_receipt_failed(*, receipt_check: dict, receipt: str, text: str, source: str,
                        report: Report | None = None) -> Flag | None:
    """A receipt failed verification. When its signature held (the text or prompt was altered) the
    claims name the grant, so the flag does too; a forged or unknown signature names no one. One
    flag per receipt and reason, however often it is checked. Returns None for a malformed receipt.
    Raises nothing of its own."""
    reason = receipt_check.get("reason")
    if reason not in RECEIPT_FAILURES_FLAGGED:
        return None
    claims = receipt_check.get("claims") or {}
    grant = Grant.objects.select_related("customer").filter(pk=claims["grant"]).first() if claims.get("grant") else None
    evidence = {"reason": reason, "message": receipt_check.get("message"), "kid": receipt_check.get("kid"),
                "claims": claims or None, "source": source, "report": report.pk if report else None,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest()}
    receipt_digest = hashlib.sha256(receipt.encode()).hexdigest()
    return flag_raise(kind=Flag.Kind.RECEIPT_INVALID, severity=Severity.MEDIUM, grant=grant,
                      customer=grant.customer if grant else None, evidence=evidence,
                      dedupe_key=f"{Flag.Kind.RECEIPT_INVALID}:{reason}:{receipt_digest}")


def flags_from_verification(*, result: dict, text: str, receipt: str | None, source: str,
                            report: Report | None = None) -> Flag | None:
    """Raise the flag a verification result calls for (a receipt that failed), if any. For callers
    of `inference.verification.verification_run` such as the public verify API and page."""
    check = result.get("receipt")
    if not receipt or not check or check.get("valid"):
        return None
    return flag_receipt_failed(receipt_check=check, receipt=receipt, text=text, source=source, report=report)


# --- Cases -----------------------------------------------------------------------------------

def _undecided_case(grant: Grant) -> Case | None:
    return (Case.objects.select_for_update().filter(grant=grant).exclude(state=Case.State.DECIDED)
            .order_by("created_at").first())


def _case_attach(case: Case, flags: list[Flag]) -> None:
    Flag.objects.filter(pk__in=[f.pk for f in flags]).update(case=case)
    for flag in flags:
        flag.case = case
    top = max([case.severity] + [f.severity for f in flags])
    if top != case.severity:
        case.severity = top
        case.save(update_fields=["severity"])


def _case_open(*, grant: Grant, source: str, severity: int, summary: str, report: Report | None = None,
               opened_by=None) -> Case:
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
    case = _undecided_case(flag.grant) or _case_open(
        grant=flag.grant, source=Case.Source.FLAG, severity=max(f.severity for f in pending),
        summary=f"{flag.get_kind_display()} ({len(pending)} flag{'s' if len(pending) != 1 else ''})",
        opened_by=staff)
    _case_attach(case, pending)
    return case


@transaction.atomic
def flag_dismiss(*, flag_id: int, staff, reason: str) -> Flag:
    """Take a flag that is in no case off the queue, with a reason (audited).

    Raises FlagNotFound, DecisionInvalid (no reason, or the flag is in a case: decide the case)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise DecisionInvalid(f"Give a reason (at most {MAX_REASON_CHARS} characters).", param="reason")
    flag = Flag.objects.select_for_update().filter(pk=flag_id).first()
    if flag is None:
        raise FlagNotFound("No such flag.", param="flag")
    if flag.case_id is not None:
        raise DecisionInvalid(f"This flag is part of case #{flag.case_id}; decide the case instead.")
    if flag.dismissed_at is None:
        flag.dismissed_at, flag.dismissed_by, flag.dismissed_reason = timezone.now(), staff, reason
        flag.save(update_fields=["dismissed_at", "dismissed_by", "dismissed_reason", "updated_at"])
        audit_append(event="flag.dismissed", actor=staff, subject=flag, data={"kind": flag.kind, "reason": reason})
    return flag


_ACTION_STATES = {
    Decision.Action.SUSPEND: Grant.State.SUSPENDED,
    Decision.Action.REVOKE: Grant.State.REVOKED,
    Decision.Action.REINSTATE: Grant.State.ACTIVE,
}


def case_decide(*, case_id: int, staff, action: str, reason: str) -> Decision:
    """Record a staff decision and apply it. Suspend, revoke and reinstate go through
    `grant_set_state`, so they take effect on the grant's next generation request (the 403 carries
    the reason); both the grant change and the decision are in the audit log. The customer and the
    model's trainer are e-mailed after commit.

    Raises CaseNotFound, DecisionInvalid (unknown action, missing reason) and GrantStateError (409,
    e.g. reinstating a revoked grant)."""
    from .services import grant_set_state

    reason = (reason or "").strip()
    if action not in Decision.Action.values:
        raise DecisionInvalid(f"Choose one of {', '.join(Decision.Action.values)}.", param="action")
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise DecisionInvalid(f"Give a reason (at most {MAX_REASON_CHARS} characters).", param="reason")
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id).first()
        if case is None:
            raise CaseNotFound("No such case.", param="case")
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
            "reinstate": "reinstatement"}[decision.action]
    subject = f"[Imprint] Compliance case #{case.pk}: {verb}"
    site = settings.SITE_URL.rstrip("/")
    common = (f"Decision: {decision.get_action_display()}\nReason: {decision.reason}\n"
              f"Licence (grant) {case.grant_id} is now {decision.grant_state_after}.\n")
    messages = [
        EmailMessage(subject, f"Hello {case.customer.username},\n\nA compliance case about your licence for "
                              f"{case.model_version.name} was decided.\n\n{common}\n"
                              f"See the case and answer it: {site}/compliance/cases/{case.pk}/\n",
                     to=[case.customer.email]),
        EmailMessage(subject, f"Hello {case.model_version.owner.username},\n\nA compliance case about a "
                              f"licence of your model {case.model_version.name} was decided.\n\n{common}\n"
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
    if not text or len(text) > MAX_REPORT_CHARS:
        raise AnswerInvalid(f"Write an answer of at most {MAX_REPORT_CHARS} characters.", param="text")
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


# --- Reports ---------------------------------------------------------------------------------

def report_ratelimit_consume(*, ip: str | None) -> None:
    """Count one report from `ip` in the shared cache (every web process sees it).
    Raises ReportRateLimited (429) past COMPLIANCE_REPORTS_PER_IP_PER_HOUR (default 10)."""
    limit = int(_setting("COMPLIANCE_REPORTS_PER_IP_PER_HOUR", 10))
    window = int(time.time() // REPORT_WINDOW_SECONDS)
    key = f"imprint:report-rl:{ip or 'unknown'}:{window}"
    cache.add(key, 0, timeout=REPORT_WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=REPORT_WINDOW_SECONDS * 2)
        count = 1
    if count > limit:
        raise ReportRateLimited(f"At most {limit} reports an hour from one address; please try again later.")


def _report_clean(*, text: str, receipt: str, where_url: str, where_text: str) -> dict:
    # The text is kept exactly as given: a receipt covers the SHA-256 of the exact output, which
    # often starts with a space.
    text = text or ""
    receipt, where_url, where_text = (receipt or "").strip(), (where_url or "").strip(), (where_text or "").strip()
    if not text.strip() or len(text) > MAX_REPORT_CHARS:
        raise ReportInvalid(f"Paste the text you found (at most {MAX_REPORT_CHARS} characters).", param="text")
    if len(receipt) > 10_000:
        raise ReportInvalid("That receipt is too long to be an Imprint receipt.", param="receipt")
    if where_url:
        try:
            URLValidator(schemes=["http", "https"])(where_url)
        except ValidationError:
            raise ReportInvalid("Give the address as an http(s) URL, or describe the place in words.",
                                param="where_url") from None
    if len(where_url) > 500 or len(where_text) > 500:
        raise ReportInvalid("Say where you found it in at most 500 characters.", param="where_text")
    return {"text": text, "receipt": receipt, "where_url": where_url, "where_text": where_text}


def report_submit(*, text: str, receipt: str = "", where_url: str = "", where_text: str = "",
                  reporter=None, ip: str | None = None) -> Report:
    """Record a reported text and verify it at once (receipt if given; watermark against every
    grant's key, Bonferroni-corrected). When the watermark is detected, or a valid receipt says
    where the text came from, a case opens naming that grant, its customer and model version. An
    unwatermarked text without a valid receipt is recorded and accuses no one. A receipt that fails
    verification raises a flag.

    Raises ReportInvalid (400) and ReportRateLimited (429)."""
    from inference.verification import verification_run

    fields = _report_clean(text=text, receipt=receipt, where_url=where_url, where_text=where_text)
    report_ratelimit_consume(ip=ip)
    # Outside any transaction: the scan loads every model version's tokenizer.
    verification = verification_run(text=fields["text"], receipt=fields["receipt"] or None)
    return _report_record(fields=fields, verification=verification, reporter=reporter, ip=ip)


def _accused_grant(verification: dict) -> tuple[Grant | None, str]:
    mark, receipt = verification["watermark"], verification.get("receipt")
    grant_id, basis = None, ""
    if mark.get("detected"):
        grant_id, basis = mark["grant_id"], "watermark"
    elif receipt and receipt.get("valid"):
        grant_id, basis = receipt["claims"]["grant"], "receipt"
    grant = Grant.objects.select_related("terms", "customer", "model_version").filter(pk=grant_id).first() \
        if grant_id else None
    return grant, basis


def report_severity(grant: Grant) -> int:
    """A found text breaches the licence outright when samples may not be published; when they
    may, with attribution, staff must check it was given; otherwise it is only for the record."""
    doc = grant.terms.document
    if not doc.get("samples", {}).get("publish"):
        return Severity.HIGH
    return Severity.MEDIUM if doc.get("attribution") else Severity.LOW


@transaction.atomic
def _report_record(*, fields: dict, verification: dict, reporter, ip) -> Report:
    report = Report.objects.create(**fields, reporter=reporter if getattr(reporter, "pk", None) else None,
                                   reporter_ip=ip or None, verification=verification)
    audit_append(event="report.received", actor=report.reporter, subject=report,
                 data={"verdict": verification.get("verdict"), "text_sha256":
                       hashlib.sha256(report.text.encode()).hexdigest()})
    flags_from_verification(result=verification, text=report.text, receipt=report.receipt, source="report",
                            report=report)
    grant, basis = _accused_grant(verification)
    if grant is None:
        return report
    severity = report_severity(grant)
    case = _case_open(grant=grant, source=Case.Source.REPORT, severity=severity, report=report,
                      summary=f"Reported text traced to this grant by its {basis}")
    if basis == "watermark":
        mark = verification["watermark"]
        flag = Flag.objects.create(
            kind=Flag.Kind.WATERMARK_DETECTED, severity=severity, grant=grant, customer=grant.customer,
            case=case, evidence={"report": report.pk, **{k: mark.get(k) for k in (
                "z_score", "p_value", "adjusted_p_value", "candidates", "scored_tokens", "green_tokens")}})
        audit_append(event="flag.raised", subject=flag, data={"kind": flag.kind, "severity": severity,
                                                               "grant": str(grant.pk), "case": case.pk})
    return report


# --- Staff access and exports ------------------------------------------------------------------

def review_access_record(*, staff, ip: str | None) -> None:
    """Append 'staff opened the review queue' to the audit log. Raises nothing of its own."""
    audit_append(event="review.opened", actor=staff, data={"ip": ip or ""})


def export_record(*, staff, what: str, start, end) -> None:
    """Append a CSV export of `what` for [start, end] to the audit log."""
    audit_append(event="compliance.exported", actor=staff,
                 data={"what": what, "start": start.isoformat(), "end": end.isoformat()})
