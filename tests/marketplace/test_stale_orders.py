"""An order is payable only while what it was placed for still holds: the offer on sale on a
published listing, the payment mode it was placed in, and its time. Every path that pays (local test
mode, the Stripe charge, the webhook that activates) checks it; a payment Stripe took for an order
that is no longer payable activates nothing and is recorded for a refund. An order keeps its price."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import stripe
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from licensing.models import Grant
from marketplace.checkout import order_charge
from marketplace.errors import OrderExpired, OrderNotPayable, WrongPaymentProvider
from marketplace.models import Order
from marketplace.services import (
    listing_unpublish,
    offer_revise,
    offer_withdraw,
    order_create,
    order_pay_local_test,
    orders_expire_due,
)
from billing.webhooks import stripe_event_process
from marketplace.tasks import orders_expire

from .conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db
CARD_OK = "4242 4242 4242 4242"


def _order(customer, offer, provider="local_test") -> Order:
    return order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                        ip_address="127.0.0.1", provider=provider)


def _pay_page(client, order):
    return client.post(reverse("marketplace:order_pay_test_mode", args=[order.pk]), {"card_number": CARD_OK},
                       follow=True).content.decode()


@pytest.fixture
def stripe_mode(settings):
    settings.STRIPE_SECRET_KEY = "sk_live_imprint_configured_later"
    settings.PAYMENTS_TEST_MODE = False
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: no test may reach Stripe
    return settings


def _signed_post(client, payload: dict):
    body = json.dumps(payload)
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body}", WEBHOOK_SECRET)
    return client.post(reverse("marketplace:stripe_webhook"), body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}")


def _succeeded(order, *, amount=2500, event_id="evt_late"):
    return {"id": event_id, "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {"id": f"pi_{event_id}", "object": "payment_intent", "amount": amount,
                                "amount_received": amount, "currency": "usd",
                                "metadata": {"imprint_order": str(order.pk)}}}}


def test_paying_after_the_offer_is_withdrawn_is_refused_and_grants_nothing(client, customer, offer, trainer,
                                                                          payments_test_mode):
    order = _order(customer, offer)
    offer_withdraw(trainer=trainer, offer_id=offer.pk)
    client.force_login(customer)
    assert "no longer on sale" in _pay_page(client, order)
    assert Order.objects.get(pk=order.pk).state == "pending" and not Grant.objects.filter(customer=customer).exists()


def test_paying_after_the_listing_is_unpublished_is_refused(customer, offer, trainer, payments_test_mode):
    order = _order(customer, offer)
    listing_unpublish(trainer=trainer, listing_id=offer.listing_id)
    with pytest.raises(OrderNotPayable):
        order_pay_local_test(order_id=order.pk, customer=customer, card_number=CARD_OK)
    assert not Grant.objects.filter(customer=customer).exists()


def test_a_test_mode_order_cannot_be_paid_once_real_stripe_keys_are_configured(customer, offer, payments_test_mode):
    order = _order(customer, offer)
    payments_test_mode.STRIPE_SECRET_KEY = "sk_live_imprint_configured_later"
    payments_test_mode.PAYMENTS_TEST_MODE = False
    with pytest.raises(WrongPaymentProvider):
        order_pay_local_test(order_id=order.pk, customer=customer, card_number=CARD_OK)
    assert Order.objects.get(pk=order.pk).state == "pending" and not Grant.objects.filter(customer=customer).exists()


def test_a_pending_order_expires_and_paying_it_is_refused_with_a_clear_error(client, customer, offer, settings,
                                                                            payments_test_mode):
    settings.ORDER_EXPIRY_MINUTES = 30
    stale, fresh = _order(customer, offer), _order(customer, offer)
    Order.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=31))
    client.force_login(customer)
    assert "expired before it was paid" in _pay_page(client, stale)  # before any sweep ran
    assert not Grant.objects.filter(customer=customer).exists()
    assert orders_expire() == 1 and orders_expire_due() == 0
    assert Order.objects.get(pk=stale.pk).state == "expired" and Order.objects.get(pk=fresh.pk).state == "pending"
    assert AuditEntry.objects.filter(event="order.expired", subject_id=str(stale.pk)).exists()
    with pytest.raises(OrderExpired):
        order_pay_local_test(order_id=stale.pk, customer=customer, card_number=CARD_OK)


def test_the_stripe_charge_is_refused_before_any_call_when_the_offer_was_withdrawn(customer, offer, trainer,
                                                                                 stripe_mode):
    order = _order(customer, offer, provider="stripe")
    Order.objects.filter(pk=order.pk).update(stripe_setup_intent_id="seti_confirmed")
    offer_withdraw(trainer=trainer, offer_id=offer.pk)
    with pytest.raises(OrderNotPayable):
        order_charge(order_id=order.pk, customer=customer)


def test_a_stripe_payment_for_an_order_no_longer_payable_activates_nothing_and_is_recorded_for_refund(
        client, customer, offer, trainer, stripe_mode):
    order = _order(customer, offer, provider="stripe")
    offer_withdraw(trainer=trainer, offer_id=offer.pk)
    response = _signed_post(client, _succeeded(order))
    assert response.status_code == 200 and response.json()["outcome"].startswith("refused: order_not_payable")
    order.refresh_from_db()
    assert order.state == "refund_due" and order.grant is None and "refunded" in order.failure_message
    assert not Grant.objects.filter(customer=customer).exists()
    assert AuditEntry.objects.get(event="order.refund_due").data["reference"] == "pi_evt_late"
    # Stripe's second notice of the same payment changes nothing more.
    assert _signed_post(client, _succeeded(order, event_id="evt_again")).status_code == 200
    assert AuditEntry.objects.filter(event="order.refund_due").count() == 1


def test_a_webhook_for_an_expired_order_activates_nothing(customer, offer, settings, stripe_mode):
    settings.ORDER_EXPIRY_MINUTES = 30
    order = _order(customer, offer, provider="stripe")
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert stripe_event_process(event=_succeeded(order)).startswith("refused: order_expired")
    assert Order.objects.get(pk=order.pk).state == "refund_due" and not Grant.objects.exists()


def test_a_stripe_order_placed_before_the_keys_were_removed_is_not_activated(customer, offer, stripe_mode):
    order = _order(customer, offer, provider="stripe")
    stripe_mode.STRIPE_SECRET_KEY = ""
    stripe_mode.PAYMENTS_TEST_MODE = True
    assert stripe_event_process(event=_succeeded(order)).startswith("refused: wrong_payment_provider")
    assert not Grant.objects.exists()


def test_an_order_keeps_its_price_when_the_offer_is_revised_and_says_so(client, customer, offer, trainer,
                                                                       payments_test_mode):
    order = _order(customer, offer)
    offer_revise(trainer=trainer, offer_id=offer.pk, terms=offer.terms.document, fee_cents=9900, currency="usd")
    client.force_login(customer)
    page = client.get(reverse("marketplace:order_pay", args=[order.pk])).content.decode()
    assert "USD 25.00" in page and "USD 99.00" not in page and "the order keeps it" in page
    _pay_page(client, order)
    order.refresh_from_db()
    assert order.state == "paid" and order.amount_cents == 2500 and order.grant.price_paid_cents == 2500
    detail = client.get(reverse("marketplace:order_detail", args=[order.pk])).content.decode()
    assert "USD 25.00, fixed when the order was placed" in detail


def test_a_webhook_charging_a_different_amount_than_the_order_activates_nothing(customer, offer, stripe_mode):
    order = _order(customer, offer, provider="stripe")
    assert stripe_event_process(event=_succeeded(order, amount=9900)).startswith("no change")
    assert Order.objects.get(pk=order.pk).state == "pending" and not Grant.objects.exists()
