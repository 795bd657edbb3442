"""Promises of staff decisions: each needs a reason; suspension and revocation go through the
grant's state, so they take effect on the very next generation request; reinstating restores it;
all of it is in the audit log and e-mailed to the customer and the trainer."""

from __future__ import annotations

from django.core import mail

from audit.models import AuditEntry
from compliance.models import Case, Decision
from licensing.models import Grant

from .conftest import decide, generate_text, post, report


def _case_for(client, licence) -> Case:
    text = generate_text(client, licence)["text"]
    assert report(client, text=text).json()["case"] is not None
    return Case.objects.get(grant=licence.grant)


def test_suspending_blocks_the_next_generation_with_403_and_the_reason_and_reinstating_restores_it(
        client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)

    suspended = decide(client, case.pk, "suspend", "Samples published without attribution")
    assert suspended.status_code == 201, suspended.content
    blocked = post(client, licence)
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "licence_suspended"
    assert "Samples published without attribution" in blocked.json()["error"]["message"]

    assert decide(client, case.pk, "reinstate", "Attribution added to the post").status_code == 201
    assert post(client, licence).status_code == 200

    grant_events = list(AuditEntry.objects.filter(subject_type="Grant", subject_id=str(licence.grant.pk),
                                                  event__in=["grant.suspended", "grant.active"])
                        .values_list("event", "actor_ref", "data__reason"))
    actor = f"user:{staff_user.pk}"
    assert grant_events == [("grant.suspended", actor, "Samples published without attribution"),
                            ("grant.active", actor, "Attribution added to the post")]
    decided = AuditEntry.objects.filter(event="case.decided", subject_id=str(case.pk))
    assert [e.data["action"] for e in decided] == ["suspend", "reinstate"]
    assert Case.objects.get(pk=case.pk).state == Case.State.DECIDED


def test_a_decision_emails_the_customer_and_the_trainer(client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)
    mail.outbox.clear()
    decide(client, case.pk, "revoke", "Repeated publication of samples")
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == sorted([licence.customer.email, licence.version.owner.email])
    assert all("Repeated publication of samples" in m.body and "revoke" in m.body.lower() for m in mail.outbox)
    assert Grant.objects.get(pk=licence.grant.pk).state == Grant.State.REVOKED
    assert post(client, licence).status_code == 403


def test_every_decision_needs_a_reason_and_a_known_action(client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)
    for action, reason in [("suspend", ""), ("suspend", "   "), ("ban", "because")]:
        response = decide(client, case.pk, action, reason)
        assert response.status_code == 400, (action, reason)
    page = client.post(f"/compliance/review/cases/{case.pk}/decide/", {"action": "revoke", "reason": ""})
    assert page.status_code == 302
    assert not Decision.objects.exists()
    assert Grant.objects.get(pk=licence.grant.pk).state == Grant.State.ACTIVE


def test_a_revoked_grant_cannot_be_reinstated(client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)
    decide(client, case.pk, "revoke", "Breach")
    response = decide(client, case.pk, "reinstate", "Changed my mind")
    assert response.status_code == 409 and response.json()["error"]["code"] == "grant_state"
    assert [d.action for d in Decision.objects.all()] == ["revoke"]


def test_dismiss_and_warn_leave_the_grant_active(client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)
    assert decide(client, case.pk, "warn", "Please attribute").status_code == 201
    assert decide(client, case.pk, "dismiss", "Attribution was present").status_code == 201
    assert Grant.objects.get(pk=licence.grant.pk).state == Grant.State.ACTIVE
    assert post(client, licence).status_code == 200


def test_the_case_page_decides_through_the_form(client, make_licence, staff_user):
    licence = make_licence()
    case = _case_for(client, licence)
    client.force_login(staff_user)
    page = client.post(f"/compliance/review/cases/{case.pk}/decide/", {"action": "suspend", "reason": "Breach"},
                       follow=True)
    assert page.status_code == 200 and b"Decision recorded" in page.content
    assert Grant.objects.get(pk=licence.grant.pk).state == Grant.State.SUSPENDED
