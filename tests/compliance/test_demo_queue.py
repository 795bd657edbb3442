"""The demo's review queue has flags and a case to show, and seeding it again adds nothing."""

from __future__ import annotations

import io

from django.core.management import call_command

from compliance.models import Case, Flag
from tests import factories


def test_the_demo_seeds_flags_and_a_case_once(client, db):
    call_command("demo_accounts", stdout=io.StringIO())
    from accounts.models import User

    customer = User.objects.get(username="customer")
    lst = factories.listing()
    factories.grant(customer, factories.offer(lst, uses=["personal"]))
    factories.grant(customer, factories.offer(lst, name="Metered", metered=20))

    call_command("demo_compliance", stdout=io.StringIO())
    call_command("demo_compliance", stdout=io.StringIO())

    assert Flag.objects.count() == 3
    assert Case.objects.count() == 1
    assert Flag.objects.filter(case__isnull=True, dismissed_at__isnull=True).count() == 2
    client.force_login(User.objects.get(username="admin"))
    page = client.get("/compliance/review/").content.decode()
    assert "Purpose Not Permitted" in page and "No flags waiting" not in page
