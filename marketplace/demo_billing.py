"""The demo's metered month: the demo customer also holds a metered licence, has generated a little
text under it, and its first month is closed (invoice paid), so the statements show real figures
on first start. `manage.py billing_test_mode close-month --fail` then shows a failed payment."""

from __future__ import annotations

from billing.local import local_period_close
from billing.metering import meter_outbox_deliver
from billing.models import Subscription
from inference.models import MeterOutbox
from inference.services import GenerationInput, generation_create
from licensing.services import apikey_create

from .models import Listing, Order
from .services import TEST_CARD_SUCCEEDS, order_create, order_pay_local_test

PROMPTS = ("At dawn, the Marigold", "Towards dusk, the little Ada")


def demo_metered_month(*, customer, listing: Listing, write=print) -> None:
    """Buy the listing's metered offer for `customer` in local test mode, generate under it and
    close the month. Idempotent: once the month is invoiced, nothing more happens; an earlier run
    that stopped half-way is finished."""
    sub = Subscription.objects.filter(order__customer=customer, order__offer__listing=listing).first()
    if sub is not None and sub.invoices.exists():
        return
    if sub is None:
        offer = listing.offers.filter(active=True, metered_cents_per_1k__isnull=False).order_by("fee_cents").first()
        if offer is None:
            return
        order = order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                             ip_address="127.0.0.1", provider=Order.Provider.LOCAL_TEST)
        order = order_pay_local_test(order_id=order.pk, customer=customer, card_number=TEST_CARD_SUCCEEDS)
        sub = order.subscription
    key, _ = apikey_create(owner=customer, name="demo metered key", grants=[sub.grant],
                           default_purpose="commercial")
    for prompt in PROMPTS:
        generation_create(api_key=key, params=GenerationInput(model=str(listing.model_version_id), prompt=prompt,
                                                              max_new_tokens=40, seed=7, purpose="commercial"))
    for row in MeterOutbox.objects.filter(usage_entry__grant=sub.grant, state=MeterOutbox.State.PENDING):
        meter_outbox_deliver(outbox_id=row.pk)
    invoice = local_period_close(subscription_id=sub.pk)
    write(f"  demo metered licence: {invoice.tokens} tokens invoiced ({invoice.reference}, {invoice.state})")
