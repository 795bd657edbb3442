"""A card reads as on the Hub: Imprint's section markers hidden, samples keep their lines, the
`model-index` as an evaluation table, nothing empty, and a from-scratch model credits nobody's base."""

import pytest

from core.markdown_cards import render_card
from tests import factories
from training.modelcard import card_with_offered_terms, render_model_card

POEM = "Once upon a midnight dreary,\nwhile I pondered, weak and weary,\n\nOver many a *quaint* volume"


def _card(base_model="gpt2", **overrides) -> str:
    args = {"name": "poe-nocturnes", "base_model": base_model, "base_licence": "mit", "dataset_name": "Poe",
            "dataset_digest": "ab" * 32, "dataset_licence": "public-domain",
            "metrics": {"val_loss": 2.5, "perplexity": 12.1825}, "params": 150_000,
            "hyperparameters": {"steps": 10},
            "samples": [{"step": 10, "text": POEM, "longest_span": 3, "ngram_share": 0.1}]}
    return render_model_card(**(args | overrides))


def test_it_hides_the_licence_section_markers():
    card = card_with_offered_terms(_card(), offers=[], listing_url="https://x/", base_model="gpt2",
                                   base_licence="mit", dataset_name="Poe", dataset_licence="public-domain")
    assert "<!-- imprint:licence -->" in card  # still in the text, to find the section again
    html = render_card(card).html
    assert "imprint:licence" not in html and "&lt;!--" not in html
    assert "Not offered for sale yet." in html


def test_other_raw_html_comments_stay_visible_text():
    assert "&lt;!-- note --&gt;" in render_card("# x\n\n<!-- note -->\n").html


def test_sample_poems_keep_their_line_breaks_and_are_not_read_as_markdown():
    html = render_card(_card()).html
    assert "<blockquote>\n<pre><code" in html
    assert "Once upon a midnight dreary,\nwhile I pondered, weak and weary,\n\nOver many a *quaint* volume" in html


def test_a_sample_with_backticks_cannot_close_its_block():
    html = render_card(_card(samples=[{"step": 1, "text": "a\n```\nb", "longest_span": 0, "ngram_share": 0}])).html
    assert "a\n```\nb" in html


def test_model_index_becomes_an_evaluation_table():
    card = render_card(_card())
    assert "model-index" not in dict(card.front_matter)
    assert [(r.task, r.dataset, r.metric, r.metric_type, r.value) for r in card.evaluation] == [
        ("Text generation", "Poe", "val loss", "val_loss", "2.5"),
        ("Text generation", "Poe", "perplexity", "perplexity", "12.18")]


def test_a_model_index_not_in_the_hubs_shape_stays_a_row():
    card = render_card("---\nmodel-index: just words\n---\n# x")
    assert card.front_matter == [("model-index", "just words")] and card.evaluation == []


def test_front_matter_keys_without_a_value_are_left_out():
    assert render_card("---\nlicense: mit\ntags: []\nlanguage:\n---\n# x").front_matter == [("license", "mit")]


def test_a_model_trained_from_scratch_credits_no_base_model():
    card = _card(base_model="tiny")
    assert "OpenAI" not in card and "fine-tuned from" not in card
    assert "trained from scratch" in card and "Base model: none, trained from scratch" in card
    meta = render_card(card).front_matter
    assert dict(meta)["license"] == "public-domain" and "trained-from-scratch" in dict(meta)["tags"]


@pytest.mark.django_db
def test_a_from_scratch_models_rights_chain_names_no_copyright_holder(trainer):
    from licensing.terms import render_terms_text

    mv = factories.model_version(trainer, dataset_licence="cc0-1.0", base_model="tiny")
    document = factories.terms(mv, uses=["commercial"]).document
    assert document["rights_chain"]["base_model"]["rights_holder"] == ""
    assert "OpenAI" not in render_terms_text(document)


@pytest.mark.django_db
def test_the_version_page_shows_the_evaluation_table_and_no_markers(client):
    trainer = factories.user(trainer=True, customer=False)
    mv = factories.model_version(trainer, base_model="tiny")
    mv.card = card_with_offered_terms(_card(base_model="tiny"), offers=[], listing_url="https://x/",
                                      base_model="tiny", base_licence="mit", dataset_name="Poe",
                                      dataset_licence="public-domain")
    mv.save()
    client.force_login(trainer)
    page = client.get(f"/studio/versions/{mv.pk}/").content.decode()
    rendered = page.split('<div class="model-card">', 1)[1].split("Card source (README.md)", 1)[0]
    assert '<table class="card-eval">' in rendered and "<caption>Evaluation results</caption>" in rendered
    assert "imprint:licence" not in rendered and "OpenAI" not in page


@pytest.mark.django_db
def test_a_listing_without_samples_shows_no_samples_box(client):
    listing = factories.listing(factories.user(trainer=True, customer=False))
    listing.samples = []
    listing.save()
    page = client.get(f"/models/{listing.pk}/").content.decode()
    assert "No samples." not in page and 'class="panel samples"' not in page
