"""Promises of the sampling parameters at the edges that take them from callers: both APIs and
the playground refuse what `SamplingParams` refuses, naming the parameter in each API's own words,
and the receipts keep the APIs' names."""

from __future__ import annotations

import json

import pytest

from inference.receipts import receipt_verify
from licensing.models import Grant


def _post(client, licence, url, **body):
    return client.post(url, data=json.dumps({"model": str(licence.version.pk), "prompt": "the quick brown", **body}),
                       content_type="application/json", headers={"Authorization": f"Bearer {licence.plaintext}"})


@pytest.mark.parametrize(("url", "body", "param"), [
    ("/api/v1/generations", {"top_p": 0.0}, "top_p"),
    ("/api/v1/generations", {"max_new_tokens": 4097}, "max_new_tokens"),
    ("/api/v1/generations", {"n": 9}, "n"),
    ("/v1/completions", {"top_p": 0.0}, "top_p"),
    ("/v1/completions", {"max_tokens": 0}, "max_tokens"),
    ("/v1/completions", {"max_new_tokens": 0, "max_tokens": 4}, None),  # not an OpenAI field: ignored
])
def test_it_refuses_what_sampling_params_refuses_naming_the_apis_own_parameter(client, make_licence, url, body,
                                                                                  param):
    licence = make_licence()
    response = _post(client, licence, url, **body)
    if param is None:
        assert response.status_code == 200, response.content
        return
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_value" and error["param"] == param
    assert Grant.objects.get(pk=licence.grant.pk).used_tokens == 0


def test_it_keeps_ignore_eos_in_the_receipts_params(client, make_licence):
    licence = make_licence()
    output = _post(client, licence, "/api/v1/generations", max_new_tokens=5, ignore_eos=True, seed=3,
                   temperature=0.5).json()["outputs"][0]
    claims = receipt_verify(jws=output["receipt"]["jws"], text=output["text"]).claims
    assert claims["params"] == {"max_new_tokens": 5, "temperature": 0.5, "top_k": 0, "top_p": 1.0, "n": 1,
                                "seed": 3, "index": 0, "ignore_eos": True}


def test_the_playground_shows_an_out_of_range_value_as_an_error(client, make_licence):
    licence = make_licence()
    client.force_login(licence.customer)
    page = client.post("/playground/", {"model": str(licence.version.pk), "prompt": "the quick brown",
                                        "max_new_tokens": "8", "temperature": "50", "purpose": "personal"})
    assert page.status_code == 200 and b"temperature must be between 0 and 5.0" in page.content
    assert licence.customer.grants.get().used_tokens == 0
