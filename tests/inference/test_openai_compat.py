"""The official `openai` client (from PyPI) works unchanged with base_url pointed at Imprint."""

from __future__ import annotations

import openai
import pytest
from django.utils.text import slugify

from inference.receipts import receipt_verify
from licensing.services import apikey_revoke


@pytest.fixture
def served(transactional_db, live_server, make_licence):
    licence = make_licence()
    client = openai.OpenAI(api_key=licence.plaintext, base_url=f"{live_server.url}/v1", max_retries=0)
    return licence, client


def test_the_openai_client_lists_models_and_gets_a_completion_with_its_receipt(served):
    licence, client = served
    assert str(licence.version.pk) in {m.model_extra["version"] for m in client.models.list().data}
    completion = client.completions.create(model=str(licence.version.pk), prompt="the quick brown",
                                           max_tokens=8, seed=1, extra_body={"purpose": "research"})
    text = completion.choices[0].text
    assert completion.usage.completion_tokens >= 1
    imprint = completion.model_extra["imprint"]
    assert imprint["purpose"] == "research" and imprint["licence"]["terms_id"] == licence.grant.terms_id
    assert receipt_verify(jws=imprint["receipts"][0]["jws"], text=text, prompt="the quick brown").valid


def test_the_openai_client_streams_a_completion(served):
    licence, client = served
    chunks = list(client.completions.create(model=str(licence.version.pk), prompt="the quick brown",
                                            max_tokens=6, stream=True, extra_body={"ignore_eos": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    final = chunks[-1].model_extra["imprint"]
    assert chunks[-1].usage.completion_tokens == 6
    assert receipt_verify(jws=final["receipts"][0]["jws"], text=text).valid


def test_the_openai_client_raises_its_usual_errors(served, make_licence):
    licence, client = served
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="00000000-0000-0000-0000-000000000000", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model=str(licence.version.pk), prompt="the quick", max_tokens=200)
    assert too_long.value.code == "context_length_exceeded"
    apikey_revoke(key_id=licence.key.pk, owner=licence.customer)
    with pytest.raises(openai.AuthenticationError) as revoked:
        client.completions.create(model=str(licence.version.pk), prompt="the quick", max_tokens=2)
    assert revoked.value.status_code == 401 and revoked.value.code == "invalid_api_key"


def test_models_are_listed_by_readable_id_owned_by_their_trainer_and_complete_by_it(served):
    licence, client = served
    trainer = licence.version.owner.username
    slug = slugify(licence.version.listing.title)
    models = client.models.list().data
    assert [m.id for m in models] == [f"{trainer}/{slug}", f"{trainer}/{slug}@{licence.version.digest[:12]}"]
    assert {m.owned_by for m in models} == {trainer}
    for model in (f"{trainer}/{slug}", f"{trainer}/{slug}@{licence.version.digest[:12]}", str(licence.version.pk)):
        completion = client.completions.create(model=model, prompt="the quick brown", max_tokens=4, seed=1)
        assert completion.choices[0].text is not None
        assert completion.model_extra["imprint"]["model_digest"] == licence.version.digest


def test_a_readable_id_names_only_what_the_key_is_licensed_for(served):
    licence, client = served
    trainer = licence.version.owner.username
    for model in (f"{trainer}/someone-elses-model", f"{trainer}/{slugify(licence.version.listing.title)}@0000000",
                  "nobody/anything"):
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model=model, prompt="x", max_tokens=2)


def test_chat_completions_answer_with_an_openai_error_pointing_at_completions(served):
    licence, client = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=str(licence.version.pk), messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "chat_not_supported" and refused.value.param == "messages"
    assert "/v1/completions" in refused.value.message
