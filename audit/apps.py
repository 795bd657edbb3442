from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.signals import token_refused

        from .receivers import record_token_refusal

        token_refused.connect(record_token_refusal, dispatch_uid="audit.token_refused")
