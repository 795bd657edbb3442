"""Commission money through the official Stripe SDK: the charge to the platform, the held funds and
the refund against a real localstripe process (its signed webhooks delivered to the live site); the
Connect transfer, which localstripe lacks, against the recording server."""

from __future__ import annotations

import pytest
from django.utils import timezone

from billing.held import held_payment_charge, held_payment_checkout, held_payment_release
from billing.models import HeldPayment, PayoutAccount, PayoutEntry, StripeEvent
from billing.reconciliation import billing_discrepancies
from marketplace import commissions
from marketplace.models import Commission
from tests.support.stripe_stubs import stripe_stub

from .commission_support import post, propose, version_on
from .conftest import wait_for
from .test_purchase_stripe import _post_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _awarded(make_user):
    customer, tess = make_user("carl"), make_user("tess", trainer=True, customer=False)
    commission = post(customer)
    commissions.proposal_accept(customer=customer, proposal_id=propose(tess, commission).pk)
    commission.refresh_from_db()
    return commission


def _pay_as_the_page_would(client, commission) -> HeldPayment:
    checkout = held_payment_checkout(held_id=commission.held_payment_id)
    assert checkout.client_secret.startswith("seti_")
    client.v1.setup_intents.confirm(checkout.held.setup_reference, params={"payment_method": "pm_card_visa"})
    return held_payment_charge(held_id=commission.held_payment_id)


def test_the_payment_is_charged_to_the_platform_held_and_refunded_when_the_deadline_passes(stripe_site, make_user,
                                                                                          client):
    commission = _awarded(make_user)
    held = _pay_as_the_page_would(stripe_site["client"], commission)
    assert held.state == HeldPayment.State.HELD
    intent = stripe_site["client"].v1.payment_intents.retrieve(held.payment_reference)
    # Separate charges and transfers: no destination, the transfer group names the commission.
    assert intent["amount"] == 40_000 and intent["status"] == "succeeded"
    assert intent["transfer_group"] == commission.purpose and "transfer_data" not in intent.to_dict()
    assert intent["metadata"]["imprint_held"] == commission.purpose
    assert Commission.objects.get(pk=commission.pk).state == Commission.State.IN_PROGRESS
    # Stripe's webhook arrives after the charge's own answer held the money: it changes nothing.
    event = wait_for(lambda: StripeEvent.objects.filter(type="payment_intent.succeeded",
                                                        object_id=held.payment_reference).first())
    assert event.outcome == "no change: funds already held"

    commissions.commissions_sweep(now=commission.deadline + timezone.timedelta(seconds=1))
    held.refresh_from_db()
    assert held.state == HeldPayment.State.REFUNDED and held.refund_reference.startswith("re_")
    refunds = stripe_site["client"].v1.refunds.list(params={"payment_intent": held.payment_reference})
    assert [r["amount"] for r in refunds.data] == [40_000]
    assert Commission.objects.get(pk=commission.pk).state == Commission.State.CANCELLED
    assert billing_discrepancies()[0] == []


def test_a_double_delivery_of_any_webhook_changes_nothing(stripe_site, make_user, client):
    commission = _awarded(make_user)
    held = _pay_as_the_page_would(stripe_site["client"], commission)
    wait_for(lambda: StripeEvent.objects.filter(object_id=held.payment_reference).exists())
    intent = stripe_site["client"].v1.payment_intents.retrieve(held.payment_reference).to_dict()
    succeeded = {"id": "evt_held_ok", "type": "payment_intent.succeeded", "data": {"object": intent}}
    failed = {"id": "evt_held_failed", "type": "payment_intent.payment_failed", "data": {"object": intent}}
    refunded = {"id": "evt_held_refund", "type": "charge.refunded",
                "data": {"object": {"id": held.charge_reference or "ch_x", "payment_intent": held.payment_reference,
                                    "refunded": True}}}
    before = (HeldPayment.objects.get(pk=held.pk).state, Commission.objects.get(pk=commission.pk).state)
    for payload in (succeeded, succeeded, failed, failed):
        assert _post_event(client, payload).status_code == 200
    assert (HeldPayment.objects.get(pk=held.pk).state, Commission.objects.get(pk=commission.pk).state) == before
    assert _post_event(client, refunded).status_code == 200  # refunded from Stripe's dashboard: the work stops
    states = (HeldPayment.objects.get(pk=held.pk).state, Commission.objects.get(pk=commission.pk).state)
    assert states == (HeldPayment.State.REFUNDED, Commission.State.CANCELLED)
    assert _post_event(client, refunded).status_code == 200
    assert _post_event(client, {**refunded, "id": "evt_held_refund_again"}).status_code == 200
    assert (HeldPayment.objects.get(pk=held.pk).state, Commission.objects.get(pk=commission.pk).state) == states
    assert StripeEvent.objects.get(event_id="evt_held_refund_again").outcome == "no change: held payment not held"
    assert not PayoutEntry.objects.exists()


@pytest.fixture
def recording_stripe(settings):
    server, get = stripe_stub(settings, "recording", secret_key="sk_test_contract")
    yield get
    server.stop()


def test_release_transfers_the_share_from_the_charge_to_the_trainers_connect_account(recording_stripe, make_user):
    customer, tess = make_user("carl"), make_user("tess", trainer=True, customer=False)
    PayoutAccount.objects.create(user=tess, stripe_account_id="acct_tess", transfers_active=True)
    commission = post(customer)
    commissions.proposal_accept(customer=customer, proposal_id=propose(tess, commission).pk)
    commission.refresh_from_db()
    # Charged as localstripe shows above; the transfer is what this stand-in records.
    HeldPayment.objects.filter(pk=commission.held_payment_id).update(
        provider="stripe", payment_reference="pi_held", charge_reference="ch_held", transfer_group=commission.purpose)
    from billing.held import held_payment_mark_held

    held_payment_mark_held(purpose=commission.purpose, payment_reference="pi_held", amount_cents=40_000,
                           currency="usd", charge_reference="ch_held")
    version = version_on(tess, Commission.objects.get(pk=commission.pk).dataset)
    commissions.commission_deliver(trainer=tess, commission_id=commission.pk, model_version_id=version.pk)
    commissions.commission_accept(customer=customer, commission_id=commission.pk)
    for _ in range(2):  # a retried task asks Stripe again with the same idempotency key
        HeldPayment.objects.filter(pk=commission.held_payment_id).update(state="held")
        PayoutEntry.objects.all().delete()
        held = held_payment_release(held_id=commission.held_payment_id)
    transfers = [r for r in recording_stripe("/_recorded")["requests"] if r["path"] == "/v1/transfers"]
    assert {t["headers"]["idempotency-key"] for t in transfers} == {f"imprint-held-{commission.purpose}-transfer"}
    params = transfers[0]["params"]
    assert params == {"destination": "acct_tess", "amount": "32000", "currency": "usd",
                      "source_transaction": "ch_held", "transfer_group": commission.purpose}
    entry = PayoutEntry.objects.get(kind=PayoutEntry.Kind.COMMISSION)
    assert entry.via_connect and (entry.platform_fee_cents, entry.trainer_cents) == (8_000, 32_000)
    assert held.state == HeldPayment.State.RELEASED and held.transfer_reference.startswith("tr_")
