"""Promises of public reports: verified at once; a watermarked text opens a case naming its grant,
an unwatermarked one accuses no one; rate limited per address; a honeypot instead of a captcha."""

from __future__ import annotations

import pytest

from inference.engine import GenerationRequest
from inference.modelstore import engine_instance, model_folder_fetch
from audit.models import AuditEntry
from compliance.models import Case, Flag, Report, Severity

from .conftest import generate_text, report


def test_a_reported_watermarked_text_opens_a_case_naming_its_grant_not_another_of_the_same_model(
        client, make_licence):
    grant_a = make_licence(samples={"publish": False, "resell": False}, attribution="")
    grant_b = make_licence()  # same model version, another customer
    assert grant_a.version.pk == grant_b.version.pk
    text = generate_text(client, grant_a)["text"]

    response = report(client, text=text, where_text="pasted on a public blog")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["verdict"] == "watermark_detected"
    assert body["verification"]["watermark"]["z_score"] > 4 and body["verification"]["watermark"]["candidates"] == 2
    assert body["case"]["grant"] == str(grant_a.grant.pk)
    assert "Samples may not be published." in body["case"]["terms_in_force"]

    case = Case.objects.get()
    assert (case.grant_id, case.customer_id, case.model_version_id) == (
        grant_a.grant.pk, grant_a.customer.pk, grant_a.version.pk)
    assert case.source == Case.Source.REPORT and case.severity == Severity.HIGH
    assert not Case.objects.filter(grant=grant_b.grant).exists()
    flag = Flag.objects.get(kind=Flag.Kind.WATERMARK_DETECTED)
    assert flag.case == case and flag.grant_id == grant_a.grant.pk and flag.evidence["z_score"] > 4
    assert flag.evidence["adjusted_p_value"] < 1e-3
    assert AuditEntry.objects.filter(event="case.opened", subject_id=str(case.pk)).exists()


def test_an_unwatermarked_text_opens_no_accusation(client, make_licence):
    licence = make_licence()
    plain = engine_instance().generate(GenerationRequest(
        model_digest=licence.version.digest, model_dir=model_folder_fetch(licence.version),
        prompt="the quick brown", max_new_tokens=120, stop_at_eos=False, seed=5)).completions[0].text

    body = report(client, text=plain).json()
    assert body["verdict"] == "no_evidence" and body["case"] is None
    assert not body["verification"]["watermark"]["detected"]
    assert Report.objects.count() == 1  # recorded for the record, accusing no one
    assert not Case.objects.exists() and not Flag.objects.exists()


def test_attribution_terms_are_shown_and_a_published_sample_is_medium_severity(client, make_licence):
    licence = make_licence(attribution="Written with Tess's model")
    text = generate_text(client, licence)["text"]
    body = report(client, text=text).json()
    assert "Attribution required: \u201cWritten with Tess's model\u201d." in body["case"]["terms_in_force"]
    assert Case.objects.get().severity == Severity.MEDIUM


def test_a_receipt_that_fails_verification_raises_a_flag_about_the_reporter_with_the_grant_as_context(
        client, make_licence):
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    altered = output["text"] + " and then some"
    body = report(client, text=altered, receipt=output["receipt"]["jws"]).json()
    assert body["verification"]["receipt"]["reason"] == "text_altered"
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    # Anyone holding a genuine receipt can pair it with another text: the grant is context, not accused.
    assert flag.grant_id is None and flag.about == Flag.About.PRESENTER and flag.presenter_ip == "198.51.100.7"
    assert flag.evidence["receipt_belongs_to"]["grant"] == str(licence.grant.pk)
    assert flag.evidence["reason"] == "text_altered"
    assert flag.evidence["report"] == body["report"]


def test_the_report_form_works_for_anonymous_visitors(client, make_licence):
    licence = make_licence()
    text = generate_text(client, licence)["text"]
    assert client.get("/compliance/report/").status_code == 200
    page = client.post("/compliance/report/", {"text": text, "where_url": "https://example.org/post",
                                                "where_text": "", "receipt": "", "website": ""})
    assert page.status_code == 200 and b"A compliance case was opened" in page.content
    assert Case.objects.get().grant_id == licence.grant.pk
    assert Report.objects.get().reporter is None


def test_the_honeypot_records_and_checks_nothing(client, db):
    page = client.post("/compliance/report/", {"text": "some text", "website": "https://spam.example"})
    api = report(client, text="some text", website="https://spam.example")
    assert page.status_code == 200 and b"report was received" in page.content
    assert api.status_code == 201 and api.json()["report"] is None
    assert not Report.objects.exists()


def test_reports_are_rate_limited_per_address(client, db, settings):
    settings.COMPLIANCE_REPORTS_PER_IP_PER_HOUR = 2
    statuses = [report(client, text="too short to say", ip="203.0.113.9").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    limited = report(client, text="too short to say", ip="203.0.113.9").json()
    assert limited["error"]["code"] == "report_rate_limited"
    assert report(client, text="too short to say", ip="203.0.113.10").status_code == 201
    assert Report.objects.count() == 3


@pytest.mark.parametrize("body, param", [({"text": ""}, "text"),
                                         ({"text": "x", "where_url": "javascript:alert(1)"}, "where_url")])
def test_a_bad_report_is_400_with_the_field(client, db, body, param):
    response = report(client, **body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_a_forged_receipt_is_flagged_once_and_a_malformed_one_not_at_all(client, make_licence):
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    head, payload, signature = output["receipt"]["jws"].split(".")
    forged = f"{head}.{payload}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"
    for ip in ("192.0.2.1", "192.0.2.2"):
        assert report(client, text=output["text"], receipt=forged, ip=ip).json()["verification"]["receipt"][
            "reason"] == "signature"
    flag = Flag.objects.get(kind=Flag.Kind.RECEIPT_INVALID)
    assert flag.grant is None and flag.evidence["claims"] is None  # an unverified claim accuses no one
    report(client, text=output["text"], receipt="not a receipt")
    assert Flag.objects.filter(kind=Flag.Kind.RECEIPT_INVALID).count() == 1


def test_the_verify_api_result_raises_a_receipt_flag_through_the_service(client, make_licence):
    from compliance.services.flags import flags_from_verification

    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    altered = output["text"] + "!"
    result = client.post("/api/v1/verifications", data={"text": altered, "receipt": output["receipt"]["jws"]},
                         content_type="application/json").json()
    flag = flags_from_verification(result=result, text=altered, receipt=output["receipt"]["jws"],
                                   source="verify_api")
    assert flag.evidence["receipt_belongs_to"]["grant"] == str(licence.grant.pk) and flag.grant_id is None
    assert flag.evidence["source"] == "verify_api"


def test_the_reported_text_is_kept_exactly_so_its_receipt_verifies(client, make_licence):
    licence = make_licence()
    output = generate_text(client, licence, tokens=12)
    text = "  " + output["text"].strip() + "\n"  # whitespace is part of what the receipt signed
    body = report(client, text=output["text"], receipt=output["receipt"]["jws"]).json()
    assert body["verification"]["receipt"]["valid"] and body["verdict"] == "receipt_valid"
    assert Report.objects.get(pk=body["report"]).text == output["text"]
    assert body["case"]["grant"] == str(licence.grant.pk)  # a valid receipt names its grant too
    assert report(client, text=text, receipt=output["receipt"]["jws"]).json()["verification"]["receipt"][
        "reason"] == "text_altered"
