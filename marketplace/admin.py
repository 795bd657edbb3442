from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import Listing, Offer, Order


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):
    list_display = ("title", "trainer", "model_version", "published", "published_at")
    list_filter = ("published",)
    search_fields = ("title", "description")
    raw_id_fields = ("trainer", "model_version")


@admin.register(Offer)
class OfferAdmin(ReadOnlyAdmin):
    list_display = ("name", "listing", "version", "fee_cents", "currency", "metered_cents_per_1k", "active")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "customer", "offer", "state", "provider", "amount_cents", "currency", "created_at")
    list_filter = ("state", "provider")
