"""`manage.py reconcile` checks the books, not only metered billing: it exits 1 and names each
discrepancy — a grant counter that disagrees with its ledger, a reservation or an Idempotency-Key
claim left past its TTL, a receipt that does not match its output — and is clean when the books
balance."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from inference.models import IdempotencyKey, Receipt, UsageEntry
from licensing.models import Grant, QuotaReservation
from tests.inference.conftest import make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.inference.test_generation_api import post


def reconcile() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def generated(client, make_licence):
    licence = make_licence()
    response = post(client, licence, seed=1, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200, response.content
    return licence, UsageEntry.objects.get(grant=licence.grant)


def test_balanced_books_reconcile_clean(generated):
    code, out = reconcile()
    assert code == 0, out
    assert "0 discrepancies" in out and "1 ledger rows" in out and "1 receipts" in out


def test_a_grant_counter_that_disagrees_with_its_ledger_is_named(generated):
    licence, entry = generated
    Grant.objects.filter(pk=licence.grant.pk).update(used_tokens=entry.total_tokens + 7)
    code, out = reconcile()
    assert code == 1
    assert (f"grant {licence.grant.pk}: counts {entry.total_tokens + 7} used tokens but its ledger rows "
            f"sum to {entry.total_tokens}") in out


def test_a_reservation_left_past_its_expiry_is_named(generated):
    licence, _ = generated
    QuotaReservation.objects.create(request_id="gen_orphan", grant=licence.grant, tokens=40,
                                    expires_at=timezone.now() - timedelta(seconds=90))
    Grant.objects.filter(pk=licence.grant.pk).update(reserved_tokens=40)  # the counter agrees with the row
    code, out = reconcile()
    assert code == 1
    assert f"reservation gen_orphan: 40 tokens of grant {licence.grant.pk} still held" in out
    assert "reserved tokens but" not in out


def test_a_reserved_counter_without_its_reservation_is_named(generated):
    licence, _ = generated
    Grant.objects.filter(pk=licence.grant.pk).update(reserved_tokens=12)
    code, out = reconcile()
    assert code == 1 and f"grant {licence.grant.pk}: counts 12 reserved tokens but its reservations hold 0" in out


def test_an_idempotency_key_pending_past_its_ttl_is_named(generated):
    licence, _ = generated
    IdempotencyKey.objects.create(api_key=licence.key, key="k-dead", fingerprint="f" * 64, request_id="gen_dead",
                                  updated_at=timezone.now() - timedelta(minutes=5))
    code, out = reconcile()
    assert code == 1 and "idempotency key 'k-dead'" in out and "pending for request gen_dead" in out


def test_a_receipt_that_covers_other_text_than_its_output_is_named(generated):
    _, entry = generated
    receipt = Receipt.objects.get(usage_entry=entry)
    Receipt.objects.filter(pk=receipt.pk).update(output_sha256="0" * 64)
    code, out = reconcile()
    assert code == 1 and f"usage {entry.request_id}: receipt {receipt.id} covers other text than output 0" in out


def test_an_output_naming_a_missing_receipt_is_named(generated):
    _, entry = generated
    receipt_id = Receipt.objects.get(usage_entry=entry).pk
    Receipt.objects.filter(usage_entry=entry).delete()
    code, out = reconcile()
    assert code == 1 and f"output 0 names receipt {receipt_id}, which does not exist" in out


def test_the_sweeps_leave_nothing_for_reconcile_to_name(generated):
    from inference.idempotency import idempotency_keys_sweep
    from inference.services import reservation_ttl
    from licensing.quota import quota_reservations_sweep

    licence, _ = generated
    Grant.objects.filter(pk=licence.grant.pk).update(reserved_tokens=40)
    QuotaReservation.objects.create(request_id="gen_orphan", grant=licence.grant, tokens=40,
                                    expires_at=timezone.now() - timedelta(seconds=1))
    IdempotencyKey.objects.create(api_key=licence.key, key="k-dead", fingerprint="f" * 64, request_id="gen_dead",
                                  updated_at=timezone.now() - timedelta(minutes=5))
    assert quota_reservations_sweep() == 1 and idempotency_keys_sweep(stale_after=reservation_ttl()) == 1
    code, out = reconcile()
    assert code == 0, out
