"""Statements that add up: the customer sees each month's usage × unit price beside its invoice;
the trainer sees one-time and metered revenue, refunds, fees and payouts per month, in integer
cents, where share = one-time + metered − refunds − fee on every row. Screenshots in Chromium."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import Invoice, PayoutEntry
from marketplace.selectors import metered_estimate_cents, trainer_statement
from marketplace.services import order_mark_reversed
from tests import factories
from tests.support.browser import chromium_page, log_in, screenshot

from .test_billing_test_mode import PRICE, buy_metered_locally, generate, run


def usd(cents: int) -> str:
    return f"USD {cents // 100:,}.{cents % 100:02d}"


def _two_months(client, make_licence, **kwargs):
    bought = buy_metered_locally(make_licence, **kwargs)
    generate(client, bought)
    generate(client, bought)
    run("billing_test_mode", "close-month")
    generate(client, bought)
    run("billing_test_mode", "close-month", "--fail")
    return bought


@pytest.mark.django_db
def test_the_customer_sees_each_month_s_usage_times_price_beside_its_invoice(client, make_licence,
                                                                           payments_test_mode):
    bought = _two_months(client, make_licence)
    client.force_login(bought.customer)
    page = client.get(reverse("marketplace:customer_statement")).content.decode()
    for invoice in Invoice.objects.all():
        usage = metered_estimate_cents(invoice.tokens, PRICE)
        assert invoice.reference in page and usd(usage) in page and f">{invoice.tokens}<" in page
        assert invoice.amount_cents == usage
    assert "A payment failed" in page and f"{PRICE}¢/1k" in page and "not invoiced yet" in page
    stranger = factories.user()
    client.force_login(stranger)
    assert "testinv_" not in client.get(reverse("marketplace:customer_statement")).content.decode()


@pytest.mark.django_db
def test_the_trainer_statement_adds_up_per_month(client, make_licence, payments_test_mode):
    bought = _two_months(client, make_licence, fee_cents=4900)
    run("billing_test_mode", "pay")
    order_mark_reversed(order_id=bought.order.pk, state="refunded", reason="charge refunded")
    trainer = bought.offer.listing.trainer
    statement = trainer_statement(trainer)
    metered = sum(i.amount_cents for i in Invoice.objects.all())
    total = statement["totals"]["usd"]
    assert (total["one_time"], total["metered"], total["refunds"]) == (4900, metered, 4900)
    for row in [*statement["months"], total]:
        assert row["share"] == row["one_time"] + row["metered"] - row["refunds"] - row["fee"]
        assert row["owed"] == row["share"] - row["via_connect"]
    assert total["fee"] == sum((1 if e.kind != "refund" else -1) * e.platform_fee_cents
                               for e in PayoutEntry.objects.filter(trainer=trainer))
    client.force_login(trainer)
    page = client.get(reverse("marketplace:trainer_statement")).content.decode()
    assert usd(metered) in page and "−USD 49.00" in page
    client.force_login(bought.customer)
    assert client.get(reverse("marketplace:trainer_statement")).status_code in (302, 403)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_statements_in_the_browser(client, make_licence, payments_test_mode, live_server):
    bought = _two_months(client, make_licence, fee_cents=4900)
    trainer = bought.offer.listing.trainer
    with chromium_page(live_server.url) as page:
        log_in(page, bought.customer.username, "pw-Imprint-123")
        page.goto(reverse("marketplace:customer_statement"))
        assert page.locator("text=A payment failed").count() == 1
        screenshot(page, "statement-customer")
        page.context.clear_cookies()
        log_in(page, trainer.username, "pw-Imprint-123")
        page.goto(reverse("marketplace:trainer_statement"))
        assert page.locator("tr.total").count() == 1
        screenshot(page, "statement-trainer")
