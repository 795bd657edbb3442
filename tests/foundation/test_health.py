"""The health endpoint reports each component and reports a dead one as down, not as a 500."""

import pytest

from tests.support.processes import free_port


@pytest.mark.django_db
def test_it_reports_every_component_up(client):
    response = client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert set(body["components"]) == {"database", "broker", "storage"}
    assert all(c["ok"] for c in body["components"].values())


@pytest.mark.django_db
def test_it_reports_a_dead_broker_as_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["components"]["broker"]["ok"] is False
    assert "Error" in body["components"]["broker"]["detail"]
    assert body["components"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_reports_unwritable_storage_as_down(client, settings, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a folder should be")
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocked)}}}
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["components"]["storage"]["ok"] is False


@pytest.mark.django_db
def test_it_reports_s3_storage_up(client, s3_storage):
    response = client.get("/health/")
    assert response.json()["components"]["storage"] == {**response.json()["components"]["storage"], "ok": True}
    assert "S3" in response.json()["components"]["storage"]["detail"]
