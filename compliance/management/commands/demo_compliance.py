from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from compliance.demo import demo_review_queue


class Command(BaseCommand):
    help = "Seed the demo's compliance review queue with a few flags and a case (once; embedded default only)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo is never created with IMPRINT_ENV=production.")
        demo_review_queue(write=self.stdout.write)
