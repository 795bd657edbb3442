"""Sign the audit chain's head now (after sealing pending refusals), or print every anchor."""

import json

from django.core.management.base import BaseCommand, CommandError

from audit.anchors import anchors_document
from audit.errors import AuditChainBroken
from audit.selectors import audit_anchors_page
from audit.services import audit_anchor_create


class Command(BaseCommand):
    help = ("Seal pending refusals and sign the audit chain's head (sequence number, hash, time); "
            "with --export, print every anchor as the JSON document /audit/anchors.json serves.")

    def add_arguments(self, parser):
        parser.add_argument("--export", action="store_true", help="print all anchors instead of anchoring")

    def handle(self, *args, **options):
        if options["export"]:
            self.stdout.write(json.dumps(_all_anchors(), indent=1))
            return
        try:
            anchor = audit_anchor_create()
        except AuditChainBroken as exc:
            raise CommandError(exc.message) from exc
        if anchor is None:
            self.stdout.write("The audit chain is empty: nothing to anchor.")
            return
        self.stdout.write(self.style.SUCCESS(
            f"Anchored entry #{anchor.seq} ({anchor.entry_hash}) at {anchor.anchored_at.isoformat()}, key {anchor.kid}."))


def _all_anchors() -> dict:
    heads, after = [], 0
    while after is not None:
        page, after = audit_anchors_page(after=after)
        heads.extend(page)
    return anchors_document(heads)
