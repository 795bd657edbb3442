"""Promises of the staff review pages: the queue orders cases and flags by severity, then age; the
case page shows the evidence (text, detection, receipt check, the grant's usage plot, the
customer's previous cases)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.html import escape

from compliance.services.flags import flag_raise
from compliance.models import Case, Flag, Severity

from .conftest import generate_text, report


def _case(licence, severity: int, hours_old: int) -> Case:
    case = Case.objects.create(grant=licence.grant, customer=licence.customer, model_version=licence.version,
                               source=Case.Source.FLAG, summary=f"sev {severity} age {hours_old}", severity=severity)
    Case.objects.filter(pk=case.pk).update(created_at=timezone.now() - timedelta(hours=hours_old))
    return case


def test_the_queue_lists_cases_and_flags_by_severity_then_age(client, make_licence, staff_user):
    licence = make_licence()
    low_old, high_new, high_old = (_case(licence, Severity.LOW, 50), _case(licence, Severity.HIGH, 1),
                                   _case(licence, Severity.HIGH, 30))
    other = make_licence()
    flags = [flag_raise(kind=Flag.Kind.QUOTA_EXHAUSTED_REPEATEDLY, severity=s, evidence={"count": 5},
                        grant=other.grant, customer=other.customer) for s in (Severity.LOW, Severity.HIGH)]
    client.force_login(staff_user)
    queue = client.get("/compliance/api/review/").json()
    assert [c["id"] for c in queue["cases"]] == [high_old.pk, high_new.pk, low_old.pk]
    assert [f["id"] for f in queue["flags"]] == [flags[1].pk, flags[0].pk]
    page = client.get("/compliance/review/").content.decode()
    assert page.index(f"#{high_old.pk}<") < page.index(f"#{high_new.pk}<") < page.index(f"#{low_old.pk}<")
    assert "Quota Exhausted Repeatedly" in page and "Open case" in page


def test_the_case_page_shows_the_evidence(client, make_licence, staff_user):
    licence = make_licence()
    earlier = _case(licence, Severity.LOW, 48)
    output = generate_text(client, licence)
    case_id = report(client, text=output["text"], where_url="https://blog.example/p/1").json()["case"]["id"]
    client.force_login(staff_user)
    page = client.get(f"/compliance/review/cases/{case_id}/").content.decode()
    assert escape(output["text"][:40]) in page
    assert "z-score" in page and "Bonferroni over 1 keys" in page
    assert "No receipt was given." in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="usage-plot"' in page and "<rect" in page
    assert f'href="/compliance/review/cases/{earlier.pk}/"' in page  # the customer's previous case
    assert "https://blog.example/p/1" in page
    detail = client.get(f"/compliance/api/review/cases/{case_id}/").json()
    assert detail["report"]["verification"]["watermark"]["detected"]
    licence.grant.refresh_from_db()
    assert detail["usage"][-1]["tokens"] == licence.grant.used_tokens > 0  # today's bar is the ledger's
    assert len(detail["usage"]) == 30 and sum(d["tokens"] for d in detail["usage"]) == licence.grant.used_tokens
    assert [c["id"] for c in detail["previous_cases"]] == [earlier.pk]
