"""The verify page, the verification API and the report confirmation say what they found in plain
words: the model by its one name and its trainer, who owns the text and what it may be used for,
when the receipt was issued as a date, exact token counts, and verdicts as words, never as codes."""

from __future__ import annotations

import base64
import json
import re

import pytest

from compliance.models import Case
from compliance.verdicts import VERDICTS, verdict_words
from inference.receipts import receipt_sign, sha256_text
from marketplace.models import Listing

from .conftest import generate_text, report

VERIFY = "/api/v1/verifications"
pytestmark = pytest.mark.django_db


def named(make_licence, **terms):
    """A licence on a model listed as "Poe Nocturnes" by the trainer "ravenpoet"."""
    licence = make_licence(**terms)
    listing = make_licence.listing()
    Listing.objects.filter(pk=listing.pk).update(title="Poe Nocturnes")
    type(listing.trainer).objects.filter(pk=listing.trainer_id).update(username="ravenpoet")
    return licence


def verify_api(client, **body) -> dict:
    response = client.post(VERIFY, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def visible(html: bytes) -> str:
    """The page's text, tags dropped and spaces folded, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def test_a_text_only_verdict_names_the_model_its_trainer_the_owner_and_the_uses(client, make_licence):
    licence = named(make_licence, uses=["personal", "research"], ownership="customer", attribution="",
                     samples={"publish": False, "resell": False})
    text = generate_text(client, licence)["text"]

    page = client.post("/verify/", {"text": text})
    words = visible(page.content)
    assert "Verdict: WATERMARK DETECTED" in words
    assert "Model Poe Nocturnes by ravenpoet" in words and "ravenpoet/poe-nocturnes@" in words
    assert "Trainer ravenpoet" in words and str(licence.grant.pk) in words
    assert "The customer who generated it owns this text." in words
    assert "It may be used for personal, non-commercial use and research" in words
    assert "From the licence terms of the grant the watermark traces this text to" in words
    # An empty attribution leaves no empty row or empty quotes behind.
    assert "Attribution" not in words and "“”" not in words

    body = verify_api(client, text=text)
    explanation = body["explanation"]
    assert explanation["verdict"] == {"code": "watermark_detected", "label": "Watermark detected",
                                      "summary": VERDICTS["watermark_detected"][1], "tone": "found"}
    assert explanation["model"]["display"] == "Poe Nocturnes by ravenpoet"
    assert explanation["model"]["pinned_id"].startswith("ravenpoet/poe-nocturnes@")
    assert explanation["rights"]["owner"] == "The customer who generated it owns this text."
    assert explanation["grant_id"] == str(licence.grant.pk) and explanation["issued_at"] is None


def test_a_receipt_verdict_names_the_model_and_its_issue_date_not_a_digest_and_an_epoch(client, make_licence):
    licence = named(make_licence)
    output = generate_text(client, licence, tokens=12)
    claims_iat = json.loads(_payload(output["receipt"]["jws"]))["iat"]

    page = client.post("/verify/", {"text": output["text"], "receipt": output["receipt"]["jws"]})
    html = page.content.decode()
    words = visible(page.content)
    assert "Verdict: RECEIPT VALID" in words and "Model Poe Nocturnes by ravenpoet" in words
    assert str(claims_iat) not in html  # no raw epoch anywhere
    issued = re.search(r'id="receipt-issued"><time datetime="([^"]+)" title="([^"]+ UTC)"', html)
    assert issued and issued.group(1).endswith("Z")

    explanation = verify_api(client, text=output["text"], receipt=output["receipt"]["jws"])["explanation"]
    assert explanation["model"]["display"] == "Poe Nocturnes by ravenpoet"
    assert explanation["issued_at"] == issued.group(1)


def _payload(jws: str) -> str:
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_token_counts_say_what_each_counts_and_why_an_edited_text_differs(client, make_licence):
    licence = named(make_licence)
    output = generate_text(client, licence, tokens=12)
    generated = json.loads(_payload(output["receipt"]["jws"]))["usage"]["completion_tokens"]
    assert generated == 12

    whole = verify_api(client, text=output["text"], receipt=output["receipt"]["jws"])
    counted = whole["watermark"]["text_token_count"]
    assert counted == whole["watermark"]["text_tokens"] + 1  # the first token is context, not scored
    sentence = whole["explanation"]["tokens"]["sentence"]
    assert sentence.startswith("The receipt says the model generated 12 tokens. "
                               f"The text you pasted has {counted} tokens as the model's tokenizer counts them.")

    trimmed_text = output["text"][: len(output["text"]) // 2]
    trimmed = verify_api(client, text=trimmed_text, receipt=output["receipt"]["jws"])
    assert trimmed["verdict"] == "receipt_text_altered"
    assert trimmed["explanation"]["verdict"]["label"] == "Text altered"
    assert "The counts differ because the text was edited or trimmed after it was generated." in (
        trimmed["explanation"]["tokens"]["sentence"])
    page = visible(client.post("/verify/", {"text": trimmed_text, "receipt": output["receipt"]["jws"]}).content)
    assert "Verdict: TEXT ALTERED" in page and "edited or trimmed after it was generated" in page
    assert "Receipt issued for Poe Nocturnes by ravenpoet" in page and "Rights in this text" not in page
    assert "receipt_text_altered" not in page


def test_a_receipt_from_before_receipts_carried_names_is_named_by_its_version(client, make_licence):
    licence = named(make_licence)
    text = "The harbour was quiet at dawn."
    _kid, old = receipt_sign(claims={"jti": "old-1", "iat": 1_790_000_000, "model": {"digest": licence.version.digest},
                                     "licence": {"terms_id": licence.grant.terms_id}, "grant": str(licence.grant.pk),
                                     "output_sha256": sha256_text(text)})
    words = visible(client.post("/verify/", {"text": text, "receipt": old}).content)
    assert "Verdict: RECEIPT VALID" in words and "Model Poe Nocturnes by ravenpoet" in words
    assert "1790000000" not in words and "2026-09-21" in words
    # Without an age in the claims, no "generated" count is claimed.
    assert "The receipt says" not in words


def test_every_verdict_reads_as_words(client):
    codes = [*VERDICTS, "scan_incomplete"]
    for code in codes:
        words = verdict_words(code)
        assert "_" not in words["label"] and words["summary"]
    assert verdict_words("scan_incomplete")["label"] == "Scan incomplete"
    assert verdict_words("some_new_code")["label"] == "Some new code"


def test_a_report_confirmation_and_the_case_page_show_the_verdict_in_words(client, make_licence, staff_user):
    licence = named(make_licence)
    text = generate_text(client, licence)["text"]
    page = client.post("/compliance/report/", {"text": text, "where_text": "a forum"})
    words = visible(page.content)
    assert "Verdict: Watermark detected" in words and "watermark_detected" not in words
    assert "Model: Poe Nocturnes by ravenpoet." in words

    body = report(client, text=text, ip="198.51.100.9").json()
    assert body["verdict"] == "watermark_detected" and body["explanation"]["verdict"]["label"] == "Watermark detected"

    client.force_login(staff_user)
    case_page = visible(client.get(f"/compliance/review/cases/{Case.objects.first().pk}/").content)
    assert "Verdict: Watermark detected" in case_page and "watermark_detected" not in case_page
