"""Public verification cannot be used to flood the review queue or to frame a customer: it is
limited per caller, a failing receipt raises one flag however often it is posted, and a genuine
receipt presented with another text is evidence about the presenter, never about its grant."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEntry
from compliance.errors import DecisionInvalid
from compliance.models import Case, Flag
from compliance.services.cases import case_open, case_open_from_flag

from .conftest import generate_text

VERIFY = "/api/v1/verifications"


def verify(client, *, ip: str = "198.51.100.20", headers=None, **body):
    return client.post(VERIFY, data=json.dumps(body), content_type="application/json", REMOTE_ADDR=ip,
                       headers=headers or {})


def _forgeries(jws: str, count: int) -> list[str]:
    """`count` different receipts under the same (published) key, each with a broken signature."""
    head, payload, signature = jws.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    forged = []
    for i in range(count):
        char = alphabet[i % len(alphabet)]
        position = 5 + i // len(alphabet)
        if signature[position] == char:
            char = alphabet[(i + 1) % len(alphabet)]
        forged.append(f"{head}.{payload}.{signature[:position]}{char}{signature[position + 1:]}")
    return forged


def test_verification_is_rate_limited_per_address_with_retry_after(client, db, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 3
    statuses = [verify(client, text="some text", ip="203.0.113.40").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = verify(client, text="some text", ip="203.0.113.40")
    body = limited.json()["error"]
    assert body["code"] == "verification_rate_limited" and body["type"] == "rate_limit_error"
    assert int(limited["Retry-After"]) > 0
    assert verify(client, text="some text", ip="203.0.113.41").status_code == 200
    # The page counts against the same limit and says so.
    page = client.post("/verify/", {"text": "some text"}, REMOTE_ADDR="203.0.113.40")
    assert page.status_code == 429 and b"verifications an hour" in page.content


def test_verification_with_an_api_key_is_rate_limited_per_key_from_any_address(client, make_licence, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 1000
    settings.COMPLIANCE_VERIFICATIONS_PER_KEY_PER_HOUR = 2
    licence = make_licence()
    auth = {"Authorization": f"Bearer {licence.plaintext}"}
    statuses = [verify(client, text="some text", ip=f"192.0.2.{i}", headers=auth).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    assert verify(client, text="some text", ip="192.0.2.99").status_code == 200  # no key: the address's limit
    bad = verify(client, text="some text", headers={"Authorization": "Bearer imp_not_a_key"})
    assert bad.status_code == 401


def test_many_forged_receipts_raise_one_flag_and_one_audit_entry(client, make_licence, settings):
    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 1000
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    flags_before = AuditEntry.objects.filter(event="flag.raised").count()
    for i, forged in enumerate(_forgeries(output["receipt"]["jws"], 25)):
        body = verify(client, text=output["text"], receipt=forged, ip=f"198.51.100.{i}").json()
        assert body["receipt"]["reason"] == "signature"
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    assert flag.grant is None and flag.customer is None and flag.evidence["count"] == 25
    assert AuditEntry.objects.filter(event="flag.raised").count() == flags_before + 1
    assert len(flag.evidence["presenters"]) == 20 and flag.evidence["presenters"][0]["ip"] == "198.51.100.24"


def test_a_genuine_receipt_with_altered_text_is_evidence_about_the_presenter_not_the_grant(
        client, make_licence, staff_user):
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    with_the_grant = case_open(grant=licence.grant, source=Case.Source.FLAG, severity=10, summary="earlier matter")
    for _ in range(3):  # a published sample, presented again and again with words it never said
        body = verify(client, text=output["text"] + " and then I stole it", receipt=output["receipt"]["jws"],
                      ip="203.0.113.66").json()
        assert body["receipt"]["reason"] == "text_altered"
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    assert flag.about == Flag.About.PRESENTER and flag.presenter_ip == "203.0.113.66"
    assert flag.grant is None and flag.customer is None and flag.case is None
    assert flag.evidence["receipt_belongs_to"]["grant"] == str(licence.grant.pk)
    assert flag.evidence["count"] == 3
    assert not with_the_grant.flags.exists() and Case.objects.filter(grant=licence.grant).count() == 1
    with pytest.raises(DecisionInvalid):
        case_open_from_flag(flag_id=flag.pk, staff=staff_user)
    assert AuditEntry.objects.filter(event="flag.raised", data__grant="").count() == 1
    client.force_login(staff_user)
    queue = client.get("/compliance/review/").content.decode()
    assert "About the presenter" in queue and "203.0.113.66" in queue and "not accused" in queue


def test_a_signed_in_presenter_is_named_on_the_flag(client, make_licence):
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    client.force_login(licence.customer)
    client.post("/verify/", {"text": output["text"] + "!", "receipt": output["receipt"]["jws"]},
                REMOTE_ADDR="203.0.113.70")
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    assert flag.presenter_user == licence.customer and flag.grant is None and flag.evidence["source"] == "verify_page"


def test_the_verify_page_caps_the_text_length_as_the_api_does(client, db):
    too_long = "a" * 200_001
    page = client.post("/verify/", {"text": too_long})
    assert page.status_code == 400 and b"at most 200000 characters" in page.content
    assert b"Verdict" not in page.content
    assert verify(client, text=too_long).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_forged_receipts_posted_in_parallel_still_raise_one_flag(make_licence, settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.test import Client

    settings.COMPLIANCE_VERIFICATIONS_PER_IP_PER_HOUR = 1000
    licence = make_licence()
    output = generate_text(Client(), licence, tokens=12)

    def attempt(forged):
        try:
            return verify(Client(), text=output["text"], receipt=forged).json()["receipt"]["reason"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(attempt, _forgeries(output["receipt"]["jws"], 16)))
    assert reasons == ["signature"] * 16
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    assert flag.evidence["count"] == 16
    assert AuditEntry.objects.filter(event="flag.raised").count() == 1
