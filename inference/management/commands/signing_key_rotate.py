"""Rotate the receipt signing key of the embedded default: a new key signs from now on, and the old
ones stay published in the JWKS so every receipt they signed still verifies.

    python manage.py signing_key_rotate

In production the keys come from IMPRINT_SIGNING_KEYS: put the new key first there instead.
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from core.secrets import signing_key_rotate_local
from inference.receipts import signing_keys_sync


class Command(BaseCommand):
    help = "Make a new active receipt signing key (embedded default); old keys keep verifying."

    def handle(self, *args, **options):
        try:
            key = signing_key_rotate_local()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        signing_keys_sync()
        self.stdout.write(f"active signing key: {key.kid}")
