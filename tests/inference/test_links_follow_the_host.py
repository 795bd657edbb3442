"""A site started on another port, with SITE_URL unset, links to itself: the confirmation
e-mail, the licence's terms URL in an API response, and the receipt's issuer all carry the host
and port the request came to (a request with Host 127.0.0.1:8765 stands for `PORT=8765`)."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail

from inference.receipts import jws_parts

HOST = "127.0.0.1:8765"


@pytest.fixture(autouse=True)
def _no_site_url(settings):
    settings.SITE_URL = ""


def test_the_confirmation_email_links_to_the_host_the_account_signed_up_on(client, db,
                                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/account/signup/", {
            "username": "nell", "email": "nell@example.com", "password1": "pw-Imprint-123x",
            "password2": "pw-Imprint-123x", "is_customer": "on"}, headers={"host": HOST})
    assert response.status_code == 302, response.content
    link = re.search(r"https?://\S+/account/verify/\S+/", mail.outbox[0].body).group(0)
    assert link.startswith(f"http://{HOST}/account/verify/")
    assert client.get(link.removeprefix(f"http://{HOST}"), headers={"host": HOST}).status_code in (200, 302)


def test_the_licence_terms_url_and_the_receipt_issuer_name_the_host_of_the_request(client, make_licence):
    licence = make_licence()
    response = client.post("/api/v1/generations", data=json.dumps(
        {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 4}),
        content_type="application/json", headers={"Authorization": f"Bearer {licence.plaintext}", "host": HOST})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["licence"]["url"] == f"http://{HOST}/licences/terms/{licence.grant.terms_id}/"
    _, claims, _, _ = jws_parts(body["outputs"][0]["receipt"]["jws"])
    assert claims["iss"] == f"http://{HOST}"


def test_a_streamed_receipt_names_the_host_of_the_request_too(client, make_licence):
    licence = make_licence()
    response = client.post("/api/v1/generations", data=json.dumps(
        {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 3, "stream": True}),
        content_type="application/json", headers={"Authorization": f"Bearer {licence.plaintext}", "host": HOST})
    events = [json.loads(line[6:]) for line in b"".join(response.streaming_content).decode().splitlines()
              if line.startswith("data: {")]
    final = events[-1]
    assert final["type"] == "result" and final["licence"]["url"].startswith(f"http://{HOST}/")
    _, claims, _, _ = jws_parts(final["outputs"][0]["receipt"]["jws"])
    assert claims["iss"] == f"http://{HOST}"


def test_with_site_url_configured_every_link_uses_it_whatever_the_host(client, make_licence, settings):
    settings.SITE_URL = "https://imprint.example.com"
    licence = make_licence()
    response = client.post("/api/v1/generations", data=json.dumps(
        {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": 2}),
        content_type="application/json", headers={"Authorization": f"Bearer {licence.plaintext}", "host": HOST})
    body = response.json()
    assert body["licence"]["url"].startswith("https://imprint.example.com/licences/terms/")
    assert jws_parts(body["outputs"][0]["receipt"]["jws"])[1]["iss"] == "https://imprint.example.com"
