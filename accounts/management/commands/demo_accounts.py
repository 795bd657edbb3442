from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import User

DEMO_PASSWORD = "imprint-demo"
DEMO_ACCOUNTS = [
    # username, trainer, customer, staff
    ("trainer", True, False, False),
    ("customer", False, True, False),
    ("admin", False, False, True),
]


class Command(BaseCommand):
    help = "Create the demo trainer, customer and staff accounts (embedded default only). Idempotent."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("Demo accounts are never created with IMPRINT_ENV=production.")
        for username, trainer, customer, staff in DEMO_ACCOUNTS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@demo.imprint.local", "is_trainer": trainer,
                          "is_customer": customer, "is_staff": staff, "is_superuser": staff},
            )
            if created:
                user.set_password(DEMO_PASSWORD)
            if user.email_verified_at is None:
                # The demo addresses receive no mail; confirmed, so the demo customer can buy and make keys.
                user.email_verified_at = timezone.now()
            user.save()
            self.stdout.write(f"  {username:<9} / {DEMO_PASSWORD}  ({', '.join(user.roles)})")
