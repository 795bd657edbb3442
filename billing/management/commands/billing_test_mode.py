"""The local test mode's billing month, by hand (no Stripe keys needed):

    python manage.py billing_test_mode close-month [--fail] [--customer USERNAME]
    python manage.py billing_test_mode end-grace   [--customer USERNAME]
    python manage.py billing_test_mode pay         [--customer USERNAME]

`close-month` closes the current month of every open local test-mode subscription now: the
invoice bills the tokens metered since the last close at the offer's price and is paid with the
saved test card, or its payment fails with `--fail` (the customer is e-mailed). `end-grace`
treats the grace period as over, so past-due grants are suspended now (the beat sweep does it once
BILLING_GRACE_HOURS pass). `pay` pays the failed invoices, which reinstates the grants.
Celery beat closes each month by itself when it ends.
"""

from django.core.management.base import BaseCommand, CommandError

from billing.gateway import payments_in_test_mode
from billing.local import local_grace_end, local_invoices_pay, local_period_close
from billing.models import Provider, Subscription


class Command(BaseCommand):
    help = "Close a month, fail or pay invoices of local test-mode metered subscriptions."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["close-month", "end-grace", "pay"])
        parser.add_argument("--fail", action="store_true", help="close-month: the payment fails")
        parser.add_argument("--customer", help="only this customer's subscriptions (username)")

    def handle(self, *args, action, fail=False, customer=None, **options):
        if not payments_in_test_mode():
            raise CommandError("Stripe is configured: Stripe closes months and charges cards itself.")
        subs = Subscription.objects.filter(provider=Provider.LOCAL_TEST).select_related("grant__customer")
        if customer:
            subs = subs.filter(grant__customer__username=customer)
        for sub in subs.order_by("created_at"):
            getattr(self, "_" + action.replace("-", "_"))(sub, fail=fail)

    def _close_month(self, sub, *, fail):
        invoice = local_period_close(subscription_id=sub.pk, fail=fail)
        if invoice is not None:
            sub.refresh_from_db()
            self.stdout.write(f"{sub.grant.customer.username}: invoice {invoice.reference} {invoice.tokens} tokens "
                              f"= {invoice.amount_cents} cents {invoice.currency}: {invoice.state}; "
                              f"subscription {sub.state}")

    def _end_grace(self, sub, **_):
        if local_grace_end(subscription_id=sub.pk):
            self.stdout.write(f"{sub.grant.customer.username}: grant {sub.grant_id} suspended (invoice unpaid)")

    def _pay(self, sub, **_):
        for invoice in local_invoices_pay(subscription_id=sub.pk):
            sub.refresh_from_db()
            self.stdout.write(f"{sub.grant.customer.username}: invoice {invoice.reference} paid; "
                              f"subscription {sub.state}, grant {sub.grant.state}")
