"""Staff decide a disputed commission on its compliance case page: release the held payment to the
trainer or refund the customer, with a note. The decision reaches the marketplace through billing's
signal (compliance and the marketplace never import each other), moves the money once, and is
refused to anyone who is not staff."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from billing.held import held_payment_pay_local_test
from billing.models import HeldPayment, PayoutEntry
from compliance.models import Case, Decision
from licensing.models import Grant
from marketplace import commissions
from marketplace.errors import CommissionNotFound
from marketplace.models import Commission

from .commission_support import post, propose, version_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user, payments_test_mode, staff_user):
    return {"customer": make_user("carl"), "tess": make_user("tess", trainer=True, customer=False),
            "stranger": make_user("eve"), "staff": staff_user}


@pytest.fixture
def disputed(people, django_capture_on_commit_callbacks):
    commission = post(people["customer"])
    chosen = propose(people["tess"], commission)
    commissions.proposal_accept(customer=people["customer"], proposal_id=chosen.pk)
    commission.refresh_from_db()
    held_payment_pay_local_test(held_id=commission.held_payment_id, card_number="4242 4242 4242 4242")
    version = version_on(people["tess"], commission.dataset)
    commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk, model_version_id=version.pk)
    with django_capture_on_commit_callbacks(execute=True):  # compliance hears of it from the audit log
        commissions.commission_dispute(customer=people["customer"], commission_id=commission.pk,
                                       reason="It copies our catalogue word for word.")
    commission.refresh_from_db()
    return commission, Case.objects.get(source=Case.Source.COMMISSION, grant_id=commission.grant_id)


def _decide(client, user, case, action: str, note: str = "The samples are original; the delivery stands."):
    client.force_login(user)
    return client.post(reverse("compliance:case_decide", args=[case.pk]), {"action": action, "reason": note})


def _snapshot(commission, case):
    commission.refresh_from_db()
    held = HeldPayment.objects.get(pk=commission.held_payment_id)
    return (commission.state, held.state, Grant.objects.get(pk=commission.grant_id).state,
            Case.objects.get(pk=case.pk).state, Decision.objects.count(), PayoutEntry.objects.count(),
            AuditEntry.objects.count())


def test_the_case_page_offers_release_or_refund_and_shows_the_dispute(client, people, disputed):
    _, case = disputed
    client.force_login(people["staff"])
    page = client.get(reverse("compliance:case_detail", args=[case.pk])).content.decode()
    assert "Release the payment to the trainer" in page and "Refund the customer" in page
    assert "It copies our catalogue word for word." in page
    # Until the money's fate is decided, the grant decisions are not offered.
    assert 'value="suspend"' not in page and 'value="dismiss"' not in page


def test_staff_release_pays_the_trainer_once_and_a_second_submit_changes_nothing(client, people, disputed):
    commission, case = disputed
    response = _decide(client, people["staff"], case, "release")
    assert response.status_code == 302
    commission.refresh_from_db()
    assert commission.state == Commission.State.COMPLETED
    assert Grant.objects.get(pk=commission.grant_id).state == Grant.State.ACTIVE
    decision = Decision.objects.get(case=case)
    assert decision.action == "release" and decision.grant_state_after == Grant.State.ACTIVE
    assert decision.staff == people["staff"] and "delivery stands" in decision.reason
    events = set(AuditEntry.objects.values_list("event", flat=True))
    assert {"case.decided", "commission.completed"} <= events
    commissions.commission_settle(commission_id=commission.pk)  # what the task does after commit
    assert HeldPayment.objects.get(pk=commission.held_payment_id).state == HeldPayment.State.RELEASED
    before = _snapshot(commission, case)
    # Double submit, and a change of mind, both find the money already moved.
    for action in ("release", "refund"):
        again = _decide(client, people["staff"], case, action)
        assert again.status_code == 302
        assert _snapshot(commission, case) == before
    assert PayoutEntry.objects.filter(held_payment_id=commission.held_payment_id).count() == 1


def test_staff_refund_cancels_and_returns_the_money(client, people, disputed):
    commission, case = disputed
    _decide(client, people["staff"], case, "refund", note="The samples copy the customer's data.")
    commission.refresh_from_db()
    assert commission.state == Commission.State.CANCELLED
    assert "dispute decided for the customer" in commission.cancel_reason
    assert Grant.objects.get(pk=commission.grant_id).state == Grant.State.REVOKED
    assert Decision.objects.get(case=case).grant_state_after == Grant.State.REVOKED
    commissions.commission_settle(commission_id=commission.pk)
    assert HeldPayment.objects.get(pk=commission.held_payment_id).state == HeldPayment.State.REFUNDED
    assert not PayoutEntry.objects.exists()


@pytest.mark.parametrize("who", ["stranger", "customer", "tess"])
def test_nobody_but_staff_can_decide_the_dispute(client, people, disputed, who):
    commission, case = disputed
    before = _snapshot(commission, case)
    assert _decide(client, people[who], case, "release").status_code == 403
    assert _decide(client, people[who], case, "refund").status_code == 403
    assert _snapshot(commission, case) == before


def test_the_marketplace_refuses_a_resolution_from_anyone_but_staff(people, disputed):
    commission, _ = disputed
    with pytest.raises(CommissionNotFound):
        commissions.commission_dispute_resolve(staff=people["customer"], commission_id=commission.pk,
                                               outcome="refund", reason="I want my money back")
    commission.refresh_from_db()
    assert commission.state == Commission.State.DISPUTED


def test_grant_decisions_wait_for_the_dispute_and_release_needs_a_commission_case(client, people, disputed):
    commission, case = disputed
    before = _snapshot(commission, case)
    _decide(client, people["staff"], case, "dismiss")
    assert _snapshot(commission, case) == before
    # Once the dispute is decided, the grant can be acted on as in any case.
    _decide(client, people["staff"], case, "release")
    _decide(client, people["staff"], case, "suspend", note="Suspended while we check a new report.")
    assert Grant.objects.get(pk=commission.grant_id).state == Grant.State.SUSPENDED
    other = Case.objects.create(grant=Grant.objects.get(pk=commission.grant_id), customer=people["customer"],
                                model_version=commission.delivered_version, source=Case.Source.FLAG,
                                summary="A flag")
    _decide(client, people["staff"], other, "refund")
    assert not other.decisions.exists()
    commission.refresh_from_db()
    assert commission.state == Commission.State.COMPLETED
