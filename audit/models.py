"""The audit chain. The tables were created under the licensing app and keep their names."""

from django.db import models

from core.models import AppendOnlyModel


class AuditChainHead(models.Model):
    """The singleton row that serialises appends: audit_append locks it (select_for_update) so
    two appends never link to the same previous entry."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_entry_id = models.BigIntegerField(null=True)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        db_table = "licensing_auditchainhead"


class AuditEntry(AppendOnlyModel):
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

    class Meta:
        db_table = "licensing_auditentry"
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.id} {self.event}"


class AuditRefusal(AppendOnlyModel):
    """A refused request, recorded without taking the chain head (refusals come in bursts and
    must not queue behind every other append). `audit_refusals_seal` later covers each run of
    rows with one chain entry holding their SHA-256, so a sealed refusal is as tamper-evident as
    a chained entry; until then it is only append-only."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    event = models.CharField(max_length=64)
    actor_ref = models.CharField(max_length=64, blank=True)
    subject_type = models.CharField(max_length=64, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject_type", "subject_id", "event", "created_at"],
                                name="audit_refusal_subject_idx")]

    def __str__(self) -> str:
        return f"refusal #{self.id} {self.event}"


class AuditAnchor(AppendOnlyModel):
    """A signed statement "the chain's entry #seq had hash H at time T" (Ed25519, see
    audit.anchors). Published at /audit/anchors.json so that outsiders keep copies: a chain cut
    below an anchor, or rewritten and recomputed up to it, no longer matches the signed hash."""

    id = models.BigAutoField(primary_key=True)
    seq = models.BigIntegerField(unique=True)
    entry_hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField()
    kid = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)  # base64url of the 64-byte signature

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"anchor #{self.seq}"
