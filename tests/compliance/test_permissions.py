"""Non-staff users get 403 on every review page and API. The test enumerates the compliance URLconf,
so a review page added later without the staff gate fails here."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, get_resolver, reverse

from compliance.models import Case, Flag, Severity
from compliance.services.flags import flag_raise

# Everything else of compliance is staff-only.
PUBLIC = {"report", "api_report_create", "verify", "api_verifications"}
PARTICIPANTS = {"my_cases", "my_case", "my_case_answer", "api_case_answer"}
# Staff actions take POST only (GET is 405 for staff, still 403 for everyone else).
ACTIONS = {"case_decide", "flag_open_case", "flag_dismiss", "api_case_decide", "api_flag_open_case",
           "api_flag_dismiss"}


def _compliance_patterns() -> list[URLPattern]:
    resolver = get_resolver()
    for entry in resolver.url_patterns:
        if getattr(entry, "namespace", None) == "compliance":
            return [p for p in entry.url_patterns if isinstance(p, URLPattern)]
    raise AssertionError("compliance URLs are not mounted")


def staff_urls(case: Case, flag: Flag, *, with_names: bool = False) -> list:
    values = {"case_id": case.pk, "flag_id": flag.pk}
    urls = []
    for pattern in _compliance_patterns():
        if pattern.name in PUBLIC | PARTICIPANTS:
            continue
        kwargs = {name: values[name] for name in pattern.pattern.regex.groupindex}
        url = reverse(f"compliance:{pattern.name}", kwargs=kwargs)
        urls.append((pattern.name, url) if with_names else url)
    return urls


@pytest.fixture
def case_and_flag(make_licence):
    licence = make_licence()
    case = Case.objects.create(grant=licence.grant, customer=licence.customer, model_version=licence.version,
                               source=Case.Source.FLAG, summary="test", severity=Severity.LOW)
    flag = flag_raise(kind=Flag.Kind.PURPOSE_NOT_PERMITTED, severity=Severity.LOW, evidence={},
                      grant=licence.grant, customer=licence.customer)
    return licence, case, flag


def test_the_enumeration_covers_the_review_pages_and_apis(case_and_flag):
    _, case, flag = case_and_flag
    urls = staff_urls(case, flag)
    assert len(urls) >= 10
    assert "/compliance/review/" in urls and f"/compliance/api/review/cases/{case.pk}/decisions/" in urls
    assert "/compliance/review/exports/audit.csv" in urls


def test_non_staff_users_get_403_on_every_review_page_and_api(client, case_and_flag, make_user):
    licence, case, flag = case_and_flag
    trainer = licence.version.owner
    for user in (licence.customer, trainer, make_user("outsider")):
        client.force_login(user)
        for url in staff_urls(case, flag):
            for method in (client.get, client.post):
                response = method(url)
                assert response.status_code == 403, (user.username, method.__name__, url, response.status_code)
    assert Case.objects.get(pk=case.pk).state == Case.State.OPEN and not case.decisions.exists()


def test_anonymous_visitors_are_sent_to_log_in_or_get_403(client, case_and_flag):
    _, case, flag = case_and_flag
    for url in staff_urls(case, flag):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("accounts:login"))
        else:
            assert "/api/" in url and response.json()["error"]["type"] == "permission_error"


def test_staff_can_open_every_review_page(client, case_and_flag, staff_user):
    _, case, flag = case_and_flag
    client.force_login(staff_user)
    for name, url in staff_urls(case, flag, with_names=True):
        # Actions themselves are tested in test_decisions and test_flags.
        assert client.get(url).status_code == (405 if name in ACTIONS else 200), url
