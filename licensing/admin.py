from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import Acceptance, ApiKey, Grant, LicenceTerms, QuotaReservation


@admin.register(LicenceTerms)
class LicenceTermsAdmin(ReadOnlyAdmin):
    list_display = ("sha256", "uses_index", "created_at")


@admin.register(Acceptance)
class AcceptanceAdmin(ReadOnlyAdmin):
    list_display = ("user", "terms", "accepted_at", "ip_address")


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    """State changes go through services (and the audit log), so the admin only shows grants."""

    list_display = ("id", "customer", "model_version", "state", "used_tokens", "quota_tokens", "expires_at")
    list_filter = ("state",)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "name", "owner", "created_at", "revoked_at", "last_used_at")
    exclude = ("key_hash",)


@admin.register(QuotaReservation)
class QuotaReservationAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "grant", "tokens", "created_at", "expires_at")
