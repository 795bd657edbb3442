from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Billing delivers the meter events that inference records for metered grants (inference
        # announces each after commit; nothing below imports the marketplace).
        from inference.signals import meter_event_recorded

        from .tasks import meter_event_recorded as deliver

        meter_event_recorded.connect(deliver, dispatch_uid="marketplace.meter_event_recorded")
