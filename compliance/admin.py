"""Compliance records are written by the compliance services (decisions change grants and the
audit log together), so the admin shows them and nothing more."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import Case, CustomerAnswer, Decision, Flag, Report


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "state", "severity", "source", "customer", "model_version", "created_at", "decided_at")
    list_filter = ("state", "severity", "source")


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "severity", "about", "customer", "grant", "presenter_ip", "presenter_user", "case",
                    "created_at")
    list_filter = ("kind", "severity", "about")


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
