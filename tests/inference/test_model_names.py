"""A bought model has one name everywhere: its listing's title ("Poe Nocturnes") and its readable
id `trainer/slug` (`@digest12` for the version) on My licences, the key's grant list, the
playground, the compliance case page, the decision e-mail and every API response, the
OpenAI-compatible `model` included."""

from __future__ import annotations

import json
import re

import openai
import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from compliance.models import Case, Decision, Severity
from compliance.services.cases import decision_notify
from marketplace.models import Listing
from training.models import ModelVersion

TITLE = "Poe Nocturnes"
READABLE = "ravenpoet/poe-nocturnes"


def _named(licence):
    """The licence's model, listed as "Poe Nocturnes" by ravenpoet (its version keeps its own name)."""
    User.objects.filter(pk=licence.version.owner_id).update(username="ravenpoet")
    ModelVersion.objects.filter(pk=licence.version.pk).update(name="Poe tiny 400 · step 400")
    Listing.objects.filter(model_version=licence.version).update(title=TITLE)
    licence.version = ModelVersion.objects.get(pk=licence.version.pk)
    return licence


@pytest.fixture
def bought(make_licence):
    return _named(make_licence())


def _pinned(licence) -> str:
    return f"{READABLE}@{licence.version.digest[:12]}"


def _shows_the_name(html: str, licence) -> None:
    assert TITLE in html and READABLE in html and licence.version.digest[:12] in html
    assert "Poe tiny 400" not in html


@pytest.mark.parametrize("page", ["marketplace:customer_home", "licensing:api_keys", "inference:playground"])
def test_the_customers_pages_name_the_model_by_its_title_and_readable_id(client, bought, page):
    client.force_login(bought.customer)
    response = client.get(reverse(page))
    assert response.status_code == 200
    _shows_the_name(response.content.decode(), bought)


def test_the_licence_page_is_titled_with_the_model_and_its_trainer(client, bought):
    client.force_login(bought.customer)
    html = client.get(reverse("licensing:grant_detail", args=[bought.grant.pk])).content.decode()
    assert f"<h1>Licence for {TITLE}</h1>" in html
    _shows_the_name(html, bought)


def test_the_compliance_case_page_and_the_decision_email_name_the_model(client, bought, staff_user):
    case = Case.objects.create(grant=bought.grant, customer=bought.customer, model_version=bought.version,
                               source=Case.Source.FLAG, summary="Purpose not permitted", severity=Severity.MEDIUM)
    client.force_login(staff_user)
    html = client.get(reverse("compliance:case_detail", args=[case.pk])).content.decode()
    assert re.search(r"Poe Nocturnes</strong>", html) and READABLE in html
    decision = Decision.objects.create(case=case, staff=staff_user, action="warn", reason="Research only.",
                                       grant_state_after="active")
    decision_notify(decision=decision)
    assert all(f"{TITLE} ({_pinned(bought)})" in m.body for m in mail.outbox) and mail.outbox


def test_the_apis_carry_the_name_beside_the_ids(client, bought):
    auth = {"Authorization": f"Bearer {bought.plaintext}"}
    body = client.post("/api/v1/generations", data=json.dumps(
        {"model": READABLE, "prompt": "the quick brown", "max_new_tokens": 2}),
        content_type="application/json", headers=auth).json()
    assert body["model"] == str(bought.version.pk)  # the existing ids stay
    assert (body["model_name"], body["model_title"]) == (_pinned(bought), TITLE)

    client.force_login(bought.customer)
    grants = client.get("/api/v1/licences/grants/").json()["data"]
    assert (grants[0]["model_title"], grants[0]["model_name"]) == (TITLE, _pinned(bought))
    keys = client.get("/api/v1/licences/keys/").json()["data"]
    assert keys[0]["grant_models"] == [{"grant": str(bought.grant.pk), "model_title": TITLE,
                                        "model_name": _pinned(bought)}]


@pytest.fixture
def served(transactional_db, live_server, make_licence):
    licence = _named(make_licence())
    return licence, openai.OpenAI(api_key=licence.plaintext, base_url=f"{live_server.url}/v1", max_retries=0)


def test_the_openai_client_gets_back_the_model_id_it_asked_for(served):
    licence, client = served
    assert client.completions.create(model=READABLE, prompt="the quick", max_tokens=2).model == READABLE
    pinned = _pinned(licence)
    assert client.completions.create(model=pinned, prompt="the quick", max_tokens=2).model == pinned
    chunks = list(client.completions.create(model=READABLE, prompt="the quick", max_tokens=2, stream=True))
    assert {c.model for c in chunks} == {READABLE}
    by_uuid = client.completions.create(model=str(licence.version.pk), prompt="the quick", max_tokens=2)
    assert by_uuid.model == pinned  # asked by UUID: the readable id of what answered
    assert {m.model_extra["name"] for m in client.models.list().data} == {TITLE}
