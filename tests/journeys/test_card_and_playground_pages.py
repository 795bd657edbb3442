"""In a real browser: a version page's card reads as on the Hub (no markers, a poem keeps its lines,
an evaluation table, no OpenAI credit for a from-scratch model), and the playground bounds max
tokens by the model's context, shows the prompt with its continuation and copies the output.
Screenshots go to artifacts/screenshots/ (card-version-page.png, playground-result.png)."""

import pytest

from tests import factories
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.support.browser import chromium_page, log_in, screenshot
from training.modelcard import card_with_offered_terms, render_model_card

PASSWORD = "pw-Imprint-123"  # the make_user fixture's
POEM = "Once upon a midnight dreary, while I pondered, weak and weary,\nOver many a quaint and curious volume"


def _tiny_card() -> str:
    card = render_model_card(
        name="Poe Nocturnes", base_model="tiny", base_licence="mit", dataset_name="Poe's poems",
        dataset_digest="ab" * 32, dataset_licence="public-domain", metrics={"val_loss": 2.91, "perplexity": 18.36},
        params=150_000, hyperparameters={"steps": 400},
        samples=[{"step": 400, "text": POEM, "longest_span": 4, "ngram_share": 0.05}])
    return card_with_offered_terms(card, offers=[], listing_url="http://x/", base_model="tiny", base_licence="mit",
                                   dataset_name="Poe's poems", dataset_licence="public-domain")


@pytest.mark.django_db(transaction=True)
def test_a_version_page_card_reads_as_on_the_hub(live_server, make_user):
    trainer = make_user(trainer=True, customer=False)
    version = factories.model_version(trainer, base_model="tiny", dataset_licence="public-domain")
    version.card = _tiny_card()
    version.save()
    with chromium_page(live_server.url) as page:
        log_in(page, trainer.username, PASSWORD)
        page.goto(f"/studio/versions/{version.pk}/")
        card = page.inner_text(".model-card")
        screenshot(page, "card-version-page")
    assert "imprint:licence" not in card and "OpenAI" not in card
    assert "Once upon a midnight dreary, while I pondered, weak and weary\n" in card.replace(",\n", "\n")
    assert "Evaluation results" in card and "perplexity" in card and "18.36" in card


@pytest.mark.django_db(transaction=True)
def test_the_playground_follows_the_models_context_and_shows_the_prompt(live_server, make_licence, engine):  # noqa: F811
    licence = make_licence()
    licence.customer.set_password(PASSWORD)
    licence.customer.save()
    with chromium_page(live_server.url) as page:
        log_in(page, licence.customer.username, PASSWORD)
        page.goto("/playground/")
        assert page.get_attribute("#p-max", "max") == "127"
        page.fill("#p-prompt", "At dawn, the Marigold")
        page.fill("#p-max", "24")
        page.click("button:has-text('Generate')")
        page.wait_for_selector(".completion")
        assert page.inner_text(".completion-prompt") == "At dawn, the Marigold"
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.click("button:has-text('Copy output')")
        page.wait_for_selector("button:has-text('Copied')")
        facts = page.inner_text("dl.facts")
        screenshot(page, "playground-result")
    assert "Outputs owned" not in facts and "Who owns the output" in facts
