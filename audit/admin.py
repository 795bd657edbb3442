from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import AuditAnchor, AuditEntry, AuditRefusal


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Append-only: no add, change or delete, not even for superusers (and no bulk actions)."""

    list_display = ("id", "created_at", "event", "actor_ref", "subject_type", "subject_id")
    list_filter = ("event",)
    search_fields = ("subject_id", "actor_ref")
    actions = None


@admin.register(AuditRefusal)
class AuditRefusalAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "event", "actor_ref", "subject_type", "subject_id")
    search_fields = ("subject_id", "actor_ref")
    actions = None


@admin.register(AuditAnchor)
class AuditAnchorAdmin(ReadOnlyAdmin):
    list_display = ("seq", "anchored_at", "entry_hash", "kid")
    actions = None
