"""Pages of compliance: the public verify page and report form, the staff review pages (queue,
case, decisions, CSV exports) and the cases a customer or trainer may see. Thin: validate, call a
service or selector, render. Domain errors become a message on the page they came from."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from audit.selectors import EXPORT_COLUMNS, audit_export_rows
from core.errors import DomainError
from core.http import client_ip
from inference.verification import MIN_TOKENS

from .errors import CaseNotFound
from .selectors import (
    CASE_COLUMNS,
    case_evidence,
    case_for_participant,
    case_for_staff,
    cases_export_rows,
    cases_for_user,
    export_range,
    terms_in_force,
)
from .selectors import review_queue as review_queue_select
from .services.cases import case_answer, case_decide, case_open_from_flag, decision_actions, dispute_pending
from .services.flags import Presenter, flag_dismiss
from .services.reports import report_submit
from .services.review import export_record, review_access_record
from .services.verification import MAX_TEXT_CHARS, verification_submit
from .verdicts import verification_explained

HONEYPOT_FIELD = "website"  # hidden from people by CSS; bots fill every field they find
_REVIEW_SESSION_KEY = "compliance_review_opened"


# --- Public verification ---------------------------------------------------------------------

def verify_page(request):
    """Public: paste a text (and its receipt) to see where it came from. Limited per address (and per
    account when signed in), as on the API; a receipt that fails raises a flag about whoever
    presented it."""
    result, error, form = None, None, {"text": "", "receipt": "", "prompt": ""}
    status = 200
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in form}
        if form["text"]:
            presenter = Presenter(ip=client_ip(request), user=request.user)
            try:
                result = verification_submit(text=form["text"], receipt=form["receipt"], prompt=form["prompt"],
                                             source="verify_page", presenter=presenter)
            except DomainError as exc:
                error, status = exc.message, exc.status_code
                form["text"] = form["text"][:MAX_TEXT_CHARS]  # not echo a flood back into the page
    explained = verification_explained(result) if result else None
    return render(request, "compliance/verify.html", {"result": result, "form": form, "min_tokens": MIN_TOKENS,
                                                      "explained": explained, "error": error,
                                                      "max_text": MAX_TEXT_CHARS}, status=status)


# --- Staff review ------------------------------------------------------------------------------

@role_required("staff")
def review_queue(request):
    """Compliance review queue: undecided cases and unassigned flags, by severity and age. The first
    visit of a session is appended to the audit log (staff "logging in" to the queue)."""
    if not request.session.get(_REVIEW_SESSION_KEY):
        review_access_record(staff=request.user, ip=client_ip(request))
        request.session[_REVIEW_SESSION_KEY] = True
    return render(request, "compliance/review_queue.html", review_queue_select())


@role_required("staff")
def case_detail(request, case_id: int):
    try:
        case = case_for_staff(case_id)
    except CaseNotFound:
        raise Http404("No such case.") from None
    context = case_evidence(case) | {"actions": decision_actions(case.grant, case),
                                     "dispute_pending": dispute_pending(case)}
    return render(request, "compliance/case_detail.html", context)


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
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("compliance:case_detail", case_id=case_id)


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def flag_open_case(request, flag_id: int):
    try:
        case = case_open_from_flag(flag_id=flag_id, staff=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("compliance:review_queue")
    return redirect("compliance:case_detail", case_id=case.pk)


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def flag_dismiss_view(request, flag_id: int):
    try:
        flag_dismiss(flag_id=flag_id, staff=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, f"Flag #{flag_id} dismissed.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("compliance:review_queue")


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
    except DomainError as exc:
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
    return _csv_response(request, what="audit", columns=EXPORT_COLUMNS, rows_for=audit_export_rows)


# --- Public reports ----------------------------------------------------------------------------

def report_form(request):
    """Anyone may report a text they found; it is verified at once."""
    form = {k: request.POST.get(k, "") for k in ("text", "receipt", "where_url", "where_text")}
    context = {"form": form, "report": None, "error": None, "honeypot": HONEYPOT_FIELD}
    if request.method == "POST":
        if request.POST.get(HONEYPOT_FIELD):
            # A bot: thank it like a person, record and verify nothing.
            return render(request, "compliance/report_form.html", context | {"received": True})
        try:
            report = report_submit(reporter=request.user, ip=client_ip(request), **form)
        except DomainError as exc:
            context["error"] = exc.message
            status = exc.status_code
            return render(request, "compliance/report_form.html", context, status=status)
        context |= {"received": True, "report": report, "case": getattr(report, "case", None),
                    "explained": verification_explained(report.verification) if report.verification else None,
                    "terms": terms_in_force(report.case.grant) if hasattr(report, "case") else None}
    return render(request, "compliance/report_form.html", context)


# --- Cases seen by their customer and the model's trainer --------------------------------------

@login_required
def my_cases(request):
    return render(request, "compliance/my_cases.html", cases_for_user(request.user))


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
    return render(request, "compliance/my_case.html", context)


@require_POST
@login_required
def my_case_answer(request, case_id: int):
    try:
        case_answer(case_id=case_id, customer=request.user, text=request.POST.get("text", ""))
        messages.success(request, "Your answer was sent to the compliance team.")
    except CaseNotFound:
        raise Http404("No such case.") from None
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("compliance:my_case", case_id=case_id)
