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


class Commission(models.Model):
    """A customer hires a trainer to fine-tune a model for them, paid on delivery.

    open (trainers propose) → awarded (a proposal accepted; the customer pays) → in_progress (the
    money is held by the platform; the chosen trainer trains on the customer's data) → delivered
    (the customer reviews within the review window) → completed (the trainer is paid, the customer
    holds a grant) or back to in_progress once for a revision, or disputed (a compliance case).
    Cancelled (by either side before delivery, or a missed deadline) refunds held money. Every
    transition is a conditional update on `state` (commissions.py)."""

    class State(models.TextChoices):
        OPEN = "open"
        AWARDED = "awarded"
        IN_PROGRESS = "in_progress"
        DELIVERED = "delivered"
        DISPUTED = "disputed"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="commissions")
    title = models.CharField(max_length=200)
    description = models.TextField()
    examples = models.JSONField(default=list, blank=True, help_text="Example texts of what the customer wants.")
    # The customer's own data, uploaded through training's validation and licence attestation.
    dataset_upload = models.ForeignKey("training.DatasetUpload", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="commissions")
    show_dataset_stats = models.BooleanField(default=False,
                                             help_text="Trainers may see the dataset's statistics and preview.")
    budget_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    # The licence wanted: the rights of licensing's terms document (validated at posting; the rights
    # chain is added from the delivered version's inputs at delivery).
    terms_raw = models.JSONField()
    exclusive = models.BooleanField(default=True)
    deadline = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    accepted_proposal = models.OneToOneField("marketplace.Proposal", null=True, blank=True,
                                             on_delete=models.PROTECT, related_name="+")
    held_payment = models.OneToOneField("billing.HeldPayment", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="commission")
    delivered_version = models.ForeignKey("training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="commissions")
    grant = models.ForeignKey("licensing.Grant", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="commissions")
    delivered_at = models.DateTimeField(null=True, blank=True)
    review_ends_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revisions_used = models.PositiveSmallIntegerField(default=0)
    revision_note = models.TextField(blank=True)
    dispute_reason = models.TextField(blank=True)
    cancel_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(revisions_used__lte=1), name="commission_one_revision"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def dataset(self):
        return self.dataset_upload.dataset if self.dataset_upload_id else None

    @property
    def purpose(self) -> str:
        """The held payment's purpose (billing keys its idempotency on it)."""
        return f"commission:{self.pk}"


class Proposal(models.Model):
    """A trainer's offer to do a commission: price, base model and method, plan and delivery date."""

    class State(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        DECLINED = "declined"  # another proposal was accepted, or the commission closed
        WITHDRAWN = "withdrawn"

    class Method(models.TextChoices):
        FULL = "full", "Full fine-tuning"
        LORA = "lora", "LoRA adapter"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    commission = models.ForeignKey(Commission, on_delete=models.CASCADE, related_name="proposals")
    trainer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proposals")
    price_cents = models.PositiveBigIntegerField()
    base_model = models.CharField(max_length=300)
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.FULL)
    steps = models.PositiveIntegerField(help_text="Planned training steps.")
    context_length = models.PositiveIntegerField()
    delivery_date = models.DateTimeField()
    message = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["price_cents", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["commission", "trainer"], name="one_proposal_per_trainer"),
            models.UniqueConstraint(fields=["commission"], condition=Q(state="accepted"),
                                    name="one_accepted_proposal_per_commission"),
        ]

    def __str__(self) -> str:
        return f"proposal {str(self.id)[:8]} ({self.state})"
