"""Billing: Stripe customers and Connect accounts, webhook events, meters, subscriptions, invoices
and the payouts ledger.

Money is integer cents with the currency beside it (ISO 4217, lower case as Stripe uses it).

What is billed is an order of the app above (`settings.BILLING_ORDER_MODEL`, like AUTH_USER_MODEL):
billing keeps its id as a foreign key, so the ledger keeps its integrity and its tables keep their
data, but never reads the order's fields; a subscription's lifecycle is keyed on the licensing
Grant it bills. The tables keep the names they had under the marketplace (Meta.db_table).
"""

from django.conf import settings
from django.db import models


class Provider(models.TextChoices):
    """Who takes the money: Stripe, or the embedded default's clearly labelled test-mode provider."""

    STRIPE = "stripe"
    LOCAL_TEST = "local_test"


class BillingCustomer(models.Model):
    """The Stripe Customer of a user (one per user)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=100, unique=True)
    default_payment_method = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "marketplace_billingcustomer"


class PayoutAccount(models.Model):
    """A trainer's Stripe Connect account: once it can receive transfers, charges go to it as
    destination with an application fee; until then the payouts ledger shows what is owed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payout_account")
    stripe_account_id = models.CharField(max_length=100, unique=True)
    # Set from Stripe's account.updated events: the "transfers" capability is active.
    transfers_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "marketplace_payoutaccount"


class StripeEvent(models.Model):
    """Every webhook event we accepted, once: the unique event id makes redelivery harmless."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    payload = models.JSONField()
    outcome = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "Stripe event", "Stripe events"
        db_table = "marketplace_stripeevent"
        ordering = ["-received_at"]


class PayoutEntry(models.Model):
    """The split of one charge: the platform fee (rounded down to the cent) and the trainer's
    share (the rest). With Connect the money moved at charge time; otherwise this is what is owed."""

    class Kind(models.TextChoices):
        SALE = "sale"
        METERED = "metered"
        COMMISSION = "commission"  # held money released to the trainer who delivered
        REFUND = "refund"  # reverses a sale: its amounts count negatively in the totals

    # A sale or metered invoice names its order; a commission's release names its held payment.
    order = models.ForeignKey(settings.BILLING_ORDER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="payouts")
    held_payment = models.ForeignKey("billing.HeldPayment", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="payouts")
    trainer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SALE)
    reference = models.CharField(max_length=100, help_text="Stripe object the money came from.")
    gross_cents = models.PositiveBigIntegerField()
    platform_fee_cents = models.PositiveBigIntegerField()
    trainer_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    via_connect = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "payout entries"
        db_table = "marketplace_payoutentry"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "reference"], name="uniq_payout_per_charge"),
        ]


class StripeMeter(models.Model):
    """The Stripe Billing Meter that metered token usage is reported to (one per event name)."""

    event_name = models.CharField(max_length=100, unique=True)
    stripe_meter_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name, verbose_name_plural = "Stripe meter", "Stripe meters"
        db_table = "marketplace_stripemeter"


class Subscription(models.Model):
    """The monthly post-paid billing of one metered grant: a Stripe Subscription to the offer's
    metered Price (or, in local test mode, the same lifecycle without Stripe).

    The row is written in the transaction that activates the grant, so a grant is never metered
    without one; creating it at Stripe happens after commit and is retried until it succeeds (the
    customer's licences page shows the error meanwhile)."""

    class State(models.TextChoices):
        PENDING = "pending"  # not created at Stripe yet: the task retries it
        ACTIVE = "active"
        PAST_DUE = "past_due"  # an invoice failed: the grant is suspended once the grace period ends
        SUSPENDED = "suspended"  # the grace period ended unpaid: the grant waits for a paid invoice
        ENDED = "ended"  # the subscription was cancelled: the grant ended with it

    order = models.OneToOneField(settings.BILLING_ORDER_MODEL, on_delete=models.PROTECT, related_name="subscription")
    grant = models.OneToOneField("licensing.Grant", on_delete=models.PROTECT, related_name="subscription")
    # Who is billed and on which meter: Stripe sums a meter's events per customer and bills the sum
    # on every live subscription priced on it, so there is at most one such subscription (the
    # constraint below). Null and blank on rows written before they were recorded.
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    meter_event_name = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    stripe_subscription_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # Stripe Connect: the trainer's account the invoices are paid to (with the platform's fee).
    connect_account = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "marketplace_subscription"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "meter_event_name"],
                condition=~models.Q(state="ended") & ~models.Q(meter_event_name=""),
                name="one_live_subscription_per_customer_meter",
            ),
        ]

    def __str__(self) -> str:
        return f"subscription {self.stripe_subscription_id or self.pk} ({self.state})"


class Invoice(models.Model):
    """One month of a metered subscription: the tokens billed, the amount and whether it was paid.
    Written from Stripe's invoice webhooks (or by the local test mode's month close)."""

    class State(models.TextChoices):
        OPEN = "open"
        PAID = "paid"
        FAILED = "failed"  # the last payment attempt failed; Stripe (or the customer) retries
        REFUNDED = "refunded"
        DISPUTED = "disputed"

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    reference = models.CharField(max_length=100, unique=True, help_text="Stripe invoice id (or test-mode id).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    tokens = models.PositiveBigIntegerField(help_text="Tokens billed (the meter's sum for the period).")
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    # The PaymentIntent that paid it: a refund or dispute of that charge finds the invoice by it.
    payment_reference = models.CharField(max_length=100, blank=True, db_index=True)
    hosted_url = models.URLField(max_length=500, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "marketplace_invoice"
        ordering = ["-period_start"]

    def __str__(self) -> str:
        return f"invoice {self.reference} ({self.state})"


class HeldPayment(models.Model):
    """Money the platform holds for a piece of work not yet accepted (a commission): charged to the
    platform's own account (Stripe "separate charges and transfers"), a liability of the platform
    until it is released to the payee (a Connect transfer tied to the charge, and a payout entry
    with the platform fee) or refunded to the payer. A card authorisation would lapse after about
    7 days, so the money is captured at once and held here instead.

    Each transition is a conditional update on `state`, so a replayed webhook or a retried task
    moves it once. `purpose` names what the money is for in the app above (opaque here)."""

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for the payer's card
        HELD = "held"  # charged: the platform owes it to the payee or the payer
        RELEASED = "released"  # transferred (or owed, without Connect) to the payee
        REFUNDED = "refunded"  # returned to the payer
        FAILED = "failed"  # the charge failed; nothing held

    id = models.BigAutoField(primary_key=True)
    purpose = models.CharField(max_length=100, unique=True, help_text="What the money is for, e.g. commission:<id>.")
    payer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="held_payments_made")
    payee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="held_payments_owed")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    setup_reference = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # The PaymentIntent (or the local test mode's reference) and its charge, which the transfer
    # names as source_transaction so the payee is paid from this very money.
    payment_reference = models.CharField(max_length=100, null=True, blank=True, unique=True)
    charge_reference = models.CharField(max_length=100, blank=True)
    transfer_group = models.CharField(max_length=100, blank=True)
    transfer_reference = models.CharField(max_length=100, blank=True)
    refund_reference = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    held_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"held payment {self.purpose} ({self.state})"
