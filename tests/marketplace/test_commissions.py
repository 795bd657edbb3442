"""Commissions in the local test mode (the same services as Stripe's, without the network): each
branch of a commission's life, and the promises about the customer's data and the exclusive model."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing.held import held_payment_pay_local_test
from billing.models import HeldPayment, PayoutEntry
from billing.reconciliation import billing_discrepancies
from compliance.models import Case
from licensing.models import Grant
from marketplace import commissions
from marketplace.errors import (
    CommissionNotFound,
    CommissionStateConflict,
    DeliveryInvalid,
    OfferNotFound,
    ProposalNotFound,
    VersionHeldExclusively,
)
from marketplace.models import Commission, Proposal
from marketplace.services import listing_publish
from tests import factories
from training.errors import TrainingError
from training.models import Sample
from training.services.jobs import job_create

from .commission_support import post, propose, version_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user, payments_test_mode):
    return {"customer": make_user("carl"), "tess": make_user("tess", trainer=True, customer=False),
            "tom": make_user("tom", trainer=True, customer=False)}


def _funded(people, **post_kwargs):
    commission = post(people["customer"], **post_kwargs)
    chosen = propose(people["tess"], commission)
    propose(people["tom"], commission, price_cents=45_000)
    commissions.proposal_accept(customer=people["customer"], proposal_id=chosen.pk)
    commission.refresh_from_db()
    held_payment_pay_local_test(held_id=commission.held_payment_id, card_number="4242 4242 4242 4242")
    commission.refresh_from_db()
    return commission


def _delivered(people, **post_kwargs):
    commission = _funded(people, **post_kwargs)
    version = version_on(people["tess"], commission.dataset)
    commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk, model_version_id=version.pk)
    commission.refresh_from_db()
    return commission


def test_accepting_a_proposal_declines_the_others_and_holds_the_payment(people):
    commission = _funded(people)
    assert commission.state == Commission.State.IN_PROGRESS
    assert commission.held_payment.state == HeldPayment.State.HELD
    assert commission.held_payment.amount_cents == 40_000 and commission.held_payment.payee == people["tess"]
    assert set(commission.proposals.values_list("trainer__username", "state")) == {
        ("tess", Proposal.State.ACCEPTED), ("tom", Proposal.State.DECLINED)}
    # Nothing is paid out while the money is held.
    assert not PayoutEntry.objects.exists()


def test_the_trainer_not_chosen_is_told_and_the_chosen_one_may_start(people, django_capture_on_commit_callbacks):
    commission = post(people["customer"])
    chosen, other = propose(people["tess"], commission), propose(people["tom"], commission)
    with django_capture_on_commit_callbacks(execute=True):
        commissions.proposal_accept(customer=people["customer"], proposal_id=chosen.pk)
    told = {m.to[0]: m.subject for m in mail.outbox}
    assert "another proposal was chosen" in told["tom@example.com"]
    assert "accepted" in told["tess@example.com"]
    assert Proposal.objects.get(pk=other.pk).state == Proposal.State.DECLINED


def test_accepting_the_delivery_pays_the_trainer_less_the_fee_once(people):
    commission = _delivered(people)
    grant = Grant.objects.get(pk=commission.grant_id)
    assert grant.state == Grant.State.PENDING  # no rights before acceptance
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)  # a double click
    for _ in range(2):  # the task after commit, then a sweep that finds nothing left
        commissions.commission_settle(commission_id=commission.pk)
        commissions.commissions_sweep()
    grant.refresh_from_db()
    assert grant.state == Grant.State.ACTIVE and grant.customer == people["customer"]
    assert grant.acceptance is not None and grant.acceptance.user == people["customer"]
    entry = PayoutEntry.objects.get(kind=PayoutEntry.Kind.COMMISSION)
    assert (entry.gross_cents, entry.platform_fee_cents, entry.trainer_cents) == (40_000, 8_000, 32_000)
    assert entry.trainer == people["tess"] and not entry.via_connect  # no Connect in local test mode: owed
    assert HeldPayment.objects.get(pk=commission.held_payment_id).state == HeldPayment.State.RELEASED
    assert billing_discrepancies()[0] == []


def test_the_rights_chain_names_the_customers_data(people):
    commission = _delivered(people)
    chain = Grant.objects.get(pk=commission.grant_id).terms.document["rights_chain"]
    assert chain["dataset"]["name"] == commission.dataset.name
    assert "Carl's Bakery" in chain["dataset"]["rights_holders"]


def test_one_revision_within_the_deadline_then_a_new_delivery(people):
    commission = _delivered(people)
    first_grant = commission.grant_id
    commissions.commission_request_revision(customer=people["customer"], commission_id=commission.pk,
                                            note="Shorter, please.")
    commission.refresh_from_db()
    assert commission.state == Commission.State.IN_PROGRESS and commission.revisions_used == 1
    assert Grant.objects.get(pk=first_grant).state == Grant.State.REVOKED
    second = version_on(people["tess"], commission.dataset)
    commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk, model_version_id=second.pk)
    with pytest.raises(CommissionStateConflict):
        commissions.commission_request_revision(customer=people["customer"], commission_id=commission.pk,
                                                note="Again.")
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)
    commission.refresh_from_db()
    assert commission.state == Commission.State.COMPLETED and commission.delivered_version == second


def test_a_revision_is_refused_after_the_deadline(people):
    commission = _delivered(people)
    Commission.objects.filter(pk=commission.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    with pytest.raises(CommissionStateConflict):
        commissions.commission_request_revision(customer=people["customer"], commission_id=commission.pk,
                                                note="Shorter.")


def test_a_dispute_opens_a_case_with_the_training_evidence(people, django_capture_on_commit_callbacks):
    commission = _delivered(people)
    job = commission.delivered_version.job
    Sample.objects.create(job=job, step=100, text="Our sourdough is crusty.", longest_copied_span=12,
                          ngram_overlap=0.42)
    job.metrics.create(step=100, train_loss=2.5, val_loss=2.9, perplexity=18.2)
    with django_capture_on_commit_callbacks(execute=True):
        commissions.commission_dispute(customer=people["customer"], commission_id=commission.pk,
                                       reason="It copies our catalogue word for word.")
    case = Case.objects.get(source=Case.Source.COMMISSION)
    assert case.grant_id == commission.grant_id and case.customer == people["customer"]
    training = case.evidence["training"]
    assert training["samples"][0]["ngram_overlap"] == 0.42 and training["memorisation"]["max_copied_span"] == 12
    assert training["metrics"][-1]["perplexity"] == 18.2
    assert case.evidence["reason"] == "It copies our catalogue word for word."
    # The money stays held while staff decide; the review window no longer runs.
    commissions.commissions_sweep(now=timezone.now() + timedelta(days=60))
    commission.refresh_from_db()
    assert commission.state == Commission.State.DISPUTED
    assert commission.held_payment.state == HeldPayment.State.HELD


def test_staff_deciding_a_dispute_for_the_customer_refunds(people, staff_user):
    commission = _delivered(people)
    commissions.commission_dispute(customer=people["customer"], commission_id=commission.pk, reason="Useless.")
    commissions.commission_dispute_resolve(staff=staff_user, commission_id=commission.pk, outcome="refund",
                                           reason="the samples copy the data")
    commissions.commission_settle(commission_id=commission.pk)
    commission.refresh_from_db()
    assert commission.state == Commission.State.CANCELLED
    assert commission.held_payment.state == HeldPayment.State.REFUNDED
    assert Grant.objects.get(pk=commission.grant_id).state == Grant.State.REVOKED


def test_a_missed_deadline_cancels_and_refunds(people):
    commission = _funded(people)
    commissions.commissions_sweep(now=commission.deadline + timedelta(seconds=1))
    commission.refresh_from_db()
    assert commission.state == Commission.State.CANCELLED and commission.cancel_reason == "deadline missed"
    held = HeldPayment.objects.get(pk=commission.held_payment_id)
    assert held.state == HeldPayment.State.REFUNDED and held.refund_reference
    assert not PayoutEntry.objects.exists()
    with pytest.raises(CommissionStateConflict):  # nothing can be delivered any more
        commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk,
                                       model_version_id=version_on(people["tess"], commission.dataset).pk)
    assert billing_discrepancies()[0] == []


def test_the_review_window_lapsing_accepts(people, settings):
    commission = _delivered(people)
    assert commissions.commissions_sweep()["accepted"] == 0  # the window is still open
    later = commission.review_ends_at + timedelta(seconds=1)
    assert commissions.commissions_sweep(now=later)["accepted"] == 1
    assert commissions.commissions_sweep(now=later)["accepted"] == 0  # a second run finds nothing
    commission.refresh_from_db()
    assert commission.state == Commission.State.COMPLETED
    assert commission.held_payment.state == HeldPayment.State.RELEASED
    assert Grant.objects.get(pk=commission.grant_id).state == Grant.State.ACTIVE
    assert PayoutEntry.objects.filter(kind=PayoutEntry.Kind.COMMISSION).count() == 1


def test_a_trainer_not_chosen_can_never_use_the_dataset(people, client):
    commission = _funded(people)
    with pytest.raises(TrainingError):
        job_create(owner=people["tom"], dataset=commission.dataset, name="sneaky", base_model="tiny",
                   hyperparameters={"steps": 10})
    client.force_login(people["tom"])
    response = client.post(reverse("training:job_create"), {"dataset": commission.dataset.pk, "base_model": "tiny",
                                                             "steps": 10})
    assert response.status_code == 404
    assert client.get(reverse("training:dataset", args=[commission.dataset.pk])).status_code == 404
    # The commission page no longer shows him anything but that it went to someone else.
    page = client.get(reverse("marketplace:commission_detail", args=[commission.pk]))
    assert commission.dataset.name not in page.content.decode()


def test_the_chosen_trainer_trains_on_the_data_but_never_downloads_it_or_the_exclusive_model(people, client):
    commission = _funded(people)
    job = job_create(owner=people["tess"], dataset=commission.dataset, name="for carl", base_model="tiny",
                     hyperparameters={"steps": 10})
    assert job.dataset == commission.dataset
    client.force_login(people["tess"])
    assert client.get(reverse("training:dataset", args=[commission.dataset.pk])).status_code == 404
    version = version_on(people["tess"], commission.dataset)
    assert client.get(reverse("training:version_file", args=[version.pk, "model.safetensors"])).status_code == 403
    with pytest.raises(VersionHeldExclusively):
        listing_publish(trainer=people["tess"], model_version_id=version.pk, title="Bakery GPT")


def test_nobody_else_can_buy_the_exclusive_version(people):
    commission = _delivered(people)
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)
    version = commission.delivered_version
    # Even a listing written around the rules offers nothing to anyone.
    from marketplace.models import Listing

    listing = Listing.objects.create(trainer=people["tess"], model_version=version, title="x", card="x",
                                     published=True)
    offer = factories.offer(listing, fee_cents=2500)
    from marketplace.services import order_create

    with pytest.raises(OfferNotFound):
        order_create(customer=factories.user("eve"), offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                     ip_address=None, provider="local_test")
    with pytest.raises(VersionHeldExclusively):
        listing_publish(trainer=people["tess"], model_version_id=version.pk, title="Bakery GPT")


def test_a_non_exclusive_commission_lets_the_trainer_list_the_version_later(people):
    commission = _delivered(people, exclusive=False)
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)
    listing = listing_publish(trainer=people["tess"], model_version_id=commission.delivered_version_id,
                              title="Bakery GPT")
    assert listing.published


def test_strangers_cannot_act_on_a_commission(people, make_user):
    commission = post(people["customer"])
    proposal, other = propose(people["tess"], commission), propose(people["tom"], commission)
    eve = make_user("eve")
    with pytest.raises(ProposalNotFound):
        commissions.proposal_accept(customer=eve, proposal_id=proposal.pk)
    commissions.proposal_accept(customer=people["customer"], proposal_id=proposal.pk)
    with pytest.raises(CommissionStateConflict):  # one proposal is accepted, once
        commissions.proposal_accept(customer=people["customer"], proposal_id=other.pk)
    with pytest.raises(CommissionNotFound):
        commissions.commission_get_for(user=eve, commission_id=commission.pk)
    with pytest.raises(CommissionNotFound):
        commissions.commission_deliver(trainer=people["tom"], commission_id=commission.pk, model_version_id=1)
    with pytest.raises(CommissionNotFound):
        commissions.commission_cancel(user=eve, commission_id=commission.pk)


def test_a_delivery_must_come_from_the_chosen_trainers_job_on_the_customers_data(people):
    commission = _funded(people)
    elsewhere = factories.model_version(people["tess"])  # trained on other data
    with pytest.raises(DeliveryInvalid):
        commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk,
                                       model_version_id=elsewhere.pk)
    toms = version_on(people["tom"], commission.dataset)
    with pytest.raises(DeliveryInvalid):
        commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk, model_version_id=toms.pk)


def test_held_money_shows_on_both_statements_until_it_is_paid_out(people, client):
    commission = _funded(people)
    client.force_login(people["customer"])
    page = client.get(reverse("marketplace:customer_statement")).content.decode()
    assert "Bakery product descriptions" in page and "USD 400.00" in page.split('id="held-total"')[1][:300]
    client.force_login(people["tess"])
    page = client.get(reverse("marketplace:trainer_statement")).content.decode()
    assert "USD 400.00" in page.split('id="held-total"')[1][:300]
    commissions.commission_deliver(trainer=people["tess"], commission_id=commission.pk,
                                   model_version_id=version_on(people["tess"], commission.dataset).pk)
    commissions.commission_accept(customer=people["customer"], commission_id=commission.pk)
    commissions.commission_settle(commission_id=commission.pk)
    page = client.get(reverse("marketplace:trainer_statement")).content.decode()
    assert "commission: Bakery product descriptions" in page and "USD 320.00" in page
    assert "nothing" in page.split('id="held-total"')[1][:200]
