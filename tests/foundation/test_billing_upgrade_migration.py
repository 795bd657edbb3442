"""A database whose money lived under the marketplace (customers, Connect accounts, Stripe events,
meters, subscriptions, invoices, payouts) migrates forward with every row readable through the
billing app's models, its foreign keys to the marketplace's orders intact, on the database the
suite runs on (SQLite here, PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from tests.foundation.test_upgrade_migration import _old_metered_sale, _old_version, migrate_to  # noqa: F401

AFTER = [("billing", "0001_initial")]
MOVED = ["billingcustomer", "invoice", "payoutaccount", "payoutentry", "stripeevent", "stripemeter", "subscription"]


def _before() -> list[tuple[str, str]]:
    """Every other app at its latest migration, the marketplace just before billing moved out."""
    leaves = MigrationLoader(connection).graph.leaf_nodes()
    return [n for n in leaves if n[0] not in ("billing", "marketplace")] + [
        ("marketplace", "0007_metered_subscriptions_and_invoices")]


def _old_money(apps) -> dict:
    """A metered sale and a row of every moved model, written through the marketplace's old models."""
    user, version, terms = _old_version(apps)
    grant = apps.get_model("licensing", "Grant").objects.create(
        customer=user, model_version=version, terms=terms, quota_tokens=1000, state="active", metered=True)
    order = _old_metered_sale(apps, user=user, version=version, terms=terms, grant=grant)
    old = {name: apps.get_model("marketplace", name) for name in (
        "BillingCustomer", "PayoutAccount", "StripeEvent", "StripeMeter", "Subscription", "Invoice", "PayoutEntry")}
    old["BillingCustomer"].objects.create(user=user, stripe_customer_id="cus_old", default_payment_method="pm_old")
    old["PayoutAccount"].objects.create(user=user, stripe_account_id="acct_old", transfers_active=True)
    old["StripeEvent"].objects.create(event_id="evt_old", type="invoice.paid", payload={"id": "evt_old"},
                                      outcome="invoice paid")
    old["StripeMeter"].objects.create(event_name="imprint_tokens_old", stripe_meter_id="mtr_old")
    sub = old["Subscription"].objects.create(order=order, grant=grant, provider="stripe", state="active",
                                             stripe_subscription_id="sub_old")
    now = timezone.now()
    old["Invoice"].objects.create(subscription=sub, reference="in_old", state="paid", period_start=now,
                                  period_end=now + dt.timedelta(days=30), tokens=1234, amount_cents=617,
                                  currency="usd", payment_reference="pi_old")
    old["PayoutEntry"].objects.create(order=order, trainer=user, kind="metered", reference="in_old", gross_cents=617,
                                      platform_fee_cents=123, trainer_cents=494, currency="usd")
    return {"order": order.pk, "grant": grant.pk, "subscription": sub.pk, "user": user.pk}


@pytest.mark.slow
def test_a_database_with_billing_under_the_marketplace_migrates_with_every_row_in_billing(migrate_to):
    ids = _old_money(migrate_to(_before()))
    # Every migration there is, later ones included: the real models below read the latest schema.
    migrate_to(MigrationExecutor(connection).loader.graph.leaf_nodes())
    from billing.models import (
        BillingCustomer,
        Invoice,
        PayoutAccount,
        PayoutEntry,
        StripeEvent,
        StripeMeter,
        Subscription,
    )

    assert BillingCustomer.objects.get(user_id=ids["user"]).default_payment_method == "pm_old"
    assert PayoutAccount.objects.get(user_id=ids["user"]).transfers_active
    assert StripeEvent.objects.get(event_id="evt_old").outcome == "invoice paid"
    assert StripeMeter.objects.get().stripe_meter_id == "mtr_old"
    sub = Subscription.objects.get(pk=ids["subscription"])
    assert (sub.stripe_subscription_id, sub.order_id, sub.grant_id) == ("sub_old", ids["order"], ids["grant"])
    assert sub.order.subscription == sub  # the foreign key from the marketplace's side still resolves
    invoice = Invoice.objects.get(reference="in_old")
    assert (invoice.subscription_id, invoice.tokens, invoice.amount_cents) == (sub.pk, 1234, 617)
    entry = PayoutEntry.objects.get(reference="in_old")
    assert (entry.order_id, entry.gross_cents, entry.platform_fee_cents, entry.trainer_cents) == (
        ids["order"], 617, 123, 494)
    assert list(sub.order.payouts.all()) == [entry]


@pytest.mark.slow
def test_the_billing_models_content_types_follow_them(migrate_to):
    content_type = migrate_to(_before()).get_model("contenttypes", "ContentType")
    for model in MOVED:
        content_type.objects.get_or_create(app_label="marketplace", model=model)
    new = migrate_to(AFTER).get_model("contenttypes", "ContentType")
    assert dict(new.objects.filter(model__in=MOVED).values_list("model", "app_label")) == dict.fromkeys(MOVED, "billing")
