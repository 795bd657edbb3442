"""An upload never stays processing: any failure of its task refuses it (a generic reason for the
trainer, the detail in the log) and keeps nothing; a beat sweep refuses uploads stuck past the
timeout; and a trainer has at most DATASET_UPLOADS_IN_FLIGHT_MAX uploads processing, also when
uploads race for the last slot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.utils import timezone

from tests.support.corpus import corpus_text
from training import tasks
from training.errors import TrainingError
from training.models import Dataset, DatasetUpload, EncodedDataset
from training.services import datasets

API = "/api/v1/training/datasets/"
PAGE = "/studio/datasets/new/"


def _post(client, *, api=True, content: bytes | None = None):
    content = content if content is not None else corpus_text(documents=2).encode()
    return client.post(API if api else PAGE, {
        "name": "my data", "licence": "cc-by-4.0", "licence_attested": "true" if api else "on",
        "file": SimpleUploadedFile("data.txt", content, content_type="text/plain")})


def _stored_files() -> list[str]:
    """Every file in storage (empty folders left by a local filesystem do not count)."""
    def walk(folder):
        try:
            dirs, files = default_storage.listdir(folder)
        except FileNotFoundError:
            return []
        return [f"{folder}/{f}" for f in files] + [n for d in dirs for n in walk(f"{folder}/{d}")]
    return [name for folder in ("datasets", "uploads", "encoded") for name in walk(folder)]


@pytest.fixture
def storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}


@pytest.fixture
def trainer_client(client, trainer, storage):
    client.force_login(trainer)
    return client


def _hub_unreachable(*args, **kwargs):
    raise TrainingError("gpt2 cannot be loaded on this server: the hub is unreachable (token=secret-123)")


@pytest.mark.django_db
def test_an_unexpected_error_refuses_the_upload_and_keeps_nothing(trainer_client, monkeypatch, caplog):
    monkeypatch.setattr(datasets, "_stats_tokenizer", _hub_unreachable)
    body = _post(trainer_client).json()
    assert tasks.process_dataset(body["id"]) == "refused"
    upload = trainer_client.get(f"/api/v1/training/uploads/{body['id']}/").json()
    assert upload["state"] == "refused"
    assert upload["refusal"] == {"reason": "internal_error", "offset": None,
                                 "message": "The upload could not be processed (internal error); nothing was kept."}
    assert "secret-123" not in trainer_client.get(f"/studio/uploads/{body['id']}/").content.decode()
    assert "hub is unreachable" in caplog.text  # the detail is for the operator
    assert DatasetUpload.objects.get().staged_name == ""
    assert Dataset.objects.count() == EncodedDataset.objects.count() == 0
    assert _stored_files() == []


@pytest.mark.django_db
def test_a_failure_while_storing_leaves_no_text_and_no_encoding(trainer_client, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(datasets, "_record_encoding", broken)
    body = _post(trainer_client).json()
    assert tasks.process_dataset(body["id"]) == "refused"
    assert DatasetUpload.objects.get().refusal_reason == "internal_error"
    assert Dataset.objects.count() == EncodedDataset.objects.count() == 0
    assert _stored_files() == []


@pytest.mark.django_db
def test_a_failure_keeps_the_files_of_an_identical_dataset(trainer_client, monkeypatch):
    content = corpus_text(documents=2).encode()
    first = _post(trainer_client, content=content).json()
    tasks.process_dataset(first["id"])
    kept = _stored_files()
    monkeypatch.setattr(datasets, "_record_encoding", lambda *a, **k: 1 / 0)
    second = _post(trainer_client, content=content).json()
    assert tasks.process_dataset(second["id"]) == "refused"
    assert _stored_files() == kept and Dataset.objects.count() == 1


@pytest.mark.django_db
def test_the_sweep_refuses_an_upload_stuck_processing_and_deletes_its_file(trainer_client, settings):
    settings.DATASET_UPLOAD_TIMEOUT_SECONDS = 600
    stuck, fresh = (_post(trainer_client).json()["id"] for _ in range(2))
    DatasetUpload.objects.filter(pk=stuck).update(created_at=timezone.now() - timezone.timedelta(seconds=601))
    assert tasks.uploads_sweep() == 1
    swept = DatasetUpload.objects.get(pk=stuck)
    assert (swept.state, swept.refusal_reason, swept.staged_name) == ("refused", "timed_out", "")
    assert "took too long" in trainer_client.get(f"/api/v1/training/uploads/{stuck}/").json()["refusal"]["message"]
    assert DatasetUpload.objects.get(pk=fresh).state == "processing"
    assert _stored_files() == [DatasetUpload.objects.get(pk=fresh).staged_name]
    assert tasks.uploads_sweep() == 0


@pytest.mark.django_db
def test_a_worker_still_busy_with_a_swept_upload_keeps_nothing(trainer_client, settings, monkeypatch):
    real = datasets._stats_tokenizer

    def slow_worker(base, sample):
        settings.DATASET_UPLOAD_TIMEOUT_SECONDS = 0  # the sweep runs while this worker encodes
        assert tasks.uploads_sweep() == 1
        return real(base, sample)

    monkeypatch.setattr(datasets, "_stats_tokenizer", slow_worker)
    body = _post(trainer_client).json()
    assert tasks.process_dataset(body["id"]) == "refused"
    assert DatasetUpload.objects.get().refusal_reason == "timed_out"
    assert Dataset.objects.count() == EncodedDataset.objects.count() == 0
    assert _stored_files() == []


@pytest.mark.django_db
def test_one_upload_over_the_cap_is_answered_429_with_retry_after(trainer_client, settings):
    settings.DATASET_UPLOADS_IN_FLIGHT_MAX = 2
    first, _ = (_post(trainer_client).json()["id"] for _ in range(2))
    refused = _post(trainer_client)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("rate_limit_error", "uploads_in_flight", "file")
    assert "2 uploads being processed" in error["message"]
    page = _post(trainer_client, api=False)
    assert page.status_code == 429 and "wait for one to finish" in page.content.decode()
    assert DatasetUpload.objects.count() == 2 and len(_stored_files()) == 2
    tasks.process_dataset(first)
    assert _post(trainer_client).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_racing_uploads_never_exceed_the_cap(trainer, storage, settings):
    settings.DATASET_UPLOADS_IN_FLIGHT_MAX = 3
    content = corpus_text(documents=2).encode()

    def upload(_):
        try:
            client = Client()
            client.force_login(trainer)
            return _post(client, content=content).status_code
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(upload, range(8)))
    assert statuses == [202] * 3 + [429] * 5, statuses
    assert DatasetUpload.objects.filter(state="processing").count() == 3
    assert len(_stored_files()) == 3  # the losers' staged files were deleted
