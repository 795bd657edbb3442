"""Print, per grant, the tokens in the usage ledger next to the tokens reported to Stripe's meter,
and flag every difference (pending or failed outbox rows, or a metered grant missing rows).

    python manage.py meter_reconcile [--only-differences]

Exits with status 1 when any metered grant differs, so it can run as a periodic check.
"""

from django.core.management.base import BaseCommand

from inference.selectors import ledger_totals_by_grant


class Command(BaseCommand):
    help = "Compare ledger token totals with tokens reported to Stripe Billing Meters, per grant."

    def add_arguments(self, parser):
        parser.add_argument("--only-differences", action="store_true")

    def handle(self, *args, only_differences=False, **options):
        rows = ledger_totals_by_grant()
        self.stdout.write(f"{'grant':36}  {'ledger':>10}  {'metered':>10}  {'reported':>10}  status")
        differing = 0
        for row in rows:
            metered = row["metered_tokens"] > 0
            ok = not metered or row["metered_tokens"] == row["reported_tokens"] == row["ledger_tokens"]
            differing += not ok
            if only_differences and ok:
                continue
            status = "ok" if ok else "DIFFERS"
            if not metered:
                status = "not metered"
            self.stdout.write(f"{row['grant_id']!s:36}  {row['ledger_tokens']:>10}  {row['metered_tokens']:>10}  "
                              f"{row['reported_tokens']:>10}  {status}")
        self.stdout.write(f"{len(rows)} grants, {differing} with differences")
        if differing:
            raise SystemExit(1)
