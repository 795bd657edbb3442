"""Compare the usage ledger, the meter events sent and the invoices of every metered grant, and
print each discrepancy (a usage row without a meter event, an unsent or failed event, an invoice
that bills other tokens than the ledger holds for its period or the wrong amount for them, a paid
invoice without its payout entry...).

    python manage.py reconcile

Exits with status 1 when there is any discrepancy, so it can run as a periodic check.
"""

from django.core.management.base import BaseCommand

from billing.reconciliation import billing_discrepancies


class Command(BaseCommand):
    help = "Reconcile metered billing: usage ledger, meter events sent, invoices and payouts."

    def handle(self, *args, **options):
        problems, checked = billing_discrepancies()
        for problem in problems:
            self.stdout.write(f"DISCREPANCY  {problem}")
        what = ", ".join(f"{n} {name}" for name, n in checked.items())
        self.stdout.write(f"checked {what}: {len(problems)} discrepancies")
        if problems:
            raise SystemExit(1)
