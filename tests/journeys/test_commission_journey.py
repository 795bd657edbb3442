"""A commission from both sides in a real browser, with a real worker training on the customer's data:
the customer posts a commission with a dataset → two trainers propose → the customer accepts one
(charged in local test mode, the money held) → the chosen trainer trains through Imprint's jobs and
delivers → the customer accepts → the held money is released with the payout entry, and the customer
generates with the new model under their exclusive grant (receipt valid)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from billing.models import HeldPayment, PayoutEntry
from inference.receipts import receipt_verify
from licensing.models import Grant
from licensing.services import apikey_create
from marketplace.models import Commission
from tests.marketplace.conftest import wait_for
from tests.support.browser import chromium_page, log_in, screenshot
from tests.support.corpus import corpus_text

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]
SHOTS = Path("/tmp/shots/comm")
PASSWORD = "pw-Imprint-123"


def _shot(page, name: str) -> None:
    screenshot(page, f"commission-{name}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _as(page, user) -> None:
    page.context.clear_cookies()
    log_in(page, user.username, PASSWORD)


def _propose(page, trainer, commission_url: str, price: str) -> None:
    _as(page, trainer)
    page.goto("/commissions/")
    page.click("#open-commissions a")
    assert page.url.endswith(commission_url)
    page.fill("#id_price", price)
    page.select_option("#id_base_model", "tiny")
    page.fill("#id_steps", "40")
    page.fill("#id_context_length", "32")
    page.fill("#id_message", f"{trainer.username}: 40 steps on the tiny base, samples every 20.")
    page.click("#proposal-form button")
    page.wait_for_selector("text=Your proposal is sent")


def test_a_customer_commissions_a_model_and_generates_with_it(live_server, celery_workers, make_user, settings,
                                                              tmp_path):
    settings.STRIPE_SECRET_KEY, settings.PAYMENTS_TEST_MODE = "", True
    celery_workers.start(queues="training,default", pool="solo", concurrency=1,
                         env={"PAYMENTS_TEST_MODE": "1", "STRIPE_SECRET_KEY": ""})
    carl = make_user("carl")
    tess, tom = make_user("tess", trainer=True, customer=False), make_user("tom", trainer=True, customer=False)
    data = tmp_path / "bakery.txt"
    data.write_text(corpus_text(documents=30, words=50))
    with chromium_page(live_server.url) as page:
        _as(page, carl)
        page.goto("/commissions/new/")
        page.fill("#id_title", "Bakery product descriptions")
        page.fill("#id_description", "Warm, short descriptions of our breads, in our voice.")
        page.fill("#id_examples", "A crusty sourdough with a tender crumb.\n\nRye, dark and honest.")
        page.set_input_files("#id_file", str(data))
        page.check("#id_licence_attested")
        page.fill("#id_rights_holders", "Carl's Bakery")
        page.check("#id_show_dataset_stats")
        page.fill("#id_budget", "500.00")
        page.fill("#id_deadline", "2099-12-31T12:00")
        _shot(page, "1-new-commission")
        page.click("main form button")
        page.wait_for_selector("text=Your commission is posted")
        commission = Commission.objects.get()
        url = f"/commissions/{commission.pk}/"
        wait_for(lambda: Commission.objects.get().dataset is not None, timeout=120)

        _propose(page, tess, url, "400.00")
        page.reload()
        assert "Carl's Bakery" in page.inner_text("#dataset-stats")  # statistics shown, never the file
        _shot(page, "2-trainer-proposes")
        _propose(page, tom, url, "450.00")

        _as(page, carl)
        page.goto(url)
        assert page.locator("#proposals tr.proposal").count() == 2
        _shot(page, "3-customer-compares-proposals")
        page.click("tr.proposal[data-trainer=tess] button")
        page.wait_for_selector("#local-test-mode")
        page.click("#local-test-mode button")
        page.wait_for_selector("text=Payment held")
        assert "held by Imprint" in page.inner_text("#payment-state")
        _shot(page, "4-payment-held")

        _as(page, tess)
        page.goto(url)
        for field, value in (("#id_steps", "40"), ("#id_context_length", "32"), ("#id_batch_size", "4"),
                             ("#id_checkpoint_every", "20"), ("#id_sample_every", "20"), ("#id_sample_prompt", "A")):
            page.fill(field, value)
        page.click("#commission-job-form button")
        page.wait_for_url("**/studio/jobs/*/")
        page.wait_for_function("document.getElementById('state')?.textContent == 'succeeded'", timeout=300_000)
        _shot(page, "5-trainer-job-succeeded")
        page.goto(url)
        wait_for(lambda: page.reload() or page.locator("#deliver-form").count(), timeout=60)
        page.click("#deliver-form button")
        page.wait_for_selector("text=Delivered")
        _shot(page, "6-delivered")

        _as(page, carl)
        page.goto(url)
        _shot(page, "7-customer-reviews")
        page.click("#accept-delivery")
        page.wait_for_selector("#your-licence")
        held = wait_for(lambda: HeldPayment.objects.filter(state=HeldPayment.State.RELEASED).first(), timeout=60)
        page.reload()
        assert "paid to the trainer" in page.inner_text("#payment-state")
        assert "Payment released to tess" in page.inner_text("#timeline")
        _shot(page, "8-completed-with-timeline")

        _as(page, tom)  # the trainer not chosen sees nothing of the data any more
        page.goto(url)
        assert "Carl's Bakery" not in page.content()

    entry = PayoutEntry.objects.get(held_payment=held)
    assert (entry.trainer, entry.gross_cents, entry.platform_fee_cents, entry.trainer_cents) == (tess, 40_000, 8_000,
                                                                                                 32_000)
    grant = Grant.objects.get(pk=Commission.objects.get().grant_id)
    assert grant.state == Grant.State.ACTIVE and grant.customer == carl
    assert "Carl's Bakery" in grant.terms.document["rights_chain"]["dataset"]["rights_holders"]
    _, key = apikey_create(owner=carl, name="bakery", grants=[grant])
    response = Client().post("/api/v1/generations", data=json.dumps({
        "model": str(grant.model_version_id), "prompt": "A crusty", "max_new_tokens": 8, "purpose": "commercial"}),
        content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.content
    output = response.json()["outputs"][0]
    check = receipt_verify(jws=output["receipt"]["jws"], text=output["text"])
    assert check.valid, check
