"""The verify page, in a real browser, says in plain words who owns a verified text, what it may be
used for and whose data it came from (a screenshot goes to artifacts/screenshots/)."""

import pytest
from django.test import Client

from tests.support.browser import chromium_page, screenshot

from .conftest import licence_for, served_version
from .test_receipt_rights import generate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_visitor_reads_who_owns_a_verified_text(live_server, trainer, customer, tiny_stored):
    version = served_version(trainer, tiny_stored, licence="cc-by-sa-4.0", rights_holders=["Marta Lindqvist"])
    _grant, key = licence_for(customer, version, uses=["research", "commercial"], ownership="customer",
                              attribution="Trained on Marta Lindqvist's sea logs (CC BY-SA 4.0)")
    output = generate(Client(), key, version, max_new_tokens=40, purpose="commercial")["outputs"][0]
    with chromium_page(live_server.url) as page:
        page.goto("/verify/")
        page.fill("#v-text", output["text"])
        page.fill("#v-receipt", output["receipt"]["jws"])
        page.click("form.panel button[type=submit]")
        page.wait_for_selector("#rights-summary")
        summary = page.inner_text("#rights-summary")
        screenshot(page, "verify-rights-summary")
    assert "The customer who generated it owns this text." in summary
    assert "It may be used for research and commercial use" in summary
    assert "Marta Lindqvist" in summary and "licensed CC BY-SA 4.0" in summary
    assert "must share them under CC BY-SA 4.0" in summary
