"""The invoice lifecycle against localstripe, whose own signed webhooks reach the live site:
an invoice paid (`invoice.payment_succeeded`) writes the trainer's payout, a declined invoice
(`invoice.payment_failed`) is recorded, and the subscription localstripe then cancels
(`customer.subscription.deleted`) ends the grant.

localstripe has no Billing Meters or metered Prices (that part is contract-tested against the
recording server in test_metered_lifecycle.py), so the test stands in for Stripe's month close:
it subscribes the customer to a zero-amount monthly plan in localstripe and invoices the month's
metered amount as an invoice item on that subscription, which localstripe charges to the saved card."""

from __future__ import annotations

import pytest
import stripe
from django.utils import timezone

from billing.models import Invoice, PayoutEntry, StripeEvent, Subscription
from billing.subscriptions import subscription_record_created
from licensing.models import Grant
from marketplace.checkout import order_charge, purchase_start
from marketplace.models import Order
from tests import factories

from .conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _invoice_the_month(client, sub, *, amount: int, card: str):
    """What Stripe does at the end of the month: an invoice for the subscription, charged."""
    customer = sub.order.stripe_customer_id
    method = client.v1.payment_methods.attach(card, params={"customer": customer})
    client.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": method.id}})
    client.v1.invoice_items.create(params={"customer": customer, "amount": amount, "currency": "usd",
                                           "subscription": sub.stripe_subscription_id})
    invoice = client.v1.invoices.create(params={"customer": customer, "subscription": sub.stripe_subscription_id})
    try:
        client.v1.invoices.pay(invoice.id)
    except stripe.CardError:
        pass  # declined: localstripe sends invoice.payment_failed
    return invoice.id


def test_localstripe_s_invoice_and_subscription_webhooks_drive_payouts_past_due_and_the_end(stripe_site, trainer,
                                                                                          customer):
    client = stripe_site["client"]
    offer = factories.offer(factories.listing(trainer, title="Metered at localstripe"), fee_cents=0, metered=500)
    order = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                           ip_address=None).order
    client.v1.setup_intents.confirm(order.stripe_setup_intent_id, params={"payment_method": "pm_card_visa"})
    assert order_charge(order_id=order.pk, customer=customer).status == "card_saved"
    sub = Subscription.objects.get(order=order)

    plan = client.v1.plans.create(params={"amount": 0, "currency": "usd", "interval": "month",
                                          "product": {"name": "Imprint tokens"}})
    remote = client.v1.subscriptions.create(params={"customer": sub.order.stripe_customer_id,
                                                    "items": [{"plan": plan.id}],
                                                    "metadata": {"imprint_subscription": str(sub.pk)}})
    sub = subscription_record_created(subscription_id=sub.pk, stripe_subscription_id=remote.id,
                                      started_at=timezone.now())
    paid_id = _invoice_the_month(client, sub, amount=1234, card="pm_card_visa")
    invoice = wait_for(lambda: Invoice.objects.filter(reference=paid_id, state="paid").first())
    assert invoice.amount_cents == 1234 and invoice.payment_reference.startswith("pi_")
    payout = PayoutEntry.objects.get(kind=PayoutEntry.Kind.METERED, reference=paid_id)
    assert (payout.gross_cents, payout.platform_fee_cents, payout.trainer_cents) == (1234, 246, 988)

    # A debit that fails after the charge was accepted: localstripe reports it as Stripe does, by
    # invoice.payment_failed (a card declined at once fails the API call and sends no invoice event),
    # and then cancels the subscription (as Stripe does once its retries are exhausted, when set to):
    # customer.subscription.deleted ends the grant.
    debit = client.v1.payment_methods.create(params={"type": "sepa_debit",
                                                     "sepa_debit": {"iban": "DE62370400440532013001"}})
    failed_id = _invoice_the_month(client, sub, amount=777, card=debit.id)
    wait_for(lambda: Invoice.objects.filter(reference=failed_id, state="failed").exists())
    wait_for(lambda: Subscription.objects.filter(pk=sub.pk, state=Subscription.State.ENDED).exists())
    outcomes = dict(StripeEvent.objects.filter(type__in=["invoice.payment_failed", "customer.subscription.deleted"])
                    .values_list("type", "outcome"))
    assert outcomes == {"invoice.payment_failed": "invoice payment failed",
                        "customer.subscription.deleted": "subscription ended"}
    assert not PayoutEntry.objects.filter(reference=failed_id).exists()
    assert Grant.objects.get(pk=Order.objects.get(pk=order.pk).grant_id).state == Grant.State.EXPIRED
