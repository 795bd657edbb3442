"""Billing's boundary with Stripe: one module imports the SDK, Stripe's errors come out as
billing's own, and every fee Stripe is told derives from the one fee rule."""

import ast
from pathlib import Path

import pytest
import stripe

from billing import gateway
from billing.errors import CardDeclined, GatewayError, GatewayTransient
from billing.fees import application_fee_percent, payout_split, platform_fee_cents

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "accounts", "audit", "training", "licensing", "inference", "billing", "marketplace", "compliance",
        "config")


def _imports_stripe(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name == "stripe" or name.startswith("stripe.") for name in names):
            return True
    return False


def test_it_is_the_only_module_of_the_project_that_imports_stripe():
    importers = {str(p.relative_to(ROOT)) for app in APPS for p in (ROOT / app).rglob("*.py") if _imports_stripe(p)}
    assert importers == {"billing/gateway.py"}


@pytest.mark.parametrize(("raised", "expected"), [
    (stripe.CardError("Your card was declined.", param="card", code="card_declined"), CardDeclined),
    (stripe.APIConnectionError("network down"), GatewayTransient),
    (stripe.RateLimitError("slow down", http_status=429), GatewayTransient),
    (stripe.APIError("server error", http_status=500), GatewayTransient),
    (stripe.InvalidRequestError("No such customer", param="customer", http_status=404), GatewayError),
])
def test_it_translates_stripes_errors_into_billings(raised, expected):
    with pytest.raises(expected) as caught, gateway._translated():
        raise raised
    assert type(caught.value) is expected and not isinstance(caught.value, stripe.StripeError)
    assert caught.value.http_status == raised.http_status
    assert caught.value.__cause__ is raised


@pytest.mark.parametrize(("bps", "percent"), [(2000, "20"), (1250, "12.5"), (0, "0"), (333, "3.33")])
def test_every_fee_stripe_is_told_derives_from_the_one_rule(settings, bps, percent):
    settings.PLATFORM_FEE_BPS = bps
    assert application_fee_percent() == percent
    for gross in (0, 1, 999, 2999, 123_457):
        assert platform_fee_cents(gross) == payout_split(gross)[0] == gross * bps // 10_000
