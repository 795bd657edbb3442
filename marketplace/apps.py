from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Billing announces payment facts and asks what a metered grant is billed at; it never
        # imports the marketplace (the layer above it).
        from billing import signals
        from billing.plans import plan_source_register

        from . import receivers
        from .pricing import metered_plan_of_grant

        for name in ("payment_succeeded", "payment_failed", "card_saved", "charge_reversed", "invoice_reversed",
                     "subscription_started", "funds_held", "funds_refunded", "held_dispute_decided"):
            getattr(signals, name).connect(getattr(receivers, name), dispatch_uid=f"marketplace.{name}")
        plan_source_register(metered_plan_of_grant)
        # The demo's listings are fine-tuned from the built-in base once it is ready.
        from training.services.bases import builtin_base_ready

        builtin_base_ready.connect(receivers.builtin_base_ready, dispatch_uid="marketplace.builtin_base_ready")
