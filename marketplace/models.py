"""Marketplace domain: listings, offers, orders, Stripe events and the payouts ledger.

Money is integer cents with the currency beside it (ISO 4217, lower case as Stripe uses it).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Listing(models.Model):
    """A trainer's model version on sale: title, description, editable card, sample outputs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    trainer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="listings")
    model_version = models.OneToOneField(
        "training.ModelVersion", on_delete=models.PROTECT, related_name="listing"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    card = models.TextField(help_text="Model card (Markdown), generated at publish, editable.")
    samples = models.JSONField(default=list, help_text="Sample outputs shown on the model page.")
    published = models.BooleanField(default=False, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-created_at"]

    def __str__(self) -> str:
        return self.title


class Offer(models.Model):
    """A licence offer: a terms version and its price. Once sold, an offer is never edited: a new
    version supersedes it (and existing grants keep the terms they bought)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="offers")
    name = models.CharField(max_length=100)
    terms = models.ForeignKey("licensing.LicenceTerms", on_delete=models.PROTECT, related_name="offers")
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    fee_cents = models.PositiveBigIntegerField(default=0, help_text="One-time licence fee.")
    currency = models.CharField(max_length=3, default="usd")
    # Metered use is post-paid through Stripe Billing Meters; the unit price is per 1,000 tokens.
    metered_cents_per_1k = models.PositiveIntegerField(null=True, blank=True)
    stripe_price_id = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["fee_cents", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(fee_cents__gt=0) | Q(metered_cents_per_1k__gt=0),
                name="offer_has_a_price",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_metered(self) -> bool:
        return bool(self.metered_cents_per_1k)


class BillingCustomer(models.Model):
    """The Stripe Customer of a user (one per user)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=100, unique=True)
    default_payment_method = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class PayoutAccount(models.Model):
    """A trainer's Stripe Connect account: once it can receive transfers, charges go to it as
    destination with an application fee; until then the payouts ledger shows what is owed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payout_account")
    stripe_account_id = models.CharField(max_length=100, unique=True)
    # Set from Stripe's account.updated events: the "transfers" capability is active.
    transfers_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class Order(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"  # intent created, waiting for the customer's card
        PAID = "paid"
        FAILED = "failed"
        REFUNDED = "refunded"
        DISPUTED = "disputed"
        EXPIRED = "expired"  # not paid within ORDER_EXPIRY_MINUTES
        # Paid at Stripe after it stopped being payable (offer withdrawn, expired...): no grant;
        # staff refund the payment.
        REFUND_DUE = "refund_due"

    class Provider(models.TextChoices):
        STRIPE = "stripe"
        LOCAL_TEST = "local_test"  # the embedded default's clearly labelled test-mode provider

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="orders")
    terms = models.ForeignKey("licensing.LicenceTerms", on_delete=models.PROTECT, related_name="orders")
    acceptance = models.ForeignKey("licensing.Acceptance", on_delete=models.PROTECT, related_name="orders")
    # Set when the payment succeeds: a declined or abandoned order leaves no grant at all.
    grant = models.OneToOneField(
        "licensing.Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="order"
    )
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    stripe_setup_intent_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"order {str(self.id)[:8]} ({self.state})"


class StripeEvent(models.Model):
    """Every webhook event we accepted, once: the unique event id makes redelivery harmless."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    payload = models.JSONField()
    outcome = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]


class PayoutEntry(models.Model):
    """The split of one charge: the platform fee (rounded down to the cent) and the trainer's
    share (the rest). With Connect the money moved at charge time; otherwise this is what is owed."""

    class Kind(models.TextChoices):
        SALE = "sale"
        METERED = "metered"
        REFUND = "refund"  # reverses a sale: its amounts count negatively in the totals

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payouts")
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
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "reference"], name="uniq_payout_per_charge"),
        ]


class StripeMeter(models.Model):
    """The Stripe Billing Meter that metered token usage is reported to (one per event name)."""

    event_name = models.CharField(max_length=100, unique=True)
    stripe_meter_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


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

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="subscription")
    grant = models.OneToOneField("licensing.Grant", on_delete=models.PROTECT, related_name="subscription")
    provider = models.CharField(max_length=16, choices=Order.Provider.choices)
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
        ordering = ["-created_at"]

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
        ordering = ["-period_start"]

    def __str__(self) -> str:
        return f"invoice {self.reference} ({self.state})"
