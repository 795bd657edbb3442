"""Inference domain: the usage ledger, the meter outbox, signed receipts and the signing keys."""

import uuid

from django.db import models
from django.utils import timezone

from core.models import AppendOnlyModel


class SigningKey(models.Model):
    """The public half of a receipt-signing key (Ed25519), published in the JWKS.

    Private keys never enter the database: they come from the environment in production
    (IMPRINT_SIGNING_KEYS) or from a file under var/ in the embedded default (see core/secrets.py). A key
    that leaves the keyring stays here as retired, so every receipt it ever signed still verifies
    (but none dated after its retirement). A revoked key (compromised) is distrusted for good: it
    leaves the JWKS, every receipt it signed fails, and it never signs again, whatever the keyring says.
    """

    class State(models.TextChoices):
        ACTIVE = "active"
        RETIRED = "retired"
        REVOKED = "revoked"

    kid = models.CharField(max_length=64, primary_key=True)
    public_key = models.CharField(max_length=64, help_text="Raw 32-byte Ed25519 key, base64url.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"


class UsageEntry(AppendOnlyModel):
    """One append-only ledger row per request that generated text (also an interrupted stream,
    charged for the tokens sent). The grant's `used_tokens` is settled in the same transaction, so the
    ledger sums to the counter (less `over_quota_tokens`)."""

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
    # Tokens a client already received after the request's reservation was swept and the quota spent
    # meanwhile: they are in total_tokens (what metering bills) but not in the grant's used_tokens,
    # which the check constraint keeps within the quota. So sum(total - over_quota) == used_tokens.
    over_quota_tokens = models.PositiveIntegerField(default=0)
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


class IdempotencyKey(models.Model):
    """A claim on one (API key, Idempotency-Key): taken by INSERT before a request runs, so of
    concurrent duplicates exactly one generates. Pending while it runs, done with its ledger row
    (replayed to every later duplicate), failed when it was refused or failed before delivering
    anything (the key is free again)."""

    class State(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    api_key = models.ForeignKey("licensing.ApiKey", on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request's canonical parameters.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    request_id = models.CharField(max_length=64, help_text="The request now holding (or that finished) the key.")
    usage_entry = models.OneToOneField(UsageEntry, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="idempotency_claim")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now, help_text="Last claimed or kept alive.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="uniq_idempotency_claim")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


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
        verbose_name_plural = "meter outbox rows"
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.identifier} ({self.state})"


class MeasurementState(models.TextChoices):
    """A measurement run by an inference worker (watermark power, precision checks)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class WatermarkPower(models.Model):
    """How well one model version's text is attributed under one watermark family, measured on
    samples the version generated (not on a model with random weights, whose text is far more
    random than a fine-tune's): per sample and text length, the scored and green token counts of
    its own key, from which recall at any number of candidate grants follows; and the quality cost,
    the perplexity under the model itself of watermarked against plain samples."""

    State = MeasurementState

    id = models.BigAutoField(primary_key=True)
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE,
                                      related_name="watermark_power")
    scheme = models.CharField(max_length=32)
    params = models.JSONField(help_text="gamma, delta, entropy_threshold, context_width of the family measured.")
    params_key = models.CharField(max_length=200, help_text="The scheme and parameters as canonical JSON.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.RUNNING)
    samples = models.PositiveIntegerField(default=0)
    # {"50": [[scored, statistic], ...], ...}: one pair per watermarked sample at that many tokens
    # (the statistic: green tokens for a green-list scheme, the summed score for `gumbel`).
    counts = models.JSONField(default=dict)
    # {"50": [[scored, green], ...], ...}: the same for plain samples scored with the same keys.
    clean_counts = models.JSONField(default=dict)
    # {"200": [[scored, statistic], ...]}: watermarked samples at temperature 0.7.
    cool_counts = models.JSONField(default=dict)
    chosen = models.BooleanField(default=False, help_text="The family new grants on the version get.")
    reference_candidates = models.PositiveIntegerField(default=1000,
                                                       help_text="Grants the card's recall is computed against.")
    recall = models.JSONField(default=dict, help_text='{"50": 0.9, ...} at reference_candidates.')
    perplexity_plain = models.FloatField(null=True, blank=True)
    perplexity_watermarked = models.FloatField(null=True, blank=True)
    mean_entropy = models.FloatField(null=True, blank=True, help_text="Nats per token while sampling plainly.")
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    measured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "watermark power measurements"
        ordering = ["-measured_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "params_key"], name="uniq_power_family")]

    def __str__(self) -> str:
        return f"power of {self.model_version_id} ({self.params_key}, {self.state})"

    @property
    def perplexity_cost(self) -> float | None:
        """Relative perplexity increase of watermarked over plain samples (0.05 = 5 % higher)."""
        if not self.perplexity_plain or self.perplexity_watermarked is None:
            return None
        return self.perplexity_watermarked / self.perplexity_plain - 1


class PrecisionCheck(models.Model):
    """Whether a model version may be served at a precision below fp32: the perplexity of the
    engine's own forward at that precision against fp32, on the validation windows of the run that
    trained the version (training.selectors.version_validation_windows), so the cost is measured
    on the text the model was made for. `accepted` and `bound` record the verdict when measured;
    what is served follows the deployment's current bound (inference.precision)."""

    State = MeasurementState

    id = models.BigAutoField(primary_key=True)
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE,
                                      related_name="precision_checks")
    precision = models.CharField(max_length=8, help_text="The precision checked (never fp32: the reference).")
    state = models.CharField(max_length=8, choices=State.choices, default=State.RUNNING)
    device = models.CharField(max_length=32, blank=True, help_text="Where it was measured (cpu, cuda).")
    windows = models.PositiveIntegerField(default=0, help_text="Validation windows measured.")
    window_tokens = models.PositiveIntegerField(default=0, help_text="Tokens per window (the run's context).")
    perplexity_fp32 = models.FloatField(null=True, blank=True)
    perplexity = models.FloatField(null=True, blank=True, help_text="At `precision`; null when not finite.")
    increase = models.FloatField(null=True, blank=True, help_text="perplexity / perplexity_fp32 - 1.")
    bound = models.FloatField(null=True, blank=True, help_text="The largest increase accepted when measured.")
    accepted = models.BooleanField(default=False)
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    measured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-measured_at"]
        constraints = [models.UniqueConstraint(fields=["model_version", "precision"],
                                               name="uniq_precision_check")]

    def __str__(self) -> str:
        return f"{self.precision} check of {self.model_version_id} ({self.state})"
