"""Promises of automatic flags: each raised from where its event happens, with its evidence, and
a burst of one kind of event is one flag whose evidence counts them."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from compliance.models import Case, Flag, Severity
from compliance.services.cases import case_open_from_flag
from licensing.errors import ApiKeyInvalid
from licensing.services import apikey_authenticate, apikey_revoke, grant_set_state

from .conftest import generate_text, post, report


def test_a_purpose_the_licence_does_not_permit_raises_a_flag_with_the_attempt(
        client, make_licence, django_capture_on_commit_callbacks):
    licence = make_licence(uses=["personal"])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, licence, purpose="commercial").status_code == 403
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.PURPOSE_NOT_PERMITTED and flag.severity == Severity.MEDIUM
    assert (flag.grant_id, flag.customer_id) == (licence.grant.pk, licence.customer.pk)
    assert flag.evidence["count"] == 2 and flag.evidence["permitted_uses"] == ["personal"]
    attempt = flag.evidence["attempts"][0]
    assert attempt["purpose"] == "commercial" and attempt["key"] == licence.key.prefix and attempt["status"] == 403
    assert AuditEntry.objects.filter(event="flag.raised", subject_id=str(flag.pk)).count() == 1


def test_repeated_quota_exhaustion_raises_one_flag_at_the_threshold(
        client, make_licence, settings, django_capture_on_commit_callbacks):
    settings.COMPLIANCE_QUOTA_REFUSALS_THRESHOLD = 3
    licence = make_licence(quota={"tokens": 10, "period": "month"})
    for expected_flags in (0, 0, 1, 1):
        with django_capture_on_commit_callbacks(execute=True):  # runs the flag rules on leaving the block
            assert post(client, licence, max_new_tokens=32).status_code == 402
        assert Flag.objects.count() == expected_flags
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.QUOTA_EXHAUSTED_REPEATEDLY and flag.evidence["count"] == 4
    assert flag.evidence["threshold"] == 3 and len(flag.evidence["attempts"]) == 4


def test_repeated_rate_limit_hits_raise_a_flag(client, make_licence, settings, django_capture_on_commit_callbacks):
    settings.COMPLIANCE_RATE_REFUSALS_THRESHOLD = 2
    licence = make_licence(rate_limit_per_minute=1)
    statuses = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            statuses.append(post(client, licence, max_new_tokens=2).status_code)
    assert statuses == [200, 429, 429]
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.RATE_LIMITED_REPEATEDLY and flag.evidence["count"] == 2


def test_generating_under_a_revoked_grant_raises_a_high_flag(client, make_licence, django_capture_on_commit_callbacks):
    licence = make_licence()
    grant_set_state(grant_id=licence.grant.pk, state="revoked", reason="refund")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, licence).status_code == 403
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.USED_AFTER_REVOCATION and flag.severity == Severity.HIGH
    assert flag.evidence["grant_state"] == "revoked" and flag.evidence["grant_state_reason"] == "refund"


def test_an_expired_or_pending_grant_is_no_breach(client, make_licence, django_capture_on_commit_callbacks):
    licence = make_licence()
    grant_set_state(grant_id=licence.grant.pk, state="expired", reason="licence duration ended")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, licence).status_code == 403
    assert not Flag.objects.exists()


def test_a_revoked_api_key_presented_again_raises_a_flag_naming_its_grant(
        make_licence, django_capture_on_commit_callbacks):
    licence = make_licence()
    apikey_revoke(key_id=licence.key.pk, owner=licence.customer)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApiKeyInvalid):
            apikey_authenticate(licence.plaintext)
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.USED_AFTER_REVOCATION
    assert (flag.api_key_id, flag.grant_id, flag.customer_id) == (licence.key.pk, licence.grant.pk, licence.customer.pk)
    assert flag.evidence["count"] == 2 and flag.evidence["key_prefix"] == licence.key.prefix
    assert AuditEntry.objects.filter(event="apikey.used_after_revocation").count() == 2


def test_staff_open_a_case_from_flags_and_later_flags_join_it(
        client, make_licence, staff_user, django_capture_on_commit_callbacks):
    licence = make_licence(uses=["personal"])
    with django_capture_on_commit_callbacks(execute=True):
        post(client, licence, purpose="commercial")
    flag = Flag.objects.get()
    client.force_login(staff_user)
    response = client.post(f"/compliance/api/review/flags/{flag.pk}/case/")
    assert response.status_code == 201
    case = Case.objects.get()
    assert case.source == Case.Source.FLAG and case.opened_by == staff_user and case.grant_id == licence.grant.pk
    with django_capture_on_commit_callbacks(execute=True):
        post(client, licence, purpose="research")  # another purpose: a new flag, into the open case
    assert set(Flag.objects.values_list("case_id", flat=True)) == {case.pk}
    assert case_open_from_flag(flag_id=flag.pk, staff=staff_user) == case


def test_a_reported_text_joins_no_other_grants_flags(client, make_licence):
    first, second = make_licence(), make_licence()
    text = generate_text(client, first)["text"]
    report(client, text=text)
    assert not Flag.objects.filter(grant=second.grant).exists()


def test_staff_dismiss_a_flag_with_a_reason_and_later_events_raise_a_new_one(
        client, make_licence, staff_user, django_capture_on_commit_callbacks):
    licence = make_licence(uses=["personal"])
    with django_capture_on_commit_callbacks(execute=True):
        post(client, licence, purpose="commercial")
    flag = Flag.objects.get()
    client.force_login(staff_user)
    no_reason = client.post(f"/compliance/api/review/flags/{flag.pk}/dismissal/", data={"reason": ""},
                            content_type="application/json")
    assert no_reason.status_code == 400
    dismissed = client.post(f"/compliance/api/review/flags/{flag.pk}/dismissal/",
                            data={"reason": "Customer mistyped the purpose"}, content_type="application/json")
    assert dismissed.status_code == 200 and dismissed.json()["dismissed_reason"] == "Customer mistyped the purpose"
    assert client.get("/compliance/api/review/").json()["flags"] == []
    assert AuditEntry.objects.filter(event="flag.dismissed", subject_id=str(flag.pk)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        post(client, licence, purpose="commercial")
    assert [f["id"] for f in client.get("/compliance/api/review/").json()["flags"]] != [flag.pk]
    assert Flag.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_refusal_raises_its_flag_once_committed_without_turning_the_403_into_an_error(client, make_licence):
    # Real commits (no captured callbacks): the receiver's on_commit hook runs after the refusal is stored.
    licence = make_licence(uses=["personal"])
    response = post(client, licence, purpose="education")
    assert response.status_code == 403 and response.json()["error"]["code"] == "purpose_not_permitted"
    flag = Flag.objects.get()
    assert flag.kind == Flag.Kind.PURPOSE_NOT_PERMITTED and flag.evidence["attempts"][0]["purpose"] == "education"
    from audit.services import audit_chain_verify

    assert audit_chain_verify()[1] is None
