"""The one place that builds the official Stripe client. Every Stripe call happens outside a
database transaction (a slow or failing network call must not hold row locks)."""

from __future__ import annotations

import stripe
from django.conf import settings


def stripe_client() -> stripe.StripeClient:
    """The SDK client for the configured account; STRIPE_API_BASE points it at localstripe (tests,
    local development) or at a recording server (contract tests)."""
    kwargs = {}
    if settings.STRIPE_API_BASE:
        base = settings.STRIPE_API_BASE.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "files": base, "connect": base, "meter_events": base}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, max_network_retries=1, **kwargs)


def payments_in_test_mode() -> bool:
    """No Stripe key: the embedded default's local test-mode provider (labelled on every page)."""
    return settings.PAYMENTS_TEST_MODE or not settings.STRIPE_SECRET_KEY
