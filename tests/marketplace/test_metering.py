"""Promises of metered billing: a meter event row per metered generation (naming no Stripe object),
sent to the grant's payer at Stripe with a unique identifier, retried after a failure without
double billing, and reconcilable with the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.metering import MeterSendFailed, meter_outbox_deliver
from billing.models import Subscription
from inference.models import MeterOutbox, UsageEntry
from licensing.models import Acceptance, Grant
from marketplace.models import Order
from marketplace.pricing import meter_event_name
from tests.inference.test_generation_api import post
from tests.support.stripe_stubs import stripe_stub


@pytest.fixture
def flaky_stripe(settings):
    """A Stripe stand-in process whose first 2 meter-event responses are lost (500 after billing)."""
    server, get = stripe_stub(settings, "flaky", "2", secret_key="sk_test_meter")
    yield lambda: get("/_billed")
    server.stop()


def metered(make_licence):
    licence = make_licence()
    terms = licence.grant.terms
    offer = licence.version.listing.offers.get(terms=terms)
    offer.metered_cents_per_1k = 5
    offer.save(update_fields=["metered_cents_per_1k"])
    acceptance = Acceptance.objects.create(user=licence.customer, terms=terms)
    order = Order.objects.create(customer=licence.customer, offer=offer, terms=terms, acceptance=acceptance,
                                 grant=licence.grant, provider=Order.Provider.STRIPE, amount_cents=0,
                                 currency="usd", stripe_customer_id="cus_metered", state=Order.State.PAID)
    Subscription.objects.create(order=order, grant=licence.grant, provider=Order.Provider.STRIPE,
                                state=Subscription.State.ACTIVE, stripe_subscription_id=f"sub_{order.pk.hex}",
                                started_at=order.created_at)
    Grant.objects.filter(pk=licence.grant.pk).update(metered=True)
    return licence


def test_a_metered_generation_writes_one_outbox_row_with_the_ledger_row(client, make_licence):
    licence = metered(make_licence)
    body = post(client, licence).json()
    entry = UsageEntry.objects.get(request_id=body["id"])
    row = MeterOutbox.objects.get(usage_entry=entry)
    assert row.identifier == f"imprint-usage-{entry.request_id}" and row.state == MeterOutbox.State.PENDING
    assert row.payload == {"tokens": entry.total_tokens, "identifier": row.identifier,
                           "timestamp": int(entry.created_at.timestamp())}
    unmetered = make_licence()
    post(client, unmetered)
    assert not MeterOutbox.objects.filter(usage_entry__grant=unmetered.grant).exists()


def test_the_outbox_retries_after_a_failed_stripe_call_without_double_billing(client, make_licence, flaky_stripe):
    licence = metered(make_licence)
    entry = UsageEntry.objects.get(request_id=post(client, licence).json()["id"])
    row = MeterOutbox.objects.get(usage_entry=entry)
    with pytest.raises(MeterSendFailed):
        meter_outbox_deliver(outbox_id=row.pk)
    row.refresh_from_db()
    assert row.state == MeterOutbox.State.PENDING and row.attempts == 1 and row.last_error
    assert meter_outbox_deliver(outbox_id=row.pk) == MeterOutbox.State.SENT
    assert meter_outbox_deliver(outbox_id=row.pk) == MeterOutbox.State.SENT  # a duplicate task: no call
    stripe = flaky_stripe()
    assert stripe["requests"] == 3  # 2 lost responses (the SDK retries once), then the successful retry
    offer = Order.objects.get(grant=licence.grant).offer
    assert [(e["identifier"], e["payload[value]"], e["payload[stripe_customer_id]"], e["event_name"])
            for e in stripe["billed"]] == [(row.identifier, str(entry.total_tokens), "cus_metered",
                                            meter_event_name(offer))]


def test_meter_events_wait_for_the_subscription_and_are_never_dated_before_it(client, make_licence, flaky_stripe):
    licence = metered(make_licence)
    sub = Subscription.objects.get(grant=licence.grant)
    Subscription.objects.filter(pk=sub.pk).update(state=Subscription.State.PENDING)
    entry = UsageEntry.objects.get(request_id=post(client, licence).json()["id"])
    row = MeterOutbox.objects.get(usage_entry=entry)
    # Not created at Stripe yet: usage sent now would fall outside every invoice; the row waits.
    assert meter_outbox_deliver(outbox_id=row.pk) == MeterOutbox.State.PENDING
    row.refresh_from_db()
    assert row.attempts == 0 and row.next_attempt_at is not None and flaky_stripe()["requests"] == 0
    later = entry.created_at.replace(microsecond=0) + timedelta(seconds=30)
    Subscription.objects.filter(pk=sub.pk).update(state=Subscription.State.ACTIVE, started_at=later)
    with pytest.raises(MeterSendFailed):
        meter_outbox_deliver(outbox_id=row.pk)  # the flaky server loses the first responses
    assert meter_outbox_deliver(outbox_id=row.pk) == MeterOutbox.State.SENT
    assert flaky_stripe()["billed"][0]["timestamp"] == str(int(later.timestamp()))
