"""Each sale records the platform fee (rounded down to the cent) and the trainer's share."""

import pytest

from billing.fees import payout_split


@pytest.mark.parametrize(("bps", "gross", "fee", "share"), [
    (2000, 2500, 500, 2000),
    (2000, 999, 199, 800),   # 199.8 → 199: rounding favours the trainer
    (1250, 2999, 374, 2625),
    (0, 100, 0, 100),
    (10_000, 100, 100, 0),
])
def test_the_platform_fee_is_rounded_down_and_the_parts_add_up(settings, bps, gross, fee, share):
    settings.PLATFORM_FEE_BPS = bps
    assert payout_split(gross) == (fee, share)
    assert sum(payout_split(gross)) == gross


@pytest.mark.django_db
def test_a_refund_reverses_the_sale_in_the_payouts_ledger(trainer, customer, payments_test_mode):
    from billing.models import PayoutEntry
    from marketplace.selectors import trainer_totals
    from marketplace.services import (
        order_create,
        order_mark_reversed,
        order_pay_local_test,
    )
    from tests import factories

    offer = factories.offer(factories.listing(trainer), fee_cents=2500)
    order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                         ip_address=None, provider="local_test")
    order_pay_local_test(order_id=order.pk, customer=customer, card_number="4242424242424242")
    assert trainer_totals(trainer)["usd"]["owed"] == 2000
    order_mark_reversed(order_id=order.pk, state="refunded", reason="customer asked")
    order_mark_reversed(order_id=order.pk, state="refunded", reason="replayed notice")
    totals = trainer_totals(trainer)["usd"]
    assert (totals["sales"], totals["refunds"], totals["gross"], totals["owed"]) == (1, 1, 0, 0)
    assert PayoutEntry.objects.filter(order=order).count() == 2
