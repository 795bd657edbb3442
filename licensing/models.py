"""Licensing domain: licence terms, acceptances, grants with their quota reservations, API keys.

Terms are content-addressed (their id is the SHA-256 of their canonical JSON) and never change:
editing an offer's terms makes a new LicenceTerms row, so a grant keeps exactly what was bought.
"""

import calendar
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.models import Credential


def months_later(moment, months: int = 1):
    """The same day `months` later; a period that started on 31 January renews on the last day
    of February."""
    year, month = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + year, month + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class LicenceTerms(models.Model):
    """The rights of a licence only (uses, samples, attribution, quota, rate, duration,
    restrictions) as canonical JSON. Prices live on marketplace.Offer, not here."""

    sha256 = models.CharField(max_length=64, primary_key=True, editable=False)
    document = models.JSONField(help_text="The validated terms (see licensing.terms).")
    canonical = models.TextField(help_text="Canonical JSON whose SHA-256 is the id.")
    # " personal research " etc.: a plain string so that the catalogue filters by use with a
    # LIKE on SQLite and PostgreSQL alike (JSON containment is not portable).
    uses_index = models.CharField(max_length=200, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "licence terms"
        verbose_name_plural = "licence terms"

    def __str__(self) -> str:
        return f"terms {self.sha256[:12]}"

    def save(self, *args, **kwargs):
        # Content-addressed: a row is written once. Changing terms means a new row (a new version).
        if not self._state.adding:
            from .errors import TermsImmutable

            raise TermsImmutable("Licence terms never change; create a new version instead.")
        super().save(*args, **kwargs)

    @property
    def uses(self) -> list[str]:
        return list(self.document.get("uses", []))


class Acceptance(models.Model):
    """A user accepted a terms version (by hash) at a time, from an IP address."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="acceptances")
    terms = models.ForeignKey(LicenceTerms, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-accepted_at"]

    @property
    def terms_sha256(self) -> str:
        return self.terms_id


class Grant(models.Model):
    """A customer's licence to generate with one model version under one terms version.

    Quota counters are integer tokens. `reserved_tokens` is held by in-flight generations (reserve
    by conditional UPDATE, settle into `used_tokens`); the check constraint makes overspending
    impossible even for a buggy caller.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        SUSPENDED = "suspended"
        REVOKED = "revoked"
        EXPIRED = "expired"

    class QuotaPeriod(models.TextChoices):
        MONTH = "month"
        TOTAL = "total"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants")
    model_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, related_name="grants"
    )
    terms = models.ForeignKey(LicenceTerms, on_delete=models.PROTECT, related_name="grants")
    acceptance = models.ForeignKey(Acceptance, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Null: perpetual.")
    quota_tokens = models.BigIntegerField(help_text="Tokens allowed per quota period.")
    quota_period = models.CharField(max_length=8, choices=QuotaPeriod.choices, default=QuotaPeriod.TOTAL)
    used_tokens = models.BigIntegerField(default=0)
    reserved_tokens = models.BigIntegerField(default=0)
    period_started_at = models.DateTimeField(null=True, blank=True)
    price_paid_cents = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    # Billed per token after use (a metered offer): every settled generation leaves a meter event
    # row for billing to deliver.
    metered = models.BooleanField(default=False)
    # Watermark keys derive from a versioned server secret and the grant id; the version stays
    # with the grant so rotating the secret never orphans texts generated under it.
    watermark_secret_version = models.PositiveIntegerField(default=1)
    # The scheme's name and its parameters are fixed when the grant is made (from the settings), so
    # changing the settings later never makes its earlier texts undetectable. Both are opaque here:
    # the inference app knows the schemes and validates them when it builds the grant's key.
    watermark_scheme = models.CharField(max_length=32)
    watermark_params = models.JSONField(default=dict, blank=True)
    state_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(used_tokens__gte=0) & Q(reserved_tokens__gte=0),
                name="grant_counters_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(used_tokens__lte=F("quota_tokens") - F("reserved_tokens")),
                name="grant_quota_never_overspent",
            ),
        ]

    def __str__(self) -> str:
        return f"grant {str(self.id)[:8]} ({self.state})"

    @property
    def remaining_tokens(self) -> int:
        return max(0, self.quota_tokens - self.used_tokens - self.reserved_tokens)

    @property
    def period_ends_at(self):
        """When a monthly quota period ends (None for a total quota or a grant not started)."""
        if self.quota_period != self.QuotaPeriod.MONTH or self.period_started_at is None:
            return None
        return months_later(self.period_started_at)

    @property
    def permitted_uses(self) -> list[str]:
        return self.terms.uses

    @property
    def rate_limit_per_minute(self) -> int:
        return int(self.terms.document["rate_limit_per_minute"])


class ApiKey(Credential):
    """A customer's secret key, stored only as its SHA-256 with a visible prefix. The plaintext is
    shown once, at creation. Scoped to all of the owner's grants or to the ones listed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, db_index=True, help_text="Visible start of the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    all_grants = models.BooleanField(default=True)
    grants = models.ManyToManyField(Grant, blank=True, related_name="api_keys")
    default_purpose = models.CharField(max_length=32, default="personal")

    class Meta(Credential.Meta):
        verbose_name = "API key"


class QuotaReservation(models.Model):
    """Tokens held on a grant by one in-flight request (the grant's `reserved_tokens` is their sum).

    Settling or releasing deletes the row; a request whose process died leaves it behind, and the
    sweep releases it once it expires, so a crashed worker never locks quota away for good. The
    table was created under the inference app and keeps its name."""

    request_id = models.CharField(max_length=64, primary_key=True)
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="reservations")
    tokens = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "inference_quotareservation"

    def __str__(self) -> str:
        return f"{self.request_id}: {self.tokens} tokens"
