"""The model card states the licence terms actually sold, in the Hub's convention, beside the base
model's and the data's licences."""

import yaml

from training.modelcard import card_with_offered_terms, render_model_card

SOLD = {"name": "Commercial", "terms_id": "ab" * 32, "url": "https://imprint.example/licences/terms/" + "ab" * 32 + "/",
        "uses": ["internal", "commercial"], "ownership": "customer"}
INPUTS = {"listing_url": "https://imprint.example/models/1/", "base_model": "gpt2", "base_licence": "mit",
          "dataset_name": "Harbour logs", "dataset_licence": "proprietary-owned",
          "dataset_rights_holders": ["Ada Byron"]}


def _card(**overrides) -> str:
    args = {"name": "logbook", "base_model": "gpt2", "base_licence": "mit", "dataset_name": "Harbour logs",
            "dataset_digest": "cd" * 32, "dataset_licence": "proprietary-owned", "metrics": {"val_loss": 2.5},
            "params": 150_000, "hyperparameters": {"steps": 10}, "samples": [],
            "dataset_rights_holders": ["Ada Byron"]}
    return render_model_card(**(args | overrides))


def _front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_a_new_card_names_both_licences_and_says_nothing_is_sold_yet():
    card = _card()
    assert _front_matter(card)["license"] == "other"
    assert "Not offered for sale yet." in card
    assert "- Training data: Harbour logs, licensed proprietary-owned; rights-holders: Ada Byron" in card
    assert "- Base model: `gpt2`, licensed mit" in card


def test_one_offer_is_linked_as_the_hub_expects():
    card = card_with_offered_terms(_card(), offers=[SOLD], **INPUTS)
    meta = _front_matter(card)
    assert (meta["license"], meta["license_name"], meta["license_link"]) == (
        "other", "imprint-terms-" + "ab" * 6, SOLD["url"])
    assert list(meta)[:4] == ["base_model", "datasets", "license", "license_name"]  # where the Hub reads it
    assert f"- **Commercial**: [terms {'ab' * 6}]({SOLD['url']}) · uses: internal, commercial · outputs owned: " \
           "customer" in card
    assert "rights-holders: Ada Byron" in card and card.count("## Licence") == 1


def test_several_offers_link_the_listing_and_withdrawing_them_all_restores_the_inputs_licences():
    other = {**SOLD, "name": "Personal", "terms_id": "ef" * 32, "uses": ["personal"], "ownership": "licensed"}
    both = card_with_offered_terms(_card(), offers=[SOLD, other], **INPUTS)
    assert _front_matter(both)["license_link"] == INPUTS["listing_url"]
    assert "**Personal**" in both and "**Commercial**" in both
    none = card_with_offered_terms(both, offers=[], **INPUTS)
    assert "license_link" not in _front_matter(none) and "Not offered for sale yet." in none
    assert none == card_with_offered_terms(none, offers=[], **INPUTS)  # restating is stable


def test_a_card_the_trainer_rewrote_keeps_their_text_and_gets_the_licence_restated():
    edited = "---\nlicense: mit\nlanguage: en\n---\n# My model\n\nIt writes sea shanties."
    card = card_with_offered_terms(edited, offers=[SOLD], **INPUTS)
    meta = _front_matter(card)
    assert meta["license"] == "other" and meta["language"] == "en"  # the lie is gone, the rest kept
    assert "# My model\n\nIt writes sea shanties." in card and "imprint-terms-" + "ab" * 6 in card
    broken = card_with_offered_terms("---\n: : [\n---\nhello", offers=[SOLD], **INPUTS)
    assert _front_matter(broken)["license"] == "other" and "hello" in broken
    plain = card_with_offered_terms("# Just text", offers=[SOLD], **INPUTS)
    assert plain.startswith("---\nlicense: other\n") and "# Just text" in plain
