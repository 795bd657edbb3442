"""Marketplace domain: listings, offers and the orders that buy them (the money itself is billing's:
its customers, subscriptions, invoices and payouts ledger live in the billing app).

Money is integer cents with the currency beside it (ISO 4217, lower case as Stripe uses it).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models import Provider as PaymentProvider


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

    Provider = PaymentProvider

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
