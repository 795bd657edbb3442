"""Promises of the verification endpoint, the verify page and the JWKS endpoint."""

from __future__ import annotations

import json

from inference.engine import GenerationRequest
from inference.modelstore import engine_instance, model_folder_fetch

from .test_generation_api import post
from .test_receipts import joserfc_verify

VERIFY = "/api/v1/verifications"


def verify(client, **body):
    return client.post(VERIFY, data=json.dumps(body), content_type="application/json").json()


def test_the_jwks_endpoint_publishes_the_key_that_signed_a_receipt(client, make_licence):
    licence = make_licence()
    jws = post(client, licence).json()["outputs"][0]["receipt"]["jws"]
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert joserfc_verify(jws, response.json())["grant"] == str(licence.grant.pk)


def test_a_valid_receipt_and_its_text_verify_and_each_tampering_names_its_check(client, make_licence):
    licence = make_licence()
    output = post(client, licence, max_new_tokens=12, ignore_eos=True).json()["outputs"][0]
    text, jws = output["text"], output["receipt"]["jws"]
    ok = verify(client, text=text, receipt=jws)
    assert ok["receipt"]["valid"] and ok["verdict"] == "receipt_valid"
    assert ok["receipt"]["claims"]["licence"]["terms_id"] == licence.grant.terms_id
    altered = verify(client, text=text[:-1] + ("x" if text[-1] != "x" else "y"), receipt=jws)
    assert altered["receipt"]["reason"] == "text_altered"
    head, payload, signature = jws.split(".")
    forged_sig = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert verify(client, text=text, receipt=f"{head}.{payload}.{forged_sig}")["receipt"]["reason"] == "signature"
    assert verify(client, text=text, receipt="not a receipt")["receipt"]["reason"] == "malformed"


def test_the_watermark_names_the_grant_without_a_receipt_and_plain_text_is_not_flagged(client, make_licence):
    first, _other = make_licence(), make_licence()  # two grants: the scan must pick the right one
    text = post(client, first, max_new_tokens=120, ignore_eos=True).json()["outputs"][0]["text"]
    found = verify(client, text=text)
    assert found["verdict"] == "watermark_detected" and found["watermark"]["grant_id"] == str(first.grant.pk)
    assert found["watermark"]["candidates"] == 2 and found["watermark"]["z_score"] > 4
    plain = engine_instance().generate(GenerationRequest(
        model_digest=first.version.digest, model_dir=model_folder_fetch(first.version), prompt="the quick brown",
        max_new_tokens=120, stop_at_eos=False, seed=9)).completions[0].text
    clean = verify(client, text=plain)
    assert clean["verdict"] == "no_evidence" and not clean["watermark"]["detected"]
    assert abs(clean["watermark"]["z_score"]) < 4
    short = verify(client, text="the quick")
    assert short["watermark"]["too_short"] and short["verdict"] == "too_short"


def test_the_verify_page_shows_the_verdict(client, make_licence):
    licence = make_licence()
    # ignore_eos: a sampled output may end at once, and the page ignores an empty text.
    output = post(client, licence, max_new_tokens=12, ignore_eos=True).json()["outputs"][0]
    page = client.post("/verify/", {"text": output["text"], "receipt": output["receipt"]["jws"]})
    assert page.status_code == 200
    assert b"RECEIPT VALID" in page.content and licence.grant.terms_id[:16].encode() in page.content
    # The terms URL printed in earlier licence stamps still leads to the terms.
    terms = client.get(f"/verify/terms/{licence.grant.terms_id}/", follow=True)
    assert terms.status_code == 200 and licence.grant.terms_id.encode() in terms.content


def test_the_playground_generates_with_the_stamp_for_a_signed_in_customer(client, make_licence):
    licence = make_licence()
    client.force_login(licence.customer)
    page = client.post("/playground/", {"model": str(licence.version.pk), "prompt": "the quick brown",
                                        "max_new_tokens": "8", "temperature": "1.0", "purpose": "personal"})
    assert page.status_code == 200 and b"Attribution" in page.content and b"Verify this text" in page.content
    assert licence.customer.grants.get().used_tokens > 0
