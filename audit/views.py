"""The audit log's pages: its signed anchors, public, for outsiders to keep copies of; and the
staff log page (entries newest first, filters, the chain's verification status)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import role_required

from .anchors import anchors_document
from .selectors import (
    audit_anchors_page,
    audit_chain_head,
    audit_chain_status,
    audit_entries,
    audit_filter_choices,
    audit_rows,
)

LOG_PAGE_SIZE = 50
LOG_FILTERS = ("subject", "subject_type", "actor", "event")


@require_GET
@cache_control(public=True, max_age=60)
def anchors_view(request):
    """Every signed head of the audit chain (paged with ?after=<seq>) and the public keys."""
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        after = -1
    if after < 0:
        return JsonResponse({"error": {"type": "invalid_request_error", "code": "invalid_after", "param": "after",
                                       "message": "after must be a sequence number (0 or more)."}}, status=400)
    heads, next_after = audit_anchors_page(after=after)
    return JsonResponse(anchors_document(heads, next_after=next_after), json_dumps_params={"indent": 1})


@role_required("staff")
@require_GET
def log_view(request):
    """Staff: the audit chain newest first, filtered by subject, actor and event, people by name,
    with the chain's verification status and its latest signed anchor."""
    # NUL can be in no stored value, and PostgreSQL refuses it in a query: a filter simply drops it.
    filters = {name: request.GET.get(name, "").replace("\x00", "").strip() for name in LOG_FILTERS}
    page = Paginator(audit_entries(**filters), LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/log.html", {
        "page": page, "filters": filters, "query": query.urlencode(), **audit_filter_choices(),
        "rows": audit_rows(page.object_list),
        "status": audit_chain_status(), "head": audit_chain_head(),
    })


@role_required("staff")  # outermost: non-staff get 403 whatever the method
@require_POST
def verify_view(request):
    """Staff: verify the whole chain now (the page otherwise shows a run at most minutes old)."""
    audit_chain_status(refresh=True)
    return redirect("audit:log")
