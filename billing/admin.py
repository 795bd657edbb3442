from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import BillingCustomer, Invoice, PayoutAccount, PayoutEntry, StripeEvent, Subscription


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "object_id", "outcome", "received_at")
    list_filter = ("type",)


@admin.register(PayoutEntry)
class PayoutEntryAdmin(ReadOnlyAdmin):
    list_display = ("trainer", "kind", "gross_cents", "platform_fee_cents", "trainer_cents", "currency",
                    "via_connect", "created_at")


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin):
    list_display = ("user", "stripe_customer_id", "created_at")


@admin.register(PayoutAccount)
class PayoutAccountAdmin(admin.ModelAdmin):
    """Staff may record a trainer's Stripe Connect account id here, for an account onboarded
    outside Imprint's own Connect flow."""

    list_display = ("user", "stripe_account_id", "created_at")
    raw_id_fields = ("user",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Metered grants' subscriptions; a pending one with an error is being retried."""

    list_display = ("grant", "provider", "state", "stripe_subscription_id", "attempts", "last_error",
                    "past_due_since", "created_at")
    list_filter = ("state", "provider")


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("reference", "subscription", "state", "tokens", "amount_cents", "currency", "period_start",
                    "period_end")
    list_filter = ("state",)
