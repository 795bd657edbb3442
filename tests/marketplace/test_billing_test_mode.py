"""The local test mode's metered month, without Stripe keys: the command (and Celery beat) closes a
month, raises the invoice and pays it, or fails the payment, so a person sees the suspension after
the grace period and the reinstatement when the invoice is paid; `reconcile` agrees with it, and
finds a lost meter event."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from billing.local import local_periods_close_due
from billing.metering import meter_outbox_deliver
from billing.models import Invoice, PayoutEntry, Subscription
from inference.models import MeterOutbox
from licensing.models import Grant, months_later
from licensing.services import apikey_create
from marketplace.selectors import metered_estimate_cents
from marketplace.services import TEST_CARD_SUCCEEDS, order_create, order_pay_local_test
from tests import factories
from tests.inference.test_generation_api import post

pytestmark = pytest.mark.django_db
PRICE = 1999


def buy_metered_locally(make_licence, *, username: str | None = None, fee_cents: int = 0):
    listing = make_licence().version.listing
    offer = factories.offer(listing, fee_cents=fee_cents, metered=PRICE, name="Metered")
    customer = factories.user(username)
    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address=None, provider="local_test")
    order = order_pay_local_test(order_id=order.pk, customer=customer, card_number=TEST_CARD_SUCCEEDS)
    _, plaintext = apikey_create(owner=customer, name="metered", grants=[order.grant])
    return SimpleNamespace(order=order, grant=order.grant, offer=offer, customer=customer, plaintext=plaintext,
                           version=listing.model_version, sub=Subscription.objects.get(order=order))


def generate(client, bought, *, status=200, deliver=True) -> int:
    response = post(client, bought)
    assert response.status_code == status, response.content
    if deliver:
        for row in MeterOutbox.objects.filter(state=MeterOutbox.State.PENDING):
            assert meter_outbox_deliver(outbox_id=row.pk) == MeterOutbox.State.SENT  # no network in test mode
    return response.json()["usage"]["total_tokens"] if status == 200 else 0


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def reconcile() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("reconcile", stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_a_person_sees_a_month_closed_a_failed_payment_the_suspension_and_the_reinstatement(
        client, make_licence, payments_test_mode, django_capture_on_commit_callbacks):
    bought = buy_metered_locally(make_licence, username="metered_mia")
    assert bought.sub.state == Subscription.State.ACTIVE and bought.sub.stripe_subscription_id.startswith("testsub_")
    tokens = generate(client, bought) + generate(client, bought)

    out = run("billing_test_mode", "close-month")
    first = Invoice.objects.get()
    assert f"invoice {first.reference} {tokens} tokens" in out and "paid" in out
    assert (first.tokens, first.amount_cents, first.state) == (tokens, metered_estimate_cents(tokens, PRICE), "paid")
    payout = PayoutEntry.objects.get(kind=PayoutEntry.Kind.METERED, reference=first.reference)
    assert payout.gross_cents == first.amount_cents and payout.platform_fee_cents == first.amount_cents * 2000 // 10_000

    more = generate(client, bought)
    with django_capture_on_commit_callbacks(execute=True):
        out = run("billing_test_mode", "close-month", "--fail", "--customer", "metered_mia")
    second = Invoice.objects.exclude(pk=first.pk).get()
    assert (second.tokens, second.state) == (more, "failed") and "past_due" in out
    assert "payment failed" in mail.outbox[-1].subject and mail.outbox[-1].to == [bought.customer.email]
    generate(client, bought)  # within the grace period the licence still works

    with django_capture_on_commit_callbacks(execute=True):
        assert "suspended" in run("billing_test_mode", "end-grace")
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.SUSPENDED
    assert "licence is suspended" in mail.outbox[-1].subject.lower()
    generate(client, bought, status=403)

    with django_capture_on_commit_callbacks(execute=True):
        assert "grant active" in run("billing_test_mode", "pay")
    assert Grant.objects.get(pk=bought.grant.pk).state == Grant.State.ACTIVE
    assert Invoice.objects.get(pk=second.pk).state == "paid"
    generate(client, bought)
    status, out = reconcile()
    assert status == 0 and out.strip().endswith("0 discrepancies")


def test_celery_beat_closes_each_month_when_it_ends(client, make_licence, payments_test_mode):
    bought = buy_metered_locally(make_licence)
    tokens = generate(client, bought)
    end = months_later(bought.sub.current_period_start)
    assert local_periods_close_due(now=end - timedelta(seconds=1)) == 0
    assert local_periods_close_due(now=end + timedelta(seconds=1)) == 1
    assert local_periods_close_due(now=end + timedelta(seconds=2)) == 0  # the next month has just begun
    invoice = Invoice.objects.get()
    assert (invoice.tokens, invoice.state, invoice.period_end) == (tokens, "paid", end)


def test_reconcile_finds_a_lost_meter_event_and_nothing_on_a_clean_run(client, make_licence, payments_test_mode):
    bought = buy_metered_locally(make_licence)
    generate(client, bought)
    generate(client, bought)
    run("billing_test_mode", "close-month")
    status, out = reconcile()
    assert status == 0 and "DISCREPANCY" not in out and "0 discrepancies" in out

    lost = generate(client, bought, deliver=False)
    entry = bought.grant.usage_entries.order_by("-created_at").first()
    MeterOutbox.objects.filter(usage_entry=entry).delete()  # the meter event never reached the meter
    run("billing_test_mode", "close-month")
    status, out = reconcile()
    assert status == 1
    assert f"usage {entry.request_id} ({lost} tokens" in out and "has no meter event" in out
    assert "bills 0 tokens" in out and f"the ledger holds {lost} and the meter events sent 0" in out
    assert out.strip().endswith("2 discrepancies")


def test_reconcile_names_an_invoice_that_bills_other_tokens_or_lacks_its_payout(client, make_licence,
                                                                                payments_test_mode):
    bought = buy_metered_locally(make_licence)
    generate(client, bought)
    run("billing_test_mode", "close-month")
    invoice = Invoice.objects.get()
    Invoice.objects.filter(pk=invoice.pk).update(tokens=invoice.tokens + 7)
    PayoutEntry.objects.filter(reference=invoice.reference).delete()
    status, out = reconcile()
    assert status == 1 and f"invoice {invoice.reference}: bills {invoice.tokens + 7} tokens" in out
    assert "has no payout entry" in out and "make" in out  # amount no longer matches tokens × price


def test_the_command_refuses_when_stripe_is_configured(settings):
    settings.STRIPE_SECRET_KEY, settings.PAYMENTS_TEST_MODE = "sk_test_x", False
    with pytest.raises(CommandError, match="Stripe is configured"):
        call_command("billing_test_mode", "close-month")


def test_the_demo_closes_a_metered_month_once(make_licence, payments_test_mode):
    from marketplace.demo_billing import demo_metered_month

    listing = make_licence().version.listing
    factories.offer(listing, fee_cents=0, metered=PRICE, name="Commercial",
                    uses=["personal", "research", "internal", "commercial"])
    customer = factories.user()
    lines = []
    demo_metered_month(customer=customer, listing=listing, write=lines.append)
    invoice = Invoice.objects.get(subscription__order__customer=customer)
    assert invoice.state == "paid" and invoice.tokens == sum(e.total_tokens for e in invoice.subscription.grant
                                                            .usage_entries.all()) > 0
    assert invoice.reference in lines[0]
    demo_metered_month(customer=customer, listing=listing, write=lines.append)  # the demo runs at every start
    assert Invoice.objects.count() == 1 and len(lines) == 1
