"""Check the books and print each discrepancy by name:

- generation (inference.books): grant counters against the ledger, reservations and
  Idempotency-Key claims left past their TTL, receipts against the outputs they cover;
- metered billing (billing.reconciliation): a usage row without a meter event, an unsent or failed
  event, an invoice that bills other tokens than the ledger holds for its period or the wrong
  amount for them, a paid invoice without its payout entry...

    python manage.py reconcile

Exits with status 1 when there is any discrepancy, so it can run as a periodic check.
"""

from django.core.management.base import BaseCommand

from billing.reconciliation import billing_discrepancies
from inference.books import books_discrepancies
from inference.idempotency import claim_ttl


class Command(BaseCommand):
    help = ("Check the books: grant counters, reservations and Idempotency-Keys against the ledger, receipts "
            "against outputs, and metered billing (ledger, meter events, invoices, payouts).")

    def handle(self, *args, **options):
        problems, checked = books_discrepancies(claim_ttl=claim_ttl())
        billing_problems, billing_checked = billing_discrepancies()
        problems, checked = problems + billing_problems, {**checked, **billing_checked}
        for problem in problems:
            self.stdout.write(f"DISCREPANCY  {problem}")
        what = ", ".join(f"{n} {name}" for name, n in checked.items())
        self.stdout.write(f"checked {what}: {len(problems)} discrepancies")
        if problems:
            raise SystemExit(1)
