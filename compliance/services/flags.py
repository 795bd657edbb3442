"""Automatic flags: suspicious events noticed by the system, each with its evidence.

Where the evidence comes from:
- refused generation requests, audited as `generation.refused`: `flags_from_refusal` raises a flag
  when a rule's threshold is reached within its window (purpose not permitted, repeated quota
  exhaustion, repeated rate-limit hits, use of a revoked grant);
- a revoked API key presented again, audited as `apikey.used_after_revocation`:
  `flag_revoked_key_used`;
  (both reach compliance through the audit signal: compliance.receivers)
- a receipt that fails verification: `flags_from_verification` (reports, the verify API and page).

Flags of one kind about one subject within one window share a row (`dedupe_key`) whose evidence is
recomputed from the audit log on each new event, so a burst of refusals is one flag, not a thousand.

Settings (with their defaults): COMPLIANCE_QUOTA_REFUSALS_THRESHOLD = 5 within
COMPLIANCE_QUOTA_REFUSALS_WINDOW = 3600 s; COMPLIANCE_RATE_REFUSALS_THRESHOLD = 20 within
COMPLIANCE_RATE_REFUSALS_WINDOW = 600 s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry, AuditRefusal
from audit.services import audit_append
from licensing.models import ApiKey, Grant

from ..errors import DecisionInvalid, FlagNotFound
from ..models import Case, Flag, Report, Severity
from .cases import MAX_REASON_CHARS, case_attach, case_undecided

EVIDENCE_ATTEMPTS = 20  # the most recent refusals quoted in a flag's evidence


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
                                          settings.COMPLIANCE_QUOTA_REFUSALS_THRESHOLD,
                                          settings.COMPLIANCE_QUOTA_REFUSALS_WINDOW),
        "rate_limit_exceeded": RefusalRule(Flag.Kind.RATE_LIMITED_REPEATEDLY, Severity.LOW,
                                           settings.COMPLIANCE_RATE_REFUSALS_THRESHOLD,
                                           settings.COMPLIANCE_RATE_REFUSALS_WINDOW),
        # Only when the grant is revoked (checked below): a pending or expired grant is no breach.
        "licence_inactive": RefusalRule(Flag.Kind.USED_AFTER_REVOCATION, Severity.HIGH, 1, 86_400),
    }
    return rules.get(code)


def _attempt(entry: AuditRefusal) -> dict:
    data = entry.data
    return {"audit_refusal": entry.id, "at": entry.created_at.isoformat(), "status": data.get("status"),
            "code": data.get("code"), "purpose": data.get("purpose"), "key": data.get("key"),
            "model": data.get("model")}


def flags_from_refusal(*, refusal_id: int) -> Flag | None:
    """Raise (or refresh) the flag a refused generation request (an audit.AuditRefusal) calls for,
    if any. Returns it.

    Raises nothing of its own: a record that is not a refusal, or below its rule's threshold, is
    ignored."""
    entry = AuditRefusal.objects.filter(pk=refusal_id, event="generation.refused", subject_type="Grant").first()
    rule = _refusal_rule(entry.data.get("code", "")) if entry else None
    if rule is None:
        return None
    grant = Grant.objects.select_related("terms", "customer").filter(pk=entry.subject_id).first()
    if grant is None or (rule.kind == Flag.Kind.USED_AFTER_REVOCATION and grant.state != Grant.State.REVOKED):
        return None
    same = AuditRefusal.objects.filter(
        subject_type="Grant", subject_id=entry.subject_id, event="generation.refused",
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
               api_key: ApiKey | None = None, dedupe_key: str | None = None,
               presenter: Presenter | None = None, evidence_merge=None) -> Flag:
    """Record a flag with its evidence, or refresh the evidence of the flag with the same
    `dedupe_key` (`evidence_merge(old, new)`, when given, combines them under the row lock). A new
    flag joins the grant's undecided case if there is one (else it waits in the review queue) and is
    appended to the audit log; a refresh appends nothing. A flag with a `presenter` is about whoever
    presented the evidence, never about a grant. Raises nothing of its own."""
    fields = {"kind": kind, "severity": severity, "grant": grant, "customer": customer, "api_key": api_key,
              "evidence": evidence, **(presenter.flag_fields() if presenter else {})}
    if dedupe_key:
        flag, created = Flag.objects.select_for_update().get_or_create(dedupe_key=dedupe_key, defaults=fields)
        if not created and (flag.dismissed_at is not None or _in_decided_case(flag)):
            # Events after a dismissal or a decision are news: the old flag keeps its key.
            return flag_raise(kind=kind, severity=severity, evidence=evidence, grant=grant, customer=customer,
                              api_key=api_key, dedupe_key=f"{dedupe_key}:after:{flag.pk}", presenter=presenter,
                              evidence_merge=evidence_merge)
        if not created:
            flag.evidence = evidence_merge(flag.evidence, evidence) if evidence_merge else evidence
            flag.save(update_fields=["evidence", "updated_at"])
            return flag
    else:
        flag = Flag.objects.create(**fields)
    case = case_undecided(grant) if grant is not None else None
    if case is not None:
        case_attach(case, [flag])
    audit_append(event="flag.raised", subject=flag,
                 data={"kind": kind, "severity": severity, "grant": str(grant.pk) if grant else "",
                       "customer": f"user:{customer.pk}" if customer else "", "case": case.pk if case else None,
                       "about": flag.about})
    return flag


def _in_decided_case(flag: Flag) -> bool:
    return flag.case_id is not None and Case.objects.filter(pk=flag.case_id, state=Case.State.DECIDED).exists()


def _key_grant(key: ApiKey) -> Grant | None:
    """The grant a key was used under: the one it is scoped to, else that of its last generation."""
    if not key.all_grants:
        return key.grants.order_by("-created_at").first()
    last = key.usage_entries.select_related("grant").order_by("-created_at").first()
    return last.grant if last else None


def flag_revoked_key_used(*, key_id, at) -> Flag | None:
    """A revoked API key was presented (licensing audited it as `apikey.used_after_revocation` at
    `at`): raise (or refresh) a high-severity flag for the key's owner, with every attempt of the
    last day as evidence. Raises nothing of its own; None when the key no longer exists."""
    key = ApiKey.objects.select_related("owner").filter(pk=key_id).first()
    if key is None:
        return None
    attempts = AuditEntry.objects.filter(event="apikey.used_after_revocation", subject_type="ApiKey",
                                         subject_id=str(key.pk), created_at__gt=at - timedelta(days=1),
                                         created_at__lte=at)
    evidence = {"key_prefix": key.prefix, "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                "count": attempts.count(), "window_seconds": 86_400,
                "attempts": [{"audit_entry": e.id, "at": e.created_at.isoformat()}
                             for e in attempts.order_by("-id")[:EVIDENCE_ATTEMPTS]]}
    bucket = int(at.timestamp() // 86_400)
    return flag_raise(kind=Flag.Kind.USED_AFTER_REVOCATION, severity=Severity.HIGH, grant=_key_grant(key),
                      customer=key.owner, api_key=key, evidence=evidence,
                      dedupe_key=f"{Flag.Kind.USED_AFTER_REVOCATION}:key:{key.pk}:{bucket}")


# A malformed "receipt" is someone pasting the wrong thing, not evidence; flagging it would only let
# anyone fill the review queue through the public verify API.
RECEIPT_FAILURES_FLAGGED = ("signature", "unknown_key", "text_altered", "prompt_altered")
# Failures of a receipt Imprint really signed: the text or prompt presented with it was changed.
GENUINE_RECEIPT_FAILURES = ("text_altered", "prompt_altered")
EVIDENCE_PRESENTERS = 20  # the most recent presenters quoted in a receipt flag's evidence


@dataclass(frozen=True)
class Presenter:
    """Who presented a text and receipt for verification: their address, and the signed-in user or
    API key when there is one."""

    ip: str | None = None
    user: object | None = None
    api_key: ApiKey | None = None

    def flag_fields(self) -> dict:
        user = self.user if getattr(self.user, "pk", None) else None
        return {"about": Flag.About.PRESENTER, "presenter_ip": self.ip or None, "presenter_user": user,
                "api_key": self.api_key}

    def as_evidence(self) -> dict:
        user = self.user if getattr(self.user, "pk", None) else None
        return {"ip": self.ip, "user": f"user:{user.pk}" if user else None,
                "username": user.username if user else None,
                "api_key": self.api_key.prefix if self.api_key else None}


def _receipt_flag_bucket() -> int:
    window = settings.COMPLIANCE_RECEIPT_FLAG_WINDOW
    return int(timezone.now().timestamp() // window)


def _receipt_dedupe_key(*, reason: str, kid: str | None, claims: dict) -> str:
    """One flag per receipt and reason within the window. A forged signature proves nothing about
    what the receipt says, so all forgeries under one key (any key, when it is unknown: the kid is
    the forger's to choose) share one flag, however many variants are posted."""
    if reason in GENUINE_RECEIPT_FAILURES:
        receipt_id = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()
    else:
        receipt_id = f"kid:{kid}" if reason == "signature" else "kid:any"
    return f"{Flag.Kind.RECEIPT_INVALID}:{reason}:{receipt_id}:{_receipt_flag_bucket()}"


def _presenters_merge(old: dict, new: dict) -> dict:
    """The latest evidence, with the attempts counted and the recent presenters kept."""
    presenters = (new.get("presenters") or []) + (old.get("presenters") or [])
    return {**new, "count": int(old.get("count") or 1) + 1, "first_at": old.get("first_at") or new.get("first_at"),
            "presenters": presenters[:EVIDENCE_PRESENTERS]}


def _receipt_context(claims: dict) -> dict | None:
    """Whose receipt it is, for staff's context only: a genuine receipt presented with another
    text says nothing against its grant (anyone can copy a published sample)."""
    if not claims.get("grant"):
        return None
    grant = Grant.objects.filter(pk=claims["grant"]).first()
    return {"grant": claims["grant"], "customer": claims.get("customer"),
            "model_version": str(grant.model_version_id) if grant else None}


def flag_receipt_failed(*, receipt_check: dict, receipt: str, text: str, source: str,
                        report: Report | None = None, presenter: Presenter | None = None) -> Flag | None:
    """A receipt failed verification: raise (or refresh) one flag per receipt and reason within
    COMPLIANCE_RECEIPT_FLAG_WINDOW, counting the attempts and who made them. The flag is about the
    presenter and accuses no grant: a forged signature names no one, and a genuine receipt with an
    altered text or prompt is evidence about whoever presented it (the receipt's grant is kept only
    as context, `receipt_belongs_to`), so it never joins or opens a case. Returns None for a
    malformed receipt. Raises nothing of its own."""
    reason = receipt_check.get("reason")
    if reason not in RECEIPT_FAILURES_FLAGGED:
        return None
    claims = (receipt_check.get("claims") or {}) if reason in GENUINE_RECEIPT_FAILURES else {}
    presenter = presenter or Presenter()
    now = timezone.now().isoformat()
    evidence = {"reason": reason, "message": receipt_check.get("message"), "kid": receipt_check.get("kid"),
                "claims": claims or None, "source": source, "report": report.pk if report else None,
                "about": "presenter", "receipt_belongs_to": _receipt_context(claims), "count": 1,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "receipt_sha256": hashlib.sha256(receipt.encode()).hexdigest(), "first_at": now,
                "presenters": [{**presenter.as_evidence(), "at": now, "source": source}]}
    return flag_raise(kind=Flag.Kind.RECEIPT_INVALID, severity=Severity.MEDIUM, evidence=evidence,
                      dedupe_key=_receipt_dedupe_key(reason=reason, kid=receipt_check.get("kid"), claims=claims),
                      presenter=presenter, evidence_merge=_presenters_merge)


def flags_from_verification(*, result: dict, text: str, receipt: str | None, source: str,
                            report: Report | None = None, presenter: Presenter | None = None) -> Flag | None:
    """Raise the flag a verification result calls for (a receipt that failed), if any, about its
    `presenter`. For callers of `inference.verification.verification_run`: reports, the public
    verify API and page."""
    check = result.get("receipt")
    if not receipt or not check or check.get("valid"):
        return None
    return flag_receipt_failed(receipt_check=check, receipt=receipt, text=text, source=source, report=report,
                               presenter=presenter)


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
