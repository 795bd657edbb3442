"""A metered licence's whole life at Stripe: subscription created (a failure shown and retried),
usage metered, invoice paid → payout, invoice failed → suspended after the grace period → paid →
reinstated, subscription deleted → ended; refunds and disputes of a metered invoice.

localstripe emulates neither Billing Meters nor metered subscriptions, so the site's Stripe is the
recording server (each request checked), and Stripe's events are delivered signed to the webhook
endpoint, built from what the recording server received (the invoice bills the tokens of the meter
events Stripe got, at the Price's unit amount)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from billing.errors import GatewayTransient
from billing.metering import meter_outbox_deliver
from billing.models import Invoice, PayoutAccount, PayoutEntry, Subscription
from billing.subscriptions import (
    UNPAID_REASON,
    subscription_cancel_remote,
    subscription_create_remote,
    subscriptions_suspend_overdue,
    subscriptions_to_create,
)
from inference.models import MeterOutbox
from licensing.models import Grant
from licensing.services import apikey_create
from marketplace.checkout import order_charge, purchase_start
from marketplace.models import Order
from marketplace.pricing import meter_event_name
from marketplace.selectors import metered_estimate_cents
from tests import factories
from tests.inference.test_generation_api import post
from tests.support.stripe_stubs import stripe_stub

from .conftest import WEBHOOK_SECRET
from .test_purchase_stripe import _post_event

pytestmark = pytest.mark.django_db
PRICE = 2999  # cents per 1,000 tokens: a few generations make a bill worth rounding


@pytest.fixture
def stripe_recording(settings):
    server, get = stripe_stub(settings, "recording", secret_key="sk_test_lifecycle")
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET

    def recorded(path: str = "", method: str = "POST") -> list[dict]:
        return [r for r in get("/_recorded")["requests"] if r["path"].startswith(path) and r["method"] == method
                and not r["path"].startswith("/_")]

    def fail_next(path: str, count: int) -> None:
        import urllib.parse
        import urllib.request

        body = urllib.parse.urlencode({"path": path, "count": count}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{settings.STRIPE_API_BASE}/_fail", data=body), timeout=5)

    yield SimpleNamespace(recorded=recorded, fail_next=fail_next)
    server.stop()


def _buy_metered(make_licence=None, *, connect: str = ""):
    """A customer buys a metered offer of the tiny model (or of a listing without weights, when no
    generation is needed) through checkout: card saved, no fee."""
    listing = make_licence().version.listing if make_licence else factories.listing(title="Metered")
    offer = factories.offer(listing, fee_cents=0, metered=PRICE, name="Metered")
    if connect:
        PayoutAccount.objects.create(user=listing.trainer, stripe_account_id=connect, transfers_active=True)
    customer = factories.user()
    checkout = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                              ip_address=None)
    assert order_charge(order_id=checkout.order.pk, customer=customer).status == "card_saved"
    order = Order.objects.select_related("grant").get(pk=checkout.order.pk)
    _, plaintext = apikey_create(owner=customer, name="metered", grants=[order.grant])
    return SimpleNamespace(order=order, grant=order.grant, offer=offer, customer=customer, version=listing.model_version,
                           plaintext=plaintext, sub=Subscription.objects.get(order=order))


def _generate(client, bought, *, status=200):
    response = post(client, bought)
    assert response.status_code == status, response.content
    for row in MeterOutbox.objects.filter(state=MeterOutbox.State.PENDING):
        meter_outbox_deliver(outbox_id=row.pk)
    return response


def _metered_tokens_at_stripe(stripe_recording, bought) -> int:
    events = stripe_recording.recorded("/v1/billing/meter_events")
    assert events and all(e["params"]["event_name"] == meter_event_name(bought.offer) for e in events)
    assert all(e["params"]["payload[stripe_customer_id]"] == bought.order.stripe_customer_id for e in events)
    assert len({e["params"]["identifier"] for e in events}) == len(events)
    return sum(int(e["params"]["payload[value]"]) for e in events)


def _invoice_event(event_id: str, kind: str, sub: Subscription, *, invoice_id: str, tokens: int, start, end) -> dict:
    """Stripe's invoice event (API 2025+ shape: the subscription under `parent`)."""
    amount = metered_estimate_cents(tokens, PRICE)
    paid = kind != "invoice.payment_failed"
    invoice = {
        "id": invoice_id, "object": "invoice", "currency": "usd", "status": "paid" if paid else "open",
        "amount_due": amount, "amount_paid": amount if paid else 0, "attempt_count": 1,
        "hosted_invoice_url": f"https://invoice.stripe.test/{invoice_id}",
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": sub.stripe_subscription_id,
                                            "metadata": {"imprint_subscription": str(sub.pk)}}},
        "lines": {"object": "list", "data": [{"object": "line_item", "quantity": tokens, "amount": amount,
                                              "period": {"start": int(start.timestamp()),
                                                         "end": int(end.timestamp())}}]},
        "payments": {"object": "list", "data": [{"payment": {"type": "payment_intent",
                                                             "payment_intent": f"pi_{invoice_id}"}}]},
    }
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": invoice}}


def test_the_metered_lifecycle_from_subscription_to_payouts_suspension_reinstatement_and_end(
        client, make_licence, stripe_recording, settings, django_capture_on_commit_callbacks):
    settings.PLATFORM_FEE_BPS = 1250  # 12.5 %: the fee has fractions of a cent to round down
    bought = _buy_metered(make_licence, connect="acct_trainer_meter")
    sub = bought.sub
    assert sub.state == Subscription.State.PENDING and bought.grant.state == Grant.State.ACTIVE

    # Stripe fails (the SDK's retry too): the error is kept, shown to the customer and retried.
    stripe_recording.fail_next("/v1/subscriptions", 2)
    with pytest.raises(GatewayTransient):
        subscription_create_remote(subscription_id=sub.pk)
    sub.refresh_from_db()
    assert sub.state == Subscription.State.PENDING and sub.attempts == 1
    assert "Stripe refused the subscription" in sub.last_error
    client.force_login(bought.customer)
    assert "Billing not set up yet" in client.get(reverse("marketplace:customer_home")).content.decode()
    assert sub.pk not in subscriptions_to_create()  # backing off
    Subscription.objects.filter(pk=sub.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert sub.pk in subscriptions_to_create()
    sub = subscription_create_remote(subscription_id=sub.pk)
    assert sub.state == Subscription.State.ACTIVE and sub.stripe_subscription_id.startswith("sub_")
    creates = stripe_recording.recorded("/v1/subscriptions")
    assert len(creates) == 3 and len({c["headers"]["idempotency-key"] for c in creates}) == 1
    assert creates[-1]["params"]["application_fee_percent"] == "12.5"
    assert creates[-1]["params"]["transfer_data[destination]"] == "acct_trainer_meter"
    assert "Billing not set up yet" not in client.get(reverse("marketplace:customer_home")).content.decode()

    # Usage is metered to the offer's meter, once per ledger row.
    _generate(client, bought)
    _generate(client, bought)
    tokens = _metered_tokens_at_stripe(stripe_recording, bought)
    assert tokens == sum(e.total_tokens for e in bought.grant.usage_entries.all())

    # invoice.paid → the trainer's payout entry, fee rounded down; replays change nothing.
    start, end = sub.started_at, timezone.now() + timedelta(seconds=1)
    paid = _invoice_event("evt_in1_paid", "invoice.paid", sub, invoice_id="in_1", tokens=tokens, start=start, end=end)
    assert _post_event(client, paid).json()["outcome"] == "invoice paid"
    assert _post_event(client, paid).json()["outcome"].startswith("duplicate")
    also = {**paid, "id": "evt_in1_succeeded", "type": "invoice.payment_succeeded"}
    assert _post_event(client, also).json()["outcome"] == "no change: invoice already paid"
    amount = metered_estimate_cents(tokens, PRICE)
    payout = PayoutEntry.objects.get(kind=PayoutEntry.Kind.METERED, reference="in_1")
    assert (payout.gross_cents, payout.platform_fee_cents, payout.trainer_cents) == (
        amount, amount * 1250 // 10_000, amount - amount * 1250 // 10_000)
    assert payout.via_connect and payout.trainer == bought.offer.listing.trainer
    assert Invoice.objects.get(reference="in_1").tokens == tokens

    # invoice.payment_failed → past due and an e-mail; the grant works through the grace period.
    _generate(client, bought)
    with django_capture_on_commit_callbacks(execute=True):
        failed = _invoice_event("evt_in2_failed", "invoice.payment_failed", sub, invoice_id="in_2", tokens=40,
                                start=end, end=end + timedelta(days=30))
        assert _post_event(client, failed).json()["outcome"] == "invoice payment failed"
    sub.refresh_from_db()
    assert sub.state == Subscription.State.PAST_DUE
    assert mail.outbox[-1].to == [bought.customer.email] and "payment failed" in mail.outbox[-1].subject
    _generate(client, bought)
    assert subscriptions_suspend_overdue() == 0  # still within BILLING_GRACE_HOURS

    # The grace period ends unpaid → suspended (audited, e-mailed); generation refused.
    with django_capture_on_commit_callbacks(execute=True):
        later = timezone.now() + timedelta(hours=settings.BILLING_GRACE_HOURS, minutes=1)
        assert subscriptions_suspend_overdue(now=later) == 1
    grant = Grant.objects.get(pk=bought.grant.pk)
    assert grant.state == Grant.State.SUSPENDED and grant.state_reason == UNPAID_REASON
    assert "suspended" in mail.outbox[-1].subject
    assert _generate(client, bought, status=403).json()["error"]["code"] == "licence_suspended"
    assert AuditEntry.objects.filter(event="grant.suspended", subject_id=str(grant.pk)).exists()

    # Paying the failed invoice reinstates the grant.
    with django_capture_on_commit_callbacks(execute=True):
        repaid = _invoice_event("evt_in2_paid", "invoice.paid", sub, invoice_id="in_2", tokens=40,
                                start=end, end=end + timedelta(days=30))
        assert _post_event(client, repaid).json()["outcome"] == "invoice paid"
    assert Grant.objects.get(pk=grant.pk).state == Grant.State.ACTIVE
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.ACTIVE
    assert "active again" in mail.outbox[-1].subject
    _generate(client, bought)
    # A late failure notice for the paid invoice changes nothing.
    stale = {**failed, "id": "evt_in2_stale_failure"}
    assert _post_event(client, stale).json()["outcome"] == "no change: invoice already paid"
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.ACTIVE

    # customer.subscription.deleted → the grant ends.
    deleted = {"id": "evt_sub_deleted", "object": "event", "type": "customer.subscription.deleted",
               "data": {"object": {"id": sub.stripe_subscription_id, "object": "subscription", "status": "canceled",
                                   "metadata": {"imprint_subscription": str(sub.pk)}}}}
    assert _post_event(client, deleted).json()["outcome"] == "subscription ended"
    assert _post_event(client, {**deleted, "id": "evt_sub_deleted_again"}).json()["outcome"].startswith("no change")
    assert Grant.objects.get(pk=grant.pk).state == Grant.State.EXPIRED
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.ENDED
    assert _generate(client, bought, status=403).json()["error"]["code"] == "licence_inactive"


def test_a_forged_invoice_event_is_refused_and_changes_nothing(client, make_licence, stripe_recording):
    bought = _buy_metered(make_licence)
    sub = subscription_create_remote(subscription_id=bought.sub.pk)
    forged = _invoice_event("evt_forged_invoice", "invoice.payment_failed", sub, invoice_id="in_forged",
                            tokens=1, start=timezone.now(), end=timezone.now())
    assert _post_event(client, forged, secret="whsec_wrong").status_code == 400
    assert not Invoice.objects.exists()
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.ACTIVE


def test_refunds_and_disputes_of_a_metered_invoice_act_on_the_grant(client, make_licence, stripe_recording,
                                                                     django_capture_on_commit_callbacks):
    bought = _buy_metered(make_licence)
    sub = subscription_create_remote(subscription_id=bought.sub.pk)
    _generate(client, bought)
    tokens = _metered_tokens_at_stripe(stripe_recording, bought)
    paid = _invoice_event("evt_r_paid", "invoice.paid", sub, invoice_id="in_r", tokens=tokens,
                          start=sub.started_at, end=timezone.now() + timedelta(seconds=1))
    _post_event(client, paid)
    charge = {"id": "ch_in_r", "object": "charge", "payment_intent": "pi_in_r", "refunded": False}

    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": "pi_in_r", "charge": "ch_in_r"}
    outcome = _post_event(client, {"id": "evt_r_dispute", "type": "charge.dispute.created",
                                   "data": {"object": dispute}}).json()["outcome"]
    assert outcome == "invoice disputed"
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.SUSPENDED

    with django_capture_on_commit_callbacks() as callbacks:
        refund = {"id": "evt_r_refund", "type": "charge.refunded", "data": {"object": {**charge, "refunded": True}}}
        assert _post_event(client, refund).json()["outcome"] == "invoice refunded"
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.REVOKED
    assert Invoice.objects.get(reference="in_r").state == Invoice.State.REFUNDED
    reversal = PayoutEntry.objects.get(kind=PayoutEntry.Kind.REFUND, reference="refund:in_r")
    assert reversal.gross_cents == metered_estimate_cents(tokens, PRICE)
    assert callbacks  # the subscription's cancellation at Stripe is enqueued after commit
    subscription_cancel_remote(subscription_id=sub.pk)
    assert stripe_recording.recorded(f"/v1/subscriptions/{sub.stripe_subscription_id}", method="DELETE")
    # Stripe then says the subscription is gone: it ends; the grant stays revoked.
    deleted = {"id": "evt_r_deleted", "type": "customer.subscription.deleted",
               "data": {"object": {"id": sub.stripe_subscription_id, "object": "subscription", "metadata": {}}}}
    assert _post_event(client, deleted).json()["outcome"] == "subscription ended"
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.REVOKED


def test_a_customer_cannot_hold_two_live_subscriptions_on_one_metered_offer(make_licence, stripe_recording):
    from marketplace.errors import MeteredOfferHeld

    bought = _buy_metered(make_licence)
    with pytest.raises(MeteredOfferHeld):
        purchase_start(customer=bought.customer, offer_id=bought.offer.pk, accepted_terms_sha256=bought.offer.terms_id,
                       ip_address=None)


def test_the_grace_period_is_a_setting_and_paying_never_lifts_a_compliance_suspension(client, make_licence,
                                                                                      stripe_recording, settings):
    from licensing.services import grant_set_state

    settings.BILLING_GRACE_HOURS = 0  # no grace: the failure suspends at once
    bought = _buy_metered(make_licence)
    sub = subscription_create_remote(subscription_id=bought.sub.pk)
    now = timezone.now()
    failed = _invoice_event("evt_g_failed", "invoice.payment_failed", sub, invoice_id="in_g", tokens=0, start=now,
                            end=now)
    _post_event(client, failed)
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.SUSPENDED
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.SUSPENDED
    # Staff suspend it for a compliance case meanwhile; paying the invoice does not lift that.
    grant_set_state(grant_id=bought.grant.pk, state=Grant.State.ACTIVE, reason="test: reinstated by staff")
    grant_set_state(grant_id=bought.grant.pk, state=Grant.State.SUSPENDED, reason="compliance case 7")
    _post_event(client, _invoice_event("evt_g_paid", "invoice.paid", sub, invoice_id="in_g", tokens=0, start=now,
                                       end=now))
    grant = Grant.objects.get(pk=bought.grant.pk)
    assert grant.state == Grant.State.SUSPENDED and grant.state_reason == "compliance case 7"
    assert Subscription.objects.get(pk=sub.pk).state == Subscription.State.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_paid_invoice_pay_the_trainer_once(stripe_recording):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django.test import Client

    bought = _buy_metered()
    sub = subscription_create_remote(subscription_id=bought.sub.pk)
    now = timezone.now()
    event = _invoice_event("evt_c", "invoice.paid", sub, invoice_id="in_c", tokens=5000, start=now, end=now)

    def deliver(n: int) -> str:
        try:
            return _post_event(Client(), {**event, "id": f"evt_c_{n}"}).json()["outcome"]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(deliver, range(4)))
    assert outcomes == ["invoice paid"] + ["no change: invoice already paid"] * 3
    assert PayoutEntry.objects.filter(reference="in_c").count() == 1
    assert Invoice.objects.filter(reference="in_c").count() == 1
