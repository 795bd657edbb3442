"""A case offers only the decisions that apply to its grant's state: no "Reinstate" on an active
grant, no "Suspend" on a suspended one."""

from __future__ import annotations

import pytest

from compliance.services.cases import case_open, decision_actions
from licensing.models import Grant
from licensing.services import grant_set_state
from tests import factories


def _grant(state: str) -> Grant:
    grant = factories.grant(factories.user(), factories.offer(factories.listing()))
    return grant_set_state(grant_id=grant.pk, state=state, reason="test") if state != "active" else grant


@pytest.mark.django_db
@pytest.mark.parametrize(("state", "offered"), [
    ("active", ["dismiss", "warn", "suspend", "revoke"]),
    ("suspended", ["dismiss", "warn", "revoke", "reinstate"]),
    ("revoked", ["dismiss", "warn"]),
])
def test_it_offers_only_the_transitions_the_grant_allows(state, offered):
    assert [value for value, _ in decision_actions(_grant(state))] == offered


def test_the_case_page_shows_only_valid_buttons(client, staff_user):
    grant = _grant("active")
    case = case_open(grant=grant, source="flag", severity=20, summary="test")
    client.force_login(staff_user)

    page = client.get(f"/compliance/review/cases/{case.pk}/").content.decode()

    assert 'value="suspend"' in page and 'value="reinstate"' not in page
    grant_set_state(grant_id=grant.pk, state="suspended", reason="test")
    page = client.get(f"/compliance/review/cases/{case.pk}/").content.decode()
    assert 'value="reinstate"' in page and 'value="suspend"' not in page
