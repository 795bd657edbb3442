"""Public reports: a text someone found, verified at once; a traced text opens a case."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from audit.services import audit_append
from core.ratelimit import authorize_report
from inference.verification import verification_run
from licensing.models import Grant

from ..errors import ReportInvalid, ReportRateLimited
from ..models import Case, Flag, Report, Severity
from .cases import case_open
from .flags import Presenter, flags_from_verification

MAX_REPORT_CHARS = 20_000


def report_ratelimit_consume(*, ip: str | None) -> None:
    """Count one report from `ip` in the shared counter (every web process sees it).
    Raises ReportRateLimited (429) past COMPLIANCE_REPORTS_PER_IP_PER_HOUR (default 10)."""
    limit = settings.COMPLIANCE_REPORTS_PER_IP_PER_HOUR
    if authorize_report(ip=ip, per_hour=limit).exceeded:
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
                            report=report, presenter=Presenter(ip=ip, user=report.reporter))
    grant, basis = _accused_grant(verification)
    if grant is None:
        return report
    severity = report_severity(grant)
    case = case_open(grant=grant, source=Case.Source.REPORT, severity=severity, report=report,
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
