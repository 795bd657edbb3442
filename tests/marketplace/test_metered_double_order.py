"""One live metered licence per customer and offer, however the orders are placed and paid: two
orders placed before either is paid cannot both become grants. The rule is checked when an order
is charged and, under the offer's row lock, when it is paid; a payment Stripe took anyway is
refunded through the gateway; and the subscription's unique constraint backs it in the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connections, transaction
from django.test import Client
from django.urls import reverse

from billing.models import PayoutEntry, Subscription
from licensing.models import Grant
from marketplace import services, tasks
from marketplace.checkout import order_charge, purchase_start
from marketplace.errors import MeteredOfferHeld
from marketplace.models import Order
from marketplace.services import order_create, order_pay_local_test
from tests import factories

from .test_metered_lifecycle import stripe_recording  # noqa: F401 (fixture)
from .test_purchase_stripe import _post_event

HELD = "You already hold a metered licence under this offer"
LIVE = (Grant.State.PENDING, Grant.State.ACTIVE, Grant.State.SUSPENDED)


def _metered_offer(fee_cents: int = 0):
    return factories.offer(factories.listing(title="Metered shanties"), fee_cents=fee_cents, metered=2999,
                           name="Metered")


def _orders(customer, offer, n: int = 2) -> list[Order]:
    """`n` orders placed before any is paid: each passes the check made when an order is placed."""
    return [order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address="127.0.0.1", provider="local_test") for _ in range(n)]


def _live_metered_grants(customer) -> int:
    return Grant.objects.filter(customer=customer, metered=True, state__in=LIVE).count()


@pytest.mark.django_db(transaction=True)
def test_two_unpaid_orders_paid_at_once_give_one_metered_grant(payments_test_mode):
    customer, offer = factories.user(), _metered_offer()
    orders = _orders(customer, offer)

    def pay(order):
        try:
            client = Client()
            client.force_login(customer)
            return client.post(reverse("marketplace:order_pay_test_mode", args=[order.pk]),
                               {"card_number": "4242 4242 4242 4242"}).status_code
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(pay, orders)) == [302, 302]
    assert _live_metered_grants(customer) == 1
    assert Subscription.objects.filter(order__customer=customer).count() == 1
    states = sorted(Order.objects.filter(customer=customer).values_list("state", "failure_message"))
    assert [state for state, _ in states] == ["failed", "paid"]
    assert HELD in states[0][1]


@pytest.mark.django_db
def test_paying_the_second_order_later_is_refused_with_the_reason(payments_test_mode, client):
    customer, offer = factories.user(), _metered_offer()
    first, second = _orders(customer, offer)
    order_pay_local_test(order_id=first.pk, customer=customer, card_number="4242424242424242")
    with pytest.raises(MeteredOfferHeld):
        order_pay_local_test(order_id=second.pk, customer=customer, card_number="4242424242424242")
    client.force_login(customer)
    page = client.post(reverse("marketplace:order_pay_test_mode", args=[second.pk]),
                       {"card_number": "4242 4242 4242 4242"}, follow=True).content.decode()
    assert HELD in page
    second.refresh_from_db()
    assert second.state == "failed" and second.grant is None and HELD in second.failure_message
    assert _live_metered_grants(customer) == 1


def _succeeded(order: Order, event_id: str) -> dict:
    return {"id": event_id, "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {"id": order.stripe_payment_intent_id, "object": "payment_intent",
                                "amount": order.amount_cents, "amount_received": order.amount_cents,
                                "currency": order.currency, "metadata": {"imprint_order": str(order.pk)}}}}


def _charged_at_stripe(customer, offer) -> list[Order]:
    """Two checkouts, both charged before Stripe's first webhook arrives."""
    orders = [purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                             ip_address=None).order for _ in range(2)]
    for order in orders:
        assert order_charge(order_id=order.pk, customer=customer).status == "processing"
    return list(Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("created_at"))


@pytest.mark.django_db
def test_a_second_payment_stripe_took_is_refunded_and_grants_nothing(stripe_recording, client, monkeypatch,
                                                                       django_capture_on_commit_callbacks):
    # The refund task, run as the default worker would run it once the webhook's transaction commits.
    monkeypatch.setattr(services, "_send_refund", lambda order_id: tasks.order_refund(str(order_id)), raising=False)
    customer, offer = factories.user(), _metered_offer(fee_cents=500)
    first, second = _charged_at_stripe(customer, offer)
    assert _post_event(client, _succeeded(first, "evt_first")).json()["outcome"] == "order paid"
    with django_capture_on_commit_callbacks(execute=True):
        outcome = _post_event(client, _succeeded(second, "evt_second")).json()["outcome"]
    assert outcome == "refused: metered_offer_held; recorded as refund_due"

    refunds = stripe_recording.recorded("/v1/refunds")
    assert [r["params"] for r in refunds] == [{"payment_intent": second.stripe_payment_intent_id}]
    assert refunds[0]["headers"]["idempotency-key"] == f"imprint-refund-order-{second.pk}"
    second.refresh_from_db()
    assert (second.state, second.grant) == ("refunded", None)
    assert HELD in second.failure_message and "The payment was refunded." in second.failure_message
    assert _live_metered_grants(customer) == 1
    assert Subscription.objects.filter(order__customer=customer).count() == 1
    assert PayoutEntry.objects.filter(order=second).count() == 0
    # Stripe's notice of the refund, and a replay of the payment, change nothing more; a retried
    # task does not refund twice.
    assert _post_event(client, _succeeded(second, "evt_second_again")).status_code == 200
    assert tasks.order_refund(str(second.pk)) == "refunded"
    assert len(stripe_recording.recorded("/v1/refunds")) == 1


@pytest.mark.django_db(transaction=True)
def test_racing_webhooks_for_two_paid_orders_activate_one_grant(stripe_recording, monkeypatch):
    refunds = []
    monkeypatch.setattr(services, "_send_refund", refunds.append, raising=False)
    customer, offer = factories.user(), _metered_offer(fee_cents=500)
    orders = _charged_at_stripe(customer, offer)

    def deliver(order):
        try:
            return _post_event(Client(), _succeeded(order, f"evt_{order.pk.hex}")).json()["outcome"]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(deliver, orders))
    assert outcomes == ["order paid", "refused: metered_offer_held; recorded as refund_due"]
    assert _live_metered_grants(customer) == 1
    refund_due = Order.objects.get(customer=customer, state="refund_due")
    assert refunds == [refund_due.pk] and HELD in refund_due.failure_message


@pytest.mark.django_db
def test_the_database_refuses_a_second_live_subscription_on_one_meter(payments_test_mode):
    customer, offer = factories.user(), _metered_offer()
    first, second = _orders(customer, offer)
    order_pay_local_test(order_id=first.pk, customer=customer, card_number="4242424242424242")
    live = Subscription.objects.get(order=first)
    grant = factories.grant(customer, offer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(order=second, grant=grant, provider="local_test", customer=customer,
                                    meter_event_name=live.meter_event_name, state=Subscription.State.ACTIVE)
    Subscription.objects.filter(pk=live.pk).update(state=Subscription.State.ENDED)
    Subscription.objects.create(order=second, grant=grant, provider="local_test", customer=customer,
                                meter_event_name=live.meter_event_name, state=Subscription.State.ACTIVE)
