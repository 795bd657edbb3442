"""Customers see the cases about them and answer once per case; trainers see cases about their
models; nobody else sees them."""

from __future__ import annotations

import json

from audit.models import AuditEntry
from compliance.models import Case, CustomerAnswer, Severity


def _case(licence) -> Case:
    return Case.objects.create(grant=licence.grant, customer=licence.customer, model_version=licence.version,
                               source=Case.Source.FLAG, summary="Purpose not permitted", severity=Severity.MEDIUM)


def test_the_customer_sees_the_case_and_answers_once(client, make_licence):
    licence = make_licence()
    case = _case(licence)
    client.force_login(licence.customer)
    listing = client.get("/compliance/cases/")
    assert listing.status_code == 200 and f"#{case.pk}".encode() in listing.content
    page = client.get(f"/compliance/cases/{case.pk}/")
    assert page.status_code == 200 and b"Send answer" in page.content

    client.post(f"/compliance/cases/{case.pk}/answer/", {"text": "It was a research project."})
    assert CustomerAnswer.objects.get(case=case).text == "It was a research project."
    assert Case.objects.get(pk=case.pk).state == Case.State.ANSWERED
    again = client.post(f"/compliance/api/cases/{case.pk}/answer/", data=json.dumps({"text": "Also..."}),
                        content_type="application/json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "case_already_answered"
    assert CustomerAnswer.objects.count() == 1
    assert AuditEntry.objects.filter(event="case.answered", subject_id=str(case.pk)).count() == 1
    assert b"Send answer" not in client.get(f"/compliance/cases/{case.pk}/").content


def test_the_trainer_sees_cases_about_their_models_but_cannot_answer(client, make_licence):
    licence = make_licence()
    case = _case(licence)
    trainer = licence.version.owner
    client.force_login(trainer)
    listing = client.get("/compliance/cases/")
    assert f"#{case.pk}".encode() in listing.content and licence.customer.username.encode() in listing.content
    page = client.get(f"/compliance/cases/{case.pk}/")
    assert page.status_code == 200 and b"Send answer" not in page.content
    answer = client.post(f"/compliance/api/cases/{case.pk}/answer/", data=json.dumps({"text": "hm"}),
                         content_type="application/json")
    assert answer.status_code == 404 and not CustomerAnswer.objects.exists()


def test_other_users_cannot_see_or_answer_a_case(client, make_licence, make_user):
    licence = make_licence()
    case = _case(licence)
    other = make_licence().customer  # a customer of the same model
    client.force_login(other)
    assert f"#{case.pk}".encode() not in client.get("/compliance/cases/").content
    assert client.get(f"/compliance/cases/{case.pk}/").status_code == 404
    assert client.post(f"/compliance/cases/{case.pk}/answer/", {"text": "not mine"}).status_code == 404
    assert not CustomerAnswer.objects.exists()
