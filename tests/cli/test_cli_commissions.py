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
from tests.support.corpus import corpus_text
from training.models import DatasetUpload

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
    assert "Completed (accepted by the customer)" in shown and "Proposal received from tess: USD 80.00" in shown
    Commission.objects.get(pk=commission.pk)
    from marketplace.commissions import commissions_sweep

    commissions_sweep()  # what the beat does if the task after commit was lost
    assert HeldPayment.objects.get().state == HeldPayment.State.RELEASED
    assert PayoutEntry.objects.get().trainer_cents == 6400


def test_posting_with_data_uploads_the_file_and_trainers_see_only_its_statistics(
        as_user, celery_workers, make_user, payments_test_mode, tmp_path, capsys):
    celery_workers.start(queues="default", pool="threads", concurrency=1)  # processes the upload
    carl, tess = make_user("carl"), make_user("tess", trainer=True, customer=False)
    data = tmp_path / "bakery.txt"
    data.write_text(corpus_text(documents=20, words=40))
    deadline = (timezone.now() + timedelta(days=7)).isoformat()
    assert as_user(carl, "post", "--title", "Bakery copy", "--description", "Warm, short descriptions.",
                   "--budget-cents", "9000", "--deadline", deadline, "--data", str(data), "--licence", "cc-by-4.0",
                   "--rights-holder", "Carl's Bakery", "--show-stats", scopes=("read", "marketplace", "training")) == 0
    assert "Posted commission" in capsys.readouterr().out
    commission = Commission.objects.select_related("dataset_upload__dataset").get()
    upload = commission.dataset_upload
    assert upload.owner == carl and upload.state == DatasetUpload.State.READY
    assert upload.dataset.licence == "cc-by-4.0" and upload.dataset.rights_holders == ["Carl's Bakery"]
    assert upload.dataset.stats["documents"] == 20
    # A trainer looking at the open commission sees the statistics the customer allowed, not the file.
    assert as_user(tess, "show", str(commission.pk)) == 0
    listed = capsys.readouterr().out
    assert "Bakery copy" in listed and "bakery.txt" not in listed
    # The same file again is found by its digest: a second commission reuses the upload.
    assert as_user(carl, "post", "--title", "More bakery copy", "--description", "Again.", "--budget-cents", "9000",
                   "--deadline", deadline, "--data", str(data), "--licence", "cc-by-4.0",
                   scopes=("read", "marketplace", "training")) == 0
    assert Commission.objects.count() == 2 and DatasetUpload.objects.filter(state="ready").count() >= 1


def test_posting_with_a_refused_file_posts_nothing(as_user, celery_workers, make_user, payments_test_mode, tmp_path):
    celery_workers.start(queues="default", pool="threads", concurrency=1)
    carl = make_user("carl")
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"GIF89a\x00\x01" + b"\x00" * 64)
    with pytest.raises(SystemExit, match="Refused: .*binary"):
        as_user(carl, "post", "--title", "Photos", "--description", "From a photo.", "--budget-cents", "9000",
                "--deadline", (timezone.now() + timedelta(days=7)).isoformat(), "--data", str(binary),
                scopes=("read", "marketplace", "training"))
    assert not Commission.objects.exists()


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
