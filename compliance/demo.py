"""The demo's compliance queue: a few flags of the kinds a live site raises, and one case opened
from them, so the review console has something to show on first start. Seeded once: a second run
(or a run after staff decided the demo case) adds nothing."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from licensing.models import Grant

from .models import Flag, Severity
from .services.cases import case_open_from_flag
from .services.flags import Presenter, flag_raise

DEMO_KEY = "demo:"  # every demo flag's dedupe key starts so; their presence means "already seeded"


def _attempts(grant: Grant, *, code: str, purpose: str, count: int, minutes_apart: int) -> list[dict]:
    now = timezone.now()
    return [{"at": (now - timedelta(minutes=minutes_apart * i)).isoformat(), "status": 403 if code.startswith(
        "purpose") else 429, "code": code, "purpose": purpose, "key": "imp_demo…", "model": str(grant.model_version_id)}
        for i in range(count)]


def demo_review_queue(*, write=print) -> list[Flag]:
    """Raise the demo flags on the demo customer's grants and open a case from the first, as the
    staff account. Returns the flags raised (none when already seeded or nothing to flag)."""
    if Flag.objects.filter(dedupe_key__startswith=DEMO_KEY).exists():
        return []
    users = get_user_model().objects
    customer, staff = users.filter(username="customer").first(), users.filter(username="admin").first()
    grants = list(Grant.objects.filter(customer=customer).select_related("terms").order_by("created_at"))
    if customer is None or staff is None or not grants:
        return []
    personal, other = grants[0], grants[-1]
    purpose = next((u for u in ("commercial", "internal") if u not in personal.terms.uses), "commercial")
    flags = [
        flag_raise(kind=Flag.Kind.PURPOSE_NOT_PERMITTED, severity=Severity.MEDIUM, grant=personal, customer=customer,
                   dedupe_key=f"{DEMO_KEY}purpose:{personal.pk}",
                   evidence={"rule": "1 or more 'purpose_not_permitted' refusals within 86400 s", "count": 3,
                             "threshold": 1, "window_seconds": 86_400, "permitted_uses": personal.terms.uses,
                             "attempts": _attempts(personal, code="purpose_not_permitted", purpose=purpose,
                                                   count=3, minutes_apart=7)}),
        flag_raise(kind=Flag.Kind.QUOTA_EXHAUSTED_REPEATEDLY, severity=Severity.LOW, grant=other, customer=customer,
                   dedupe_key=f"{DEMO_KEY}quota:{other.pk}",
                   evidence={"rule": "20 or more 'insufficient_quota' refusals within 3600 s", "count": 24,
                             "threshold": 20, "window_seconds": 3_600, "permitted_uses": other.terms.uses,
                             "attempts": _attempts(other, code="insufficient_quota", purpose="personal",
                                                   count=5, minutes_apart=2)}),
        flag_raise(kind=Flag.Kind.RECEIPT_INVALID, severity=Severity.MEDIUM, dedupe_key=f"{DEMO_KEY}receipt",
                   presenter=Presenter(ip="203.0.113.7"),
                   evidence={"reason": "the text was altered after the receipt was signed", "count": 2,
                             "presenters": [{"ip": "203.0.113.7", "user": None, "username": None, "api_key": None}]}),
    ]
    case = case_open_from_flag(flag_id=flags[0].pk, staff=staff)
    write(f"  demo compliance queue: {len(flags)} flags, case #{case.pk} ({case.summary})")
    return flags
