"""Compliance reads: the review queue, a case's evidence, the cases a customer or trainer may see,
and the rows of the CSV exports."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditRefusal
from core.charts import usage_chart
from inference.models import UsageEntry
from licensing.models import Grant
from licensing.terms import USE_LABELS

from .errors import CaseNotFound, ExportRangeInvalid
from .models import Case, Flag

USAGE_DAYS = 30
MAX_EXPORT_DAYS = 366


def review_queue() -> dict:
    """Undecided cases and flags not yet in a case, most severe first, then oldest first."""
    cases = (Case.objects.exclude(state=Case.State.DECIDED)
             .select_related("customer", "model_version", "grant")
             .annotate(flag_count=Count("flags")).order_by("-severity", "created_at"))
    flags = (Flag.objects.filter(case__isnull=True, dismissed_at__isnull=True)
             .select_related("customer", "grant__model_version", "api_key", "presenter_user")
             .order_by("-severity", "created_at"))
    decided = (Case.objects.filter(state=Case.State.DECIDED).select_related("customer", "model_version")
               .order_by("-decided_at")[:20])
    return {"cases": cases, "flags": flags, "decided": decided}


def _cases() -> QuerySet[Case]:
    return Case.objects.select_related("customer", "model_version__owner", "grant__terms", "report", "answer")


def case_for_staff(case_id) -> Case:
    case = _cases().filter(pk=case_id).first()
    if case is None:
        raise CaseNotFound("No such case.", param="case")
    return case


def cases_for_user(user) -> dict:
    """The cases about a customer's licences and about a trainer's models."""
    return {"as_customer": _cases().filter(customer=user).order_by("-created_at"),
            "as_trainer": _cases().filter(model_version__owner=user).order_by("-created_at")}


def case_for_participant(user, case_id) -> Case:
    """A case the user may see (as its customer or the model's trainer); others are a 404, the
    same as a case that does not exist."""
    case = _cases().filter(Q(customer=user) | Q(model_version__owner=user), pk=case_id).first()
    if case is None:
        raise CaseNotFound("No such case.", param="case")
    return case


def terms_in_force(grant: Grant) -> list[str]:
    """The licence's rules that matter for a found text, in words."""
    doc = grant.terms.document
    samples = doc.get("samples", {})
    lines = ["Samples may be published" + ("" if samples.get("resell") else ", but not resold") + "."
             if samples.get("publish") else "Samples may not be published."]
    lines.append(f"Attribution required: \u201c{doc['attribution']}\u201d." if doc.get("attribution")
                 else "No attribution required.")
    lines.append("Permitted uses: " + ", ".join(USE_LABELS.get(u, u) for u in doc.get("uses", [])) + ".")
    lines += [f"Restriction: {r}" for r in doc.get("restrictions", [])]
    return lines


def grant_usage_daily(grant: Grant, *, days: int = USAGE_DAYS, today: date | None = None) -> list[dict]:
    """Tokens and requests per day over the last `days` days (zero days included), from the ledger."""
    today = today or timezone.localdate()
    start = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(start, time.min))
    rows = (UsageEntry.objects.filter(grant=grant, created_at__gte=since).annotate(day=TruncDate("created_at"))
            .values("day").annotate(tokens=Sum("total_tokens"), requests=Count("id")))
    by_day = {row["day"]: row for row in rows}
    return [{"day": d, "tokens": (by_day.get(d) or {}).get("tokens") or 0,
             "requests": (by_day.get(d) or {}).get("requests") or 0}
            for d in (start + timedelta(days=i) for i in range(days))]


def grant_refusals(grant: Grant, *, limit: int = 20) -> QuerySet[AuditRefusal]:
    """The grant's most recent refused generation requests (audit.AuditRefusal), newest first."""
    return AuditRefusal.objects.filter(subject_type="Grant", subject_id=str(grant.pk),
                                       event="generation.refused").order_by("-id")[:limit]


def case_evidence(case: Case) -> dict:
    """Everything a reviewer needs on one page: the report and its verification, the flags, the
    licence terms in force, the grant's usage history (as SVG), refusals, the customer's other
    cases, the answer and the decisions so far."""
    verification = case.report.verification if case.report else {}
    usage = grant_usage_daily(case.grant)
    return {
        "case": case, "grant": case.grant, "report": case.report,
        "watermark": verification.get("watermark"), "receipt_check": verification.get("receipt"),
        "verdict": verification.get("verdict"),
        "flags": case.flags.order_by("-severity", "created_at"),
        "terms_in_force": terms_in_force(case.grant),
        "usage": usage, "usage_svg": usage_chart(usage, quota_tokens=case.grant.quota_tokens),
        "usage_total": sum(d["tokens"] for d in usage),
        "refusals": grant_refusals(case.grant),
        "previous_cases": (Case.objects.filter(customer=case.customer).exclude(pk=case.pk)
                           .select_related("model_version").prefetch_related("decisions").order_by("-created_at")),
        "decisions": case.decisions.select_related("staff"),
        "answer": getattr(case, "answer", None),
    }


def export_range(start: str | None, end: str | None) -> tuple[datetime, datetime, date, date]:
    """[start 00:00, end + 1 day 00:00) for dates YYYY-MM-DD (default: the last 30 days).
    Raises ExportRangeInvalid for a bad date, an inverted or a too-long range."""
    try:
        end_day = date.fromisoformat(end) if end else timezone.localdate()
        start_day = date.fromisoformat(start) if start else end_day - timedelta(days=29)
    except ValueError:
        raise ExportRangeInvalid("Dates are YYYY-MM-DD.", param="start") from None
    if start_day > end_day or (end_day - start_day).days > MAX_EXPORT_DAYS:
        raise ExportRangeInvalid(f"Choose a start before the end, at most {MAX_EXPORT_DAYS} days apart.",
                                 param="start")
    since = timezone.make_aware(datetime.combine(start_day, time.min))
    until = timezone.make_aware(datetime.combine(end_day + timedelta(days=1), time.min))
    return since, until, start_day, end_day


CASE_COLUMNS = ["case", "created_at", "state", "severity", "source", "grant", "customer", "model_version",
                "summary", "report", "decisions", "last_action", "last_reason", "decided_at"]


def cases_export_rows(since: datetime, until: datetime):
    """One row per case opened in [since, until)."""
    cases = (Case.objects.filter(created_at__gte=since, created_at__lt=until)
             .select_related("customer", "model_version").prefetch_related("decisions").order_by("created_at"))
    for case in cases.iterator(chunk_size=500):
        decisions = list(case.decisions.all())
        last = decisions[-1] if decisions else None
        yield [case.pk, case.created_at.isoformat(), case.state, case.get_severity_display(), case.source,
               case.grant_id, case.customer.username, case.model_version.name, case.summary, case.report_id or "",
               len(decisions), last.action if last else "", last.reason if last else "",
               case.decided_at.isoformat() if case.decided_at else ""]
