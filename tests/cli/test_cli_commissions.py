"""`imprint commissions …` and the commissions API with personal access tokens, against the live
site in local test mode: post, propose, accept, pay, deliver, accept; strangers and wrong scopes
refused in the API's one error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import token_create
from billing.models import HeldPayment, PayoutEntry
from imprint_cli.cli import main
from marketplace.models import Commission
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def payments_test_mode(settings):
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.PAYMENTS_TEST_MODE = "", "", True


@pytest.fixture
def as_user(live_server, monkeypatch, tmp_path):
    monkeypatch.setenv("IMPRINT_URL", live_server.url)
    monkeypatch.setenv("IMPRINT_CONFIG", str(tmp_path / "config.json"))

    def run(user, *args, scopes=("read", "marketplace")) -> int:
        monkeypatch.setenv("IMPRINT_TOKEN", token_create(owner=user, name="cli", scopes=list(scopes))[1])
        return main(["commissions", *args])

    return run


def test_a_commission_from_post_to_payout_in_the_terminal(as_user, make_user, payments_test_mode, capsys):
    carl, tess = make_user("carl"), make_user("tess", trainer=True, customer=False)
    deadline = (timezone.now() + timedelta(days=7)).isoformat()
    assert as_user(carl, "post", "--title", "Poems", "--description", "Short poems.", "--budget-cents", "9000",
                   "--deadline", deadline, "--uses", "personal,commercial") == 0
    commission = Commission.objects.get()
    assert as_user(tess, "propose", str(commission.pk), "--price-cents", "8000",
                   "--delivery", (timezone.now() + timedelta(days=5)).isoformat()) == 0
    assert as_user(tess, "list") == 0 and "Poems" in capsys.readouterr().out
    proposal = commission.proposals.get()
    assert as_user(carl, "accept-proposal", str(proposal.pk)) == 0
    assert as_user(carl, "pay", str(commission.pk)) == 0
    assert "held" in capsys.readouterr().out
    version = factories.model_version(tess)  # trained for it, after it was posted
    assert as_user(tess, "deliver", str(commission.pk), str(version.pk)) == 0
    assert as_user(carl, "accept", str(commission.pk)) == 0
    assert as_user(carl, "show", str(commission.pk)) == 0
    shown = capsys.readouterr().out
    assert "commission.completed" in shown and "proposal" in shown
    Commission.objects.get(pk=commission.pk)
    from marketplace.commissions import commissions_sweep

    commissions_sweep()  # what the beat does if the task after commit was lost
    assert HeldPayment.objects.get().state == HeldPayment.State.RELEASED
    assert PayoutEntry.objects.get().trainer_cents == 6400


def test_the_api_refuses_strangers_and_tokens_without_the_scope(client, make_user, payments_test_mode):
    from marketplace.commissions import commission_create

    carl, eve = make_user("carl"), make_user("eve")
    commission = commission_create(customer=carl, title="Poems", description="Short.", examples=[],
                                   budget_cents=9000, currency="usd", uses=["personal"], ownership="customer",
                                   exclusive=True, deadline=timezone.now() + timedelta(days=3))
    url = f"/api/v1/marketplace/commissions/{commission.pk}/"
    eve_token = token_create(owner=eve, name="x", scopes=["read", "marketplace"])[1]
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {eve_token}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "commission_not_found"
    reader = token_create(owner=carl, name="r", scopes=["read"])[1]
    response = client.post(f"{url}cancel/", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert response.status_code == 403
    bad = client.post("/api/v1/marketplace/commissions/", {"title": "x", "description": "y", "budget_cents": 1,
                                                           "uses": ["personal"], "deadline": "2099-01-01T00:00:00Z"},
                      content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {token_create(owner=carl, name='w', scopes=['marketplace'])[1]}")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_cents"
