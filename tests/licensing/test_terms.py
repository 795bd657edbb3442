"""Terms are validated field by field, canonicalised, hashed stably and rendered deterministically."""

import pytest

from licensing.errors import TermsImmutable, TermsInvalid
from licensing.models import LicenceTerms
from licensing.terms import (
    canonical_json,
    render_terms_text,
    terms_hash,
    validate_terms,
)
from tests import factories


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("uses", [], "Choose at least one permitted use."),
        ("uses", ["personal", "military"], "Unknown use military"),
        ("uses", ["personal", "personal"], "Each permitted use may appear once."),
        ("samples", {"publish": True}, "Say whether samples may be published and resold"),
        ("samples", {"publish": "yes", "resell": False}, "must be true or false"),
        ("samples", {"publish": False, "resell": True}, "must also be publishable"),
        ("attribution", "x" * 301, "at most 300 characters"),
        ("quota", {"tokens": 0, "period": "month"}, "whole number from 1"),
        ("quota", {"tokens": 10.5, "period": "month"}, "whole number from 1"),
        ("quota", {"tokens": 1000, "period": "week"}, "'month' or 'total'"),
        ("rate_limit_per_minute", 0, "The rate limit must be 1 to"),
        ("rate_limit_per_minute", True, "The rate limit must be 1 to"),
        ("duration_days", -3, "Duration is 1 to"),
        ("restrictions", ["ok", ""], "non-empty sentences"),
        ("licence_id", "not an id!", "SPDX identifier"),
        ("fee_cents", 100, "Prices belong to the offer"),
    ],
)
def test_each_bad_field_gets_its_message(field, value, message):
    with pytest.raises(TermsInvalid) as caught:
        validate_terms(factories.terms_raw(**{field: value}))
    assert message in caught.value.errors[field]


def test_all_bad_fields_are_reported_together():
    raw = factories.terms_raw(uses=[], rate_limit_per_minute=-1, quota={"tokens": 5, "period": "x"})
    with pytest.raises(TermsInvalid) as caught:
        validate_terms(raw)
    assert set(caught.value.errors) == {"uses", "rate_limit_per_minute", "quota"}


def test_hash_is_stable_and_ignores_order_of_uses_and_restrictions():
    a = validate_terms(factories.terms_raw(uses=["research", "personal"], restrictions=["B.", "A."]))
    b = validate_terms(factories.terms_raw(uses=["personal", "research"], restrictions=["A.", "B."]))
    assert canonical_json(a) == canonical_json(b)
    assert terms_hash(a) == terms_hash(b)
    # A pinned value: the canonical form must never drift between releases, or ids would change.
    assert canonical_json(a).startswith('{"attribution":"Generated with an Imprint model","duration_days":365')
    assert terms_hash(a) == terms_hash(validate_terms(factories.terms_raw(uses=["personal", "research"],
                                                                          restrictions=["A.", "B."])))


def test_any_change_of_a_right_changes_the_hash():
    base = terms_hash(validate_terms(factories.terms_raw()))
    assert terms_hash(validate_terms(factories.terms_raw(rate_limit_per_minute=61))) != base
    assert terms_hash(validate_terms(factories.terms_raw(duration_days=None))) != base


def test_rendering_is_deterministic_and_says_every_right():
    doc = validate_terms(factories.terms_raw(duration_days=None))
    text = render_terms_text(doc, sha256=terms_hash(doc))
    assert text == render_terms_text(validate_terms(factories.terms_raw(duration_days=None)),
                                     sha256=terms_hash(doc))
    assert "Permitted uses: personal, non-commercial use, research." in text
    assert "Generated samples may be published and may not be resold." in text
    assert '"Generated with an Imprint model" must accompany published samples.' in text
    assert "100,000 tokens per calendar month; at most 60 requests per minute." in text
    assert "Duration: perpetual." in text
    assert "- No impersonation of real people." in text


@pytest.mark.django_db
def test_terms_rows_are_content_addressed_and_never_change():
    first = factories.terms()
    again = factories.terms()
    assert first.pk == again.pk == terms_hash(first.document)
    first.document = {**first.document, "rate_limit_per_minute": 1}
    with pytest.raises(TermsImmutable):
        first.save()
    assert LicenceTerms.objects.get(pk=again.pk).document["rate_limit_per_minute"] == 60
