"""Grants expire when their duration ends, and monthly quotas start afresh each month."""

from datetime import timedelta

import pytest
from django.utils import timezone

from licensing.errors import GrantStateError
from audit.models import AuditEntry
from licensing.models import Grant
from licensing.services import (
    grant_set_state,
    grants_expire_due,
    grants_reset_quota_periods_due,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def offer():
    return factories.offer(factories.listing(), duration_days=30)


def test_grants_expire_after_their_duration(customer, offer):
    grant = factories.grant(customer, offer)
    assert grant.expires_at - grant.starts_at == timedelta(days=30)
    assert grants_expire_due(now=grant.expires_at - timedelta(seconds=1)) == 0
    assert grants_expire_due(now=grant.expires_at) == 1
    assert Grant.objects.get(pk=grant.pk).state == Grant.State.EXPIRED
    assert grants_expire_due(now=grant.expires_at) == 0
    assert AuditEntry.objects.filter(event="grant.expired", subject_id=str(grant.pk)).count() == 1


def test_perpetual_grants_never_expire(customer):
    grant = factories.grant(customer, factories.offer(factories.listing(), duration_days=None))
    assert grant.expires_at is None
    assert grants_expire_due(now=timezone.now() + timedelta(days=36_500)) == 0


def test_monthly_quota_resets_but_reservations_stay(customer, offer):
    grant = factories.grant(customer, offer)
    Grant.objects.filter(pk=grant.pk).update(used_tokens=90_000, reserved_tokens=500)
    start = grant.period_started_at
    assert grants_reset_quota_periods_due(now=start + timedelta(days=27)) == 0
    assert grants_reset_quota_periods_due(now=start + timedelta(days=32)) == 1
    grant.refresh_from_db()
    assert (grant.used_tokens, grant.reserved_tokens) == (0, 500)
    assert grant.period_started_at > start


def test_total_quotas_never_reset(customer):
    grant = factories.grant(customer, factories.offer(factories.listing(), quota={"tokens": 1000, "period": "total"}))
    Grant.objects.filter(pk=grant.pk).update(used_tokens=900)
    assert grants_reset_quota_periods_due(now=timezone.now() + timedelta(days=90)) == 0
    assert Grant.objects.get(pk=grant.pk).used_tokens == 900


def test_a_revoked_grant_cannot_be_reinstated(customer, offer):
    grant = factories.grant(customer, offer)
    grant_set_state(grant_id=grant.pk, state="revoked", reason="refund")
    with pytest.raises(GrantStateError):
        grant_set_state(grant_id=grant.pk, state="active", reason="oops")


def test_the_quota_can_never_be_overspent_even_by_a_buggy_caller(customer, offer):
    from django.db import IntegrityError, transaction

    grant = factories.grant(customer, offer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Grant.objects.filter(pk=grant.pk).update(used_tokens=grant.quota_tokens, reserved_tokens=1)
