"""Each sale records the platform fee (rounded down to the cent) and the trainer's share."""

import pytest

from marketplace.services import payout_split


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
