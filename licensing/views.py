"""Pages of licensing: the terms pages, the public report form, the staff review pages (queue, case,
decisions, CSV exports) and the cases a customer or trainer may see. Thin: validate, call a
service or selector, render. Domain errors become a message on the page they came from."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from config.api_errors import ApiError

from .compliance import (
    case_answer,
    case_decide,
    case_open_from_flag,
    export_record,
    flag_dismiss,
    report_submit,
    review_access_record,
)
from .compliance_errors import CaseNotFound
from .compliance_selectors import (
    AUDIT_COLUMNS,
    CASE_COLUMNS,
    audit_export_rows,
    case_evidence,
    case_for_participant,
    case_for_staff,
    cases_export_rows,
    cases_for_user,
    export_range,
    terms_in_force,
)
from .compliance_selectors import (
    review_queue as review_queue_select,
)
from .models import Decision, LicenceTerms
from .terms import render_terms_text

HONEYPOT_FIELD = "website"  # hidden from people by CSS; bots fill every field they find
_REVIEW_SESSION_KEY = "compliance_review_opened"


def client_ip(request) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is the client's to forge unless a trusted proxy sets it.
    return request.META.get("REMOTE_ADDR") or None


# --- Staff review ------------------------------------------------------------------------------

@role_required("staff")
def review_queue(request):
    """Compliance review queue: undecided cases and unassigned flags, by severity and age. The first
    visit of a session is appended to the audit log (staff "logging in" to the queue)."""
    if not request.session.get(_REVIEW_SESSION_KEY):
        review_access_record(staff=request.user, ip=client_ip(request))
        request.session[_REVIEW_SESSION_KEY] = True
    return render(request, "licensing/review_queue.html", review_queue_select())


@role_required("staff")
def case_detail(request, case_id: int):
    try:
        case = case_for_staff(case_id)
    except CaseNotFound:
        raise Http404("No such case.") from None
    context = case_evidence(case) | {"actions": Decision.Action.choices}
    return render(request, "licensing/case_detail.html", context)


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def case_decide_view(request, case_id: int):
    try:
        decision = case_decide(case_id=case_id, staff=request.user, action=request.POST.get("action", ""),
                               reason=request.POST.get("reason", ""))
        messages.success(request, f"Decision recorded: {decision.get_action_display()}. "
                                  f"The grant is {decision.grant_state_after}; customer and trainer e-mailed.")
    except CaseNotFound:
        raise Http404("No such case.") from None
    except ApiError as exc:
        messages.error(request, exc.message)
    return redirect("licensing:case_detail", case_id=case_id)


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def flag_open_case(request, flag_id: int):
    try:
        case = case_open_from_flag(flag_id=flag_id, staff=request.user)
    except ApiError as exc:
        messages.error(request, exc.message)
        return redirect("licensing:review_queue")
    return redirect("licensing:case_detail", case_id=case.pk)


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def flag_dismiss_view(request, flag_id: int):
    try:
        flag_dismiss(flag_id=flag_id, staff=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, f"Flag #{flag_id} dismissed.")
    except ApiError as exc:
        messages.error(request, exc.message)
    return redirect("licensing:review_queue")


class _Echo:
    def write(self, value):
        return value


def _csv_cell(value) -> str:
    # Spreadsheets run cells starting with = + - @ as formulas; reasons and texts come from people.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_response(request, *, what: str, columns: list[str], rows_for) -> HttpResponse:
    try:
        since, until, start, end = export_range(request.GET.get("start"), request.GET.get("end"))
    except ApiError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    export_record(staff=request.user, what=what, start=start, end=end)
    writer = csv.writer(_Echo())
    lines = (writer.writerow([_csv_cell(c) for c in row]) for row in [columns, *rows_for(since, until)])
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="imprint-{what}-{start}-{end}.csv"'
    return response


@role_required("staff")
def cases_export(request):
    """Cases opened in a date range (?start=YYYY-MM-DD&end=YYYY-MM-DD, inclusive) as CSV."""
    return _csv_response(request, what="cases", columns=CASE_COLUMNS, rows_for=cases_export_rows)


@role_required("staff")
def audit_export(request):
    """Audit entries of a date range as CSV, with their hashes."""
    return _csv_response(request, what="audit", columns=AUDIT_COLUMNS, rows_for=audit_export_rows)


# --- Public reports ----------------------------------------------------------------------------

def report_form(request):
    """Anyone may report a text they found; it is verified at once."""
    form = {k: request.POST.get(k, "") for k in ("text", "receipt", "where_url", "where_text")}
    context = {"form": form, "report": None, "error": None, "honeypot": HONEYPOT_FIELD}
    if request.method == "POST":
        if request.POST.get(HONEYPOT_FIELD):
            # A bot: thank it like a person, record and verify nothing.
            return render(request, "licensing/report_form.html", context | {"received": True})
        try:
            report = report_submit(reporter=request.user, ip=client_ip(request), **form)
        except ApiError as exc:
            context["error"] = exc.message
            status = exc.status_code
            return render(request, "licensing/report_form.html", context, status=status)
        context |= {"received": True, "report": report, "case": getattr(report, "case", None),
                    "terms": terms_in_force(report.case.grant) if hasattr(report, "case") else None}
    return render(request, "licensing/report_form.html", context)


# --- Cases seen by their customer and the model's trainer --------------------------------------

@login_required
def my_cases(request):
    return render(request, "licensing/my_cases.html", cases_for_user(request.user))


@login_required
def my_case(request, case_id: int):
    try:
        case = case_for_participant(request.user, case_id)
    except CaseNotFound:
        raise Http404("No such case.") from None
    context = {"case": case, "terms_in_force": terms_in_force(case.grant),
               "verification": case.report.verification if case.report else None,
               "flags": case.flags.order_by("created_at"), "decisions": case.decisions.all(),
               "answer": getattr(case, "answer", None), "is_customer": case.customer_id == request.user.pk}
    return render(request, "licensing/my_case.html", context)


@require_POST
@login_required
def my_case_answer(request, case_id: int):
    try:
        case_answer(case_id=case_id, customer=request.user, text=request.POST.get("text", ""))
        messages.success(request, "Your answer was sent to the compliance team.")
    except CaseNotFound:
        raise Http404("No such case.") from None
    except ApiError as exc:
        messages.error(request, exc.message)
    return redirect("licensing:my_case", case_id=case_id)


# --- Terms ---------------------------------------------------------------------------------------

def _terms_or_404(sha256: str) -> LicenceTerms:
    terms = LicenceTerms.objects.filter(pk=sha256.lower()).first()
    if terms is None:
        raise Http404("No such licence terms.")
    return terms


def terms_json(request, sha256):
    """Machine-readable terms at a stable URL: the id is the SHA-256 of the canonical JSON, so
    the content behind this URL can never change (and anyone can check that it did not)."""
    terms = _terms_or_404(sha256)
    body = {
        "sha256": terms.sha256, "terms": terms.document, "canonical": terms.canonical,
        "text_url": request.build_absolute_uri(reverse("licensing:terms_text", args=[terms.sha256])),
    }
    response = JsonResponse(body, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def terms_text(request, sha256):
    """The human-readable licence beside the JSON (plain text with ?format=txt)."""
    terms = _terms_or_404(sha256)
    text = render_terms_text(terms.document, sha256=terms.sha256)
    if request.GET.get("format") == "txt":
        return HttpResponse(text, content_type="text/plain; charset=utf-8")
    return render(request, "licensing/terms.html", {"terms": terms, "text": text})
