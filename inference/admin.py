"""Read-only admin for the ledger, receipts, outbox and keys: they are written by services only
(the ledger is append-only; a receipt is signed once)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import MeterOutbox, Receipt, SigningKey, UsageEntry


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


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("kid", "state", "created_at", "retired_at")
