"""The payment page in a real (headless) Chromium: the production page code with localstripe's
Stripe.js stand-in: card entered in the Card Element, confirmCardSetup, the server charge, and the
webhook that localstripe delivers to the live site activating the grant."""

from __future__ import annotations

import shutil

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client

from billing.models import StripeEvent
from licensing.models import Grant
from marketplace.models import Order
from tests.conftest import require

from .conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def browser_page(stripe_site, customer, offer, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are
    # ordinary blocking calls (the site runs in the live server's own thread).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    playwright_api = pytest.importorskip("playwright.sync_api") if shutil.which("chromium") else None
    require(playwright_api is not None, "Chromium (chromium on PATH)")
    client = Client()
    client.force_login(customer)
    live = stripe_site["live_server"].url
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context(base_url=live)
        context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME,
                              "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                              "url": live}])
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        page.goto("about:blank")  # stop the order page's polling before the site goes away
        context.close()
        browser.close()
        # Playwright's sync API runs the test in a greenlet with its own context, so the ORM opened
        # a connection of its own there: close it, or PostgreSQL cannot drop the test database.
        connections.close_all()


def _buy_with_card(page, offer, card_number: str):
    page.goto(f"/models/{offer.listing_id}/")
    page.check("input[name=accept]")
    page.click("text=Buy licence")
    page.wait_for_selector("#card-element input[placeholder=number]")
    for field, value in (("number", card_number), ("exp_month", "12"), ("exp_year", "34"), ("cvc", "123"),
                         ("postal_code", "10115")):
        page.fill(f"#card-element input[placeholder={field}]", value)
    page.click("#pay-button")


def test_a_customer_pays_in_the_page_and_the_webhook_activates_the_licence(browser_page, offer, customer):
    _buy_with_card(browser_page, offer, "4242424242424242")
    browser_page.wait_for_selector("text=Your licence", timeout=20_000)  # the order page, after the webhook
    order = Order.objects.get(customer=customer)
    assert order.state == "paid" and order.grant.state == Grant.State.ACTIVE


def test_a_declined_card_shows_the_message_in_the_page_and_grants_nothing(browser_page, offer, customer):
    _buy_with_card(browser_page, offer, "4000000000000341")  # attaches, then the charge is declined
    browser_page.wait_for_function("document.getElementById('card-errors').textContent.length > 0")
    assert browser_page.inner_text("#card-errors") == "Your card was declined."
    assert wait_for(lambda: Order.objects.filter(customer=customer, state="failed").exists())
    # localstripe's payment_failed webhook follows a second later and changes nothing more.
    wait_for(lambda: StripeEvent.objects.filter(type="payment_intent.payment_failed").exists())
    assert not Grant.objects.filter(customer=customer).exists()
