"""Property-based tests (Hypothesis) of the inputs people type or upload: any bytes, any JSON."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from licensing.errors import TermsInvalid
from licensing.terms import terms_hash, validate_terms
from training.models import Dataset
from training.textdata import DOCUMENT_SEPARATOR, DatasetInvalid, parse_documents

SEPARATED_TEXT = st.lists(st.text(max_size=40), max_size=6).map(DOCUMENT_SEPARATOR.join)
ANY_UPLOAD = st.one_of(st.binary(max_size=300), SEPARATED_TEXT.map(str.encode))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
TERMS_KEYS = ["licence_id", "uses", "samples", "attribution", "quota", "rate_limit_per_minute", "duration_days",
              "restrictions", "schema"]
TERMS_LIKE = st.dictionaries(st.sampled_from(TERMS_KEYS), JSON, max_size=9)


@given(raw=ANY_UPLOAD)
@settings(max_examples=300, deadline=None)
def test_any_upload_parses_into_clean_documents_or_is_refused_with_a_reason(raw):
    try:
        documents = parse_documents(raw, max_bytes=200)
    except DatasetInvalid as refused:
        assert refused.code in {"too_large", "not_utf8", "empty", "no_documents"} and refused.message
        return
    assert documents and all(d and d == d.strip() and DOCUMENT_SEPARATOR not in d for d in documents)


@pytest.mark.django_db
@given(raw=ANY_UPLOAD, content_type=st.sampled_from(["text/plain", "application/octet-stream", "image/png",
                                                     "application/pdf", "text/csv"]))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_upload_api_answers_202_or_400_and_keeps_nothing_it_refused(client, trainer, raw, content_type):
    from training.services.datasets import dataset_upload_process

    client.force_login(trainer)
    before = Dataset.objects.count()
    response = client.post("/api/v1/training/datasets/", {
        "file": SimpleUploadedFile("x.txt", raw, content_type=content_type), "licence": "cc0-1.0",
        "licence_attested": "true"})
    assert response.status_code in (202, 400), response.content
    if response.status_code == 400:
        assert response.json()["error"]["message"]
        assert Dataset.objects.count() == before
        return
    upload = dataset_upload_process(upload_id=response.json()["id"])  # what the worker does
    assert upload.state in ("ready", "refused") and upload.staged_name == ""
    if upload.state == "refused":
        assert upload.refusal_reason and upload.refusal_message
        assert Dataset.objects.count() == before


@given(raw=st.one_of(TERMS_LIKE, JSON))
@settings(max_examples=400, deadline=None)
def test_any_terms_document_is_normalised_or_refused_field_by_field(raw):
    try:
        normalised = validate_terms(raw)
    except TermsInvalid as refused:
        assert refused.errors and all(isinstance(m, str) and m for m in refused.errors.values())
        return
    assert validate_terms(normalised) == normalised  # normalising is idempotent
    assert terms_hash(normalised) == terms_hash(json.loads(json.dumps(normalised)))
