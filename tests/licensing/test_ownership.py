"""Terms say who owns the outputs and carry the upstream rights chain; terms and receipts of the first
schema keep working."""

import pytest

from licensing.errors import TermsInvalid
from licensing.models import LicenceTerms
from licensing.selectors import grant_licence_stamp, receipt_rights_summary, rights_summary
from licensing.terms import SCHEMA, canonical_json, render_terms_text, terms_hash, validate_terms
from tests import factories

pytestmark = pytest.mark.django_db

# A document exactly as schema 1 stored it (no ownership, no chain): such rows exist and were sold.
V1_DOCUMENT = {
    "schema": "imprint-terms/1", "licence_id": "custom", "uses": ["personal", "research"],
    "samples": {"publish": True, "resell": False}, "attribution": "Generated with an Imprint model",
    "quota": {"tokens": 100_000, "period": "month"}, "rate_limit_per_minute": 60, "duration_days": 365,
    "restrictions": ["No impersonation of real people."],
}


def v1_terms() -> LicenceTerms:
    sha = terms_hash(V1_DOCUMENT)
    terms = LicenceTerms(sha256=sha, document=V1_DOCUMENT, canonical=canonical_json(V1_DOCUMENT),
                         uses_index=" personal research ")
    terms.save(force_insert=True)
    return terms


def test_new_terms_are_schema_2_and_default_to_the_trainer_keeping_the_rights():
    doc = validate_terms(factories.terms_raw())
    assert doc["schema"] == SCHEMA == "imprint-terms/2" and doc["ownership"] == "licensed"


def test_a_client_still_sending_schema_1_gets_schema_2_terms():
    assert validate_terms(factories.terms_raw(schema="imprint-terms/1"))["schema"] == "imprint-terms/2"


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"ownership": "trainer"}, "ownership", "customer, licensed, public"),
    ({"ownership": "public"}, "samples", "may be published and resold"),
])
def test_ownership_is_checked(overrides, field, words):
    with pytest.raises(TermsInvalid) as caught:
        validate_terms(factories.terms_raw(**overrides))
    assert words in caught.value.errors[field]


def test_a_typed_rights_chain_is_never_believed(trainer):
    mv = factories.model_version(trainer, rights_holders=("Ada Byron",))
    forged = {"dataset": {"rights_holders": ["Me"], "licence": "cc0-1.0"}, "base_model": {}}
    doc = factories.terms(mv, rights_chain=forged, share_alike="none").document
    assert doc["rights_chain"]["dataset"]["rights_holders"] == ["Ada Byron"] and doc["share_alike"] is None
    assert "rights_chain" not in validate_terms(factories.terms_raw(rights_chain=forged))


def test_a_stored_document_offered_again_gives_the_same_terms(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-sa-4.0")
    terms = factories.terms(mv, ownership="customer")
    assert factories.terms(mv, **terms.document).sha256 == terms.sha256


def test_the_rights_chain_names_the_data_its_rights_holders_and_the_base_model(trainer):
    mv = factories.model_version(trainer, dataset_licence="cc-by-4.0", rights_holders=("Ada Byron", "Kestrel Press"))
    doc = factories.terms(mv, ownership="customer").document
    assert doc["rights_chain"]["dataset"] == {
        "name": mv.job.dataset.name, "digest": mv.dataset_digest, "licence": "cc-by-4.0",
        "rights_holders": ["Ada Byron", "Kestrel Press"], "attested": True, "own_text": False}
    assert doc["rights_chain"]["base_model"]["licence"] == "mit"
    text = render_terms_text(doc)
    assert "7. Ownership of outputs: the customer owns the outputs they generate" in text
    assert f"Training data: “{mv.job.dataset.name}” by Ada Byron, Kestrel Press, licensed CC BY 4.0." in text
    assert "Base model: gpt2 by OpenAI, licensed MIT." in text


def test_the_same_terms_on_different_data_are_different_terms(trainer):
    a = factories.terms(factories.model_version(trainer, rights_holders=("A",)))
    b = factories.terms(factories.model_version(trainer, rights_holders=("B",)))
    assert a.sha256 != b.sha256  # a terms id pins the rights chain it was sold with


def test_the_licence_stamp_carries_ownership_and_the_chain(trainer, customer):
    listing = factories.listing(trainer, rights_holders=("Ada Byron",))
    grant = factories.grant(customer, factories.offer(listing, ownership="customer"))
    stamp = grant_licence_stamp(grant)
    assert stamp["schema"] == "imprint-terms/2" and stamp["ownership"] == "customer"
    assert stamp["rights_chain"]["dataset"]["rights_holders"] == ["Ada Byron"]
    assert rights_summary(stamp)["owner"] == "The customer who generated it owns this text."


def test_schema_1_terms_keep_rendering_and_stamping_as_sold(trainer, customer):
    terms = v1_terms()
    assert terms.sha256 == terms_hash(V1_DOCUMENT)  # its id is still the hash of what was sold
    text = render_terms_text(terms.document, sha256=terms.sha256)
    assert "6. Use restrictions:" in text and "Ownership" not in text
    mv = factories.model_version(trainer)
    grant = factories.grant(customer, factories.Offer.objects.create(
        listing=factories.listing(trainer, mv=mv), name="Old", terms=terms, fee_cents=900))
    stamp = grant_licence_stamp(grant)
    assert stamp["schema"] == "imprint-terms/1" and stamp["ownership"] is None and stamp["rights_chain"] is None
    summary = rights_summary(stamp)
    assert "do not say who owns the text" in summary["owner"]
    assert "do not record whose data" in summary["origin"]


def test_an_old_receipt_naming_only_its_terms_gets_its_summary_from_those_terms():
    terms = v1_terms()
    summary = receipt_rights_summary({"licence": {"terms_id": terms.sha256, "terms_sha256": terms.sha256}})
    assert summary["source"] == "terms" and summary["schema"] == "imprint-terms/1"
    assert summary["uses"] == "It may be used for personal, non-commercial use and research; any other use is " \
                              "not licensed."
    assert receipt_rights_summary({"licence": {"terms_id": "0" * 64}}) is None  # unknown terms: no guess


def test_the_upload_form_reads_rights_holders_one_per_line_or_by_semicolons():
    from training.forms import DatasetForm

    form = DatasetForm({"licence": "proprietary-owned", "licence_attested": "on",
                        "rights_holders": "Ada Byron; Kestrel Press\n  Ada   Byron \n\nM. Otter"})
    form.is_valid()
    assert form.cleaned_data["rights_holders"] == ["Ada Byron", "Kestrel Press", "M. Otter"]
    too_many = DatasetForm({"licence": "cc0-1.0", "rights_holders": "\n".join(f"n{i}" for i in range(21))})
    assert not too_many.is_valid() and "At most 20 rights-holders" in too_many.errors["rights_holders"][0]
