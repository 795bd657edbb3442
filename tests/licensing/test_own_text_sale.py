"""A trainer's own text, sold for commercial use: uploaded with its rights-holder, published with a
commercial offer whose outputs the customer owns, bought through the local test-mode checkout, used
commercially; the receipt's ownership and rights chain verify with a JOSE library from the JWKS
alone, and the verify page says in plain words who owns the text and whose data it came from."""

import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from licensing.services import apikey_create
from marketplace.models import Listing, Order
from tests import factories
from tests.inference.test_receipts import joserfc_verify
from tests.support.corpus import corpus_documents
from training.models import Dataset, ModelVersion, TrainingJob
from training.services import datasets

pytestmark = pytest.mark.django_db
HOLDER = "Ada Byron"


def _own_text_version(client, trainer, stored):
    """The trainer's own text uploaded through the API; a servable version trained on it."""
    text = "<|endoftext|>".join(corpus_documents()[:20]).encode()
    client.force_login(trainer)
    response = client.post("/api/v1/training/datasets/", {
        "file": SimpleUploadedFile("logbook.txt", text, content_type="text/plain"), "name": "Harbour logbook",
        "licence": "proprietary-owned", "licence_attested": "true", "rights_holders": HOLDER})
    assert response.status_code == 202, response.content
    assert response.json()["rights_holders"] == [HOLDER]
    # The upload is processed by a default-queue worker; here, in this process.
    upload = datasets.dataset_upload_process(upload_id=response.json()["id"])
    data = Dataset.objects.get(owner=trainer)
    assert upload.dataset == data and data.rights_holders == [HOLDER]
    # Training itself is covered by the training tests; a version of the served tiny model stands in.
    job = TrainingJob.objects.create(owner=trainer, dataset=data, name="logbook", base_model="tiny",
                                     total_steps=10, step=10, state=TrainingJob.State.SUCCEEDED)
    return ModelVersion.objects.create(
        owner=trainer, job=job, name="Logbook", from_step=10, storage_prefix=stored["prefix"],
        digest=stored["digest"], parameter_count=150_000, base_model="tiny", base_licence="mit",
        dataset_digest=data.sha256, dataset_licence=data.licence, n_positions=128, metrics={},
        card="# Logbook\n\nWrites harbour logs.", files=stored["manifest"])


def _publish_commercial_offer(client, version) -> dict:
    listing = client.post(reverse("marketplace:api_listing_publish"),
                          {"model_version": str(version.pk), "title": "Harbour Logbook"},
                          content_type="application/json")
    assert listing.status_code in (200, 201), listing.content
    terms = factories.terms_raw(uses=["internal", "commercial"], ownership="customer", attribution="",
                                samples={"publish": True, "resell": True})
    offer = client.post(reverse("marketplace:api_offer_create", args=[listing.json()["id"]]),
                        {"name": "Commercial", "terms": terms, "fee_cents": 4900, "currency": "usd"},
                        content_type="application/json")
    assert offer.status_code == 201, offer.content  # no more "not one Imprint can check"
    return offer.json()


def test_own_text_is_sold_for_commercial_use_and_its_outputs_say_who_owns_them(
        client, trainer, customer, tiny_stored, payments_test_mode):
    version = _own_text_version(client, trainer, tiny_stored)
    offer = _publish_commercial_offer(client, version)
    chain = offer["terms"]["rights_chain"]
    assert chain["dataset"]["own_text"] and chain["dataset"]["rights_holders"] == [HOLDER]
    listing = Listing.objects.get(model_version=version)
    card = yaml.safe_load(listing.card.split("---\n")[1])  # the card states the terms on sale
    # Published through the site at the test client's host, so the card links there.
    terms_link = "http://testserver" + reverse("licensing:terms_text", args=[offer["terms_sha256"]])
    assert (card["license"], card["license_link"]) == ("other", terms_link)

    client.force_login(customer)  # buys through the real checkout path, in local test mode
    client.post(reverse("marketplace:offer_buy", args=[offer["id"]]),
                {"accept": "1", "accepted_terms": offer["terms_sha256"]})
    order = Order.objects.get(customer=customer)
    client.post(reverse("marketplace:order_pay_test_mode", args=[order.pk]), {"card_number": "4242 4242 4242 4242"})
    order.refresh_from_db()
    assert order.state == "paid" and order.grant.state == "active"

    _key, plaintext = apikey_create(owner=customer, name="shop", default_purpose="commercial")
    response = client.post("/api/v1/generations", data=json.dumps({
        "model": str(version.pk), "prompt": "At dawn", "max_new_tokens": 16, "purpose": "commercial",
        "ignore_eos": True}), content_type="application/json", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200, response.content
    body = response.json()
    stamp, output = body["licence"], body["outputs"][0]
    assert stamp["ownership"] == "customer" and stamp["rights_chain"] == chain

    # Anyone checks ownership and the rights chain with a JOSE library and the public JWKS alone.
    claims = joserfc_verify(output["receipt"]["jws"], client.get("/.well-known/jwks.json").json())
    licence = claims["licence"]
    assert licence["terms_sha256"] == offer["terms_sha256"] and licence["schema"] == "imprint-terms/2"
    assert licence["ownership"] == "customer" and licence["uses"] == ["internal", "commercial"]
    assert licence["rights_chain"]["dataset"]["rights_holders"] == [HOLDER]
    assert licence["rights_chain"]["base_model"]["licence"] == "mit"
    assert "MIT licence's copyright and permission notice" in licence["rights_chain"]["base_model"]["notice"]

    page = client.post("/verify/", {"text": output["text"], "receipt": output["receipt"]["jws"]}).content.decode()
    assert "The customer who generated it owns this text." in page
    assert "It may be used for internal business use and commercial use" in page
    assert f"the trainer&#x27;s own text ({HOLDER}), attested by the trainer" in page
