"""The audit log's one public page: its signed anchors, for outsiders to keep copies of."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .anchors import anchors_document
from .selectors import audit_anchors_page


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
