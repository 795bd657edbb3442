from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Append-only: no add, change or delete, not even for superusers (and no bulk actions)."""

    list_display = ("id", "created_at", "event", "actor_ref", "subject_type", "subject_id")
    list_filter = ("event",)
    search_fields = ("subject_id", "actor_ref")
    actions = None
