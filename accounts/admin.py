from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "is_trainer", "is_customer", "is_staff", "email_verified_at")
    list_filter = ("is_trainer", "is_customer", "is_staff")
    fieldsets = BaseUserAdmin.fieldsets + (
        ("Imprint roles", {"fields": ("is_trainer", "is_customer", "email_verified_at")}),
    )
