"""Fixtures for the marketplace tests: a published listing with an offer, and a site wired to a
real localstripe process (webhooks delivered to pytest-django's live server)."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest
from django.urls import reverse

from tests import factories
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 (metering tests)

WEBHOOK_SECRET = "whsec_imprint_test_secret"


@pytest.fixture
def listing(trainer):
    return factories.listing(trainer, title="Sea shanties GPT-2", dataset_licence="cc-by-4.0")


@pytest.fixture
def offer(listing):
    return factories.offer(listing, fee_cents=2500, currency="usd")


@pytest.fixture
def payments_test_mode(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_API_BASE = ""
    settings.PAYMENTS_TEST_MODE = True
    return settings


@pytest.fixture
def stripe_site(localstripe, stripe_client, live_server, settings):
    """The site (live server) configured for Stripe at localstripe, with localstripe's webhook
    endpoint registered to deliver signed events to the site's webhook URL."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_imprint"
    url = live_server.url + reverse("marketplace:stripe_webhook")
    body = urllib.parse.urlencode({"url": url, "secret": WEBHOOK_SECRET}).encode()
    # One endpoint id per live server: every test of this session posts to the same site.
    hook_id = "imprint-" + urllib.parse.quote(live_server.url.rsplit(":", 1)[-1])
    urllib.request.urlopen(urllib.request.Request(f"{localstripe}/_config/webhooks/{hook_id}", data=body),
                           timeout=5).read()
    return {"client": stripe_client, "live_server": live_server, "localstripe": localstripe}


def wait_for(predicate, *, timeout: float = 15.0, interval: float = 0.1):
    """Poll until `predicate()` is truthy (webhooks arrive asynchronously, ~1 s after the event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
