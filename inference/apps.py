from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Production refuses to start without its receipt signing keys and watermark secrets
        # (the embedded default generates both under var/ on first use).
        from core.secrets import production_secrets_check

        from . import checks  # noqa: F401 - registers the watermark settings check

        production_secrets_check()
