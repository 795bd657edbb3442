"""The customer's and the admin's journeys in a real browser.

Customer: find the model in the catalogue, compare its offers, buy one through the local
Stripe-compatible server (localstripe, with its Stripe.js in the page), see the model by its one
name on My licences, the key form and the playground, create an API key, generate in the
playground (the prompt before its continuation, a copy button), see the stamp, find every absolute
link on the site's own port, verify the text (the verdict names the model and its trainer). Admin:
see the flag raised by the customer's disallowed purpose, open the case (the model by name, no
Reinstate while the grant is active), suspend the grant, read the audit page (newest first, people
by name, the chain's status), and the customer's next generation fails with the reason."""

import base64
import json
import re

import pytest
from django.test import Client

from licensing.models import Grant
from marketplace.models import Order
from tests import factories
from tests.inference.conftest import engine, tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.marketplace.conftest import stripe_site, wait_for  # noqa: F401 - fixtures
from tests.support.browser import chromium_page, log_in, screenshot
from training.models import ModelVersion

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-Imprint-123"  # the make_user fixture's


@pytest.fixture
def served_listing(trainer, tiny_stored):
    """A published listing of a real, servable tiny model with two offers to compare."""
    version = factories.model_version(trainer)
    ModelVersion.objects.filter(pk=version.pk).update(storage_prefix=tiny_stored["prefix"], n_positions=128,
                                                       digest=tiny_stored["digest"], files=tiny_stored["manifest"])
    version.refresh_from_db()
    listing = factories.listing(trainer, mv=version, title="Harbour Logbook")
    personal = factories.offer(listing, name="Personal", fee_cents=900)
    factories.offer(listing, name="Research", fee_cents=1900, uses=["research"], attribution="Research use only")
    return listing, personal


def _generate(key: str, version_id, purpose: str):
    return Client().post("/api/v1/generations", data=json.dumps({
        "model": str(version_id), "prompt": "At dawn", "max_new_tokens": 8, "purpose": purpose}),
        content_type="application/json", headers={"Authorization": f"Bearer {key}"})


def _claims(jws: str) -> dict:
    payload = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_customer_buys_generates_and_verifies_then_an_admin_suspends(
        live_server, stripe_site, served_listing, customer, staff_user):
    listing, personal = served_listing
    with chromium_page(live_server.url) as page:
        log_in(page, customer.username, PASSWORD)
        page.goto("/models/")
        page.click("text=Harbour Logbook")
        page.wait_for_selector("text=Research use only")  # both offers side by side
        screenshot(page, "customer-model-page")
        offer_box = page.locator("form", has=page.locator(f"input[value='{personal.terms_id}']"))
        offer_box.locator("input[name=accept]").check()
        offer_box.locator("button:has-text('Buy licence')").click()
        page.wait_for_selector("#card-element input[placeholder=number]")
        for field, value in (("number", "4242424242424242"), ("exp_month", "12"), ("exp_year", "34"),
                             ("cvc", "123"), ("postal_code", "10115")):
            page.fill(f"#card-element input[placeholder={field}]", value)
        screenshot(page, "customer-payment")
        page.click("#pay-button")
        page.wait_for_selector("text=Your licence", timeout=30_000)  # after localstripe's webhook
        grant = Order.objects.get(customer=customer).grant
        assert grant.state == Grant.State.ACTIVE
        version_name = listing.model_version.name  # the trainer's own name for it: never shown to customers

        # One name per model: the listing's title and trainer/slug, wherever the customer meets it.
        page.goto("/licences/")
        mine = page.inner_text("main")
        assert "Harbour Logbook" in mine and f"{listing.trainer.username}/harbour-logbook" in mine
        assert version_name not in mine
        screenshot(page, "customer-my-licences")

        page.goto("/licences/keys/")
        assert "Harbour Logbook" in page.inner_text("#id_grants") and version_name not in page.inner_text("main")
        page.fill("input[name=name]", "laptop")
        page.click("button:has-text('Create key')")
        key = re.search(r"imp_[A-Za-z0-9_-]{20,}", page.content()).group(0)
        assert page.is_visible("#new-key button:has-text('Copy key')")
        screenshot(page, "customer-api-key")

        page.goto("/playground/")
        assert "Harbour Logbook" in page.inner_text("#p-model") and version_name not in page.inner_text("#p-model")
        page.fill("#p-prompt", "At dawn, the Marigold")
        page.fill("#p-max", "60")
        for _ in range(3):  # a sample may end at once (eos): generate again, as a person would
            page.click("button:has-text('Generate')")
            page.wait_for_selector("text=Verify this text")
            if page.input_value("form[action='/verify/'] input[name=text]").strip():
                break
        stamp = page.inner_text("main")
        assert "Generated with an Imprint model" in stamp  # the attribution line travels with the text
        # The prompt shows before its continuation, and the output has a copy button.
        assert page.inner_text(".completion-prompt") == "At dawn, the Marigold"
        assert page.is_visible("button:has-text('Copy output')") and "Harbour Logbook" in page.inner_text("dl.facts")
        screenshot(page, "customer-playground")
        page.click("button:has-text('Verify this text')")
        page.wait_for_selector("#verdict")
        verdict = page.inner_text("#verdict")
        assert "VALID" in verdict.upper() and "altered" not in verdict.lower()
        assert f"Harbour Logbook by {listing.trainer.username}" in verdict
        assert page.inner_text("#verdict-trainer") == listing.trainer.username
        screenshot(page, "customer-verify")

        # Links the API hands out name the site as it runs (the live server's port), not port 8000.
        api = page.request.post("/api/v1/generations", headers={"Authorization": f"Bearer {key}"}, data={
            "model": str(listing.model_version_id), "prompt": "At dawn", "max_new_tokens": 4, "purpose": "personal"})
        assert api.ok, api.text()
        body = api.json()
        assert body["licence"]["url"].startswith(f"{live_server.url}/")
        assert _claims(body["outputs"][0]["receipt"]["jws"])["iss"] == live_server.url
        assert body["model_name"].startswith(f"{listing.trainer.username}/harbour-logbook@")

    # The customer tries a purpose the licence does not permit: refused, and flagged for review.
    refused = _generate(key, listing.model_version_id, "commercial")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "purpose_not_permitted"

    with chromium_page(live_server.url) as page:
        log_in(page, staff_user.username, PASSWORD)
        page.goto("/compliance/review/")
        page.wait_for_selector("text=purpose")
        screenshot(page, "admin-review-queue")
        page.click("button:has-text('Open case')")
        page.wait_for_selector("#decide")
        # The case names the model by its title; an active grant offers no Reinstate.
        assert "Harbour Logbook" in page.inner_text("main")
        assert page.locator("#decide button[value=reinstate]").count() == 0
        page.fill("#reason", "Commercial use attempted under a personal licence.")
        page.click("#decide button[value=suspend]")
        page.wait_for_selector("text=suspend")
        assert page.locator("#decide button[value=reinstate]").count() == 1  # now it would change the state
        screenshot(page, "admin-case-decided")

        # The audit page: newest first, people by name, the chain's verification status.
        page.goto("/compliance/audit/")
        assert "intact" in page.inner_text("#chain-status")
        ids = [int(n) for n in page.locator("table.audit-log td.num").all_inner_texts()]
        assert len(ids) > 3 and ids == sorted(ids, reverse=True)
        log = page.inner_text("table.audit-log")
        assert staff_user.username in log and customer.username in log and "user:" not in log
        assert "grant suspended" in log or "case decided" in log
        screenshot(page, "admin-audit-log")

    assert Grant.objects.get(pk=grant.pk).state == Grant.State.SUSPENDED
    blocked = _generate(key, listing.model_version_id, "personal")
    assert blocked.status_code == 403
    assert "Commercial use attempted under a personal licence." in blocked.json()["error"]["message"]
