"""The staff audit page: newest first, people by name, full ids, filters, the chain's status and
its latest signed anchor; for staff only."""

from __future__ import annotations

from django.db import connection

from audit.models import AuditEntry
from audit.services import audit_anchor_create, audit_append
from tests import factories

URL = "/compliance/audit/"


def test_it_lists_entries_newest_first_with_people_by_name_and_full_ids(client, staff_user):
    customer = factories.user("alice")
    grant = factories.grant(customer, factories.offer(factories.listing()))
    audit_append(event="grant.suspended", actor=staff_user, subject=grant, data={"reason": "late payment"})
    audit_append(event="case.decided", actor=customer, subject=customer, data={"customer": f"user:{customer.pk}"})
    client.force_login(staff_user)

    page = client.get(URL).content.decode()

    assert page.index("case decided") < page.index("grant suspended")
    assert "alice" in page and staff_user.username in page
    assert f"user:{customer.pk}" not in page
    assert str(grant.pk) in page  # the whole id, with a copy button
    assert f'data-copy-text="{grant.pk}"' in page
    assert "late payment" in page


def test_it_filters_by_subject_actor_and_event(client, staff_user):
    customer = factories.user("bob")
    grant = factories.grant(customer, factories.offer(factories.listing()))
    audit_append(event="grant.suspended", actor=staff_user, subject=grant)
    audit_append(event="grant.active", actor=customer, subject=grant)
    audit_append(event="case.decided", actor=customer)
    client.force_login(staff_user)

    def shown(**query) -> set[str]:
        rows = client.get(URL, query).context["rows"]
        return {row.entry.event for row in rows}

    about_grant = {"grant.created", "grant.activated", "grant.suspended", "grant.active"}
    assert shown(subject=str(grant.pk)) == about_grant
    assert shown(subject=str(grant.pk)[:8]) == about_grant
    assert shown(actor="bob") == {"grant.created", "grant.active", "case.decided"}
    assert shown(actor="nobody-by-that-name") == set()
    assert shown(event="case.decided") == {"case.decided"}


def test_it_shows_the_chain_verified_and_the_latest_signed_anchor(client, staff_user):
    for i in range(3):
        audit_append(event="test.event", data={"i": i})
    anchor = audit_anchor_create()
    client.force_login(staff_user)

    response = client.get(URL)
    status = response.context["status"]

    assert status.intact and status.checked == AuditEntry.objects.count()
    page = response.content.decode()
    assert "intact" in page and f"#{anchor.seq}" in page and anchor.entry_hash in page


def test_verifying_again_finds_an_edited_entry(client, staff_user):
    audit_append(event="test.event", data={"amount": 1})
    audit_append(event="test.event", data={"amount": 2})
    client.force_login(staff_user)
    assert client.get(URL).context["status"].intact

    first = AuditEntry.objects.order_by("id").first()
    with connection.cursor() as cursor:  # what someone with database access could do
        cursor.execute(f"UPDATE {AuditEntry._meta.db_table} SET data = %s WHERE id = %s", ['{"amount": 100}', first.pk])
    client.post(URL + "verify/")

    status = client.get(URL).context["status"]
    assert not status.intact
    assert "broken" in client.get(URL).content.decode()


def test_it_is_for_staff_only(client, customer):
    client.force_login(customer)
    assert client.get(URL).status_code == 403
    assert client.post(URL + "verify/").status_code == 403


def test_the_compliance_console_links_the_audit_page(client, staff_user):
    client.force_login(staff_user)
    assert f'href="{URL}"' in client.get("/compliance/review/").content.decode()


def test_a_filter_with_a_nul_byte_finds_nothing_instead_of_failing(client, staff_user):
    audit_append(event="case.decided", actor=staff_user)
    client.force_login(staff_user)
    for name in ("subject", "subject_type", "actor", "event"):
        assert client.get(URL, {name: "x\x00y"}).status_code == 200
