"""The health endpoint reports each component and reports a dead one as down, not as a 500.
Strangers learn only up or down; the reasons are for staff; probing costs no storage write a hit."""

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connection

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
def test_it_reports_a_dead_broker_as_down(client, settings, staff_user):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    client.force_login(staff_user)  # the reason is for staff
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
def test_it_reports_s3_storage_up(client, s3_storage, staff_user):
    client.force_login(staff_user)
    response = client.get("/health/")
    assert response.json()["components"]["storage"] == {**response.json()["components"]["storage"], "ok": True}
    assert "S3" in response.json()["components"]["storage"]["detail"]


@pytest.mark.django_db
def test_strangers_learn_only_up_or_down_and_staff_get_the_reasons(client, settings, staff_user):
    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://secret-broker.internal:{port}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body == {"ok": False, "components": {"database": {"ok": True}, "broker": {"ok": False},
                                                "storage": {"ok": True}}}
    assert b"secret-broker" not in response.content and str(port).encode() not in response.content

    client.force_login(staff_user)
    staff_body = client.get("/health/").json()
    assert staff_body["components"]["broker"]["ok"] is False
    assert "Error" in staff_body["components"]["broker"]["detail"]
    assert staff_body["components"]["database"]["detail"] == connection.vendor  # sqlite here, postgresql in CI


@pytest.mark.django_db
def test_anonymous_hits_write_storage_at_most_once_per_interval(client, monkeypatch, settings):
    settings.HEALTH_STORAGE_PROBE_SECONDS = 3600  # the hits below all fall in one window
    writes = []
    real_save = FileSystemStorage._save
    monkeypatch.setattr(FileSystemStorage, "_save", lambda self, name, content: writes.append(name)
                        or real_save(self, name, content))
    for _ in range(25):
        response = client.get("/health/")
        assert response.status_code == 200 and response.json()["components"]["storage"]["ok"] is True
    assert len(writes) <= 1, writes
