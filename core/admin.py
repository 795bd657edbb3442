"""One admin base for records that change only through services: ledgers, receipts, payments, the
audit log. Staff can read them in Django admin; nobody can add, change or delete them there."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
