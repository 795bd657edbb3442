"""Inference domain: the usage ledger, the meter outbox, signed receipts and the signing keys."""

import uuid

from django.db import models

from core.models import AppendOnlyModel


class SigningKey(models.Model):
    """The public half of a receipt-signing key (Ed25519), published in the JWKS.

    Private keys never enter the database: they come from the environment in production
    (IMPRINT_SIGNING_KEYS) or from a file under var/ in the embedded default (see core/secrets.py). A key
    that leaves the keyring stays here as retired, so every receipt it ever signed still verifies.
    """

    class State(models.TextChoices):
        ACTIVE = "active"
        RETIRED = "retired"

    kid = models.CharField(max_length=64, primary_key=True)
    public_key = models.CharField(max_length=64, help_text="Raw 32-byte Ed25519 key, base64url.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"


class UsageEntry(AppendOnlyModel):
    """One append-only ledger row per request that generated text (also an interrupted stream,
    charged for the tokens sent). The grant's `used_tokens` is settled in the same transaction, so the
    ledger sums to the counter."""

    id = models.BigAutoField(primary_key=True)
    request_id = models.CharField(max_length=64, unique=True)
    grant = models.ForeignKey("licensing.Grant", on_delete=models.PROTECT, related_name="usage_entries")
    api_key = models.ForeignKey("licensing.ApiKey", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="usage_entries")
    model_digest = models.CharField(max_length=64, db_index=True)
    purpose = models.CharField(max_length=32)
    prompt_tokens = models.PositiveIntegerField()
    completion_tokens = models.PositiveIntegerField()
    total_tokens = models.PositiveIntegerField()
    samples = models.PositiveSmallIntegerField(default=1)
    interrupted = models.BooleanField(default=False, help_text="A stream cut short: charged for tokens sent.")
    idempotency_key = models.CharField(max_length=200, blank=True)
    response = models.JSONField(default=dict, help_text="The response body, replayed for an idempotent retry.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "usage entries"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "idempotency_key"],
                                    condition=~models.Q(idempotency_key=""), name="uniq_usage_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"usage {self.request_id} ({self.total_tokens} tokens)"

    @property
    def receipt(self):
        """The first output's receipt (one receipt per output; n > 1 has several)."""
        return self.receipts.order_by("index").first()


class Receipt(models.Model):
    """A signed provenance receipt for one output text: a compact JWS (EdDSA) plus index fields."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    usage_entry = models.ForeignKey(UsageEntry, on_delete=models.PROTECT, related_name="receipts")
    index = models.PositiveSmallIntegerField(default=0, help_text="Which of the request's outputs.")
    kid = models.CharField(max_length=64)
    jws = models.TextField()
    grant = models.ForeignKey("licensing.Grant", on_delete=models.PROTECT, related_name="receipts")
    model_digest = models.CharField(max_length=64)
    terms_sha256 = models.CharField(max_length=64)
    prompt_sha256 = models.CharField(max_length=64)
    output_sha256 = models.CharField(max_length=64, db_index=True)
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"receipt {self.id}"


class MeterOutbox(models.Model):
    """A Stripe Billing Meter event waiting to be sent. The unique identifier is also Stripe's event
    identifier, so a retried send can never count the same usage twice."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"  # gave up after the retry budget; the reconciliation command shows it

    identifier = models.CharField(max_length=100, unique=True)
    usage_entry = models.OneToOneField(UsageEntry, on_delete=models.PROTECT, related_name="meter_event")
    payload = models.JSONField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.identifier} ({self.state})"
