"""Licensing domain: licence terms, acceptances, grants, API keys and the audit chain.

Terms are content-addressed (their id is the SHA-256 of their canonical JSON) and never change:
editing an offer's terms makes a new LicenceTerms row, so a grant keeps exactly what was bought.
"""

import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.signals import post_save
from django.dispatch import receiver


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
    # Watermark keys derive from a versioned server secret and the grant id (inference issue).
    watermark_secret_version = models.PositiveIntegerField(default=1)
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
    def permitted_uses(self) -> list[str]:
        return self.terms.uses

    @property
    def rate_limit_per_minute(self) -> int:
        return int(self.terms.document["rate_limit_per_minute"])


class ApiKey(models.Model):
    """A customer's secret key, stored only as its SHA-256 with a visible prefix. The plaintext is
    shown once, at creation. Scoped to all of the owner's grants or to the ones listed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True, help_text="Visible start of the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    all_grants = models.BooleanField(default=True)
    grants = models.ManyToManyField(Grant, blank=True, related_name="api_keys")
    default_purpose = models.CharField(max_length=32, default="personal")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("The audit log is append-only.")

    def delete(self):
        raise PermissionError("The audit log is append-only.")


class AuditChainHead(models.Model):
    """The singleton row that serialises appends: audit_append locks it (select_for_update) so
    two appends never link to the same previous entry."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_entry_id = models.BigIntegerField(null=True)
    last_hash = models.CharField(max_length=64, default="0" * 64)


class AuditEntry(models.Model):
    """One licence-relevant event. Each entry stores the SHA-256 of the previous entry and its own
    hash over (previous hash, its fields), so an edited or removed entry breaks the chain at
    exactly that point. Actors are referenced by id ("user:42") so an account deletion can
    pseudonymise the person without rewriting hashed history."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    event = models.CharField(max_length=64, db_index=True)
    actor_ref = models.CharField(max_length=64, blank=True)
    subject_type = models.CharField(max_length=64, blank=True)
    subject_id = models.CharField(max_length=64, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.id} {self.event}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only.")


# --- Compliance: flags, reports, cases, decisions (issue 6) ----------------------------------

class Severity(models.IntegerChoices):
    # Integers so the review queue sorts by severity in the database.
    LOW = 10, "low"
    MEDIUM = 20, "medium"
    HIGH = 30, "high"


class Report(models.Model):
    """A text someone found and reported (signed in or not), with what verification said at once."""

    id = models.BigAutoField(primary_key=True)
    text = models.TextField()
    receipt = models.TextField(blank=True, help_text="The JWS receipt, when the reporter had one.")
    where_url = models.URLField(max_length=500, blank=True)
    where_text = models.CharField(max_length=500, blank=True, help_text="Where it was found, in words.")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="compliance_reports")
    reporter_ip = models.GenericIPAddressField(null=True, blank=True)
    verification = models.JSONField(default=dict, help_text="inference.verification.verification_run's result.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report #{self.id}"


class Case(models.Model):
    """One matter for staff to decide, about one grant (and so one customer and model version)."""

    class Source(models.TextChoices):
        FLAG = "flag"
        REPORT = "report"

    class State(models.TextChoices):
        OPEN = "open"
        ANSWERED = "answered"  # the customer answered; staff still to decide
        DECIDED = "decided"

    id = models.BigAutoField(primary_key=True)
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="cases")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="compliance_cases")
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.PROTECT, related_name="compliance_cases")
    source = models.CharField(max_length=8, choices=Source.choices)
    report = models.OneToOneField(Report, null=True, blank=True, on_delete=models.PROTECT, related_name="case")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", help_text="Staff who opened it from flags; null: the system.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MEDIUM, db_index=True)
    summary = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-severity", "created_at"]

    def __str__(self) -> str:
        return f"case #{self.id} ({self.state})"


class Flag(models.Model):
    """A suspicious event the system noticed, with its evidence. Flags of one kind about one subject
    within one window share a row (`dedupe_key`), whose evidence is recomputed as events arrive."""

    class Kind(models.TextChoices):
        PURPOSE_NOT_PERMITTED = "purpose_not_permitted"
        QUOTA_EXHAUSTED_REPEATEDLY = "quota_exhausted_repeatedly"
        RATE_LIMITED_REPEATEDLY = "rate_limited_repeatedly"
        USED_AFTER_REVOCATION = "used_after_revocation"
        RECEIPT_INVALID = "receipt_invalid"
        WATERMARK_DETECTED = "watermark_detected"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, db_index=True)
    grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.PROTECT, related_name="flags")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="compliance_flags")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="flags")
    evidence = models.JSONField(default=dict)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="flags")
    # A flag that names no grant (a forged receipt) can never join a case: staff dismiss it instead.
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    dismissed_reason = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-severity", "created_at"]

    def __str__(self) -> str:
        return f"flag #{self.id} {self.kind}"


class Decision(models.Model):
    """What staff decided on a case and why. Append-only: a later decision (reinstating a suspended
    grant) is a new row, so the case keeps its whole history."""

    class Action(models.TextChoices):
        DISMISS = "dismiss"
        WARN = "warn"
        SUSPEND = "suspend"
        REVOKE = "revoke"
        REINSTATE = "reinstate"

    id = models.BigAutoField(primary_key=True)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField()
    grant_state_after = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="decision_reason_required")]

    def __str__(self) -> str:
        return f"{self.action} on case #{self.case_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Decisions are append-only; record a new decision instead.")
        super().save(*args, **kwargs)


class CustomerAnswer(models.Model):
    """The customer's answer to a case: one per case (the unique relation enforces it)."""

    id = models.BigAutoField(primary_key=True)
    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="answer")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"answer to case #{self.case_id}"


@receiver(post_save, sender=AuditEntry, dispatch_uid="licensing.compliance.refusal_flags")
def _refusal_recorded(sender, instance: AuditEntry, created: bool, **kwargs):
    """Refused generation requests are recorded by inference through the audit log; compliance
    flags read them from there. After commit: this runs inside `audit_append`, which still holds
    the chain head, and a failing flag must never turn the customer's 4xx into a 500."""
    if created and instance.event == "generation.refused":
        from .compliance import flags_from_refusal

        transaction.on_commit(lambda: flags_from_refusal(audit_entry_id=instance.pk), robust=True)
