"""In a real browser, the receipt verdict and the text-only verdict name the model and its trainer,
who owns the text and what it may be used for, and show the receipt's date in the viewer's locale
(screenshots go to artifacts/screenshots/)."""

import pytest
from django.test import Client

from tests.support.browser import chromium_page, screenshot

from .conftest import generate_text
from .test_verify_words import named

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_visitor_reads_both_verdicts_in_words(live_server, make_licence):
    licence = named(make_licence, uses=["personal", "research"], ownership="customer",
                    attribution="Poems by ravenpoet's model", samples={"publish": True, "resell": False})
    output = generate_text(Client(), licence)
    with chromium_page(live_server.url) as page:
        page.goto("/verify/")
        page.fill("#v-text", output["text"])
        page.fill("#v-receipt", output["receipt"]["jws"])
        page.click("form.panel button[type=submit]")
        receipt_verdict = page.inner_text("#verdict")
        issued_title = page.get_attribute("#receipt-issued time", "title")
        screenshot(page, "verify-receipt-verdict")

        page.goto("/verify/")
        page.fill("#v-text", output["text"])
        page.click("form.panel button[type=submit]")
        text_verdict = page.inner_text("#verdict")
        screenshot(page, "verify-text-only-verdict")
    for verdict in (receipt_verdict, text_verdict):
        assert "Poe Nocturnes by ravenpoet" in verdict and "The customer who generated it owns this text." in verdict
        assert "personal, non-commercial use and research" in verdict
        assert "“Poems by ravenpoet's model”" in verdict
    assert "RECEIPT VALID" in receipt_verdict and issued_title.endswith(" UTC")
    assert "The receipt says the model generated 120 tokens." in receipt_verdict
    assert "WATERMARK DETECTED" in text_verdict and str(licence.grant.pk) in text_verdict
