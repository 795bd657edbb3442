"""Offers cannot grant more than the base model's and the dataset's licences allow: the inheritance
table, row by row, and the same table in the README."""

import re
from pathlib import Path

import pytest

from licensing.errors import TermsNotAllowedByInputs
from licensing.inheritance import (
    LICENCE_TABLE,
    RAIL_RESTRICTIONS,
    UNKNOWN,
    inheritance_table_markdown,
    licence_rules,
)
from tests import factories

pytestmark = pytest.mark.django_db

EVERY_USE = ["personal", "research", "education", "internal", "commercial"]
PUBLIC = {"ownership": "public", "samples": {"publish": True, "resell": True}}
ALLOWED = None  # the case's offer is accepted

# (dataset licence, offer's terms overrides, refused field or ALLOWED, words of the reason).
# Written by hand from the licences, not derived from the table, so the table is what is tested.
CASES = [
    # Own text (attested) and public domain / CC0: every use, any ownership.
    ("proprietary-owned", {"uses": EVERY_USE, "ownership": "customer"}, ALLOWED, ""),
    ("proprietary-owned", {"uses": ["commercial"], **PUBLIC}, ALLOWED, ""),
    ("public-domain", {"uses": EVERY_USE, **PUBLIC, "attribution": ""}, ALLOWED, ""),
    ("cc0-1.0", {"uses": EVERY_USE, "ownership": "licensed", "attribution": ""}, ALLOWED, ""),
    # Permissive software licences: every use; the notice travels (see the base model test).
    ("mit", {"uses": EVERY_USE, **PUBLIC, "attribution": ""}, ALLOWED, ""),
    # CC BY: every use, with the attribution in the terms whenever samples may be published.
    ("cc-by-4.0", {"uses": EVERY_USE, "attribution": ""}, "attribution", "requires attribution"),
    ("cc-by-4.0", {"uses": EVERY_USE, "attribution": "", "samples": {"publish": False, "resell": False}},
     ALLOWED, ""),
    ("cc-by-4.0", {"uses": EVERY_USE, **PUBLIC}, ALLOWED, ""),
    ("cc-by-3.0", {"uses": ["commercial"], "attribution": ""}, "attribution", "requires attribution"),
    # CC BY-SA: every use, outputs owned by the customer, who shares them alike.
    ("cc-by-sa-4.0", {"uses": EVERY_USE, "ownership": "customer"}, ALLOWED, ""),
    ("cc-by-sa-4.0", {"uses": ["commercial"], "ownership": "licensed"}, "ownership", "share-alike"),
    ("cc-by-sa-3.0", {"uses": ["commercial"], **PUBLIC}, "ownership", "share-alike"),
    # CC BY-NC and BY-NC-SA: no commercial and no internal business use.
    ("cc-by-nc-4.0", {"uses": ["personal", "commercial"]}, "dataset_licence", "forbids commercial use"),
    ("cc-by-nc-4.0", {"uses": ["internal"]}, "dataset_licence", "internal business use"),
    ("cc-by-nc-4.0", {"uses": ["personal", "research", "education"], "ownership": "customer"}, ALLOWED, ""),
    ("cc-by-nc-4.0", {"uses": ["personal"], **PUBLIC}, "ownership", "used commercially"),
    ("cc-by-nc-sa-4.0", {"uses": ["internal"], "ownership": "customer"}, "dataset_licence", "forbids commercial"),
    ("cc-by-nc-sa-4.0", {"uses": ["personal", "research"], "ownership": "customer"}, ALLOWED, ""),
    # ND variants: no derivative model may be offered at all.
    ("cc-by-nd-4.0", {"uses": ["personal"]}, "dataset_licence", "allows no derivatives"),
    ("cc-by-nc-nd-4.0", {"uses": ["research"]}, "dataset_licence", "allows no derivatives"),
    # OpenRAIL: every use with its restrictions, which cannot be shed by "public" outputs.
    ("openrail-m", {"uses": ["commercial"]}, ALLOWED, ""),
    ("openrail-m", {"uses": ["commercial"], **PUBLIC}, "ownership", "use restrictions"),
    # Anything else: non-commercial uses only, and the trainer keeps the rights.
    ("custom", {"uses": ["internal"]}, "dataset_licence", "not one Imprint can check"),
    ("some-licence-1.0", {"uses": ["personal", "research", "education"]}, ALLOWED, ""),
    ("custom", {"uses": ["personal"], "ownership": "customer"}, "ownership", "cannot check"),
]


@pytest.mark.parametrize(("licence", "overrides", "refused", "words"), CASES,
                         ids=[f"{c[0]}-{'allowed' if c[2] is None else 'refuses-' + c[2]}-{i}"
                              for i, c in enumerate(CASES)])
def test_each_row_of_the_inheritance_table(trainer, licence, overrides, refused, words):
    mv = factories.model_version(trainer, dataset_licence=licence)
    if refused is ALLOWED:
        terms = factories.terms(mv, **overrides)
        assert terms.uses == overrides["uses"]
        assert terms.document["rights_chain"]["dataset"]["licence"] == licence
        return
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, **overrides)
    assert words in caught.value.reasons[refused], caught.value.reasons


def test_every_row_of_the_table_has_its_cases():
    covered = {licence_rules(licence).family for licence, *_ in CASES}
    assert covered == {rules.family for rules in (*LICENCE_TABLE, UNKNOWN)}


def test_own_text_needs_the_trainers_attestation(trainer):
    mv = factories.model_version(trainer, dataset_licence="proprietary-owned", attested=False)
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, uses=["commercial"])
    assert "nobody attested" in caught.value.reasons["dataset_licence"]


def test_no_derivatives_says_why_in_words_a_trainer_understands(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-nd-4.0")
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, uses=["personal"])
    assert caught.value.reasons["dataset_licence"] == (
        "The dataset's licence 'cc-by-nd-4.0' allows no derivatives: a model fine-tuned on it is a derivative "
        "work, so it cannot be offered under any terms.")


def test_share_alike_is_stated_in_the_terms_and_their_text(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-sa-4.0")
    terms = factories.terms(mv, uses=["commercial"], ownership="customer")
    assert "must share them under CC BY-SA 4.0" in terms.document["share_alike"]
    from licensing.terms import render_terms_text
    assert "Share-alike: Outputs adapt material licensed CC BY-SA 4.0" in render_terms_text(terms.document)


def test_rail_restrictions_flow_down_into_the_offer(trainer):
    mv = factories.model_version(trainer, dataset_licence="openrail-m")
    terms = factories.terms(mv, uses=["commercial"], restrictions=["No spam."])
    for restriction in RAIL_RESTRICTIONS:
        assert restriction in terms.document["restrictions"]
    assert "No spam." in terms.document["restrictions"]


def test_the_base_models_mit_licence_travels_as_a_notice(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc0-1.0", base_licence="mit", base_model="gpt2")
    base = factories.terms(mv, uses=["commercial"]).document["rights_chain"]["base_model"]
    assert base == {"name": "gpt2", "licence": "mit", "rights_holder": "OpenAI",
                    "notice": "Copyright © OpenAI; the MIT licence's copyright and permission notice accompany "
                              "gpt2, this model and its outputs."}


def test_a_non_commercial_base_model_limits_the_offer_too(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc0-1.0", base_licence="cc-by-nc-4.0")
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, uses=["commercial"])
    assert "base model" in caught.value.reasons["base_licence"]


def test_the_readme_shows_the_table_the_code_enforces():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = re.search(r"<!-- inheritance-table -->\n(.*?)<!-- /inheritance-table -->", readme, re.DOTALL)
    assert shown is not None, "README.md lacks the inheritance table markers"
    assert shown.group(1) == inheritance_table_markdown(), (
        "README.md's inheritance table differs from licensing.inheritance; paste this:\n"
        + inheritance_table_markdown())
