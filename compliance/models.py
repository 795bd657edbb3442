"""Compliance domain: reports of found texts, automatic flags, cases for staff, their decisions
and the customer's answers. The tables were created under the licensing app and keep their names."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import AppendOnlyModel
from licensing.models import ApiKey, Grant


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
        db_table = "licensing_report"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report #{self.id}"


class Case(models.Model):
    """One matter for staff to decide, about one grant (and so one customer and model version)."""

    class Source(models.TextChoices):
        FLAG = "flag"
        REPORT = "report"
        COMMISSION = "commission"  # a commissioned delivery disputed by its customer

    class State(models.TextChoices):
        OPEN = "open"
        ANSWERED = "answered"  # the customer answered; staff still to decide
        DECIDED = "decided"

    id = models.BigAutoField(primary_key=True)
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="cases")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="compliance_cases")
    model_version = models.ForeignKey("training.ModelVersion", on_delete=models.PROTECT, related_name="compliance_cases")
    source = models.CharField(max_length=10, choices=Source.choices)
    report = models.OneToOneField(Report, null=True, blank=True, on_delete=models.PROTECT, related_name="case")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", help_text="Staff who opened it from flags; null: the system.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MEDIUM, db_index=True)
    summary = models.CharField(max_length=300)
    # What the case was opened with, as plain data (a disputed commission: the training's metrics,
    # samples and memorisation figures, as they were when the customer disputed).
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "licensing_case"
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

    class About(models.TextChoices):
        # Who the flag is about: the grant (and its customer) it names, or whoever presented the
        # evidence (a receipt with another text proves something about the presenter, not the grant).
        GRANT = "grant"
        PRESENTER = "presenter"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, db_index=True)
    about = models.CharField(max_length=9, choices=About.choices, default=About.GRANT)
    presenter_ip = models.GenericIPAddressField(null=True, blank=True)
    presenter_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
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
        db_table = "licensing_flag"
        ordering = ["-severity", "created_at"]

    def __str__(self) -> str:
        return f"flag #{self.id} {self.kind}"


class Decision(AppendOnlyModel):
    """What staff decided on a case and why. Append-only: a later decision (reinstating a suspended
    grant) is a new row, so the case keeps its whole history."""

    class Action(models.TextChoices):
        DISMISS = "dismiss"
        WARN = "warn"
        SUSPEND = "suspend"
        REVOKE = "revoke"
        REINSTATE = "reinstate"
        # A disputed commission only: the held payment goes to the trainer (the delivery stands)
        # or back to the customer (the commission is cancelled).
        RELEASE = "release", "Release the payment to the trainer"
        REFUND = "refund", "Refund the customer"

    id = models.BigAutoField(primary_key=True)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField()
    grant_state_after = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "licensing_decision"
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="decision_reason_required")]

    def __str__(self) -> str:
        return f"{self.action} on case #{self.case_id}"


class CustomerAnswer(models.Model):
    """The customer's answer to a case: one per case (the unique relation enforces it)."""

    id = models.BigAutoField(primary_key=True)
    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="answer")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "licensing_customeranswer"

    def __str__(self) -> str:
        return f"answer to case #{self.case_id}"
