"""With no Stripe keys, purchases run end to end through the labelled local test-mode provider."""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from billing.models import PayoutEntry
from licensing.models import Grant
from marketplace.models import Order

pytestmark = pytest.mark.django_db


def _buy(client, offer):
    return client.post(reverse("marketplace:offer_buy", args=[offer.pk]),
                       {"accept": "1", "accepted_terms": offer.terms_id})


def test_the_embedded_default_sells_through_a_clearly_labelled_test_mode(client, customer, offer,
                                                                         payments_test_mode):
    client.force_login(customer)
    response = _buy(client, offer)
    order = Order.objects.get(customer=customer)
    assert response.status_code == 302 and response.url == reverse("marketplace:order_pay", args=[order.pk])
    page = client.get(response.url).content.decode()
    assert "Local test mode: no real payment" in page and "No card is charged" in page
    assert order.provider == "local_test" and order.grant is None  # not silently paid

    paid = client.post(reverse("marketplace:order_pay_test_mode", args=[order.pk]),
                       {"card_number": "4242 4242 4242 4242"}, follow=True)
    order.refresh_from_db()
    assert order.state == "paid" and order.grant.state == Grant.State.ACTIVE
    assert "local test mode" in paid.content.decode()
    assert order.grant.terms_id == offer.terms_id and order.acceptance.terms_id == offer.terms_id
    assert PayoutEntry.objects.get(order=order).gross_cents == 2500
    assert AuditEntry.objects.filter(event="grant.activated", subject_id=str(order.grant.pk)).exists()


def test_a_declined_test_card_leaves_a_clear_message_and_no_grant(client, customer, offer, payments_test_mode):
    client.force_login(customer)
    _buy(client, offer)
    order = Order.objects.get(customer=customer)
    response = client.post(reverse("marketplace:order_pay_test_mode", args=[order.pk]),
                           {"card_number": "4000 0000 0000 0002"}, follow=True)
    assert "Your card was declined." in response.content.decode()
    order.refresh_from_db()
    assert order.state == "failed" and order.failure_message == "Your card was declined."
    assert not Grant.objects.filter(customer=customer).exists()


def test_buying_requires_accepting_the_exact_terms(client, customer, offer, payments_test_mode):
    client.force_login(customer)
    client.post(reverse("marketplace:offer_buy", args=[offer.pk]), {"accepted_terms": offer.terms_id})
    client.post(reverse("marketplace:offer_buy", args=[offer.pk]), {"accept": "1", "accepted_terms": "0" * 64})
    assert not Order.objects.exists()
