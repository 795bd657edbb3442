"""Dataset uploads: statistics before training, and every bad upload refused with its message,
leaving no rows and no files."""

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.corpus import corpus_text
from training.models import Dataset

pytestmark = pytest.mark.django_db


def _upload(client, content: bytes, *, content_type="text/plain", attested=True, name="data.txt", api=False):
    data = {"name": "my data", "licence": "cc-by-4.0",
            "file": SimpleUploadedFile(name, content, content_type=content_type)}
    if attested:
        data["licence_attested"] = "on" if not api else "true"
    url = "/api/v1/training/datasets/" if api else "/studio/datasets/new/"
    return client.post(url, data)


def _stored_files() -> list[str]:
    try:
        return default_storage.listdir("datasets")[1]
    except FileNotFoundError:
        return []


@pytest.fixture
def trainer_client(client, trainer, settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    client.force_login(trainer)
    return client


def test_it_shows_statistics_and_a_preview_after_upload(trainer_client):
    text = "First document, short.<|endoftext|>Second document is a little longer than the first.<|endoftext|>"
    response = _upload(trainer_client, text.encode(), api=False)
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert dataset.stats["documents"] == 2
    assert dataset.stats["characters"] == len("First document, short.") + len(
        "Second document is a little longer than the first.")
    assert dataset.stats["tokens"] > 0
    assert dataset.stats["shortest_document_characters"] == len("First document, short.")
    page = trainer_client.get(response["Location"]).content.decode()
    assert "First document, short." in page and "Tokens (tiny tokenizer)" in page
    assert "Estimate" in page


def test_plain_text_without_separators_is_one_document(trainer_client):
    _upload(trainer_client, corpus_text(documents=1).encode())
    assert Dataset.objects.get().stats["documents"] == 1


@pytest.mark.parametrize("content, content_type, message", [
    (b"good start \xff\xfe bad bytes", "text/plain", "invalid byte at offset 11"),
    (b"", "text/plain", "empty"),
    (b"   \n\t  ", "text/plain", "empty"),
    (b"<|endoftext|>\n<|endoftext|>  ", "text/plain", "only document separators"),
    (b"\x89PNG\r\n\x1a\n....", "image/png", "not image/png"),
    (b"text with a \x00 NUL byte", "text/plain", "NUL byte at offset 12"),
])
@pytest.mark.parametrize("api", [False, True])
def test_bad_uploads_are_refused_with_their_message_and_leave_nothing(trainer_client, content, content_type,
                                                                     message, api):
    response = _upload(trainer_client, content, content_type=content_type, api=api)
    body = response.content.decode()
    assert response.status_code == (400 if api else 200)
    assert message in body
    if api:
        assert response.json()["error"]["param"] == "file"
    assert Dataset.objects.count() == 0
    assert _stored_files() == []


@pytest.mark.parametrize("content, content_type, reason", [
    (b"good start \xff\xfe bad bytes", "text/plain", "not_utf8"),
    (b"\x89PNG\r\n\x1a\n....", "image/png", "wrong_content_type"),
    (b"text with a \x00 NUL byte", "text/plain", "binary"),
])
def test_the_api_names_the_reason_of_a_refused_upload(trainer_client, content, content_type, reason):
    error = _upload(trainer_client, content, content_type=content_type, api=True).json()["error"]
    assert (error["type"], error["code"], error["param"], error["reason"]) == (
        "invalid_request_error", "training_error", "file", reason)


def test_an_upload_over_the_size_limit_is_refused(trainer_client, settings):
    settings.DATASET_MAX_BYTES = 1024 * 1024
    response = _upload(trainer_client, b"a" * (1024 * 1024 + 1))
    assert "the limit is 1 MB" in response.content.decode()
    assert Dataset.objects.count() == 0 and _stored_files() == []


def test_an_upload_without_the_licence_attestation_is_refused(trainer_client):
    response = _upload(trainer_client, b"some text", attested=False)
    assert "This field is required" in response.content.decode()
    assert Dataset.objects.count() == 0 and _stored_files() == []


def test_the_api_returns_the_created_dataset_with_its_stats(trainer_client):
    response = _upload(trainer_client, corpus_text(documents=3).encode(), api=True)
    assert response.status_code == 201
    assert response.json()["stats"]["documents"] == 3
