"""Promises of metered billing: an outbox row per metered generation, sent to Stripe with a unique
identifier, retried after a failure without double billing, and reconcilable with the ledger."""

from __future__ import annotations

import json
import urllib.request

import pytest
from django.core.management import call_command

from inference.metering import MeterSendFailed, meter_outbox_deliver
from inference.models import MeterOutbox, UsageEntry
from licensing.models import Acceptance
from marketplace.models import Order
from tests.support.processes import free_port, python_cmd, start_process

from .test_generation_api import post


@pytest.fixture
def flaky_stripe(settings):
    """A Stripe stand-in process whose first 2 meter-event responses are lost (500 after billing)."""
    port = free_port()
    server = start_process("flaky-stripe", python_cmd("tests/inference/flaky_stripe.py", str(port), "2"), port=port)
    base = f"http://127.0.0.1:{port}"
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.PAYMENTS_TEST_MODE = "sk_test_meter", base, False

    def state() -> dict:
        with urllib.request.urlopen(f"{base}/_billed", timeout=5) as response:
            return json.load(response)

    yield state
    server.stop()


def metered(make_licence):
    licence = make_licence()
    terms = licence.grant.terms
    offer = licence.version.listing.offers.get(terms=terms)
    offer.metered_cents_per_1k = 5
    offer.save(update_fields=["metered_cents_per_1k"])
    acceptance = Acceptance.objects.create(user=licence.customer, terms=terms)
    Order.objects.create(customer=licence.customer, offer=offer, terms=terms, acceptance=acceptance,
                         grant=licence.grant, provider=Order.Provider.STRIPE, amount_cents=0, currency="usd",
                         stripe_customer_id="cus_metered", state=Order.State.PAID)
    return licence


def test_a_metered_generation_writes_one_outbox_row_with_the_ledger_row(client, make_licence):
    licence = metered(make_licence)
    body = post(client, licence).json()
    entry = UsageEntry.objects.get(request_id=body["id"])
    row = MeterOutbox.objects.get(usage_entry=entry)
    assert row.identifier == f"imprint-usage-{entry.request_id}" and row.state == MeterOutbox.State.PENDING
    assert row.payload == {"stripe_customer_id": "cus_metered", "tokens": entry.total_tokens,
                           "identifier": row.identifier, "timestamp": int(entry.created_at.timestamp())}
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
    assert [(e["identifier"], e["payload[value]"]) for e in stripe["billed"]] == [
        (row.identifier, str(entry.total_tokens))]


def test_the_reconciliation_command_flags_unreported_usage(client, make_licence, capsys):
    licence = metered(make_licence)
    post(client, licence)
    with pytest.raises(SystemExit):
        call_command("meter_reconcile")
    assert "DIFFERS" in capsys.readouterr().out
    MeterOutbox.objects.update(state=MeterOutbox.State.SENT)
    call_command("meter_reconcile")
    assert "0 with differences" in capsys.readouterr().out
