"""Every receipt carries who owns the output and whose rights it rests on; receipts and terms made
before that keep verifying, and only a valid receipt's rights are shown."""

import json

import pytest

from inference.receipts import receipt_sign, receipt_verify, sha256_text
from licensing.models import LicenceTerms
from licensing.terms import canonical_json, terms_hash
from tests import factories
from tests.inference.test_receipts import joserfc_verify

from .conftest import licence_for, served_version
from .test_ownership import V1_DOCUMENT

pytestmark = pytest.mark.django_db


def generate(client, plaintext, version, **body):
    body = {"model": str(version.pk), "prompt": "At dawn", "max_new_tokens": 12, "ignore_eos": True, **body}
    response = client.post("/api/v1/generations", data=json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200, response.content
    return response.json()


def test_share_alike_terms_are_stated_on_every_receipt(client, trainer, customer, tiny_stored):
    version = served_version(trainer, tiny_stored, licence="cc-by-sa-4.0", rights_holders=["Wiki Authors"])
    grant, key = licence_for(customer, version, uses=["commercial"], ownership="customer",
                             attribution="From Wiki Authors, CC BY-SA 4.0")
    body = generate(client, key, version, n=2, purpose="commercial")
    jwks = client.get("/.well-known/jwks.json").json()
    for output in body["outputs"]:
        licence = joserfc_verify(output["receipt"]["jws"], jwks)["licence"]
        assert "must share them under CC BY-SA 4.0" in licence["share_alike"]
        assert licence["attribution"] == "From Wiki Authors, CC BY-SA 4.0"
        assert licence["rights_chain"]["dataset"]["rights_holders"] == ["Wiki Authors"]
    assert body["licence"]["share_alike"] == grant.terms.document["share_alike"]


def _v1_grant(trainer, customer, version):
    terms = LicenceTerms(sha256=terms_hash(V1_DOCUMENT), document=V1_DOCUMENT, canonical=canonical_json(V1_DOCUMENT),
                         uses_index=" personal research ")
    terms.save(force_insert=True)
    listing = factories.listing(trainer, mv=version)
    offer = factories.Offer.objects.create(listing=listing, name="Sold last year", terms=terms, fee_cents=900)
    grant = factories.grant(customer, offer)
    from licensing.services import apikey_create

    return grant, apikey_create(owner=customer, name="old", grants=[grant])[1]


def test_a_grant_under_schema_1_terms_still_generates_and_its_receipt_verifies(client, trainer, customer,
                                                                                tiny_stored):
    version = served_version(trainer, tiny_stored, licence="cc-by-4.0")
    grant, key = _v1_grant(trainer, customer, version)
    output = generate(client, key, version)["outputs"][0]
    claims = joserfc_verify(output["receipt"]["jws"], client.get("/.well-known/jwks.json").json())
    assert claims["licence"]["schema"] == "imprint-terms/1" and claims["licence"]["ownership"] is None
    assert claims["licence"]["terms_sha256"] == grant.terms_id == terms_hash(V1_DOCUMENT)
    page = client.post("/verify/", {"text": output["text"], "receipt": output["receipt"]["jws"]}).content.decode()
    assert "RECEIPT VALID" in page and "do not say who owns the text" in page


def test_a_receipt_signed_before_receipts_named_rights_verifies_and_shows_its_terms_rights(client, trainer):
    version = served_version(trainer, {"prefix": "x/", "digest": "ab" * 32, "manifest": []}, licence="cc0-1.0")
    terms = factories.terms(version, ownership="customer", uses=["commercial"])
    text = "The harbour was quiet at dawn."
    # The claims a receipt carried before: the terms by hash only.
    _kid, old = receipt_sign(claims={"jti": "old-1", "iat": 1_790_000_000, "model": {"digest": version.digest},
                                     "licence": {"terms_id": terms.sha256, "terms_sha256": terms.sha256},
                                     "grant": "g-old", "output_sha256": sha256_text(text)})
    assert receipt_verify(jws=old, text=text).valid
    page = client.post("/verify/", {"text": text, "receipt": old}).content.decode()
    assert "From the licence terms the receipt names by their SHA-256" in page
    assert "The customer who generated it owns this text." in page and "licensed CC0 1.0" in page


def test_an_altered_text_shows_no_rights_at_all(client, trainer, customer, tiny_stored):
    version = served_version(trainer, tiny_stored, licence="proprietary-owned", rights_holders=["Ada Byron"])
    _grant, key = licence_for(customer, version, uses=["commercial"], ownership="customer")
    output = generate(client, key, version, purpose="commercial")["outputs"][0]
    # A text the receipt was not issued for, with no watermark of its own (an edited model text may
    # still carry enough of the watermark to be traced to its grant, which is other evidence).
    page = client.post("/verify/", {"text": "A paragraph a person wrote about the harbour at dawn.",
                                    "receipt": output["receipt"]["jws"]}).content.decode()
    assert "text_altered" in page and "Rights in this text" not in page


def test_the_verify_page_states_the_watermark_evidence_in_the_schemes_own_terms(client, trainer, customer,
                                                                                tiny_stored):
    version = served_version(trainer, tiny_stored, licence="proprietary-owned", rights_holders=["Ada Byron"])
    grant, key = licence_for(customer, version, uses=["commercial"], ownership="customer")
    text = generate(client, key, version, purpose="commercial", max_new_tokens=120)["outputs"][0]["text"]
    page = client.post("/verify/", {"text": text}).content.decode()
    assert "Watermark found" in page
    # A Gumbel-max key has no green list: its evidence is a score over the tokens, never "None of N".
    green_list = grant.watermark_scheme in ("lefthash", "sweet")
    assert ("scored tokens in the licence's green list" in page) == green_list
    assert ("tokens scored with the licence's key" in page) != green_list and "None of" not in page
