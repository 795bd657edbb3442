"""Compliance hooks in the request paths: a revoked key presented to the API, and an altered text
checked on the verify API and page, each raise a flag (the altered text's about its presenter)."""

from compliance.models import Flag
from licensing.services import apikey_revoke

from .conftest import post


def test_a_revoked_key_presented_to_the_api_raises_a_flag(client, make_licence, django_capture_on_commit_callbacks):
    licence = make_licence()
    apikey_revoke(key_id=licence.key.pk, owner=licence.customer)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, licence).status_code == 401
    flag = Flag.objects.get()
    assert flag.kind == "used_after_revocation" and flag.grant_id == licence.grant.pk
    assert flag.evidence["count"] == 2


def test_the_verify_api_and_page_flag_an_altered_text_once_about_its_presenter(client, make_licence):
    licence = make_licence()
    out = post(client, licence, max_new_tokens=12).json()["outputs"][0]
    client.post("/api/v1/verifications", data={"text": out["text"] + "!", "receipt": out["receipt"]["jws"]},
                content_type="application/json")
    client.post("/verify/", {"text": out["text"] + "!", "receipt": out["receipt"]["jws"], "prompt": ""})
    flag = Flag.objects.get()  # one flag for the receipt, whichever way it was presented
    assert flag.grant_id is None and flag.evidence["receipt_belongs_to"]["grant"] == str(licence.grant.pk)
    assert flag.evidence["count"] == 2
