"""A database made with the previous layout (audit chain, compliance records and quota reservations
under licensing and inference) migrates forward with every row in its new home, on the database
the suite runs on (SQLite here, PostgreSQL in CI)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("accounts", "0001_initial"), ("training", "0002_jobmetric_attempt"),
          ("licensing", "0003_flag_dismissal"), ("inference", "0002_quotareservation"),
          ("marketplace", "0004_payout_account_transfers_active")]
AFTER = [("audit", "0001_initial"), ("compliance", "0001_initial"),
         ("licensing", "0005_move_out_audit_and_compliance"), ("inference", "0003_quotareservation_moves_to_licensing"),
         ("marketplace", "0005_grants_of_metered_offers_are_metered")]


@pytest.fixture
def migrate_to(transactional_db):
    """migrate_to(targets) -> the apps of that state; the database goes back to the latest after."""

    def migrate(targets):
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
        executor.loader.build_graph()
        return executor.loader.project_state(targets).apps

    yield migrate
    call_command("migrate", verbosity=0)


def _old_version(apps):
    """(user, model version, licence terms) written through the given state's models."""
    user = apps.get_model("accounts", "User").objects.create(username="old-customer", email="old@example.com")
    dataset_model = apps.get_model("training", "Dataset")
    # Later states add required fields: give them, but only to a state that has them.
    later = {"upload_sha256": "a" * 64}
    known = {f.name for f in dataset_model._meta.get_fields()}
    dataset = dataset_model.objects.create(
        owner=user, name="d", file="datasets/d.txt", sha256="a" * 64, size_bytes=1, licence="cc0-1.0",
        **{k: v for k, v in later.items() if k in known})
    job = apps.get_model("training", "TrainingJob").objects.create(
        owner=user, dataset=dataset, name="j", base_model="tiny", total_steps=1)
    version = apps.get_model("training", "ModelVersion").objects.create(
        owner=user, job=job, name="v", from_step=1, storage_prefix="models/v", digest="b" * 64,
        parameter_count=1, base_model="tiny", dataset_digest="a" * 64, dataset_licence="cc0-1.0",
        n_positions=128, card="card")
    terms = apps.get_model("licensing", "LicenceTerms").objects.create(
        sha256="c" * 64, document={"uses": ["personal"]}, canonical="{}", uses_index=" personal ")
    return user, version, terms


def _old_rows(apps) -> dict:
    """Rows of every moved model (and a metered sale) written through the old layout's models."""
    user, version, terms = _old_version(apps)
    grant = apps.get_model("licensing", "Grant").objects.create(
        customer=user, model_version=version, terms=terms, quota_tokens=1000, state="active", reserved_tokens=7)
    licensing = {name: apps.get_model("licensing", name) for name in
                 ("AuditChainHead", "AuditEntry", "Report", "Case", "Flag", "Decision", "CustomerAnswer")}
    licensing["AuditEntry"].objects.create(id=1, created_at=timezone.now(), event="grant.created",
                                           prev_hash="0" * 64, entry_hash="d" * 64, data={"n": 1})
    licensing["AuditChainHead"].objects.create(id=1, last_entry_id=1, last_hash="d" * 64)
    report = licensing["Report"].objects.create(text="found text", verification={"verdict": "no_evidence"})
    case = licensing["Case"].objects.create(grant=grant, customer=user, model_version=version, source="report",
                                            report=report, summary="old case")
    licensing["Flag"].objects.create(kind="watermark_detected", severity=30, grant=grant, customer=user, case=case,
                                     dedupe_key="old-flag")
    licensing["Decision"].objects.create(case=case, staff=user, action="warn", reason="old reason",
                                         grant_state_after="active")
    licensing["CustomerAnswer"].objects.create(case=case, author=user, text="old answer")
    apps.get_model("inference", "QuotaReservation").objects.create(
        request_id="gen_old", grant=grant, tokens=7, expires_at=timezone.now() + dt.timedelta(minutes=5))
    _old_metered_sale(apps, user=user, version=version, terms=terms, grant=grant)
    return {"grant": grant.pk, "case": case.pk, "report": report.pk}


def _old_metered_sale(apps, *, user, version, terms, grant) -> None:
    listing = apps.get_model("marketplace", "Listing").objects.create(trainer=user, model_version=version, title="t")
    offer = apps.get_model("marketplace", "Offer").objects.create(
        listing=listing, name="metered", terms=terms, fee_cents=0, currency="usd", metered_cents_per_1k=5)
    acceptance = apps.get_model("licensing", "Acceptance").objects.create(user=user, terms=terms)
    return apps.get_model("marketplace", "Order").objects.create(
        customer=user, offer=offer, terms=terms, acceptance=acceptance, grant=grant, amount_cents=0, currency="usd")


@pytest.mark.slow
def test_a_database_of_the_previous_layout_migrates_with_every_row_in_its_new_home(migrate_to):
    ids = _old_rows(migrate_to(BEFORE))
    apps = migrate_to(AFTER)

    entry = apps.get_model("audit", "AuditEntry").objects.get()
    assert (entry.event, entry.entry_hash, entry.data) == ("grant.created", "d" * 64, {"n": 1})
    assert apps.get_model("audit", "AuditChainHead").objects.get().last_entry_id == 1
    case = apps.get_model("compliance", "Case").objects.get(pk=ids["case"])
    assert (case.summary, str(case.grant_id), case.report_id) == ("old case", str(ids["grant"]), ids["report"])
    assert apps.get_model("compliance", "Flag").objects.get().case_id == case.pk
    assert apps.get_model("compliance", "Decision").objects.get().reason == "old reason"
    assert apps.get_model("compliance", "CustomerAnswer").objects.get().text == "old answer"
    assert apps.get_model("compliance", "Report").objects.get().verification == {"verdict": "no_evidence"}
    reservation = apps.get_model("licensing", "QuotaReservation").objects.get()
    assert (reservation.request_id, reservation.tokens, str(reservation.grant_id)) == ("gen_old", 7, str(ids["grant"]))
    grant = apps.get_model("licensing", "Grant").objects.get(pk=ids["grant"])
    assert grant.metered and grant.reserved_tokens == 7


@pytest.mark.slow
def test_the_moved_models_content_types_follow_them(migrate_to):
    old = migrate_to(BEFORE)
    content_type = old.get_model("contenttypes", "ContentType")
    for model in ("auditentry", "case", "flag"):
        content_type.objects.get_or_create(app_label="licensing", model=model)
    content_type.objects.get_or_create(app_label="inference", model="quotareservation")
    new = migrate_to(AFTER).get_model("contenttypes", "ContentType")
    labels = dict(new.objects.filter(model__in=["auditentry", "case", "flag", "quotareservation"])
                  .values_list("model", "app_label"))
    assert labels == {"auditentry": "audit", "case": "compliance", "flag": "compliance",
                      "quotareservation": "licensing"}
