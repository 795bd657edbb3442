"""What billing announces about money, for the apps above it (they connect receivers in their
AppConfig.ready(); billing never imports them).

Webhook facts are sent inside the transaction that records the Stripe event, so a receiver's
writes commit or roll back with it. A receiver that recognises the payment returns a short outcome
(recorded on the Stripe event); one that does not returns None.
"""

from django.dispatch import Signal

# A charge succeeded: `payment` is a billing.webhooks.Payment.
payment_succeeded = Signal()
# A charge failed: `payment` (its `failure_message` says why).
payment_failed = Signal()
# A card was saved for later off-session charges: `setup` is a billing.webhooks.CardSetup.
card_saved = Signal()
# A charge was refunded in full or disputed: `reversal` is a billing.webhooks.Reversal. Sent for
# every charge; receivers return None for charges that are not theirs (billing then looks at its
# metered invoices).
charge_reversed = Signal()
# A metered subscription exists at Stripe now: `subscription` (billing.models.Subscription).
subscription_started = Signal()
# A metered invoice was paid / its payment failed: `invoice` (billing.models.Invoice).
invoice_paid = Signal()
invoice_payment_failed = Signal()
# A metered invoice's charge was refunded or disputed: `invoice`, `state` ("refunded" or
# "disputed") and `reason`; the receiver that owns the billed order reverses it.
invoice_reversed = Signal()
# Held money (billing.held): `held` (billing.models.HeldPayment) was charged and is held now, its
# charge failed, it was released to the payee, or refunded to the payer (`reason`). Sent inside the
# transaction that records the change; the owner of `held.purpose` follows.
funds_held = Signal()
funds_failed = Signal()
funds_released = Signal()
funds_refunded = Signal()
# Staff decided a dispute over held money (compliance's case about the delivery it paid for):
# `subject_id` (the disputed thing's id as the audit log recorded it), `grant_id` (the delivered
# grant the case is about), `outcome` ("release" to the payee or "refund" to the payer), `staff`
# and `reason`. Sent inside the transaction that records the decision; the owner of the subject
# moves its work and money and returns its new state, or None when the subject is not its own.
# Compliance and the marketplace are siblings: the decision travels through this layer below both.
held_dispute_decided = Signal()


def first_outcome(signal: Signal, **kwargs) -> str | None:
    """Send `signal` and return the first outcome a receiver gave (None: nobody recognised it)."""
    for _receiver, outcome in signal.send(sender=None, **kwargs):
        if outcome is not None:
            return outcome
    return None
