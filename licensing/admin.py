from django.contrib import admin

from config.readonly_admin import ReadOnlyAdmin

from .models import (
    Acceptance,
    ApiKey,
    AuditEntry,
    Case,
    CustomerAnswer,
    Decision,
    Flag,
    Grant,
    LicenceTerms,
    Report,
)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Append-only: no add, change or delete, not even for superusers (and no bulk actions)."""

    list_display = ("id", "created_at", "event", "actor_ref", "subject_type", "subject_id")
    list_filter = ("event",)
    search_fields = ("subject_id", "actor_ref")
    actions = None


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


# Compliance records are written by licensing.compliance (decisions change grants and the audit
# log together), so the admin shows them and nothing more.

@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "state", "severity", "source", "customer", "model_version", "created_at", "decided_at")
    list_filter = ("state", "severity", "source")


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "severity", "customer", "grant", "case", "created_at")
    list_filter = ("kind", "severity")


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "reporter", "reporter_ip", "where_url")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("id", "case", "action", "staff", "grant_state_after", "created_at")
    list_filter = ("action",)
    actions = None


@admin.register(CustomerAnswer)
class CustomerAnswerAdmin(ReadOnlyAdmin):
    list_display = ("id", "case", "author", "created_at")
