"""Contract tests for the Stripe calls localstripe does not emulate: the real SDK talks to a
recording server process on loopback, and each request's method, path and parameters are checked
against Stripe's documented API (https://docs.stripe.com/api)."""


import pytest
from django.urls import reverse

from billing import gateway
from billing.gateway import meter_event_create as meter_event_report
from billing.models import BillingCustomer, PayoutAccount, StripeMeter
from billing.subscriptions import subscription_cancel_remote, subscription_create_remote
from marketplace.checkout import order_charge, purchase_start
from marketplace.models import Offer
from marketplace.pricing import billing_meter_ensure, meter_event_name, offer_price_ensure
from tests import factories
from tests.support.stripe_stubs import stripe_stub

pytestmark = pytest.mark.django_db


@pytest.fixture
def recording_stripe(settings):
    server, get = stripe_stub(settings, "recording", secret_key="sk_test_contract")

    def recorded() -> list[dict]:
        return [r for r in get("/_recorded")["requests"] if r["path"] != "/_recorded"]

    yield recorded
    server.stop()


def _only(requests, method, path):
    matching = [r for r in requests if r["method"] == method and r["path"] == path]
    assert len(matching) == 1, f"expected one {method} {path}, got {[(r['method'], r['path']) for r in requests]}"
    return matching[0]


def test_connect_destination_charges_carry_the_application_fee_and_destination(recording_stripe, trainer, customer,
                                                                               settings):
    settings.PLATFORM_FEE_BPS = 1250  # 12.5 %: 2,999 cents → a 374.875 fee, rounded down to 374
    listing = factories.listing(trainer)
    offer = factories.offer(listing, fee_cents=2999)
    PayoutAccount.objects.create(user=trainer, stripe_account_id="acct_trainer123", transfers_active=True)
    checkout = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                              ip_address=None)
    assert order_charge(order_id=checkout.order.pk, customer=customer).status == "processing"

    requests = recording_stripe()
    create = _only(requests, "POST", "/v1/payment_intents")
    assert create["params"]["amount"] == "2999" and create["params"]["currency"] == "usd"
    assert create["params"]["payment_method"] == "pm_recorded" and create["params"]["confirm"] == "true"
    assert create["params"]["application_fee_amount"] == "374"
    assert create["params"]["transfer_data[destination]"] == "acct_trainer123"
    assert create["params"]["customer"].startswith("cus_")
    assert create["headers"]["authorization"] == "Bearer sk_test_contract"
    assert create["headers"]["idempotency-key"].startswith("imprint-order-")
    assert _only(requests, "POST", "/v1/customers")["params"]["email"] == customer.email


def test_the_card_is_saved_for_off_session_charges_and_charged_without_connect(recording_stripe, trainer,
                                                                               customer):
    offer = factories.offer(factories.listing(trainer), fee_cents=1000, metered=20)
    checkout = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                              ip_address=None)
    assert checkout.intent_kind == "setup"
    order_charge(order_id=checkout.order.pk, customer=customer)
    requests = recording_stripe()
    setup = _only(requests, "POST", "/v1/setup_intents")["params"]
    assert setup["usage"] == "off_session" and setup["metadata[imprint_order]"] == str(checkout.order.pk)
    assert setup["customer"] == BillingCustomer.objects.get(user=customer).stripe_customer_id
    _only(requests, "GET", f"/v1/setup_intents/{checkout.order.stripe_setup_intent_id}")
    create = _only(requests, "POST", "/v1/payment_intents")["params"]
    assert "application_fee_amount" not in create  # no Connect account: the ledger shows what is owed
    assert BillingCustomer.objects.get(user=customer).default_payment_method == "pm_recorded"


def test_a_metered_offer_without_a_fee_is_active_once_its_card_is_saved(recording_stripe, trainer, customer):
    offer = factories.offer(factories.listing(trainer), fee_cents=0, metered=20)
    checkout = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                              ip_address=None)
    charge = order_charge(order_id=checkout.order.pk, customer=customer)
    assert charge.status == "card_saved" and charge.order.grant.state == "active"
    assert not [r for r in recording_stripe() if r["path"] == "/v1/payment_intents"]


def test_each_metered_offer_gets_its_own_billing_meter_once_with_the_documented_parameters(recording_stripe,
                                                                                           trainer):
    listing = factories.listing(trainer, title="Sea shanties")
    offer, other = factories.offer(listing, metered=20), factories.offer(listing, metered=30, name="Other")
    first = billing_meter_ensure(offer)
    assert billing_meter_ensure(offer) == first == StripeMeter.objects.get(event_name=meter_event_name(offer)).stripe_meter_id
    assert billing_meter_ensure(other) != first  # one meter per offer: no usage is billed on two prices
    meters = [r for r in recording_stripe() if r["path"] == "/v1/billing/meters"]
    assert len(meters) == 2 and meters[0]["params"] == {
        "display_name": "Imprint tokens: Sea shanties (Standard)", "event_name": meter_event_name(offer),
        "default_aggregation[formula]": "sum",
        "customer_mapping[event_payload_key]": "stripe_customer_id", "customer_mapping[type]": "by_id",
        "value_settings[event_payload_key]": "value",
    }
    assert meters[0]["headers"]["idempotency-key"] == f"imprint-meter-{meter_event_name(offer)}"


def _paid_metered_order(customer, offer, *, connect: str = ""):
    from licensing.services import acceptance_record
    from billing.models import Subscription
    from marketplace.models import Order

    BillingCustomer.objects.create(user=customer, stripe_customer_id="cus_known", default_payment_method="pm_saved")
    order = Order.objects.create(
        customer=customer, offer=offer, terms=offer.terms, provider="stripe", state="paid",
        acceptance=acceptance_record(user=customer, terms=offer.terms, ip_address=None),
        grant=factories.grant(customer, offer), amount_cents=1000, currency="usd", stripe_customer_id="cus_known",
    )
    return order, Subscription.objects.create(order=order, grant=order.grant, provider="stripe",
                                              connect_account=connect)


def test_metered_prices_and_subscriptions_follow_the_documented_api(recording_stripe, trainer, customer):
    offer = factories.offer(factories.listing(trainer), fee_cents=1000, metered=25)
    order, sub = _paid_metered_order(customer, offer)
    sub = subscription_create_remote(subscription_id=sub.pk)
    assert subscription_create_remote(subscription_id=sub.pk).stripe_subscription_id == sub.stripe_subscription_id
    # The price is created once per offer and reused.
    assert offer_price_ensure(Offer.objects.get(pk=offer.pk)) == Offer.objects.get(pk=offer.pk).stripe_price_id

    requests = recording_stripe()
    price = _only(requests, "POST", "/v1/prices")["params"]
    assert price["currency"] == "usd"
    assert price["unit_amount_decimal"] == "0.025"  # 25 cents per 1,000 tokens, per token, exact
    assert price["recurring[usage_type]"] == "metered" and price["recurring[interval]"] == "month"
    assert price["recurring[meter]"].startswith("mtr_")
    assert price["product_data[name]"].endswith("(tokens)")
    create = _only(requests, "POST", "/v1/subscriptions")
    params = create["params"]
    assert params["customer"] == "cus_known"
    assert params["items[0][price]"] == Offer.objects.get(pk=offer.pk).stripe_price_id
    assert params["default_payment_method"] == "pm_saved"
    assert params["metadata[imprint_order]"] == str(order.pk)
    assert params["metadata[imprint_subscription]"] == str(sub.pk)
    assert "transfer_data[destination]" not in params and "application_fee_percent" not in params
    assert create["headers"]["idempotency-key"] == f"imprint-subscription-{order.pk}"
    assert sub.state == "active" and sub.started_at is not None
    order.refresh_from_db()
    assert order.stripe_subscription_id == sub.stripe_subscription_id


def test_connect_subscriptions_pay_the_trainer_less_the_platform_fee_percent(recording_stripe, trainer, customer,
                                                                            settings):
    settings.PLATFORM_FEE_BPS = 1250
    offer = factories.offer(factories.listing(trainer), fee_cents=0, metered=25)
    _, sub = _paid_metered_order(customer, offer, connect="acct_trainer42")
    subscription_create_remote(subscription_id=sub.pk)
    params = _only(recording_stripe(), "POST", "/v1/subscriptions")["params"]
    assert params["application_fee_percent"] == "12.5"
    assert params["transfer_data[destination]"] == "acct_trainer42"


def test_a_refunded_grant_s_subscription_is_cancelled_at_stripe(recording_stripe, trainer, customer):
    offer = factories.offer(factories.listing(trainer), fee_cents=0, metered=25)
    _, sub = _paid_metered_order(customer, offer)
    sub = subscription_create_remote(subscription_id=sub.pk)
    subscription_cancel_remote(subscription_id=sub.pk)
    _only(recording_stripe(), "DELETE", f"/v1/subscriptions/{sub.stripe_subscription_id}")


def test_meter_events_report_tokens_with_a_unique_identifier(recording_stripe):
    meter_event_report(event_name="imprint_tokens_abc", stripe_customer_id="cus_abc", tokens=1234,
                       identifier="usage-42", timestamp=1_800_000_000)
    event = _only(recording_stripe(), "POST", "/v1/billing/meter_events")
    assert event["params"] == {"event_name": "imprint_tokens_abc", "payload[stripe_customer_id]": "cus_abc",
                               "payload[value]": "1234", "identifier": "usage-42", "timestamp": "1800000000"}


def test_connect_onboarding_creates_an_express_account_once_and_an_onboarding_link(recording_stripe, client, trainer):
    client.force_login(trainer)
    response = client.post(reverse("marketplace:payout_account_connect"))
    assert response.status_code == 302 and response.url == "https://connect.example/onboarding/recorded"
    client.post(reverse("marketplace:payout_account_connect"))  # again: the same account, a new link
    requests = recording_stripe()
    account = _only(requests, "POST", "/v1/accounts")["params"]
    assert account["type"] == "express" and account["email"] == trainer.email
    assert account["capabilities[transfers][requested]"] == "true"
    links = [r["params"] for r in requests if r["path"] == "/v1/account_links"]
    assert len(links) == 2 and links[0]["type"] == "account_onboarding"
    assert links[0]["account"] == PayoutAccount.objects.get(user=trainer).stripe_account_id
    assert links[0]["return_url"].endswith(reverse("marketplace:trainer_dashboard"))
    # Not ready yet: charges are not routed to it until Stripe says transfers are active.
    assert not PayoutAccount.objects.get(user=trainer).transfers_active


def test_an_account_that_cannot_receive_transfers_gets_no_destination_charges(recording_stripe, trainer, customer):
    PayoutAccount.objects.create(user=trainer, stripe_account_id="acct_pending")
    offer = factories.offer(factories.listing(trainer), fee_cents=2000)
    checkout = purchase_start(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                              ip_address=None)
    order_charge(order_id=checkout.order.pk, customer=customer)
    create = _only(recording_stripe(), "POST", "/v1/payment_intents")["params"]
    assert "transfer_data[destination]" not in create and "application_fee_amount" not in create


def test_refunds_and_transfers_name_the_payment_the_account_and_an_idempotency_key(recording_stripe):
    # What a held payment needs: the trainer's share moved on delivery, the charge refunded on cancel.
    assert gateway.transfer_create(account="acct_t", amount_cents=2625, currency="usd", key="imprint-release-1",
                                   source_transaction="ch_1").startswith("tr_")
    assert gateway.refund_create(payment_reference="pi_1", key="imprint-refund-1").startswith("re_")
    requests = recording_stripe()
    transfer = _only(requests, "POST", "/v1/transfers")
    assert transfer["params"] == {"destination": "acct_t", "amount": "2625", "currency": "usd",
                                  "source_transaction": "ch_1"}
    assert transfer["headers"]["idempotency-key"] == "imprint-release-1"
    refund = _only(requests, "POST", "/v1/refunds")
    assert refund["params"] == {"payment_intent": "pi_1"} and refund["headers"]["idempotency-key"] == "imprint-refund-1"
