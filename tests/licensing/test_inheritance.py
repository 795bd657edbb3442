"""Offers cannot grant more than the base model's and the dataset's licences allow."""

import pytest

from licensing.errors import TermsNotAllowedByInputs
from licensing.inheritance import RAIL_RESTRICTIONS
from tests import factories

pytestmark = pytest.mark.django_db


def test_commercial_use_of_a_model_trained_on_cc_by_nc_data_is_refused_with_the_reason(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-nc-4.0")
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, uses=["personal", "commercial"])
    reason = caught.value.reasons["dataset_licence"]
    assert "cc-by-nc-4.0" in reason and "forbids commercial use" in reason and "commercial" in reason


def test_non_commercial_terms_on_cc_by_nc_data_are_accepted(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-nc-4.0")
    assert factories.terms(mv, uses=["personal", "research"]).uses == ["personal", "research"]


def test_gpt2_mit_base_with_permissive_data_allows_commercial_use(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc0-1.0", base_licence="mit")
    assert "commercial" in factories.terms(mv, uses=["commercial"]).uses


def test_rail_restrictions_flow_down_into_the_offer(trainer):
    mv = factories.model_version(trainer, dataset_licence="openrail-m")
    terms = factories.terms(mv, uses=["commercial"], restrictions=["No spam."])
    for restriction in RAIL_RESTRICTIONS:
        assert restriction in terms.document["restrictions"]
    assert "No spam." in terms.document["restrictions"]


def test_attribution_licensed_data_needs_attribution_text_when_samples_are_published(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-4.0")
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, attribution="")
    assert "requires attribution" in caught.value.reasons["attribution"]


def test_unknown_data_licences_only_allow_personal_research_and_education(trainer):
    mv = factories.model_version(trainer, dataset_licence="custom")
    with pytest.raises(TermsNotAllowedByInputs) as caught:
        factories.terms(mv, uses=["internal"])
    assert "not one Imprint can check" in caught.value.reasons["dataset_licence"]
