"""Revoke a receipt signing key whose private half may have leaked: every receipt it signed fails
verification as key_revoked, it leaves the JWKS and it never signs again.

    python manage.py signing_key_revoke KID --reason "seed found in a public paste"

In the embedded default a revoked active key is replaced by a new one at once; with keys from
IMPRINT_SIGNING_KEYS, put a new key first there (nothing is signed until then).
"""

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from inference.receipts import signing_key_revoke, signing_keys_sync


class Command(BaseCommand):
    help = "Revoke a receipt signing key (compromised): its receipts fail and it leaves the JWKS."

    def add_arguments(self, parser):
        parser.add_argument("kid")
        parser.add_argument("--reason", required=True, help="Why (kept on the key and in the audit log).")

    def handle(self, *args, **options):
        try:
            key = signing_key_revoke(kid=options["kid"], reason=options["reason"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"revoked signing key: {key.kid}")
        active = signing_keys_sync()
        self.stdout.write(f"active signing key: {active.kid}" if active else
                          "no active signing key: put a new key first in IMPRINT_SIGNING_KEYS")
