"""Purchases through the official Stripe SDK against a real localstripe process, with the webhook
that localstripe delivers (signed) to the live site activating the grant."""

from __future__ import annotations

import json
import logging
import time

from pathlib import Path

import pytest
import stripe
from django.urls import reverse

from audit.models import AuditEntry
from billing.models import BillingCustomer, PayoutEntry, StripeEvent
from licensing.models import Grant
from marketplace.checkout import order_charge, purchase_start
from marketplace.errors import PaymentDeclined
from marketplace.models import Order

from .conftest import WEBHOOK_SECRET, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _start(customer, offer):
    return purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                          ip_address="127.0.0.1")


def _pay_as_the_page_would(client, order, payment_method: str):
    """What the payment page does: Stripe.js's confirmCardSetup with the card, then the POST that
    makes the server charge the fee on the saved card."""
    client.v1.setup_intents.confirm(order.stripe_setup_intent_id, params={"payment_method": payment_method})
    return order_charge(order_id=order.pk, customer=order.customer)


def _signed(payload: dict, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}", secret)
    return body, f"t={timestamp},v1={signature}"


def _post_event(client, payload: dict, *, secret: str = WEBHOOK_SECRET, header: str | None = None):
    body, signature = _signed(payload, secret)
    headers = {"HTTP_STRIPE_SIGNATURE": header if header is not None else signature}
    return client.post(reverse("marketplace:stripe_webhook"), body, content_type="application/json", **headers)


def _state_counts():
    return (Grant.objects.count(), Order.objects.filter(state="paid").count(), AuditEntry.objects.count(),
            PayoutEntry.objects.count())


def test_a_full_purchase_activates_the_grant_when_the_webhook_arrives(stripe_site, customer, offer):
    checkout = _start(customer, offer)
    order = checkout.order
    assert checkout.intent_kind == "setup" and checkout.client_secret.startswith("seti_")
    assert not Grant.objects.exists()  # nothing before the payment

    charge = _pay_as_the_page_would(stripe_site["client"], order, "pm_card_visa")
    assert charge.status == "processing"
    intent = stripe_site["client"].v1.payment_intents.retrieve(charge.order.stripe_payment_intent_id)
    assert intent["status"] == "succeeded" and intent["amount"] == 2500 and intent["currency"] == "usd"
    assert intent["customer"] == BillingCustomer.objects.get(user=customer).stripe_customer_id
    assert intent["metadata"]["imprint_order"] == str(order.pk)
    assert Order.objects.get(pk=order.pk).state == "pending"  # only the webhook settles it

    order = wait_for(lambda: Order.objects.filter(pk=order.pk, state="paid").select_related("grant").first())
    grant = order.grant
    assert grant.state == Grant.State.ACTIVE and grant.customer == customer
    assert grant.terms_id == offer.terms_id and grant.model_version == offer.listing.model_version
    assert grant.price_paid_cents == 2500 and grant.quota_tokens == 100_000
    assert StripeEvent.objects.filter(type="payment_intent.succeeded", object_id=intent.id).count() == 1
    assert AuditEntry.objects.filter(event="grant.activated", subject_id=str(grant.pk)).count() == 1
    payout = PayoutEntry.objects.get(order=order)
    assert (payout.platform_fee_cents, payout.trainer_cents) == (500, 2000)


def test_a_declined_card_leaves_a_clear_message_and_no_grant(stripe_site, customer, offer):
    order = _start(customer, offer).order
    with pytest.raises(PaymentDeclined) as declined:
        _pay_as_the_page_would(stripe_site["client"], order, "pm_card_chargeCustomerFail")
    assert declined.value.message == "Your card was declined."
    order = Order.objects.get(pk=order.pk)
    assert order.state == "failed" and order.failure_message == "Your card was declined."
    # localstripe's payment_intent.payment_failed webhook arrives later and changes nothing more.
    wait_for(lambda: StripeEvent.objects.filter(type="payment_intent.payment_failed").exists())
    assert not Grant.objects.filter(customer=customer).exists()


def test_a_forged_or_unsigned_webhook_is_refused_and_changes_nothing(stripe_site, client, customer, offer):
    order = _start(customer, offer).order
    forged = {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
              "data": {"object": {"id": "pi_forged", "object": "payment_intent",
                                  "amount": 2500, "amount_received": 2500, "currency": "usd",
                                  "metadata": {"imprint_order": str(order.pk)}}}}
    before = _state_counts()
    assert _post_event(client, forged, secret="whsec_not_the_real_one").status_code == 400
    assert _post_event(client, forged, header="").status_code == 400
    assert _post_event(client, forged, header="t=1,v1=deadbeef").status_code == 400
    assert _state_counts() == before
    assert not StripeEvent.objects.filter(event_id="evt_forged").exists()
    assert Order.objects.get(pk=order.pk).state == "pending"


def test_a_replayed_event_grants_nothing_twice_and_late_failures_are_harmless(stripe_site, client, customer, offer):
    order = _pay_as_the_page_would(stripe_site["client"], _start(customer, offer).order, "pm_card_visa").order
    wait_for(lambda: Order.objects.filter(pk=order.pk, state="paid").exists())
    delivered = stripe_site["client"].v1.events.list(params={"type": "payment_intent.succeeded"})
    event = next(e for e in delivered.data if e["data"]["object"]["id"] == order.stripe_payment_intent_id)
    payload = json.loads(json.dumps(event.to_dict()))
    before = _state_counts()

    replay = _post_event(client, payload)
    assert replay.status_code == 200 and replay.json()["outcome"].startswith("duplicate")
    # The same success under a new event id (Stripe may send one per attempt), then a stale failure.
    again = _post_event(client, {**payload, "id": "evt_second_notice"})
    assert again.status_code == 200 and again.json()["outcome"].startswith("no change")
    stale = {**payload, "id": "evt_stale_failure", "type": "payment_intent.payment_failed"}
    assert _post_event(client, stale).json()["outcome"] == "no change: order not pending"
    assert _state_counts() == before
    assert Grant.objects.filter(customer=customer).count() == 1
    assert Order.objects.get(pk=order.pk).state == "paid"


def test_a_webhook_for_an_unknown_object_is_logged_acknowledged_and_changes_nothing(stripe_site, client, caplog):
    payload = {"id": "evt_unknown_pi", "object": "event", "type": "payment_intent.succeeded",
               "data": {"object": {"id": "pi_nobody_knows", "object": "payment_intent", "amount": 100,
                                   "currency": "usd", "metadata": {}}}}
    before = _state_counts()
    with caplog.at_level(logging.WARNING, logger="billing.webhooks"):
        response = _post_event(client, payload)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored: unknown payment intent"
    assert "pi_nobody_knows" in caplog.text
    assert _state_counts() == before


def test_a_refund_revokes_and_a_dispute_suspends_the_grant(stripe_site, client, customer, offer):
    order = _pay_as_the_page_would(stripe_site["client"], _start(customer, offer).order, "pm_card_visa").order
    order = wait_for(lambda: Order.objects.filter(pk=order.pk, state="paid").first())
    charge = {"id": "ch_x", "object": "charge", "payment_intent": order.stripe_payment_intent_id, "refunded": False}
    _post_event(client, {"id": "evt_dispute", "type": "charge.dispute.created", "data": {"object": charge}})
    assert Grant.objects.get(pk=order.grant_id).state == Grant.State.SUSPENDED
    _post_event(client, {"id": "evt_refund", "type": "charge.refunded", "data": {"object": {**charge, "refunded": True}}})
    assert Grant.objects.get(pk=order.grant_id).state == Grant.State.REVOKED
    assert Order.objects.get(pk=order.pk).state == "refunded"


def test_the_payment_page_loads_stripe_js_from_localstripe_and_confirms_in_the_page(stripe_site, client, customer, offer):
    client.force_login(customer)
    response = client.post(reverse("marketplace:offer_buy", args=[offer.pk]),
                           {"accept": "1", "accepted_terms": offer.terms_id}, follow=True)
    page = response.content.decode()
    assert f'src="{stripe_site["localstripe"]}/js.stripe.com/v3/"' in page
    assert "/static/marketplace/card_payment.js" in page and 'data-publishable-key="pk_test_' in page
    from django.contrib.staticfiles import finders

    body = Path(finders.find("marketplace/card_payment.js")).read_text()
    assert "stripe.confirmCardSetup(" in body and "stripe.confirmCardPayment(" in body
    order = Order.objects.get(customer=customer)
    assert f'data-client-secret="{order.stripe_setup_intent_id}_secret_' in page
    assert "Local test mode" not in page


def test_a_metered_offer_saves_the_card_and_activates_on_setup_intent_succeeded(stripe_site, client, customer, trainer):
    from tests import factories

    offer = factories.offer(factories.listing(trainer, title="Metered"), fee_cents=0, metered=20)
    checkout = _start(customer, offer)
    assert checkout.intent_kind == "setup" and checkout.client_secret.startswith("seti_")
    order = checkout.order
    # What Stripe.js's confirmCardSetup does in the page.
    confirmed = stripe_site["client"].v1.setup_intents.confirm(order.stripe_setup_intent_id,
                                                               params={"payment_method": "pm_card_visa"})
    assert confirmed["status"] == "succeeded"
    # localstripe sends no setup_intent events, so the test delivers Stripe's signed event itself.
    event = {"id": "evt_setup_ok", "object": "event", "type": "setup_intent.succeeded",
             "data": {"object": json.loads(json.dumps(confirmed.to_dict()))}}
    assert _post_event(client, event).json()["outcome"] == "card saved, order active"
    order = Order.objects.get(pk=order.pk)
    assert order.state == "paid" and order.grant.state == Grant.State.ACTIVE and order.amount_cents == 0
    assert BillingCustomer.objects.get(user=customer).default_payment_method == confirmed["payment_method"]


def test_the_purchase_api_returns_the_client_secret_for_stripe_js(stripe_site, client, customer, offer):
    client.force_login(customer)
    response = client.post(reverse("marketplace:api_offer_purchase", args=[offer.pk]),
                           {"accepted_terms_sha256": offer.terms_id}, content_type="application/json")
    body = response.json()
    assert response.status_code == 201
    assert body["intent_kind"] == "setup"
    assert body["client_secret"].startswith(Order.objects.get().stripe_setup_intent_id + "_secret_")
    assert body["order"]["state"] == "pending" and body["order"]["grant"] is None


def test_a_webhook_that_outruns_the_checkout_request_still_finds_its_order(stripe_site, client, customer, offer):
    from marketplace.services import order_create

    # The order exists but the request that saves the intent id has not finished yet.
    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address=None, provider="stripe")
    event = {"id": "evt_early", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": "pi_early", "object": "payment_intent", "amount": 2500,
                                 "amount_received": 2500, "currency": "usd",
                                 "metadata": {"imprint_order": str(order.pk)}}}}
    assert _post_event(client, event).json()["outcome"] == "order paid"
    order = Order.objects.get(pk=order.pk)
    assert order.state == "paid" and order.stripe_payment_intent_id == "pi_early"


def test_a_payment_for_the_wrong_amount_activates_nothing(stripe_site, client, customer, offer):
    order = _start(customer, offer).order
    Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id="pi_short")
    order.stripe_payment_intent_id = "pi_short"
    event = {"id": "evt_short", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": order.stripe_payment_intent_id, "object": "payment_intent",
                                 "amount": 100, "amount_received": 100, "currency": "usd", "metadata": {}}}}
    assert _post_event(client, event).status_code == 200
    assert Order.objects.get(pk=order.pk).state == "pending" and not Grant.objects.exists()


def test_without_a_webhook_secret_every_event_is_refused(stripe_site, client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = {"id": "evt_any", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}}
    assert _post_event(client, payload, secret="").status_code == 400
    assert not StripeEvent.objects.exists()


def test_connect_account_updates_turn_destination_charges_on(stripe_site, client, trainer):
    from billing.models import PayoutAccount

    PayoutAccount.objects.create(user=trainer, stripe_account_id="acct_onboarding")
    event = {"id": "evt_acct", "object": "event", "type": "account.updated",
             "data": {"object": {"id": "acct_onboarding", "object": "account",
                                 "capabilities": {"transfers": "active", "card_payments": "active"}}}}
    assert _post_event(client, event).json()["outcome"] == "transfers active"
    assert PayoutAccount.objects.get(user=trainer).transfers_active


def test_a_declined_order_cannot_be_charged_again(stripe_site, customer, offer):
    order = _start(customer, offer).order
    with pytest.raises(PaymentDeclined):
        _pay_as_the_page_would(stripe_site["client"], order, "pm_card_chargeCustomerFail")
    with pytest.raises(PaymentDeclined, match="Your card was declined."):
        order_charge(order_id=order.pk, customer=customer)
    wait_for(lambda: StripeEvent.objects.filter(type="payment_intent.payment_failed").exists())
    assert not Grant.objects.exists()
