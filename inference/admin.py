"""Read-only admin for the ledger, receipts, outbox and keys: they are written by services only
(the ledger is append-only; a receipt is signed once). Staff may revoke a signing key."""

from django.contrib import admin, messages

from core.admin import ReadOnlyAdmin
from core.errors import DomainError

from .models import IdempotencyKey, MeterOutbox, PrecisionCheck, Receipt, SigningKey, UsageEntry
from .receipts import signing_key_revoke


@admin.register(UsageEntry)
class UsageEntryAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "grant", "total_tokens", "purpose", "interrupted", "created_at")
    list_filter = ("purpose", "interrupted")
    search_fields = ("request_id", "grant__id", "model_digest")


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ("id", "grant", "kid", "model_digest", "issued_at")
    search_fields = ("id", "output_sha256", "grant__id")


@admin.register(MeterOutbox)
class MeterOutboxAdmin(ReadOnlyAdmin):
    list_display = ("identifier", "state", "attempts", "sent_at", "created_at")
    list_filter = ("state",)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ("key", "api_key", "state", "request_id", "created_at", "updated_at")
    list_filter = ("state",)
    search_fields = ("key", "request_id")


@admin.register(PrecisionCheck)
class PrecisionCheckAdmin(ReadOnlyAdmin):
    list_display = ("model_version", "precision", "state", "increase", "accepted", "windows", "device", "measured_at")
    list_filter = ("precision", "state", "accepted")
    search_fields = ("model_version__id", "model_version__digest")


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    """Read-only but for one action: revoking a compromised key (superusers only)."""

    list_display = ("kid", "state", "created_at", "retired_at", "revoked_at", "revoked_reason")
    list_filter = ("state",)
    actions = ["revoke_keys"]

    def has_revoke_permission(self, request):
        return request.user.is_superuser

    @admin.action(description="Revoke the selected keys (compromised)", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        for kid in queryset.values_list("kid", flat=True):
            try:
                signing_key_revoke(kid=kid, reason=f"revoked in the admin by {request.user}", actor=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            else:
                self.message_user(request, f"Revoked {kid}: its receipts no longer verify.", level=messages.SUCCESS)
