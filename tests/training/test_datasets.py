"""Dataset uploads: the request stages the file and returns; a default-queue task validates,
counts and encodes it (processing → ready or refused); statistics before training, and every bad
upload refused with its reason and message, leaving no dataset row and no file."""

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.corpus import corpus_text
from training.models import Dataset, DatasetUpload, EncodedDataset
from training.services import datasets

pytestmark = pytest.mark.django_db


def _upload(client, content: bytes, *, content_type="text/plain", attested=True, name="data.txt", api=False):
    data = {"name": "my data", "licence": "cc-by-4.0",
            "file": SimpleUploadedFile(name, content, content_type=content_type)}
    if attested:
        data["licence_attested"] = "on" if not api else "true"
    url = "/api/v1/training/datasets/" if api else "/studio/datasets/new/"
    return client.post(url, data)


def _process_all() -> None:
    """What the default-queue worker does with each staged upload."""
    for upload in DatasetUpload.objects.filter(state=DatasetUpload.State.PROCESSING):
        datasets.dataset_upload_process(upload_id=upload.pk)


def _stored_files() -> list[str]:
    found = []
    for folder in ("datasets", "uploads", "encoded"):
        try:
            dirs, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        found += [f"{folder}/{f}" for f in files] + [f"{folder}/{d}/" for d in dirs]
    return found


@pytest.fixture
def trainer_client(client, trainer, settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    client.force_login(trainer)
    return client


def test_it_shows_statistics_and_a_preview_after_processing(trainer_client):
    text = "First document, short.<|endoftext|>Second document is a little longer than the first.<|endoftext|>"
    response = _upload(trainer_client, text.encode(), api=False)
    assert response.status_code == 302 and "/studio/uploads/" in response["Location"]
    waiting = trainer_client.get(response["Location"])
    assert waiting.status_code == 200 and "Processing" in waiting.content.decode()
    assert Dataset.objects.count() == 0
    _process_all()
    ready = trainer_client.get(response["Location"])
    assert ready.status_code == 302
    dataset = Dataset.objects.get()
    assert dataset.stats["documents"] == 2
    assert dataset.stats["characters"] == len("First document, short.") + len(
        "Second document is a little longer than the first.")
    assert dataset.stats["tokens"] > 0
    assert dataset.stats["shortest_document_characters"] == len("First document, short.")
    page = trainer_client.get(ready["Location"]).content.decode()
    assert "First document, short." in page and "Tokens (tiny tokenizer)" in page
    assert "Estimate" in page


def test_the_api_answers_at_once_and_the_upload_becomes_ready_with_its_dataset(trainer_client):
    response = _upload(trainer_client, corpus_text(documents=3).encode(), api=True)
    assert response.status_code == 202
    body = response.json()
    assert (body["state"], body["dataset"], body["refusal"]) == ("processing", None, None)
    assert Dataset.objects.count() == 0
    _process_all()
    done = trainer_client.get(f"/api/v1/training/uploads/{body['id']}/").json()
    assert done["state"] == "ready" and done["progress"] == 100.0
    assert done["dataset"]["stats"]["documents"] == 3
    assert done["dataset"]["upload_sha256"] == body["upload_sha256"]
    found = trainer_client.get(f"/api/v1/training/datasets/?sha256={body['upload_sha256']}").json()
    assert [d["id"] for d in found] == [done["dataset"]["id"]]


def test_plain_text_without_separators_is_one_document(trainer_client):
    _upload(trainer_client, corpus_text(documents=1).encode())
    _process_all()
    assert Dataset.objects.get().stats["documents"] == 1


@pytest.mark.parametrize("content, message, reason, offset", [
    (b"good start \xff\xfe bad bytes", "invalid byte at offset 11", "not_utf8", 11),
    (b"   \n\t  ", "empty", "empty", None),
    (b"<|endoftext|>\n<|endoftext|>  ", "only document separators", "no_documents", None),
    (b"text with a \x00 NUL byte", "NUL byte at offset 12", "binary", 12),
])
@pytest.mark.parametrize("api", [False, True])
def test_bad_files_are_refused_by_the_worker_with_their_reason_and_leave_nothing(
        trainer_client, content, message, reason, offset, api):
    response = _upload(trainer_client, content, api=api)
    assert response.status_code == (202 if api else 302)
    _process_all()
    upload = DatasetUpload.objects.get()
    if api:
        refusal = trainer_client.get(f"/api/v1/training/uploads/{upload.pk}/").json()["refusal"]
        assert refusal["reason"] == reason and message in refusal["message"] and refusal["offset"] == offset
    else:
        page = trainer_client.get(response["Location"]).content.decode()
        assert "Refused" in page and message in page
    assert (upload.state, upload.refusal_reason, upload.staged_name) == ("refused", reason, "")
    assert Dataset.objects.count() == 0 and EncodedDataset.objects.count() == 0
    assert _stored_files() == []


@pytest.mark.parametrize("content, content_type, message", [
    (b"", "text/plain", "empty"),
    (b"\x89PNG\r\n\x1a\n....", "image/png", "not image/png"),
])
@pytest.mark.parametrize("api", [False, True])
def test_what_needs_no_reading_is_refused_in_the_request(trainer_client, content, content_type, message, api):
    response = _upload(trainer_client, content, content_type=content_type, api=api)
    assert response.status_code == (400 if api else 200)
    assert message in response.content.decode()
    if api:
        assert response.json()["error"]["param"] == "file"
    assert DatasetUpload.objects.count() == 0 and Dataset.objects.count() == 0
    assert _stored_files() == []


def test_the_api_names_the_reason_of_a_wrong_content_type(trainer_client):
    error = _upload(trainer_client, b"\x89PNG\r\n\x1a\n....", content_type="image/png", api=True).json()["error"]
    assert (error["type"], error["code"], error["param"], error["reason"]) == (
        "invalid_request_error", "training_error", "file", "wrong_content_type")


@pytest.mark.parametrize("api", [False, True])
def test_an_upload_over_the_size_limit_is_refused_while_the_body_is_read(trainer_client, settings, api):
    settings.DATASET_MAX_BYTES = 1024 * 1024
    response = _upload(trainer_client, b"a" * (1024 * 1024 + 1), api=api)
    assert response.status_code == 413
    assert "the limit is 1 MB" in response.content.decode()
    if api:
        assert response.json()["error"]["reason"] == "too_large"
    assert DatasetUpload.objects.count() == 0 and Dataset.objects.count() == 0 and _stored_files() == []


def test_a_body_declared_over_the_cap_is_not_read_at_all(trainer_client, settings):
    settings.DATASET_MAX_BYTES = 1024
    response = _upload(trainer_client, b"word " * 40_000, api=True)  # 200 kB: Content-Length says so
    assert response.status_code == 413 and response.json()["error"]["reason"] == "too_large"
    assert DatasetUpload.objects.count() == 0 and _stored_files() == []


def test_an_upload_without_the_licence_attestation_is_refused(trainer_client):
    response = _upload(trainer_client, b"some text", attested=False)
    assert "This field is required" in response.content.decode()
    assert DatasetUpload.objects.count() == 0 and _stored_files() == []


def _ids(dataset) -> np.ndarray:
    encoding = dataset.encodings.get()
    with default_storage.open(encoding.file.name, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.dtype(encoding.dtype))


def test_a_windows_file_gives_the_same_text_and_tokens_as_its_lf_twin(trainer_client, trainer, make_user):
    other_trainer = make_user("otto", trainer=True)
    lf = corpus_text(documents=6)
    crlf = lf.replace("\n", "\r\n")
    assert crlf != lf and "\r\n" in crlf
    a = datasets.dataset_create(owner=trainer, name="lf", upload=SimpleUploadedFile("a.txt", lf.encode()),
                                licence="cc0-1.0", licence_attested=True)
    b = datasets.dataset_create(owner=other_trainer, name="crlf",
                                upload=SimpleUploadedFile("b.txt", ("\ufeff" + crlf).encode()),
                                licence="cc0-1.0", licence_attested=True)
    assert a.sha256 == b.sha256 and a.upload_sha256 != b.upload_sha256
    assert a.stats == b.stats
    assert np.array_equal(_ids(a), _ids(b))
    with default_storage.open(b.file.name, "rb") as fh:
        assert b"\r" not in fh.read()


def test_token_ids_are_stored_as_a_compact_uint16_array(trainer_client, trainer):
    dataset = datasets.dataset_create(owner=trainer, name="c", upload=SimpleUploadedFile(
        "c.txt", corpus_text(documents=4).encode()), licence="cc0-1.0", licence_attested=True)
    encoding = dataset.encodings.get()
    ids = _ids(dataset)
    assert encoding.dtype == "<u2" and encoding.file.name.endswith(".uint16.bin")
    assert encoding.tokens == len(ids) == dataset.stats["tokens"] + dataset.stats["documents"]  # + one eos each


def test_small_chunks_give_the_same_dataset_as_one_chunk(trainer_client, trainer, make_user, monkeypatch):
    other_trainer = make_user("otto", trainer=True)
    text = ("Ünïcode wörds — and emoji 🙂 across chunk edges.\r\n" * 40 + "<|endoftext|>") * 5
    whole = datasets.dataset_create(owner=trainer, name="w", upload=SimpleUploadedFile("w.txt", text.encode()),
                                    licence="cc0-1.0", licence_attested=True)
    monkeypatch.setattr(datasets, "CHUNK_BYTES", 7)
    monkeypatch.setattr(datasets, "ENCODE_BATCH_CHARS", 100)
    pieces = datasets.dataset_create(owner=other_trainer, name="p", upload=SimpleUploadedFile(
        "p.txt", text.encode()), licence="cc0-1.0", licence_attested=True)
    assert (pieces.sha256, pieces.stats) == (whole.sha256, whole.stats)
    assert np.array_equal(_ids(pieces), _ids(whole))


def test_processing_twice_is_harmless(trainer_client, trainer):
    upload = datasets.dataset_upload_receive(owner=trainer, name="x", upload=SimpleUploadedFile(
        "x.txt", corpus_text(documents=2).encode()), licence="cc0-1.0", licence_attested=True, enqueue=False)
    first = datasets.dataset_upload_process(upload_id=upload.pk)
    again = datasets.dataset_upload_process(upload_id=upload.pk)
    assert first.state == again.state == "ready" and again.dataset_id == first.dataset_id
    assert Dataset.objects.count() == 1


def test_a_strangers_upload_is_not_found(trainer_client, make_user):
    other_trainer = make_user("otto", trainer=True)
    upload = datasets.dataset_upload_receive(owner=other_trainer, name="x", upload=SimpleUploadedFile(
        "x.txt", b"hello"), licence="cc0-1.0", licence_attested=True, enqueue=False)
    assert trainer_client.get(f"/api/v1/training/uploads/{upload.pk}/").status_code == 404
    assert trainer_client.get(f"/studio/uploads/{upload.pk}/").status_code == 404
