from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Billing delivers the meter events that inference records for metered grants (inference
        # announces each after commit; nothing below imports billing).
        from inference.signals import meter_event_recorded

        from .tasks import meter_event_recorded as deliver

        meter_event_recorded.connect(deliver, dispatch_uid="billing.meter_event_recorded")
