from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Licence compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Compliance hears of refusals and revoked keys from the audit log, the one signal the
        # layers below send upwards (nothing below imports compliance).
        from audit.signals import entry_appended

        from .receivers import audit_entry_appended

        entry_appended.connect(audit_entry_appended, dispatch_uid="compliance.audit_entry_appended")
