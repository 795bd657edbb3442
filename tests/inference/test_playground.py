"""The playground: max tokens follows the model's context, the prompt shows with its continuation,
an early stop at end of text is explained, the output and a new API key can be copied, and the
licence reads in words with no empty rows."""

import json
import re

import pytest

import inference.views as playground_views
from inference.views import PLAYGROUND_MAX_NEW_TOKENS


def _post(client, licence, **overrides):
    data = {"model": str(licence.version.pk), "prompt": "the quick brown", "max_new_tokens": "8",
            "temperature": "1.0", "purpose": "personal"} | overrides
    return client.post("/playground/", data).content.decode()


@pytest.fixture
def signed_in(client, make_licence):
    def make(**terms):
        licence = make_licence(**terms)
        client.force_login(licence.customer)
        return licence
    return make


def test_it_bounds_max_tokens_by_the_chosen_models_context(client, signed_in):
    licence = signed_in()  # a 128-position model
    page = client.get("/playground/").content.decode()
    assert re.search(r'id="p-max"[^>]* max="127"', page)
    assert f'max="{PLAYGROUND_MAX_NEW_TOKENS}"' not in page
    assert "at most <span id=\"p-context\">128</span> tokens in all" in page
    limits = json.loads(re.search(r'<script id="p-limits" type="application/json">(.*?)</script>', page).group(1))
    assert limits == {str(licence.version.pk): {"max_new_tokens": 127, "context": 128}}


def test_it_refuses_a_prompt_and_output_past_the_context_in_words(client, signed_in):
    licence = signed_in()
    page = _post(client, licence, max_new_tokens="200")
    assert "Too long for this model: it reads and writes at most 128 tokens in all, prompt included." in page
    assert re.search(r"Your prompt is (\d+) tokens, so at most \d+ new tokens fit \(you asked for 200\)", page)
    assert licence.customer.grants.get().used_tokens == 0


def test_it_shows_the_prompt_then_the_continuation_with_a_copy_button(client, signed_in):
    page = _post(client, signed_in())
    assert '<span class="completion-prompt" title="Your prompt">the quick brown</span>' in page
    assert '<span class="completion-text" id="output-1"' in page
    assert 'data-copy="output-1"' in page and "js/copy.js" in page


def _first_output_finished(monkeypatch, **fields) -> None:
    """The playground's next generation reports its first output finished as `fields` say."""
    settle = playground_views.generation_settle

    def settled(prepared, result):
        entry = settle(prepared, result)
        entry.response["outputs"][0].update(fields)
        return entry

    monkeypatch.setattr(playground_views, "generation_settle", settled)


def test_it_says_why_an_output_stopped_early_and_that_the_prompt_is_billed(client, signed_in, monkeypatch):
    _first_output_finished(monkeypatch, finish_reason="stop", tokens=3)
    page = _post(client, signed_in())
    assert re.search(r"Stopped at end of text after 3 tokens \(you allowed 8\): the model ended the passage "
                     r"there\. The prompt's \d+ tokens are billed as well\.", page)


def test_an_output_that_ran_to_its_limit_has_no_early_stop_note(client, signed_in, monkeypatch):
    _first_output_finished(monkeypatch, finish_reason="length", tokens=8)
    assert "Stopped at end of text" not in _post(client, signed_in())


def test_it_says_who_owns_the_output_in_words_and_leaves_out_an_empty_attribution(client, signed_in):
    # Terms that keep samples private need no attribution text, even on CC BY data.
    page = _post(client, signed_in(attribution="", samples={"publish": False, "resell": False}, ownership="licensed"))
    assert "Outputs owned" not in page and "<dt>Attribution</dt>" not in page
    assert "<dt>Who owns the output</dt><dd>The model&#x27;s trainer keeps the rights in this text; the customer " \
           "who generated it holds a licence to use it.</dd>" in page
    assert "<dt>Permitted uses</dt>" in page


def test_the_api_key_shown_once_has_a_copy_button(client, signed_in):
    signed_in()
    page = client.post("/licences/keys/", {"name": "laptop", "default_purpose": "personal", "scope": "all"})
    html = page.content.decode()
    key = re.search(r'<code id="new-key-value">(imp_[A-Za-z0-9_-]+)</code>', html)
    assert key and 'data-copy="new-key-value"' in html and "js/copy.js" in html
